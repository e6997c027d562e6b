"""Bias gate, streamed batch by batch: numbers equal fairlearn / scikit-learn on real generated data
(many groups, missing sensitive values, groups without positives, intersections, files), ROC AUC
exact or within its reported bound (fail closed across a threshold), and accumulators whose size
does not depend on the number of rows (counted, not timed)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.gates.bias import _evaluate, check_bias, evaluate_bias, resolve_columns
from airflow_aisec.core.gates.bias._stream import BiasStream
from airflow_aisec.core.policy.sections.bias import BiasPolicy

flm = pytest.importorskip("fairlearn.metrics")
sk = pytest.importorskip("sklearn.metrics")

DISPARITIES = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference",
               "equalized_odds_ratio", "equal_opportunity_difference", "equal_opportunity_ratio")
LOOSE = {"demographic_parity_difference": {"max": 1.0}}


def frame(n: int, groups: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    region = np.array([f"r{i:02d}" for i in range(groups)], dtype=object)[g]
    region[rng.random(n) < 0.03] = None  # missing sensitive values
    y = rng.random(n) < 0.2 + 0.6 * (g / groups)
    y[g == 0] = False  # a group without positive labels
    score = np.round(np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1), 3)  # ties
    p = rng.random(n) < 0.2 + 0.02 * (g % 10)
    return pd.DataFrame({"y": y.astype(int), "p": p.astype(int), "s": score, "region": region,
                         "band": rng.choice(["x", "y", "z"], n)})


def evaluate(df: pd.DataFrame, **kwargs):
    pol = BiasPolicy.model_validate({"label": "y", "prediction": "p", "sensitive": ["region"], "min_group_size": 1,
                                     "max_groups": 1000, "thresholds": LOOSE, **kwargs})
    return evaluate_bias(pol, pa.Table.from_pandas(df, preserve_index=False), resolve_columns(pol))


def fairlearn_disparities(df: pd.DataFrame, sf, method: str) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {m: float(getattr(flm, m)(df.y, df.p, sensitive_features=sf, method=method)) for m in DISPARITIES}


@pytest.mark.parametrize("method", ["between_groups", "to_overall"])
@pytest.mark.parametrize("mode", ["finding", "group"])
def test_many_groups_in_many_batches_equal_fairlearn(method, mode, monkeypatch):
    monkeypatch.setattr(_evaluate, "TABLE_BATCH_ROWS", 397)  # ~50 batches; groups appear batch by batch
    df = frame(12_000, 30, seed=1)
    ev = evaluate(df, method=method, missing_sensitive=mode, sensitive=["region", "band"], intersections=True)
    by_name = {g["name"]: g for g in ev.metrics["groupings"]}
    if mode == "finding":
        kept = df[df.region.notna()]
        region = kept.region
        both = pd.DataFrame({"region": kept.region, "band": kept.band})
        assert by_name["region"]["missing_rows"] == int(df.region.isna().sum())
    else:
        kept = df
        region = df.region.fillna("<missing>")
        both = pd.DataFrame({"region": region, "band": df.band})
    for name, data, sf in (("region", kept, region), ("band", df, df.band), ("region & band", kept, both)):
        want = fairlearn_disparities(data, sf, method)
        got = by_name[name]["disparities"]
        for metric in DISPARITIES:
            assert got[metric] == pytest.approx(want[metric], abs=1e-12, nan_ok=True), (name, metric)
    assert len(by_name["region & band"]["groups"]) == len(both.drop_duplicates())
    assert "bias.group_without_positive_labels" not in [f.rule for f in ev.findings]  # not thresholded here
    ev2 = evaluate(df, thresholds={"equalized_odds_difference": {"max": 1.0}})
    assert "bias.group_without_positive_labels" in [f.rule for f in ev2.findings]
    assert ev.metrics["positive_rate"] == pytest.approx(df.y.mean(), abs=1e-15)
    assert ev.metrics["prediction_rate"] == pytest.approx(df.p.mean(), abs=1e-15)


def test_per_group_rates_and_auc_equal_sklearn(monkeypatch):
    monkeypatch.setattr(_evaluate, "TABLE_BATCH_ROWS", 4096)
    df = frame(40_000, 12, seed=2)
    ev = evaluate(df, score="s", thresholds={"roc_auc": {"min": 0.0}, **LOOSE})
    grouping = ev.metrics["groupings"][0]
    kept = df[df.region.notna()]
    for g in grouping["groups"]:
        rows = kept[kept.region == g["group"]]
        assert g["count"] == len(rows) and g["positives"] == int(rows.y.sum())
        assert g["selection_rate"] == pytest.approx(rows.p.mean(), abs=1e-15)
        if rows.y.nunique() == 2:
            assert g["roc_auc"] == pytest.approx(sk.roc_auc_score(rows.y, rows.s), abs=1e-12)
        else:
            assert g["roc_auc"] is None  # undefined (scikit-learn raises)
        assert g["roc_auc_error_bound"] in (0.0, None)
    assert grouping["overall"]["roc_auc"] == pytest.approx(sk.roc_auc_score(kept.y, kept.s), abs=1e-12)


def test_coarse_score_sketch_reports_a_bound_that_holds_and_fails_closed():
    rng = np.random.default_rng(3)
    n = 200_000
    sex = rng.choice(["F", "M"], n)
    y = rng.integers(0, 2, n)
    s = rng.normal(0.5 + 0.3 * y - 0.05 * (sex == "F"), 0.3)  # ~n distinct scores: the sketch merges them
    df = pd.DataFrame({"y": y, "p": (s > 0.6).astype(int), "s": s, "sex": sex})
    base = {"sensitive": ["sex"], "score": "s", "sketch_bins": 2048}
    ev = evaluate(df, **base, thresholds={"roc_auc": {"min": 0.0}, "roc_auc_difference": {"max": 1.0}})
    grouping = ev.metrics["groupings"][0]
    for g in grouping["groups"]:
        rows = df[df.sex == g["group"]]
        exact = sk.roc_auc_score(rows.y, rows.s)
        assert 0 < g["roc_auc_error_bound"] < 0.05
        assert abs(g["roc_auc"] - exact) <= g["roc_auc_error_bound"]
    lo, hi = grouping["ranges"]["roc_auc_difference"]
    exact_diff = abs(sk.roc_auc_score(df.y[df.sex == "F"], df.s[df.sex == "F"])
                     - sk.roc_auc_score(df.y[df.sex == "M"], df.s[df.sex == "M"]))
    assert lo <= exact_diff <= hi
    # A threshold inside the uncertainty fails closed; one clearly outside does not.
    value = grouping["groups"][0]["roc_auc"]
    err = grouping["groups"][0]["roc_auc_error_bound"]
    inside = evaluate(df, **base, thresholds={"roc_auc": {"min": value - err / 2}})
    assert any("fails closed" in f.message for f in inside.findings if f.rule == "bias.roc_auc")
    clear = evaluate(df, **base, thresholds={"roc_auc": {"min": min(value, grouping["groups"][1]["roc_auc"]) - 0.05}})
    assert not [f for f in clear.findings if f.rule == "bias.roc_auc"]
    diff_inside = evaluate(df, **base, thresholds={"roc_auc_difference": {"max": (lo + hi) / 2}})
    assert [f for f in diff_inside.findings if f.rule == "bias.roc_auc_difference"]


def test_accumulators_do_not_grow_with_rows():
    """Memory flatness, counted: count cells and sketch entries are the same size for 10x the rows."""
    pol = BiasPolicy.model_validate({"label": "y", "prediction": "p", "score": "s", "sensitive": ["region", "band"],
                                     "intersections": True, "min_group_size": 1, "max_groups": 1000,
                                     "sketch_bins": 4096, "thresholds": LOOSE})
    sizes = []
    for n in (30_000, 300_000):
        df = frame(n, 40, seed=4)
        df["s"] = np.random.default_rng(5).random(n)  # continuous scores: the sketch must merge them
        stream = BiasStream(pol, resolve_columns(pol))
        for batch in pa.Table.from_pandas(df, preserve_index=False).to_batches(max_chunksize=8192):
            stream.add(batch)
        for grouping in stream.groupings:
            grouping.sketch.flush()
            assert len(grouping.sketch.key) <= 4096
        sizes.append([(g.cells.shape, len(g.sketch.key) <= 4096) for g in stream.groupings])
        stream.finish()
    assert sizes[0] == sizes[1]


def test_file_streamed_equals_in_memory(tmp_path):
    df = frame(50_000, 20, seed=6)
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=5000)
    df.to_csv(tmp_path / "d.csv", index=False)
    pol = BiasPolicy.model_validate({"label": "y", "prediction": "p", "score": "s", "sensitive": ["region", "band"],
                                     "intersections": True, "min_group_size": 1, "thresholds": LOOSE})
    mem = evaluate_bias(pol, table, resolve_columns(pol)).metrics
    for path in (tmp_path / "d.parquet", tmp_path / "d.csv"):
        out = check_bias(pol, str(path))
        assert out.metrics["groupings"] == mem["groupings"], path.name
