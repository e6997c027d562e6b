"""Finding entities in one column of one batch: RE2 candidates over the whole column, whole-cell
shapes decided in bulk, the rest validated cell by cell by the :class:`~._patterns.Detector`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.pii._matches import CellResult, Match, merge_matches
from airflow_aisec.core.gates.pii._table import as_strings, joined_text

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.gates.pii._patterns import Detector
    from airflow_aisec.core.gates.pii._presidio import NlpScanner


#: Entities whose candidate expressions are scanned as one RE2 alternation. One alternation of all ~100
#: entities overflows RE2's DFA budget and falls back to its NFA (5-10x slower than a few small ones).
GROUP_SIZE = 6


@dataclass(frozen=True)
class ColumnPlan:
    """How to scan one column: RE2 candidate expression per entity, and weak entities its name hints.

    ``groups`` are the entities in alternations of :data:`GROUP_SIZE` (entity names, expression).
    """

    name: str
    hinted: frozenset[str]
    regexes: dict[str, str]
    groups: tuple[tuple[tuple[str, ...], str], ...]


def build_plan(detector: Detector, names: Sequence[str]) -> list[ColumnPlan]:
    """One :class:`ColumnPlan` per column name."""
    plans = []
    # Plans depend only on the hinted entities: build each distinct one once (wide tables).
    shared: dict[frozenset[str], tuple[dict[str, str], tuple]] = {}
    for name in names:
        hinted = detector.hinted_entities(name)
        if hinted not in shared:
            regexes = detector.candidate_regexes(hinted)
            order = list(regexes)
            groups = tuple(
                (tuple(order[i:i + GROUP_SIZE]), detector.union_regex({e: regexes[e] for e in order[i:i + GROUP_SIZE]}))
                for i in range(0, len(order), GROUP_SIZE))
            shared[hinted] = (regexes, groups)
        regexes, groups = shared[hinted]
        plans.append(ColumnPlan(name=name, hinted=hinted, regexes=regexes, groups=groups))
    return plans


def candidate_masks(strings: pa.Array, plan: ColumnPlan) -> tuple[Any, list[str], Any]:
    """``(positions, order, masks)``: the cells any entity's candidate expression selects, and per entity
    (rows of ``masks``, in ``order``) which of those cells it selects.

    Each group's alternation runs over the whole column; an entity's own expression then runs only
    over its group's hits (a group of one needs no second pass).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    order = list(plan.regexes)
    row = {e: i for i, e in enumerate(order)}
    hits = []
    for entities, regex in plan.groups:
        mask = pc.fill_null(pc.match_substring_regex(strings, regex), False).to_numpy(zero_copy_only=False)
        hits.append((entities, np.flatnonzero(mask)))
    nonempty = [h for _e, h in hits if len(h)]
    positions = np.unique(np.concatenate(nonempty)) if nonempty else np.zeros(0, dtype=np.int64)
    masks = np.zeros((len(order), len(positions)), dtype=bool)
    for entities, where in hits:
        if not len(where):
            continue
        at = np.searchsorted(positions, where)
        if len(entities) == 1:
            masks[row[entities[0]], at] = True
            continue
        sub = strings.take(pa.array(where))
        for entity in entities:
            ok = pc.fill_null(pc.match_substring_regex(sub, plan.regexes[entity]), False)
            masks[row[entity], at] = ok.to_numpy(zero_copy_only=False)
    return positions.astype(np.int64), order, masks


class ChecksumTally(dict):
    """Per checksum entity: ``[cells whose Presidio pattern matched, cells where it validated]``."""

    def add(self, entity: str, candidates: int, valid: int) -> None:
        slot = self.setdefault(entity, [0, 0])
        slot[0] += int(candidates)
        slot[1] += int(valid)

    def add_at(self, entity: str, candidates: Any, valid: Any) -> None:
        """Count checksum candidates and passes given as positions (in the scanned array)."""
        self.add(entity, len(candidates), len(valid))


class PositionTally(ChecksumTally):
    """A :class:`ChecksumTally` that keeps positions, so a scan of several columns laid end to end
    (:func:`detect_columns`) can be split back into per-column counts."""

    def __init__(self) -> None:
        super().__init__()
        self.positions: list[tuple[str, Any, Any]] = []

    def add_at(self, entity: str, candidates: Any, valid: Any) -> None:
        import numpy as np

        super().add_at(entity, candidates, valid)
        self.positions.append((entity, np.asarray(candidates, dtype=np.int64), np.asarray(valid, dtype=np.int64)))

    def split(self, size: int) -> dict[int, ChecksumTally]:
        """Per segment ``position // size``: its own tally."""
        import numpy as np

        per_entity: dict[str, tuple[list, list]] = {}
        for entity, candidates, valid in self.positions:
            slot = per_entity.setdefault(entity, ([], []))
            slot[0].append(candidates)
            slot[1].append(valid)
        out: dict[int, ChecksumTally] = {}
        for entity, kinds in per_entity.items():
            for kind, parts in enumerate(kinds):
                segments, counts = np.unique(np.concatenate(parts) // size, return_counts=True)
                for seg, count in zip(segments.tolist(), counts.tolist()):
                    slot = out.setdefault(seg, ChecksumTally()).setdefault(entity, [0, 0])
                    slot[kind] += count
        return out


#: Scores of whole-cell matches decided in bulk (what Presidio's patterns, validators and context give them).
_BULK_SCORES = {"EMAIL_ADDRESS": 1.0, "IBAN_CODE": 1.0, "CREDIT_CARD": 1.0, "US_BANK_NUMBER": 0.4,
                "US_PASSPORT": 0.4, "PHONE_NUMBER": 0.4}


@dataclass
class ColumnDetections:
    """Detections in one column of one batch.

    Attributes:
        bulk: Per entity, batch indices of cells that the entity fills entirely (decided in bulk).
        cells: Cells checked one by one (and NLP hits): batch index -> (text, result).
        strings: The column as text (for the bulk cells' text, fetched only when asked for).
    """

    bulk: dict[str, Any]
    cells: dict[int, tuple[str, CellResult]]
    strings: Any

    def hits(self) -> dict[str, Any]:
        """Per entity, sorted batch indices of the cells carrying it."""
        import numpy as np

        singles: dict[str, list[int]] = {}
        for i, (_text, cell) in self.cells.items():
            for entity in {m.entity for m in cell.matches}:
                singles.setdefault(entity, []).append(i)
        out = {}
        for entity in set(self.bulk) | set(singles):
            parts = [np.asarray(self.bulk.get(entity, ()), dtype=np.int64),
                     np.asarray(singles.get(entity, ()), dtype=np.int64)]
            merged = np.unique(np.concatenate(parts))
            if len(merged):
                out[entity] = merged
        return out

    def iter_cells(self) -> Iterator[tuple[int, str, CellResult]]:
        """``(batch index, text, result)`` for every cell with matches, in row order."""
        import pyarrow as pa

        per_cell: dict[int, list[str]] = {}
        for entity, ix in self.bulk.items():
            for i in ix.tolist():
                per_cell.setdefault(i, []).append(entity)
        texts = {}
        if per_cell:
            wanted = sorted(per_cell)
            texts = dict(zip(wanted, self.strings.take(pa.array(wanted, pa.int64())).to_pylist()))
        for i in sorted(set(per_cell) | set(self.cells)):
            if i in self.cells:
                text, cell = self.cells[i]
                if i in per_cell:
                    cell = CellResult(matches=merge_matches(cell.matches, [Match(e, 0, len(text), _BULK_SCORES.get(e, 1.0))
                                                                    for e in per_cell[i]]))
            else:
                text = texts[i]
                cell = CellResult(matches=[Match(e, 0, len(text), _BULK_SCORES.get(e, 1.0)) for e in per_cell[i]])
            if cell.matches:
                yield i, text, cell


def detect_column(
    arr: pa.Array,
    plan: ColumnPlan,
    detector: Detector,
    nlp: NlpScanner | None = None,
    tally: ChecksumTally | None = None,
) -> ColumnDetections:
    """Find the entities in one column of one batch.

    RE2 selects candidate cells over the whole column. Whole-cell values whose Presidio
    verdict follows from their shape are decided in bulk (:func:`_decide_in_bulk`); only the
    rest reach Presidio's validators one by one. ``tally`` counts checksum candidates and
    passes (for the chance correction).
    """
    import numpy as np
    import pyarrow as pa

    tally = ChecksumTally() if tally is None else tally
    strings = as_strings(arr, plan.name)
    bulk: dict[str, Any] = {}
    cells: dict[int, tuple[str, CellResult]] = {}
    if plan.groups:
        positions, order, masks = candidate_masks(strings, plan)
        if len(positions):
            sub = strings.take(pa.array(positions))
            pre: dict[int, list[str]] = {}  # whole-cell ids decided in bulk in cells that go one by one
            decided, done = _decide_in_bulk(sub, order, masks, plan, detector, tally, positions, pre)
            bulk = {e: positions[j] for e, j in decided.items()}
            _prune_digit_runs(sub, order, masks, masks.any(axis=0) & ~done, tally, positions, pre)
            one_by_one = np.flatnonzero(masks.any(axis=0) & ~done)
            if len(one_by_one):
                texts = sub.take(pa.array(one_by_one)).to_pylist()
                # Tallied once per entity after the loop (a call per cell dominated wide scans).
                seen: dict[str, tuple[list[int], list[int]]] = {}
                for j, text in zip(one_by_one.tolist(), texts):
                    cell = detector.detect(text, [order[k] for k in np.flatnonzero(masks[:, j])], plan.hinted)
                    if j in pre:
                        cell.matches = merge_matches(cell.matches, [Match(e, 0, len(text), 1.0) for e in pre[j]])
                    here = int(positions[j])
                    if cell.checksum_candidates:
                        found = cell.entities
                        for entity in cell.checksum_candidates:
                            slot = seen.setdefault(entity, ([], []))
                            slot[0].append(here)
                            if entity in found:
                                slot[1].append(here)
                    if cell.matches:
                        cells[here] = (text, cell)
                for entity, (candidates, valid) in seen.items():
                    tally.add_at(entity, candidates, valid)
    if nlp is not None:
        for i, text, matches in nlp.detect_array(strings):
            if i in cells:
                cells[i][1].matches = merge_matches(cells[i][1].matches, matches)
            else:
                cells[i] = (text, CellResult(matches=list(matches)))
    return ColumnDetections(bulk=bulk, cells=cells, strings=strings)


#: Cells laid end to end in one :func:`detect_columns` pass (bounds the extra copy).
MAX_CELLS_PER_PASS = 1 << 18


def detect_columns(
    batch: pa.RecordBatch,
    plans: Sequence[ColumnPlan],
    detector: Detector,
    nlp: NlpScanner | None = None,
) -> Iterator[tuple[ColumnPlan, dict[str, Any], ChecksumTally]]:
    """:func:`detect_column` for many columns of one batch, with the same results, in few passes.

    Columns with the same plan (all but the few whose names hint weak entities) are laid end to
    end and scanned as one array, so the per-call cost of the RE2 scans (compiling the expression)
    is paid per group of columns, not per column: a table of 100,000 columns x 5 rows costs about
    what 5 columns x 100,000 rows cost. Every decision is per cell, so nothing changes but the
    number of calls.

    Yields:
        Per column: its plan, per entity the sorted batch indices of cells carrying it, and its
        checksum tally.
    """
    n = batch.num_rows
    for members in joint_passes([plan.hinted for plan in plans], n):
        chunk = [plans[k] for k in members]
        if len(chunk) == 1 or n == 0:
            for plan in chunk:
                tally = ChecksumTally()
                yield plan, detect_column(batch.column(plan.name), plan, detector, nlp, tally).hits(), tally
            continue
        joined = joined_text([batch.column(p.name) for p in chunk], [p.name for p in chunk])
        tally = PositionTally()
        hits = detect_column(joined, chunk[0], detector, nlp, tally).hits()
        tallies = tally.split(n)
        per_column: dict[int, dict[str, Any]] = {}
        for entity, where in hits.items():
            segment = where // n
            bounds = segment.searchsorted(range(len(chunk) + 1))
            for i in range(len(chunk)):
                lo, hi = bounds[i], bounds[i + 1]
                if hi > lo:
                    per_column.setdefault(i, {})[entity] = where[lo:hi] - i * n
        for i, plan in enumerate(chunk):
            yield plan, per_column.get(i, {}), tallies.get(i, ChecksumTally())


def detections_by_column(
    columns: Sequence[tuple[pa.Array, ColumnPlan]],
    detector: Detector,
    nlp: NlpScanner | None = None,
) -> list[list[tuple[int, str, CellResult]]]:
    """:func:`iter_column_detections` of each (column, plan) of one batch, in few passes: columns with
    the same hint set laid end to end, as :func:`detect_columns` does for counting (a redaction of a
    wide table rewrites hundreds of columns; a detection pass costs its RE2 compilations)."""
    out: list[list[tuple[int, str, CellResult]]] = [[] for _ in columns]
    if not columns:
        return out
    n = len(columns[0][0])
    for chunk in joint_passes([plan.hinted for _arr, plan in columns], n):
        if len(chunk) == 1 or n == 0:
            for k in chunk:
                out[k] = list(iter_column_detections(columns[k][0], columns[k][1], detector, nlp))
            continue
        joined = joined_text([columns[k][0] for k in chunk], [columns[k][1].name for k in chunk])
        for i, text, cell in iter_column_detections(joined, columns[chunk[0]][1], detector, nlp):
            out[chunk[i // n]].append((i % n, text, cell))
    return out


def joint_passes(hinted: Sequence[frozenset[str]], rows: int) -> Iterator[list[int]]:
    """The columns (indices into ``hinted``, their hint sets) scanned in one pass each: the same hint
    set (the same plan), at most :data:`MAX_CELLS_PER_PASS` cells of ``rows`` rows per column."""
    groups: dict[frozenset[str], list[int]] = {}
    for k, hint in enumerate(hinted):
        groups.setdefault(hint, []).append(k)
    per_pass = max(1, MAX_CELLS_PER_PASS // max(rows, 1))
    for members in groups.values():
        for start in range(0, len(members), per_pass):
            yield members[start:start + per_pass]


def iter_column_detections(
    arr: pa.Array,
    plan: ColumnPlan,
    detector: Detector,
    nlp: NlpScanner | None = None,
    tally: ChecksumTally | None = None,
) -> Iterator[tuple[int, str, CellResult]]:
    """``(index in batch, cell text, result)`` for the cells of one column with matches (see :func:`detect_column`)."""
    yield from detect_column(arr, plan, detector, nlp, tally).iter_cells()


# Whole-cell shapes whose Presidio result is known without running its regexes cell by cell.
_WHOLE_EMAIL = (r"^[A-Za-z0-9_](?:[A-Za-z0-9._%+\-]*[A-Za-z0-9_%+\-])?@"
                r"[A-Za-z0-9_]+(?:-+[A-Za-z0-9_]+)*(?:\.[A-Za-z0-9_]+(?:-+[A-Za-z0-9_]+)*)+$")
_WHOLE_DIGITS = r"^[0-9]{8,17}$"
# Presidio's card pattern on a bare digit string: 13-17 digits starting with 1, 3, 4, 50-55 or 6,
# but not 13 digits starting with 1 (its look-ahead).
_WHOLE_CARD_SHAPE = r"^(?:[346][0-9]{12,16}|5[0-5][0-9]{11,15}|1[0-9]{13,16})$"
_WHOLE_PASSPORT_NG = r"^[A-Za-z][0-9]{8}$"
_WHOLE_NANP = r"^(?:\+1[ .-]?|1[ .-])?(?:\([2-9][0-9]{2}\)|[2-9][0-9]{2})[ .-]?[0-9]{3}[ .-]?[0-9]{4}$"
_WHOLE_IBAN = r"^[A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,3})?$"


def _decide_in_bulk(sub: pa.Array, order: list[str], masks: Any, plan: ColumnPlan,
                    detector: Detector, tally: ChecksumTally, positions: Any,
                    pre: dict[int, list[str]] | None = None) -> tuple[dict[str, Any], Any]:
    """Presidio's verdict for whole-cell values of a known shape, computed for many cells at once.

    * an e-mail address filling the cell: Presidio's e-mail pattern matches all of it and its
      validator only looks at the domain, so each distinct domain is validated once (a URL
      match inside it would be a by-product);
    * an IBAN filling the cell: Presidio's IBAN recognizer tries the longest match first, so a
      cell that passes its ``validate_result`` (mod 97 and the country's format) is one IBAN
      (digit groups inside it would be by-products);
    * a digit string filling the cell: Presidio's card pattern matches it whole exactly when it
      has 13-17 digits, starts with 1, 3, 4, 50-55 or 6 and is not 13 digits starting with 1; the
      card then stands or falls with Luhn (vectorized). Bank account (8-17 digits) and passport
      (9 digits, or a letter and 8 digits) readings are Presidio's very weak patterns: accepted
      exactly when the column name gives them context (a bare number has no words around it);
    * a North American number filling the cell: Presidio's first phone region (US) parses it to
      country code 1 and its 10 digits, and phonenumbers' validity for +1 is evaluated in bulk
      from its metadata (:func:`~airflow_aisec.core.gates.pii._validators.nanp_valid`); invalid ones go
      one by one (another region may still accept them).

    Cells that need anything else (an SSN or phone reading of digits, an invalid domain or
    checksum, other candidates) are left to :meth:`Detector.detect`.

    Returns:
        Per entity, the indices (into ``sub``) of cells it fills entirely; and a mask of every
        decided cell (with or without an entity).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from airflow_aisec.core.gates.pii._validators import luhn_valid_arrow, nanp_valid

    out: dict[str, list] = {}
    n = len(sub)
    done = np.zeros(n, dtype=bool)
    k = {e: i for i, e in enumerate(order)}
    any_cand = masks.any(axis=0)
    lengths = pc.utf8_length(sub).to_numpy(zero_copy_only=False)

    def others(allowed: set[str]):
        rest = [masks[i] for e, i in k.items() if e not in allowed]
        return np.logical_or.reduce(rest) if rest else np.zeros(n, dtype=bool)

    def shape(regex: str, sel):
        idx = np.flatnonzero(sel)
        if len(idx):
            ok = pc.match_substring_regex(sub.take(pa.array(idx)), regex).to_numpy(zero_copy_only=False)
            sel = np.zeros(n, dtype=bool)
            sel[idx[ok]] = True
        return sel

    def accept(entity: str, idx) -> None:
        out.setdefault(entity, []).append(np.asarray(idx, dtype=np.int64))

    if "EMAIL_ADDRESS" in k:
        idx = np.flatnonzero(shape(_WHOLE_EMAIL, masks[k["EMAIL_ADDRESS"]] & ~others({"EMAIL_ADDRESS", "URL"})))
        if len(idx):
            domains = pc.utf8_lower(pc.extract_regex(sub.take(pa.array(idx)), r"@(?P<d>[^@]+)$").field("d"))
            unique = pc.unique(domains).to_pylist()
            good = pa.array([d for d in unique if detector.email_domain_valid(d)], pa.string())
            ok = pc.is_in(domains, value_set=good).to_numpy(zero_copy_only=False)
            accept("EMAIL_ADDRESS", idx[ok])
            done[idx[ok]] = True

    if "IBAN_CODE" in k:
        inner = {"IBAN_CODE", "CREDIT_CARD", "PHONE_NUMBER", "US_BANK_NUMBER", "US_PASSPORT", "US_SSN"}
        idx = np.flatnonzero(shape(_WHOLE_IBAN, masks[k["IBAN_CODE"]] & ~others(inner)))
        if len(idx):
            ok = np.array([detector.iban_valid(t) for t in sub.take(pa.array(idx)).to_pylist()], dtype=bool)
            accept("IBAN_CODE", idx[ok])
            done[idx[ok]] = True

    bulk_digit = {"CREDIT_CARD", "US_BANK_NUMBER", "US_PASSPORT"}
    if k.keys() & bulk_digit:
        sel = shape(_WHOLE_DIGITS, any_cand & ~others(bulk_digit) & ~done)
        idx = np.flatnonzero(sel)
        if len(idx):
            done[idx] = True
            luhn = np.zeros(n, dtype=bool)
            if "CREDIT_CARD" in k:
                card = shape(_WHOLE_CARD_SHAPE, sel & masks[k["CREDIT_CARD"]])
                card_idx = np.flatnonzero(card)
                if len(card_idx):
                    luhn[card_idx] = luhn_valid_arrow(sub.take(pa.array(card_idx)))
                    tally.add_at("CREDIT_CARD", positions[card_idx], positions[card_idx[luhn[card_idx]]])
            bank = (sel & masks[k["US_BANK_NUMBER"]] if "US_BANK_NUMBER" in k and "US_BANK_NUMBER" in plan.hinted
                    else np.zeros(n, dtype=bool))
            passport = (sel & masks[k["US_PASSPORT"]] & (lengths == 9)
                        if "US_PASSPORT" in k and "US_PASSPORT" in plan.hinted else np.zeros(n, dtype=bool))
            accept("CREDIT_CARD", np.flatnonzero(luhn))
            accept("US_BANK_NUMBER", np.flatnonzero(bank))
            accept("US_PASSPORT", np.flatnonzero(passport))

    if "PHONE_NUMBER" in k:
        idx = np.flatnonzero(shape(_WHOLE_NANP, masks[k["PHONE_NUMBER"]] & ~others({"PHONE_NUMBER"}) & ~done))
        if len(idx):
            values = sub.take(pa.array(idx))
            digits = pc.utf8_slice_codeunits(pc.replace_substring_regex(values, r"[^0-9]", ""), -10)
            valid = nanp_valid(digits)
            # Bare digit runs are Presidio-weak: they count only with the column name as context.
            formatted = pc.match_substring_regex(values, r"[-+(). ]").to_numpy(zero_copy_only=False)
            hinted = "PHONE_NUMBER" in plan.hinted
            accept("PHONE_NUMBER", idx[valid & (formatted | hinted)])
            done[idx[valid]] = True

    if "US_PASSPORT" in k and "US_PASSPORT" in plan.hinted:
        idx = np.flatnonzero(shape(_WHOLE_PASSPORT_NG, masks[k["US_PASSPORT"]] & ~others({"US_PASSPORT"}) & ~done))
        accept("US_PASSPORT", idx)
        done[idx] = True
    if pre is not None:  # last: it clears mask bits the decisions above read
        _decide_national_ids(sub, k, masks, plan, tally, positions, shape, others, accept, done, pre)
    return {e: np.unique(np.concatenate(parts)) for e, parts in out.items()}, done


def _decide_national_ids(sub: Any, k: dict[str, int], masks: Any, plan: ColumnPlan, tally: ChecksumTally,
                         positions: Any, shape: Any, others: Any, accept: Any, done: Any,
                         pre: dict[int, list[str]]) -> None:
    """Whole-cell European ids (:mod:`._national`): the cell is exactly one value of one of the entity's
    patterns, so the entity's verdict is its check digits, computed for all such cells at once
    (:func:`~._checksums.valid_many`); a weak pattern (bare digits) counts only in a hinted column.

    A cell that other entities' candidates also select still goes one by one for those, without this
    entity (its mask bit is cleared); its id match (the whole cell, score 1.0) is merged in there
    (``pre``), which resolves overlaps exactly as a one-by-one run over all entities would."""
    import numpy as np
    import pyarrow as pa

    from airflow_aisec.core.gates.pii._checksums import valid_many
    from airflow_aisec.core.gates.pii._national import whole_cell_shapes

    for entity, shapes in whole_cell_shapes().items():
        if entity not in k:
            continue
        for regex, weak in shapes:
            if weak and entity not in plan.hinted:
                continue
            idx = np.flatnonzero(shape(regex, masks[k[entity]] & ~done))
            if not len(idx):
                continue
            ok = np.asarray(valid_many(entity, sub.take(pa.array(idx)).to_pylist()), dtype=bool)
            tally.add_at(entity, positions[idx], positions[idx[ok]])
            alone = ~others({entity})[idx]
            accept(entity, idx[ok & alone])
            done[idx[alone]] = True
            shared = idx[~alone]
            masks[k[entity], shared] = False
            for j in shared[ok[~alone]].tolist():
                pre.setdefault(j, []).append(entity)


def _prune_digit_runs(sub: Any, order: list[str], masks: Any, live: Any, tally: ChecksumTally, positions: Any,
                      pre: dict[int, list[str]]) -> None:
    """Cells made only of digits: clear the candidate bit of a checksum entity when no reading of the cell
    as that entity can pass Presidio's validator (:func:`~._validators.digit_run_may_validate`, numpy), so
    a column of random 16-digit references (PESEL windows, Luhn) no longer goes through Python cell by
    cell. The checksum tally counts them as candidates that failed, as the one-by-one path would."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from airflow_aisec.core.gates.pii._validators import (
        DIGIT_RUN_ENTITIES,
        digit_matrix,
        digit_run_may_validate,
    )

    rows = [k for k, e in enumerate(order) if e in DIGIT_RUN_ENTITIES]
    if not rows:
        return
    sel = live & np.logical_or.reduce([masks[k] for k in rows])
    if pre:  # their whole-cell id is merged in one by one
        sel[np.fromiter(pre, dtype=np.int64)] = False
    idx = np.flatnonzero(sel)
    if not len(idx):
        return
    values = sub.take(pa.array(idx))
    idx = idx[pc.match_substring_regex(values, r"^[0-9]+$").to_numpy(zero_copy_only=False)]
    if not len(idx):
        return
    values = sub.take(pa.array(idx))
    lengths = pc.utf8_length(values).to_numpy(zero_copy_only=False)
    card_shape = pc.match_substring_regex(values, _WHOLE_CARD_SHAPE).to_numpy(zero_copy_only=False)
    for length in np.unique(lengths):
        part = np.flatnonzero(lengths == length)
        at = idx[part]
        mat = digit_matrix(values.take(pa.array(part)))
        for k in rows:
            entity = order[k]
            mine = masks[k, at]
            if not mine.any():
                continue
            ok = digit_run_may_validate(entity, mat[mine])
            drop = at[mine][~ok]
            # Presidio's card pattern is narrower than its RE2 candidate: count the cells it matches.
            counted = drop[card_shape[part][mine][~ok]] if entity == "CREDIT_CARD" else drop
            tally.add_at(entity, positions[counted], [])
            masks[k, drop] = False
