"""Counting entities for many columns at once: per-column work only where something was found.

A block of columns (:mod:`airflow_aisec.core.io.column_blocks`) is laid out as one column-major text
array per column-name hint set; :func:`~._detect.detect_column` scans it in a few passes and its hits
go back to their columns by offset (``position // rows``). Columns without hits cost nothing beyond
their cells, so a table of 100,000 columns x 5 rows costs about what 5 columns x 100,000 rows cost.
Every decision is per cell: the counts equal a column-by-column scan's.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.pii import _detect
from airflow_aisec.core.gates.pii._table import as_strings

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.gates.pii._patterns import Detector
    from airflow_aisec.core.gates.pii._scan import ColumnStats
    from airflow_aisec.core.io.column_blocks import ColumnBlock


def _literal(glob: str) -> str | None:
    """A run of characters every name matching ``glob`` (fnmatch, case-sensitive) contains, or None
    when the glob has none that is sure (a character class, or only wildcards)."""
    if "[" in glob or "]" in glob:
        return None
    return max(re.split(r"[*?]", glob), key=len) or None


def _maybe_hinted(detector: Detector, normalised: pa.Array) -> list[bool] | None:
    """Per normalised name, whether a column hint could match it (None: cannot tell, check them all).

    A name matches a glob only if it holds the glob's literal run, and a literal with a character
    no normalised name has (``[0-9a-z_]``) matches nothing; the entity specs' hints are plain
    expressions RE2 runs as they are. One RE2 pass over all names; the few that pass are checked
    exactly by :meth:`~._patterns.Detector.hinted_entities`.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    globs, expressions = detector.hint_sources()
    parts = []
    for glob in globs:
        literal = _literal(glob)
        if literal is None:
            return None
        if re.fullmatch(r"[0-9a-z_]+", literal):
            parts.append(literal)
    parts += [f"(?:{expression})" for expression in expressions]
    if not parts:
        return [False] * len(normalised)
    try:
        return pc.match_substring_regex(normalised, "|".join(parts)).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _normalised(names: Sequence[str]) -> pa.Array:
    """:func:`~._patterns.normalise_column_name` of every name, vectorized for ASCII names."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from airflow_aisec.core.gates.pii._patterns import normalise_column_name

    arr = pa.array([str(n) for n in names], pa.string())
    # ASCII only: there str.lower() and the camel-case split equal their RE2 counterparts.
    out = pc.replace_substring_regex(arr, r"([a-z0-9])([A-Z])", r"\1_\2")
    out = pc.replace_substring_regex(pc.ascii_lower(out), r"[^0-9a-z]+", "_")
    out = pc.utf8_trim(out, "_")
    other = pc.indices_nonzero(pc.invert(pc.string_is_ascii(arr)))
    if len(other):
        fixed = out.to_pylist()
        for i in other.to_pylist():
            fixed[i] = normalise_column_name(names[i])
        out = pa.array(fixed, pa.string())
    return out


def hinted_sets(detector: Detector, names: Sequence[str]) -> list[frozenset[str]]:
    """``detector.hinted_entities(name)`` for every name; names no hint can match (most) cost no Python."""
    maybe = _maybe_hinted(detector, _normalised(names)) if names else []
    if maybe is None:
        return [detector.hinted_entities(n) for n in names]
    none: frozenset[str] = frozenset()
    out = [none] * len(names)
    for i in [i for i, m in enumerate(maybe) if m]:
        out[i] = detector.hinted_entities(names[i])
    return out


class BulkPlan:
    """The columns to scan grouped by hint set, each group with its :class:`~._detect.ColumnPlan`."""

    def __init__(self, detector: Detector, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        hints = hinted_sets(detector, self.columns)
        unhinted = [i for i, h in enumerate(hints) if not h]  # most columns: one group
        groups: dict[frozenset[str], list[int]] = {frozenset(): unhinted} if unhinted else {}
        for i in [i for i, h in enumerate(hints) if h]:
            groups.setdefault(hints[i], []).append(i)
        self.groups = []
        for members in groups.values():
            # The plan depends on the hint set only: the group's first column stands for all.
            self.groups.append((_detect.build_plan(detector, [self.columns[members[0]]])[0], members))


def _text_of(block: ColumnBlock, columns: Sequence[str], members: list[int]) -> tuple[pa.Array, list[int]]:
    """The cells of block columns ``members`` (indices into ``block.columns``) column after column,
    as text, and the order of the columns in it (indices into ``columns``)."""
    import numpy as np
    import pyarrow as pa

    n = block.rows
    if block.cells is not None:
        order = [block.columns.start + k for k in members] if block.columns.start else list(members)
        if len(members) == len(block.columns):
            return block.cells, order
        take = (np.asarray(members, dtype=np.int64)[:, None] * n + np.arange(n, dtype=np.int64)[None, :]).ravel()
        return block.cells.take(pa.array(take)), order
    types, columns_of = block.batch.schema.types, block.batch.columns  # one call each, not one per column
    by_type: dict[Any, list[int]] = {}
    for k in members:
        by_type.setdefault(types[k], []).append(k)
    parts, order = [], []
    for dtype, ks in by_type.items():
        arrays = [columns_of[k] for k in ks]
        if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
            parts += arrays  # text already: copied once, by the concatenation below
        elif pa.types.is_integer(dtype):  # one cast for all of them (integers become their decimal text)
            parts.append(as_strings(pa.concat_arrays(arrays) if len(arrays) > 1 else arrays[0]))
        else:
            parts.extend(as_strings(a, columns[block.columns[k]]) for a, k in zip(arrays, ks))
        order += [block.columns[k] for k in ks]
    if len(parts) == 1:
        return parts[0], order
    if any(p.type != parts[0].type for p in parts):  # string next to large_string
        parts = [p.cast(pa.large_string()) for p in parts]
    return pa.concat_arrays(parts), order


def tally_block(stats: dict[str, ColumnStats], block: ColumnBlock, rows: Any, plan: BulkPlan,
                detector: Detector, nlp: Any) -> None:
    """Count one block into ``stats`` (created for columns with something to count); ``rows``
    (numpy int64) are the table positions of its rows."""
    import numpy as np

    from airflow_aisec.core.gates.pii._scan import MAX_ROW_POSITIONS, ColumnStats, EntityStats

    n = block.rows
    if n == 0:
        return
    lo_col, hi_col = block.columns.start, block.columns.stop
    per_pass = max(1, _detect.MAX_CELLS_PER_PASS // n)
    for column_plan, members in plan.groups:
        # members ascend: the block's share of them is one slice, shifted to block indices.
        share = members[bisect.bisect_left(members, lo_col):bisect.bisect_left(members, hi_col)]
        here = [c - lo_col for c in share] if lo_col else share
        for lo in range(0, len(here), per_pass):
            cells, order = _text_of(block, plan.columns, here[lo:lo + per_pass])
            tally = _detect.PositionTally()
            hits = _detect.detect_column(cells, column_plan, detector, nlp, tally).hits()
            for entity, where in hits.items():
                segment = where // n
                cuts = np.flatnonzero(np.diff(segment)) + 1
                for part in np.split(where, cuts):
                    seg = int(part[0] // n)
                    name = plan.columns[order[seg]]
                    col = stats.get(name) or stats.setdefault(name, ColumnStats())  # created on a first hit
                    st = col.entities.setdefault(entity, EntityStats())
                    st.count += len(part)
                    room = MAX_ROW_POSITIONS - len(st.rows)
                    if room > 0:
                        st.rows.extend(int(r) for r in rows[part[:room] - seg * n])
            for seg, counted in tally.split(n).items():
                name = plan.columns[order[seg]]
                col = stats.get(name) or stats.setdefault(name, ColumnStats())
                for entity, (candidates, valid) in counted.items():
                    col.checksum_candidates[entity] = col.checksum_candidates.get(entity, 0) + candidates
                    col.checksum_valid[entity] = col.checksum_valid.get(entity, 0) + valid
