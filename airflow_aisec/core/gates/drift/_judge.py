"""Judging drift statistics against the policy: findings and the metrics document.

One implementation for the single-node check (:func:`._evaluate.evaluate_sources`) and the merge of
partition summaries (:func:`.summary.check_summary`), so both give the same verdict, findings and
metrics from the same per-feature statistics. A wide table has 100,000 features and most of them
may drift: everything that depends only on the policy (merged thresholds, their JSON, bound texts)
is computed once per distinct ``per_feature`` override.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.drift import DriftPolicy
from airflow_aisec.core.result import Finding
from airflow_aisec.core.stats import format_metric, json_float
from airflow_aisec.exceptions import ConfigurationError

GATE = "drift"

#: Where a metric's other end lies when a sketch merged values (the true value is in between).
_OTHER_END = {"ks_statistic": "ks_statistic_upper", "ks_pvalue": "ks_pvalue_lower"}


@dataclass
class DriftEvaluation:
    """Findings, the JSON-safe metrics, and the report-only category names."""

    findings: list[Finding]
    metrics: dict[str, Any]
    report_labels: dict[str, list[str]] = field(default_factory=dict)


def finding(rule: str, message: str, location: dict[str, Any], count: int | None = None) -> Finding:
    """A HIGH finding of this gate (built without validation: a wide table makes 100,000s)."""
    return Finding.trusted(rule, _HIGH, message, location, count)


def type_changed(name: str, reference_kind: str, current_kind: str | None, reference_type: str,
                 current_type: str) -> Finding:
    return finding(
        f"{GATE}.type_changed",
        f"feature '{name}' is {reference_kind} in the reference but {current_kind or 'unsupported'} in the current "
        "table",
        {"feature": name, "reference_type": reference_type, "current_type": current_type},
    )


_HIGH = Severity.HIGH.value
#: The largest finite float: a missing bound compares as this, so that +-inf (like NaN) fails every bound.
_FAR = sys.float_info.max


class _Check(NamedTuple):
    """One threshold, with what its findings repeat (computed once). A tuple: the hot loop unpacks it."""

    metric: str
    other: str | None
    numeric_only: bool
    low: float  # the bound's min, or -_FAR
    high: float  # its max, or _FAR
    location: dict[str, Any]  # a finding's location, with its feature and value to fill in
    rule: str
    head: str  # a finding's message up to the feature's name
    must: str  # and after its value


class Judge:
    """The policy's thresholds for each feature, and the findings / metrics from per-feature statistics."""

    def __init__(self, section: DriftPolicy) -> None:
        self.section = section
        self._merged: dict[int, tuple[list[_Check], dict[str, Any]]] = {}
        self._applicable: bool | None = None  # a categorical feature passed require_applicable

    def _thresholds(self, name: str) -> tuple[list[_Check], dict[str, Any]]:
        override = self.section.per_feature.get(name) if self.section.per_feature else None
        found = self._merged.get(id(override))
        if found is None:  # one merge / dump per distinct override, not per feature
            merged = self.section.thresholds.merged(override)
            checks = [_Check(metric, _OTHER_END.get(metric), metric.startswith("ks_"),
                             -_FAR if bound.min is None else bound.min, _FAR if bound.max is None else bound.max,
                             {"feature": None, "metric": metric, "value": None, **bound.limits()}, f"{GATE}.{metric}",
                             f"{metric} of feature '", f"; must be {bound.describe()}")
                      for metric, bound in merged.items()]
            found = self._merged[id(override)] = (
                checks, {k: v.model_dump(exclude_none=True) for k, v in merged.items()})
        return found

    def require_applicable(self, name: str) -> None:
        """A categorical feature needs a threshold other than KS (numeric-only), else it is checked
        against nothing: a configuration error."""
        if not self.section.per_feature and self._applicable is not None:
            return  # the same thresholds for every feature, already found applicable
        if all(check.numeric_only for check in self._thresholds(name)[0]):
            raise ConfigurationError(
                f"feature '{name}' is categorical and none of its thresholds apply to it (KS is for numeric "
                "features): add a psi threshold (drift.thresholds or drift.per_feature) or exclude it"
            )
        self._applicable = True

    @staticmethod
    def _threshold_findings(feature: str, stats: Mapping[str, Any], checks: Sequence[_Check], kind: str,
                            items: list[tuple[str, str, dict[str, Any], int | None]]) -> list[str]:
        """Findings of one feature, as (rule, message, location, count) appended to ``items`` (built
        into findings at once: :meth:`Finding.trusted_many`), its violated metrics returned. A KS value
        known only within an error bound fails closed: it fails when any value of its range
        ``[ks_statistic, ks_statistic_upper]`` would fail.

        A bound fails None, NaN and +-inf (:meth:`Bound.violated`): a missing bound is the largest
        finite float, and ``not low <= v <= high`` holds for NaN (this loop runs once per feature)."""
        violated: list[str] = []
        for metric, other_key, numeric_only, low, high, template, rule, head, must in checks:
            if numeric_only and kind != "numeric":
                continue  # KS is defined for numeric features only
            value = stats.get(metric)
            value_fails = value is None or not low <= value <= high
            other = None if other_key is None else stats.get(other_key)
            if not value_fails and (other is None or low <= other <= high):
                continue
            violated.append(metric)
            location = template.copy()  # its key order; cheaper than a literal with **limits
            location["feature"] = feature
            location["value"] = value
            if other is None:
                if value is None:
                    message = f"{head}{feature}' is undefined (NaN){must}; NaN never satisfies a threshold"
                else:
                    # format_metric, inlined (hot): "%.4g" % v is f"{v:.4g}" (a test compares them), faster.
                    message = f"{head}{feature}' is {'%.4g' % value}{must}"  # noqa: UP031
            else:
                location["other_end"] = other
                within = "" if value_fails else (
                    f" (sketch error bound {format_metric(stats.get('ks_error_bound'))}: it may be "
                    f"{format_metric(other)}, so the gate fails closed)")
                message = (f"{head}{feature}' is {format_metric(value)}{within}{must}"
                           + ("; NaN never satisfies a threshold" if value is None else ""))
            items.append((rule, message, location, None))
        return violated

    def _unseen(self, name: str, stats: Mapping[str, Any],
                items: list[tuple[str, str, dict[str, Any], int | None]]) -> bool:
        fraction = stats["unseen_fraction"] or 0.0
        limit = self.section.max_unseen_fraction
        if fraction <= limit:
            return False
        categories = stats["unseen_categories"]
        items.append((
            f"{GATE}.unseen_category",
            (f"feature '{name}' has {categories} categor{'y' if categories == 1 else 'ies'} not seen in the "
             f"reference ({stats['unseen_rows']} row(s), {fraction:.2%} of current; allowed {limit:.2%})"),
            {"feature": name, "categories": categories, "fraction": json_float(fraction)},
            stats["unseen_rows"],
        ))
        return True

    def evaluate(self, chosen: Sequence[str], kinds: Mapping[str, str],
                 results: Mapping[str, tuple[dict[str, Any], list[str]]], ref_rows: int, cur_rows: int,
                 findings: list[Finding], *, entries: bool = False) -> DriftEvaluation:
        """The evaluation of the ``chosen`` features (reference ``kinds``). A feature without ``results``
        changed type (its finding is already in ``findings``, which the threshold findings extend).
        With ``entries``, each result's statistics are already its metrics entry (name, kind, rows,
        statistics: :func:`._block.entry`), completed in place rather than copied."""
        per_feature: list[dict[str, Any]] = []
        report_labels: dict[str, list[str]] = {}
        drifted = 0
        # Without per_feature overrides every feature has the same thresholds (100,000 lookups spared).
        default = None if self.section.per_feature else self._thresholds("")
        check_findings = self._threshold_findings
        items: list[tuple[str, str, dict[str, Any], int | None]] = []
        for name in chosen:
            kind = kinds[name]
            if name not in results:
                per_feature.append({"feature": name, "kind": kind, "violations": ["type_changed"],
                                    "reference_rows": ref_rows, "current_rows": cur_rows})
                drifted += 1
                continue
            stats, labels = results[name]
            checks, dump = default or self._thresholds(name)
            if entries:
                entry = stats
                entry["thresholds"] = dump
            else:
                entry = {"feature": name, "kind": kind, "reference_rows": ref_rows, "current_rows": cur_rows, **stats,
                         "thresholds": dump}
            violated = check_findings(name, stats, checks, kind, items)
            if kind == "categorical" and stats["unseen_rows"] and self._unseen(name, stats, items):
                violated.append("unseen_category")
            entry["violations"] = violated
            drifted += bool(violated)
            report_labels[name] = labels
            per_feature.append(entry)
        findings.extend(Finding.trusted_many(_HIGH, items))
        metrics = {
            "reference_rows": ref_rows,
            "current_rows": cur_rows,
            "bins": self.section.bins,
            "sketch_bins": self.section.sketch_bins,
            "features_checked": len(chosen),
            "features_drifted": drifted,
            "features": per_feature,
        }
        return DriftEvaluation(findings=findings, metrics=metrics, report_labels=report_labels)
