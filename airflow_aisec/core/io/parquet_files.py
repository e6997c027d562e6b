"""Local Parquet files read with the footer parsed once, whatever the number of columns.

A 100,000-column footer takes seconds to parse, and a gate opens a file more than once (the schema,
then the batches; the same file as data and as reference): parsed footers are kept for the last
few files, keyed by the file's identity (device, inode, size, modification and change times).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.io.schema_lists import column_names, column_types

if TYPE_CHECKING:
    import pyarrow as pa


#: Parsed Parquet footers by file identity: a 100k-column footer costs seconds to parse, and a gate
#: opens a file more than once (schema, then batches; the same file as data and reference).
_FOOTERS: dict[tuple[Any, ...], Any] = {}
_FOOTERS_KEPT = 2
PARQUET_FOOTER_PARSES = {"count": 0}


def _footer(path: str | os.PathLike[str]) -> tuple[Any, pa.Schema]:
    """(FileMetaData, Arrow schema) of a file, parsed once while the file is unchanged."""
    from pyarrow._parquet import ParquetReader

    st = os.stat(path)
    # ctime too: a rewrite that keeps size and (user-settable) mtime still changes it.
    key = (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    footer = _FOOTERS.pop(key, None)
    if footer is None:
        PARQUET_FOOTER_PARSES["count"] += 1
        # ParquetReader rather than pq.read_metadata: ParquetFile builds a per-leaf path table in Python.
        reader = ParquetReader()
        reader.open(str(path), pre_buffer=False)
        try:
            footer = (reader.metadata, reader.schema_arrow)
        finally:
            reader.close()
    _FOOTERS[key] = footer
    # pop, not del: two threads may evict the same oldest entry.
    for old in list(_FOOTERS)[:-_FOOTERS_KEPT]:
        _FOOTERS.pop(old, None)
    return footer


def parquet_metadata(path: str | os.PathLike[str]) -> Any:
    return _footer(path)[0]


def parquet_schema(path: str | os.PathLike[str]) -> pa.Schema:
    return _footer(path)[1]


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
