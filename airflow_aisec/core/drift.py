"""Drift gate: compare a current table with a reference table, feature by feature.

Per feature:

* numeric: PSI over bins cut at the reference's quantiles (``bins`` of them,
  fewer when quantiles coincide), plus a bin for missing / non-finite values;
  and the two-sample Kolmogorov-Smirnov statistic and p-value (scipy);
* categorical (strings, booleans, or columns the policy declares categorical):
  PSI over the categories of both tables plus missing; categories absent from
  the reference are findings (``drift.unseen_category``).

PSI = sum((cur - ref) * ln(cur / ref)) over bins, with proportions of 0
replaced by ``psi_epsilon`` so an empty bin gives a large, finite value.
Thresholds come from the policy: a default for every feature, overridden per
feature metric by metric. NaN (e.g. KS on a feature with no current values)
never satisfies a threshold.

Results carry aggregates only: category names never leave the process except
in the HTML report, and only for categories seen at least
``category_label_min_count`` times in the reference (numeric bin edges are
never shown, being data values).

Example policy section::

    drift:
      exclude: [customer_id]
      categorical: [zip_code]
      bins: 10
      thresholds: {psi: {max: 0.2}, ks_statistic: {max: 0.1}}
      per_feature:
        income: {psi: {max: 0.1}}
      max_unseen_fraction: 0.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from airflow_aisec.core.bias import Bound, _fmt, _num, category_codes
from airflow_aisec.core.policy.base import GateSection, Severity, StrictModel
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

GATE = "drift"
DRIFT_METRICS = ("psi", "ks_statistic", "ks_pvalue")
#: Categories shown by name in the report at most (the rest are summed as "other").
REPORT_TOP_CATEGORIES = 15


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


# ------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------
def psi(reference_counts: np.ndarray, current_counts: np.ndarray, *, epsilon: float = 1e-4) -> float:
    """Population stability index of two count vectors over the same bins.

    Args:
        reference_counts: Counts per bin in the reference.
        current_counts: Counts per bin in the current data.
        epsilon: Proportion used instead of 0 (keeps the log finite).

    Returns:
        ``sum((cur - ref) * ln(cur / ref))`` over bins; NaN when either side is empty.
    """
    import numpy as np

    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    if r.sum() <= 0 or c.sum() <= 0:
        return float("nan")
    pr = r / r.sum()
    pc = c / c.sum()
    pr = np.where(pr == 0, epsilon, pr)
    pc = np.where(pc == 0, epsilon, pc)
    return float(np.sum((pc - pr) * np.log(pc / pr)))


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Interior cut points at the reference's quantiles, duplicates removed.

    Bin ``i`` holds values in ``(edges[i-1], edges[i]]``; the outer bins are open.
    """
    import numpy as np

    qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    return np.unique(np.quantile(reference, qs))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of finite ``values`` per bin (``len(edges) + 1`` bins)."""
    import numpy as np

    return np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)


# ------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------
@dataclass
class DriftEvaluation:
    """Findings, the JSON-safe metrics, and the report-only category names."""

    findings: list[Finding]
    metrics: dict[str, Any]
    report_labels: dict[str, list[str]] = field(default_factory=dict)


def _kind(dtype: pa.DataType, forced: bool) -> str | None:
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if forced:
        return "categorical"
    if pa.types.is_boolean(dtype) or pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "categorical"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if pa.types.is_temporal(dtype):
        return "numeric"
    return None


def _numeric(column: pa.ChunkedArray) -> np.ndarray:
    """float64 values, NaN for null and non-finite (temporal types as their integer ticks)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = column.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_temporal(arr.type):
        arr = pc.cast(arr, pa.int64()) if not pa.types.is_date32(arr.type) else pc.cast(arr, pa.int32())
    values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
    values[~np.isfinite(values)] = np.nan
    return values


def _threshold_findings(feature: str, stats: Mapping[str, float | None], thresholds: DriftThresholds,
                        kind: str) -> tuple[list[Finding], list[str]]:
    findings: list[Finding] = []
    violated: list[str] = []
    for metric, bound in thresholds.items():
        if metric.startswith("ks_") and kind != "numeric":
            continue  # KS is defined for numeric features only
        value = stats.get(metric)
        if not bound.violated(value):
            continue
        violated.append(metric)
        findings.append(Finding(
            rule=f"{GATE}.{metric}",
            severity=Severity.HIGH,
            message=(f"{metric} of feature '{feature}' is {_fmt(value)}; must be {bound.describe()}"
                     + ("; NaN never satisfies a threshold" if value is None else "")),
            location={"feature": feature, "metric": metric, "value": value, **bound.limits()},
        ))
    return findings, violated


def _numeric_feature(name: str, ref: np.ndarray, cur: np.ndarray, policy: DriftPolicy
                     ) -> tuple[dict[str, Any], list[str]]:
    import numpy as np

    r_ok = ref[~np.isnan(ref)]
    c_ok = cur[~np.isnan(cur)]
    if len(r_ok) == 0:
        raise InputDataError(f"feature '{name}' has no values in the reference table")
    edges = quantile_edges(r_ok, policy.bins)
    rc = bin_counts(r_ok, edges)
    cc = bin_counts(c_ok, edges) if len(c_ok) else np.zeros_like(rc)
    bins = [str(i + 1) for i in range(len(rc))]
    r_missing, c_missing = len(ref) - len(r_ok), len(cur) - len(c_ok)
    if r_missing or c_missing:
        rc = np.append(rc, r_missing)
        cc = np.append(cc, c_missing)
        bins.append("missing")
    stats: dict[str, Any] = {"psi": _num(psi(rc, cc, epsilon=policy.psi_epsilon))}
    if len(c_ok):
        from scipy.stats import ks_2samp  # scipy is heavy: import only when a numeric feature is checked

        ks = ks_2samp(r_ok, c_ok)
        stats["ks_statistic"] = _num(ks.statistic)
        stats["ks_pvalue"] = _num(ks.pvalue)
    else:
        stats["ks_statistic"] = stats["ks_pvalue"] = None
    stats["bin_count"] = int(len(edges) + 1)
    stats["histogram"] = {"bins": bins, "reference": (rc / rc.sum()).tolist(), "current":
                          (cc / cc.sum()).tolist() if cc.sum() else [0.0] * len(cc)}
    return stats, bins


def _categorical_feature(name: str, ref_col: pa.ChunkedArray, cur_col: pa.ChunkedArray, policy: DriftPolicy
                         ) -> tuple[dict[str, Any], list[str]]:
    import numpy as np

    r_codes, r_names = category_codes(ref_col)
    c_codes, c_names = category_codes(cur_col)
    if not r_names:
        raise InputDataError(f"feature '{name}' has no values in the reference table")
    union = {n: i for i, n in enumerate(r_names)}
    for n in c_names:
        union.setdefault(n, len(union))
    if len(union) > policy.max_categories:
        raise InputDataError(
            f"feature '{name}' has {len(union)} distinct categories, more than max_categories "
            f"({policy.max_categories}): exclude it or declare it numeric"
        )
    k = len(union)
    c_map = np.array([union[n] for n in c_names] + [-1], dtype=np.int64)
    c_codes = c_map[np.where(c_codes < 0, len(c_names), c_codes)]
    rc = np.bincount(r_codes[r_codes >= 0], minlength=k)
    cc = np.bincount(c_codes[c_codes >= 0], minlength=k)
    r_missing = int(np.count_nonzero(r_codes < 0))
    c_missing = int(np.count_nonzero(c_codes < 0))
    rc_all = np.append(rc, r_missing)
    cc_all = np.append(cc, c_missing)
    unseen = np.arange(k) >= len(r_names)
    unseen_rows = int(cc[unseen].sum())
    stats: dict[str, Any] = {
        "psi": _num(psi(rc_all, cc_all, epsilon=policy.psi_epsilon)),
        "categories_reference": len(r_names),
        "categories_current": len(c_names),
        "unseen_categories": int(np.count_nonzero(cc[unseen])),
        "unseen_rows": unseen_rows,
        "unseen_fraction": _num(unseen_rows / len(c_codes)) if len(c_codes) else None,
    }
    # Histogram: most frequent reference categories, then "other", "unseen", "missing".
    order = np.argsort(-rc[: len(r_names)], kind="stable")
    top = order[:REPORT_TOP_CATEGORIES]
    rest = np.setdiff1d(np.arange(len(r_names)), top)
    labels: list[str] = []
    metric_bins: list[str] = []
    r_hist: list[float] = []
    c_hist: list[float] = []
    r_total = max(len(r_codes), 1)
    c_total = max(len(c_codes), 1)
    for rank, i in enumerate(top.tolist(), start=1):
        metric_bins.append(f"category {rank}")
        shown = policy.report_category_labels and rc[i] >= policy.category_label_min_count
        labels.append(r_names[i] if shown else f"category {rank}")
        r_hist.append(float(rc[i]) / r_total)
        c_hist.append(float(cc[i]) / c_total)
    for label, r_val, c_val in (
        ("other", rc[rest].sum(), cc[rest].sum()),
        ("unseen", 0, unseen_rows),
        ("missing", r_missing, c_missing),
    ):
        if r_val or c_val:
            metric_bins.append(label)
            labels.append(label)
            r_hist.append(float(r_val) / r_total)
            c_hist.append(float(c_val) / c_total)
    stats["histogram"] = {"bins": metric_bins, "reference": r_hist, "current": c_hist}
    return stats, labels


def resolve_features(policy: DriftPolicy, reference_columns: Sequence[str],
                     features: Sequence[str] | str | None = None) -> list[str]:
    """Features to compare: the policy's and the caller's (union), else all reference columns."""
    from airflow_aisec.core.bias import _split

    chosen = list(dict.fromkeys([*policy.features, *_split(features)]))
    if not chosen:
        chosen = [c for c in reference_columns if c not in policy.exclude]
    chosen = [c for c in chosen if c not in policy.exclude]
    if not chosen:
        raise ConfigurationError("no feature left to compare (all excluded)")
    unknown = sorted(set(policy.per_feature) - set(chosen))
    if unknown:
        raise ConfigurationError(f"per_feature names feature(s) that are not compared: {unknown}")
    return chosen


def evaluate_drift(reference: pa.Table, current: pa.Table, policy: DriftPolicy, *,
                   features: Sequence[str] | str | None = None) -> DriftEvaluation:
    """Compare two in-memory tables.

    Raises:
        InputDataError: empty table, missing column, unsupported column type, too many categories.
        ConfigurationError: feature selection problems.
    """
    if reference.num_rows == 0:
        raise InputDataError("the reference table is empty")
    if current.num_rows == 0:
        raise InputDataError("the current table is empty")
    chosen = resolve_features(policy, reference.schema.names, features)
    for table, which in ((reference, "reference"), (current, "current")):
        missing = [c for c in chosen if c not in table.schema.names]
        if missing:
            raise InputDataError(f"column(s) not in the {which} table: {', '.join(map(repr, missing))}")

    findings: list[Finding] = []
    per_feature: list[dict[str, Any]] = []
    report_labels: dict[str, list[str]] = {}
    forced = set(policy.categorical)
    for name in chosen:
        r_type, c_type = reference.schema.field(name).type, current.schema.field(name).type
        r_kind, c_kind = _kind(r_type, name in forced), _kind(c_type, name in forced)
        if r_kind is None:
            raise InputDataError(f"feature '{name}' has an unsupported type ({r_type}); exclude it")
        entry: dict[str, Any] = {"feature": name, "kind": r_kind,
                                 "reference_rows": reference.num_rows, "current_rows": current.num_rows}
        if c_kind != r_kind:
            findings.append(Finding(
                rule=f"{GATE}.type_changed",
                severity=Severity.HIGH,
                message=f"feature '{name}' is {r_kind} in the reference but {c_kind or 'unsupported'} in the current "
                        f"table",
                location={"feature": name, "reference_type": str(r_type), "current_type": str(c_type)},
            ))
            entry["violations"] = ["type_changed"]
            per_feature.append(entry)
            continue
        ref_col, cur_col = reference.column(name), current.column(name)
        if r_kind == "numeric":
            ref_vals, cur_vals = _numeric(ref_col), _numeric(cur_col)
            import numpy as np

            entry["reference_missing_fraction"] = _num(np.isnan(ref_vals).mean())
            entry["current_missing_fraction"] = _num(np.isnan(cur_vals).mean())
            stats, labels = _numeric_feature(name, ref_vals, cur_vals, policy)
        else:
            stats, labels = _categorical_feature(name, ref_col, cur_col, policy)
            hist = stats["histogram"]
            entry["reference_missing_fraction"] = hist["reference"][-1] if hist["bins"][-1] == "missing" else 0.0
            entry["current_missing_fraction"] = hist["current"][-1] if hist["bins"][-1] == "missing" else 0.0
        entry.update(stats)
        thresholds = policy.thresholds.merged(policy.per_feature.get(name))
        if not any(r_kind == "numeric" or not metric.startswith("ks_") for metric, _ in thresholds.items()):
            # KS is numeric-only: a categorical feature with KS thresholds alone would be checked against nothing.
            raise ConfigurationError(
                f"feature '{name}' is categorical and none of its thresholds apply to it (KS is for numeric "
                "features): add a psi threshold (drift.thresholds or drift.per_feature) or exclude it"
            )
        entry["thresholds"] = {k: v.model_dump(exclude_none=True) for k, v in thresholds.items()}
        found, violated = _threshold_findings(name, stats, thresholds, r_kind)
        findings.extend(found)
        if r_kind == "categorical" and stats["unseen_rows"]:
            fraction = stats["unseen_fraction"] or 0.0
            if fraction > policy.max_unseen_fraction:
                violated.append("unseen_category")
                findings.append(Finding(
                    rule=f"{GATE}.unseen_category",
                    severity=Severity.HIGH,
                    message=(f"feature '{name}' has {stats['unseen_categories']} categor"
                             f"{'y' if stats['unseen_categories'] == 1 else 'ies'} not seen in the reference "
                             f"({stats['unseen_rows']} row(s), {fraction:.2%} of current; allowed "
                             f"{policy.max_unseen_fraction:.2%})"),
                    count=stats["unseen_rows"],
                    location={"feature": name, "categories": stats["unseen_categories"],
                              "fraction": _num(fraction)},
                ))
        entry["violations"] = violated
        report_labels[name] = labels
        per_feature.append(entry)

    metrics = {
        "reference_rows": reference.num_rows,
        "current_rows": current.num_rows,
        "bins": policy.bins,
        "features_checked": len(chosen),
        "features_drifted": sum(1 for f in per_feature if f.get("violations")),
        "features": per_feature,
    }
    return DriftEvaluation(findings=findings, metrics=metrics, report_labels=report_labels)


def _read_both(reference: str, current: str, policy: DriftPolicy, features: Sequence[str] | str | None,
               s3_client: Any) -> tuple[pa.Table, pa.Table, list[str], list[InputRef]]:
    """Read only the compared columns of both tables (unrelated columns are never parsed)."""
    import pyarrow as pa

    from airflow_aisec.core.io.storage import sha256_file
    from airflow_aisec.core.io.tabular import detect_format, iter_batches, local_copy, open_dataset

    ref_fmt, cur_fmt = detect_format(reference), detect_format(current)
    with local_copy(reference, s3_client=s3_client) as ref_copy, \
            local_copy(current, s3_client=s3_client) as cur_copy:
        ref_ds = open_dataset(ref_copy.path, ref_fmt, uri=reference)
        cur_ds = open_dataset(cur_copy.path, cur_fmt, uri=current)
        chosen = resolve_features(policy, ref_ds.schema.names, features)
        tables = []
        for ds_, which, uri in ((ref_ds, "reference", reference), (cur_ds, "current", current)):
            missing = [c for c in chosen if c not in ds_.schema.names]
            if missing:
                raise InputDataError(f"column(s) not in the {which} table: {', '.join(map(repr, missing))}")
            schema = pa.schema([ds_.schema.field(c) for c in chosen])
            table = pa.Table.from_batches(list(iter_batches(ds_, columns=chosen, uri=uri)), schema=schema)
            if table.num_rows == 0:
                raise InputDataError(f"the {which} table is empty: {uri}")
            tables.append(table)
        inputs = [InputRef(uri=reference, sha256=sha256_file(ref_copy.path)),
                  InputRef(uri=current, sha256=sha256_file(cur_copy.path))]
    return tables[0], tables[1], chosen, inputs


def check_drift(
    reference: str,
    current: str,
    policy: DriftPolicy,
    *,
    features: Sequence[str] | str | None = None,
    report: str | None = None,
    report_meta: Mapping[str, Any] | None = None,
    s3_client: Any = None,
    report_s3_client: Any = None,
) -> CheckOutcome:
    """The drift gate's core check.

    Args:
        reference: Reference table (local path or ``s3://``; CSV or Parquet).
        current: Current table.
        policy: The ``drift`` policy section.
        features: Features to compare, added to the policy's (list or comma-separated).
        report: Where to write the HTML report (local path or ``s3://``); None for no report.
        report_meta: Header fields for the report.
        s3_client: boto3 client for reading ``s3://`` tables.
        report_s3_client: boto3 client for an ``s3://`` report (default: ``s3_client``).

    Returns:
        Findings, metrics, input digests and the report reference.
    """
    ref_table, cur_table, chosen, inputs = _read_both(str(reference), str(current), policy, features, s3_client)
    evaluation = evaluate_drift(ref_table, cur_table, policy, features=chosen)
    outcome = CheckOutcome(findings=evaluation.findings, metrics=evaluation.metrics, inputs=inputs)
    if report:
        from airflow_aisec.core.report import render_drift_report, write_report

        html_text = render_drift_report(evaluation.metrics, evaluation.findings, inputs=inputs,
                                        meta=report_meta or {}, labels=evaluation.report_labels)
        ref, digest = write_report(html_text, report, name="drift-report", s3_client=report_s3_client or s3_client)
        outcome.reports.append(ref)
        outcome.metrics["report_sha256"] = digest
    return outcome
