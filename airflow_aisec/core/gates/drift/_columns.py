"""A batch of the compared columns, handed to the drift accumulators in the form each one wants.

A per-feature accumulator (long tables) takes one array per column; a matrix block (small / wide
tables, :mod:`._block`, :mod:`._categories`) takes the columns of one type at once, as one array
column after column. A record batch has the first form, a wide CSV file read here the second
(:func:`wide_csv_batches`: the cells of all same-typed columns converted in one call, with no
per-column array at all, which is most of a 100,000-column file's cost); :class:`Batch` turns one
into the other on demand, once per batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

#: (type, local indices of the columns, their cells column after column)
Group = tuple["pa.DataType", "np.ndarray", "pa.Array"]


class Batch:
    """``rows`` rows of the requested columns: from their arrays (``columns``) or from same-typed
    groups (``groups``: type, positions among the requested columns, cells column after column)."""

    def __init__(self, rows: int, *, columns: Sequence[Any] | None = None,
                 groups: Sequence[tuple[Any, np.ndarray, Any]] | None = None) -> None:
        self.rows = rows
        self._columns = list(columns) if columns is not None else None
        self._groups = groups

    def columns(self, positions: Sequence[int]) -> list[Any]:
        """One array per requested position."""
        if self._columns is None:
            assert self._groups is not None
            out: list[Any] = [None] * sum(len(p) for _, p, _ in self._groups)
            n = self.rows
            for _, where, cells in self._groups:
                for k, p in enumerate(where.tolist()):
                    out[p] = cells.slice(k * n, n)
            self._columns = out
        return [self._columns[p] for p in positions]

    def groups(self, positions: Sequence[int]) -> list[Group]:
        """The columns at ``positions`` by type: (type, their indices in ``positions``, cells).

        ``positions`` are distinct (a unit reads each of its columns once: :func:`._evaluate._plan`); a
        repeated one would be kept once from groups. Cells stay in group order: category ids are
        numbered in order of first appearance (:mod:`._categories`)."""
        import numpy as np
        import pyarrow as pa

        n = self.rows
        if self._groups is None:
            assert self._columns is not None
            by_type: dict[Any, list[int]] = {}
            for j, p in enumerate(positions):
                by_type.setdefault(self._columns[p].type, []).append(j)
            out: list[Group] = []
            for dtype, indices in by_type.items():
                chunks = [chunk for j in indices for chunk in _chunks(self._columns[positions[j]])]
                if pa.types.is_dictionary(dtype):  # one dictionary per chunk: decoded before joining
                    chunks, dtype = [chunk.cast(dtype.value_type) for chunk in chunks], dtype.value_type
                cells = pa.concat_arrays(chunks) if chunks else pa.array([], dtype)
                out.append((dtype, np.asarray(indices, dtype=np.intp), cells))
            return out
        local = np.full(sum(len(p) for _, p, _ in self._groups), -1, dtype=np.intp)
        local[np.asarray(positions, dtype=np.intp)] = np.arange(len(positions))
        out = []
        for dtype, where, cells in self._groups:
            mine = local[where]
            keep = mine >= 0
            if keep.all():
                out.append((dtype, mine, cells))
            elif keep.any():
                cell = (np.flatnonzero(keep)[:, None] * n + np.arange(n)[None, :]).ravel()
                out.append((dtype, mine[keep], cells.take(pa.array(cell))))
        return out


def _chunks(column: Any) -> list[Any]:
    import pyarrow as pa

    return column.chunks if isinstance(column, pa.ChunkedArray) else [column]


def record_batches(batches: Iterator[pa.RecordBatch], names: Sequence[str]) -> Iterator[Batch]:
    """:class:`Batch` objects of record batches whose columns are ``names`` (in any order)."""
    for batch in batches:
        columns = batch.columns  # batch.column(i) costs more, per column
        if batch.schema.names != list(names):  # a source may order its columns otherwise
            by_name = dict(zip(batch.schema.names, columns))
            columns = [by_name[n] for n in names]
        yield Batch(batch.num_rows, columns=columns)


def wide_csv_batches(table: Any, names: Sequence[str], batch_rows: int, uri: str) -> Iterator[Batch] | None:
    """Batches of a wide CSV file read as same-typed groups (None: not such a file, read it as record
    batches); see :func:`~airflow_aisec.core.io.wide_csv.iter_wide_csv_groups`."""
    from airflow_aisec.core.io import wide_csv

    if getattr(table, "kind", None) != "csv" or not wide_csv.eligible(table, table.path):
        return None
    return _grouped(wide_csv.iter_wide_csv_groups(table, list(names), batch_rows, uri=uri))


def _grouped(parts: Iterator[tuple[int, Any, Any]]) -> Iterator[Batch]:
    for rows, groups, batch in parts:
        yield Batch(rows, groups=groups) if groups is not None else Batch(batch.num_rows, columns=batch.columns)
