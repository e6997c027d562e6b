"""The ``bias`` policy section (schema only; the engine is :mod:`airflow_aisec.core.gates.bias`).

Example::

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

from typing import Literal

from pydantic import Field, field_validator

from airflow_aisec.core.policy.base import Bound, GateSection, StrictModel

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
#: Between-group metrics (fairlearn's definitions; computed by ``core/gates/bias/_metrics.py``).
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
Scalar = bool | int | float | str


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
        sketch_bins: Bins of the score sketch of each grouping (ROC AUC). While the scores of a
            grouping have no more distinct (group, score) pairs than this, ROC AUC is exact (equal to
            scikit-learn's); beyond, each AUC comes with an error bound (``roc_auc_error_bound``) and
            a threshold within it fails closed. Memory: about 40 bytes x ``sketch_bins`` per grouping.
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
    sketch_bins: int = Field(default=65_536, ge=1024, le=4_194_304)

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


__all__ = ["DISPARITY_METRICS", "GROUP_METRICS", "SCORE_METRICS", "BiasPolicy", "BootstrapSettings", "Bound", "Scalar"]
