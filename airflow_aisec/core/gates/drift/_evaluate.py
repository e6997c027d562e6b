"""A drift evaluation, streamed: which features, their statistics accumulated batch by batch over the
reference (then, only if needed, once or twice more to place exact quantile edges) and the current
table; findings and metrics from :class:`._judge.Judge` (shared with partition merges).

Inputs are :class:`TableSource` objects (a schema and a way to read record batches of some columns,
as often as needed), so files and in-memory tables take the same path and peak memory does not
depend on the number of rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_aisec.core.collector import collector_paused
from airflow_aisec.core.gates.drift._block import NumericBlock
from airflow_aisec.core.gates.drift._categories import CategoricalBlock
from airflow_aisec.core.gates.drift._columns import Batch, record_batches
from airflow_aisec.core.gates.drift._features import feature_kind
from airflow_aisec.core.gates.drift._judge import DriftEvaluation, Judge, type_changed
from airflow_aisec.core.io.schema_lists import ColumnLists, column_names, per_type_id
from airflow_aisec.core.policy.sections.drift import DriftPolicy
from airflow_aisec.core.stats import split_names
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.result import Finding

#: Rows per record batch when an in-memory table is streamed.
TABLE_BATCH_ROWS = 65_536
#: Passes over the reference to place the quantile edges, at most (each pass refines the sketch
#: bins that hold an edge at least twice: 64 bits of float64 keys bound it; 1 or 2 in practice).
_MAX_REFERENCE_PASSES = 70


@dataclass(frozen=True)
class TableSource:
    """A table to stream: its columns (names and types) and ``batches(columns)``, which may be called
    several times."""

    column_lists: ColumnLists
    batches: Callable[[list[str]], Iterator[pa.RecordBatch]]
    name: str = "<table>"
    #: Another way to read the same cells, as :class:`._columns.Batch` objects (a wide CSV file's
    #: same-typed groups); returns None when it does not apply.
    blocks: Callable[[list[str]], Iterator[Batch] | None] | None = None

    @classmethod
    def from_table(cls, table: pa.Table, name: str = "<table>") -> TableSource:
        def batches(columns: list[str]) -> Iterator[pa.RecordBatch]:
            yield from table.select(columns).to_batches(max_chunksize=TABLE_BATCH_ROWS)

        return cls(column_lists=ColumnLists.of(table.schema), batches=batches, name=name)


def resolve_features(section: DriftPolicy, reference_columns: Sequence[str],
                     features: Sequence[str] | str | None = None) -> list[str]:
    """Features to compare: the policy's and the caller's (union), else all reference columns."""
    chosen = list(dict.fromkeys([*section.features, *split_names(features)]))
    excluded = set(section.exclude)
    chosen = [c for c in (chosen or reference_columns) if c not in excluded]
    if not chosen:
        raise ConfigurationError("no feature left to compare (all excluded)")
    unknown = sorted(set(section.per_feature) - set(chosen)) if section.per_feature else []
    if unknown:
        raise ConfigurationError(f"per_feature names feature(s) that are not compared: {unknown}")
    return chosen


def evaluate_drift(section: DriftPolicy, reference: pa.Table, current: pa.Table, *,
                   features: Sequence[str] | str | None = None) -> DriftEvaluation:
    """Compare two in-memory tables (streamed in batches like files are).

    Raises:
        InputDataError: empty table, missing column, unsupported column type, too many categories.
        ConfigurationError: feature selection problems.
    """
    if reference.num_rows == 0:
        raise InputDataError("the reference table is empty")
    if current.num_rows == 0:
        raise InputDataError("the current table is empty")
    chosen = resolve_features(section, column_names(reference.schema), features)
    for table, which in ((reference, "reference"), (current, "current")):
        names = set(column_names(table.schema))
        missing = [c for c in chosen if c not in names]
        if missing:
            raise InputDataError(f"column(s) not in the {which} table: {', '.join(map(repr, missing))}")
    return evaluate_sources(section, TableSource.from_table(reference, "the reference table"),
                            TableSource.from_table(current, "the current table"), chosen)


class _Plan(NamedTuple):
    """What a pass over a table reads: the columns, and the positions of each unit's among them."""

    names: list[str]
    where: list[list[int]]


def _plan(units: Sequence[tuple[Any, list[str]]]) -> _Plan:
    """The :class:`_Plan` of ``units`` (made once for the passes over both tables, not per batch)."""
    names = list(dict.fromkeys(itertools.chain.from_iterable(cols for _, cols in units)))
    if len(names) == sum(len(cols) for _, cols in units):  # no column twice: consecutive positions
        ends = list(itertools.accumulate(len(cols) for _, cols in units))
        return _Plan(names, [list(range(end - len(cols), end)) for (_, cols), end in zip(units, ends)])
    position = {n: i for i, n in enumerate(names)}
    return _Plan(names, [[position[n] for n in cols] for _, cols in units])


def _stream(source: TableSource, units: Sequence[tuple[Any, list[str]]], step: str, plan: _Plan | None = None) -> int:
    """One pass over ``source``: feed every batch's columns to the accumulators; returns the rows read.

    ``units`` are (accumulator, its columns): a block (``takes_columns``) takes the
    :class:`._columns.Batch` and the positions of its columns in it, a per-feature accumulator its
    one column. ``plan``: :func:`_plan` of ``units``, if made already.
    """
    names, where = plan or _plan(units)
    batches = source.blocks(names) if source.blocks is not None and step != "rescan" else None
    if batches is None:
        batches = record_batches(source.batches(names), names)
    rows = 0
    for batch in batches:
        rows += batch.rows
        for (acc, _), indices in zip(units, where):
            if getattr(acc, "takes_columns", False):
                getattr(acc, step)(batch, indices)
            else:
                getattr(acc, step)(batch.columns(indices)[0])
    return rows


def evaluate_sources(section: DriftPolicy, reference: TableSource, current: TableSource,
                     chosen: Sequence[str]) -> DriftEvaluation:
    """Compare two streamed tables on the ``chosen`` features (present in both, see :func:`resolve_features`).

    Raises:
        InputDataError: empty table, unsupported column type, too many categories, no reference values.
        ConfigurationError: a categorical feature whose thresholds are all KS thresholds.
    """
    with collector_paused():  # its end ages what the check made (core/collector.py)
        return _evaluate_sources(section, reference, current, chosen)


def _evaluate_sources(section: DriftPolicy, reference: TableSource, current: TableSource,
                      chosen: Sequence[str]) -> DriftEvaluation:
    judge = Judge(section)
    findings: list[Finding] = []
    forced = set(section.categorical)
    ref_types = dict(zip(reference.column_lists.names, reference.column_lists.types))
    cur_types = dict(zip(current.column_lists.names, current.column_lists.types))
    found = _kinds([ref_types[n] for n in chosen], [cur_types[n] for n in chosen], [n in forced for n in chosen])
    kinds = dict(zip(chosen, [r_kind for r_kind, _ in found]))  # reference kind of every chosen feature
    if len(kinds) == len(chosen) and set(found) <= _SAME_KINDS:  # every feature read, once (the usual case)
        numeric = [n for n, (k, _) in zip(chosen, found) if k == "numeric"]
        categorical = [n for n, (k, _) in zip(chosen, found) if k == "categorical"]
        for name in categorical:
            judge.require_applicable(name)
    else:
        read: dict[str, str] = {}  # the features compared (same kind in both tables)
        for name, (r_kind, c_kind) in zip(chosen, found):
            if r_kind is None:
                raise InputDataError(f"feature '{name}' has an unsupported type ({ref_types[name]}); exclude it")
            if c_kind != r_kind:
                findings.append(type_changed(name, r_kind, c_kind, str(ref_types[name]), str(cur_types[name])))
                continue
            if r_kind == "categorical":
                judge.require_applicable(name)
            read[name] = r_kind
        numeric = [n for n, k in read.items() if k == "numeric"]
        categorical = [n for n, k in read.items() if k == "categorical"]

    blocks: list[Any] = []
    if numeric:
        blocks.append(NumericBlock(numeric, section))
    if categorical:
        blocks.append(CategoricalBlock(categorical, section))
    units: list[tuple[Any, list[str]]] = [(b, b.names) for b in blocks]
    # Rows are counted even when no feature is read (every chosen feature changed type).
    counted = units or [(_RowCounter(), [chosen[0]])]
    plan = _plan(counted)
    ref_rows = _stream(reference, counted, "add_reference", plan)
    if ref_rows == 0:
        raise InputDataError(f"the reference table is empty: {reference.name}")
    for acc, _ in units:
        acc.end_reference()
    for _ in range(_MAX_REFERENCE_PASSES):
        pending = [(b, b.pending_names()) for b in blocks if b.pending]
        if not pending:
            break
        _stream(reference, pending, "rescan")
        for b, _ in pending:
            b.end_rescan()
    cur_rows = _stream(current, counted, "add_current", plan)
    if cur_rows == 0:
        raise InputDataError(f"the current table is empty: {current.name}")

    ks_cache: dict[Any, Any] = {}
    results: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for b in blocks:
        results.update(zip(b.names, b.stats(ks_cache, (ref_rows, cur_rows))))
    return judge.evaluate(chosen, kinds, results, ref_rows, cur_rows, findings, entries=True)


def feature_kinds(types: list[pa.DataType], forced: list[bool]) -> list[str | None]:
    """:func:`._features.feature_kind` of every feature, found once per distinct (type id, forced)."""
    return per_type_id(types, feature_kind, forced)


def _kinds(ref: list[pa.DataType], cur: list[pa.DataType], forced: list[bool]) -> list[tuple[str | None, str | None]]:
    """(reference kind, current kind) of every feature (:func:`feature_kinds`)."""
    return list(zip(feature_kinds(ref, forced), feature_kinds(cur, forced)))


#: (reference kind, current kind) of a feature that is read as it is.
_SAME_KINDS = frozenset({("numeric", "numeric"), ("categorical", "categorical")})


class _RowCounter:
    """Stands for a feature when none is read, so that the tables' rows are still counted."""

    def add_reference(self, column: Any) -> None:
        return None

    add_current = add_reference
