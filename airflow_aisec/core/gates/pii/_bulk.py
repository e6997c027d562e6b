"""Counting entities for many columns at once: per-column work only where something was found.

A block of columns (:mod:`airflow_aisec.core.io.column_blocks`) is laid out as one column-major text
array per column-name hint set; :func:`~._detect.detect_column` scans it in a few passes and its hits
go back to their columns by offset (``position // rows``). Columns without hits cost nothing beyond
their cells, so a table of 100,000 columns x 5 rows costs about what 5 columns x 100,000 rows cost.
Small blocks over the same rows (a wide Parquet file is decoded a few dozen columns at a time) are
laid end to end before a pass (:class:`BlockCounter`). Every decision is per cell: the counts equal a
column-by-column scan's.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.pii import _detect
from airflow_aisec.core.gates.pii._table import as_strings
from airflow_aisec.core.io.column_blocks import end_to_end

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


def _maybe_hinted(detector: Detector, normalised: pa.Array) -> Any:
    """Per normalised name, whether a column hint could match it (None: cannot tell, check them all).

    A name matches a glob only if it holds the glob's literal run, and a literal with a character
    no normalised name has (``[0-9a-z_]``) matches nothing; the entity specs' hints are plain
    expressions RE2 runs as they are. One RE2 pass over all names; the few that pass are checked
    exactly by :meth:`~._patterns.Detector.hinted_entities`.
    """
    import numpy as np
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
        return np.zeros(len(normalised), dtype=bool)
    try:
        return pc.match_substring_regex(normalised, "|".join(parts)).to_numpy(zero_copy_only=False)
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


#: Up to this many names, each is checked in Python: the RE2 pre-filter's compiles cost more (a small table).
FEW_NAMES = 32


def _sparse_hints(detector: Detector, names: Sequence[str]) -> dict[int, frozenset[str]]:
    """``{i: detector.hinted_entities(names[i])}`` for the names some hint matches; names no hint can
    match (most) cost no Python."""
    import numpy as np

    maybe = _maybe_hinted(detector, _normalised(names)) if len(names) > FEW_NAMES else None
    candidates = range(len(names)) if maybe is None else np.flatnonzero(maybe).tolist()
    out = {}
    for i in candidates:
        hinted = detector.hinted_entities(names[i])
        if hinted:
            out[i] = hinted
    return out


def hinted_sets(detector: Detector, names: Sequence[str]) -> list[frozenset[str]]:
    """``detector.hinted_entities(name)`` for every name."""
    out = [frozenset()] * len(names)
    for i, hinted in _sparse_hints(detector, names).items():
        out[i] = hinted
    return out


class BulkPlan:
    """The columns to scan grouped by hint set, each group with its :class:`~._detect.ColumnPlan`."""

    def __init__(self, detector: Detector, columns: Sequence[str]) -> None:
        import numpy as np

        self.columns = list(columns)
        hints = _sparse_hints(detector, self.columns)
        if hints:
            free = np.ones(len(self.columns), dtype=bool)
            free[list(hints)] = False
            unhinted = np.flatnonzero(free).tolist()
        else:
            unhinted = list(range(len(self.columns)))  # most columns: one group
        groups: dict[frozenset[str], list[int]] = {frozenset(): unhinted} if unhinted else {}
        for i in sorted(hints):
            groups.setdefault(hints[i], []).append(i)
        self.groups = []
        for members in groups.values():
            # The plan depends on the hint set only: the group's first column stands for all.
            self.groups.append((_detect.build_plan(detector, [self.columns[members[0]]])[0], members))


class _Text:
    """Cells of columns gathered for one detection pass, and the order of their columns (indices into
    the plan's columns). Integer columns are kept by type and cast to text once, when joined."""

    def __init__(self) -> None:
        self.texts: list[pa.Array] = []
        self.order: list[int] = []
        self.ints: dict[int, tuple[list[pa.Array], list[int]]] = {}  # type id -> (arrays, order)
        self.cells = 0

    def add(self, block: ColumnBlock, columns: Sequence[str], members: list[int]) -> None:
        """Block columns ``members`` (indices into ``block.columns``)."""
        import numpy as np
        import pyarrow as pa

        n, start = block.rows, block.columns.start
        self.cells += n * len(members)
        if block.cells is not None:
            self.order += [start + k for k in members] if start else members
            if len(members) == len(block.columns):
                self.texts.append(block.cells)
            else:
                take = (np.asarray(members, dtype=np.int64)[:, None] * n + np.arange(n, dtype=np.int64)[None, :])
                self.texts.append(block.cells.take(pa.array(take.ravel())))
            return
        # Grouped by Arrow type id, not a Python step per column beyond the id (a block of a wide
        # table has dozens to thousands); for text and integers the id is the whole type.
        types, columns_of = block.batch.schema.types, block.batch.columns  # one call each, not one per column
        ids = [t.id for t in types]
        distinct = set(ids) if len(members) == len(ids) else {ids[k] for k in members}
        if len(distinct) == 1:
            runs = [(types[members[0]], members)]
        else:
            wanted = np.asarray(members, dtype=np.int64)
            kinds = np.asarray(ids, dtype=np.int64)[wanted]
            runs = [(types[int(ks[0])], ks.tolist()) for ks in (wanted[kinds == kind] for kind in sorted(distinct))]
        for dtype, ks in runs:
            arrays = [columns_of[k] for k in ks]
            order = [start + k for k in ks] if start else ks
            if pa.types.is_integer(dtype):
                slot = self.ints.setdefault(dtype.id, ([], []))
                slot[0].extend(arrays)
                slot[1].extend(order)
                continue
            if not (pa.types.is_string(dtype) or pa.types.is_large_string(dtype)):
                arrays = [as_strings(a, columns[start + k]) for a, k in zip(arrays, ks)]
            self.texts += arrays  # copied once, by the concatenation in join()
            self.order += order

    def join(self) -> tuple[pa.Array, list[int]]:
        import pyarrow as pa

        texts, order = list(self.texts), list(self.order)
        for arrays, ints_order in self.ints.values():  # one cast per integer type (their decimal text)
            texts.append(as_strings(pa.concat_arrays(arrays) if len(arrays) > 1 else arrays[0]))
            order += ints_order
        return end_to_end(texts), order


def _text_of(block: ColumnBlock, columns: Sequence[str], members: list[int]) -> tuple[pa.Array, list[int]]:
    """The cells of block columns ``members`` (indices into ``block.columns``) column after column,
    as text, and the order of the columns in it (indices into ``columns``)."""
    text = _Text()
    text.add(block, columns, list(members))
    return text.join()


class BlockCounter:
    """Counts blocks into ``stats`` (created for columns with something to count).

    Text of blocks over the same rows is laid end to end up to :data:`~._detect.MAX_CELLS_PER_PASS`
    cells before one detection pass: a wide Parquet file decodes cheapest a few dozen columns at a
    time (pyarrow's cost per column grows with the columns decoded together), and each pass costs
    a few RE2 compilations, so small blocks must not mean small passes.
    """

    def __init__(self, stats: dict[str, ColumnStats], plan: BulkPlan, detector: Detector, nlp: Any) -> None:
        self.stats, self.plan, self.detector, self.nlp = stats, plan, detector, nlp
        self._pending: dict[int, _Text] = {}  # per hint group
        self._cells = 0
        self._rows: Any = None  # table positions of the pending blocks' rows

    def add(self, block: ColumnBlock, rows: Any) -> None:
        """Count one block; ``rows`` (numpy int64) are the table positions of its rows."""
        n = block.rows
        if n == 0:
            return
        last = self._rows
        if last is not None and not (rows is last or (len(rows) == len(last) and (rows == last).all())):
            self.flush()
        self._rows = rows
        cap = _detect.MAX_CELLS_PER_PASS
        lo_col, hi_col = block.columns.start, block.columns.stop
        per_pass = max(1, cap // n)
        for g, (_column_plan, members) in enumerate(self.plan.groups):
            # members ascend: the block's share of them is one slice, shifted to block indices.
            share = members[bisect.bisect_left(members, lo_col):bisect.bisect_left(members, hi_col)]
            here = [c - lo_col for c in share] if lo_col else share
            for lo in range(0, len(here), per_pass):
                chunk = here[lo:lo + per_pass]
                if self._cells and self._cells + n * len(chunk) > cap:
                    self.flush()
                self._pending.setdefault(g, _Text()).add(block, self.plan.columns, chunk)
                self._cells += n * len(chunk)

    def flush(self) -> None:
        """Count the pending text (call once more after the last block)."""
        pending, self._pending, self._cells = self._pending, {}, 0
        for g, text in pending.items():
            cells, order = text.join()
            self._count(self.plan.groups[g][0], cells, order)

    def _count(self, column_plan: _detect.ColumnPlan, cells: pa.Array, order: list[int]) -> None:
        import numpy as np

        from airflow_aisec.core.gates.pii._scan import MAX_ROW_POSITIONS, ColumnStats, EntityStats

        stats, rows, columns = self.stats, self._rows, self.plan.columns
        n = len(rows)
        tally = _detect.PositionTally()
        hits = _detect.detect_column(cells, column_plan, self.detector, self.nlp, tally).hits()
        for entity, where in hits.items():
            segment = where // n
            cuts = np.flatnonzero(np.diff(segment)) + 1
            for part in np.split(where, cuts):
                seg = int(part[0] // n)
                name = columns[order[seg]]
                col = stats.get(name) or stats.setdefault(name, ColumnStats())  # created on a first hit
                st = col.entities.setdefault(entity, EntityStats())
                st.count += len(part)
                room = MAX_ROW_POSITIONS - len(st.rows)
                if room > 0:
                    st.rows.extend(int(r) for r in rows[part[:room] - seg * n])
        for seg, counted in tally.split(n).items():
            name = columns[order[seg]]
            col = stats.get(name) or stats.setdefault(name, ColumnStats())
            for entity, (candidates, valid) in counted.items():
                col.checksum_candidates[entity] = col.checksum_candidates.get(entity, 0) + candidates
                col.checksum_valid[entity] = col.checksum_valid.get(entity, 0) + valid
