"""Group fairness metrics computed from per-group confusion counts (vectorized, numpy ``bincount``).

numpy is imported at module level, so the gate imports this module inside the functions that use it.

Every number here equals what fairlearn 0.15 returns for the same input
(``MetricFrame`` per-group values, ``demographic_parity_*``,
``equalized_odds_*``, ``equal_opportunity_*`` and the generated
``*_difference`` / ``*_ratio`` / ``*_group_min`` metrics), including its edge
cases, which the bias gate then reports explicitly instead of passing silently:

* a group without positive labels gets a true positive rate (and false
  negative rate) of 0, a group without negative labels a false positive rate of
  0 (scikit-learn's ``confusion_matrix(normalize="true")`` turns 0/0 into 0);
* a ratio whose largest group value is 0 is NaN (0/0), e.g. all-zero predictions;
* groups that do not occur (an empty intersection, or an empty bootstrap
  resample of a group) are skipped by min/max, like pandas' ``skipna``;
* ``equalized_odds`` combines its two components with Python's ``max``/``min``
  over ``[tpr, fpr]``, which keeps the first component when either is NaN.

fairlearn builds a ``MetricFrame`` (pandas ``groupby`` plus one scikit-learn
call per group and metric): ~21 s for demographic parity and equalized odds on
1M rows x 10 groups. Every metric here is a function of four counts per group
(TN, FP, FN, TP), which one ``bincount`` over ``group * 4 + label * 2 +
prediction`` yields in milliseconds; see ``bench/bench_bias.py``.

All functions accept counts with leading axes (``(..., groups)``), so the same
code serves point estimates and bootstrap replicates. numpy only; no Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Method = Literal["between_groups", "to_overall"]
EqualizedOddsAgg = Literal["worst_case", "mean"]

#: Per-group rate metrics, in report order.
RATE_METRICS: tuple[str, ...] = (
    "selection_rate",
    "accuracy",
    "true_positive_rate",
    "false_positive_rate",
    "false_negative_rate",
    "true_negative_rate",
)

#: Between-group metrics: name -> (per-group rate(s) it compares, "difference" | "ratio").
DISPARITY_METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "demographic_parity_difference": (("selection_rate",), "difference"),
    "demographic_parity_ratio": (("selection_rate",), "ratio"),
    "equalized_odds_difference": (("true_positive_rate", "false_positive_rate"), "difference"),
    "equalized_odds_ratio": (("true_positive_rate", "false_positive_rate"), "ratio"),
    "equal_opportunity_difference": (("true_positive_rate",), "difference"),
    "equal_opportunity_ratio": (("true_positive_rate",), "ratio"),
    "accuracy_difference": (("accuracy",), "difference"),
    "accuracy_ratio": (("accuracy",), "ratio"),
    "false_positive_rate_difference": (("false_positive_rate",), "difference"),
    "false_positive_rate_ratio": (("false_positive_rate",), "ratio"),
    "false_negative_rate_difference": (("false_negative_rate",), "difference"),
    "false_negative_rate_ratio": (("false_negative_rate",), "ratio"),
}

#: Disparity metrics that need a score column.
SCORE_DISPARITY_METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "roc_auc_difference": (("roc_auc",), "difference"),
    "roc_auc_ratio": (("roc_auc",), "ratio"),
}


@dataclass(frozen=True)
class ConfusionCounts:
    """Confusion-matrix cells per group; arrays of shape ``(..., n_groups)``."""

    tn: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tp: np.ndarray

    @classmethod
    def from_arrays(
        cls, y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, n_groups: int
    ) -> ConfusionCounts:
        """Count the four cells of every group with a single ``bincount``.

        Args:
            y_true: 0/1 labels (any integer or bool dtype).
            y_pred: 0/1 predictions, same length.
            groups: Group index per row, ``0 <= g < n_groups``.
            n_groups: Number of groups.

        Returns:
            The counts (int64).
        """
        groups = np.asarray(groups)
        if groups.dtype != np.intp:
            groups = groups.astype(np.intp)
        # cell = 4 * group + 2 * label + prediction: 0 TN, 1 FP, 2 FN, 3 TP
        cell = groups * 4
        cell += np.asarray(y_true, dtype=np.intp) * 2
        cell += np.asarray(y_pred, dtype=np.intp)
        cells = np.bincount(cell, minlength=4 * n_groups).reshape(n_groups, 4)
        return cls(tn=cells[:, 0], fp=cells[:, 1], fn=cells[:, 2], tp=cells[:, 3])

    @classmethod
    def from_cells(cls, cells: np.ndarray) -> ConfusionCounts:
        """From an array of shape ``(..., n_groups, 4)`` ordered TN, FP, FN, TP."""
        return cls(tn=cells[..., 0], fp=cells[..., 1], fn=cells[..., 2], tp=cells[..., 3])

    def cells(self) -> np.ndarray:
        """Shape ``(..., n_groups, 4)``: TN, FP, FN, TP."""
        return np.stack([self.tn, self.fp, self.fn, self.tp], axis=-1)

    @property
    def n(self) -> np.ndarray:
        return self.tn + self.fp + self.fn + self.tp

    @property
    def positives(self) -> np.ndarray:
        """Rows with a positive label."""
        return self.tp + self.fn

    @property
    def negatives(self) -> np.ndarray:
        """Rows with a negative label."""
        return self.tn + self.fp

    @property
    def predicted_positives(self) -> np.ndarray:
        return self.tp + self.fp

    def overall(self) -> ConfusionCounts:
        """Counts summed over the group axis (the whole data set)."""
        return ConfusionCounts(
            tn=self.tn.sum(axis=-1), fp=self.fp.sum(axis=-1), fn=self.fn.sum(axis=-1), tp=self.tp.sum(axis=-1)
        )


def _divide(num: np.ndarray, den: np.ndarray, *, zero_division: float) -> np.ndarray:
    """``num / den`` in float64; ``zero_division`` where ``den == 0``."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    return np.where(den == 0, zero_division, out)


def rates(counts: ConfusionCounts) -> dict[str, np.ndarray]:
    """Per-group rates with fairlearn's semantics.

    A rate whose denominator is a label class the group lacks is 0 (as
    scikit-learn's normalised confusion matrix gives it); a group with no rows
    at all (only possible in bootstrap replicates or unobserved intersections)
    gets NaN everywhere, so min/max skip it.
    """
    n = counts.n
    empty = n == 0
    nan = np.float64("nan")
    out = {
        "selection_rate": _divide(counts.predicted_positives, n, zero_division=nan),
        "accuracy": _divide(counts.tp + counts.tn, n, zero_division=nan),
        "true_positive_rate": _divide(counts.tp, counts.positives, zero_division=0.0),
        "false_positive_rate": _divide(counts.fp, counts.negatives, zero_division=0.0),
        "false_negative_rate": _divide(counts.fn, counts.positives, zero_division=0.0),
        "true_negative_rate": _divide(counts.tn, counts.negatives, zero_division=0.0),
    }
    if np.any(empty):
        out = {key: np.where(empty, nan, value) for key, value in out.items()}
    return out


def _nanmax(values: np.ndarray) -> np.ndarray:
    # All-NaN slices give NaN (pandas' skipna max of nothing), without numpy's RuntimeWarning.
    filled = np.where(np.isnan(values), -np.inf, values)
    out = filled.max(axis=-1)
    return np.where(np.isneginf(out) & np.all(np.isnan(values), axis=-1), np.nan, out)


def _nanmin(values: np.ndarray) -> np.ndarray:
    filled = np.where(np.isnan(values), np.inf, values)
    out = filled.min(axis=-1)
    return np.where(np.isposinf(out) & np.all(np.isnan(values), axis=-1), np.nan, out)


def difference(values: np.ndarray, overall: np.ndarray | float | None = None, *,
               method: Method = "between_groups") -> np.ndarray:
    """fairlearn's ``MetricFrame.difference``: largest gap between groups, or to the overall value.

    Args:
        values: Per-group values, shape ``(..., n_groups)``; NaN groups are skipped.
        overall: The metric on all rows (needed for ``to_overall``), shape ``(...)``.
        method: ``between_groups`` (max - min) or ``to_overall`` (max |group - overall|).
    """
    values = np.asarray(values, dtype=np.float64)
    if method == "between_groups":
        return _nanmax(values) - _nanmin(values)
    if method == "to_overall":
        if overall is None:
            raise ValueError("to_overall needs the overall value")
        gap = np.abs(values - np.asarray(overall, dtype=np.float64)[..., None])
        return _nanmax(gap)
    raise ValueError(f"unknown method {method!r}")


def ratio(values: np.ndarray, overall: np.ndarray | float | None = None, *,
          method: Method = "between_groups") -> np.ndarray:
    """fairlearn's ``MetricFrame.ratio``: smallest ratio between groups (or to overall), at most 1.

    ``between_groups`` is min / max, NaN when the maximum is 0 (all-zero rates).
    ``to_overall`` is min over groups of group / overall, inverted when above 1;
    0/0 gives NaN (skipped), x/0 gives inf whose inverse is 0.
    """
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "between_groups":
            return _nanmin(values) / _nanmax(values)
        if method == "to_overall":
            if overall is None:
                raise ValueError("to_overall needs the overall value")
            r = values / np.asarray(overall, dtype=np.float64)[..., None]
            r = np.where(r > 1, 1.0 / r, r)
            return _nanmin(r)
    raise ValueError(f"unknown method {method!r}")


def _combine_eo(first: np.ndarray, second: np.ndarray, *, kind: str, agg: EqualizedOddsAgg) -> np.ndarray:
    """Combine the TPR and FPR components exactly as fairlearn does.

    ``worst_case`` is Python's ``max([tpr, fpr])`` (difference) or ``min`` (ratio):
    the second replaces the first only when strictly larger/smaller, so a NaN in
    the second component is ignored and a NaN in the first wins. ``mean`` is
    pandas' NaN-skipping mean.
    """
    if agg == "worst_case":
        if kind == "difference":
            return np.where(second > first, second, first)
        return np.where(second < first, second, first)
    if agg == "mean":
        stacked = np.stack([first, second], axis=-1)
        count = np.sum(~np.isnan(stacked), axis=-1)
        total = np.nansum(stacked, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count == 0, np.nan, total / count)
    raise ValueError(f"unknown equalized odds aggregation {agg!r}")


@dataclass(frozen=True)
class FairnessResult:
    """Per-group rates, overall rates and between-group metrics of one grouping."""

    counts: ConfusionCounts
    by_group: dict[str, np.ndarray]
    overall: dict[str, np.ndarray]
    disparities: dict[str, np.ndarray]


def fairness_metrics(
    counts: ConfusionCounts,
    *,
    method: Method = "between_groups",
    eo_agg: EqualizedOddsAgg = "worst_case",
    extra_by_group: dict[str, np.ndarray] | None = None,
    extra_overall: dict[str, np.ndarray] | None = None,
) -> FairnessResult:
    """Every per-group rate and between-group metric from confusion counts.

    Args:
        counts: Counts of shape ``(..., n_groups)``.
        method: fairlearn's ``method`` for differences and ratios.
        eo_agg: fairlearn's ``agg`` for the equalized odds metrics.
        extra_by_group: More per-group metrics (e.g. ``roc_auc``) to compare between groups.
        extra_overall: Their overall values (for ``to_overall``).

    Returns:
        A :class:`FairnessResult`; scalars are 0-d arrays when there are no leading axes.
    """
    by_group = rates(counts)
    overall = rates(counts.overall())
    if extra_by_group:
        by_group = {**by_group, **extra_by_group}
        overall = {**overall, **(extra_overall or {})}

    specs = dict(DISPARITY_METRICS)
    if extra_by_group and "roc_auc" in extra_by_group:
        specs.update(SCORE_DISPARITY_METRICS)
    disparities: dict[str, np.ndarray] = {}
    for name, (components, kind) in specs.items():
        fn = difference if kind == "difference" else ratio
        parts = [fn(by_group[c], overall.get(c), method=method) for c in components]
        if len(parts) == 1:
            disparities[name] = parts[0]
        else:
            disparities[name] = _combine_eo(parts[0], parts[1], kind=kind, agg=eo_agg)
    return FairnessResult(counts=counts, by_group=by_group, overall=overall, disparities=disparities)


def roc_auc_by_group(
    y_true: np.ndarray, scores: np.ndarray, groups: np.ndarray, n_groups: int
) -> tuple[np.ndarray, float]:
    """Area under the ROC curve per group and overall (Mann-Whitney U with tie-averaged ranks).

    Equal to ``sklearn.metrics.roc_auc_score`` on each group. A group lacking
    either label class has no ROC curve: NaN (scikit-learn raises instead).

    Args:
        y_true: 0/1 labels.
        scores: Real-valued scores (no NaN).
        groups: Group index per row.
        n_groups: Number of groups.

    Returns:
        (per-group AUC array, overall AUC).
    """
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(groups, dtype=np.intp)

    def _auc(keys: np.ndarray, k: int) -> np.ndarray:
        order = np.lexsort((s, keys))
        ks, ss, ys = keys[order], s[order], y[order]
        n = len(ks)
        size = np.bincount(ks, minlength=k)
        start = np.concatenate(([0], np.cumsum(size)[:-1]))
        # runs of equal (group, score): their members share the average rank
        new_run = np.ones(n, dtype=bool)
        if n > 1:
            new_run[1:] = (ks[1:] != ks[:-1]) | (ss[1:] != ss[:-1])
        run_id = np.cumsum(new_run) - 1
        run_first = np.flatnonzero(new_run)
        run_last = np.append(run_first[1:], n) - 1
        pos_in_group = np.arange(n) - start[ks]
        first_rank = pos_in_group[run_first] + 1
        last_rank = pos_in_group[run_last] + 1
        avg_rank = ((first_rank + last_rank) / 2.0)[run_id]
        pos = np.bincount(ks, weights=ys, minlength=k)
        neg = size - pos
        rank_sum = np.bincount(ks, weights=avg_rank * ys, minlength=k)
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg)
        return np.where((pos == 0) | (neg == 0), np.nan, auc)

    per_group = _auc(g, n_groups)
    overall = _auc(np.zeros_like(g), 1)[0]
    return per_group, float(overall)


def _aggregate(g: np.ndarray, key: np.ndarray, lo: np.ndarray, hi: np.ndarray, pos: np.ndarray,
               neg: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sum sketch entries sharing (group, bin); sorted by (group, bin)."""
    order = np.lexsort((key, g))
    g, key, lo, hi, pos, neg = g[order], key[order], lo[order], hi[order], pos[order], neg[order]
    if not len(g):
        return g, key, lo, hi, pos, neg
    new = np.empty(len(g), dtype=bool)
    new[0] = True
    new[1:] = (g[1:] != g[:-1]) | (key[1:] != key[:-1])
    s = np.flatnonzero(new)
    return (g[s], key[s], np.minimum.reduceat(lo, s), np.maximum.reduceat(hi, s),
            np.add.reduceat(pos, s), np.add.reduceat(neg, s))


def _auc_of_bins(g: np.ndarray, lo: np.ndarray, hi: np.ndarray, pos: np.ndarray, neg: np.ndarray,
                 n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """AUC and its error bound per group from bins sorted by (group, bin) (see :func:`roc_auc_from_sketch`)."""
    auc = np.full(n_groups, np.nan)
    bound = np.full(n_groups, np.nan)
    if not len(g):
        return auc, bound
    starts = np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1])))
    lengths = np.diff(np.append(starts, len(g)))
    below = np.cumsum(neg) - neg
    below -= np.repeat(below[starts], lengths)  # negatives with a lower score, in the same group
    p_tot, n_tot = np.add.reduceat(pos, starts), np.add.reduceat(neg, starts)
    num2 = np.add.reduceat(pos * (2 * below + neg), starts)  # 2 x (pairs ranked right + ties / 2)
    ties = np.add.reduceat(np.where(lo < hi, pos * neg, 0), starts)  # pairs in bins of several values
    pairs = (p_tot * n_tot).astype(np.float64)
    defined = (p_tot > 0) & (n_tot > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc[g[starts]] = np.where(defined, num2 / (2.0 * pairs), np.nan)
        bound[g[starts]] = np.where(defined, ties / (2.0 * pairs), np.nan)
    return auc, bound


def roc_auc_from_sketch(
    sketch: tuple[np.ndarray, ...], label_of: np.ndarray, groups_of: np.ndarray, n_groups: int,
    keep: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Per-group and overall ROC AUC (Mann-Whitney, ties count 1/2) from a score sketch.

    Args:
        sketch: ``ValueSketch.coarsened_to(shift)`` arrays (sketch group, bin, lo, hi, count); the
            sketch group encodes (group, label spelling).
        label_of: 0/1 label of each sketch group. groups_of: group index of each sketch group
            (-1: left out).
        n_groups: Number of groups. keep: Groups that count for the overall AUC.

    Returns:
        (AUC per group, error bound per group, overall AUC, overall error bound). While the sketch
        is exact (one score per bin) the AUC equals ``sklearn.metrics.roc_auc_score`` and the bound
        is 0; a bin holding several scores counts its (positive, negative) pairs as ties, which can
        be off by at most half of them: bound = sum of pos x neg over such bins / (2 P N). NaN for
        a group lacking either label.
    """
    sg, key, lo, hi, count = sketch
    y = label_of[sg].astype(np.int64)
    g = groups_of[sg]
    use = g >= 0
    pos, neg = count * y, count * (1 - y)
    g_, _, lo_, hi_, pos_, neg_ = _aggregate(g[use], key[use], lo[use], hi[use], pos[use], neg[use])
    auc, bound = _auc_of_bins(g_, lo_, hi_, pos_, neg_, n_groups)
    kept = use & keep[np.maximum(g, 0)]
    z = np.zeros(int(kept.sum()), dtype=np.int64)
    o = _aggregate(z, key[kept], lo[kept], hi[kept], pos[kept], neg[kept])
    o_auc, o_bound = _auc_of_bins(o[0], o[2], o[3], o[4], o[5], 1)
    return auc, bound, float(o_auc[0]), float(o_bound[0])


def auc_disparity_ranges(values: np.ndarray, bounds: np.ndarray, overall: float, overall_bound: float,
                         method: Method) -> dict[str, tuple[float, float]]:
    """Ranges that surely hold ``roc_auc_difference`` / ``roc_auc_ratio`` when every group AUC is known
    within ``±bound`` (interval arithmetic over fairlearn's definitions; NaN groups are skipped)."""
    ok = ~np.isnan(values)
    if ok.sum() == 0:
        return {}
    lo = np.clip(values[ok] - bounds[ok], 0.0, 1.0)
    hi = np.clip(values[ok] + bounds[ok], 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "between_groups":
            diff = (max(0.0, float(lo.max() - hi.min())), float(hi.max() - lo.min()))
            r_lo = float(lo.min() / hi.max()) if hi.max() > 0 else 0.0
            r_hi = float(min(1.0, hi.min() / lo.max())) if lo.max() > 0 else 1.0
        else:
            o_lo, o_hi = max(0.0, overall - overall_bound), min(1.0, overall + overall_bound)
            diff = (float(np.maximum(0.0, np.maximum(lo - o_hi, o_lo - hi)).max()),
                    float(np.maximum(hi - o_lo, o_hi - lo).max()))
            low_terms = np.minimum(np.where(o_hi > 0, lo / o_hi, 0.0), np.where(hi > 0, o_lo / hi, 0.0))
            high_terms = np.minimum(np.where(o_lo > 0, hi / o_lo, 1.0), np.where(lo > 0, o_hi / lo, 1.0))
            r_lo, r_hi = float(np.nanmin(low_terms)), float(min(1.0, np.nanmin(high_terms)))
    return {"roc_auc_difference": diff, "roc_auc_ratio": (r_lo, r_hi)}
