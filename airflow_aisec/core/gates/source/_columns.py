"""What the poisoning accumulators read from a record batch or a schema, built once rather than once
per accumulator: for a 100,000-column table each of ``batch.columns``, ``schema.types`` and a
name -> position map costs tens of milliseconds to a tenth of a second."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


def is_numeric(data_type: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_decimal(data_type)


def type_groups(types: Sequence[Any]) -> list[tuple[Any, np.ndarray]]:
    """``(a type, positions)`` per distinct type id, in order of first appearance.

    Ids, not types, are compared (hashing 100,000 types costs more): an id fixes the type for
    integers, floats, text and binary, and fixes whether it is numeric, but not, e.g., a timestamp's
    unit (callers look at each column of such a group on its own).
    """
    import numpy as np

    ids = np.fromiter((t.id for t in types), dtype=np.int64, count=len(types))
    distinct, first = np.unique(ids, return_index=True)
    order = np.argsort(first)
    return [(types[first[k]], np.flatnonzero(ids == distinct[k])) for k in order]


class SchemaColumns:
    """Names, types and numeric-ness of a table's columns (decided per distinct type, not per column).

    Made from the lists (a wide CSV file's Arrow schema is not made for them: :class:`.ColumnLists`)."""

    def __init__(self, names: list[str], types: list[Any]):
        import numpy as np

        self.names, self.types = names, types  # shared lists: never changed here
        numeric = np.zeros(len(self.types), dtype=bool)
        for data_type, positions in type_groups(self.types):
            numeric[positions] = is_numeric(data_type)
        self.numeric: list[bool] = numeric.tolist()
        self._numeric = numeric
        self._position: dict[str, int] | None = None

    @classmethod
    def of(cls, schema: pa.Schema) -> SchemaColumns:
        from airflow_aisec.core.io.schema_lists import schema_lists

        return cls(*schema_lists(schema))

    @property
    def position(self) -> dict[str, int]:
        if self._position is None:
            self._position = {name: i for i, name in enumerate(self.names)}
        return self._position

    def type_of(self, name: str) -> Any:
        return self.types[self.position[name]]

    def numeric_names(self, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
        import numpy as np

        names = self.names
        return [names[i] for i in np.flatnonzero(self._numeric).tolist() if names[i] not in exclude]

    def has_all(self, names: Sequence[str]) -> bool:
        """Whether every one of ``names`` is a column (by the name -> index map if built, else a set)."""
        known: Any = self._position if self._position is not None else (set(self.names) if names else ())
        return all(name in known for name in names)

    def all_numeric(self, names: Sequence[str]) -> bool:
        """Whether every one of ``names`` (columns of the schema) is numeric."""
        position = self.position
        return bool(self._numeric[[position[n] for n in names]].all()) if names else True


class BatchColumns:
    """A record batch with its column arrays, types and name positions, each built on first use.

    The poisoning accumulators take either a batch or this view; the scan hands them one view per
    batch so that they share the per-column work.
    """

    __slots__ = ("_columns", "_position", "_types", "batch")

    def __init__(self, batch: pa.RecordBatch, position: dict[str, int] | None = None):
        """``position``: name -> index of the batch's columns, when the caller already has it."""
        self.batch = batch
        self._columns: list[Any] | None = None
        self._types: list[Any] | None = None
        self._position = position

    @property
    def num_rows(self) -> int:
        return self.batch.num_rows

    @property
    def columns(self) -> list[Any]:
        if self._columns is None:
            self._columns = self.batch.columns  # batch.column(i) costs more, per column
        return self._columns

    @property
    def types(self) -> list[Any]:
        if self._types is None:
            self._types = self.batch.schema.types
        return self._types

    @property
    def position(self) -> dict[str, int]:
        if self._position is None:
            self._position = {name: i for i, name in enumerate(self.batch.schema.names)}
        return self._position


class GroupColumns:
    """A batch of a wide CSV file as same-typed groups of cells, with no per-column array.

    ``groups``: (type, positions among ``names``, the cells of those columns column after column),
    as :func:`~airflow_aisec.core.io.wide_csv.iter_wide_csv_groups` yields them; slicing them into
    100,000 arrays (and reading those back) was most of a wide file's cost. The poisoning
    accumulators read the groups; any other one gets :attr:`batch`, built on first use.
    """

    __slots__ = ("_batch", "_position", "_where", "groups", "names", "num_rows")

    def __init__(self, rows: int, groups: Sequence[tuple[Any, np.ndarray, Any]], names: Sequence[str],
                 position: Callable[[], dict[str, int]] | None = None):
        """``position``: returns name -> index of ``names``, when the caller keeps one for all batches."""
        self.num_rows = rows
        self.groups = list(groups)
        self.names = names
        self._position = position
        self._batch: Any = None
        self._where: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def position(self) -> dict[str, int]:
        if self._position is None:
            position = {name: i for i, name in enumerate(self.names)}
            self._position = lambda: position
        return self._position()

    @property
    def batch(self) -> pa.RecordBatch:
        """The same record batch :func:`~airflow_aisec.core.io.wide_csv.iter_wide_csv` makes of these rows."""
        if self._batch is None:
            import pyarrow as pa

            n = self.num_rows
            arrays: list[Any] = [None] * len(self.names)
            for _, where, cells in self.groups:
                for k, p in enumerate(where.tolist()):
                    arrays[p] = cells.slice(k * n, n)
            self._batch = pa.RecordBatch.from_arrays(arrays, names=list(self.names))
        return self._batch

    def _located(self) -> tuple[np.ndarray, np.ndarray]:
        """Per column: its group, and its index among the group's columns."""
        import numpy as np

        if self._where is None:
            group = np.empty(len(self.names), dtype=np.intp)
            index = np.empty(len(self.names), dtype=np.intp)
            for g, (_, where, _) in enumerate(self.groups):
                group[where] = g
                index[where] = np.arange(len(where))
            self._where = group, index
        return self._where

    def column(self, position: int) -> Any:
        """The array of the column at ``position`` (one slice of its group's cells)."""
        group, index = self._located()
        k, n = int(index[position]), self.num_rows
        return self.groups[int(group[position])][2].slice(k * n, n)

    def select(self, positions: Sequence[int] | np.ndarray) -> GroupColumns:
        """The columns at ``positions`` (in that order, repeats kept), still by group: a subset's
        cells are taken from its groups' cells, so no column outside it is converted or read."""
        import numpy as np
        import pyarrow as pa

        n = self.num_rows
        wanted = np.asarray(positions, dtype=np.intp)
        if len(wanted) == len(self.names) and np.array_equal(wanted, np.arange(len(wanted))):
            return self
        group, index = self._located()
        mine, k = group[wanted], index[wanted]
        groups = []
        for g, (dtype, where, cells) in enumerate(self.groups):
            js = np.flatnonzero(mine == g)
            if not len(js):
                continue
            if len(js) == len(where) and np.array_equal(k[js], np.arange(len(where))):
                groups.append((dtype, js, cells))  # the whole group, in its order
            else:
                cell = (k[js][:, None] * n + np.arange(n)[None, :]).ravel()
                groups.append((dtype, js, cells.take(pa.array(cell))))
        return GroupColumns(n, groups, [self.names[p] for p in wanted.tolist()])


def positions_of(view: BatchColumns | GroupColumns, names: Sequence[str]) -> list[int]:
    position = view.position
    return [position[name] for name in names]


def view_of(batch: pa.RecordBatch | BatchColumns | GroupColumns) -> BatchColumns | GroupColumns:
    return batch if isinstance(batch, (BatchColumns, GroupColumns)) else BatchColumns(batch)


def float_matrix(batch: pa.RecordBatch | BatchColumns | GroupColumns, names: Sequence[str]) -> np.ndarray:
    """Columns ``names`` of a batch as a (columns x rows) float64 matrix, NaN for nulls.

    Columns of one type are cast in one call, so a wide table pays per type, not per column.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    view = view_of(batch)
    n = view.num_rows
    out = np.empty((len(names), n), dtype=np.float64)
    if isinstance(view, GroupColumns):
        # One cast per type group, straight from the groups' cells (no per-column array).
        for _, where, cells in view.select(positions_of(view, names)).groups:
            values = pc.fill_null(cells.cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)
            out[where] = values.reshape(len(where), n)
        return out
    position, types, columns = view.position, view.types, view.columns
    indices = [position[name] for name in names]
    groups: dict[Any, list[int]] = {}
    for j, i in enumerate(indices):
        groups.setdefault(types[i], []).append(j)
    for members in groups.values():
        arr = (pa.concat_arrays([columns[indices[j]] for j in members]) if len(members) > 1
               else columns[indices[members[0]]])
        values = pc.fill_null(arr.cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)
        out[members] = values.reshape(len(members), n)
    return out
