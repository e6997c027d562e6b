"""Bias gate core: policy schema, column resolution, input validation, pitfalls, thresholds, bootstrap."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from airflow_aisec.core.evidence import canonical_json
from airflow_aisec.core.gate import run_check
from airflow_aisec.core.gates.bias import check_bias, evaluate_bias, resolve_columns
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.core.policy.base import Bound
from airflow_aisec.core.policy.sections.bias import BiasPolicy
from airflow_aisec.exceptions import ConfigurationError, InputDataError, PolicyError

flm = pytest.importorskip("fairlearn.metrics")


def policy(**kwargs) -> BiasPolicy:
    base = {"label": "y", "prediction": "p", "sensitive": ["sex"], "min_group_size": 1}
    base.update(kwargs)
    return BiasPolicy.model_validate(base)


def run(table: pa.Table | pd.DataFrame, **kwargs):
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    pol = policy(**kwargs)
    return evaluate_bias(pol, table, resolve_columns(pol))


def rules(evaluation) -> list[str]:
    return [f.rule for f in evaluation.findings]


def biased_frame(n: int = 400, seed: int = 0, gap: float = 0.3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)
    return pd.DataFrame({
        "y": rng.integers(0, 2, n),
        "p": (rng.random(n) < np.where(sex == "F", 0.5 - gap, 0.5)).astype(int),
        "sex": sex,
        "race": rng.choice(["a", "b", "c"], n),
    })


# ------------------------------------------------------------------------------------------------
# Policy schema
# ------------------------------------------------------------------------------------------------
def test_defaults_are_the_four_fifths_rule_and_a_point_one_gap():
    pol = BiasPolicy()
    assert pol.thresholds == {"demographic_parity_difference": Bound(max=0.1),
                              "demographic_parity_ratio": Bound(min=0.8)}
    assert pol.missing_sensitive == "finding" and pol.min_group_size == 30


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("thresholds: {demographic_parity_diference: {max: 0.1}}", "bias.thresholds"),  # typo
        ("thresholds: {}", "bias.thresholds"),  # would check nothing
        ("thresholds: {accuracy: {}}", "bias.thresholds.accuracy"),
        ("thresholds: {accuracy: {min: 0.9, max: 0.1}}", "bias.thresholds.accuracy"),
        ("thresholds: {accuracy: {min: .nan}}", "bias.thresholds.accuracy"),
        ("missing_sensitive: ignore", "bias.missing_sensitive"),
        ("min_group_size: 0", "bias.min_group_size"),
        ("intersections: [[sex]]", "bias.intersections"),
        ("bootstrap: {fail_on: sometimes}", "bias.bootstrap.fail_on"),
        ("sensitive: [a, a]", "bias.sensitive"),
        ("unknown_key: 1", "bias.unknown_key"),
    ],
)
def test_invalid_sections_are_policy_errors(section, field):
    with pytest.raises(PolicyError) as info:
        parse_policy(f"name: t\nbias:\n  {section}\n".encode())
    assert f"field '{field}" in str(info.value)


def test_bound_nan_never_satisfies():
    b = Bound(min=0.8)
    assert b.violated(float("nan")) and b.violated(None) and b.violated(0.79)
    assert not b.violated(0.8)
    assert Bound(max=0.1).interval_violated(0.11, 0.3)
    assert not Bound(max=0.1).interval_violated(0.05, 0.3)
    assert Bound(max=0.1).interval_violated(float("nan"), 0.3)


# ------------------------------------------------------------------------------------------------
# Columns
# ------------------------------------------------------------------------------------------------
def test_columns_from_caller_and_policy_are_merged():
    pol = BiasPolicy(label="y", sensitive=["sex"])
    cols = resolve_columns(pol, prediction="p", sensitive="race, age")
    assert (cols.label, cols.prediction, cols.sensitive) == ("y", "p", ("sex", "race", "age"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label": "other"}, "label column given as 'other' by the caller but the policy sets 'y'"),
        ({"sensitive": None, "_policy": {"sensitive": []}}, "no sensitive column"),
        ({"_policy": {"label": None}}, "no label column"),
        ({"_policy": {"prediction": None}}, "no prediction column"),
        ({"sensitive": "y"}, "must be distinct"),
        ({"_policy": {"thresholds": {"roc_auc": {"min": 0.7}}}}, "need a score column"),
        ({"_policy": {"intersections": [["sex", "zip"]]}}, "not sensitive columns"),
    ],
)
def test_column_configuration_errors(kwargs, message):
    pol_kwargs = {"label": "y", "prediction": "p", "sensitive": ["sex"], **kwargs.pop("_policy", {})}
    with pytest.raises(ConfigurationError) as info:
        resolve_columns(BiasPolicy.model_validate(pol_kwargs), **kwargs)
    assert message in str(info.value)


# ------------------------------------------------------------------------------------------------
# Bad input: exit-2 errors, never a pass
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (pd.DataFrame({"y": [0, 1, 2, 1], "p": [0, 1, 1, 0], "sex": list("FFMM")}), {}, "label column 'y' is not binary"),
        (pd.DataFrame({"y": ["yes", "no", "no", "yes"], "p": [0, 1, 1, 0], "sex": list("FFMM")}), {},
         "label column 'y' is not binary 0/1 or true/false"),
        (pd.DataFrame({"y": [0, 1, 0, 1], "p": [0.2, 0.9, 0.4, 0.1], "sex": list("FFMM")}), {},
         "prediction column 'p' is not binary"),
        (pd.DataFrame({"y": [0, 1, None, 1], "p": [0, 1, 1, 0], "sex": list("FFMM")}), {},
         "label column 'y' has 1 missing value(s)"),
        (pd.DataFrame({"y": ["a", "b", "c", "a"], "p": [0, 1, 1, 0], "sex": list("FFMM")},),
         {"positive_label": "a"}, "is not binary: 3 distinct values"),
        (pd.DataFrame({"y": ["a", "b", "b", "a"], "p": [0, 1, 1, 0], "sex": list("FFMM")}),
         {"positive_label": "x"}, "the positive label set in the policy is not one of its values"),
        (pd.DataFrame({"y": ["a", "b", "c", "a"], "p": [0, 1, 1, 0], "sex": list("FFMM")}),
         {"positive_label": "a", "negative_label": "b"}, "neither the positive nor the negative label"),
        (pd.DataFrame({"y": [0, 1, 0, 1], "p": [0, 1, 1, 0], "sex": list("FFFF")}), {}, "need at least two"),
        (pd.DataFrame({"y": [0, 1, 0, 1], "p": [0, 1, 1, 0], "sex": ["F", None, None, None]}), {},
         "need at least two"),  # one group left once missing values are set aside
        (pd.DataFrame({"y": [0, 1, 0, 1], "p": [0, 1, 1, 0]}), {}, "column(s) not in the data: 'sex'"),
        (pd.DataFrame({"y": [0, 1] * 3, "p": [0, 1] * 3, "sex": list("abcdef")}), {"max_groups": 5},
         "more than max_groups"),
    ],
)
def test_bad_input_raises_input_data_error(frame, kwargs, message):
    with pytest.raises(InputDataError) as info:
        run(frame, **kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_empty_table_is_an_input_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("y,p,sex\n")
    with pytest.raises(InputDataError, match="empty"):
        check_bias(policy(), str(path))
    with pytest.raises(InputDataError, match="empty"):
        run(pa.table({"y": pa.array([], pa.int64()), "p": pa.array([], pa.int64()),
                      "sex": pa.array([], pa.string())}))


def test_bad_input_is_verdict_error_through_the_gate(tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"y": [0, 1, 2], "p": [0, 1, 1], "sex": list("FMF")}).to_csv(path, index=False)
    loaded = parse_policy(b"name: t\nbias: {label: y, prediction: p, sensitive: [sex]}\n")
    gate_run = run_check("bias", loaded, lambda: check_bias(loaded.policy.bias, str(path)))
    assert gate_run.result.verdict == "error"
    assert isinstance(gate_run.exception, InputDataError) and gate_run.exception.exit_code == 2


# ------------------------------------------------------------------------------------------------
# Label mapping
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("labels", "kwargs"),
    [
        ([0, 1], {}),
        ([True, False], {}),
        (["true", "false"], {}),
        (["True", "FALSE"], {}),
        ([-1, 1], {}),
        (["approved", "denied"], {"positive_label": "approved"}),
        (["Approved", "denied"], {"positive_label": "approved", "negative_label": "Denied"}),
        ([1.0, 0.0], {"positive_label": 1}),
    ],
)
def test_binary_mappings(labels, kwargs):
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 2, 200)
    y = [labels[i] for i in idx]
    p_bits = rng.integers(0, 2, 200)
    p = [labels[i] for i in p_bits]
    sex = rng.choice(["F", "M"], 200)
    ev = run(pd.DataFrame({"y": y, "p": p, "sex": sex}), **kwargs)
    # positive is labels[0] in every case above
    y01 = (idx == 0).astype(int)
    p01 = (p_bits == 0).astype(int)
    expected = flm.demographic_parity_difference(y01, p01, sensitive_features=sex)
    got = ev.metrics["groupings"][0]["disparities"]["demographic_parity_difference"]
    assert abs(got - expected) <= 1e-9


def test_prediction_mapping_can_differ_from_the_label_mapping():
    frame = pd.DataFrame({"y": ["yes", "no"] * 50, "p": ["approve", "reject", "reject", "approve"] * 25,
                          "sex": ["F"] * 50 + ["M"] * 50})
    ev = run(frame, positive_label="yes", prediction_positive_label="approve", thresholds={"accuracy": {"min": 0}})
    groups = ev.metrics["groupings"][0]["groups"]
    assert [g["selection_rate"] for g in groups] == [0.5, 0.5]


def test_score_threshold_derives_predictions_and_gives_auc():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    n = 300
    frame = pd.DataFrame({"y": rng.integers(0, 2, n), "s": rng.random(n), "sex": rng.choice(["F", "M"], n)})
    ev = run(frame, prediction=None, score="s", score_threshold=0.5,
             thresholds={"demographic_parity_ratio": {"min": 0.0}, "roc_auc": {"min": 0.0}})
    grouping = ev.metrics["groupings"][0]
    for g in grouping["groups"]:
        rows = frame[frame.sex == g["group"]]
        assert abs(g["selection_rate"] - (rows.s >= 0.5).mean()) <= 1e-12
        assert abs(g["roc_auc"] - roc_auc_score(rows.y, rows.s)) <= 1e-9
    assert "roc_auc_difference" in grouping["disparities"]


# ------------------------------------------------------------------------------------------------
# Equal to fairlearn end to end (mapping, missing-as-group, intersections)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["between_groups", "to_overall"])
def test_evaluation_equals_fairlearn_end_to_end(method):
    rng = np.random.default_rng(9)
    n = 600
    sex = rng.choice(["F", "M", None], n, p=[0.45, 0.45, 0.1])
    race = rng.choice(["a", "b", "c"], n)
    y = rng.choice(["approved", "denied"], n)
    p = rng.choice(["approved", "denied"], n, p=[0.4, 0.6])
    frame = pd.DataFrame({"y": y, "p": p, "sex": sex, "race": race})
    ev = run(frame, sensitive=["sex", "race"], positive_label="approved", missing_sensitive="group",
             intersections=True, method=method)
    y01, p01 = (y == "approved").astype(int), (p == "approved").astype(int)
    sex_filled = pd.Series(sex).fillna("<missing>")
    features = {
        "sex": sex_filled,
        "race": pd.Series(race),
        "sex & race": pd.DataFrame({"sex": sex_filled, "race": race}),
    }
    by_name = {g["name"]: g for g in ev.metrics["groupings"]}
    assert set(by_name) == set(features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, sf in features.items():
            d = by_name[name]["disparities"]
            for metric, fn in (
                ("demographic_parity_difference", flm.demographic_parity_difference),
                ("demographic_parity_ratio", flm.demographic_parity_ratio),
                ("equalized_odds_difference", flm.equalized_odds_difference),
                ("equalized_odds_ratio", flm.equalized_odds_ratio),
                ("equal_opportunity_difference", flm.equal_opportunity_difference),
            ):
                expected = fn(y01, p01, sensitive_features=sf, method=method)
                assert abs(d[metric] - expected) <= 1e-9, (name, metric)
    assert "<missing>" in [g["group"] for g in by_name["sex"]["groups"]]


# ------------------------------------------------------------------------------------------------
# Pitfalls are findings
# ------------------------------------------------------------------------------------------------
def test_violation_is_a_finding_with_the_metric_rule():
    ev = run(biased_frame())
    assert rules(ev) == ["bias.demographic_parity_difference", "bias.demographic_parity_ratio"]
    f = ev.findings[0]
    assert f.location["sensitive"] == "sex" and f.location["max"] == 0.1 and f.location["value"] > 0.1
    assert "must be <= 0.1" in f.message


def test_fair_predictions_pass():
    assert rules(run(biased_frame(gap=0.0, n=4000))) == []


def test_all_zero_predictions_fail_because_nan_never_satisfies():
    frame = biased_frame()
    frame["p"] = 0
    ev = run(frame)
    ratio = [f for f in ev.findings if f.rule == "bias.demographic_parity_ratio"]
    assert len(ratio) == 1 and ratio[0].location["value"] is None
    assert "undefined (NaN)" in ratio[0].message and "NaN never satisfies" in ratio[0].message
    assert "bias.demographic_parity_difference" not in rules(ev)  # the gap itself is 0


def test_group_without_positive_labels_is_explicit_when_a_tpr_metric_is_checked():
    frame = biased_frame(gap=0.0)
    frame.loc[frame.sex == "M", "y"] = 0
    ev = run(frame, thresholds={"equal_opportunity_difference": {"max": 1.0}})
    found = [f for f in ev.findings if f.rule == "bias.group_without_positive_labels"]
    assert len(found) == 1 and found[0].location["group"] == "M"
    assert found[0].count == int((frame.sex == "M").sum())
    assert "fairlearn silently counts it as 0" in found[0].message
    # not relevant to demographic parity alone: no noise there
    assert "bias.group_without_positive_labels" not in rules(run(frame))


def test_group_without_negative_labels_is_explicit_for_fpr_metrics():
    frame = biased_frame(gap=0.0)
    frame.loc[frame.sex == "F", "y"] = 1
    ev = run(frame, thresholds={"equalized_odds_difference": {"max": 1.0}})
    assert rules(ev) == ["bias.group_without_negative_labels"]


def test_small_groups_are_findings_with_their_count_and_hidden_names():
    frame = biased_frame(gap=0.0, n=2000)
    frame.loc[:4, "sex"] = "X-rare-person"
    ev = run(frame, min_group_size=30)
    small = [f for f in ev.findings if f.rule == "bias.group_too_small"]
    assert len(small) == 1 and small[0].count == 5
    assert small[0].location["group"] == "<small group 1>" and small[0].location["min_group_size"] == 30
    assert "X-rare-person" not in json.dumps(ev.metrics) + json.dumps([f.model_dump() for f in ev.findings])
    revealed = run(frame, min_group_size=30, reveal_small_group_labels=True)
    assert [f.location["group"] for f in revealed.findings if f.rule == "bias.group_too_small"] == ["X-rare-person"]


def test_excluding_small_groups_drops_them_from_the_metrics():
    frame = biased_frame(gap=0.0, n=2000)
    frame.loc[:4, "sex"] = "X"
    frame.loc[:4, "p"] = 1  # would dominate the parity gap if kept
    kept = run(frame, min_group_size=30)
    dropped = run(frame, min_group_size=30, exclude_small_groups=True)
    assert "bias.demographic_parity_difference" in rules(kept)
    assert rules(dropped) == ["bias.group_too_small"]
    groups = dropped.metrics["groupings"][0]["groups"]
    assert [g["excluded"] for g in groups] == [False, False, True]  # small groups are listed last
    assert "selection_rate" not in groups[2] and "selection_rate" in groups[0]


def test_too_few_groups_after_exclusion_is_a_finding():
    frame = biased_frame(gap=0.0, n=100)
    frame.loc[:2, "sex"] = "X"
    ev = run(frame, min_group_size=60, exclude_small_groups=True)
    assert "bias.insufficient_groups" in rules(ev)
    assert "disparities" not in ev.metrics["groupings"][0]


def test_missing_sensitive_values_are_a_finding_or_their_own_group():
    frame = biased_frame(gap=0.0, n=1000)
    frame.loc[:9, "sex"] = None
    frame.loc[10:14, "sex"] = "  "  # blank counts as missing
    as_finding = run(frame)
    (f,) = [f for f in as_finding.findings if f.rule == "bias.missing_sensitive_value"]
    assert f.count == 15 and f.location == {"sensitive": "sex"}
    assert as_finding.metrics["groupings"][0]["rows"] == 985
    as_group = run(frame, missing_sensitive="group")
    assert "bias.missing_sensitive_value" not in rules(as_group)
    groups = {g["group"]: g["count"] for g in as_group.metrics["groupings"][0]["groups"]}
    assert groups["<missing>"] == 15


def test_nan_sensitive_values_in_float_columns_are_missing():
    frame = pd.DataFrame({"y": [0, 1] * 50, "p": [1, 0] * 50, "age": [20.0, 30.0, np.nan, 30.0] * 25})
    ev = run(frame, sensitive=["age"], thresholds={"accuracy": {"min": 0}})
    assert [g["group"] for g in ev.metrics["groupings"][0]["groups"]] == ["20", "30"]
    assert "bias.missing_sensitive_value" in rules(ev)


def test_per_group_bounds_flag_each_group():
    frame = biased_frame(gap=0.0, n=1000)
    ev = run(frame, thresholds={"accuracy": {"min": 0.99}})
    found = [f for f in ev.findings if f.rule == "bias.accuracy"]
    assert {f.location["group"] for f in found} == {"F", "M"}
    assert all(f.count > 0 and f.location["min"] == 0.99 for f in found)


# ------------------------------------------------------------------------------------------------
# Bootstrap
# ------------------------------------------------------------------------------------------------
def test_bootstrap_intervals_bracket_the_estimate_and_are_reproducible():
    frame = biased_frame(n=2000, gap=0.05)
    a = run(frame, bootstrap={"samples": 300, "seed": 1})
    b = run(frame, bootstrap={"samples": 300, "seed": 1})
    ga, gb = a.metrics["groupings"][0], b.metrics["groupings"][0]
    assert ga["intervals"] == gb["intervals"]
    lo, hi = ga["intervals"]["demographic_parity_difference"]
    assert lo <= ga["disparities"]["demographic_parity_difference"] <= hi
    assert "selection_rate_ci" in ga["groups"][0]


def test_fail_on_interval_only_fails_when_the_whole_interval_is_past_the_threshold():
    # a gap close to the 0.1 threshold: the point estimate is past it, the interval straddles it
    frame = biased_frame(n=600, gap=0.12, seed=3)
    point = run(frame, bootstrap={"samples": 400, "fail_on": "point_estimate"},
                thresholds={"demographic_parity_difference": {"max": 0.1}})
    interval = run(frame, bootstrap={"samples": 400, "fail_on": "interval"},
                   thresholds={"demographic_parity_difference": {"max": 0.1}})
    g = point.metrics["groupings"][0]
    lo, hi = g["intervals"]["demographic_parity_difference"]
    assert g["disparities"]["demographic_parity_difference"] > 0.1 and lo < 0.1 < hi
    assert rules(point) == ["bias.demographic_parity_difference"]
    assert "95% CI" in point.findings[0].message
    assert rules(interval) == []
    # a clear violation fails in both modes
    strong = run(biased_frame(n=600, gap=0.4), bootstrap={"samples": 200, "fail_on": "interval"})
    assert "bias.demographic_parity_difference" in rules(strong)


def test_fail_on_interval_still_fails_an_undefined_metric():
    frame = biased_frame()
    frame["p"] = 0
    ev = run(frame, bootstrap={"samples": 100, "fail_on": "interval"})
    assert "bias.demographic_parity_ratio" in rules(ev)


# ------------------------------------------------------------------------------------------------
# Output hygiene
# ------------------------------------------------------------------------------------------------
def test_metrics_are_canonical_json_without_nan():
    frame = biased_frame()
    frame["p"] = 0
    ev = run(frame, bootstrap={"samples": 60})
    canonical_json(ev.metrics)  # the evidence store rejects NaN: must not raise
    assert ev.metrics["groupings"][0]["disparities"]["demographic_parity_ratio"] is None


def test_no_row_value_leaks_into_findings_or_metrics(tmp_path):
    frame = biased_frame(n=300)
    frame["email"] = [f"planted.person{i}@example.org" for i in range(300)]
    frame.loc[0, "sex"] = "Planted Name 123-45-6789"  # a one-row group: its name is hidden
    path = tmp_path / "preds.csv"
    frame.to_csv(path, index=False)
    outcome = check_bias(policy(min_group_size=30), str(path), report=str(tmp_path / "r.html"))
    blob = json.dumps(outcome.model_dump(mode="json")) + (tmp_path / "r.html").read_text()
    assert "planted.person" not in blob and "123-45-6789" not in blob and "Planted Name" not in blob
    assert "bias.group_too_small" in [f.rule for f in outcome.findings]


def test_check_bias_reads_parquet_digests_it_and_writes_the_report(tmp_path):
    import hashlib

    path = tmp_path / "preds.parquet"
    biased_frame().to_parquet(path)
    out = check_bias(policy(), str(path), report=str(tmp_path / "out" / "bias.html"))
    assert out.inputs[0].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    (ref,) = out.reports
    assert ref.name == "bias-report" and ref.uri == str(tmp_path / "out" / "bias.html")
    data = (tmp_path / "out" / "bias.html").read_bytes()
    assert out.metrics["report_sha256"] == hashlib.sha256(data).hexdigest()
    assert b"<svg" in data and b"demographic_parity_difference" in data
    assert not math.isnan(out.metrics["groupings"][0]["disparities"]["demographic_parity_difference"])


def test_unquoted_yaml_yes_no_labels_still_match():
    # `positive_label: yes` is the boolean true in YAML 1.1; the column holds the strings "yes"/"no"
    loaded = parse_policy(b"name: t\nbias: {label: y, prediction: p, sensitive: [sex], positive_label: yes,\n"
                          b"  prediction_positive_label: 1, min_group_size: 1}\n")
    pol = loaded.policy.bias
    assert pol.positive_label is True
    frame = pd.DataFrame({"y": ["yes", "no", "Yes", "no"] * 25, "p": [1, 0, 0, 1] * 25, "sex": ["F", "M"] * 50})
    ev = evaluate_bias(pol, pa.Table.from_pandas(frame), resolve_columns(pol))
    groups = ev.metrics["groupings"][0]["groups"]
    assert [g["positives"] for g in groups] == [50, 0]  # F rows are the "yes" rows


def test_example_policy_runs_end_to_end():
    from pathlib import Path

    from airflow_aisec.core.policy import load_policy

    pol = load_policy(Path(__file__).resolve().parents[2] / "policies" / "bias-example.yaml").policy.bias
    rng = np.random.default_rng(4)
    n = 3000
    frame = pd.DataFrame({
        "approved": rng.choice(["yes", "no"], n), "predicted": rng.integers(0, 2, n), "score": rng.random(n),
        "sex": rng.choice(["F", "M", None], n, p=[0.49, 0.49, 0.02]), "age_band": rng.choice(["<30", "30+"], n),
    })
    ev = evaluate_bias(pol, pa.Table.from_pandas(frame), resolve_columns(pol))
    assert [g["name"] for g in ev.metrics["groupings"]] == ["sex", "age_band", "sex & age_band"]
    assert ev.metrics["groupings"][0]["intervals"]["demographic_parity_difference"][0] is not None
    # random predictions: accuracy and AUC near 0.5 fail their per-group minimums
    assert {"bias.accuracy", "bias.roc_auc"} <= set(rules(ev))


def test_intersection_codes_never_wrap_around():
    # Group codes of an intersection are mixed-radix int64: with 9 columns of 256 values the first
    # column's digit is multiplied by 2**64 and vanished, merging groups that differ only there.
    n = 512
    frame = {"y": np.arange(n) % 2, "p": (np.arange(n) // 2) % 2, "c1": np.arange(n) // 256}
    for k in range(2, 10):
        frame[f"c{k}"] = np.arange(n) % 256
    cols = [f"c{k}" for k in range(1, 10)]
    with pytest.raises(ConfigurationError, match="combinations"):
        run(pd.DataFrame(frame), sensitive=cols, intersections=True, max_groups=1000)
