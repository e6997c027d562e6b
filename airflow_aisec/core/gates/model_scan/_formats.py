"""Format identification from content (not the extension) and the analysis of one byte stream.

A stream is sniffed by its magic bytes: zip archives are left to the caller (they need a seekable
file), ``.npy`` headers are parsed (object arrays carry a pickle), compressed streams
(zlib/gzip/bz2/xz/lzma, as joblib writes them) are decompressed on the fly and never written to
disk, and protocol 0/1 pickles (no magic) are recognised by parsing the start of anything else.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from dataclasses import dataclass, field
from typing import IO, Any

from airflow_aisec.core.gates.model_scan._pickle_analysis import looks_like_text_pickle, scan_pickle_stream
from airflow_aisec.core.gates.model_scan._streams import Prefixed, Reader, Unscannable, ZlibStream

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

#: Bytes sniffed at the start of a stream to identify its format.
HEAD_BYTES = 64 * 1024
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


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
    #: (rule, severity, reason) of format-level hazards (ONNX external data paths, Keras Lambda layers).
    hazards: list[tuple[str, str, str]] = field(default_factory=list)


def is_pickle_start(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and head[1] <= 5


def compression(head: bytes) -> str | None:
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



def scan_numpy(fh: IO[bytes], result: FileAnalysis, label: str, size: int | None) -> None:
    import numpy as np

    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            _shape, _fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            _shape, _fortran, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise Unscannable(f"unsupported numpy format version {version}")
    except Unscannable:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/SyntaxError for bad headers
        raise Unscannable(f"{label}: unreadable numpy header ({type(exc).__name__})") from None
    if dtype.hasobject:
        result.pickle = True
        # The file size bounds what the pickle's declared lengths may allocate.
        scan_pickle_stream(Reader(fh, size=size), imports=result.imports)


def scan_stream_by_content(fh: IO[bytes], result: FileAnalysis, label: str, *, ext: str,
                            size: int | None, limit: int, depth: int = 0) -> str:
    """Identify and analyse one byte stream (a file or an archive member). Returns its kind."""
    reader_head = fh.read(8)
    head = reader_head
    rest = Prefixed(head, fh)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        if depth > 0:
            raise Unscannable(f"{label}: nested archive (not analysed)")
        return "zip"  # handled by the caller (needs a seekable file)
    if head.startswith(b"\x93NUMPY"):
        scan_numpy(rest, result, label, size)
        return "numpy"
    if is_pickle_start(head):
        result.pickle = True
        scan_pickle_file(rest, result, ext=ext, size=size)
        return "pickle"
    comp = compression(head)
    if comp in ("zlib", "lzma") and ext not in PICKLE_CAPABLE_EXTENSIONS and depth == 0:
        # Weak magic bytes (text can start with them): follow them when they really inflate to a
        # pickle, whatever the name (joblib.load recognises compression by content).
        head += fh.read(HEAD_BYTES - len(head))
        rest = Prefixed(head, fh)
        if not inflates_to_pickle(head, comp):
            comp = None
    if comp:
        if comp in ("lz4", "joblib-zfile"):
            raise Unscannable(f"{label}: {comp} compression is not analysed")
        stream: Any
        if comp == "zlib":
            stream = io.BufferedReader(ZlibStream(rest))
        elif comp == "gzip":
            stream = gzip.GzipFile(fileobj=rest)
        elif comp == "bz2":
            stream = bz2.BZ2File(rest)
        else:
            stream = lzma.LZMAFile(rest)  # noqa: SIM115 - detects xz and legacy .lzma; closed with its file
        try:
            inner = stream.read(min(HEAD_BYTES, limit + 1))
        except (OSError, EOFError, lzma.LZMAError, zlib.error):
            raise Unscannable(f"{label}: corrupt {comp} stream") from None
        # Protocol 0/1 pickles have no magic: a compressed one is unpickled all the same.
        if is_pickle_start(inner) or ext in PICKLE_EXTENSIONS or looks_like_text_pickle(inner, whole=False):
            result.pickle = True
            try:
                scan_pickle_stream(Reader(io.BufferedReader(Prefixed(inner, stream)), limit=limit),
                                   imports=result.imports)
            except (OSError, EOFError, lzma.LZMAError) as exc:
                raise Unscannable(f"{label}: corrupt {comp} stream ({type(exc).__name__})") from None
            return f"{comp}+pickle"
        return comp
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        raise Unscannable(f"{label}: 7z archive (not analysed)")
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"GGUF"):
        return "gguf"
    # Protocol 0/1 pickles have no magic: parse the start of anything else.
    more = head + fh.read(HEAD_BYTES - len(head))
    whole = size is not None and size <= len(more)
    if looks_like_text_pickle(more, whole=whole) or (ext in PICKLE_EXTENSIONS and more[:1] in (b"(", b"c", b"}", b"]")):
        result.pickle = True
        scan_pickle_file(Prefixed(more, fh), result, ext=ext, size=size)
        return "pickle"
    if ext in PICKLE_EXTENSIONS:
        raise Unscannable(f"{label}: {ext} file whose content is not a recognisable pickle")
    return "other"


def inflates_to_pickle(data: bytes, comp: str) -> bool:
    """Whether bytes with a weak zlib / lzma magic decompress to the start of a pickle."""
    try:
        if comp == "zlib":
            inner = zlib.decompressobj().decompress(data, HEAD_BYTES)
        else:
            inner = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data, max_length=HEAD_BYTES)
    except (zlib.error, lzma.LZMAError, EOFError):
        return False
    return is_pickle_start(inner) or looks_like_text_pickle(inner, whole=False)


def scan_pickle_file(fh: IO[bytes], result: FileAnalysis, *, ext: str, size: int | None) -> None:
    buffered = fh if isinstance(fh, io.BufferedIOBase) else io.BufferedReader(fh)  # type: ignore[arg-type]
    reader = Reader(buffered, size=size)
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
