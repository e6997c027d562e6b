"""Adapters for the third-party scanners (picklescan, modelscan), run per file.

picklescan runs per file so ``.npy`` files are covered (its directory scan skips them); modelscan's
numpy scanner breaks under numpy 2.x and it does not scan joblib files at all. A scanner that reports
an error or a skip for a file did not scan it: its partial output for that file is discarded (a
parse that broke half-way yields bogus globals such as ``None.dtype``), and the file is listed as
not scanned by it, with the reason by category (never the scanner's text, which may quote file
content). The built-in analysis still covers the file.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ScannerView:
    dangerous: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # file -> imports flagged
    imports: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    #: file -> why this scanner did not scan it (error or skip categories, value-free)
    errors: dict[str, list[str]] = field(default_factory=dict)
    scanned: int = 0

    def _keep(self, rel: str, dangerous: set[tuple[str, str]], imports: set[tuple[str, str]]) -> None:
        if rel in self.errors:
            return  # partial output of a failed scan is not evidence either way
        self.scanned += 1
        if dangerous:
            self.dangerous[rel] = dangerous
        if imports:
            self.imports[rel] = imports


def run_picklescan(files: list[tuple[str, Path]]) -> ScannerView:
    from picklescan.scanner import SafetyLevel, scan_file_path

    view = ScannerView()
    for rel, path in files:
        try:
            result = scan_file_path(str(path))
        except Exception as exc:  # noqa: BLE001 - a scanner crash is recorded, the built-in analysis still runs
            view.errors.setdefault(rel, []).append(f"crash:{type(exc).__name__}")
            continue
        if result.scan_err:
            view.errors.setdefault(rel, []).append("parse error")
        imports = {(g.module, g.name) for g in result.globals}
        dangerous = {(g.module, g.name) for g in result.globals if g.safety == SafetyLevel.Dangerous}
        view._keep(rel, dangerous, imports)
    return view


def run_modelscan(files: list[tuple[str, Path]]) -> ScannerView:
    from modelscan.modelscan import ModelScan
    from modelscan.settings import DEFAULT_SETTINGS

    view = ScannerView()
    scanner = ModelScan(settings=copy.deepcopy(DEFAULT_SETTINGS))
    ms_log = logging.getLogger("modelscan")
    previous = ms_log.level
    ms_log.setLevel(logging.CRITICAL)  # it logs library error texts; we record the category instead
    try:
        for rel, path in files:
            try:
                report = scanner.scan(str(path))
            except Exception as exc:  # noqa: BLE001
                view.errors.setdefault(rel, []).append(f"crash:{type(exc).__name__}")
                continue
            summary = report.get("summary", {}) or {}
            for error in report.get("errors", []) or []:
                view.errors.setdefault(rel, []).append(f"error:{str(error.get('category', 'error'))[:40]}")
            if not (summary.get("scanned", {}) or {}).get("total_scanned"):
                skipped = (summary.get("skipped", {}) or {}).get("skipped_files", []) or []
                cats = sorted({str(s.get("category", "skipped"))[:40] for s in skipped if isinstance(s, dict)})
                view.errors.setdefault(rel, []).extend(f"skipped:{c}" for c in cats or ["nothing scanned"])
            pairs = {(str(i.get("module", "")), str(i.get("operator", ""))) for i in report.get("issues", []) or []}
            view._keep(rel, pairs, set(pairs))
    finally:
        ms_log.setLevel(previous)
    return view
