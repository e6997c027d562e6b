"""Adapters for the third-party scanners (picklescan, modelscan), run per file.

picklescan runs per file so ``.npy`` files are covered (its directory scan skips them); modelscan's
numpy scanner breaks under numpy 2.x and is reported, not trusted. A scanner crash is recorded by
category (never its text, which may quote file content); the built-in analysis still runs.
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
    errors: dict[str, list[str]] = field(default_factory=dict)
    scanned: int = 0


def run_picklescan(files: list[tuple[str, Path]]) -> ScannerView:
    from picklescan.scanner import SafetyLevel, scan_file_path

    view = ScannerView()
    for rel, path in files:
        try:
            result = scan_file_path(str(path))
        except Exception as exc:  # noqa: BLE001 - a scanner crash is recorded, the built-in analysis still runs
            view.errors.setdefault(rel, []).append(type(exc).__name__)
            continue
        view.scanned += 1
        for g in result.globals:
            view.imports.setdefault(rel, set()).add((g.module, g.name))
            if g.safety == SafetyLevel.Dangerous:
                view.dangerous.setdefault(rel, set()).add((g.module, g.name))
        if result.scan_err:
            view.errors.setdefault(rel, []).append("parse error")
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
                view.errors.setdefault(rel, []).append(type(exc).__name__)
                continue
            if report.get("summary", {}).get("scanned", {}).get("total_scanned"):
                view.scanned += 1
            for issue in report.get("issues", []) or []:
                pair = (str(issue.get("module", "")), str(issue.get("operator", "")))
                view.dangerous.setdefault(rel, set()).add(pair)
                view.imports.setdefault(rel, set()).add(pair)
            for error in report.get("errors", []) or []:
                view.errors.setdefault(rel, []).append(str(error.get("category", "error"))[:40])
    finally:
        ms_log.setLevel(previous)
    return view
