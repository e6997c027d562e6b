"""Built-in static analysis of one file: the file itself, or each member of a zip archive
(PyTorch ``.pt``/``.pth``, ``.npz``). Nothing is ever unpickled, imported or executed."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from airflow_aisec.core.gates.model_scan._formats import (
    PICKLE_EXTENSIONS,
    FileAnalysis,
    safetensors_header_ok,
    scan_stream_by_content,
)
from airflow_aisec.core.gates.model_scan._streams import NotPickle, Unscannable
from airflow_aisec.core.policy.sections.model_scan import DEFAULT_MAX_DECOMPRESSED_BYTES

_MAX_ZIP_MEMBERS = 100_000


def scan_zip(path: Path, result: FileAnalysis, limit: int) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise Unscannable("corrupt zip archive") from None
    with archive:
        members = archive.infolist()
        if len(members) > _MAX_ZIP_MEMBERS:
            raise Unscannable(f"zip archive has more than {_MAX_ZIP_MEMBERS} members")
        if sum(m.file_size for m in members) > limit:
            raise Unscannable(f"zip archive expands beyond {limit} bytes")
        for member in members:
            if member.is_dir():
                continue
            if member.flag_bits & 0x1:
                raise Unscannable(f"encrypted zip member {member.filename[:100]!r}")
            label = f"{path.name}:{member.filename[:200]}"
            member_ext = PurePosixPath(member.filename).suffix.lower()
            try:
                with archive.open(member) as fh:
                    kind = scan_stream_by_content(
                        fh, result, label, ext=member_ext, size=member.file_size, limit=limit, depth=1
                    )
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as exc:
                raise Unscannable(f"{label}: unreadable zip member ({type(exc).__name__})") from None
            if kind == "other" and member_ext in PICKLE_EXTENSIONS:
                raise Unscannable(f"{label}: {member_ext} member is not a recognisable pickle")


def analyse_file(path: Path, rel: str, *, limit: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> FileAnalysis:
    """Built-in static analysis of one file (never loads or unpickles it)."""
    size = path.stat().st_size
    ext = path.suffix.lower()
    result = FileAnalysis(path=rel, ext=ext, size=size)
    try:
        with open(path, "rb") as fh:
            kind = scan_stream_by_content(fh, result, rel, ext=ext, size=size, limit=limit)
        if kind == "zip":
            scan_zip(path, result, limit)
            if result.pickle:
                kind = "zip+pickle"
        elif kind == "other" and ext == ".safetensors":
            with open(path, "rb") as fh:
                kind = "safetensors" if safetensors_header_ok(fh, size) else "other"
        result.kind = kind
    except Unscannable as exc:
        result.kind = "unscannable"
        result.problems.append(str(exc)[:300])
    except NotPickle as exc:
        result.kind = "unscannable"
        result.problems.append(f"not a parseable pickle ({str(exc)[:120]})")
    except OSError as exc:
        result.kind = "unscannable"
        result.problems.append(f"unreadable ({type(exc).__name__})")
    except Exception as exc:  # noqa: BLE001 - whatever the content does to the parsers, fail closed
        result.kind = "unscannable"
        result.problems.append(f"analysis failed ({type(exc).__name__})")
    return result
