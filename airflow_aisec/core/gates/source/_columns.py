"""What the poisoning accumulators read from a record batch or a schema, built once rather than once
per accumulator: for a 100,000-column table each of ``batch.columns``, ``schema.types`` and a
name -> position map costs tens of milliseconds to a tenth of a second."""

from __future__ import annotations

from collections.abc import Sequence
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
    """Names, types and numeric-ness of a schema's columns (decided per distinct type, not per column)."""

    def __init__(self, schema: pa.Schema):
        import numpy as np

        self.names: list[str] = schema.names
        self.types: list[Any] = schema.types
        numeric = np.zeros(len(self.types), dtype=bool)
        for data_type, positions in type_groups(self.types):
            numeric[positions] = is_numeric(data_type)
        self.numeric: list[bool] = numeric.tolist()
        self._position: dict[str, int] | None = None

    @property
    def position(self) -> dict[str, int]:
        if self._position is None:
            self._position = {name: i for i, name in enumerate(self.names)}
        return self._position

    def type_of(self, name: str) -> Any:
        return self.types[self.position[name]]

    def numeric_names(self, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
        return [n for n, ok in zip(self.names, self.numeric) if ok and n not in exclude]


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


def view_of(batch: pa.RecordBatch | BatchColumns) -> BatchColumns:
    return batch if isinstance(batch, BatchColumns) else BatchColumns(batch)


def float_matrix(batch: pa.RecordBatch | BatchColumns, names: Sequence[str]) -> np.ndarray:
    """Columns ``names`` of a batch as a (columns x rows) float64 matrix, NaN for nulls.

    Columns of one type are cast in one call, so a wide table pays per type, not per column.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    view = view_of(batch)
    n = view.num_rows
    position, types, columns = view.position, view.types, view.columns
    indices = [position[name] for name in names]
    out = np.empty((len(names), n), dtype=np.float64)
    groups: dict[Any, list[int]] = {}
    for j, i in enumerate(indices):
        groups.setdefault(types[i], []).append(j)
    for members in groups.values():
        arr = (pa.concat_arrays([columns[indices[j]] for j in members]) if len(members) > 1
               else columns[indices[members[0]]])
        values = pc.fill_null(arr.cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)
        out[members] = values.reshape(len(members), n)
    return out
