"""Metrics of one grouping (one sensitive column, or an intersection): group sizes, the pitfalls
(small groups, groups without positive or negative labels, missing values), fairness metrics and
their bootstrap intervals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.bias._stream import GroupingCounts
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.bias import BiasPolicy
from airflow_aisec.core.result import Finding
from airflow_aisec.core.stats import json_float
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import numpy as np

    from airflow_aisec.core.gates.bias._metrics import FairnessResult

# Metrics that divide by a group's positive (negative) labels: a group lacking them is a pitfall.
_NEEDS_POSITIVES = ("equalized_odds", "equal_opportunity", "true_positive_rate", "false_negative_rate", "roc_auc")
_NEEDS_NEGATIVES = ("equalized_odds", "false_positive_rate", "true_negative_rate", "roc_auc")


@dataclass
class GroupingResult:
    """Metrics of one grouping (one sensitive column or one intersection)."""

    name: str
    columns: tuple[str, ...]
    rows: int
    missing_rows: int
    labels: list[str]  # display labels (small groups hidden unless revealed)
    sizes: list[int]
    small: list[bool]
    excluded: list[bool]
    metrics: FairnessResult | None
    auc: list[float | None] | None = None
    auc_bounds: list[float | None] | None = None  # error bound of each kept group's AUC (0: exact)
    auc_overall_bound: float | None = None
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)  # sure range of a metric
    kept_positions: list[int] = field(default_factory=list)  # display position of each metric column
    intervals: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    group_intervals: dict[str, list[tuple[float | None, float | None]]] = field(default_factory=dict)


def evaluate_grouping(grouping: GroupingCounts, policy: BiasPolicy) -> tuple[GroupingResult, list[Finding]]:
    """Pitfalls, metrics and intervals of one grouping from its streamed counts."""
    import numpy as np

    from airflow_aisec.core.gates.bias._metrics import ConfusionCounts, auc_disparity_ranges, fairness_metrics

    columns = grouping.columns
    name = " & ".join(columns)
    findings: list[Finding] = []
    loc_base = {"sensitive": name}
    missing_rows = grouping.missing_rows
    if missing_rows:  # only in "finding" mode: "group" mode gave missing values a group
        findings.append(Finding(
            rule="bias.missing_sensitive_value",
            severity=Severity.MEDIUM,
            message=f"{missing_rows} row(s) have no value in sensitive column(s) '{name}' and were left out",
            count=missing_rows,
            location=dict(loc_base),
        ))
    n_groups = len(grouping.labels)
    if n_groups < 2:
        raise InputDataError(
            f"sensitive column(s) '{name}' have {n_groups} group(s) with data; bias metrics need at least two"
        )
    if n_groups > policy.max_groups:
        raise InputDataError(
            f"sensitive column(s) '{name}' form {n_groups} groups, more than max_groups ({policy.max_groups})"
        )
    raw_labels = grouping.labels
    counts = grouping.counts
    sizes = counts.n
    small = sizes < policy.min_group_size
    # Groups by name, small ones last (their names may be hidden).
    order = sorted(range(n_groups), key=lambda i: (bool(small[i]), raw_labels[i]))
    display = list(raw_labels)
    if not policy.reveal_small_group_labels:
        k = 0
        for i in order:
            if small[i]:
                k += 1
                display[i] = f"<small group {k}>"
    for i in order:
        if small[i]:
            findings.append(Finding(
                rule="bias.group_too_small",
                severity=Severity.MEDIUM,
                message=(f"group '{display[i]}' of '{name}' has {int(sizes[i])} row(s), fewer than "
                         f"min_group_size {policy.min_group_size}"
                         + ("; left out of the metrics" if policy.exclude_small_groups else "")),
                count=int(sizes[i]),
                location={**loc_base, "group": display[i], "min_group_size": policy.min_group_size},
            ))
    keep = ~small if policy.exclude_small_groups else np.ones(n_groups, dtype=bool)
    kept = [i for i in order if keep[i]]

    metric_names = set(policy.thresholds)
    needs_pos = any(m.startswith(_NEEDS_POSITIVES) for m in metric_names)
    needs_neg = any(m.startswith(_NEEDS_NEGATIVES) for m in metric_names)
    for i in kept:
        for flag, lacking, what, rule in (
            (needs_pos, counts.positives[i] == 0, "positive", "bias.group_without_positive_labels"),
            (needs_neg, counts.negatives[i] == 0, "negative", "bias.group_without_negative_labels"),
        ):
            if flag and lacking:
                findings.append(Finding(
                    rule=rule,
                    severity=Severity.HIGH,
                    message=(f"group '{display[i]}' of '{name}' has no {what} labels: its "
                             f"{'true positive / false negative' if what == 'positive' else 'false positive'} "
                             f"rate is undefined (fairlearn silently counts it as 0)"),
                    count=int(sizes[i]),
                    location={**loc_base, "group": display[i]},
                ))

    result = GroupingResult(
        name=name,
        columns=columns,
        rows=int(sizes.sum()),
        missing_rows=missing_rows,
        labels=[display[i] for i in order],
        sizes=[int(sizes[i]) for i in order],
        small=[bool(small[i]) for i in order],
        excluded=[not bool(keep[i]) for i in order],
        metrics=None,
    )
    if len(kept) < 2:
        findings.append(Finding(
            rule="bias.insufficient_groups",
            severity=Severity.HIGH,
            message=f"fewer than two groups of '{name}' reach min_group_size {policy.min_group_size}: "
                    f"no bias metric can be computed",
            count=len(kept),
            location=dict(loc_base),
        ))
        return result, findings

    idx = np.array(kept, dtype=np.int64)
    sub = ConfusionCounts(tn=counts.tn[idx], fp=counts.fp[idx], fn=counts.fn[idx], tp=counts.tp[idx])
    extra_by_group = extra_overall = None
    auc_ranges: dict[str, tuple[float, float]] = {}
    if grouping.auc is not None:
        auc_g, bound_g, auc_all, bound_all = grouping.auc(keep)
        auc, bound = auc_g[idx], bound_g[idx]
        extra_by_group = {"roc_auc": auc}
        extra_overall = {"roc_auc": np.float64(auc_all)}
        result.auc = [json_float(a) for a in auc]
        result.auc_bounds = [json_float(b) for b in bound]
        result.auc_overall_bound = json_float(bound_all)
        if np.nanmax(np.append(bound, bound_all)) > 0:  # a sketch merged scores: AUC known within a bound
            auc_ranges = auc_disparity_ranges(auc, np.nan_to_num(bound), auc_all, bound_all or 0.0, policy.method)
    metrics = fairness_metrics(
        sub, method=policy.method, eo_agg=policy.equalized_odds_agg,
        extra_by_group=extra_by_group, extra_overall=extra_overall,
    )
    result.metrics = metrics
    result.ranges = {k: (json_float(lo), json_float(hi)) for k, (lo, hi) in auc_ranges.items()}
    # Metric arrays follow `kept`; excluded groups stay listed in the output, without rates.
    position = {group: k for k, group in enumerate(order)}  # not order.index: max_groups may be 100,000
    result.kept_positions = [position[i] for i in kept]
    if policy.bootstrap is not None:
        _bootstrap(result, sub, policy)
    return result, findings


def _bootstrap(result: GroupingResult, counts: Any, policy: BiasPolicy) -> None:
    """Percentile intervals by resampling rows.

    Every metric (but ROC AUC) is a function of the per-group confusion cells, so resampling
    n rows with replacement is exactly one multinomial draw of n over the cells' frequencies:
    thousands of replicates cost milliseconds whatever the row count. A group that draws no row
    in a replicate is skipped there (NaN), as fairlearn skips absent groups.
    """
    import warnings

    import numpy as np

    from airflow_aisec.core.gates.bias._metrics import ConfusionCounts, fairness_metrics

    settings = policy.bootstrap
    assert settings is not None
    cells = counts.cells().astype(np.float64)
    total = int(cells.sum())
    rng = np.random.default_rng(settings.seed)
    draws = rng.multinomial(total, (cells / total).ravel(), size=settings.samples)
    reps = ConfusionCounts.from_cells(draws.reshape(settings.samples, *cells.shape))
    boot = fairness_metrics(reps, method=policy.method, eo_agg=policy.equalized_odds_agg)
    alpha = (1.0 - settings.confidence) / 2.0

    def _ci(values: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN: undefined
            return np.nanquantile(values, [alpha, 1.0 - alpha], axis=0)

    for name, values in boot.disparities.items():
        lo, hi = _ci(values)
        result.intervals[name] = (json_float(lo), json_float(hi))
    for name, values in boot.by_group.items():
        lo, hi = _ci(values)
        result.group_intervals[name] = [(json_float(a), json_float(b)) for a, b in zip(lo, hi)]
