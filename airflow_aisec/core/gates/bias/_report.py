"""The bias gate's HTML report: between-group metrics, per-group rates and bar charts with threshold lines."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_aisec.core.report import Raw, ThresholdLine, bar_chart, esc, fmt, page, status_cell, table
from airflow_aisec.core.result import Finding, InputRef

#: Which between-group metrics compare which per-group rate (for threshold lines on the charts).
_RATE_DISPARITIES: dict[str, tuple[str, ...]] = {
    "selection_rate": ("demographic_parity",),
    "true_positive_rate": ("equalized_odds", "equal_opportunity"),
    "false_positive_rate": ("equalized_odds", "false_positive_rate"),
    "false_negative_rate": ("false_negative_rate",),
    "accuracy": ("accuracy",),
    "roc_auc": ("roc_auc",),
}
_CHART_RATES = ("selection_rate", "true_positive_rate", "false_positive_rate", "false_negative_rate",
                "accuracy", "roc_auc")


def _bias_lines(rate: str, values: Sequence[float | None], overall: float | None,
                thresholds: Mapping[str, Mapping[str, float]], method: str) -> list[ThresholdLine]:
    lines: list[ThresholdLine] = []
    finite = [v for v in values if v is not None and math.isfinite(v)]
    top = max(finite) if finite else None
    bound = thresholds.get(rate, {})
    if "min" in bound:
        lines.append(ThresholdLine(bound["min"], f"min {bound['min']:g}", "below"))
    if "max" in bound:
        lines.append(ThresholdLine(bound["max"], f"max {bound['max']:g}", "above"))
    for prefix in _RATE_DISPARITIES.get(rate, ()):
        diff = thresholds.get(f"{prefix}_difference", {}).get("max")
        rat = thresholds.get(f"{prefix}_ratio", {}).get("min")
        if method == "between_groups" and top is not None:
            if diff is not None:
                lines.append(ThresholdLine(top - diff, f"max\u2212{diff:g}", "below"))
            if rat is not None:
                lines.append(ThresholdLine(top * rat, f"{rat:g}\u00d7max", "below"))
        elif method == "to_overall" and overall is not None:
            if diff is not None:
                lines.append(ThresholdLine(overall - diff, f"overall\u2212{diff:g}", "below"))
                lines.append(ThresholdLine(overall + diff, f"overall+{diff:g}", "above"))
            if rat is not None:
                lines.append(ThresholdLine(overall * rat, f"{rat:g}\u00d7overall", "below"))
                if rat > 0:
                    lines.append(ThresholdLine(overall / rat, f"overall/{rat:g}", "above"))
    # identical lines (e.g. equalized odds and equal opportunity) once only
    seen: dict[tuple[float, str], ThresholdLine] = {}
    for ln in lines:
        seen.setdefault((round(ln.value, 12), ln.bad_side), ln)
    return list(seen.values())


def _violates(value: float | None, bound: Mapping[str, float]) -> bool:
    if value is None or not math.isfinite(value):
        return True
    return ("max" in bound and value > bound["max"]) or ("min" in bound and value < bound["min"])


def render_bias_report(
    metrics: Mapping[str, Any],
    findings: Sequence[Finding],
    *,
    inputs: Sequence[InputRef] = (),
    meta: Mapping[str, Any] | None = None,
) -> str:
    """HTML report of a bias check (the ``metrics`` document of
    :func:`~airflow_aisec.core.gates.bias.evaluate_bias`)."""
    thresholds: Mapping[str, Mapping[str, float]] = metrics.get("thresholds", {})
    method = metrics.get("method", "between_groups")
    cols = metrics.get("columns", {})
    head = {
        **(meta or {}),
        "label column": cols.get("label"),
        "prediction column": cols.get("prediction"),
        "score column": cols.get("score"),
        "sensitive columns": ", ".join(cols.get("sensitive", [])),
        "rows": fmt(metrics.get("rows")),
        "method": method,
        "min group size": metrics.get("min_group_size"),
    }
    boot = metrics.get("bootstrap")
    if boot:
        head["bootstrap"] = (f"{boot['samples']} resamples, {boot['confidence']:.0%} interval, "
                             f"fail on {boot['fail_on']}")
    body: list[str] = []
    for grouping in metrics.get("groupings", []):
        name = grouping["name"]
        groups = grouping["groups"]
        body.append(f"<h2>Sensitive feature: {esc(name)}</h2>")
        body.append(f'<p class="muted">{fmt(grouping["rows"])} rows in {len(groups)} groups'
                    + (f'; {fmt(grouping["missing_rows"])} rows without a value left out'
                       if grouping.get("missing_rows") else "") + "</p>")
        disparities = grouping.get("disparities")
        intervals = grouping.get("intervals", {})
        if disparities is None:
            body.append('<p class="bad">No metric could be computed (fewer than two usable groups).</p>')
        else:
            rows = []
            for metric, value in disparities.items():
                bound = thresholds.get(metric)
                ci = intervals.get(metric)
                rows.append((
                    metric,
                    Raw(fmt(value)),
                    Raw(f"[{fmt(ci[0])}, {fmt(ci[1])}]") if ci else "",
                    ", ".join(f"{k} {v:g}" for k, v in bound.items()) if bound else "",
                    status_cell(_violates(value, bound) if bound else None),
                ))
            body.append("<h3>Between-group metrics</h3>")
            body.append(table(["metric", "value", "interval", "threshold", "status"], rows,
                              numeric=[False, True, True, False, False]))
        rate_names = [r for r in _CHART_RATES if any(r in g for g in groups)]
        group_rows = []
        for g in groups:
            flags = ", ".join(x for x, on in (("small", g.get("small")), ("excluded", g.get("excluded"))) if on)
            group_rows.append((g["group"], Raw(fmt(g["count"])), Raw(fmt(g.get("positives"))),
                               *(Raw(fmt(g.get(r))) for r in rate_names), flags))
        body.append("<h3>Per group</h3>")
        body.append(table(["group", "rows", "positive labels", *rate_names, "notes"], group_rows,
                          numeric=[False, True, True, *([True] * len(rate_names)), False]))
        charts = []
        overall = grouping.get("overall", {})
        for rate in rate_names:
            shown = [g for g in groups if rate in g]
            values = [g.get(rate) for g in shown]
            lines = _bias_lines(rate, values, overall.get(rate), thresholds, method)
            charts.append(bar_chart(f"{rate} by {name}", [g["group"] for g in shown], values, lines=lines))
        body.append('<div class="charts">' + "".join(charts) + "</div>")
    return page("Bias report", head, inputs, findings, body)
