"""A drift evaluation, streamed: which features, their statistics accumulated batch by batch over the
reference (then, only if needed, once or twice more to place exact quantile edges) and the current
table, threshold findings.

Inputs are :class:`TableSource` objects (a schema and a way to read record batches of some columns,
as often as needed), so files and in-memory tables take the same path and peak memory does not
depend on the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.drift._block import NumericBlock
from airflow_aisec.core.gates.drift._features import CategoricalFeature, feature_kind
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.drift import Bound, DriftPolicy
from airflow_aisec.core.result import Finding
from airflow_aisec.core.stats import format_metric, json_float, split_names
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

GATE = "drift"
#: Rows per record batch when an in-memory table is streamed.
TABLE_BATCH_ROWS = 65_536
#: Passes over the reference to place the quantile edges, at most (each pass refines the sketch
#: bins that hold an edge at least twice: 64 bits of float64 keys bound it; 1 or 2 in practice).
_MAX_REFERENCE_PASSES = 70


@dataclass(frozen=True)
class TableSource:
    """A table to stream: its schema and ``batches(columns)``, which may be called several times."""

    schema: pa.Schema
    batches: Callable[[list[str]], Iterator[pa.RecordBatch]]
    name: str = "<table>"

    @classmethod
    def from_table(cls, table: pa.Table, name: str = "<table>") -> TableSource:
        def batches(columns: list[str]) -> Iterator[pa.RecordBatch]:
            yield from table.select(columns).to_batches(max_chunksize=TABLE_BATCH_ROWS)

        return cls(schema=table.schema, batches=batches, name=name)


@dataclass
class DriftEvaluation:
    """Findings, the JSON-safe metrics, and the report-only category names."""

    findings: list[Finding]
    metrics: dict[str, Any]
    report_labels: dict[str, list[str]] = field(default_factory=dict)



#: Where a metric's other end lies when a sketch merged values (the true value is in between).
_OTHER_END = {"ks_statistic": "ks_statistic_upper", "ks_pvalue": "ks_pvalue_lower"}


def _threshold_findings(feature: str, stats: Mapping[str, Any], thresholds: Sequence[tuple[str, Bound]],
                        kind: str) -> tuple[list[Finding], list[str]]:
    """Findings of one feature. A KS value known only within an error bound fails closed: it fails
    when any value of its range ``[ks_statistic, ks_statistic_upper]`` would fail."""
    findings: list[Finding] = []
    violated: list[str] = []
    for metric, bound in thresholds:
        if metric.startswith("ks_") and kind != "numeric":
            continue  # KS is defined for numeric features only
        value = stats.get(metric)
        other = stats.get(_OTHER_END[metric]) if metric in _OTHER_END else None
        if not bound.violated(value) and (other is None or not bound.violated(other)):
            continue
        violated.append(metric)
        within = ""
        if other is not None and not bound.violated(value):
            within = (f" (sketch error bound {format_metric(stats.get('ks_error_bound'))}: it may be "
                      f"{format_metric(other)}, so the gate fails closed)")
        findings.append(Finding(
            rule=f"{GATE}.{metric}",
            severity=Severity.HIGH,
            message=(f"{metric} of feature '{feature}' is {format_metric(value)}{within}; must be {bound.describe()}"
                     + ("; NaN never satisfies a threshold" if value is None else "")),
            location={"feature": feature, "metric": metric, "value": value, **bound.limits(),
                      **({"other_end": other} if other is not None else {})},
        ))
    return findings, violated


def resolve_features(section: DriftPolicy, reference_columns: Sequence[str],
                     features: Sequence[str] | str | None = None) -> list[str]:
    """Features to compare: the policy's and the caller's (union), else all reference columns."""
    chosen = list(dict.fromkeys([*section.features, *split_names(features)]))
    excluded = set(section.exclude)
    if not chosen:
        chosen = [c for c in reference_columns if c not in excluded]
    chosen = [c for c in chosen if c not in excluded]
    if not chosen:
        raise ConfigurationError("no feature left to compare (all excluded)")
    unknown = sorted(set(section.per_feature) - set(chosen))
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
    chosen = resolve_features(section, reference.schema.names, features)
    for table, which in ((reference, "reference"), (current, "current")):
        names = set(table.schema.names)
        missing = [c for c in chosen if c not in names]
        if missing:
            raise InputDataError(f"column(s) not in the {which} table: {', '.join(map(repr, missing))}")
    return evaluate_sources(section, TableSource.from_table(reference, "the reference table"),
                            TableSource.from_table(current, "the current table"), chosen)


def _stream(source: TableSource, units: Sequence[tuple[Any, list[str]]], step: str) -> int:
    """One pass over ``source``: feed every batch's columns to the accumulators; returns the rows read.

    ``units`` are (accumulator, its columns): a :class:`NumericBlock` takes the list of its columns,
    a categorical feature its one column.
    """
    names = list(dict.fromkeys(n for _, cols in units for n in cols))
    rows = 0
    for batch in source.batches(names):
        rows += batch.num_rows
        by_name = dict(zip(batch.schema.names, batch.columns))  # batch.column(i) costs more, per column
        for acc, cols in units:
            if isinstance(acc, NumericBlock):
                getattr(acc, step)([by_name[n] for n in cols])
            else:
                getattr(acc, step)(by_name[cols[0]])
    return rows


def evaluate_sources(section: DriftPolicy, reference: TableSource, current: TableSource,
                     chosen: Sequence[str]) -> DriftEvaluation:
    """Compare two streamed tables on the ``chosen`` features (present in both, see :func:`resolve_features`).

    Raises:
        InputDataError: empty table, unsupported column type, too many categories, no reference values.
        ConfigurationError: a categorical feature whose thresholds are all KS thresholds.
    """
    findings: list[Finding] = []
    entries: dict[str, dict[str, Any]] = {}
    kinds: dict[str, str] = {}
    forced = set(section.categorical)
    ref_types = dict(zip(reference.schema.names, reference.schema.types))
    cur_types = dict(zip(current.schema.names, current.schema.types))
    kind_of: dict[tuple[pa.DataType, bool], str | None] = {}  # one decision per type, not per column
    for name in chosen:
        r_type, c_type = ref_types[name], cur_types[name]
        is_forced = name in forced
        for dtype in (r_type, c_type):
            if (dtype, is_forced) not in kind_of:
                kind_of[(dtype, is_forced)] = feature_kind(dtype, is_forced)
        r_kind, c_kind = kind_of[(r_type, is_forced)], kind_of[(c_type, is_forced)]
        if r_kind is None:
            raise InputDataError(f"feature '{name}' has an unsupported type ({r_type}); exclude it")
        entries[name] = {"feature": name, "kind": r_kind}
        if c_kind != r_kind:
            findings.append(Finding(
                rule=f"{GATE}.type_changed",
                severity=Severity.HIGH,
                message=f"feature '{name}' is {r_kind} in the reference but {c_kind or 'unsupported'} in the current "
                        f"table",
                location={"feature": name, "reference_type": str(r_type), "current_type": str(c_type)},
            ))
            entries[name]["violations"] = ["type_changed"]
            continue
        if r_kind == "categorical" and not any(not metric.startswith("ks_") for metric, _ in
                                               section.thresholds.merged(section.per_feature.get(name)).items()):
            # KS is numeric-only: a categorical feature with KS thresholds alone would be checked against nothing.
            raise ConfigurationError(
                f"feature '{name}' is categorical and none of its thresholds apply to it (KS is for numeric "
                "features): add a psi threshold (drift.thresholds or drift.per_feature) or exclude it"
            )
        kinds[name] = r_kind

    numeric = [n for n, k in kinds.items() if k == "numeric"]
    block = NumericBlock(numeric, section) if numeric else None
    units: list[tuple[Any, list[str]]] = [(block, numeric)] if block is not None else []
    units += [(CategoricalFeature(n, section), [n]) for n, k in kinds.items() if k == "categorical"]
    # Rows are counted even when no feature is read (every chosen feature changed type).
    counted = units or [(_RowCounter(), [chosen[0]])]
    ref_rows = _stream(reference, counted, "add_reference")
    if ref_rows == 0:
        raise InputDataError(f"the reference table is empty: {reference.name}")
    for acc, _ in units:
        acc.end_reference()
    for _ in range(_MAX_REFERENCE_PASSES):
        if block is None or not block.pending:
            break
        _stream(reference, [(block, block.pending_names())], "rescan")
        block.end_rescan()
    cur_rows = _stream(current, counted, "add_current")
    if cur_rows == 0:
        raise InputDataError(f"the current table is empty: {current.name}")

    ks_cache: dict[Any, Any] = {}
    results: dict[str, tuple[dict[str, Any], list[str]]] = {}
    if block is not None:
        results.update(zip(numeric, block.stats(ks_cache)))
    for acc, cols in units[1 if block is not None else 0:]:
        results[cols[0]] = acc.stats(ks_cache)
    per_feature: list[dict[str, Any]] = []
    report_labels: dict[str, list[str]] = {}
    dumped: dict[int, tuple[list[tuple[str, Bound]], dict[str, Any]]] = {}
    for name in chosen:
        entry = {**entries[name], "reference_rows": ref_rows, "current_rows": cur_rows}
        if name not in results:
            per_feature.append(entry)
            continue
        stats, labels = results[name]
        kind = kinds[name]
        entry.update(stats)
        override = section.per_feature.get(name)
        if id(override) not in dumped:  # one merge / dump per distinct override, not per feature
            merged = section.thresholds.merged(override)
            dumped[id(override)] = (merged.items(), {k: v.model_dump(exclude_none=True) for k, v in merged.items()})
        thresholds, dump = dumped[id(override)]
        entry["thresholds"] = dump
        found, violated = _threshold_findings(name, stats, thresholds, kind)
        findings.extend(found)
        if kind == "categorical" and stats["unseen_rows"]:
            fraction = stats["unseen_fraction"] or 0.0
            if fraction > section.max_unseen_fraction:
                violated.append("unseen_category")
                findings.append(Finding(
                    rule=f"{GATE}.unseen_category",
                    severity=Severity.HIGH,
                    message=(f"feature '{name}' has {stats['unseen_categories']} categor"
                             f"{'y' if stats['unseen_categories'] == 1 else 'ies'} not seen in the reference "
                             f"({stats['unseen_rows']} row(s), {fraction:.2%} of current; allowed "
                             f"{section.max_unseen_fraction:.2%})"),
                    count=stats["unseen_rows"],
                    location={"feature": name, "categories": stats["unseen_categories"],
                              "fraction": json_float(fraction)},
                ))
        entry["violations"] = violated
        report_labels[name] = labels
        per_feature.append(entry)

    metrics = {
        "reference_rows": ref_rows,
        "current_rows": cur_rows,
        "bins": section.bins,
        "sketch_bins": section.sketch_bins,
        "features_checked": len(chosen),
        "features_drifted": sum(1 for f in per_feature if f.get("violations")),
        "features": per_feature,
    }
    return DriftEvaluation(findings=findings, metrics=metrics, report_labels=report_labels)


class _RowCounter:
    """Stands for a feature when none is read, so that the tables' rows are still counted."""

    def add_reference(self, column: Any) -> None:
        return None

    add_current = add_reference
