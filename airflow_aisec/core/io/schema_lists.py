"""A wide schema's column names and types as Python lists, listed once per schema object.

pyarrow builds ``schema.names`` and ``schema.types`` anew on every access: ~35 ms each for 100,000
columns, and a gate asks for them at every step (selecting columns, checking named ones, grouping
by type). The readers remember the lists of the schemas they make (:func:`remember`), and anyone
else lists a wide schema once (:func:`schema_lists`). Narrow schemas are listed as before: cheap,
and not worth an entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")

#: From this many columns a schema's lists are remembered.
WIDE_SCHEMA = 1024
#: Columns a table may have at most. Every gate's memory has a per-column part (~500 bytes for pii,
#: ~3 kB for a parsed Parquet footer): a 32 MB CSV header of 3,000,000 names took 1.5 GB, and a wider
#: one would end in the OOM killer, not in an error. 2.5 times the widest bench table.
MAX_COLUMNS = 250_000
_KEPT = 4
#: (schema, names, types), newest first. A list replaced whole, never changed in place: threads
#: reading it see one version or the other.
_KNOWN: list[tuple[pa.Schema, list[str], list[Any]]] = []


def check_width(columns: int, uri: str) -> None:
    """Refuse a table of more than :data:`MAX_COLUMNS` columns.

    Raises:
        InputDataError: naming the file and its number of columns.
    """
    if columns > MAX_COLUMNS:
        from airflow_aisec.exceptions import InputDataError

        raise InputDataError(f"{uri}: {columns:,} columns, more than the {MAX_COLUMNS:,} a table may have")


def remember(schema: pa.Schema, names: list[str], types: list[Any]) -> pa.Schema:
    """Keep ``schema``'s lists (made by its reader, which had them anyway); returns ``schema``."""
    if len(names) >= WIDE_SCHEMA:
        _KNOWN[:] = [(schema, names, types), *[k for k in _KNOWN if k[0] is not schema][: _KEPT - 1]]
    return schema


def schema_lists(schema: pa.Schema) -> tuple[list[str], list[Any]]:
    """``(schema.names, schema.types)``, listed once per wide schema object.

    The lists are shared by every caller: read them, never change them.
    """
    for known, names, types in _KNOWN:
        if known is schema:  # identity: the entry holds the schema, so its id is not reused meanwhile
            return names, types
    names, types = schema.names, schema.types
    remember(schema, names, types)
    return names, types


def column_names(schema: pa.Schema) -> list[str]:
    """``schema.names`` (shared: read it, never change it)."""
    return schema_lists(schema)[0]


def column_types(schema: pa.Schema) -> list[Any]:
    """``schema.types`` (shared: read it, never change it)."""
    return schema_lists(schema)[1]


def type_names(types: list[Any]) -> list[str]:
    """``str(t)`` of each type, once per type object (a wide reader's columns share a few: 100,000 str()
    calls cost ~0.3 s)."""
    text: dict[int, str] = {}
    out = []
    for t in types:  # ``types`` keeps every object alive: an id is not reused meanwhile
        found = text.get(id(t))
        if found is None:
            found = text[id(t)] = str(t)
        out.append(found)
    return out


class ColumnLists:
    """A table's column names and types, and its Arrow schema, each made only when first asked for.

    A wide CSV reader has the lists and makes the schema from them (100,000 fields: ~50 ms) only for
    a caller that needs it: a gate reading three columns of the file never does. A Parquet reader has
    the schema and lists it only when asked (:func:`schema_lists`).
    """

    __slots__ = ("_made", "_names", "_schema", "_types")

    def __init__(self, names: list[str] | None = None, types: list[Any] | None = None, *,
                 schema: pa.Schema | None = None) -> None:
        if schema is None and (names is None or types is None or len(names) != len(types)):
            raise ValueError("ColumnLists needs a schema, or names and types of one length")
        self._names, self._types, self._schema = names, types, schema
        self._made = False  # the schema was made here, from the lists

    @classmethod
    def of(cls, schema: pa.Schema) -> ColumnLists:
        return cls(schema=schema)

    def _lists(self) -> tuple[list[str], list[Any]]:
        if self._names is None or self._types is None:
            self._names, self._types = schema_lists(self._schema)  # type: ignore[arg-type]
        return self._names, self._types

    @property
    def names(self) -> list[str]:
        """Column names (shared: read them, never change them)."""
        return self._lists()[0]

    @property
    def types(self) -> list[Any]:
        """Column types (shared: read them, never change them)."""
        return self._lists()[1]

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema (made once; its lists are the same objects as :attr:`names` and :attr:`types`)."""
        if self._schema is None:
            import pyarrow as pa

            names, types = self._lists()
            # (name, type) pairs: cheaper than 100k pa.field calls. Two threads may both make it:
            # the same schema, and the last one kept.
            self._schema = remember(pa.schema(list(zip(names, types))), names, types)
            self._made = True
        return self._schema

    @property
    def plain(self) -> bool:
        """Whether the schema is (or will be) made from the lists alone: every field nullable, no
        metadata. A reader's own schema (Parquet's footer) may carry more than the lists."""
        return self._names is not None and (self._schema is None or self._made)

    def __len__(self) -> int:
        return len(self._names) if self._names is not None else len(self._schema)  # type: ignore[arg-type]


def per_type_id(types: Sequence[Any], decide: Callable[..., T], extra: Sequence[Any] | None = None) -> list[T]:
    """``decide(t)`` (``decide(t, extra[i])`` with ``extra``) for each of ``types``, called once per
    distinct type id (and extra value): a wide table has 100,000 columns of few types. ``decide`` must
    depend on the type id alone, but for dictionaries, which are keyed by the type itself (their value
    type matters)."""
    import pyarrow as pa

    dictionary = pa.dictionary(pa.int8(), pa.string()).id
    ids: list[Any] = [t.id for t in types]  # a listcomp, not a call per type
    if dictionary in ids:
        ids = [t if i == dictionary else i for i, t in zip(ids, types)]
    keys: list[Any] = ids if extra is None else list(zip(ids, extra))
    first = dict(zip(keys, range(len(keys))))  # a column of each distinct key (its last)
    if extra is None:
        value_of = {key: decide(types[i]) for key, i in first.items()}
    else:
        value_of = {key: decide(types[i], key[1]) for key, i in first.items()}
    return list(map(value_of.__getitem__, keys))
