"""Reading tables (CSV / Parquet, local or ``s3://``) for the data gates, in bounded memory.

S3 objects are downloaded to a temporary file with boto3 (the client comes from
Airflow's ``S3Hook`` in operators, from the AWS environment in the CLI), then
read with pyarrow datasets, so large data streams batch by batch instead of
being loaded whole. Every failure becomes an :class:`InputDataError` (or the
S3 translations from :mod:`airflow_aisec.core.storage`) with a one-line,
value-free message.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.storage import is_s3_uri, make_s3_client, parse_s3_uri, translate_s3_errors
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads

FORMATS = ("csv", "parquet")
DEFAULT_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class LocalCopy:
    """A local file standing for ``uri`` (the file itself, or a temporary download of an S3 object)."""

    uri: str
    path: Path
    s3_version_id: str | None = None
    s3_etag: str | None = None


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
        if not path.exists():
            raise InputDataError(f"file not found: {uri}")
        if not path.is_file():
            raise InputDataError(f"not a regular file: {uri}")
        if not os.access(path, os.R_OK):
            raise InputDataError(f"file not readable (permission denied): {uri}")
        yield LocalCopy(uri=uri, path=path)
        return
    loc = parse_s3_uri(uri)
    client = s3_client or make_s3_client()
    suffix = "".join(Path(loc.key).suffixes[-2:])
    fd, tmp = tempfile.mkstemp(prefix="aisec-", suffix=suffix)
    os.close(fd)
    try:
        with translate_s3_errors(uri):
            head = client.head_object(Bucket=loc.bucket, Key=loc.key)
            client.download_file(loc.bucket, loc.key, tmp)
        yield LocalCopy(
            uri=uri,
            path=Path(tmp),
            s3_version_id=head.get("VersionId"),
            s3_etag=(head.get("ETag") or "").strip('"') or None,
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def open_dataset(path: str | os.PathLike[str], fmt: str, *, uri: str | None = None) -> pads.Dataset:
    """A pyarrow dataset over a local file (lazy: nothing is read yet beyond metadata).

    Raises:
        InputDataError: the file is not a readable table of that format.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    name = uri or str(path)
    try:
        if fmt == "csv":
            return ds.dataset(str(path), format=ds.CsvFileFormat())
        return ds.dataset(str(path), format="parquet")
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError) as exc:
        raise InputDataError(f"{name}: not a readable {fmt} table ({type(exc).__name__})") from None


def check_columns(available: Sequence[str], required: Sequence[str], uri: str) -> None:
    """Raise :class:`InputDataError` naming the first required column absent from the table."""
    missing = [c for c in required if c not in available]
    if missing:
        raise InputDataError(f"{uri}: column(s) not in the data: {', '.join(map(repr, missing))}")


def iter_batches(
    dataset: pads.Dataset,
    *,
    columns: Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    uri: str = "<table>",
) -> Iterator[pa.RecordBatch]:
    """Stream record batches; read errors (truncated or corrupt files) become :class:`InputDataError`."""
    import pyarrow as pa

    if columns is not None:
        check_columns(dataset.schema.names, columns, uri)
    try:
        scanner = dataset.scanner(columns=list(columns) if columns is not None else None, batch_size=batch_rows,
                                  use_threads=True)
        yield from scanner.to_batches()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, ValueError) as exc:
        raise InputDataError(f"{uri}: table could not be read (truncated or corrupt? {type(exc).__name__})") from None


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
