"""The ``drift`` policy section (schema only; the engine is :mod:`airflow_aisec.core.gates.drift`).

Example::

      exclude: [customer_id]
      categorical: [zip_code]
      bins: 10
      thresholds: {psi: {max: 0.2}, ks_statistic: {max: 0.1}}
      per_feature:
        income: {psi: {max: 0.1}}
      max_unseen_fraction: 0.0
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from airflow_aisec.core.policy.base import Bound, GateSection, StrictModel

DRIFT_METRICS = ("psi", "ks_statistic", "ks_pvalue")


class DriftThresholds(StrictModel):
    """Allowed ranges of the drift metrics of one feature."""

    psi: Bound | None = None
    ks_statistic: Bound | None = None
    ks_pvalue: Bound | None = None

    def merged(self, override: DriftThresholds | None) -> DriftThresholds:
        if override is None:
            return self
        return DriftThresholds(**{k: getattr(override, k) or getattr(self, k) for k in DRIFT_METRICS})

    def items(self) -> list[tuple[str, Bound]]:
        return [(k, getattr(self, k)) for k in DRIFT_METRICS if getattr(self, k) is not None]


def _default_thresholds() -> DriftThresholds:
    # PSI > 0.2 is the usual "significant shift"; KS D > 0.1 a clear gap between the CDFs.
    return DriftThresholds(psi=Bound(max=0.2), ks_statistic=Bound(max=0.1))


class DriftPolicy(GateSection):
    """Policy section ``drift``.

    Attributes:
        features: Features to compare (default: every reference column, minus ``exclude``).
        exclude: Columns never compared (ids, timestamps, labels...).
        categorical: Columns treated as categorical even when numeric (codes, zip codes).
        bins: Number of reference-quantile bins for numeric PSI.
        psi_epsilon: Proportion used instead of 0 in PSI.
        thresholds: Default thresholds for every feature.
        per_feature: Per-feature overrides, merged metric by metric over ``thresholds``.
        max_unseen_fraction: Largest fraction of current rows allowed in categories the reference
            never had; 0 makes any unseen category a finding.
        max_categories: More distinct categories than this is an input error (an id column?).
        report_category_labels: Name frequent categories in the HTML report.
        category_label_min_count: Reference count from which a category is named in the report.
        sketch_bins: Bins of each numeric feature's value sketch (per table). While a feature has
            no more distinct values than this, its KS test is exact (equal to scipy's); beyond, KS
            comes with an error bound (``ks_error_bound`` in the metrics) and the gate fails closed
            when the threshold lies within it. PSI stays exact. Memory per numeric feature is about
            80 bytes x ``sketch_bins``, whatever the number of rows.
    """

    features: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    bins: int = Field(default=10, ge=2, le=100)
    psi_epsilon: float = Field(default=1e-4, gt=0.0, le=0.01)
    thresholds: DriftThresholds = Field(default_factory=_default_thresholds)
    per_feature: dict[str, DriftThresholds] = Field(default_factory=dict)
    max_unseen_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    max_categories: int = Field(default=1000, ge=2)
    report_category_labels: bool = True
    category_label_min_count: int = Field(default=10, ge=1)
    sketch_bins: int = Field(default=16_384, ge=10_000, le=1_048_576)

    @field_validator("thresholds")
    @classmethod
    def _not_empty(cls, value: DriftThresholds) -> DriftThresholds:
        if not value.items():
            raise ValueError("thresholds is empty: the drift gate would check nothing")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DriftPolicy:
        clash = set(self.features) & set(self.exclude)
        if clash:
            raise ValueError(f"feature(s) {sorted(clash)} are both listed and excluded")
        return self


__all__ = ["DRIFT_METRICS", "Bound", "DriftPolicy", "DriftThresholds"]
