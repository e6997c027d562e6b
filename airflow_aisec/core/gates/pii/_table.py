"""Reading a table for the pii gate: format sniffing, column choice, row sampling, columns as text.

CSV columns are read as text; Parquet text, integer and decimal columns are scanned; text hidden
in nested columns is refused unless the policy excludes the column (fail closed). pyarrow and numpy
are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.io.schema_lists import ColumnLists
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.policy.sections.pii import PiiPolicy

COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zst")


def _is_text(dtype: pa.DataType) -> bool:
    import pyarrow as pa

    T = pa.types
    return (T.is_string(dtype) or T.is_large_string(dtype) or getattr(T, "is_string_view", lambda _t: False)(dtype)
            or T.is_binary(dtype) or T.is_large_binary(dtype) or getattr(T, "is_binary_view", lambda _t: False)(dtype))


def _is_scannable(dtype: pa.DataType) -> bool:
    """Text (also plain binary, as Parquet writers store text), integers and decimals (ids, cards)."""
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        return _is_scannable(dtype.value_type)
    return _is_text(dtype) or pa.types.is_integer(dtype) or pa.types.is_decimal(dtype)


def _nested_text(dtype: pa.DataType) -> bool:
    """Whether a nested type (list, struct, map, union) holds text somewhere inside."""
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        return _nested_text(dtype.value_type) or _is_text(dtype.value_type)
    if not pa.types.is_nested(dtype):
        return False
    return any(_is_text(dtype.field(i).type) or _nested_text(dtype.field(i).type) for i in range(dtype.num_fields))


def joined_text(arrays: Sequence[pa.Array], columns: Sequence[str]) -> pa.Array:
    """:func:`as_strings` of each array (named ``columns``), laid end to end as one array (a detection
    pass over many columns at once: :func:`~airflow_aisec.core.io.column_blocks.end_to_end`)."""
    from airflow_aisec.core.io.column_blocks import end_to_end

    return end_to_end([as_strings(a, c) for a, c in zip(arrays, columns)])


def as_strings(arr: pa.Array, column: str = "?") -> pa.Array:
    """The column as a UTF-8 string array (integers and decimals become their decimal text).

    Binary cells that are not valid UTF-8 are decoded with replacement characters, so the
    text they carry is still scanned.

    Raises:
        InputDataError: the column cannot be read as text.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    try:
        return pc.cast(arr, pa.string())
    except pa.ArrowInvalid:
        if not _is_text(arr.type):
            raise InputDataError(f"column '{column}' cannot be read as text (ArrowInvalid)") from None
        return pa.array([None if v is None else v.decode("utf-8", "replace") for v in arr.to_pylist()], pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise InputDataError(f"column '{column}' cannot be read as text ({type(exc).__name__})") from None


def sniff_format(path: Path, fmt: str, uri: str) -> None:
    """Refuse a file whose bytes contradict its format (a Parquet file named .csv, binary junk)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 4))
            tail = fh.read(4)
    except OSError as exc:
        raise InputDataError(f"{uri}: cannot read the file ({type(exc).__name__})") from None
    if not head:
        raise InputDataError(f"{uri}: the file is empty")
    if str(uri).lower().endswith(COMPRESSED_SUFFIXES):
        return  # compressed CSV: pyarrow decompresses it by extension and reports what it cannot read
    if fmt == "csv":
        if head.startswith(b"PAR1"):
            raise InputDataError(f"{uri}: the file is Parquet, not CSV")
        if b"\x00" in head:
            raise InputDataError(f"{uri}: binary data, not a CSV table")
    elif fmt == "parquet":
        if not head.startswith(b"PAR1"):
            raise InputDataError(f"{uri}: not a Parquet file (no Parquet magic bytes)")
        if size < 12 or tail != b"PAR1":
            raise InputDataError(f"{uri}: the Parquet file is truncated (no footer)")


def open_for_scan(path: Path, fmt: str, uri: str):
    """A table file for scanning; CSV columns are read as text.

    Reading CSV as text keeps leading zeros and '+' of identifiers and phone numbers,
    and a column whose later rows stop looking like numbers cannot break the scan.
    """
    import dataclasses

    import pyarrow as pa
    import pyarrow.csv as pacsv

    from airflow_aisec.core.io.tabular import open_dataset

    sniff_format(path, fmt, uri)
    dataset = open_dataset(path, fmt, uri=uri, csv_text=True)
    if fmt != "csv" or set(dataset.types) == {pa.string()}:
        return dataset  # a wide CSV file's types are not inferred at all: read as text already
    names = dataset.names
    return dataclasses.replace(dataset, column_lists=ColumnLists(names, [pa.string()] * len(names)),
                               convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}))


def select_columns(section: PiiPolicy, names: list[str], types: list[Any], uri: str) -> tuple[list[str], dict[str, str]]:
    """Columns to scan (of a table's column ``names`` and ``types``), and skipped ones with their type.

    Raises:
        InputDataError: a column named in the policy is not in the data, or a nested column
            (list, struct, map) holds text the gate cannot scan and the policy does not exclude it.
    """
    from airflow_aisec.core.io.tabular import check_columns

    named = list(section.columns or []) + list(section.exclude_columns)
    check_columns(names, named, uri)
    skipped: dict[str, str] = {}
    chosen = []
    kinds = {t: _is_scannable(t) for t in set(types)}  # per type, not per column (wide tables)
    if section.columns is None and not section.exclude_columns and all(kinds.values()):
        return list(names), skipped  # the caller's own list: the schema's is shared
    scannable = dict(zip(names, [kinds[t] for t in types]))
    excluded = set(section.exclude_columns)
    type_of = dict(zip(names, types))
    for name in (section.columns if section.columns is not None else names):
        if name in excluded:
            skipped[name] = "excluded by policy"
            continue
        dtype = type_of[name]
        if scannable[name] or section.columns is not None:
            chosen.append(name)
        elif _nested_text(dtype):
            # Text inside lists or structs is not scanned: never let it pass unseen (fail closed).
            raise InputDataError(
                f"{uri}: column '{name}' holds text in a nested type ({dtype}) that the pii gate cannot scan; "
                "flatten it, or exclude it explicitly with pii.exclude_columns"
            )
        else:
            skipped[name] = str(dtype)
    return chosen, skipped


def sample_positions(total: int, size: int, seed: int):
    """Sorted row positions of a seeded sample without replacement (all rows when ``size >= total``)."""
    import numpy as np

    if size >= total:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=size, replace=False)).astype(np.int64)


def iter_rows(dataset, columns: Sequence[str], *, batch_rows: int, uri: str,
              positions=None) -> Iterator[tuple[pa.RecordBatch, Any]]:
    """Stream ``(batch, global row positions)``, optionally keeping only the sampled ``positions``."""
    import numpy as np
    import pyarrow as pa

    from airflow_aisec.core.io.tabular import iter_batches

    offset = 0
    for batch in iter_batches(dataset, columns=list(columns), batch_rows=batch_rows, uri=uri):
        n = batch.num_rows
        if positions is None:
            yield batch, np.arange(offset, offset + n, dtype=np.int64)
        else:
            lo, hi = np.searchsorted(positions, [offset, offset + n])
            if hi > lo:
                chosen = positions[lo:hi]
                yield batch.take(pa.array(chosen - offset)), chosen
        offset += n
