"""Streaming the texts of DATA in batches: tables, JSONL records, text documents, directories, S3.

Every source yields :class:`TextBatch` objects (an Arrow string array plus where each string came
from), so memory follows the batch size, not the input size:

* CSV / Parquet: text columns, ``batch_rows`` rows at a time (:mod:`airflow_aisec.core.io.tabular`);
* JSONL: string fields by path (``messages[].content``), ``batch_rows`` records at a time;
* ``.txt`` / ``.md``: read in overlapping segments of ``segment_chars`` characters, so a phrase that
  straddles two segments is still seen whole;
* ``.html``: parsed whole (up to ``max_html_bytes``), visible and hidden text kept apart;
* a directory or an ``s3://`` prefix: every document with an allowed extension, never following
  symlinks; S3 objects are downloaded one at a time to a temporary file.
"""

from __future__ import annotations

import codecs
import fnmatch
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.prompt_injection._html import extract
from airflow_aisec.core.io.column_blocks import block_cells, end_to_end, iter_column_blocks
from airflow_aisec.core.io.files import open_user_file, read_user_file
from airflow_aisec.core.io.json_input import loads_json
from airflow_aisec.core.io.schema_lists import per_type_id
from airflow_aisec.core.io.storage import is_s3_uri, list_s3_prefix, make_s3_client, parse_s3_uri, walk_tree
from airflow_aisec.core.io.tabular import check_columns, count_rows, local_copy, open_dataset
from airflow_aisec.core.policy.sections.prompt_injection import PromptInjectionPolicy
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

TABLE_EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
JSONL_EXTENSIONS = (".jsonl", ".ndjson")
HTML_EXTENSIONS = (".html", ".htm")
#: Characters a segment shares with the previous one (longer than any phrase a rule looks for).
SEGMENT_OVERLAP = 4096
#: Cells of a table batch at most (a column's rows, when they are more): its strings are one detection pass.
BATCH_CELLS = 1 << 18
#: Bytes of text buffered before a batch is handed over (besides the row/record count).
BATCH_BYTES = 16 * 1024 * 1024
_MAX_JSON_DEPTH = 64

Group = tuple[str, str]  # ("column", name) | ("field", path) | ("documents", "")


@dataclass
class TextBatch:
    """Strings to check and where each came from.

    Attributes:
        groups: What a finding names: a column, a JSONL field path, or the documents. Several for a
            block of table columns: ``strings`` then holds them column after column, one string per
            entry of ``positions`` each (a wide table's 100,000 columns are not 100,000 batches).
        strings: The texts (pyarrow string array).
        positions: Row index, JSONL line (``file:line`` in a directory) or document path, per string
            of a group.
        documents: Document path per string (empty for a table).
        hidden: Per string, the hidden text segments of an HTML document, None for other strings
            (None for the whole batch when it holds no document).
        units: Per group, the rows / records / documents this batch adds to its denominator.
        nbytes: UTF-8 bytes of the texts.
    """

    groups: list[Group]
    strings: pa.Array
    positions: Sequence[Any]
    documents: list[str | None]
    hidden: list[list[str] | None] | None = None
    units: list[int] = field(default_factory=list)
    nbytes: int = 0

    def origin(self, i: int) -> tuple[Group, Any]:
        """The group and position of string ``i``."""
        n = len(self.positions)
        return self.groups[i // n], self.positions[i % n]


@dataclass
class ScanInputs:
    """What was read: files (relative path, sha256), what was left out, and bytes."""

    files: list[tuple[str, str]] = field(default_factory=list)
    skipped_documents: list[str] = field(default_factory=list)
    skipped_other: int = 0
    #: (relative path, reason): entries of a scanned directory that were not read, but that what reads
    #: the directory may read (:meth:`TextReader._unread`).
    unscanned: list[tuple[str, str]] = field(default_factory=list)
    skipped_columns: list[str] = field(default_factory=list)
    skipped_fields: set[str] = field(default_factory=set)
    columns: list[str] = field(default_factory=list)
    documents: int = 0
    kinds: set[str] = field(default_factory=set)
    directory: bool = False


def _suffix(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".csv.gz"):
        return ".csv.gz"
    return os.path.splitext(lower)[1]


def _matches(name: str, globs: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open_user_file(path, "document") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _strings(values: list[str]) -> pa.Array:
    import pyarrow as pa

    return pa.array(values, type=pa.large_string())


class Reader:
    """Yields the :class:`TextBatch` objects of DATA for one policy section.

    Args:
        section: The ``prompt_injection`` section (batch sizes, fields, allow-lists, extensions).
        columns: Table columns to scan (overrides ``section.columns``).
        s3_client: boto3 client for ``s3://`` DATA.
    """

    def __init__(self, section: PromptInjectionPolicy, *, columns: Sequence[str] | None = None,
                 s3_client: Any = None) -> None:
        self.section = section
        self.columns = list(columns) if columns else list(section.columns)
        self.s3_client = s3_client
        self.inputs = ScanInputs()

    # --- dispatch -------------------------------------------------------------------------------
    def batches(self, data: str) -> Iterator[TextBatch]:
        data = str(data)
        if is_s3_uri(data):
            loc = parse_s3_uri(data)
            if not loc.key or loc.key.endswith("/") or not _suffix(loc.key):
                self.inputs.directory = True
                yield from self._s3_prefix(data)
            else:
                yield from self._file(data, None)
            return
        path = Path(data)
        if path.is_dir() and not path.is_symlink():
            self.inputs.directory = True
            yield from self._directory(path)
        else:
            yield from self._file(data, None)

    def _file(self, uri: str, rel: str | None) -> Iterator[TextBatch]:
        """One file (local or S3); ``rel`` is its path inside a scanned directory, None for DATA itself."""
        suffix = _suffix(uri)
        if suffix not in TABLE_EXTENSIONS and suffix not in self.section.extensions:
            raise InputDataError(f"{uri}: cannot scan this kind of file (expected .csv, .parquet or one of "
                                 f"{', '.join(self.section.extensions)})")
        client = self.s3_client if not is_s3_uri(uri) else (self.s3_client or make_s3_client())
        with local_copy(uri, s3_client=client) as copy:
            self.inputs.files.append((rel or uri, _sha256(copy.path)))
            if suffix in TABLE_EXTENSIONS:
                if rel is not None:
                    raise InputDataError(f"{uri}: tables are scanned one at a time, not inside a directory")
                self.inputs.kinds.add("table")
                yield from self._table(copy.path, TABLE_EXTENSIONS[suffix], uri)
            elif suffix in JSONL_EXTENSIONS:
                self.inputs.kinds.add("jsonl")
                yield from self._jsonl(copy.path, uri, rel)
            else:
                self.inputs.kinds.add("documents")
                self.inputs.documents += 1
                yield from self._document(copy.path, uri, rel or Path(uri).name, suffix in HTML_EXTENSIONS)

    def _directory(self, root: Path) -> Iterator[TextBatch]:
        found = False
        pending = _DocumentBatcher(self.section)
        for rel, full, _st, kind in walk_tree(root):
            if kind == "file":
                found = True
                yield from self._member(full, rel, pending)
            elif kind != "dir":  # symlinks are never followed, devices and FIFOs never opened
                reason = self._unread(root, rel, full, kind)
                if reason is None:
                    self.inputs.skipped_other += 1
                else:
                    self.inputs.unscanned.append((rel, reason))
        yield from pending.flush()
        if not found:
            raise InputDataError(f"{root}: the directory holds no file")

    def _unread(self, root: Path, rel: str, full: str, kind: str) -> str | None:
        """Why an entry that is not read (a symlink, a FIFO, socket or device) still matters, or None.

        A loader of the directory may follow a link or open a FIFO: what it would read was not
        scanned. A link inside the directory reads nothing new when its name is not one the gate
        scans, or its target is a directory inside (walked) or a file scanned in its own right.
        """
        if kind == "special":
            return "special_file"
        if kind == "escaping_symlink":
            return "symlink_outside"
        if _suffix(rel) not in self.section.extensions or _matches(rel, self.section.allow_documents):
            return None  # a name the gate would not scan as a file either
        target = Path(os.path.realpath(full))
        if target.is_dir() or not target.is_file():
            return None  # a directory inside is walked; a dangling link reads nothing
        try:
            target_rel = target.relative_to(os.path.realpath(root)).as_posix()
        except ValueError:  # it changed since the walk, to point out of the directory
            return "symlink_outside"
        if _suffix(target_rel) in self.section.extensions and not _matches(target_rel, self.section.allow_documents):
            return None  # scanned in its own right
        return "symlink_to_unscanned"

    def _s3_prefix(self, uri: str) -> Iterator[TextBatch]:
        client = self.s3_client or make_s3_client()
        loc = parse_s3_uri(uri)
        listed = list_s3_prefix(uri, client=client)
        if not listed:
            raise InputDataError(f"no objects under the S3 prefix: {uri}")
        pending = _DocumentBatcher(self.section)
        for rel, obj in sorted(listed.items()):
            yield from self._member(f"s3://{loc.bucket}/{obj.key}", rel, pending, client=client)
        yield from pending.flush()

    def _member(self, uri: str, rel: str, pending: _DocumentBatcher, client: Any = None) -> Iterator[TextBatch]:
        suffix = _suffix(rel)
        if suffix not in self.section.extensions:
            self.inputs.skipped_other += 1
            return
        if _matches(rel, self.section.allow_documents):
            self.inputs.skipped_documents.append(rel)
            return
        with local_copy(uri, s3_client=client) as copy:
            self.inputs.files.append((rel, _sha256(copy.path)))
            if suffix in JSONL_EXTENSIONS:
                self.inputs.kinds.add("jsonl")
                yield from pending.flush()
                yield from self._jsonl(copy.path, uri, rel)
            else:
                self.inputs.kinds.add("documents")
                self.inputs.documents += 1
                yield from pending.add_document(copy.path, uri, rel, suffix in HTML_EXTENSIONS)

    # --- tables ---------------------------------------------------------------------------------
    def _table(self, path: Path, fmt: str, uri: str) -> Iterator[TextBatch]:
        import pyarrow as pa

        dataset = open_dataset(path, fmt, uri=uri)
        names, types = dataset.names, dataset.types
        if self.columns:
            check_columns(names, self.columns, uri)
            chosen = list(dict.fromkeys(self.columns))
            type_of = dict(zip(names, types))
            for name in chosen:
                if not _is_text(type_of[name]):
                    raise InputDataError(f"{uri}: column '{name}' is not a text column ({type_of[name]})")
        else:
            chosen = [n for n, text in zip(names, per_type_id(types, _is_text)) if text]
        skipped = [n for n in chosen if _matches(n, self.section.allow_columns)]
        if skipped:
            allowed = set(skipped)
            chosen = [n for n in chosen if n not in allowed]
        self.inputs.skipped_columns.extend(skipped)
        if not chosen:
            raise InputDataError(f"{uri}: no text column to scan (none, or all allow-listed)")
        self.inputs.columns.extend(chosen)
        # A wide Parquet file is decoded a few dozen columns at a time (pyarrow's cost per column
        # grows with the columns of one call), as the pii gate reads it.
        cells = None
        if dataset.kind == "parquet":
            cells = block_cells(count_rows(dataset, uri), self.section.batch_rows)
        for block in iter_column_blocks(dataset, chosen, batch_rows=self.section.batch_rows, uri=uri,
                                        block_cells=cells):
            # A batch holds a few columns' cells, up to BATCH_CELLS (or one column): a long table's
            # batch of many columns is not one detection pass.
            n = block.rows
            names = chosen[block.columns.start:block.columns.stop]
            batch = block.batch
            if batch is not None and batch.schema.names != names:  # the block's columns in their order
                batch = pa.RecordBatch.from_arrays([batch.column(name) for name in names], names=names)
            per_batch = max(1, BATCH_CELLS // max(n, 1))
            for lo in range(0, len(names), per_batch):
                hi = min(lo + per_batch, len(names))
                strings = block.cells.slice(lo * n, (hi - lo) * n) if batch is None else _block_text(batch, range(lo, hi))
                yield TextBatch(groups=[("column", name) for name in names[lo:hi]], strings=strings,
                                positions=range(block.start, block.start + n), documents=[],
                                units=_non_null(strings, hi - lo), nbytes=_text_bytes(strings))

    # --- JSONL ----------------------------------------------------------------------------------
    def _jsonl(self, path: Path, uri: str, rel: str | None) -> Iterator[TextBatch]:
        buffers: dict[str, tuple[list[str], list[Any]]] = {}
        units: dict[str, int] = {}
        size = 0
        rows = 0

        def flush() -> Iterator[TextBatch]:
            nonlocal size, rows
            for name, (values, positions) in buffers.items():
                if values:
                    yield TextBatch(groups=[("field", name)], strings=_strings(values), positions=positions,
                                    documents=[rel] * len(values), units=[units.get(name, 0)],
                                    nbytes=sum(len(v.encode("utf-8", "surrogatepass")) for v in values))
            buffers.clear()
            units.clear()
            size = rows = 0

        with open_user_file(path, "JSONL file") as fh:
            for line_no, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    record = loads_json(raw)
                except ValueError:
                    raise InputDataError(f"{uri}: line {line_no} is not valid JSON (or not UTF-8, or nested "
                                         "too deeply)") from None
                try:
                    leaves = list(_leaves(record))
                except _TooDeep:
                    raise InputDataError(f"{uri}: line {line_no}: JSON nested deeper than {_MAX_JSON_DEPTH} "
                                         "levels") from None
                position = f"{rel}:{line_no}" if rel is not None else line_no
                seen: set[str] = set()
                for name, value in leaves:
                    if not _matches(name, self.section.fields):
                        continue
                    if _matches(name, self.section.allow_columns):
                        self.inputs.skipped_fields.add(name)
                        continue
                    values, positions = buffers.setdefault(name, ([], []))
                    values.append(value)
                    positions.append(position)
                    if name not in seen:
                        seen.add(name)
                        units[name] = units.get(name, 0) + 1
                    size += len(value)
                rows += 1
                if rows >= self.section.batch_rows or size >= BATCH_BYTES:
                    yield from flush()
        yield from flush()

    # --- text documents -------------------------------------------------------------------------
    def _document(self, path: Path, uri: str, rel: str, html: bool) -> Iterator[TextBatch]:
        batcher = _DocumentBatcher(self.section)
        yield from batcher.add_document(path, uri, rel, html)
        yield from batcher.flush()


class _DocumentBatcher:
    """Groups document segments into batches (many small documents share one Arrow array)."""

    def __init__(self, section: PromptInjectionPolicy) -> None:
        self.section = section
        self.values: list[str] = []
        self.positions: list[str] = []
        self.hidden: list[list[str] | None] = []
        self.units = 0
        self.size = 0

    def add_document(self, path: Path, uri: str, rel: str, html: bool) -> Iterator[TextBatch]:
        self.units += 1
        if html:
            raw = _decode(read_user_file(path, limit=self.section.max_html_bytes, what="HTML document"))
            parsed = extract(raw)
            # The cell holds the text a reader gets plus the markup (link and image URLs live in attributes).
            self._append(parsed.text + "\n" + raw, rel, parsed.hidden)
        else:
            for segment in _segments(path, self.section.segment_chars):
                self._append(segment, rel, None)
                if self.size >= BATCH_BYTES:
                    yield from self.flush()
        if len(self.values) >= self.section.batch_rows or self.size >= BATCH_BYTES:
            yield from self.flush()

    def _append(self, text: str, rel: str, hidden: list[str] | None) -> None:
        self.values.append(text)
        self.positions.append(rel)
        self.hidden.append(hidden)
        self.size += len(text)

    def flush(self) -> Iterator[TextBatch]:
        if self.values or self.units:
            batch = TextBatch(groups=[("documents", "")], strings=_strings(self.values), positions=self.positions,
                              documents=list(self.positions), hidden=self.hidden, units=[self.units],
                              nbytes=sum(len(v.encode("utf-8", "surrogatepass")) for v in self.values))
            self.values, self.positions, self.hidden = [], [], []
            self.units = self.size = 0
            yield batch


def _decode(data: bytes) -> str:
    """Text of a document: UTF-8 (BOM or not) or UTF-16 with a BOM; undecodable bytes are replaced."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace").replace("\x00", "")


def _segments(path: Path, size: int) -> Iterator[str]:
    """Overlapping segments of a text file, decoded incrementally."""
    with open_user_file(path, "document") as fh:
        head = fh.read(2)
        if head in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            decoder = codecs.getincrementaldecoder("utf-16")(errors="replace")
        else:
            decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        pending = decoder.decode(head)
        tail = ""
        while True:
            chunk = fh.read(size)
            pending += decoder.decode(chunk, final=not chunk)
            while len(pending) >= size or (not chunk and pending):
                piece, pending = pending[:size], pending[size:]
                yield (tail + piece).replace("\x00", "")
                tail = piece[-SEGMENT_OVERLAP:]
            if not chunk:
                break


def _is_text(dtype: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        return _is_text(dtype.value_type)
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype)


class _TooDeep(Exception):
    """A JSON value nested deeper than :data:`_MAX_JSON_DEPTH` (the caller names the file and line)."""


def _leaves(value: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """``(path, string)`` for every string in a JSON value; list items share the path ``name[]``."""
    if depth > _MAX_JSON_DEPTH:
        raise _TooDeep
    if isinstance(value, str):
        yield (prefix or "$"), value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else str(key), depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, f"{prefix}[]" if prefix else "[]", depth + 1)


def manifest_digest(files: Sequence[tuple[str, str]]) -> str:
    """sha256 over ``path<TAB>sha256`` lines of every file read, sorted (a directory's digest)."""
    lines = "".join(f"{PurePosixPath(rel).as_posix()}\t{digest}\n" for rel, digest in sorted(files))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()



def _block_text(batch: pa.RecordBatch, positions: range) -> pa.Array:
    """The text of the batch's columns at ``positions``, column after column, as one array."""
    import pyarrow as pa

    # By position: a name lookup per column costs a scan of a wide schema's names.
    arrays = [batch.column(i) for i in positions]
    plain = (pa.string(), pa.large_string())
    for k, arr in enumerate(arrays):
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if arr.type not in plain:
            arr = arr.cast(pa.large_string())
        arrays[k] = arr
    return end_to_end(arrays)


def _non_null(strings: pa.Array, width: int) -> list[int]:
    """Non-null strings of each of the ``width`` equal parts of ``strings`` (a block's columns)."""
    rows = len(strings) // max(width, 1)
    if not strings.null_count:
        return [rows] * width
    valid = strings.is_valid().to_numpy(zero_copy_only=False).reshape(width, rows)
    return valid.sum(axis=1).tolist()


def _text_bytes(strings: pa.Array) -> int:
    """UTF-8 bytes of ``strings`` (nulls count 0)."""
    import pyarrow.compute as pc

    return int(pc.sum(pc.binary_length(strings)).as_py() or 0)
