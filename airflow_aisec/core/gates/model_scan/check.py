"""Unsafe model file scan: pickle payloads and forbidden formats, without ever loading a model.

Three analyses run over every file of a model directory (local or ``s3://``):

* **picklescan** (per file, so ``.npy`` files are covered: its directory scan skips them);
* **modelscan** (per file; its numpy scanner breaks under numpy 2.x and is reported, not trusted);
* **aisec**, this module's own static analysis, which covers what both miss: it identifies the
  format from the content (not the extension), walks zip archives (PyTorch ``.pt``/``.pth``,
  ``.npz``) member by member, parses ``.npy`` headers (object arrays carry a pickle), decompresses
  compressed ``.joblib`` files (zlib/gzip/bz2/xz/lzma, never written to disk), and follows the
  pickle opcode stream with a small symbolic stack machine: ``STACK_GLOBAL`` is resolved through
  the memo, and the raw array bytes that joblib writes into the middle of a pickle stream are
  skipped by their declared size, so a payload hidden after an array (which stops both other
  scanners) is still seen. Nothing is ever unpickled, imported or executed.

A file is a finding when a scanner flags a dangerous import (``model_scan.dangerous_import``),
when an import is not on the policy's allowlist (``model_scan.unlisted_import``), when a pickle
hides behind a non-pickle extension (``model_scan.format_mismatch``), when the policy forbids
pickle-based formats (``model_scan.pickle_format``) or extensions (``model_scan.extension_not_allowed``),
when a pickle-capable file cannot be fully analysed or a pickle-free format is malformed (e.g. a
safetensors header whose offsets lie; ``model_scan.unscannable``: fail closed), when an ONNX model
stores tensor data outside the model directory (``model_scan.external_data_path``), when a Keras
archive holds a Lambda layer or objects of modules outside Keras (``model_scan.unsafe_layer``), and
for symlinks leaving the model directory (``model_scan.symlink``).

A third-party scanner that reports an error or a skip for a file contributes nothing for that file
(its partial output is discarded: a parse that broke half-way reports bogus globals); the metrics
``not_scanned`` and ``scanner_error_outcome`` say which scanner did not scan which file and whether
``fail_on_scanner_error`` made that a ``model_scan.scanner_error`` finding.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_aisec.core.gates.model_scan._denylist import is_dangerous_import, merged_denylist
from airflow_aisec.core.gates.model_scan._file_analysis import analyse_file, torchscript_internal
from airflow_aisec.core.gates.model_scan._format_checks import (  # noqa: F401 - rule ids, listed with the others
    RULE_EXTERNAL_DATA,
    RULE_UNSAFE_LAYER,
)
from airflow_aisec.core.gates.model_scan._formats import (
    NON_PICKLE_EXTENSIONS,
    PICKLE_CAPABLE_EXTENSIONS,
    PICKLE_EXTENSIONS,
)
from airflow_aisec.core.gates.model_scan._scanners import ScannerView, run_modelscan, run_picklescan
from airflow_aisec.core.io.storage import download_s3_prefix, is_s3_uri, walk_tree
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.model_scan import ModelScanPolicy
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef
from airflow_aisec.exceptions import ConfigurationError, InputDataError

GATE = "model_scan"
RULE_DANGEROUS = "model_scan.dangerous_import"
RULE_UNLISTED = "model_scan.unlisted_import"
RULE_PICKLE = "model_scan.pickle_format"
RULE_EXTENSION = "model_scan.extension_not_allowed"
RULE_MISMATCH = "model_scan.format_mismatch"
RULE_UNSCANNABLE = "model_scan.unscannable"
RULE_SYMLINK = "model_scan.symlink"
RULE_SCANNER_ERROR = "model_scan.scanner_error"
#: Files listed per scanner in the ``not_scanned`` metric (the count is in ``scanner_errors``).
_MAX_LISTED = 100


@dataclass
class _Inventory:
    files: list[tuple[str, Path]] = field(default_factory=list)
    escaping: list[str] = field(default_factory=list)
    special: list[str] = field(default_factory=list)
    total_bytes: int = 0


def _inventory(root: Path, max_files: int) -> _Inventory:
    inv = _Inventory()
    for rel, full, st, kind in walk_tree(root):
        if kind == "escaping_symlink":
            inv.escaping.append(rel)
        elif kind == "file":
            inv.files.append((rel, Path(full)))
            inv.total_bytes += st.st_size
            if len(inv.files) > max_files:
                raise InputDataError(f"model has more than {max_files} files (policy max_files)")
        elif kind == "special":
            inv.special.append(rel)
        # A symlink inside the model points at a file the walk scans in its own right.
    return inv


@contextmanager
def _local_model(model: str, s3_client: Any, max_files: int) -> Iterator[Path]:
    if not is_s3_uri(model):
        path = Path(model)
        if not path.exists():
            raise InputDataError(f"model directory not found: {model}")
        if not path.is_dir():
            raise InputDataError(f"model path is not a directory: {model}")
        yield path
        return
    with download_s3_prefix(model, client=s3_client, max_files=max_files, tmp_prefix="aisec-scan-") as (root, _):
        yield root


def _fmt(pairs: set[tuple[str, str]]) -> list[str]:
    return sorted(f"{m}.{n}" for m, n in pairs)


def scan_model(section: ModelScanPolicy, model: str | os.PathLike[str], *, s3_client: Any = None) -> CheckOutcome:
    """Scan a model directory (local or ``s3://``) for unsafe files without loading anything.

    Args:
        section: The ``model_scan`` policy section.
        model: Model directory or ``s3://bucket/prefix/``.
        s3_client: boto3 S3 client for ``s3://`` models (default: from the AWS environment).

    Returns:
        Findings per file and rule; value-free metrics (counts, formats, scanner coverage).

    Raises:
        InputDataError: model missing, empty or too large.
        ConfigurationError: a configured scanner is not installed.
    """
    started = time.perf_counter()
    model = str(model)
    findings: list[Finding] = []
    with _local_model(model, s3_client, section.max_files) as root:
        inv = _inventory(root, section.max_files)
        if not inv.files and not inv.escaping:
            raise InputDataError(f"model directory has no files: {model}")
        denylist = merged_denylist()
        analyses = {rel: analyse_file(path, rel, limit=section.max_decompressed_bytes) for rel, path in inv.files}
        # Third-party scanners see every file that could carry a pickle, whatever its name.
        candidates = [(rel, path) for rel, path in inv.files
                      if analyses[rel].pickle or analyses[rel].kind in ("zip", "numpy", "unscannable")
                      or analyses[rel].ext in PICKLE_CAPABLE_EXTENSIONS]
        views: dict[str, ScannerView] = {}
        for name in section.scanners:
            try:
                runner = run_picklescan if name == "picklescan" else run_modelscan
                views[name] = runner(candidates)
            except ImportError:
                raise ConfigurationError(f"scanner '{name}' is required by the policy but not installed") from None

    for rel in inv.escaping:
        findings.append(Finding(rule=RULE_SYMLINK, severity=Severity.CRITICAL, count=1,
                                message=f"symlink '{rel}' points outside the model directory (not followed)",
                                location={"file": rel}))
    for rel in inv.special:
        findings.append(Finding(rule=RULE_UNSCANNABLE, severity=Severity.HIGH, count=1,
                                message=f"'{rel}' is a special file (fifo, socket or device)",
                                location={"file": rel, "reason": "special_file"}))

    pickle_files = 0
    formats: dict[str, int] = {}
    scanner_errors = {name: 0 for name in views}
    not_scanned: dict[str, list[dict[str, Any]]] = {name: [] for name in views}
    for rel, _path in inv.files:
        a = analyses[rel]
        formats[a.kind] = formats.get(a.kind, 0) + 1
        dangerous: dict[tuple[str, str], set[str]] = {}
        for pair in a.imports:
            if is_dangerous_import(pair[0], pair[1], denylist):
                dangerous.setdefault(pair, set()).add("aisec")
        imports = set(a.imports)
        for name, view in views.items():
            for pair in view.dangerous.get(rel, set()):
                dangerous.setdefault(pair, set()).add(name)
            imports |= view.imports.get(rel, set())
            if view.errors.get(rel):
                scanner_errors[name] += 1
        if a.kind.startswith("torchscript"):
            # Script classes (__torch__.*) are no Python imports; dangerous names still count above.
            imports = {p for p in imports if not torchscript_internal(p[0])}
        is_pickle = a.pickle or a.ext in PICKLE_EXTENSIONS or bool(imports)
        pickle_files += int(is_pickle)

        if dangerous:
            names = _fmt(set(dangerous))
            by = sorted({s for scanners in dangerous.values() for s in scanners})
            findings.append(Finding(
                rule=RULE_DANGEROUS, severity=Severity.CRITICAL, count=len(dangerous),
                message=f"'{rel}' would import {', '.join(names[:5])}{' ...' if len(names) > 5 else ''} when "
                        f"loaded (flagged by {', '.join(by)})",
                location={"file": rel, "imports": names[:50], "scanners": by},
            ))
        if section.allowed_globals is not None:
            unlisted = {p for p in imports - set(dangerous)
                        if not any(fnmatch.fnmatchcase(f"{p[0]}.{p[1]}", g) for g in section.allowed_globals)}
            if unlisted:
                names = _fmt(unlisted)
                findings.append(Finding(
                    rule=RULE_UNLISTED, severity=Severity.HIGH, count=len(unlisted),
                    message=f"'{rel}' imports {len(unlisted)} global(s) not on the policy allowlist: "
                            f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''}",
                    location={"file": rel, "imports": names[:50]},
                ))
        if is_pickle and a.ext in NON_PICKLE_EXTENSIONS:
            findings.append(Finding(
                rule=RULE_MISMATCH, severity=Severity.CRITICAL, count=1,
                message=f"'{rel}' has a {a.ext} extension but contains pickle data",
                location={"file": rel, "extension": a.ext, "detected": a.kind},
            ))
        if section.forbid_pickle and is_pickle:
            findings.append(Finding(
                rule=RULE_PICKLE, severity=Severity.HIGH, count=1,
                message=f"'{rel}' is a pickle-based file ({a.kind}); the policy allows only pickle-free formats",
                location={"file": rel, "detected": a.kind},
            ))
        if section.allowed_extensions is not None and a.ext not in section.allowed_extensions:
            findings.append(Finding(
                rule=RULE_EXTENSION, severity=Severity.HIGH, count=1,
                message=f"'{rel}' has extension '{a.ext or '(none)'}', not allowed by the policy",
                location={"file": rel, "extension": a.ext},
            ))
        if a.problems:
            findings.append(Finding(
                rule=RULE_UNSCANNABLE, severity=Severity.HIGH, count=1,
                message=f"'{rel}' could not be fully analysed: {a.problems[0]}",
                location={"file": rel, "reason": a.problems[0][:200]},
            ))
        for rule, severity, reason in a.hazards:
            findings.append(Finding(
                rule=rule, severity=Severity(severity), count=1, message=f"'{rel}': {reason}",
                location={"file": rel, "reason": reason[:200]},
            ))
        failed = {name: sorted(set(view.errors[rel])) for name, view in sorted(views.items()) if view.errors.get(rel)}
        for name, reasons in failed.items():
            if len(not_scanned[name]) < _MAX_LISTED:
                not_scanned[name].append({"file": rel, "reasons": reasons[:5]})
        if section.fail_on_scanner_error and failed:
            why = [f"{n}: {', '.join(r)}" for n, r in failed.items()]
            findings.append(Finding(
                rule=RULE_SCANNER_ERROR, severity=Severity.MEDIUM, count=len(failed),
                message=f"'{rel}' was not scanned by {', '.join(failed)} ({'; '.join(why)}); "
                        "fail_on_scanner_error is true",
                location={"file": rel, "scanners": sorted(failed), "reasons": why},
            ))

    metrics: dict[str, Any] = {
        "files": len(inv.files),
        "bytes": inv.total_bytes,
        "pickle_files": pickle_files,
        "formats": dict(sorted(formats.items())),
        "scanners": ["aisec", *sorted(views)],
        "scanned_by": {"aisec": len(inv.files), **{name: view.scanned for name, view in sorted(views.items())}},
        "scanner_errors": dict(sorted(scanner_errors.items())),
        # Which scanner did not scan which file (its partial output discarded), and what the policy made of it.
        "not_scanned": {name: files for name, files in sorted(not_scanned.items()) if files},
        "scanner_error_outcome": (
            "fail_on_scanner_error: true -> a model_scan.scanner_error finding per file" if section.fail_on_scanner_error
            else "fail_on_scanner_error: false -> no finding; the built-in analysis covered each file"),
        "loaded_any_model": False,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return CheckOutcome(findings=findings, metrics=metrics, inputs=[InputRef(uri=model)])
