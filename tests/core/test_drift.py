"""Drift gate core: PSI on reference quantiles, KS, unseen categories, thresholds, bad input."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy.stats import ks_2samp

from airflow_aisec.core.evidence import canonical_json
from airflow_aisec.core.gates.drift import bin_counts, check_drift, evaluate_drift, psi, quantile_edges
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.core.policy.sections.drift import DriftPolicy
from airflow_aisec.exceptions import ConfigurationError, InputDataError, PolicyError


def tables(n: int = 3000, seed: int = 0, shift: float = 0.0, new_region: float = 0.0):
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({
        "age": rng.normal(40, 10, n),
        "income": rng.lognormal(10, 0.5, n),
        "region": rng.choice(["north", "south", "east"], n),
    })
    regions = ["north", "south", "east", "mars"]
    probs = [(1 - new_region) / 3] * 3 + [new_region]
    cur = pd.DataFrame({
        "age": rng.normal(40 + shift, 10, n),
        "income": rng.lognormal(10, 0.5, n),
        "region": rng.choice(regions, n, p=probs),
    })
    return ref, cur


def evaluate(ref: pd.DataFrame, cur: pd.DataFrame, **kwargs):
    return evaluate_drift(DriftPolicy.model_validate(kwargs), pa.Table.from_pandas(ref, preserve_index=False),
                          pa.Table.from_pandas(cur, preserve_index=False))


def rules(ev) -> list[str]:
    return [f.rule for f in ev.findings]


def feature(ev, name):
    return next(f for f in ev.metrics["features"] if f["feature"] == name)


# ------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------
def test_psi_matches_the_textbook_formula():
    ref = np.array([25, 25, 25, 25])
    cur = np.array([10, 20, 30, 40])
    pr, pc = ref / 100, cur / 100
    assert psi(ref, cur) == pytest.approx(float(np.sum((pc - pr) * np.log(pc / pr))), abs=1e-12)
    assert psi(ref, ref) == 0.0
    # an empty bin uses epsilon instead of 0: large but finite
    assert math.isfinite(psi(np.array([50, 50, 0]), np.array([40, 40, 20]), epsilon=1e-4))
    assert math.isnan(psi(np.array([0, 0]), np.array([1, 1])))


def test_bins_are_reference_quantiles():
    ref = np.arange(1000, dtype=float)
    edges = quantile_edges(ref, 10)
    assert len(edges) == 9
    counts = bin_counts(ref, edges)
    assert counts.tolist() == [100] * 10  # deciles of the reference hold 10% each
    # a constant reference collapses to one edge: two bins
    assert len(quantile_edges(np.full(50, 3.0), 10)) == 1


def test_psi_and_ks_of_a_numeric_feature():
    ref, cur = tables(shift=5.0)
    ev = evaluate(ref, cur)
    age = feature(ev, "age")
    ks = ks_2samp(ref.age.to_numpy(), cur.age.to_numpy())
    assert age["ks_statistic"] == pytest.approx(ks.statistic, abs=1e-12)
    assert age["ks_pvalue"] == pytest.approx(ks.pvalue, rel=1e-9)
    edges = quantile_edges(ref.age.to_numpy(), 10)
    expected_psi = psi(bin_counts(ref.age.to_numpy(), edges), bin_counts(cur.age.to_numpy(), edges))
    assert age["psi"] == pytest.approx(expected_psi, abs=1e-12)
    assert age["histogram"]["bins"] == [str(i) for i in range(1, 11)]
    assert sum(age["histogram"]["reference"]) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------
# Findings
# ------------------------------------------------------------------------------------------------
def test_no_drift_passes():
    ref, cur = tables(seed=1)
    ev = evaluate(ref, cur)
    assert rules(ev) == []
    assert ev.metrics["features_checked"] == 3 and ev.metrics["features_drifted"] == 0


def test_shift_is_a_psi_and_ks_finding():
    ev = evaluate(*tables(shift=6.0))
    assert rules(ev) == ["drift.psi", "drift.ks_statistic"]
    f = ev.findings[0]
    assert f.location["feature"] == "age" and f.location["max"] == 0.2 and f.location["value"] > 0.2
    assert feature(ev, "age")["violations"] == ["psi", "ks_statistic"]


def test_unseen_categories_are_findings_without_naming_them():
    ev = evaluate(*tables(new_region=0.02))
    (f,) = [f for f in ev.findings if f.rule == "drift.unseen_category"]
    assert f.location["feature"] == "region" and f.location["categories"] == 1
    assert f.count == feature(ev, "region")["unseen_rows"] > 0
    assert "mars" not in json.dumps(ev.metrics) + json.dumps([x.model_dump() for x in ev.findings])
    tolerant = evaluate(*tables(new_region=0.02), max_unseen_fraction=0.05)
    assert "drift.unseen_category" not in rules(tolerant)


def test_per_feature_thresholds_override_the_default():
    ref, cur = tables(shift=1.5)  # mild shift: under the default PSI 0.2 and KS 0.1
    assert rules(evaluate(ref, cur)) == []
    strict_age = evaluate(ref, cur, per_feature={"age": {"psi": {"max": 0.01}}})
    assert rules(strict_age) == ["drift.psi"]
    assert feature(strict_age, "age")["thresholds"] == {"psi": {"max": 0.01}, "ks_statistic": {"max": 0.1}}


def test_ks_pvalue_threshold():
    ref, cur = tables(shift=1.5)
    # KS-only thresholds leave nothing to check on the categorical 'region': compared without it here
    ev = evaluate(ref, cur, thresholds={"ks_pvalue": {"min": 0.05}}, exclude=["region"])
    assert "drift.ks_pvalue" in rules(ev)


def test_a_feature_no_threshold_applies_to_is_a_configuration_error():
    # KS is defined for numeric features only: with KS-only thresholds a categorical feature was
    # compared against nothing, so any shift between its known categories passed.
    ref, cur = tables()
    cur["region"] = np.where(np.arange(len(cur)) % 100 == 0, "south", "north")  # 99% north now
    with pytest.raises(ConfigurationError, match="'region'"):
        evaluate(ref, cur, thresholds={"ks_statistic": {"max": 0.1}})
    ev = evaluate(ref, cur, thresholds={"ks_statistic": {"max": 0.1}}, per_feature={"region": {"psi": {"max": 0.2}}})
    assert "drift.psi" in rules(ev)


def test_missing_values_are_their_own_bin_and_nan_ks_fails():
    ref, cur = tables()
    cur.loc[: len(cur) // 2, "age"] = np.nan
    ev = evaluate(ref, cur)
    age = feature(ev, "age")
    assert age["histogram"]["bins"][-1] == "missing"
    assert age["current_missing_fraction"] == pytest.approx(0.5, abs=0.01)
    assert "drift.psi" in rules(ev)
    cur["age"] = np.nan
    ev = evaluate(ref, cur)
    ks = [f for f in ev.findings if f.rule == "drift.ks_statistic"]
    assert ks and ks[0].location["value"] is None and "NaN never satisfies" in ks[0].message


def test_type_change_is_a_finding():
    ref, cur = tables()
    cur["age"] = cur["age"].astype(str)
    ev = evaluate(ref, cur)
    assert rules(ev) == ["drift.type_changed"]


def test_numeric_codes_can_be_declared_categorical():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"zip": rng.choice([10115, 20095], 500)})
    cur = pd.DataFrame({"zip": rng.choice([10115, 20095, 80331], 500)})
    ev = evaluate(ref, cur, categorical=["zip"])
    assert feature(ev, "zip")["kind"] == "categorical"
    assert "drift.unseen_category" in rules(ev)


def test_features_and_exclude():
    ref, cur = tables()
    ev = evaluate(ref, cur, exclude=["income"])
    assert [f["feature"] for f in ev.metrics["features"]] == ["age", "region"]
    ev = evaluate(ref, cur, features=["income"])
    assert [f["feature"] for f in ev.metrics["features"]] == ["income"]


# ------------------------------------------------------------------------------------------------
# Bad input and policy
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r, c: (r, c.drop(columns=["age"])), "column(s) not in the current table: 'age'"),
        (lambda r, c: (r, c.iloc[0:0]), "the current table is empty"),
        (lambda r, c: (r.iloc[0:0], c), "the reference table is empty"),
        (lambda r, c: (r.assign(age=np.nan), c), "feature 'age' has no values in the reference table"),
        (lambda r, c: (r.assign(region=[f"id{i}" for i in range(len(r))]), c), "more than max_categories"),
    ],
)
def test_bad_input(mutate, message):
    ref, cur = mutate(*tables(n=1200))
    with pytest.raises(InputDataError) as info:
        evaluate(ref, cur)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_per_feature_for_an_unknown_feature_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="not compared"):
        evaluate(*tables(), per_feature={"agee": {"psi": {"max": 0.1}}})


@pytest.mark.parametrize(
    "section",
    ["thresholds: {}", "thresholds: {psi: {}}", "thresholds: {chi2: {max: 1}}", "bins: 1",
     "features: [a]\n  exclude: [a]", "typo: 1"],
)
def test_invalid_drift_sections(section):
    with pytest.raises(PolicyError):
        parse_policy(f"name: t\ndrift:\n  {section}\n".encode())


def test_empty_section_gets_safe_defaults():
    policy = parse_policy(b"name: t\ndrift: {}\n").policy.drift
    assert dict(policy.thresholds.items()) == {"psi": policy.thresholds.psi,
                                               "ks_statistic": policy.thresholds.ks_statistic}
    assert policy.thresholds.psi.max == 0.2 and policy.max_unseen_fraction == 0.0


# ------------------------------------------------------------------------------------------------
# Files, digests, report, hygiene
# ------------------------------------------------------------------------------------------------
def test_check_drift_on_files_with_report(tmp_path):
    ref, cur = tables(shift=6.0)
    ref_path, cur_path = tmp_path / "ref.parquet", tmp_path / "cur.csv"
    ref.to_parquet(ref_path)
    cur.to_csv(cur_path, index=False)
    out = check_drift(DriftPolicy(), str(ref_path), str(cur_path), report=str(tmp_path / "drift.html"))
    assert [i.sha256 for i in out.inputs] == [hashlib.sha256(p.read_bytes()).hexdigest()
                                              for p in (ref_path, cur_path)]
    assert out.reports[0].name == "drift-report"
    html = (tmp_path / "drift.html").read_text()
    assert "<svg" in html and "age: PSI" in html
    assert out.metrics["report_sha256"] == hashlib.sha256(html.encode()).hexdigest()
    canonical_json(out.metrics)


def test_report_names_only_frequent_categories(tmp_path):
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"c": list(rng.choice(["common-a", "common-b"], 500)) + ["rare-planted-value"]})
    cur = pd.DataFrame({"c": list(rng.choice(["common-a", "common-b"], 500)) + ["unseen-planted-value"]})
    ref.to_csv(tmp_path / "r.csv", index=False)
    cur.to_csv(tmp_path / "c.csv", index=False)
    out = check_drift(DriftPolicy(), str(tmp_path / "r.csv"), str(tmp_path / "c.csv"),
                      report=str(tmp_path / "d.html"))
    html = (tmp_path / "d.html").read_text()
    assert "common-a" in html
    assert "planted" not in html and "planted" not in json.dumps(out.model_dump(mode="json"))
    hidden = check_drift(DriftPolicy(report_category_labels=False), str(tmp_path / "r.csv"),
                         str(tmp_path / "c.csv"), report=str(tmp_path / "h.html"))
    assert "common-a" not in (tmp_path / "h.html").read_text()
    assert hidden.findings[-1].rule == "drift.unseen_category"


def test_files_read_only_the_compared_columns(tmp_path):
    ref, cur = tables()
    ref["notes"] = "free text that is never compared"
    ref.to_csv(tmp_path / "r.csv", index=False)
    cur.to_csv(tmp_path / "c.csv", index=False)  # no "notes" column at all: fine, it is excluded
    out = check_drift(DriftPolicy(exclude=["notes"]), str(tmp_path / "r.csv"), str(tmp_path / "c.csv"))
    assert [f["feature"] for f in out.metrics["features"]] == ["age", "income", "region"]
    with pytest.raises(InputDataError, match="column\\(s\\) not in the current table: 'notes'"):
        check_drift(DriftPolicy(), str(tmp_path / "r.csv"), str(tmp_path / "c.csv"))
    (tmp_path / "e.csv").write_text("age,income,region,notes\n")
    with pytest.raises(InputDataError, match="the current table is empty"):
        check_drift(DriftPolicy(), str(tmp_path / "r.csv"), str(tmp_path / "e.csv"))


def test_example_policy_runs_end_to_end():
    from pathlib import Path

    from airflow_aisec.core.policy import load_policy

    pol = load_policy(Path(__file__).resolve().parents[2] / "policies" / "drift-example.yaml").policy.drift
    rng = np.random.default_rng(8)
    n = 2000

    def frame(shift):
        return pd.DataFrame({"customer_id": np.arange(n), "income": rng.lognormal(10 + shift, 0.5, n),
                             "zip_code": rng.choice([10115, 20095], n), "scored_at": np.arange(n) + shift})

    ev = evaluate_drift(pol, pa.Table.from_pandas(frame(0.0)), pa.Table.from_pandas(frame(0.2)))
    assert [f["feature"] for f in ev.metrics["features"]] == ["income", "zip_code"]
    assert feature(ev, "zip_code")["kind"] == "categorical"
    assert "drift.psi" in rules(ev) and feature(ev, "income")["thresholds"]["psi"] == {"max": 0.1}
