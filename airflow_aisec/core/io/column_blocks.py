"""Tables as blocks of columns, for gates whose work is per cell (the pii gate reads every cell as text).

Record batches cost per column: pyarrow builds one array per column and a consumer loops over them,
so a wide table (100,000 columns x 5 rows) costs many times a long one of the same cells. A block
here is some columns over a range of rows:

* a wide CSV file read as text gives its cells column after column as one string array, with no
  per-column array at all (:func:`~.wide_csv.iter_wide_csv_text`);
* a wide Parquet file is decoded a slice of columns at a time, so memory stays bounded by the
  block and pyarrow does not grow one huge batch of small arrays;
* anything else is its ordinary record batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.io.tabular import TableFile

#: From this many columns a table is read block by block of columns.
WIDE_COLUMNS = 1024
#: Cells of one Parquet block at most (columns x rows decoded together).
BLOCK_CELLS = 1 << 18
#: Columns of a wide Parquet file decoded together: pyarrow's cost per column grows with the columns
#: of one call (100k x 5: 0.9 s CPU at 64, 2.5 s at 50,000); a gate lays the text of many blocks end
#: to end again before its detection passes.
BLOCK_COLUMNS = 64


def threads_for(dataset: TableFile, columns: int) -> bool:
    """Whether to decode ``columns`` of ``dataset`` with threads: a wide Parquet table's column chunks
    are tiny, and pyarrow's thread pool then costs more CPU (and wall time) than it saves
    (100k x 5: 3.4 s -> 1.9 s CPU)."""
    return columns < WIDE_COLUMNS or dataset.kind != "parquet"


@dataclass(frozen=True)
class ColumnBlock:
    """Columns ``columns`` (a range of indices into the requested columns) over rows ``start .. start + rows``.

    Exactly one of ``batch`` (those columns, in that order) and ``cells`` (their text, column after
    column: column ``columns[k]`` at ``[k * rows, (k + 1) * rows)``) is set.
    """

    start: int
    rows: int
    columns: range
    batch: pa.RecordBatch | None = None
    cells: pa.Array | None = None


def _plain_parquet(dataset: TableFile) -> str | None:
    import pyarrow as pa

    if dataset.kind != "parquet" or any(pa.types.is_nested(t) for t in set(dataset.types)):
        return None
    return dataset.path


def _text_csv(dataset: TableFile, columns: Sequence[str]) -> str | None:
    """The file of a wide CSV table whose ``columns`` are all read as non-null text (their cells as
    they stand in the file: no conversion)."""
    import pyarrow as pa

    from airflow_aisec.core.io.wide_csv import eligible

    if not eligible(dataset, dataset.path) or dataset.convert_options.strings_can_be_null:
        return None
    names, types = dataset.names, dataset.types
    if len(columns) == len(names):
        chosen = set(types)
    else:
        position = {name: i for i, name in enumerate(names)}
        chosen = {types[position[c]] for c in columns}
    return dataset.path if chosen == {pa.string()} else None


def _parquet_blocks(path: str, dataset: TableFile, columns: Sequence[str], batch_rows: int,
                    block_cells: int) -> Iterator[ColumnBlock]:
    """Row group by row group, a slice of columns at a time; rows ascend for every column."""
    from pyarrow._parquet import ParquetReader

    from airflow_aisec.core.io.parquet_files import parquet_metadata

    metadata = parquet_metadata(path)
    if metadata.num_columns != len(dataset.names):
        raise ValueError("not a flat Parquet file")
    position = {name: i for i, name in enumerate(dataset.names)}
    indices = [position[c] for c in columns]
    reader = ParquetReader()
    reader.open(str(path), pre_buffer=False, metadata=metadata)
    try:
        offset = 0
        for group in range(metadata.num_row_groups):
            rows = metadata.row_group(group).num_rows
            width = max(1, block_cells // max(1, min(rows, batch_rows)))
            for lo in range(0, len(indices), width):
                start = offset
                for batch in reader.iter_batches(batch_rows, row_groups=[group], column_indices=indices[lo:lo + width],
                                                 use_threads=False):
                    if batch.num_rows:
                        yield ColumnBlock(start, batch.num_rows, range(lo, lo + batch.num_columns), batch=batch)
                    start += batch.num_rows
            offset += rows
    finally:
        reader.close()


def block_cells(total: int, batch_rows: int) -> int:
    """Cells of one block of a wide table of ``total`` rows: :data:`BLOCK_COLUMNS` columns of a batch."""
    return min(BLOCK_CELLS, BLOCK_COLUMNS * max(1, min(total, batch_rows)))


def iter_column_blocks(dataset: TableFile, columns: Sequence[str], *, batch_rows: int, uri: str,
                       block_cells: int | None = None) -> Iterator[ColumnBlock]:
    """Blocks covering every cell of ``columns`` once; for each column its rows come in ascending order.

    Raises:
        InputDataError: unreadable, truncated or corrupt data (value-free message).
    """
    import pyarrow as pa

    from airflow_aisec.core.io.tabular import _read_error_message, check_columns, iter_batches

    check_columns(dataset.names, columns, uri)
    everything = range(len(columns))
    if len(columns) >= WIDE_COLUMNS:
        csv_path = _text_csv(dataset, columns)
        if csv_path is not None:
            from airflow_aisec.core.io.wide_csv import iter_wide_csv_text

            start = 0
            for rows, cells in iter_wide_csv_text(csv_path, dataset.names, list(columns), batch_rows, uri=uri):
                yield ColumnBlock(start, rows, everything, cells=cells)
                start += rows
            return
        parquet_path = _plain_parquet(dataset)
        if parquet_path is not None:
            try:
                yield from _parquet_blocks(parquet_path, dataset, columns, batch_rows, block_cells or BLOCK_CELLS)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, ValueError) as exc:
                raise InputDataError(_read_error_message(dataset, exc, uri)) from None
            return
    start = 0
    for batch in iter_batches(dataset, columns=list(columns), batch_rows=batch_rows, uri=uri):
        if batch.num_rows:
            yield ColumnBlock(start, batch.num_rows, everything, batch=batch)
        start += batch.num_rows


#: Bytes a ``string`` array's 32-bit offsets reach (text past it is joined as ``large_string``).
STRING_BYTES = (1 << 31) - 1


def end_to_end(texts: Sequence[pa.Array]) -> pa.Array:
    """String arrays (columns of a block, batches of a pass) laid end to end as one: ``large_string``
    when one of them is, or when together they hold more text than 32-bit offsets reach (many long
    texts); the one array itself when alone."""
    import pyarrow as pa

    if not texts:
        return pa.array([], pa.string())
    if len(texts) == 1:
        return texts[0]
    if any(t.type != texts[0].type for t in texts) or (
            texts[0].type != pa.large_string() and sum(t.nbytes for t in texts) > STRING_BYTES):
        texts = [t if t.type == pa.large_string() else t.cast(pa.large_string()) for t in texts]
    return pa.concat_arrays(texts)


def block_rows(block: ColumnBlock, positions: Any) -> tuple[ColumnBlock, Any] | None:
    """The block restricted to the sorted global row ``positions`` it holds, and those positions
    (None when it holds none); all its rows when ``positions`` is None."""
    import numpy as np
    import pyarrow as pa

    if positions is None:
        return block, np.arange(block.start, block.start + block.rows, dtype=np.int64)
    lo, hi = np.searchsorted(positions, [block.start, block.start + block.rows])
    if hi <= lo:
        return None
    chosen = positions[lo:hi]
    local = chosen - block.start
    if block.batch is not None:
        return ColumnBlock(block.start, len(chosen), block.columns, batch=block.batch.take(pa.array(local))), chosen
    width = len(block.columns)
    take = (np.arange(width, dtype=np.int64)[:, None] * block.rows + local[None, :]).ravel()
    return ColumnBlock(block.start, len(chosen), block.columns, cells=block.cells.take(pa.array(take))), chosen
