"""Structure checks of pickle-free formats, by parsing the bytes (torch, keras and onnx are never imported).

* **safetensors**: the JSON header must describe tensors of known dtypes whose ``data_offsets`` tile
  the data section exactly (contiguous from 0, no overlap, no gap, sizes matching dtype x shape),
  as the reference loader demands; a header that lies about offsets is not loaded as it claims.
* **ONNX**: a streaming protobuf walk (fields skipped by seeking, so large initializers cost nothing)
  finds every tensor stored as external data, in the graph, nested graphs, sparse initializers, node
  attributes and functions; a ``location`` that is absolute or leaves the model directory is a hazard
  (loading would read any file the worker can).
* **Keras 3** ``.keras`` archives: ``config.json`` is walked for ``Lambda`` layers and serialized
  Python functions (bytecode run on load) and for objects of modules outside Keras (imported on load).
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterator
from typing import IO, Any

from airflow_aisec.core.gates.model_scan._streams import Unscannable
from airflow_aisec.core.io.json_input import loads_json

RULE_EXTERNAL_DATA = "model_scan.external_data_path"
RULE_UNSAFE_LAYER = "model_scan.unsafe_layer"

_MAX_HEADER = 100 * 1024 * 1024
MAX_KERAS_CONFIG = 64 * 1024 * 1024
_MAX_DEPTH = 64

#: Bits per element of every safetensors dtype.
_ST_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16,
    "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64, "F64": 64, "C64": 64, "F4": 4,
    "F6_E2M3": 6, "F6_E3M2": 6,
}


# ------------------------------------------------------------------------------------------------
# safetensors
# ------------------------------------------------------------------------------------------------
def check_safetensors(fh: IO[bytes], size: int) -> None:
    """Raise :class:`Unscannable` unless the header and offsets are exactly consistent."""
    import struct

    head = fh.read(8)
    if len(head) != 8:
        raise Unscannable("safetensors file shorter than its header length")
    (length,) = struct.unpack("<Q", head)
    if length == 0 or length > min(_MAX_HEADER, size - 8):
        raise Unscannable("safetensors header length out of range")
    text = fh.read(length)
    if not text.startswith(b"{"):
        raise Unscannable("safetensors header is not a JSON object")
    try:
        header = loads_json(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Unscannable("safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise Unscannable("safetensors header is not a JSON object")
    data_len = size - 8 - length
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise Unscannable("safetensors __metadata__ is not a map of strings")
            continue
        if not isinstance(info, dict):
            raise Unscannable("safetensors tensor entry is not an object")
        bits = _ST_BITS.get(info.get("dtype"))  # type: ignore[arg-type]
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if bits is None:
            raise Unscannable("safetensors tensor with an unknown dtype")
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise Unscannable("safetensors tensor with an invalid shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(n, int) for n in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise Unscannable("safetensors tensor with invalid data_offsets")
        if offsets[1] - offsets[0] != math.ceil(math.prod(shape) * bits / 8):
            raise Unscannable("safetensors data_offsets do not match the tensor's dtype and shape")
        spans.append((offsets[0], offsets[1]))
    end = 0
    for begin, stop in sorted(spans):
        if begin != end:
            raise Unscannable("safetensors data_offsets overlap or leave gaps")
        end = stop
    if end != data_len:
        raise Unscannable("safetensors data_offsets do not cover the data section exactly")


# ------------------------------------------------------------------------------------------------
# ONNX
# ------------------------------------------------------------------------------------------------
class _Proto:
    """Protobuf wire reader over a seekable file; length-delimited fields are skipped by seeking."""

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self.fh = fh
        self.size = size

    def varint(self, end: int) -> int:
        shift = value = 0
        while True:
            if self.fh.tell() >= end or shift > 63:
                raise Unscannable("malformed ONNX protobuf (varint)")
            b = self.fh.read(1)
            if not b:
                raise Unscannable("malformed ONNX protobuf (truncated)")
            value |= (b[0] & 0x7F) << shift
            if not b[0] & 0x80:
                return value
            shift += 7

    def fields(self, end: int) -> Iterator[tuple[int, int, int]]:
        """Yield (field number, wire type, value or length); a length-delimited value starts at tell()."""
        while self.fh.tell() < end:
            key = self.varint(end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise Unscannable("malformed ONNX protobuf (field 0)")
            if wire == 0:
                yield number, wire, self.varint(end)
            elif wire in (1, 5):
                self.skip(8 if wire == 1 else 4, end)
            elif wire == 2:
                n = self.varint(end)
                start = self.fh.tell()
                if start + n > end:
                    raise Unscannable("malformed ONNX protobuf (length past its message)")
                yield number, wire, n
                self.fh.seek(start + n)  # whatever the consumer read, continue after the field
            else:
                raise Unscannable("malformed ONNX protobuf (group or unknown wire type)")

    def skip(self, n: int, end: int) -> None:
        if self.fh.tell() + n > end:
            raise Unscannable("malformed ONNX protobuf (truncated)")
        self.fh.seek(n, 1)

    def text(self, n: int) -> str:
        if n > 1 << 16:
            raise Unscannable("ONNX external data entry too long")
        return self.fh.read(n).decode("utf-8", "replace")


#: Sub-messages that can hold tensors, by (message, field number) -> message type.
_ONNX_CHILDREN = {
    ("model", 7): "graph", ("model", 25): "function",
    ("graph", 1): "node", ("graph", 5): "tensor", ("graph", 15): "sparse",
    ("function", 7): "node",
    ("node", 5): "attribute",
    ("attribute", 5): "tensor", ("attribute", 6): "graph", ("attribute", 10): "tensor", ("attribute", 11): "graph",
    ("attribute", 22): "sparse", ("attribute", 23): "sparse",
    ("sparse", 1): "tensor", ("sparse", 2): "tensor",
}


def onnx_external_locations(fh: IO[bytes], size: int) -> list[str]:
    """Every external-data ``location`` in an ONNX model file (raises Unscannable if malformed)."""
    proto = _Proto(fh, size)
    found: list[str] = []

    def walk(kind: str, end: int, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise Unscannable("ONNX graphs nested too deeply")
        for number, wire, value in proto.fields(end):
            if wire != 2:
                continue
            if kind == "tensor" and number == 13:  # external_data: StringStringEntryProto
                entry_end = fh.tell() + value
                entry: dict[int, str] = {}
                for n2, w2, v2 in proto.fields(entry_end):
                    if w2 == 2 and n2 in (1, 2):
                        entry[n2] = proto.text(v2)
                if entry.get(1) == "location":
                    found.append(entry.get(2, ""))
                continue
            child = _ONNX_CHILDREN.get((kind, number))
            if child:
                walk(child, fh.tell() + value, depth + 1)

    fh.seek(0)
    walk("model", size, 0)
    return found


def escaping_location(rel: str, location: str) -> str | None:
    """Why an external-data location is unsafe (None when it stays inside the model directory)."""
    if not location:
        return "empty location"
    if "\x00" in location or "\\" in location or ":" in location:
        return "location with a drive, backslash or NUL"
    if location.startswith("/"):
        return "absolute path"
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), location))
    if joined == ".." or joined.startswith(("../", "/")):
        return "path leaves the model directory"
    return None


# ------------------------------------------------------------------------------------------------
# Keras 3
# ------------------------------------------------------------------------------------------------
_LAMBDA_CLASSES = {"Lambda", "__lambda__", "TFOpLambda"}


def keras_config_hazards(raw: bytes) -> list[tuple[str, str, str]]:
    """(rule, severity, reason) for each hazard in a ``.keras`` ``config.json`` (value-free reasons)."""
    if len(raw) > MAX_KERAS_CONFIG:
        raise Unscannable("Keras config.json too large")
    try:
        config = loads_json(raw.decode("utf-8"))
    except ValueError:
        raise Unscannable("Keras config.json is not valid JSON") from None
    lambdas = 0
    foreign: set[str] = set()
    stack: list[tuple[Any, int]] = [(config, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > 512:
            raise Unscannable("Keras config nested too deeply")
        if isinstance(node, dict):
            cls = node.get("class_name")
            if isinstance(cls, str) and cls in _LAMBDA_CLASSES:
                lambdas += 1
            module = node.get("module")
            if isinstance(module, str) and "class_name" in node and module.split(".")[0] not in ("keras", "keras_hub"):
                foreign.add(module.split(".")[0][:60])
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    out = []
    if lambdas:
        out.append((RULE_UNSAFE_LAYER, "critical",
                    f"Lambda layer or serialized Python function ({lambdas} object(s)): code runs when the model loads"))
    if foreign:
        names = sorted(foreign)
        out.append((RULE_UNSAFE_LAYER, "high",
                    f"objects from module(s) outside Keras ({', '.join(names[:5])}) are imported when the model loads"))
    return out
