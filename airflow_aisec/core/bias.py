"""Bias gate: group fairness metrics of a predictions table, checked against policy thresholds.

Input is a table (CSV / Parquet, local or ``s3://``) with a label column, a
prediction column (or a score column plus ``score_threshold``), optionally a
score column, and one or more sensitive-feature columns. For every sensitive
column (and every intersection the policy asks for) the gate computes per-group
selection rate, accuracy, TPR, FPR, FNR (and ROC AUC with a score), and the
between-group metrics (demographic parity, equalized odds, equal opportunity,
accuracy/FPR/FNR differences and ratios) with fairlearn's definitions, computed
by :mod:`airflow_aisec.core.fairness_metrics` from one ``bincount``.

Pitfalls are findings, never silent passes: groups below ``min_group_size``
(with their count), groups without positive (or negative) labels where a
thresholded metric needs them (fairlearn silently reports a rate of 0 there),
undefined metrics (NaN never satisfies a threshold), missing sensitive values
(their own group, or a finding, per policy). Bad input (missing column, empty
table, non-binary label/prediction not mapped by the policy, a single group) is
an :class:`~airflow_aisec.exceptions.InputDataError`: exit 2 / failed task.

Group labels are the sensitive columns' category names; a group smaller than
``min_group_size`` is shown as ``<small group N>`` unless the policy reveals it,
since a tiny group can identify a person. No row-level value is ever output.

Example policy section::

    bias:
      label: approved
      prediction: predicted
      sensitive: [sex, age_band]
      positive_label: 1
      intersections: true
      min_group_size: 30
      missing_sensitive: finding        # or: group
      thresholds:
        demographic_parity_difference: {max: 0.1}
        demographic_parity_ratio: {min: 0.8}   # four-fifths rule
        equalized_odds_difference: {max: 0.2}
        accuracy: {min: 0.7}                   # every group
      bootstrap: {samples: 1000, confidence: 0.95, fail_on: interval}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from airflow_aisec.core.policy.base import GateSection, Severity, StrictModel
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from airflow_aisec.core.fairness_metrics import FairnessResult

GATE = "bias"

#: Per-group metrics a threshold can bound (applied to every group).
GROUP_METRICS: tuple[str, ...] = (
    "selection_rate",
    "accuracy",
    "true_positive_rate",
    "false_positive_rate",
    "false_negative_rate",
    "true_negative_rate",
    "roc_auc",
)
#: Between-group metrics (fairlearn's definitions; see ``fairness_metrics.DISPARITY_METRICS``).
DISPARITY_METRICS: tuple[str, ...] = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
    "equal_opportunity_ratio",
    "accuracy_difference",
    "accuracy_ratio",
    "false_positive_rate_difference",
    "false_positive_rate_ratio",
    "false_negative_rate_difference",
    "false_negative_rate_ratio",
    "roc_auc_difference",
    "roc_auc_ratio",
)
SCORE_METRICS = frozenset({"roc_auc", "roc_auc_difference", "roc_auc_ratio"})
# Metrics that divide by a group's positive (negative) labels: a group lacking them is a pitfall.
_NEEDS_POSITIVES = ("equalized_odds", "equal_opportunity", "true_positive_rate", "false_negative_rate", "roc_auc")
_NEEDS_NEGATIVES = ("equalized_odds", "false_positive_rate", "true_negative_rate", "roc_auc")

MISSING_LABEL = "<missing>"
_YAML_BOOLS = {"yes": "true", "y": "true", "on": "true", "no": "false", "n": "false", "off": "false"}
Scalar = bool | int | float | str


# ------------------------------------------------------------------------------------------------
# Policy
# ------------------------------------------------------------------------------------------------
class Bound(StrictModel):
    """An allowed range for a metric: ``min`` and/or ``max`` (inclusive). NaN never satisfies it."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _check(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("a threshold needs 'min' and/or 'max'")
        for v in (self.min, self.max):
            if v is not None and not math.isfinite(v):
                raise ValueError("threshold bounds must be finite numbers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("threshold 'min' is larger than 'max'")
        return self

    def violated(self, value: float | None) -> bool:
        """True when ``value`` is outside the range, or undefined (None/NaN)."""
        if value is None or not math.isfinite(value):
            return True
        return (self.max is not None and value > self.max) or (self.min is not None and value < self.min)

    def interval_violated(self, low: float | None, high: float | None) -> bool:
        """True when the whole confidence interval lies past the bound (or is undefined)."""
        if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
            return True
        return (self.max is not None and low > self.max) or (self.min is not None and high < self.min)

    def fails(self, value: float | None, ci: tuple[float | None, float | None] | None, *, interval: bool) -> bool:
        """The verdict on a metric: its whole interval past the bound (``interval`` mode, when there is
        one), else its point estimate; an undefined estimate always fails."""
        if interval and ci is not None:
            return value is None or self.interval_violated(*ci)
        return self.violated(value)

    def limits(self) -> dict[str, float]:
        """``{"min": ..., "max": ...}`` with the bounds that are set (for finding locations)."""
        return {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"within [{self.min:g}, {self.max:g}]"
        if self.max is not None:
            return f"<= {self.max:g}"
        return f">= {self.min:g}"


class BootstrapSettings(StrictModel):
    """Bootstrap confidence intervals for the metrics.

    Attributes:
        samples: Number of bootstrap resamples.
        confidence: Two-sided confidence level of the percentile interval.
        seed: Random seed (results are reproducible by default).
        fail_on: ``point_estimate`` fails when the metric itself is past its threshold;
            ``interval`` only when the whole interval lies past it.
    """

    samples: int = Field(default=1000, ge=50, le=100_000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    seed: int | None = 0
    fail_on: Literal["point_estimate", "interval"] = "point_estimate"


def _default_thresholds() -> dict[str, Bound]:
    # The four-fifths rule and a 0.1 parity gap: what the strict policy enforces.
    return {
        "demographic_parity_difference": Bound(max=0.1),
        "demographic_parity_ratio": Bound(min=0.8),
    }


class BiasPolicy(GateSection):
    """Policy section ``bias``.

    Column names may come from the policy and/or the operator / CLI arguments:
    sensitive columns are the union of both (a caller can add, never remove);
    a label, prediction or score column given by both must agree.

    Attributes:
        label: Label (ground truth) column.
        prediction: Prediction column (0/1 or mapped by ``prediction_positive_label``).
        score: Score column (probability); gives per-group ROC AUC, and the prediction
            when ``score_threshold`` is set and no prediction column is given.
        score_threshold: Predict positive when ``score >= score_threshold``.
        sensitive: Sensitive-feature columns.
        positive_label: Label value meaning "positive" (default: 1/true for 0/1, -1/1, true/false data).
        negative_label: Label value meaning "negative"; other values are then errors.
        prediction_positive_label: Prediction value meaning positive (default: ``positive_label``).
        prediction_negative_label: Prediction value meaning negative (default: ``negative_label``).
        intersections: ``true`` to also evaluate the intersection of all sensitive columns, or a
            list of column lists to intersect.
        method: fairlearn's ``between_groups`` (max vs min group) or ``to_overall``.
        equalized_odds_agg: fairlearn's ``worst_case`` or ``mean`` of the TPR/FPR components.
        min_group_size: Groups with fewer rows are findings (``bias.group_too_small``).
        exclude_small_groups: Leave small groups out of the metrics (they remain findings).
        reveal_small_group_labels: Show small groups' names (default: hidden, they can identify people).
        max_groups: More groups than this in one evaluation is an input error (not a categorical column?).
        missing_sensitive: ``group``: missing values form their own group; ``finding``: their rows are
            left out and reported (``bias.missing_sensitive_value``).
        thresholds: Allowed range per metric; between-group metrics by name, per-group metrics
            (``accuracy``, ``selection_rate``, ...) apply to every group.
        bootstrap: Optional bootstrap confidence intervals.
    """

    label: str | None = None
    prediction: str | None = None
    score: str | None = None
    score_threshold: float | None = None
    sensitive: list[str] = Field(default_factory=list)
    positive_label: Scalar | None = None
    negative_label: Scalar | None = None
    prediction_positive_label: Scalar | None = None
    prediction_negative_label: Scalar | None = None
    intersections: bool | list[list[str]] = False
    method: Literal["between_groups", "to_overall"] = "between_groups"
    equalized_odds_agg: Literal["worst_case", "mean"] = "worst_case"
    min_group_size: int = Field(default=30, ge=1)
    exclude_small_groups: bool = False
    reveal_small_group_labels: bool = False
    max_groups: int = Field(default=100, ge=2, le=100_000)
    missing_sensitive: Literal["group", "finding"] = "finding"
    thresholds: dict[str, Bound] = Field(default_factory=_default_thresholds)
    bootstrap: BootstrapSettings | None = None

    @field_validator("thresholds")
    @classmethod
    def _known_metrics(cls, value: dict[str, Bound]) -> dict[str, Bound]:
        if not value:
            raise ValueError("thresholds is empty: the bias gate would check nothing")
        known = set(GROUP_METRICS) | set(DISPARITY_METRICS)
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(known)}")
        return value

    @field_validator("intersections")
    @classmethod
    def _intersections(cls, value: bool | list[list[str]]) -> bool | list[list[str]]:
        if isinstance(value, list):
            for cols in value:
                if len(cols) < 2 or len(set(cols)) != len(cols):
                    raise ValueError("each intersection needs two or more distinct columns")
        return value

    @field_validator("sensitive")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("sensitive columns are listed twice")
        return value


# ------------------------------------------------------------------------------------------------
# Columns
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BiasColumns:
    """The columns a bias check reads, resolved from the policy and the caller."""

    label: str
    prediction: str | None
    score: str | None
    sensitive: tuple[str, ...]
    intersections: tuple[tuple[str, ...], ...]

    @property
    def all(self) -> list[str]:
        cols = [self.label, self.prediction, self.score, *self.sensitive]
        return list(dict.fromkeys(c for c in cols if c))


def _split(value: Sequence[str] | str | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [c.strip() for c in value if c and c.strip()]


def _one(kind: str, from_policy: str | None, from_caller: str | None) -> str | None:
    if from_policy and from_caller and from_policy != from_caller:
        raise ConfigurationError(
            f"{kind} column given as '{from_caller}' by the caller but the policy sets '{from_policy}'"
        )
    return from_policy or from_caller or None


def resolve_columns(
    policy: BiasPolicy,
    *,
    label: str | None = None,
    prediction: str | None = None,
    score: str | None = None,
    sensitive: Sequence[str] | str | None = None,
) -> BiasColumns:
    """Merge the policy's columns with the caller's.

    Raises:
        ConfigurationError: a required column is given nowhere, or caller and policy disagree.
    """
    lab = _one("label", policy.label, label)
    pred = _one("prediction", policy.prediction, prediction)
    sc = _one("score", policy.score, score)
    sens = list(dict.fromkeys([*policy.sensitive, *_split(sensitive)]))
    if not lab:
        raise ConfigurationError("no label column: pass --label / label_column or set bias.label")
    if not pred and not (sc and policy.score_threshold is not None):
        raise ConfigurationError(
            "no prediction column: pass --prediction / prediction_column, set bias.prediction, "
            "or set bias.score with bias.score_threshold"
        )
    if not sens:
        raise ConfigurationError("no sensitive column: pass --sensitive / sensitive_columns or set bias.sensitive")
    roles = [c for c in (lab, pred, sc) if c]
    clash = [c for c in sens if c in roles]
    if clash or len(set(roles)) != len(roles):
        raise ConfigurationError("label, prediction, score and sensitive columns must be distinct columns")
    if isinstance(policy.intersections, list):
        inter = [tuple(cols) for cols in policy.intersections]
        for cols in inter:
            unknown = [c for c in cols if c not in sens]
            if unknown:
                raise ConfigurationError(f"intersection column(s) {unknown} are not sensitive columns")
    elif policy.intersections and len(sens) >= 2:
        inter = [tuple(sens)]
    else:
        inter = []
    needs_score = SCORE_METRICS & set(policy.thresholds)
    if needs_score and not sc:
        raise ConfigurationError(f"threshold(s) {sorted(needs_score)} need a score column (bias.score / --score)")
    return BiasColumns(label=lab, prediction=pred, score=sc, sensitive=tuple(sens), intersections=tuple(inter))


# ------------------------------------------------------------------------------------------------
# Encoding (pyarrow -> numpy codes); messages never quote data values
# ------------------------------------------------------------------------------------------------
def _canon(value: Any, *, lower: bool) -> str | None:
    """Canonical text of a category value; None for missing (null, NaN, blank)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    if not text:
        return None
    return text.lower() if lower else text


def _dictionary(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[Any]]:
    """Codes (int64, -1 for null) and the distinct values of a column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    enc = pc.dictionary_encode(arr)
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype("int64", copy=False)
    return codes, enc.dictionary.to_pylist()


def _binary(column: pa.ChunkedArray, name: str, role: str, positive: Any, negative: Any) -> np.ndarray:
    """Map a label/prediction column to 0/1.

    Raises:
        InputDataError: missing values, more than two values, or values the policy does not map.
    """
    import numpy as np

    codes, values = _dictionary(column)
    canon = [_canon(v, lower=True) for v in values]
    if isinstance(positive, bool) or isinstance(negative, bool):
        # YAML 1.1 reads an unquoted `yes`/`no` as a boolean: match the column's spellings too.
        canon = [_YAML_BOOLS.get(c, c) if c is not None else None for c in canon]
    missing = int(np.count_nonzero(codes < 0))
    bad_codes = [i for i, c in enumerate(canon) if c is None]
    if bad_codes:
        missing += int(np.count_nonzero(np.isin(codes, bad_codes)))
    if missing:
        raise InputDataError(f"{role} column '{name}' has {missing} missing value(s); every row needs one")
    distinct = sorted(set(canon))
    pos = _canon(positive, lower=True) if positive is not None else None
    neg = _canon(negative, lower=True) if negative is not None else None
    if pos is None:
        if neg is not None:
            raise ConfigurationError(f"{role}: a negative label is set without a positive label")
        for candidates, default in (({"0", "1"}, "1"), ({"true", "false"}, "true"), ({"-1", "1"}, "1")):
            if set(distinct) <= candidates:
                pos = default
                break
        else:
            raise InputDataError(
                f"{role} column '{name}' is not binary 0/1 or true/false ({len(distinct)} distinct value(s)); "
                f"map it with bias.positive_label"
                + (" / bias.prediction_positive_label" if role == "prediction" else "")
            )
    if neg is not None:
        if set(distinct) - {pos, neg}:
            raise InputDataError(
                f"{role} column '{name}' has {len(set(distinct) - {pos, neg})} value(s) that are neither the "
                f"positive nor the negative label"
            )
    elif len(distinct) > 2:
        raise InputDataError(f"{role} column '{name}' is not binary: {len(distinct)} distinct values")
    elif len(distinct) == 2 and pos not in distinct:
        raise InputDataError(f"{role} column '{name}': the positive label set in the policy is not one of its values")
    lut = np.array([1 if c == pos else 0 for c in canon] or [0], dtype=np.int8)
    return lut[codes]


def _scores(column: pa.ChunkedArray, name: str) -> np.ndarray:
    import numpy as np
    import pyarrow as pa

    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
            or pa.types.is_decimal(column.type)):
        raise InputDataError(f"score column '{name}' is not numeric")
    values = column.combine_chunks().cast(pa.float64()).to_numpy(zero_copy_only=False)
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise InputDataError(f"score column '{name}' has {bad} missing or non-finite value(s)")
    return values


@dataclass
class _Sensitive:
    codes: np.ndarray  # int64, -1 = missing (left out)
    labels: list[str]
    missing_rows: int


def category_codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    """Codes (-1 for missing: null, NaN, blank) and the canonical category names of a column.

    Values with the same canonical text are one category (" F" and "F", 1 and 1.0).
    """
    import numpy as np

    raw_codes, values = _dictionary(column)
    names: list[str] = []
    index: dict[str, int] = {}
    remap = np.empty(len(values) + 1, dtype=np.int64)
    for i, value in enumerate(values):
        text = _canon(value, lower=False)
        if text is None:
            remap[i] = -1
            continue
        if text not in index:
            index[text] = len(names)
            names.append(text)
        remap[i] = index[text]
    remap[len(values)] = -1  # null
    return remap[np.where(raw_codes < 0, len(values), raw_codes)], names


def _sensitive(column: pa.ChunkedArray, name: str, mode: str, max_groups: int) -> _Sensitive:
    import numpy as np

    codes, labels = category_codes(column)
    missing = codes < 0
    missing_rows = int(np.count_nonzero(missing))
    if missing_rows and mode == "group":
        codes = np.where(missing, len(labels), codes)
        labels.append(MISSING_LABEL)
    if len(labels) > max_groups:
        raise InputDataError(
            f"sensitive column '{name}' has {len(labels)} distinct values, more than max_groups "
            f"({max_groups}): is it a categorical column?"
        )
    return _Sensitive(codes=codes, labels=labels, missing_rows=missing_rows)


# ------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------
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
    kept_positions: list[int] = field(default_factory=list)  # display position of each metric column
    intervals: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    group_intervals: dict[str, list[tuple[float | None, float | None]]] = field(default_factory=dict)


def _num(value: Any) -> float | None:
    """JSON-safe float: NaN / inf become None (the evidence store's canonical JSON rejects NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: float | None) -> str:
    return "undefined (NaN)" if value is None else f"{value:.4g}"


def _compact(combined: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense group ids 0..G-1 for the combinations that occur, and the combination of each id."""
    import numpy as np

    if space <= max(4 * len(combined), 1 << 20):
        present = np.flatnonzero(np.bincount(combined, minlength=space))
        lut = np.full(space, -1, dtype=np.int64)
        lut[present] = np.arange(len(present))
        return lut[combined], present
    present, inverse = np.unique(combined, return_inverse=True)
    return inverse.astype(np.int64), present


def _grouping(
    columns: tuple[str, ...],
    encoded: Mapping[str, _Sensitive],
    y: np.ndarray,
    p: np.ndarray,
    scores: np.ndarray | None,
    policy: BiasPolicy,
) -> tuple[GroupingResult, list[Finding]]:
    import numpy as np

    from airflow_aisec.core.fairness_metrics import ConfusionCounts, fairness_metrics, roc_auc_by_group

    name = " & ".join(columns)
    findings: list[Finding] = []
    loc_base = {"sensitive": name}
    combined = np.zeros(len(y), dtype=np.int64)
    valid = np.ones(len(y), dtype=bool)
    space = 1
    for col in columns:
        enc = encoded[col]
        n_labels = max(len(enc.labels), 1)
        valid &= enc.codes >= 0
        space *= n_labels
        if space >= 2**63:  # int64 would wrap around and merge distinct groups
            raise ConfigurationError(
                f"intersection '{name}' has more value combinations than can be encoded; intersect fewer columns"
            )
        combined = combined * n_labels + np.maximum(enc.codes, 0)
    missing_rows = int(len(y) - np.count_nonzero(valid))
    if missing_rows:  # only in "finding" mode: "group" mode gave missing values a code
        findings.append(Finding(
            rule="bias.missing_sensitive_value",
            severity=Severity.MEDIUM,
            message=f"{missing_rows} row(s) have no value in sensitive column(s) '{name}' and were left out",
            count=missing_rows,
            location=dict(loc_base),
        ))
        y, p, combined = y[valid], p[valid], combined[valid]
        if scores is not None:
            scores = scores[valid]
    groups, present = _compact(combined, space)
    n_groups = len(present)
    if n_groups < 2:
        raise InputDataError(
            f"sensitive column(s) '{name}' have {n_groups} group(s) with data; bias metrics need at least two"
        )
    if n_groups > policy.max_groups:
        raise InputDataError(
            f"sensitive column(s) '{name}' form {n_groups} groups, more than max_groups ({policy.max_groups})"
        )
    # Group names: decode the combination back into each column's label.
    raw_labels: list[str] = []
    for combo in present.tolist():
        parts = []
        for col in reversed(columns):
            labels = encoded[col].labels
            combo, code = divmod(combo, max(len(labels), 1))
            parts.append((col, labels[code]))
        parts.reverse()
        raw_labels.append(parts[0][1] if len(parts) == 1 else ", ".join(f"{c}={v}" for c, v in parts))
    counts = ConfusionCounts.from_arrays(y, p, groups, n_groups)
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
    if scores is not None:
        if policy.exclude_small_groups and not keep.all():
            rows = keep[groups]
            remap = np.full(n_groups, -1, dtype=np.int64)
            remap[idx] = np.arange(len(idx))
            auc, auc_all = roc_auc_by_group(y[rows], scores[rows], remap[groups[rows]], len(idx))
        else:
            auc_g, auc_all = roc_auc_by_group(y, scores, groups, n_groups)
            auc = auc_g[idx]
        extra_by_group = {"roc_auc": auc}
        extra_overall = {"roc_auc": np.float64(auc_all)}
        result.auc = [_num(a) for a in auc]
    metrics = fairness_metrics(
        sub, method=policy.method, eo_agg=policy.equalized_odds_agg,
        extra_by_group=extra_by_group, extra_overall=extra_overall,
    )
    result.metrics = metrics
    # Metric arrays follow `kept`; excluded groups stay listed in the output, without rates.
    result.kept_positions = [order.index(i) for i in kept]
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

    from airflow_aisec.core.fairness_metrics import ConfusionCounts, fairness_metrics

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
        result.intervals[name] = (_num(lo), _num(hi))
    for name, values in boot.by_group.items():
        lo, hi = _ci(values)
        result.group_intervals[name] = [(_num(a), _num(b)) for a, b in zip(lo, hi)]


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
            value = _num(metrics.disparities[metric])
            ci = result.intervals.get(metric)
            if not bound.fails(value, ci, interval=interval_mode):
                continue
            why = ""
            if value is None and metric.endswith("_ratio"):
                why = " (the largest group value is 0, e.g. no positive predictions at all)"
            ci_text = f", {int(policy.bootstrap.confidence * 100)}% CI [{_fmt(ci[0])}, {_fmt(ci[1])}]" \
                if ci is not None and policy.bootstrap is not None else ""
            findings.append(Finding(
                rule=f"{GATE}.{metric}",
                severity=Severity.HIGH,
                message=(f"{metric} over '{result.name}' is {_fmt(value)}{why}{ci_text}; "
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
            for j, pos in enumerate(kept_positions):
                value = _num(values[j])
                ci = cis[j] if cis is not None else None
                if not bound.fails(value, ci, interval=interval_mode):
                    continue
                label = result.labels[pos]
                findings.append(Finding(
                    rule=f"{GATE}.{metric}",
                    severity=Severity.HIGH,
                    message=(f"{metric} of group '{label}' of '{result.name}' is {_fmt(value)}; "
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
                group[name] = _num(values[j])
            for name, cis in result.group_intervals.items():
                group[f"{name}_ci"] = list(cis[j])
        out["groups"].append(group)
    if m is not None:
        out["overall"] = {k: _num(v) for k, v in m.overall.items()}
        out["disparities"] = {k: _num(v) for k, v in m.disparities.items()}
        if result.intervals:
            out["intervals"] = {k: list(v) for k, v in result.intervals.items()}
    return out


@dataclass
class BiasEvaluation:
    """Everything the bias check computed: findings and a JSON-safe metrics document."""

    findings: list[Finding]
    metrics: dict[str, Any]


def evaluate_bias(table: pa.Table, policy: BiasPolicy, columns: BiasColumns) -> BiasEvaluation:
    """Compute metrics and findings for a table already in memory.

    Raises:
        InputDataError: bad input (see module docs).
    """
    import numpy as np

    if table.num_rows == 0:
        raise InputDataError("the table is empty")
    names = table.schema.names
    missing = [c for c in columns.all if c not in names]
    if missing:
        raise InputDataError(f"column(s) not in the data: {', '.join(map(repr, missing))}")
    y = _binary(table.column(columns.label), columns.label, "label", policy.positive_label, policy.negative_label)
    scores = _scores(table.column(columns.score), columns.score) if columns.score else None
    if columns.prediction:
        pos = policy.prediction_positive_label
        neg = policy.prediction_negative_label
        if pos is None:
            pos, neg = policy.positive_label, (neg if neg is not None else policy.negative_label)
        p = _binary(table.column(columns.prediction), columns.prediction, "prediction", pos, neg)
    else:
        assert scores is not None and policy.score_threshold is not None
        p = (scores >= policy.score_threshold).astype(np.int8)
    encoded = {c: _sensitive(table.column(c), c, policy.missing_sensitive, policy.max_groups)
               for c in columns.sensitive}

    findings: list[Finding] = []
    groupings: list[GroupingResult] = []
    for cols in [(c,) for c in columns.sensitive] + list(columns.intersections):
        result, found = _grouping(cols, encoded, y, p, scores, policy)
        findings.extend(found)
        findings.extend(_threshold_findings(result, policy))
        groupings.append(result)
    metrics: dict[str, Any] = {
        "rows": table.num_rows,
        "columns": {"label": columns.label, "prediction": columns.prediction, "score": columns.score,
                    "sensitive": list(columns.sensitive)},
        "method": policy.method,
        "equalized_odds_agg": policy.equalized_odds_agg,
        "min_group_size": policy.min_group_size,
        "positive_rate": _num(y.mean()),
        "prediction_rate": _num(p.mean()),
        "thresholds": {k: v.model_dump(exclude_none=True) for k, v in policy.thresholds.items()},
        "bootstrap": policy.bootstrap.model_dump() if policy.bootstrap else None,
        "groupings": [_grouping_metrics(g, policy) for g in groupings],
    }
    return BiasEvaluation(findings=findings, metrics=metrics)


def _read_input(uri: str, columns: list[str], s3_client: Any) -> tuple[pa.Table, InputRef]:
    """Read only the needed columns; digest the file as read (S3 objects via their downloaded copy)."""
    import pyarrow as pa

    from airflow_aisec.core.io.storage import sha256_file
    from airflow_aisec.core.io.tabular import detect_format, iter_batches, local_copy, open_dataset

    fmt = detect_format(uri)
    with local_copy(uri, s3_client=s3_client) as copy:
        digest = sha256_file(copy.path)
        dataset = open_dataset(copy.path, fmt, uri=uri)
        batches = list(iter_batches(dataset, columns=columns, uri=uri))
        schema = pa.schema([dataset.schema.field(c) for c in columns])
        table = pa.Table.from_batches(batches, schema=schema)
    if table.num_rows == 0:
        raise InputDataError(f"{uri}: the table is empty")
    return table, InputRef(uri=uri, sha256=digest)


def check_bias(
    data: str,
    policy: BiasPolicy,
    *,
    label: str | None = None,
    prediction: str | None = None,
    score: str | None = None,
    sensitive: Sequence[str] | str | None = None,
    report: str | None = None,
    report_meta: Mapping[str, Any] | None = None,
    s3_client: Any = None,
    report_s3_client: Any = None,
) -> CheckOutcome:
    """The bias gate's core check.

    Args:
        data: Predictions table: local path or ``s3://`` URI (CSV or Parquet).
        policy: The ``bias`` policy section.
        label: Label column (merged with the policy's).
        prediction: Prediction column.
        score: Score column.
        sensitive: Sensitive columns (list or comma-separated), added to the policy's.
        report: Where to write the HTML report (local path or ``s3://``); None for no report.
        report_meta: Header fields for the report (policy name/digest, DAG/run/task).
        s3_client: boto3 client for reading ``s3://`` data.
        report_s3_client: boto3 client for writing an ``s3://`` report (default: ``s3_client``).

    Returns:
        Findings, metrics, the input digest and the report reference.

    Raises:
        ConfigurationError: columns not resolvable. InputDataError: bad input.
        ServiceUnavailableError / AccessDeniedError: S3 problems.
    """
    columns = resolve_columns(policy, label=label, prediction=prediction, score=score, sensitive=sensitive)
    table, input_ref = _read_input(str(data), columns.all, s3_client)
    evaluation = evaluate_bias(table, policy, columns)
    outcome = CheckOutcome(findings=evaluation.findings, metrics=evaluation.metrics, inputs=[input_ref])
    if report:
        from airflow_aisec.core.report import render_bias_report, write_report

        html_text = render_bias_report(
            evaluation.metrics, evaluation.findings, inputs=[input_ref], meta=report_meta or {}
        )
        ref, digest = write_report(html_text, report, name="bias-report",
                                   s3_client=report_s3_client or s3_client)
        outcome.reports.append(ref)
        outcome.metrics["report_sha256"] = digest
    return outcome
