"""A wide schema's column names and types as Python lists, listed once per schema object.

pyarrow builds ``schema.names`` and ``schema.types`` anew on every access: ~35 ms each for 100,000
columns, and a gate asks for them at every step (selecting columns, checking named ones, grouping
by type). The readers remember the lists of the schemas they make (:func:`remember`), and anyone
else lists a wide schema once (:func:`schema_lists`). Narrow schemas are listed as before: cheap,
and not worth an entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

#: From this many columns a schema's lists are remembered.
WIDE_SCHEMA = 1024
_KEPT = 4
#: (schema, names, types), newest first. A list replaced whole, never changed in place: threads
#: reading it see one version or the other.
_KNOWN: list[tuple[pa.Schema, list[str], list[Any]]] = []


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
