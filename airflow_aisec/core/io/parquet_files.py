"""Local Parquet files read with the footer parsed once, whatever the number of columns.

A 100,000-column footer takes seconds to parse, and a gate opens a file more than once (the schema,
then the batches; the same file as data and as reference): parsed footers are kept for the last
few files (:mod:`.parse_cache`: served only while the footer's bytes are unchanged).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.io.files import open_user_file
from airflow_aisec.core.io.parse_cache import ParseCache, Source, file_identity, source_unchanged
from airflow_aisec.core.io.schema_lists import column_names, column_types
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import pyarrow as pa


#: Parsed Parquet footers: a 100k-column footer costs seconds to parse, and a gate opens a file more
#: than once (schema, then batches; the same file as data and reference).
PARQUET_FOOTER_PARSES = {"count": 0}
#: A Parquet file ends with its footer's length (4 bytes, little-endian) and the magic ``PAR1``.
_TAIL = 8
#: The longest footer read: pyarrow's parse holds ~16x its bytes (a 100,000-column footer: 18.5 MB,
#: ~300 MB parsed), before a reader can tell how many columns it describes.
MAX_FOOTER_BYTES = 48 << 20
_FOOTERS = ParseCache(kept=2, max_source_bytes=MAX_FOOTER_BYTES + _TAIL)  # every footer read


def _footer(path: str | os.PathLike[str], uri: str | None = None) -> tuple[Any, pa.Schema]:
    """(FileMetaData, Arrow schema) of a file, parsed once while its footer's bytes are unchanged.

    Raises:
        InputDataError: the footer is longer than :data:`MAX_FOOTER_BYTES`.
    """
    from pyarrow._parquet import ParquetReader

    st = os.stat(path)
    key = (os.path.abspath(path), *file_identity(st))
    footer = _FOOTERS.get(key, path)
    if footer is not None:
        return footer
    source = _footer_bytes(path, st.st_size, uri or str(path))
    PARQUET_FOOTER_PARSES["count"] += 1
    # ParquetReader rather than pq.read_metadata: ParquetFile builds a per-leaf path table in Python.
    reader = ParquetReader()
    reader.open(str(path), pre_buffer=False)
    try:
        footer = (reader.metadata, reader.schema_arrow)
    finally:
        reader.close()
    if source is not None and source_unchanged(path, source):  # not rewritten while it was parsed
        _FOOTERS.put(key, footer, source)
    return footer


def _footer_bytes(path: str | os.PathLike[str], size: int, uri: str) -> Source | None:
    """The footer of a file ``size`` bytes long and its tail, as the file holds them now (None when the
    tail is not a Parquet tail or names more bytes than the file holds: pyarrow's parse reports it).

    Raises:
        InputDataError: the footer is longer than :data:`MAX_FOOTER_BYTES`.
    """
    if size < _TAIL:
        return None
    try:
        fh = open_user_file(path, "data file")
    except (OSError, InputDataError):
        return None  # pyarrow's parse reports it
    with fh:
        fh.seek(size - _TAIL)
        tail = fh.read(_TAIL)
        if len(tail) != _TAIL or tail[4:] != b"PAR1":
            return None
        length = int.from_bytes(tail[:4], "little")
        if length > size - _TAIL:
            return None
        if length > MAX_FOOTER_BYTES:
            raise InputDataError(f"{uri}: Parquet footer of {length:,} bytes, more than {MAX_FOOTER_BYTES:,} (a "
                                 "table far wider than any gate reads)")
        fh.seek(size - _TAIL - length)
        return Source(size - _TAIL - length, fh.read(length + _TAIL))


def parquet_metadata(path: str | os.PathLike[str], uri: str | None = None) -> Any:
    return _footer(path, uri)[0]


def parquet_schema(path: str | os.PathLike[str], uri: str | None = None) -> pa.Schema:
    return _footer(path, uri)[1]


def iter_parquet(path: str, schema: pa.Schema, projection: list[str] | None, batch_rows: int,
                  use_threads: bool) -> Iterator[pa.RecordBatch]:
    """Row group by row group, without pre-buffering, with the footer parsed once per file.

    A flat schema's columns are leaf columns: they are selected by position here, which spares
    ``ParquetFile``'s per-leaf path table (a Python loop: seconds for 100,000 columns).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow._parquet import ParquetReader

    metadata = parquet_metadata(path)
    if metadata.num_columns != len(schema) or any(pa.types.is_nested(t) for t in set(column_types(schema))):
        with pq.ParquetFile(path, pre_buffer=False, metadata=metadata) as parquet:
            yield from parquet.iter_batches(batch_size=batch_rows, columns=projection, use_threads=use_threads)
        return
    indices = None
    if projection is not None:
        position = {name: i for i, name in enumerate(column_names(schema))}
        indices = [position[c] for c in projection]
    reader = ParquetReader()
    reader.open(str(path), pre_buffer=False, metadata=metadata)
    try:
        yield from reader.iter_batches(batch_rows, row_groups=range(metadata.num_row_groups),
                                       column_indices=indices, use_threads=use_threads)
    finally:
        reader.close()
