"""Reading tables (CSV / Parquet, local or ``s3://``) for the data gates, in bounded memory.

S3 objects are downloaded to a temporary file with boto3 (the client comes from
Airflow's ``S3Hook`` in operators, from the AWS environment in the CLI), then
read with pyarrow's streaming CSV reader or Parquet row groups, so large data
streams batch by batch instead of being loaded whole. ``pyarrow.dataset`` is
not used: importing it imports pandas (+0.4 s for every ``aisec`` process). Every failure becomes an :class:`InputDataError` (or the
S3 translations from :mod:`airflow_aisec.core.io.storage`) with a one-line,
value-free message.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.io.files import check_regular_file, open_user_file
from airflow_aisec.core.io.parquet_files import iter_parquet, parquet_schema
from airflow_aisec.core.io.schema_lists import ColumnLists, check_width, column_names, column_types
from airflow_aisec.core.io.storage import is_s3_uri, make_s3_client, parse_s3_uri, translate_s3_errors
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.csv as pcsv

FORMATS = ("csv", "parquet")
DEFAULT_BATCH_ROWS = 65_536
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zst")
_PARQUET_MAGIC = b"PAR1"
_CSV_COLUMN_RE = re.compile(r"CSV column #(\d+)")


@dataclass(frozen=True)
class LocalCopy:
    """A local file standing for ``uri`` (the file itself, or a temporary download of an S3 object).

    Attributes:
        uri: What the caller asked for.
        path: Local file to read.
        s3_version_id: Version of the S3 object that was downloaded (versioned buckets).
        s3_etag: ETag of the S3 object that was downloaded.
        last_modified: Modification time of the file / ``LastModified`` of the object (UTC).
        size: Size in bytes.
    """

    uri: str
    path: Path
    s3_version_id: str | None = None
    s3_etag: str | None = None
    last_modified: _dt.datetime | None = None
    size: int | None = None


@dataclass(frozen=True)
class TableFile:
    """One local table file opened for reading: its schema and, for CSV, the options it is read with.

    Attributes:
        path: Local file.
        kind: ``csv`` or ``parquet``.
        column_lists: Column names and types (Parquet: from the footer; CSV: inferred from the first
            block as pyarrow does, or declared), and the Arrow :attr:`schema` made from them when
            first asked for (a wide CSV file's 100,000 fields cost ~50 ms: ask for :attr:`names`
            and :attr:`types` where they do).
        read_options / parse_options / convert_options: pyarrow CSV options (CSV only).
    """

    path: str
    kind: str
    column_lists: ColumnLists
    read_options: pcsv.ReadOptions | None = None
    parse_options: pcsv.ParseOptions | None = None
    convert_options: pcsv.ConvertOptions | None = None

    @property
    def schema(self) -> pa.Schema:
        return self.column_lists.schema

    @property
    def names(self) -> list[str]:
        """Column names (shared: read them, never change them)."""
        return self.column_lists.names

    @property
    def types(self) -> list[Any]:
        """Column types (shared: read them, never change them)."""
        return self.column_lists.types

    @property
    def files(self) -> list[str]:
        return [self.path]


def detect_format(uri: str, fmt: str | None = None) -> str:
    """``csv`` or ``parquet`` from an explicit format or the file extension.

    Raises:
        InputDataError: unknown format.
    """
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise InputDataError(f"unsupported table format '{fmt}' for {uri}; expected one of {FORMATS}")
        return fmt
    name = str(uri).lower()
    for suffix in (".gz", ".bz2", ".zst"):
        name = name.removesuffix(suffix)
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    raise InputDataError(f"cannot tell the table format of {uri} (use .csv or .parquet, or pass a format)")


@contextlib.contextmanager
def local_copy(uri: str | os.PathLike[str], *, s3_client: Any = None) -> Iterator[LocalCopy]:
    """Yield a local path for ``uri``; S3 objects are downloaded to a temp file removed afterwards.

    Raises:
        InputDataError: a local file is missing or not a regular file.
        AccessDeniedError / ServiceUnavailableError: S3 refused or is unreachable.
    """
    uri = str(uri)
    if not is_s3_uri(uri):
        path = Path(uri)
        # FIFOs, devices, sockets, directories and symlink loops are refused before anything opens them.
        st = check_regular_file(path, "data file")
        if not os.access(path, os.R_OK):
            raise InputDataError(f"{uri}: data file is not readable (permission denied)")
        yield LocalCopy(
            uri=uri,
            path=path,
            last_modified=_dt.datetime.fromtimestamp(st.st_mtime, _dt.UTC),
            size=st.st_size,
        )
        return
    loc = parse_s3_uri(uri)
    if not loc.key or loc.key.endswith("/"):
        raise InputDataError(f"S3 URI names a bucket or prefix, not an object: {uri}")
    client = s3_client or make_s3_client()
    suffix = "".join(Path(loc.key).suffixes[-2:])
    fd, tmp = tempfile.mkstemp(prefix="aisec-", suffix=suffix)
    os.close(fd)
    try:
        with translate_s3_errors(uri):
            head = client.head_object(Bucket=loc.bucket, Key=loc.key)
            version_id = head.get("VersionId")
            etag = (head.get("ETag") or "").strip('"') or None
            # Download exactly the version that HEAD described, so the metadata checked
            # (version, ETag, age) belongs to the bytes read even if the key is overwritten meanwhile.
            extra = {"VersionId": version_id} if version_id and version_id != "null" else None
            client.download_file(loc.bucket, loc.key, tmp, ExtraArgs=extra)
            if extra is None:
                # Unversioned bucket: no way to pin the GET, so make sure the object did not change.
                after = client.head_object(Bucket=loc.bucket, Key=loc.key)
                if (after.get("ETag") or "").strip('"') != (etag or ""):
                    raise InputDataError(f"S3 object changed while it was being downloaded: {uri}")
        yield LocalCopy(
            uri=uri,
            path=Path(tmp),
            s3_version_id=version_id,
            s3_etag=etag,
            last_modified=head.get("LastModified"),
            size=os.path.getsize(tmp),
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def sniff_format(path: str | os.PathLike[str], fmt: str, *, uri: str | None = None) -> None:
    """Cheap checks of a file's first and last bytes, for clear errors on wrong or truncated files.

    Raises:
        InputDataError: empty file, a Parquet file without its magic bytes (wrong format or
            truncated), or a "CSV" file that is binary.
    """
    name = uri or str(path)
    try:
        with open_user_file(path, "data file") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(4096)
            tail = b""
            if size >= 8:
                fh.seek(size - 4)
                tail = fh.read(4)
    except OSError as exc:
        raise InputDataError(f"{name}: file not readable ({exc.strerror or type(exc).__name__})") from None
    if size == 0:
        raise InputDataError(f"{name}: the file is empty (0 bytes)")
    if fmt == "parquet":
        if head[:4] != _PARQUET_MAGIC:
            raise InputDataError(f"{name}: not a Parquet file (wrong format: no PAR1 header)")
        if size < 12 or tail != _PARQUET_MAGIC:
            raise InputDataError(f"{name}: Parquet file is truncated (no PAR1 footer)")
        return
    if str(name).lower().endswith(_COMPRESSED_SUFFIXES):
        return
    if head[:4] == _PARQUET_MAGIC:
        raise InputDataError(f"{name}: wrong format: this is a Parquet file, not CSV")
    if b"\x00" in head:
        raise InputDataError(f"{name}: wrong format: binary data, not CSV text")


#: CSV parse block: pyarrow's default, larger for wide tables (a row must fit in a block).
CSV_BLOCK_BYTES = 1 << 20
CSV_MAX_BLOCK_BYTES = 1 << 28
#: A compressed CSV file's header line at most (it must fit the plain block: see :func:`csv_block_size`).
COMPRESSED_HEADER_BYTES = CSV_BLOCK_BYTES // 8


def _first_line(stream: Any, limit: int) -> bytes:
    """The first line of a stream without ``readline`` (pyarrow's decompressing streams), up to ``limit`` bytes."""
    head = bytearray()
    while len(head) < limit:
        chunk = stream.read(min(1 << 16, limit - len(head)))
        if not chunk:
            break
        end = chunk.find(b"\n")
        if end >= 0:
            head += chunk[:end + 1]
            break
        head += chunk
    return bytes(head)


def csv_block_size(path: str | os.PathLike[str]) -> int:
    """The CSV parse block for ``path``: 1 MiB, or 8x the header line of a wide table (capped).

    A compressed file gets the plain block (:func:`check_compressed_header`): its compressed bytes have
    no lines, and the first newline byte among them made any block size up to the cap (pyarrow holds a
    few blocks: a 1 MB gzip file of empty lines took 1.3 GB).
    """
    if str(path).lower().endswith(_COMPRESSED_SUFFIXES):
        return CSV_BLOCK_BYTES
    try:
        with open(path, "rb") as fh:
            header = fh.readline(CSV_MAX_BLOCK_BYTES // 8)
    except OSError:
        return CSV_BLOCK_BYTES
    return max(CSV_BLOCK_BYTES, min(CSV_MAX_BLOCK_BYTES, 8 * len(header)))


def check_compressed_header(path: str | os.PathLike[str], uri: str) -> None:
    """Refuse a compressed CSV file whose header line does not fit the plain block: such a file is read
    by pyarrow alone, whose memory grows with the columns (~10 kB each), not by the wide reader. A
    plain file is left alone.

    Raises:
        InputDataError: the header (decompressed) is longer than :data:`COMPRESSED_HEADER_BYTES`.
    """
    if not str(path).lower().endswith(_COMPRESSED_SUFFIXES):
        return
    import pyarrow as pa

    try:
        with pa.input_stream(str(path), compression="detect") as fh:  # the codec from the extension
            header = _first_line(fh, COMPRESSED_HEADER_BYTES + 1)
    except (OSError, pa.ArrowException):
        return  # the read that follows reports it
    if len(header) > COMPRESSED_HEADER_BYTES:
        raise InputDataError(
            f"{uri}: the header line of a compressed CSV file is longer than {COMPRESSED_HEADER_BYTES} bytes "
            "(a wide table): decompress it, wide tables are read from plain CSV or Parquet files")


def open_dataset(
    path: str | os.PathLike[str],
    fmt: str,
    *,
    uri: str | None = None,
    csv_column_types: Mapping[str, Any] | None = None,
    csv_empty_as_null: bool = False,
    csv_text: bool = False,
    csv_columns: Sequence[str] | None = None,
) -> TableFile:
    """A local table file opened for reading (lazy: nothing is read yet beyond the schema).

    Args:
        path: Local file.
        fmt: ``csv`` or ``parquet``.
        uri: Name used in error messages (the original URI).
        csv_column_types: For CSV, pyarrow types to convert these columns to instead of
            inferring them from the first block.
        csv_empty_as_null: For CSV, read empty fields of text columns as null (as pandas does)
            rather than as empty strings (pyarrow's default).
        csv_text: For CSV, the caller reads every column as text: a wide file's types are not
            inferred (a narrow one's still are, for the same checks and errors as before).
        csv_columns: For CSV, the caller reads only these columns: a wide file's other columns are
            typed as text, not inferred (their cells are never converted).

    Raises:
        InputDataError: the file is not a readable table of that format.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    name = uri or str(path)
    sniff_format(path, fmt, uri=name)
    wide_lists = None
    try:
        if fmt == "csv":
            from airflow_aisec.core.io.wide_csv import wide_csv_schema

            check_compressed_header(path, name)
            block_size = csv_block_size(path)
            read = pcsv.ReadOptions(block_size=block_size)
            parse = pcsv.ParseOptions()
            convert = pcsv.ConvertOptions(column_types=dict(csv_column_types or {}),
                                          strings_can_be_null=csv_empty_as_null)
            # A wide file's schema is inferred per cell, not by pyarrow's per-column inference.
            wide_lists = wide_csv_schema(path, block_size, declared=csv_column_types, uri=name, text=csv_text,
                                          columns=csv_columns)
            lists = wide_lists
            if lists is None:
                # pyarrow infers types from the first block, as its dataset layer would.
                with pcsv.open_csv(str(path), read_options=read, parse_options=parse,
                                   convert_options=convert) as reader:
                    lists = ColumnLists.of(reader.schema)
            table = TableFile(str(path), "csv", lists, read, parse, convert)
        else:
            # One footer parse per file: the schema is kept, the batches do not read the footer again.
            table = TableFile(str(path), "parquet", ColumnLists.of(parquet_schema(path, name)))
        check_width(len(table.column_lists), name)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError) as exc:
        if fmt == "csv":
            raise InputDataError(_csv_error_message(exc, _csv_header(path), name, path=path)) from None
        raise InputDataError(f"{name}: not a readable {fmt} table ({type(exc).__name__})") from None
    if wide_lists is None:
        # A wide CSV schema needs no check: its names were decoded and found unique, and a binary
        # column sends the file to pyarrow's path (wide_csv_schema returns None).
        _check_text(table, fmt, name, path, declared=csv_column_types or {})
    return table


def _check_text(dataset: TableFile, fmt: str, uri: str, path: str | os.PathLike[str],
                declared: Mapping[str, Any], inferred: bool = True, only: Sequence[str] | None = None) -> None:
    """Refuse column names, and CSV text in the inferred rows, that are not UTF-8 (an input error).

    pyarrow reads such a header fine but fails when a name is turned into a Python string, and it
    infers a column whose first rows hold invalid UTF-8 as ``binary``: both would surface later as
    an internal error or a silently unscanned column.
    """
    import pyarrow as pa

    schema = dataset.schema
    try:
        names = column_names(schema)  # one call for all columns (wide tables); the loop only finds the culprit
    except UnicodeDecodeError:
        for index in range(len(schema)):
            try:
                schema.field(index).name  # noqa: B018 - decoding is the check
            except UnicodeDecodeError:
                where = "the CSV header (line 1)" if fmt == "csv" else "the Parquet schema"
                raise InputDataError(f"{uri}: column #{index + 1} in {where} has a name that is not UTF-8 text") \
                    from None
        raise
    if len(set(names)) != len(names):
        where = "CSV header" if fmt == "csv" else "Parquet schema"
        raise InputDataError(f"{uri}: duplicate column names in the {where}")
    if fmt == "csv" and inferred:
        binary = (pa.binary(), pa.large_binary())
        # ``only``: the other columns of a wide file were typed as text, not inferred.
        present = set(names) if only is not None else set()
        pairs = zip(names, column_types(schema)) if only is None else (
            (c, schema.field(c).type) for c in dict.fromkeys(only) if c in present)
        for column, data_type in pairs:
            if data_type in binary and column not in declared:
                raise InputDataError(_not_utf8_message(uri, f"'{column}'", path))


def _first_non_utf8_line(path: str | os.PathLike[str]) -> int | None:
    """1-based number of the first line of a plain text file that is not UTF-8 (for error messages)."""
    if str(path).lower().endswith(_COMPRESSED_SUFFIXES):
        return None
    try:
        with open_user_file(path, "data file") as fh:
            for number, line in enumerate(fh, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return number
    except (OSError, InputDataError):
        return None
    return None


def _not_utf8_message(uri: str, column: str, path: str | os.PathLike[str] | None) -> str:
    line = _first_non_utf8_line(path) if path is not None else None
    where = f" (first at line {line})" if line else ""
    return f"{uri}: CSV column {column} holds text that is not UTF-8{where}"


def _csv_header(path: str | os.PathLike[str]) -> list[str]:
    """Column names from a plain CSV file's first line (best effort, for error messages)."""
    import csv

    if str(path).lower().endswith(_COMPRESSED_SUFFIXES):
        return []
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            return next(csv.reader([fh.readline()]), [])
    except OSError:
        return []


def _csv_error_message(exc: BaseException, names: Sequence[str], uri: str, types: Sequence[Any] = (),
                       *, path: str | os.PathLike[str] | None = None) -> str:
    """A value-free message for a CSV error (pyarrow's own text quotes the offending cell or row)."""
    text = str(exc)
    match = _CSV_COLUMN_RE.search(text)
    if match and "invalid UTF8" in text:
        index = int(match.group(1))
        return _not_utf8_message(uri, f"'{names[index]}'" if index < len(names) else f"#{index + 1}", path)
    if "invalid UTF8" in text:
        return _not_utf8_message(uri, "(unknown)", path)
    if match and "conversion error" in text:
        index = int(match.group(1))
        column = f"'{names[index]}'" if index < len(names) else f"#{index}"
        kind = f" {types[index]}" if index < len(types) else " of its type"
        return (
            f"{uri}: CSV column {column} holds a value that is not{kind} "
            "(type declared in the policy or inferred from the first rows)"
        )
    if "Expected" in text and "columns" in text:
        return f"{uri}: malformed CSV: a row has the wrong number of columns (truncated file?)"
    if "Empty CSV" in text:
        return f"{uri}: the CSV file has no header row"
    if "multiple columns named" in text:
        return f"{uri}: duplicate column names in the CSV header"
    return f"{uri}: CSV could not be parsed ({type(exc).__name__})"


def check_columns(available: Sequence[str], required: Sequence[str], uri: str) -> None:
    """Raise :class:`InputDataError` naming the first required column absent from the table."""
    if not required:
        return
    names = set(available)  # a set: wide tables (100k columns) would make this quadratic
    missing = [c for c in required if c not in names]
    if missing:
        raise InputDataError(f"{uri}: column(s) not in the data: {', '.join(map(repr, missing))}")


def _read_error_message(dataset: TableFile, exc: BaseException, uri: str) -> str:
    """A value-free message for a read error (pyarrow's own text may quote a cell)."""
    if dataset.kind == "csv":
        return _csv_error_message(exc, dataset.names, uri, dataset.types, path=dataset.path)
    return f"{uri}: table could not be read (truncated or corrupt? {type(exc).__name__})"


def _iter_csv(
    dataset: TableFile,
    projection: list[str] | None,
    batch_rows: int,
    use_threads: bool,
) -> Iterator[pa.RecordBatch]:
    """Stream a CSV file with pyarrow's streaming reader, re-chunked to ``batch_rows`` rows.

    ``open_csv`` parses one block at a time (a dataset scanner read blocks ahead of a slow consumer
    without bound). The schema found when the file was opened is imposed on every column, so types
    do not drift between blocks.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    # Fresh options: the table's own stay as they were opened.
    read = pcsv.ReadOptions(block_size=dataset.read_options.block_size, use_threads=use_threads)
    convert = pcsv.ConvertOptions(column_types={f.name: f.type for f in dataset.schema},
                                  strings_can_be_null=dataset.convert_options.strings_can_be_null,
                                  include_columns=projection if projection is not None else [])
    pending: list[pa.RecordBatch] = []
    rows = 0
    with pcsv.open_csv(dataset.path, read_options=read, parse_options=dataset.parse_options,
                       convert_options=convert) as reader:
        for batch in reader:
            if batch.num_rows == 0:
                continue
            pending.append(batch)
            rows += batch.num_rows
            while rows >= batch_rows:
                table = pa.Table.from_batches(pending)
                yield table.slice(0, batch_rows).combine_chunks().to_batches()[0]
                rest = table.slice(batch_rows)
                pending, rows = rest.to_batches(), rest.num_rows
        if rows:
            yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def iter_batches(
    dataset: TableFile,
    *,
    columns: Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    uri: str = "<table>",
    use_threads: bool = True,
) -> Iterator[pa.RecordBatch]:
    """Stream record batches; read errors (truncated or corrupt files) become :class:`InputDataError`.

    Memory is bounded by the batch size (CSV: a batch plus one parse block) or by one Parquet row
    group (read one at a time, without pre-buffering), not by the file size.
    """
    import pyarrow as pa

    if columns is not None:
        check_columns(dataset.names, columns, uri)
    projection = list(columns) if columns is not None else None
    try:
        if dataset.kind == "parquet":
            yield from iter_parquet(dataset.path, dataset.schema, projection, batch_rows, use_threads)
            return
        from airflow_aisec.core.io.wide_csv import eligible, iter_wide_csv

        if eligible(dataset, dataset.path):
            yield from iter_wide_csv(dataset.path, dataset.column_lists, projection, batch_rows, uri=uri,
                                     strings_can_be_null=dataset.convert_options.strings_can_be_null)
            return
        yield from _iter_csv(dataset, projection, batch_rows, use_threads)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, ValueError) as exc:
        raise InputDataError(_read_error_message(dataset, exc, uri)) from None


def count_rows(dataset: TableFile, uri: str) -> int:
    """Rows of the table: from the Parquet footer (parsed once), by counting lines for a wide CSV
    file (parsing would convert every cell), else by parsing the CSV with one column converted."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        if dataset.kind == "parquet":
            from airflow_aisec.core.io.parquet_files import parquet_metadata

            return int(parquet_metadata(dataset.path).num_rows)
        from airflow_aisec.core.io import wide_csv

        if wide_csv.eligible(dataset, dataset.path):
            return wide_csv.count_rows(dataset.path, uri)
        first = dataset.names[:1]
        convert = pcsv.ConvertOptions(column_types={c: pa.string() for c in first}, include_columns=first)
        with pcsv.open_csv(dataset.path, read_options=pcsv.ReadOptions(block_size=dataset.read_options.block_size),
                           parse_options=dataset.parse_options, convert_options=convert) as reader:
            return sum(batch.num_rows for batch in reader)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError) as exc:
        raise InputDataError(_read_error_message(dataset, exc, uri)) from None


def read_table(
    uri: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    fmt: str | None = None,
    s3_client: Any = None,
    allow_empty: bool = False,
) -> pa.Table:
    """Read a whole table (for gates that need all rows at once, e.g. bias metrics).

    Raises:
        InputDataError: unreadable, wrong format, missing columns, or empty (unless ``allow_empty``).
    """
    import pyarrow as pa

    uri = str(uri)
    fmt = detect_format(uri, fmt)
    with local_copy(uri, s3_client=s3_client) as copy:
        dataset = open_dataset(copy.path, fmt, uri=uri)
        batches = list(iter_batches(dataset, columns=columns, uri=uri))
        schema = dataset.schema if columns is None else pa.schema([dataset.schema.field(c) for c in columns])
        table = pa.Table.from_batches(batches, schema=schema)
    if table.num_rows == 0 and not allow_empty:
        raise InputDataError(f"{uri}: the table is empty")
    return table
