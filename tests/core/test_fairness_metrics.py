"""The vectorized fairness metrics equal fairlearn 0.15 (the oracle) to 1e-9, edge cases included."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_aisec.core.gates.bias._metrics import (
    DISPARITY_METRICS,
    SCORE_DISPARITY_METRICS,
    ConfusionCounts,
    difference,
    fairness_metrics,
    ratio,
    roc_auc_by_group,
)
from airflow_aisec.core.policy.sections import bias as bias_section

flm = pytest.importorskip("fairlearn.metrics")  # a dev dependency: always installed in CI
TOL = 1e-9

# fairlearn's public functions for each of our between-group metrics
ORACLE = {
    "demographic_parity_difference": lambda **k: flm.demographic_parity_difference(**k),
    "demographic_parity_ratio": lambda **k: flm.demographic_parity_ratio(**k),
    "equalized_odds_difference": lambda agg="worst_case", **k: flm.equalized_odds_difference(agg=agg, **k),
    "equalized_odds_ratio": lambda agg="worst_case", **k: flm.equalized_odds_ratio(agg=agg, **k),
    "equal_opportunity_difference": lambda **k: flm.equal_opportunity_difference(**k),
    "equal_opportunity_ratio": lambda **k: flm.equal_opportunity_ratio(**k),
    "accuracy_difference": lambda **k: flm.accuracy_score_difference(**k),
    "accuracy_ratio": lambda **k: flm.accuracy_score_ratio(**k),
    "false_positive_rate_difference": lambda **k: flm.false_positive_rate_difference(**k),
    "false_positive_rate_ratio": lambda **k: flm.false_positive_rate_ratio(**k),
    "false_negative_rate_difference": lambda **k: flm.false_negative_rate_difference(**k),
    "false_negative_rate_ratio": lambda **k: flm.false_negative_rate_ratio(**k),
}
EO_METRICS = {"equalized_odds_difference", "equalized_odds_ratio"}


def same(a: float, b: float) -> bool:
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= TOL


def ours(y, p, groups, *, method="between_groups", agg="worst_case"):
    codes, uniques = pd.factorize(pd.Series(groups), sort=True)
    counts = ConfusionCounts.from_arrays(np.asarray(y), np.asarray(p), codes, len(uniques))
    return fairness_metrics(counts, method=method, eo_agg=agg), list(uniques)


def assert_equal_to_fairlearn(y, p, groups, *, methods=("between_groups", "to_overall")):
    y, p = np.asarray(y), np.asarray(p)
    for method in methods:
        for agg in ("worst_case", "mean"):
            result, _ = ours(y, p, groups, method=method, agg=agg)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for name, oracle in ORACLE.items():
                    if agg == "mean" and name not in EO_METRICS:
                        continue
                    kwargs = {"y_true": y, "y_pred": p, "sensitive_features": groups, "method": method}
                    if name in EO_METRICS:
                        kwargs["agg"] = agg
                    expected = oracle(**kwargs)
                    got = result.disparities[name]
                    assert same(got, expected), (name, method, agg, float(got), expected)


def assert_by_group_equal(y, p, groups):
    result, uniques = ours(y, p, groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = flm.MetricFrame(
            metrics={
                "selection_rate": flm.selection_rate,
                "accuracy": __import__("sklearn.metrics", fromlist=["accuracy_score"]).accuracy_score,
                "true_positive_rate": flm.true_positive_rate,
                "false_positive_rate": flm.false_positive_rate,
                "false_negative_rate": flm.false_negative_rate,
                "true_negative_rate": flm.true_negative_rate,
            },
            y_true=np.asarray(y),
            y_pred=np.asarray(p),
            sensitive_features=pd.Series(groups, name="g"),
        )
    for name in frame.by_group.columns:
        for i, group in enumerate(uniques):
            assert same(result.by_group[name][i], frame.by_group.loc[group, name]), (name, group)
        assert same(result.overall[name], frame.overall[name]), name


# ------------------------------------------------------------------------------------------------
# Fixed random and edge-case data
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_groups", [2, 5])
def test_random_data_equals_fairlearn(seed, n_groups):
    rng = np.random.default_rng(seed)
    n = 400
    groups = rng.choice([f"g{i}" for i in range(n_groups)], n)
    y = rng.integers(0, 2, n)
    p = (rng.random(n) < np.where(groups == "g0", 0.3, 0.6)).astype(int)
    assert_equal_to_fairlearn(y, p, groups)
    assert_by_group_equal(y, p, groups)


EDGE_CASES = {
    # all-zero predictions: selection rates all 0, demographic parity ratio 0/0 = NaN
    "all_zero_predictions": ([0, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0], list("aaabbb")),
    "all_one_predictions": ([0, 1, 0, 1, 1, 0], [1, 1, 1, 1, 1, 1], list("aaabbb")),
    # group b has no positive labels: fairlearn reports TPR 0 (and FNR 0) for it
    "group_without_positives": ([1, 1, 0, 0, 0, 0], [1, 0, 1, 0, 1, 1], list("aabbbb")),
    # group b has no negative labels: FPR 0
    "group_without_negatives": ([0, 1, 0, 1, 1, 1], [1, 0, 1, 1, 0, 1], list("aaabbb")),
    # no positive labels at all: every TPR 0 -> TPR ratio NaN; EO ratio keeps fairlearn's min() quirk
    "no_positive_labels": ([0, 0, 0, 0], [0, 1, 1, 0], list("aabb")),
    "no_negative_labels": ([1, 1, 1, 1], [0, 1, 1, 0], list("aabb")),
    "perfect_predictions": ([0, 0, 1, 1, 0, 1], [0, 0, 1, 1, 0, 1], list("aabbcc")),
    "single_row_groups": ([0, 1, 1], [1, 1, 0], list("abc")),
    "identical_groups": ([0, 1, 0, 1], [0, 1, 0, 1], list("aabb")),
    "unbalanced": ([1] * 50 + [0] * 3, [1] * 40 + [0] * 13, ["x"] * 50 + ["y"] * 3),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_cases_equal_fairlearn(case):
    y, p, groups = EDGE_CASES[case]
    assert_equal_to_fairlearn(y, p, np.array(groups))
    assert_by_group_equal(y, p, np.array(groups))


def test_all_zero_predictions_give_nan_ratio():
    y, p, groups = EDGE_CASES["all_zero_predictions"]
    result, _ = ours(y, p, np.array(groups))
    assert math.isnan(result.disparities["demographic_parity_ratio"])
    assert result.disparities["demographic_parity_difference"] == 0.0


def test_group_without_positives_gets_fairlearns_silent_zero():
    y, p, groups = EDGE_CASES["group_without_positives"]
    result, uniques = ours(y, p, np.array(groups))
    b = uniques.index("b")
    assert result.counts.positives[b] == 0
    assert result.by_group["true_positive_rate"][b] == 0.0  # what fairlearn says; the gate flags it


def test_intersections_equal_fairlearn_with_a_dataframe_of_features():
    rng = np.random.default_rng(7)
    n = 300
    sf = pd.DataFrame({"sex": rng.choice(["F", "M"], n), "age": rng.choice(["<30", "30-60", ">60"], n)})
    y = rng.integers(0, 2, n)
    p = rng.integers(0, 2, n)
    combined = (sf["sex"] + "|" + sf["age"]).to_numpy()
    for method in ("between_groups", "to_overall"):
        result, _ = ours(y, p, combined, method=method)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, oracle in ORACLE.items():
                expected = oracle(y_true=y, y_pred=p, sensitive_features=sf, method=method)
                assert same(result.disparities[name], expected), (name, method)


def test_difference_and_ratio_skip_empty_groups():
    # a group with no rows (NaN) is skipped, like fairlearn's unobserved intersections
    values = np.array([0.2, np.nan, 0.5])
    assert difference(values) == pytest.approx(0.3)
    assert ratio(values) == pytest.approx(0.4)
    assert math.isnan(float(difference(np.array([np.nan, np.nan]))))


def test_leading_axes_compute_each_replicate_independently():
    rng = np.random.default_rng(3)
    cells = rng.integers(0, 20, size=(5, 3, 4))
    batch = fairness_metrics(ConfusionCounts.from_cells(cells))
    for b in range(5):
        single = fairness_metrics(ConfusionCounts.from_cells(cells[b]))
        for name in DISPARITY_METRICS:
            assert same(batch.disparities[name][b], single.disparities[name]), name


# ------------------------------------------------------------------------------------------------
# Property test: random sizes, group counts, label/prediction skews
# ------------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 1), st.sampled_from(["a", "b", "c", "d"])),
        min_size=2,
        max_size=60,
    ),
    method=st.sampled_from(["between_groups", "to_overall"]),
    agg=st.sampled_from(["worst_case", "mean"]),
)
def test_property_equal_to_fairlearn(data, method, agg):
    y = np.array([d[0] for d in data])
    p = np.array([d[1] for d in data])
    groups = np.array([d[2] for d in data])
    result, _ = ours(y, p, groups, method=method, agg=agg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
                     "equalized_odds_ratio", "equal_opportunity_difference", "accuracy_ratio",
                     "false_negative_rate_difference"):
            kwargs = {"y_true": y, "y_pred": p, "sensitive_features": groups, "method": method}
            if name in EO_METRICS:
                kwargs["agg"] = agg
            assert same(result.disparities[name], ORACLE[name](**kwargs)), name


# ------------------------------------------------------------------------------------------------
# ROC AUC per group equals scikit-learn
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rounding", [None, 1])  # rounding creates many ties
def test_roc_auc_by_group_equals_sklearn(rounding):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(11)
    n = 500
    g = rng.integers(0, 4, n)
    y = rng.integers(0, 2, n)
    y[g == 3] = 1  # group 3 has a single class: no ROC curve
    s = rng.random(n) + 0.3 * y
    if rounding is not None:
        s = np.round(s, rounding)
    per_group, overall = roc_auc_by_group(y, s, g, 4)
    for k in range(3):
        assert same(per_group[k], roc_auc_score(y[g == k], s[g == k]))
    assert math.isnan(per_group[3])
    assert same(overall, roc_auc_score(y, s))
    assert set(SCORE_DISPARITY_METRICS) == {"roc_auc_difference", "roc_auc_ratio"}


def test_metric_names_match_the_policy_schema():
    names = set(DISPARITY_METRICS) | set(SCORE_DISPARITY_METRICS)
    assert names == set(bias_section.DISPARITY_METRICS)
