"""Built-in static analysis of one file: the file itself, or each member of a zip archive
(PyTorch ``.pt``/``.pth``, ``.npz``). Nothing is ever unpickled, imported or executed."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from airflow_aisec.core.gates.model_scan._format_checks import (
    MAX_KERAS_CONFIG,
    RULE_EXTERNAL_DATA,
    check_safetensors,
    escaping_location,
    keras_config_hazards,
    onnx_external_locations,
)
from airflow_aisec.core.gates.model_scan._formats import (
    PICKLE_EXTENSIONS,
    FileAnalysis,
    scan_stream_by_content,
)
from airflow_aisec.core.gates.model_scan._streams import NotPickle, Unscannable
from airflow_aisec.core.policy.sections.model_scan import DEFAULT_MAX_DECOMPRESSED_BYTES

_MAX_ZIP_MEMBERS = 100_000
#: Globals that TorchScript's own (C++) unpickler resolves to script classes and helpers: no Python import.
_TORCHSCRIPT_INTERNAL = ("__torch__", "torch.jit._pickle")


def torchscript_internal(module: str) -> bool:
    """A global of a TorchScript archive that its unpickler resolves itself (never a Python import)."""
    return any(module == m or module.startswith(m + ".") for m in _TORCHSCRIPT_INTERNAL)


def _is_torchscript(names: list[str]) -> bool:
    # torch.load hands an archive to torch.jit.load when it has a constants.pkl record (_is_torchscript_zip).
    return any(n.partition("/")[2] == "constants.pkl" for n in names)


def _is_keras(names: list[str]) -> bool:
    return "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names)


def scan_zip(path: Path, result: FileAnalysis, limit: int) -> str:
    """Analyse every member of a zip; returns the archive's kind (zip, torchscript, keras)."""
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
        names = [m.filename for m in members]
        if "config.json" in names:
            # Keras needs only config.json to build a model (metadata and weights are optional), and
            # whatever the archive's name: any zip with one is searched.
            info = archive.getinfo("config.json")
            if info.file_size > MAX_KERAS_CONFIG:
                raise Unscannable("Keras-style config.json too large")
            with archive.open(info) as fh:
                result.hazards.extend(keras_config_hazards(fh.read(MAX_KERAS_CONFIG + 1)))
            if _is_keras(names) or path.suffix.lower() == ".keras":
                return "keras"
        if _is_torchscript(names):
            result.imports = {p for p in result.imports if not torchscript_internal(p[0])}
            return "torchscript"
    return "zip"


def analyse_file(path: Path, rel: str, *, limit: int = DEFAULT_MAX_DECOMPRESSED_BYTES) -> FileAnalysis:
    """Built-in static analysis of one file (never loads or unpickles it)."""
    size = path.stat().st_size
    ext = path.suffix.lower()
    result = FileAnalysis(path=rel, ext=ext, size=size)
    try:
        if ext == ".safetensors":
            # Valid safetensors first: its header length can start like a pickle (0x80 0x02 is 640 bytes).
            try:
                with open(path, "rb") as fh:
                    check_safetensors(fh, size)
                result.kind = "safetensors"
                return result
            except Unscannable as exc:
                st_error: Unscannable | None = exc
        else:
            st_error = None
        with open(path, "rb") as fh:
            kind = scan_stream_by_content(fh, result, rel, ext=ext, size=size, limit=limit)
        if kind == "zip":
            kind = scan_zip(path, result, limit)
            if result.pickle:
                kind += "+pickle"
        elif kind == "other" and st_error is not None:
            raise st_error
        elif kind == "other" and ext == ".onnx":
            with open(path, "rb") as fh:
                locations = onnx_external_locations(fh, size)
            reasons = sorted({r for r in (escaping_location(rel, loc) for loc in locations) if r})
            if reasons:
                result.hazards.append((RULE_EXTERNAL_DATA, "critical",
                                       f"tensor data stored outside the model directory ({', '.join(reasons)})"))
            kind = "onnx"
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
