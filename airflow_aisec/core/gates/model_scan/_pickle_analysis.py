"""Symbolic pickle machine: follows the opcode stream and records every import, never calls anything.

``STACK_GLOBAL`` is resolved through the memo, and the raw array bytes that joblib writes into the
middle of a pickle stream are skipped by their declared size, so a payload hidden after an array
(which stops both third-party scanners) is still seen.
"""

from __future__ import annotations

import io
import math
import pickletools
import re
from dataclasses import dataclass, field
from typing import Any

from airflow_aisec.core.gates.model_scan._streams import (
    EndOfData,
    NotPickle,
    Reader,
    Unscannable,
    parser_error,
)

_JOBLIB_WRAPPERS = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_UNKNOWN = object()


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


#: Opcodes that build containers or use the memo: what a real pickle of a list/dict/str is made of,
#: and what text that happens to start with an opcode letter does not produce.
_STRUCTURAL_OPS = {
    "MARK", "EMPTY_LIST", "EMPTY_DICT", "EMPTY_TUPLE", "EMPTY_SET", "LIST", "DICT", "TUPLE", "TUPLE1", "TUPLE2",
    "TUPLE3", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "FROZENSET", "PUT", "BINPUT", "LONG_BINPUT",
    "GET", "BINGET", "LONG_BINGET", "MEMOIZE",
}
#: First bytes of a protocol 0/1 pickle (those have no ``PROTO`` magic): any opcode of those protocols.
_OLD_PROTOCOL_STARTS = frozenset(op.code.encode("latin-1")[0] for op in pickletools.opcodes if op.proto <= 1)
#: Opcodes an import-free pickle needs (STOP included) to count as one: "I1\n." or "Vtext\n." is
#: indistinguishable from text, "(lp0\nI1\na." is not.
_MIN_OPCODES = 3
#: Opcodes that must parse cleanly when only the start of a large import-free pickle is seen.
_MIN_OPCODES_PARTIAL = 64


@dataclass
class PickleReport:
    imports: set[tuple[str, str]] = field(default_factory=set)
    streams: int = 0
    first_value: Any = None
    #: Calls of an imported global (REDUCE, INST, OBJ, NEWOBJ): what unpickling executes.
    calls: int = 0
    #: Opcodes followed (STOP included), and how many of them build containers or use the memo.
    opcodes: int = 0
    structural: int = 0


class PickleMachine:
    """Collects every import a pickle stream would perform; skips joblib's inline array data."""

    def __init__(self, reader: Reader, report: PickleReport) -> None:
        self.reader = reader
        self.report = report
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[Any, Any] = {}

    def _pop(self) -> Any:
        if not self.stack:
            raise Unscannable("malformed pickle (stack underflow)")
        return self.stack.pop()

    def _pop_mark(self) -> list[Any]:
        items = self.stack
        if not self.metastack:
            raise Unscannable("malformed pickle (MARK missing)")
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
                raise Unscannable("pickle ended without STOP") from None
            except ValueError as exc:
                if first and self.reader.pos == start:
                    raise EndOfData() from None
                if first:
                    raise NotPickle(parser_error(exc)) from None
                raise Unscannable(f"malformed pickle: {parser_error(exc)}") from None
            first = False
            name = op.name
            self.report.opcodes += 1
            if name in _STRUCTURAL_OPS:
                self.report.structural += 1
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
                raise Unscannable("malformed pickle (OBJ without class)")
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
            raise Unscannable(f"unsupported pickle opcode {name}")

    def _after_build(self, obj: _Call) -> None:
        """joblib writes a NumpyArrayWrapper's array bytes right after its BUILD: skip them."""
        func = obj.func
        if not isinstance(func, _Global) or (func.module, func.name) not in _JOBLIB_WRAPPERS:
            return
        state = obj.state
        if not isinstance(state, _Dict):
            raise Unscannable("joblib array wrapper without a state")
        dtype, shape = state.get("dtype"), state.get("shape")
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise Unscannable("joblib array wrapper with an unreadable shape")
        itemsize, has_object = _dtype_itemsize(dtype)
        if has_object:
            # Object arrays are written as a complete nested pickle: analyse it as one.
            nested = PickleMachine(self.reader, self.report)
            nested.run()
            return
        alignment = state.get("numpy_array_alignment_bytes")
        if alignment is not None:
            pad = self.reader.read(1)
            if len(pad) != 1:
                raise Unscannable("joblib array padding missing")
            self.reader.skip(pad[0])
        self.reader.skip(math.prod(shape) * itemsize)


def _dtype_itemsize(dtype: Any) -> tuple[int, bool]:
    """Item size of a pickled ``numpy.dtype(descr, ...)`` reconstruction, computed without unpickling."""
    import numpy as np

    if not isinstance(dtype, _Call) or not isinstance(dtype.func, _Global) or dtype.func.name != "dtype" \
            or not dtype.func.module.startswith("numpy"):
        raise Unscannable("joblib array wrapper with an unreadable dtype")
    args = dtype.args if isinstance(dtype.args, tuple) else ()
    descr = args[0] if args else None
    if not isinstance(descr, str):
        raise Unscannable("joblib array wrapper with an unreadable dtype")
    if descr.startswith("O"):
        return 0, True
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    # dtype state: (version, byteorder, subarray, names, fields, elsize, alignment, flags)
    if len(state) >= 8 and isinstance(state[7], int) and state[7] & 0x01:  # NPY_ITEM_REFCOUNT: holds objects
        return 0, True
    if len(state) >= 6 and isinstance(state[4], _Dict):
        # Structured (e.g. a fitted tree's node array): objects in any field make joblib pickle it.
        if _fields_hold_objects(state[4], 0):
            return 0, True
        if not isinstance(state[5], int) or state[5] <= 0:
            raise Unscannable("structured dtype in a joblib array without an item size")
        return state[5], False
    if len(state) >= 3 and state[2] is not None:
        raise Unscannable("sub-array dtype in a joblib array (not analysed)")
    if len(state) >= 6 and isinstance(state[5], int) and state[5] > 0:
        return state[5], False
    try:
        return int(np.dtype(descr).itemsize), False
    except TypeError:
        raise Unscannable("joblib array wrapper with an unknown dtype") from None


def _fields_hold_objects(fields: _Dict, depth: int) -> bool:
    """Whether any field of a pickled structured dtype (``{name: (dtype, offset)}``) holds objects."""
    if depth > 32:
        raise Unscannable("structured dtype nested too deeply")
    for _name, spec in fields.items:
        sub = spec[0] if isinstance(spec, tuple) and spec else None
        if not isinstance(sub, _Call) or not isinstance(sub.func, _Global) or sub.func.name != "dtype":
            raise Unscannable("structured dtype with an unreadable field")
        descr = sub.args[0] if isinstance(sub.args, tuple) and sub.args else None
        if not isinstance(descr, str):
            raise Unscannable("structured dtype with an unreadable field")
        if descr.startswith("O"):
            return True
        sub_state = sub.state if isinstance(sub.state, tuple) else ()
        if len(sub_state) >= 8 and isinstance(sub_state[7], int) and sub_state[7] & 0x01:
            return True
        if len(sub_state) >= 5 and isinstance(sub_state[4], _Dict) and _fields_hold_objects(sub_state[4], depth + 1):
            return True
    return False


def scan_pickle_stream(
    reader: Reader,
    *,
    max_streams: int | None = None,
    trailing_ok: bool = False,
    imports: set[tuple[str, str]] | None = None,
) -> PickleReport:
    """Follow consecutive pickles until the end of the data.

    Args:
        reader: The bytes.
        max_streams: Stop after this many pickles (legacy PyTorch: 5, then raw storages).
        trailing_ok: Bytes after the last pickle that do not parse as one are accepted.
        imports: Set that collects imports as they are seen (kept even if the stream turns out broken).

    Raises:
        NotPickle: the data does not start with a pickle.
        Unscannable: a pickle is malformed, or unexplained bytes follow it.
    """
    report = PickleReport(imports=imports if imports is not None else set())
    while True:
        if max_streams is not None and report.streams >= max_streams:
            return report
        if report.streams and reader.at_eof():
            return report
        machine = PickleMachine(reader, report)
        try:
            value = machine.run()
        except EndOfData:
            if report.streams == 0:
                raise NotPickle("no data") from None
            return report
        except NotPickle:
            if report.streams == 0:
                raise
            if trailing_ok:
                return report
            raise Unscannable("unexplained bytes follow the pickle data") from None
        if report.streams == 0:
            report.first_value = value
        report.streams += 1



def looks_like_text_pickle(head: bytes, *, whole: bool) -> bool:
    """A protocol 0/1 pickle (no magic), e.g. hidden in a ``.json``, recognised by its content.

    Text that merely starts with an opcode letter fails to parse within a few bytes. A pickle that
    imports something either reaches STOP inside ``head``, or (when ``head`` is only the start of a
    larger file) parses cleanly up to its end, or calls an imported global before it breaks
    (``pickle.load`` executes that call before it notices a missing STOP or a garbage tail); its imports
    must look like Python dotted names. An import-free pickle (``pickle.dumps([1, 2, 3], protocol=0)``)
    is recognised positively: its opcodes reach STOP leaving exactly one object and no open MARK, with at
    least :data:`_MIN_OPCODES` opcodes of which one builds a container or uses the memo (or, when
    ``head`` is only the start of the file, :data:`_MIN_OPCODES_PARTIAL` opcodes parse up to its end).
    """
    if not head or head[0] not in _OLD_PROTOCOL_STARTS:
        return False
    report = PickleReport()
    reader = Reader(io.BytesIO(head), size=len(head))
    machine = PickleMachine(reader, report)
    try:
        machine.run()
        complete = True
    except NotPickle:
        return False
    except Exception:  # noqa: BLE001 - malformed, or a tail that crashes the analysis: judged below
        complete = False
    parsed_to_end = not whole and reader.pos >= len(head) - 16
    if report.imports:
        if not all(_IDENT.match(m) and _IDENT.match(n) for m, n in report.imports):
            return False
        return complete or report.calls > 0 or parsed_to_end
    if not report.structural:
        return False
    if complete:
        return report.opcodes >= _MIN_OPCODES and len(machine.stack) == 1 and not machine.metastack
    return parsed_to_end and report.opcodes >= _MIN_OPCODES_PARTIAL
