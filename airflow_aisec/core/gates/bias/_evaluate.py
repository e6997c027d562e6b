"""A bias evaluation of a table in memory: threshold findings and the JSON-safe metrics document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.bias._columns import BiasColumns
from airflow_aisec.core.gates.bias._grouping import GroupingResult, evaluate_grouping
from airflow_aisec.core.gates.bias._stream import BiasStream
from airflow_aisec.core.io.schema_lists import column_names
from airflow_aisec.core.policy.base import Bound, Severity
from airflow_aisec.core.policy.sections.bias import DISPARITY_METRICS, BiasPolicy
from airflow_aisec.core.result import Finding
from airflow_aisec.core.stats import format_metric, json_float
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

GATE = "bias"
#: Rows per record batch when an in-memory table is streamed.
TABLE_BATCH_ROWS = 65_536


def _range_fails(bound: Bound, sure: tuple[float | None, float | None] | None) -> bool:
    """True when some value of a metric's sure range would fail (a range straddling the threshold)."""
    if sure is None:
        return False
    return bound.violated(sure[0]) or bound.violated(sure[1])


def _threshold_findings(result: GroupingResult, policy: BiasPolicy) -> list[Finding]:
    findings: list[Finding] = []
    metrics = result.metrics
    if metrics is None:
        return findings
    interval_mode = policy.bootstrap is not None and policy.bootstrap.fail_on == "interval"
    loc_base = {"sensitive": result.name}
    kept_positions = result.kept_positions
    for metric, bound in policy.thresholds.items():
        if metric in DISPARITY_METRICS:
            if metric not in metrics.disparities:
                continue  # score metrics without a score column are rejected in resolve_columns
            value = json_float(metrics.disparities[metric])
            ci = result.intervals.get(metric)
            sure = result.ranges.get(metric)  # AUC from a coarse score sketch: fail closed over its range
            if not bound.fails(value, ci, interval=interval_mode) and not _range_fails(bound, sure):
                continue
            why = ""
            if value is None and metric.endswith("_ratio"):
                why = " (the largest group value is 0, e.g. no positive predictions at all)"
            ci_text = ""
            if sure is not None:
                ci_text += (f", within [{format_metric(sure[0])}, {format_metric(sure[1])}] given the score "
                            "sketch's error bound (fails closed)")
            if ci is not None and policy.bootstrap is not None:
                ci_text = (f", {int(policy.bootstrap.confidence * 100)}% CI "
                           f"[{format_metric(ci[0])}, {format_metric(ci[1])}]")
            findings.append(Finding(
                rule=f"{GATE}.{metric}",
                severity=Severity.HIGH,
                message=(f"{metric} over '{result.name}' is {format_metric(value)}{why}{ci_text}; "
                         f"must be {bound.describe()}"
                         + ("; NaN never satisfies a threshold" if value is None else "")),
                location={**loc_base, "metric": metric, "value": value,
                          **({"ci": list(ci)} if ci is not None else {}), **bound.limits()},
            ))
        else:
            if metric not in metrics.by_group:
                continue
            values = metrics.by_group[metric]
            cis = result.group_intervals.get(metric)
            bounds = result.auc_bounds if metric == "roc_auc" else None
            for j, pos in enumerate(kept_positions):
                value = json_float(values[j])
                ci = cis[j] if cis is not None else None
                err = bounds[j] if bounds is not None else None
                sure = (value - err, value + err) if value is not None and err else None
                if not bound.fails(value, ci, interval=interval_mode) and not _range_fails(bound, sure):
                    continue
                label = result.labels[pos]
                note = f" (within \u00b1{format_metric(err)}: score sketch error bound, fails closed)" if sure else ""
                findings.append(Finding(
                    rule=f"{GATE}.{metric}",
                    severity=Severity.HIGH,
                    message=(f"{metric} of group '{label}' of '{result.name}' is {format_metric(value)}{note}; "
                             f"must be {bound.describe()}"),
                    count=result.sizes[pos],
                    location={**loc_base, "group": label, "metric": metric, "value": value, **bound.limits()},
                ))
    return findings


def _grouping_metrics(result: GroupingResult, policy: BiasPolicy) -> dict[str, Any]:
    """JSON-safe, value-free summary of one grouping."""
    out: dict[str, Any] = {
        "name": result.name,
        "columns": list(result.columns),
        "rows": result.rows,
        "missing_rows": result.missing_rows,
        "groups": [],
    }
    m = result.metrics
    kept = {pos: j for j, pos in enumerate(result.kept_positions)}
    for pos, label in enumerate(result.labels):
        group: dict[str, Any] = {
            "group": label,
            "count": result.sizes[pos],
            "small": result.small[pos],
            "excluded": result.excluded[pos],
        }
        if m is not None and pos in kept:
            j = kept[pos]
            group.update(
                positives=int(m.counts.positives[j]),
                negatives=int(m.counts.negatives[j]),
                predicted_positives=int(m.counts.predicted_positives[j]),
            )
            for name, values in m.by_group.items():
                group[name] = json_float(values[j])
            if result.auc_bounds is not None:
                group["roc_auc_error_bound"] = result.auc_bounds[j]
            for name, cis in result.group_intervals.items():
                group[f"{name}_ci"] = list(cis[j])
        out["groups"].append(group)
    if m is not None:
        out["overall"] = {k: json_float(v) for k, v in m.overall.items()}
        out["disparities"] = {k: json_float(v) for k, v in m.disparities.items()}
        if result.auc_bounds is not None:
            out["overall"]["roc_auc_error_bound"] = result.auc_overall_bound
        if result.ranges:
            out["ranges"] = {k: list(v) for k, v in result.ranges.items()}
        if result.intervals:
            out["intervals"] = {k: list(v) for k, v in result.intervals.items()}
    return out


@dataclass
class BiasEvaluation:
    """Everything the bias check computed: findings and a JSON-safe metrics document."""

    findings: list[Finding]
    metrics: dict[str, Any]


def evaluate_bias(section: BiasPolicy, table: pa.Table, columns: BiasColumns) -> BiasEvaluation:
    """Compute metrics and findings for a table already in memory (streamed in batches like a file).

    Raises:
        InputDataError: bad input (see module docs).
    """
    if table.num_rows == 0:
        raise InputDataError("the table is empty")
    names = set(column_names(table.schema))
    missing = [c for c in columns.all if c not in names]
    if missing:
        raise InputDataError(f"column(s) not in the data: {', '.join(map(repr, missing))}")
    stream = BiasStream(section, columns, table.schema)
    for batch in table.select(columns.all).to_batches(max_chunksize=TABLE_BATCH_ROWS):
        stream.add(batch)
    return evaluate_stream(section, stream)


def evaluate_stream(section: BiasPolicy, stream: BiasStream) -> BiasEvaluation:
    """Findings and the metrics document from a :class:`BiasStream` fed with every batch."""
    columns = stream.columns
    grouped, rates = stream.finish()
    findings: list[Finding] = []
    groupings: list[GroupingResult] = []
    for counts in grouped:
        result, found = evaluate_grouping(counts, section)
        findings.extend(found)
        findings.extend(_threshold_findings(result, section))
        groupings.append(result)
    metrics: dict[str, Any] = {
        "rows": stream.rows,
        "columns": {"label": columns.label, "prediction": columns.prediction, "score": columns.score,
                    "sensitive": list(columns.sensitive)},
        "method": section.method,
        "equalized_odds_agg": section.equalized_odds_agg,
        "min_group_size": section.min_group_size,
        "positive_rate": json_float(rates["positive_rate"]),
        "prediction_rate": json_float(rates["prediction_rate"]),
        "thresholds": {k: v.model_dump(exclude_none=True) for k, v in section.thresholds.items()},
        "bootstrap": section.bootstrap.model_dump() if section.bootstrap else None,
        "groupings": [_grouping_metrics(g, section) for g in groupings],
    }
    return BiasEvaluation(findings=findings, metrics=metrics)
