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
when a pickle-capable file cannot be fully analysed (``model_scan.unscannable``: fail closed), and
for symlinks leaving the model directory (``model_scan.symlink``).
"""

from __future__ import annotations

import bz2
import copy
import fnmatch
import gzip
import io
import logging
import lzma
import math
import os
import pickletools
import re
import struct
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

from pydantic import Field, field_validator

from airflow_aisec.core.policy.base import GateSection, Severity
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef
from airflow_aisec.core.io.storage import is_s3_uri, make_s3_client, parse_s3_uri, translate_s3_errors, walk_tree
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

log = logging.getLogger(__name__)

#: Extensions whose format is pickle (loaders unpickle them by design).
PICKLE_EXTENSIONS = frozenset({".pkl", ".pickle", ".joblib", ".dill"})
#: Extensions whose loaders may unpickle (PyTorch checkpoints, numpy, generic data files).
PICKLE_CAPABLE_EXTENSIONS = PICKLE_EXTENSIONS | frozenset(
    {".pt", ".pth", ".bin", ".ckpt", ".dat", ".data", ".npy", ".npz", ".zip", ".7z", ".model"}
)
#: Extensions that claim a pickle-free format: a pickle inside is a disguise.
NON_PICKLE_EXTENSIONS = frozenset({
    ".safetensors", ".onnx", ".json", ".txt", ".md", ".yaml", ".yml", ".csv", ".tsv", ".gguf", ".ggml",
    ".h5", ".hdf5", ".keras", ".pb", ".tflite", ".msgpack", ".tiktoken", ".vocab", ".jinja", ".parquet",
    ".arrow", ".xml", ".html", ".png", ".jpg", ".jpeg", ".ini", ".toml", ".cfg",
})

_LIMIT_DECOMPRESSED = 8 * 1024 ** 3
_MAX_ZIP_MEMBERS = 100_000
_HEAD = 64 * 1024
_JOBLIB_WRAPPERS = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
}
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_QUOTED = re.compile(r"b?'(?:[^'\\]|\\.)*'" r'|b?"(?:[^"\\]|\\.)*"')

# Denylist of imports that execute code, touch files/network/processes, or load further
# pickles. Merged with picklescan's and modelscan's own lists at scan time.
_DENY: dict[str, Any] = {
    "builtins": {"eval", "exec", "compile", "getattr", "setattr", "delattr", "__import__", "open", "breakpoint",
                 "input", "globals", "locals", "vars", "apply", "execfile", "reload"},
    "__builtin__": {"eval", "exec", "compile", "getattr", "setattr", "delattr", "__import__", "open",
                    "breakpoint", "input", "globals", "locals", "vars", "apply", "execfile", "reload"},
    "os": "*", "posix": "*", "nt": "*", "subprocess": "*", "sys": "*", "socket": "*", "shutil": "*",
    "runpy": "*", "pty": "*", "importlib": "*", "imp": "*", "marshal": "*", "ctypes": "*", "code": "*",
    "codeop": "*", "pickle": "*", "_pickle": "*", "dill": "*", "cloudpickle": "*", "webbrowser": "*",
    "requests": "*", "urllib": "*", "urllib3": "*", "http": "*", "httplib": "*", "ftplib": "*", "smtplib": "*",
    "telnetlib": "*", "asyncio": "*", "aiohttp": "*", "multiprocessing": "*", "threading": "*", "signal": "*",
    "tempfile": "*", "glob": "*", "pathlib": "*", "_io": "*", "zipimport": "*", "pkgutil": "*", "pdb": "*",
    "bdb": "*", "timeit": "*", "cProfile": "*", "profile": "*", "pydoc": "*", "trace": "*", "doctest": "*",
    "venv": "*", "ensurepip": "*", "pip": "*", "setuptools": "*", "distutils": "*", "site": "*", "ssl": "*",
    "uuid": "*", "platform": {"popen", "system"}, "io": {"open", "FileIO", "open_code"}, "codecs": {"open"},
    "types": {"CodeType", "FunctionType", "LambdaType", "MethodType", "ModuleType"},
    "operator": {"attrgetter", "itemgetter", "methodcaller"},
    "_operator": {"attrgetter", "itemgetter", "methodcaller"},
    "functools": {"partial", "reduce"}, "_functools": {"partial", "reduce"},
    "numpy": {"load", "loadtxt", "fromfile"}, "numpy.f2py": "*", "numpy.testing": "*",
    "numpy.lib.npyio": "*", "torch": {"load"}, "torch.serialization": "*", "joblib": {"load"},
    "pandas": {"read_pickle", "eval"}, "yaml": {"load", "unsafe_load", "full_load"},
}


# ----------------------------------------------------------------------------------------------
# Policy
# ----------------------------------------------------------------------------------------------
class ModelScanPolicy(GateSection):
    """Policy section ``model_scan``.

    Attributes:
        forbid_pickle: Any pickle-based file is a finding (allow only safetensors, ONNX, JSON...).
        allowed_extensions: If set, every file must have one of these extensions (``""`` allows
            files without one).
        scanners: Third-party scanners to run besides the built-in analysis.
        allowed_globals: If set, pickle imports must match one of these ``module.name`` globs
            (e.g. ``sklearn.*``); others are ``model_scan.unlisted_import``.
        fail_on_scanner_error: Report a third-party scanner crash as a finding even when the
            built-in analysis covered the file (it always covers what it reports as scanned).
        max_files: Largest number of files scanned in one model.
        max_decompressed_bytes: Cap on a compressed pickle's decompressed size (bomb guard).
    """

    forbid_pickle: bool = False
    allowed_extensions: list[str] | None = None
    scanners: list[Literal["picklescan", "modelscan"]] = Field(
        default_factory=lambda: ["picklescan", "modelscan"]
    )
    allowed_globals: list[str] | None = None
    fail_on_scanner_error: bool = False
    max_files: int = Field(default=100_000, gt=0)
    max_decompressed_bytes: int = Field(default=_LIMIT_DECOMPRESSED, gt=0)

    @field_validator("allowed_extensions")
    @classmethod
    def _normalise_extensions(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        out = []
        for ext in value:
            ext = ext.strip().lower()
            if ext and not ext.startswith("."):
                ext = "." + ext
            out.append(ext)
        return sorted(set(out))

    @field_validator("scanners")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return sorted(set(value))


# ----------------------------------------------------------------------------------------------
# Import classification
# ----------------------------------------------------------------------------------------------
def _merged_denylist() -> dict[str, Any]:
    """Ours, plus picklescan's and modelscan's lists when those libraries are installed."""
    merged: dict[str, Any] = {k: (set(v) if isinstance(v, set) else v) for k, v in _DENY.items()}

    def add(module: str, names: Any) -> None:
        if names == "*" or merged.get(module) == "*":
            merged[module] = "*"
            return
        merged.setdefault(module, set())
        merged[module] |= {names} if isinstance(names, str) else set(names)

    try:
        from picklescan import scanner as ps

        for module, names in getattr(ps, "_unsafe_globals", {}).items():
            add(module, names)
    except ImportError:  # pragma: no cover - declared dependency of the scan extra
        pass
    try:
        from modelscan.settings import DEFAULT_SETTINGS

        for by_module in DEFAULT_SETTINGS.get("unsafe_globals", {}).values():
            for module, names in by_module.items():
                add(module, names)
    except ImportError:  # pragma: no cover
        pass
    return merged


def is_dangerous_import(module: str, name: str, denylist: dict[str, Any] | None = None) -> bool:
    """Whether ``module.name`` is on the denylist (a module listed with ``*`` covers its submodules)."""
    denylist = denylist if denylist is not None else _merged_denylist()
    if "unknown" in module or "unknown" in name or not module or not name:
        return True  # unresolvable imports could be anything
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        entry = denylist.get(".".join(parts[:i]))
        if entry == "*":
            return True
        if i == len(parts) and entry and (name in entry or name.split(".")[0] in entry):
            return True
    return False


# ----------------------------------------------------------------------------------------------
# Byte streams
# ----------------------------------------------------------------------------------------------
class _Reader:
    """Read-only stream with position, skip and a hard cap on bytes produced (decompression bombs)."""

    def __init__(self, raw: IO[bytes], *, limit: int | None = None, size: int | None = None) -> None:
        self._raw = raw
        self._limit = limit
        self.size = size
        self.pos = 0

    def _account(self, n: int) -> None:
        self.pos += n
        if self._limit is not None and self.pos > self._limit:
            raise _Unscannable(f"decompressed content exceeds {self._limit} bytes")

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = (self._limit - self.pos + 1) if self._limit is not None else -1
        if self.size is not None and n > self.size - self.pos + 1:
            n = max(self.size - self.pos + 1, 0)  # never allocate past the end of the data
        if self._limit is not None and n > self._limit - self.pos + 1:
            # A pickle declares its constants' lengths: never allocate past the cap (one byte over trips it).
            n = max(self._limit - self.pos + 1, 0)
        data = self._raw.read(n)
        self._account(len(data))
        return data

    def readline(self) -> bytes:
        line = self._raw.readline(1 << 20)
        self._account(len(line))
        return line

    def tell(self) -> int:
        return self.pos

    def skip(self, n: int) -> None:
        if n <= 0:
            return
        if self.size is not None and self.pos + n > self.size:
            raise _Unscannable("declared array data runs past the end of the file")
        remaining = n
        while remaining:
            chunk = self._raw.read(min(remaining, 8 << 20))
            if not chunk:
                raise _Unscannable("declared array data runs past the end of the file")
            remaining -= len(chunk)
            self._account(len(chunk))

    def at_eof(self) -> bool:
        if self.size is not None:
            return self.pos >= self.size
        peek = getattr(self._raw, "peek", None)
        if peek is not None:
            return not peek(1)
        return False


class _Unscannable(Exception):
    """The content cannot be analysed completely (fail closed)."""


def _parser_error(exc: BaseException) -> str:
    """pickletools' message without the bytes it quotes from the file (they could be anything)."""
    text = _QUOTED.sub("<...>", str(exc))
    return text.split("'", 1)[0].split('"', 1)[0][:120]  # an unbalanced quote: drop the rest


class _NotPickle(Exception):
    """The bytes at this position do not start a pickle."""


class _EndOfData(_NotPickle):
    """No bytes at all at this position."""


class _ZlibStream(io.RawIOBase):
    """Streaming zlib decompression as a file object (joblib's default compressor).

    Each call decompresses at most what the caller asked for (``max_length``): a chunk of a
    zlib bomb never expands in memory all at once.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._d = zlib.decompressobj()
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        size = len(b)
        while size:
            data = self._d.unconsumed_tail
            if not data and not self._eof:
                data = self._raw.read(1 << 16)
                self._eof = not data
            try:
                out = self._d.decompress(data, size)
            except zlib.error:
                raise _Unscannable("corrupt zlib stream") from None
            if out:
                b[: len(out)] = out
                return len(out)
            if self._d.eof or (self._eof and not self._d.unconsumed_tail):
                return 0
        return 0


# ----------------------------------------------------------------------------------------------
# Symbolic pickle machine: follows the opcode stream, never calls anything
# ----------------------------------------------------------------------------------------------
_UNKNOWN = object()
_MARK = object()


@dataclass(eq=False)
class _Global:
    module: str
    name: str


@dataclass(eq=False)
class _Call:
    func: Any
    args: Any
    state: Any = None


class _Dict:
    def __init__(self) -> None:
        self.items: list[tuple[Any, Any]] = []

    def get(self, key: str, default: Any = None) -> Any:
        for k, v in reversed(self.items):
            if k == key:
                return v
        return default


_CONST_OPS = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT", "STRING", "BINSTRING",
    "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES",
    "BINBYTES8", "BYTEARRAY8",
}


@dataclass
class _PickleReport:
    imports: set[tuple[str, str]] = field(default_factory=set)
    streams: int = 0
    first_value: Any = None
    #: Calls of an imported global (REDUCE, INST, OBJ, NEWOBJ): what unpickling executes.
    calls: int = 0


class _PickleMachine:
    """Collects every import a pickle stream would perform; skips joblib's inline array data."""

    def __init__(self, reader: _Reader, report: _PickleReport) -> None:
        self.reader = reader
        self.report = report
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[Any, Any] = {}

    def _pop(self) -> Any:
        if not self.stack:
            raise _Unscannable("malformed pickle (stack underflow)")
        return self.stack.pop()

    def _pop_mark(self) -> list[Any]:
        items = self.stack
        if not self.metastack:
            raise _Unscannable("malformed pickle (MARK missing)")
        self.stack = self.metastack.pop()
        return items

    def _global(self, module: Any, name: Any) -> _Global:
        if not isinstance(module, str) or not isinstance(name, str):
            module, name = "unknown", "unknown"
        self.report.imports.add((module, name))
        return _Global(module, name)

    def _call(self, func: Any, args: Any) -> _Call:
        if isinstance(func, _Global):
            self.report.calls += 1
        return _Call(func, args)

    def run(self) -> Any:
        """Consume one pickle up to STOP; returns the top of stack (symbolic)."""
        ops = pickletools.genops(self.reader)
        first = True
        start = self.reader.pos
        while True:
            try:
                op, arg, _pos = next(ops)
            except StopIteration:
                raise _Unscannable("pickle ended without STOP") from None
            except ValueError as exc:
                if first and self.reader.pos == start:
                    raise _EndOfData() from None
                if first:
                    raise _NotPickle(_parser_error(exc)) from None
                raise _Unscannable(f"malformed pickle: {_parser_error(exc)}") from None
            first = False
            name = op.name
            if name == "STOP":
                return self.stack[-1] if self.stack else None
            self._step(name, arg)

    def _step(self, name: str, arg: Any) -> None:
        st = self.stack
        if name in _CONST_OPS:
            st.append(arg)
        elif name in ("PROTO", "FRAME"):
            pass
        elif name == "NONE":
            st.append(None)
        elif name == "NEWTRUE":
            st.append(True)
        elif name == "NEWFALSE":
            st.append(False)
        elif name == "MARK":
            self.metastack.append(st)
            self.stack = []
        elif name == "EMPTY_DICT":
            st.append(_Dict())
        elif name in ("EMPTY_LIST", "EMPTY_SET"):
            st.append([])
        elif name == "EMPTY_TUPLE":
            st.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = [self._pop() for _ in range(n)][::-1]
            self.stack.append(tuple(items))
        elif name == "TUPLE":
            items = self._pop_mark()
            self.stack.append(tuple(items))
        elif name in ("LIST", "FROZENSET"):
            items = self._pop_mark()
            self.stack.append(list(items))
        elif name == "DICT":
            items = self._pop_mark()
            d = _Dict()
            d.items = list(zip(items[::2], items[1::2], strict=False))
            self.stack.append(d)
        elif name == "APPEND":
            value = self._pop()
            if self.stack and isinstance(self.stack[-1], list):
                self.stack[-1].append(value)
        elif name in ("APPENDS", "ADDITEMS"):
            items = self._pop_mark()
            if self.stack and isinstance(self.stack[-1], list):
                self.stack[-1].extend(items)
        elif name == "SETITEM":
            value, key = self._pop(), self._pop()
            if self.stack and isinstance(self.stack[-1], _Dict):
                self.stack[-1].items.append((key, value))
        elif name == "SETITEMS":
            items = self._pop_mark()
            if self.stack and isinstance(self.stack[-1], _Dict):
                self.stack[-1].items.extend(zip(items[::2], items[1::2], strict=False))
        elif name == "POP":
            self._pop()
        elif name == "POP_MARK":
            self._pop_mark()
        elif name == "DUP":
            st.append(st[-1] if st else _UNKNOWN)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            self.memo[arg] = st[-1] if st else _UNKNOWN
        elif name == "MEMOIZE":
            self.memo[len(self.memo)] = st[-1] if st else _UNKNOWN
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            st.append(self.memo.get(arg, _UNKNOWN))
        elif name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            st.append(self._global(module, attr))
        elif name == "STACK_GLOBAL":
            attr, module = self._pop(), self._pop()
            self.stack.append(self._global(module, attr))
        elif name == "INST":
            module, _, attr = str(arg).partition(" ")
            cls = self._global(module, attr)
            items = self._pop_mark()
            self.stack.append(self._call(cls, tuple(items)))
        elif name == "OBJ":
            items = self._pop_mark()
            if not items:
                raise _Unscannable("malformed pickle (OBJ without class)")
            self.stack.append(self._call(items[0], tuple(items[1:])))
        elif name == "REDUCE":
            args, func = self._pop(), self._pop()
            self.stack.append(self._call(func, args))
        elif name == "NEWOBJ":
            args, cls = self._pop(), self._pop()
            self.stack.append(self._call(cls, args))
        elif name == "NEWOBJ_EX":
            _kwargs, args, cls = self._pop(), self._pop(), self._pop()
            self.stack.append(self._call(cls, args))
        elif name == "BUILD":
            state = self._pop()
            target = self.stack[-1] if self.stack else _UNKNOWN
            if isinstance(target, _Call):
                target.state = state
                self._after_build(target)
        elif name == "PERSID":
            st.append(_UNKNOWN)
        elif name == "BINPERSID":
            self._pop()
            self.stack.append(_UNKNOWN)
        elif name in ("EXT1", "EXT2", "EXT4"):
            # copyreg's extension registry maps a code to any global: cannot be resolved statically.
            self.report.imports.add(("unknown-extension-registry", str(arg)))
            st.append(_Global("unknown-extension-registry", str(arg)))
        elif name in ("NEXT_BUFFER", "READONLY_BUFFER"):
            if name == "NEXT_BUFFER":
                st.append(_UNKNOWN)
        else:  # pragma: no cover - every protocol 0-5 opcode is handled above
            raise _Unscannable(f"unsupported pickle opcode {name}")

    def _after_build(self, obj: _Call) -> None:
        """joblib writes a NumpyArrayWrapper's array bytes right after its BUILD: skip them."""
        func = obj.func
        if not isinstance(func, _Global) or (func.module, func.name) not in _JOBLIB_WRAPPERS:
            return
        state = obj.state
        if not isinstance(state, _Dict):
            raise _Unscannable("joblib array wrapper without a state")
        dtype, shape = state.get("dtype"), state.get("shape")
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise _Unscannable("joblib array wrapper with an unreadable shape")
        itemsize, has_object = _dtype_itemsize(dtype)
        if has_object:
            # Object arrays are written as a complete nested pickle: analyse it as one.
            nested = _PickleMachine(self.reader, self.report)
            nested.run()
            return
        alignment = state.get("numpy_array_alignment_bytes")
        if alignment is not None:
            pad = self.reader.read(1)
            if len(pad) != 1:
                raise _Unscannable("joblib array padding missing")
            self.reader.skip(pad[0])
        self.reader.skip(math.prod(shape) * itemsize)


def _dtype_itemsize(dtype: Any) -> tuple[int, bool]:
    """Item size of a pickled ``numpy.dtype(descr, ...)`` reconstruction, computed without unpickling."""
    import numpy as np

    if not isinstance(dtype, _Call) or not isinstance(dtype.func, _Global) or dtype.func.name != "dtype" \
            or not dtype.func.module.startswith("numpy"):
        raise _Unscannable("joblib array wrapper with an unreadable dtype")
    args = dtype.args if isinstance(dtype.args, tuple) else ()
    descr = args[0] if args else None
    if not isinstance(descr, str):
        raise _Unscannable("joblib array wrapper with an unreadable dtype")
    if descr.startswith("O"):
        return 0, True
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    # dtype state: (version, byteorder, subarray, names, fields, elsize, alignment, flags)
    if len(state) >= 6 and isinstance(state[4], (_Dict, dict)) and state[4] is not None:
        raise _Unscannable("structured dtype in a joblib array (fields are not analysed)")
    if len(state) >= 8 and isinstance(state[7], int) and state[7] & 0x01:  # NPY_ITEM_REFCOUNT: holds objects
        return 0, True
    if len(state) >= 6 and isinstance(state[5], int) and state[5] > 0:
        return state[5], False
    try:
        return int(np.dtype(descr).itemsize), False
    except TypeError:
        raise _Unscannable("joblib array wrapper with an unknown dtype") from None


def scan_pickle_stream(
    reader: _Reader,
    *,
    max_streams: int | None = None,
    trailing_ok: bool = False,
    imports: set[tuple[str, str]] | None = None,
) -> _PickleReport:
    """Follow consecutive pickles until the end of the data.

    Args:
        reader: The bytes.
        max_streams: Stop after this many pickles (legacy PyTorch: 5, then raw storages).
        trailing_ok: Bytes after the last pickle that do not parse as one are accepted.
        imports: Set that collects imports as they are seen (kept even if the stream turns out broken).

    Raises:
        _NotPickle: the data does not start with a pickle.
        _Unscannable: a pickle is malformed, or unexplained bytes follow it.
    """
    report = _PickleReport(imports=imports if imports is not None else set())
    while True:
        if max_streams is not None and report.streams >= max_streams:
            return report
        if report.streams and reader.at_eof():
            return report
        machine = _PickleMachine(reader, report)
        try:
            value = machine.run()
        except _EndOfData:
            if report.streams == 0:
                raise _NotPickle("no data") from None
            return report
        except _NotPickle:
            if report.streams == 0:
                raise
            if trailing_ok:
                return report
            raise _Unscannable("unexplained bytes follow the pickle data") from None
        if report.streams == 0:
            report.first_value = value
        report.streams += 1


# ----------------------------------------------------------------------------------------------
# Format identification and per-file analysis
# ----------------------------------------------------------------------------------------------
@dataclass
class FileAnalysis:
    """What the built-in analysis found in one file."""

    path: str
    ext: str
    size: int
    kind: str = "other"
    pickle: bool = False
    imports: set[tuple[str, str]] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def _is_pickle_start(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and head[1] <= 5


def _compression(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00\x00"):
        return "lzma"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    if head.startswith(b"ZF"):
        return "joblib-zfile"
    return None


def _looks_like_text_pickle(head: bytes, *, whole: bool) -> bool:
    """A protocol 0/1 pickle (no magic) that imports something, e.g. hidden in a ``.json``.

    Text that merely starts with an opcode letter fails to parse within a few bytes; a pickle
    either reaches STOP inside ``head``, or (when ``head`` is only the start of a larger file)
    parses cleanly up to its end, or calls an imported global before it breaks (``pickle.load``
    executes that call before it notices a missing STOP or a garbage tail). Its imports must
    look like Python dotted names.
    """
    if not head or chr(head[0]) not in "(cI]})NSVdliLFp":
        return False
    report = _PickleReport()
    reader = _Reader(io.BytesIO(head), size=len(head))
    try:
        _PickleMachine(reader, report).run()
        complete = True
    except _NotPickle:
        return False
    except Exception:  # noqa: BLE001 - malformed, or a tail that crashes the analysis: judged below
        complete = False
    if not report.imports or not all(_IDENT.match(m) and _IDENT.match(n) for m, n in report.imports):
        return False
    return complete or report.calls > 0 or (not whole and reader.pos >= len(head) - 16)


def _safetensors_header_ok(fh: IO[bytes], size: int) -> bool:
    head = fh.read(8)
    if len(head) != 8:
        return False
    (length,) = struct.unpack("<Q", head)
    if length == 0 or length > min(100 * 1024 * 1024, size - 8):
        return False
    text = fh.read(length)
    if not text.lstrip().startswith(b"{"):
        return False
    import json

    try:
        return isinstance(json.loads(text.decode("utf-8")), dict)
    except (UnicodeDecodeError, ValueError):
        return False


def _scan_numpy(fh: IO[bytes], result: FileAnalysis, label: str, size: int | None) -> None:
    import numpy as np

    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            _shape, _fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            _shape, _fortran, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise _Unscannable(f"unsupported numpy format version {version}")
    except _Unscannable:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/SyntaxError for bad headers
        raise _Unscannable(f"{label}: unreadable numpy header ({type(exc).__name__})") from None
    if dtype.hasobject:
        result.pickle = True
        # The file size bounds what the pickle's declared lengths may allocate.
        scan_pickle_stream(_Reader(fh, size=size), imports=result.imports)


def _scan_stream_by_content(fh: IO[bytes], result: FileAnalysis, label: str, *, ext: str,
                            size: int | None, limit: int, depth: int = 0) -> str:
    """Identify and analyse one byte stream (a file or an archive member). Returns its kind."""
    reader_head = fh.read(8)
    head = reader_head
    rest = _Prefixed(head, fh)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        if depth > 0:
            raise _Unscannable(f"{label}: nested archive (not analysed)")
        return "zip"  # handled by the caller (needs a seekable file)
    if head.startswith(b"\x93NUMPY"):
        _scan_numpy(rest, result, label, size)
        return "numpy"
    if _is_pickle_start(head):
        result.pickle = True
        _scan_pickle_file(rest, result, ext=ext, size=size)
        return "pickle"
    comp = _compression(head)
    if comp in ("zlib", "lzma") and ext not in PICKLE_CAPABLE_EXTENSIONS and depth == 0:
        # Weak magic bytes (text can start with them): follow them when they really inflate to a
        # pickle, whatever the name (joblib.load recognises compression by content).
        head += fh.read(_HEAD - len(head))
        rest = _Prefixed(head, fh)
        if not _inflates_to_pickle(head, comp):
            comp = None
    if comp:
        if comp in ("lz4", "joblib-zfile"):
            raise _Unscannable(f"{label}: {comp} compression is not analysed")
        stream: Any
        if comp == "zlib":
            stream = io.BufferedReader(_ZlibStream(rest))
        elif comp == "gzip":
            stream = gzip.GzipFile(fileobj=rest)
        elif comp == "bz2":
            stream = bz2.BZ2File(rest)
        else:
            stream = lzma.LZMAFile(rest)  # noqa: SIM115 - detects xz and legacy .lzma; closed with its file
        try:
            inner = stream.read(min(_HEAD, limit + 1))
        except (OSError, EOFError, lzma.LZMAError, zlib.error):
            raise _Unscannable(f"{label}: corrupt {comp} stream") from None
        # Protocol 0/1 pickles have no magic: a compressed one is unpickled all the same.
        if _is_pickle_start(inner) or ext in PICKLE_EXTENSIONS or _looks_like_text_pickle(inner, whole=False):
            result.pickle = True
            try:
                scan_pickle_stream(_Reader(io.BufferedReader(_Prefixed(inner, stream)), limit=limit),
                                   imports=result.imports)
            except (OSError, EOFError, lzma.LZMAError) as exc:
                raise _Unscannable(f"{label}: corrupt {comp} stream ({type(exc).__name__})") from None
            return f"{comp}+pickle"
        return comp
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        raise _Unscannable(f"{label}: 7z archive (not analysed)")
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"GGUF"):
        return "gguf"
    # Protocol 0/1 pickles have no magic: parse the start of anything else.
    more = head + fh.read(_HEAD - len(head))
    whole = size is not None and size <= len(more)
    if _looks_like_text_pickle(more, whole=whole) or (ext in PICKLE_EXTENSIONS and more[:1] in (b"(", b"c", b"}", b"]")):
        result.pickle = True
        _scan_pickle_file(_Prefixed(more, fh), result, ext=ext, size=size)
        return "pickle"
    if ext in PICKLE_EXTENSIONS:
        raise _Unscannable(f"{label}: {ext} file whose content is not a recognisable pickle")
    return "other"


def _inflates_to_pickle(data: bytes, comp: str) -> bool:
    """Whether bytes with a weak zlib / lzma magic decompress to the start of a pickle."""
    try:
        if comp == "zlib":
            inner = zlib.decompressobj().decompress(data, _HEAD)
        else:
            inner = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data, max_length=_HEAD)
    except (zlib.error, lzma.LZMAError, EOFError):
        return False
    return _is_pickle_start(inner) or _looks_like_text_pickle(inner, whole=False)


class _Prefixed(io.RawIOBase):
    """Re-attach bytes already read (the sniffed head) in front of the rest of a stream."""

    def __init__(self, prefix: bytes, raw: IO[bytes]) -> None:
        self._prefix = prefix
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:  # straight into the caller's buffer: no intermediate copy
            return readinto(b) or 0
        data = self._raw.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            ch = self.read(1)
            if not ch:
                break
            out += ch
            if ch == b"\n":
                break
        return bytes(out)


def _scan_pickle_file(fh: IO[bytes], result: FileAnalysis, *, ext: str, size: int | None) -> None:
    buffered = fh if isinstance(fh, io.BufferedIOBase) else io.BufferedReader(fh)  # type: ignore[arg-type]
    reader = _Reader(buffered, size=size)
    if _torch_legacy_candidate(ext):
        report = scan_pickle_stream(reader, max_streams=1, imports=result.imports)
        if report.first_value == _TORCH_LEGACY_MAGIC:
            # Legacy torch.save: magic, protocol, sys_info, the object, storage keys; raw storages follow.
            scan_pickle_stream(reader, max_streams=4, imports=result.imports)
            return
        if reader.at_eof():
            return
    scan_pickle_stream(reader, imports=result.imports)


def _torch_legacy_candidate(ext: str) -> bool:
    return ext in (".pt", ".pth", ".bin", ".ckpt")


def _scan_zip(path: Path, result: FileAnalysis, limit: int) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise _Unscannable("corrupt zip archive") from None
    with archive:
        members = archive.infolist()
        if len(members) > _MAX_ZIP_MEMBERS:
            raise _Unscannable(f"zip archive has more than {_MAX_ZIP_MEMBERS} members")
        if sum(m.file_size for m in members) > limit:
            raise _Unscannable(f"zip archive expands beyond {limit} bytes")
        for member in members:
            if member.is_dir():
                continue
            if member.flag_bits & 0x1:
                raise _Unscannable(f"encrypted zip member {member.filename[:100]!r}")
            label = f"{path.name}:{member.filename[:200]}"
            member_ext = PurePosixPath(member.filename).suffix.lower()
            try:
                with archive.open(member) as fh:
                    kind = _scan_stream_by_content(
                        fh, result, label, ext=member_ext, size=member.file_size, limit=limit, depth=1
                    )
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as exc:
                raise _Unscannable(f"{label}: unreadable zip member ({type(exc).__name__})") from None
            if kind == "other" and member_ext in PICKLE_EXTENSIONS:
                raise _Unscannable(f"{label}: {member_ext} member is not a recognisable pickle")


def analyse_file(path: Path, rel: str, *, limit: int = _LIMIT_DECOMPRESSED) -> FileAnalysis:
    """Built-in static analysis of one file (never loads or unpickles it)."""
    size = path.stat().st_size
    ext = path.suffix.lower()
    result = FileAnalysis(path=rel, ext=ext, size=size)
    try:
        with open(path, "rb") as fh:
            kind = _scan_stream_by_content(fh, result, rel, ext=ext, size=size, limit=limit)
        if kind == "zip":
            _scan_zip(path, result, limit)
            if result.pickle:
                kind = "zip+pickle"
        elif kind == "other" and ext == ".safetensors":
            with open(path, "rb") as fh:
                kind = "safetensors" if _safetensors_header_ok(fh, size) else "other"
        result.kind = kind
    except _Unscannable as exc:
        result.kind = "unscannable"
        result.problems.append(str(exc)[:300])
    except _NotPickle as exc:
        result.kind = "unscannable"
        result.problems.append(f"not a parseable pickle ({str(exc)[:120]})")
    except OSError as exc:
        result.kind = "unscannable"
        result.problems.append(f"unreadable ({type(exc).__name__})")
    except Exception as exc:  # noqa: BLE001 - whatever the content does to the parsers, fail closed
        result.kind = "unscannable"
        result.problems.append(f"analysis failed ({type(exc).__name__})")
    return result


# ----------------------------------------------------------------------------------------------
# Third-party scanners
# ----------------------------------------------------------------------------------------------
@dataclass
class _ScannerView:
    dangerous: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # file -> imports flagged
    imports: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    scanned: int = 0


def _run_picklescan(files: list[tuple[str, Path]]) -> _ScannerView:
    from picklescan.scanner import SafetyLevel, scan_file_path

    view = _ScannerView()
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


def _run_modelscan(files: list[tuple[str, Path]]) -> _ScannerView:
    from modelscan.modelscan import ModelScan
    from modelscan.settings import DEFAULT_SETTINGS

    view = _ScannerView()
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


# ----------------------------------------------------------------------------------------------
# Directory walk and the gate
# ----------------------------------------------------------------------------------------------
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
    loc = parse_s3_uri(model)
    prefix = loc.key if not loc.key or loc.key.endswith("/") else loc.key + "/"
    client = s3_client or make_s3_client()
    with tempfile.TemporaryDirectory(prefix="aisec-scan-") as tmp:
        root = Path(tmp) / "model"
        root.mkdir()
        count = 0
        with translate_s3_errors(model):
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix):
                for obj in page.get("Contents", []) or []:
                    rel = obj["Key"][len(prefix):]
                    if not rel or rel.endswith("/"):
                        continue
                    parts = rel.split("/")
                    if any(p in ("", ".", "..") for p in parts) or "\\" in rel:
                        raise InputDataError(f"S3 object key is not a plain relative path under {model}")
                    count += 1
                    if count > max_files:
                        raise InputDataError(f"model has more than {max_files} files (policy max_files)")
                    dest = root.joinpath(*parts)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    body = client.get_object(Bucket=loc.bucket, Key=obj["Key"])["Body"]
                    with open(dest, "wb") as fh:
                        fh.writelines(body.iter_chunks(chunk_size=8 * 1024 * 1024))
        if count == 0:
            raise InputDataError(f"no objects under the S3 model prefix: {model}")
        yield root


def _fmt(pairs: set[tuple[str, str]]) -> list[str]:
    return sorted(f"{m}.{n}" for m, n in pairs)


def scan_model(model: str | os.PathLike[str], *, policy: ModelScanPolicy, s3_client: Any = None) -> CheckOutcome:
    """Scan a model directory (local or ``s3://``) for unsafe files without loading anything.

    Args:
        model: Model directory or ``s3://bucket/prefix/``.
        policy: The ``model_scan`` policy section.
        s3_client: boto3 S3 client for ``s3://`` models.

    Returns:
        Findings per file and rule; value-free metrics (counts, formats, scanner coverage).

    Raises:
        InputDataError: model missing, empty or too large.
        ConfigurationError: a configured scanner is not installed.
    """
    started = time.perf_counter()
    model = str(model)
    findings: list[Finding] = []
    with _local_model(model, s3_client, policy.max_files) as root:
        inv = _inventory(root, policy.max_files)
        if not inv.files and not inv.escaping:
            raise InputDataError(f"model directory has no files: {model}")
        denylist = _merged_denylist()
        analyses = {rel: analyse_file(path, rel, limit=policy.max_decompressed_bytes) for rel, path in inv.files}
        # Third-party scanners see every file that could carry a pickle, whatever its name.
        candidates = [(rel, path) for rel, path in inv.files
                      if analyses[rel].pickle or analyses[rel].kind in ("zip", "numpy", "unscannable")
                      or analyses[rel].ext in PICKLE_CAPABLE_EXTENSIONS]
        views: dict[str, _ScannerView] = {}
        for name in policy.scanners:
            try:
                runner = _run_picklescan if name == "picklescan" else _run_modelscan
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
        if policy.allowed_globals is not None:
            unlisted = {p for p in imports - set(dangerous)
                        if not any(fnmatch.fnmatchcase(f"{p[0]}.{p[1]}", g) for g in policy.allowed_globals)}
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
        if policy.forbid_pickle and is_pickle:
            findings.append(Finding(
                rule=RULE_PICKLE, severity=Severity.HIGH, count=1,
                message=f"'{rel}' is a pickle-based file ({a.kind}); the policy allows only pickle-free formats",
                location={"file": rel, "detected": a.kind},
            ))
        if policy.allowed_extensions is not None and a.ext not in policy.allowed_extensions:
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
        if policy.fail_on_scanner_error:
            failed = sorted(name for name, view in views.items() if view.errors.get(rel))
            if failed:
                findings.append(Finding(
                    rule=RULE_SCANNER_ERROR, severity=Severity.MEDIUM, count=len(failed),
                    message=f"scanner(s) {', '.join(failed)} failed on '{rel}'",
                    location={"file": rel, "scanners": failed},
                ))

    metrics: dict[str, Any] = {
        "files": len(inv.files),
        "bytes": inv.total_bytes,
        "pickle_files": pickle_files,
        "formats": dict(sorted(formats.items())),
        "scanners": ["aisec", *sorted(views)],
        "scanned_by": {"aisec": len(inv.files), **{name: view.scanned for name, view in sorted(views.items())}},
        "scanner_errors": dict(sorted(scanner_errors.items())),
        "loaded_any_model": False,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return CheckOutcome(findings=findings, metrics=metrics, inputs=[InputRef(uri=model)])
