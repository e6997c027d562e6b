"""Bias and drift over partitions: per-partition summaries merged in any order give the single-node
verdict, findings and metrics (counts exactly; ROC AUC / KS exact while the sketches are, within the
reported bound beyond), checked against fairlearn / scikit-learn / scipy on real generated data;
merging is associative and commutative (hypothesis), summaries round-trip through JSON, refuse to
mix policies, columns or references, and stay within a size bound derived from groups x bins."""

from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_aisec.core.gates.bias import check_bias
from airflow_aisec.core.gates.bias import summary as bias_summary
from airflow_aisec.core.gates.drift import check_drift
from airflow_aisec.core.gates.drift import summary as drift_summary
from airflow_aisec.core.partitions import load_summary, merge_all, summary_class
from airflow_aisec.core.policy.sections.bias import BiasPolicy
from airflow_aisec.core.policy.sections.drift import DriftPolicy
from airflow_aisec.core.stats import ValueSketch
from airflow_aisec.exceptions import ConfigurationError, InputDataError, SecurityViolationError

flm = pytest.importorskip("fairlearn.metrics")
sk = pytest.importorskip("sklearn.metrics")
from scipy.stats import ks_2samp

PLANTED = "zq.planted@example.com"


# --- data --------------------------------------------------------------------------------------------

def bias_frame(n: int, groups: int, seed: int, *, distinct_scores: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    g[rng.random(n) < 0.004] = groups  # a small group
    region = np.array([f"r{i:02d}" for i in range(groups + 1)], dtype=object)[g]
    region[rng.random(n) < 0.03] = None  # missing sensitive values
    y = rng.random(n) < 0.2 + 0.6 * (g / groups)
    raw = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1)
    score = raw if distinct_scores else np.round(raw, 3)  # ties, or (nearly) all distinct
    p = rng.random(n) < 0.2 + 0.03 * (g % 7)
    return pd.DataFrame({"y": y.astype(int), "p": p.astype(int), "s": score, "region": region,
                         "band": rng.choice(["x", "y", "z"], n)})


def bias_policy(**extra) -> BiasPolicy:
    return BiasPolicy.model_validate({
        "label": "y", "prediction": "p", "score": "s", "sensitive": ["region", "band"], "intersections": True,
        "min_group_size": 40, "max_groups": 500, "missing_sensitive": "group",
        "thresholds": {"demographic_parity_difference": {"max": 0.1}, "equalized_odds_ratio": {"min": 0.8},
                       "roc_auc": {"min": 0.75}, "accuracy_difference": {"max": 0.2}}, **extra})


def drift_table(n: int, shift: float, seed: int, *, distinct: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1, n)
    x[rng.random(n) < 0.05] = np.nan
    cats = ["a", "b", "c", "d", "e"] + (["new1", "new2", PLANTED] if shift else [])
    cat = rng.choice(cats, n).astype(object)
    cat[rng.random(n) < 0.02] = None
    fine = rng.normal(shift, 1, n) if distinct else np.round(rng.normal(shift, 1, n), 2)
    return pa.table({"x": x, "ties": rng.integers(-3, 4, n).astype(float), "cat": cat, "fine": fine,
                     "count": rng.poisson(3 + shift, n)})


def drift_policy(**extra) -> DriftPolicy:
    return DriftPolicy.model_validate({
        "thresholds": {"psi": {"max": 0.1}, "ks_statistic": {"max": 0.05}}, "max_unseen_fraction": 0.02,
        "categorical": ["count"], **extra})


def row_groups(table: pa.Table, path: Path, k: int) -> list[str]:
    """``table`` written to ``path`` in ``k`` row groups; the partition URIs."""
    pq.write_table(table, path, row_group_size=math.ceil(table.num_rows / k))
    assert pq.ParquetFile(path).metadata.num_row_groups == k
    return [f"{path}#row_group={i}" for i in range(k)]


def files(table: pa.Table, directory: Path, k: int) -> list[str]:
    directory.mkdir()
    size = math.ceil(table.num_rows / k)
    out = []
    for i in range(k):
        part = directory / f"part-{i:03d}.parquet"
        pq.write_table(table.slice(i * size, size), part)
        out.append(str(part))
    return out


def same_outcome(single, merged) -> None:
    """Identical verdict, findings and metrics (the merged result only adds its partition count)."""
    metrics = dict(merged.metrics)
    assert metrics.pop("partitions")["count"] >= 1
    assert metrics == single.metrics
    assert [f.model_dump() for f in merged.findings] == [f.model_dump() for f in single.findings]


def shuffled(items: list, order: str, seed: int = 0) -> list:
    if order == "reversed":
        return list(reversed(items))
    if order == "random":
        items = list(items)
        random.Random(seed).shuffle(items)
    return items


def tree_merge(summaries: list, rng: random.Random):
    """Merge in a random binary tree (not a left fold)."""
    items = list(summaries)
    while len(items) > 1:
        i = rng.randrange(len(items) - 1)
        items[i:i + 2] = [items[i].merge(items[i + 1])]
    return items[0]


# --- bias ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bias_data(tmp_path_factory):
    df = bias_frame(8000, 12, seed=11)
    table = pa.Table.from_pandas(df, preserve_index=False)
    root = tmp_path_factory.mktemp("bias")
    whole = root / "whole.parquet"
    pq.write_table(table, whole)
    return df, table, root, whole


@pytest.mark.parametrize("k", [1, 3, 16])
@pytest.mark.parametrize("order", ["data", "reversed", "random"])
def test_bias_merged_equals_single_node(bias_data, k, order):
    df, table, root, _whole = bias_data
    pol = bias_policy()
    path = root / f"rg{k}-{order}.parquet"
    parts = row_groups(table, path, k)
    single = check_bias(pol, str(path))
    summaries = [bias_summary.summarize_partition(pol, p, partition_id=p) for p in parts]
    merged = merge_all(shuffled(summaries, order, seed=k))
    outcome = bias_summary.check_summary(pol, merged)
    same_outcome(single, outcome)
    assert outcome.inputs == single.inputs  # one file: its uri and sha256
    assert single.findings, "the policy must actually fail this data (a verdict, not an empty pass)"
    rules = {f.rule for f in outcome.findings}
    assert {"bias.group_too_small", "bias.demographic_parity_difference"} <= rules

    # Oracle: fairlearn's and scikit-learn's numbers on the whole data.
    region = df.region.fillna("<missing>")
    grouping = {g["name"]: g for g in outcome.metrics["groupings"]}["region"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = float(flm.demographic_parity_difference(df.y, df.p, sensitive_features=region))
    assert not any(g["excluded"] for g in grouping["groups"])  # small groups are reported, not excluded
    assert grouping["disparities"]["demographic_parity_difference"] == pytest.approx(want, abs=1e-12)
    for g in grouping["groups"]:
        if g["small"]:  # named "<small group N>": its name is hidden
            continue
        rows = df[region == g["group"]]
        assert g["count"] == len(rows)
        assert g["roc_auc"] == pytest.approx(sk.roc_auc_score(rows.y, rows.s), abs=1e-12)
        assert g["roc_auc_error_bound"] == 0.0


def test_bias_files_merged_equal_single_node(bias_data, tmp_path):
    _df, table, _, whole = bias_data
    pol = bias_policy(missing_sensitive="finding")
    parts = files(table, tmp_path / "parts", 5)
    single = check_bias(pol, str(whole))
    merged = merge_all(shuffled([bias_summary.summarize_partition(pol, p) for p in parts], "random", seed=3))
    outcome = bias_summary.check_summary(pol, merged)
    same_outcome(single, outcome)
    assert [i.uri for i in outcome.inputs] == parts  # every file, in data order
    assert "bias.missing_sensitive_value" in {f.rule for f in outcome.findings}


def test_bias_spellings_and_groups_seen_in_different_orders(tmp_path):
    """Partitions meet labels, groups and intersections in different first-seen orders (sorted data):
    the union renumbering still gives the single-node counts; predictions from score_threshold."""
    df = bias_frame(4000, 8, seed=17).sort_values(["y", "band", "s"], kind="stable").reset_index(drop=True)
    df["y"] = np.where(df.y == 1, "Pos", "neg")
    pol = bias_policy(prediction=None, score_threshold=0.45, positive_label="pos", negative_label="neg",
                      thresholds={"demographic_parity_ratio": {"min": 0.8}, "false_positive_rate_difference": {"max": 0.1},
                                  "roc_auc": {"min": 0.75}})
    parts = row_groups(pa.Table.from_pandas(df.drop(columns="p"), preserve_index=False), tmp_path / "s.parquet", 16)
    single = check_bias(pol, str(tmp_path / "s.parquet"))
    summaries = [bias_summary.summarize_partition(pol, p) for p in parts]
    assert {tuple(s.state["label"]) for s in summaries} >= {("neg",), ("pos",)}  # partitions saw one label each
    for order in ("data", "reversed", "random"):
        same_outcome(single, bias_summary.check_summary(pol, merge_all(shuffled(summaries, order, seed=2))))
    assert single.findings


def test_bias_coarse_score_sketch_keeps_its_bound(tmp_path):
    """More distinct (group, score) pairs than sketch_bins: each merged AUC is within its bound of
    scikit-learn's, as the single-node check promises (the bins themselves may differ)."""
    df = bias_frame(20_000, 4, seed=5, distinct_scores=True)
    pol = bias_policy(sketch_bins=1024, intersections=False, sensitive=["region"], min_group_size=1)
    parts = row_groups(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "coarse.parquet", 16)
    single = check_bias(pol, str(tmp_path / "coarse.parquet"))
    merged = tree_merge([bias_summary.summarize_partition(pol, p) for p in parts], random.Random(1))
    outcome = bias_summary.check_summary(pol, merged)
    region = df.region.fillna("<missing>")
    bounded = 0
    for result in (single, outcome):
        (grouping,) = result.metrics["groupings"]
        for g in grouping["groups"]:
            rows = df[region == g["group"]]
            if rows.y.nunique() < 2:
                continue
            truth = sk.roc_auc_score(rows.y, rows.s)
            assert abs(g["roc_auc"] - truth) <= g["roc_auc_error_bound"] + 1e-12
            bounded += g["roc_auc_error_bound"] > 0
        assert result.metrics["rows"] == len(df)
    assert bounded, "the sketch must actually be coarse here"
    # Counts stay exact whatever the sketch does.
    strip = ("roc_auc", "roc_auc_error_bound")
    counts = [[{k: v for k, v in g.items() if k not in strip} for g in r.metrics["groupings"][0]["groups"]]
              for r in (single, outcome)]
    assert counts[0] == counts[1]


# --- drift ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def drift_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("drift")
    ref, cur = drift_table(5000, 0.0, seed=1), drift_table(6400, 0.3, seed=2)
    pq.write_table(ref, root / "ref.parquet")
    pol = drift_policy()
    reference = drift_summary.summarize_reference(pol, str(root / "ref.parquet"))
    return root, ref, cur, pol, reference


@pytest.mark.parametrize("k", [1, 3, 16])
@pytest.mark.parametrize("order", ["data", "reversed", "random"])
def test_drift_merged_equals_single_node(drift_data, k, order):
    root, ref, cur, pol, reference = drift_data
    path = root / f"cur{k}-{order}.parquet"
    parts = row_groups(cur, path, k)
    single = check_drift(pol, str(root / "ref.parquet"), str(path))
    given = reference.signed_json() if order != "data" else str(root / "ref.parquet")  # both ways
    summaries = [drift_summary.summarize_partition(pol, p, reference=given) for p in parts]
    merged = merge_all(shuffled(summaries, order, seed=k))
    outcome = drift_summary.check_summary(pol, merged, reference=str(root / "ref.parquet"))
    same_outcome(single, outcome)
    assert outcome.inputs == single.inputs
    rules = {f.rule for f in outcome.findings}
    assert {"drift.psi", "drift.ks_statistic", "drift.unseen_category"} <= rules
    # Oracle: scipy's two-sample KS on all values.
    by_name = {f["feature"]: f for f in outcome.metrics["features"]}
    for name in ("x", "ties", "fine"):
        r = ref.column(name).to_numpy(zero_copy_only=False)
        c = cur.column(name).to_numpy(zero_copy_only=False)
        want = ks_2samp(r[np.isfinite(r)], c[np.isfinite(c)])
        assert by_name[name]["ks_statistic"] == float(want.statistic)
        assert by_name[name]["ks_pvalue"] == pytest.approx(float(want.pvalue), rel=1e-12, abs=1e-300)
    assert by_name["cat"]["unseen_categories"] == 3
    assert by_name["count"]["kind"] == "categorical"
    blob = json.dumps([s.signed_json() for s in summaries]) + json.dumps(reference.signed_json())
    assert PLANTED not in blob and '"new1"' not in blob  # category names never enter a summary


def test_drift_coarse_sketches_keep_ks_bound(tmp_path):
    """Past sketch_bins distinct values: PSI and counts exact, the true KS within [statistic, upper]."""
    ref, cur = drift_table(12_000, 0.0, seed=3, distinct=True), drift_table(24_000, 0.05, seed=4, distinct=True)
    pq.write_table(ref, tmp_path / "ref.parquet")
    pol = drift_policy(sketch_bins=10_000, thresholds={"psi": {"max": 0.5}, "ks_statistic": {"max": 0.5}})
    parts = row_groups(cur, tmp_path / "cur.parquet", 16)
    single = check_drift(pol, str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet"))
    reference = drift_summary.summarize_reference(pol, str(tmp_path / "ref.parquet"))
    merged = tree_merge([drift_summary.summarize_partition(pol, p, reference=reference) for p in parts],
                        random.Random(7))
    outcome = drift_summary.check_summary(pol, merged, reference=reference.signed_json())
    r = ref.column("fine").to_numpy()
    c = cur.column("fine").to_numpy()
    truth = float(ks_2samp(r, c).statistic)
    for result in (single, outcome):
        fine = {f["feature"]: f for f in result.metrics["features"]}["fine"]
        assert fine["sketch_exact"] is False
        assert fine["ks_statistic"] - 1e-12 <= truth <= fine.get("ks_statistic_upper", fine["ks_statistic"]) + 1e-12
    a = {f["feature"]: f for f in single.metrics["features"]}["fine"]
    b = {f["feature"]: f for f in outcome.metrics["features"]}["fine"]
    assert a["psi"] == b["psi"] and a["histogram"] == b["histogram"]  # edges and bin counts exact


def test_drift_type_change_and_empty_current(drift_data, tmp_path):
    root, _ref, cur, pol, reference = drift_data
    changed = cur.set_column(cur.schema.get_field_index("x"), "x", pa.array([str(v) for v in range(cur.num_rows)]))
    pq.write_table(changed, tmp_path / "changed.parquet", row_group_size=2000)
    parts = [f"{tmp_path / 'changed.parquet'}#row_group={i}" for i in range(4)]
    single = check_drift(pol, str(root / "ref.parquet"), str(tmp_path / "changed.parquet"))
    merged = merge_all([drift_summary.summarize_partition(pol, p, reference=reference) for p in parts])
    same_outcome(single, drift_summary.check_summary(pol, merged, reference=reference))
    assert "drift.type_changed" in {f.rule for f in single.findings}
    pq.write_table(cur.slice(0, 0), tmp_path / "empty.parquet")
    empty = drift_summary.summarize_partition(pol, str(tmp_path / "empty.parquet"), reference=reference)
    with pytest.raises(InputDataError, match="current table is empty"):
        drift_summary.check_summary(pol, empty, reference=reference)


# --- merge algebra, JSON, refusals, size -----------------------------------------------------------------

@pytest.fixture(scope="module")
def leaves(tmp_path_factory, drift_data):
    root = tmp_path_factory.mktemp("leaves")
    df = bias_frame(3000, 6, seed=21)
    bpol = bias_policy()
    b_parts = row_groups(pa.Table.from_pandas(df, preserve_index=False), root / "b.parquet", 7)
    b = [bias_summary.summarize_partition(bpol, p) for p in b_parts]
    _, _, cur, dpol, reference = drift_data
    d_parts = row_groups(cur, root / "d.parquet", 7)
    d = [drift_summary.summarize_partition(dpol, p, reference=reference) for p in d_parts]
    return b, d


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.permutations(range(7)), st.integers(0, 2**32 - 1))
def test_merge_is_associative_and_commutative(leaves, perm, seed):
    for summaries in leaves:
        fold = merge_all(summaries)
        tree = tree_merge([summaries[i] for i in perm], random.Random(seed))
        assert tree.signed_json() == fold.signed_json()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=0, max_size=60), min_size=1, max_size=6),
       st.integers(0, 2**32 - 1))
def test_value_sketch_merge_is_associative_and_commutative(chunks, seed):
    """Small sketches (16 bins) coarsen on merge: any merge tree gives the same bins."""
    sketches = []
    for values in chunks:
        s = ValueSketch(16)
        s.add(np.array(values, dtype=np.float64))
        sketches.append(s)
    rng = random.Random(seed)
    fold = sketches[0]
    for s in sketches[1:]:
        fold = fold.merged(s)
    order = list(range(len(sketches)))
    rng.shuffle(order)
    tree = tree_merge([_Mergeable(sketches[i]) for i in order], rng).sketch
    assert tree.to_json() == fold.to_json()
    assert fold.total == sum(len(v) for v in chunks)
    assert len(fold.key) <= 16
    assert ValueSketch.from_json(fold.to_json()).to_json() == fold.to_json()


class _Mergeable:
    def __init__(self, sketch: ValueSketch) -> None:
        self.sketch = sketch

    def merge(self, other: _Mergeable) -> _Mergeable:
        return _Mergeable(self.sketch.merged(other.sketch))


def test_json_round_trip_and_tampering(leaves, drift_data):
    reference = drift_data[4]
    for gate, summaries in zip(("bias", "drift"), leaves):
        merged = merge_all(summaries)
        for s in (summaries[0], merged):
            signed = json.loads(json.dumps(s.signed_json()))
            back = load_summary(gate, signed)
            assert type(back) is summary_class(gate)
            assert back.signed_json() == s.signed_json()
        signed = merged.signed_json()
        signed["coverage"] = dict(signed["coverage"])
        first = min(signed["coverage"])
        signed["coverage"][first] = {**signed["coverage"][first], "rows": signed["coverage"][first]["rows"] + 1}
        with pytest.raises(SecurityViolationError):
            load_summary(gate, signed)
    back = drift_summary.DriftReference.from_json(json.loads(json.dumps(reference.signed_json())))
    assert back.digest() == reference.digest()


def test_merging_different_policies_columns_or_references_is_refused(leaves, drift_data, tmp_path):
    b, d = leaves
    _root, _ref, _cur, dpol, reference = drift_data
    df = bias_frame(500, 6, seed=22)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp_path / "o.parquet")
    other_policy = bias_summary.summarize_partition(bias_policy(min_group_size=41), str(tmp_path / "o.parquet"))
    with pytest.raises(ConfigurationError, match="policy"):
        b[0].merge(other_policy)
    same = bias_summary.summarize_partition(bias_policy(), str(tmp_path / "o.parquet"))
    assert same.policy == b[0].policy and b[0].merge(same).coverage.rows == b[0].coverage.rows + 500
    cols = bias_summary.summarize_partition(bias_policy(), str(tmp_path / "o.parquet"))
    cols.columns = {**cols.columns, "sensitive": ["band", "region"]}
    with pytest.raises(ConfigurationError, match="columns"):
        b[0].merge(cols)
    with pytest.raises(ConfigurationError, match="cannot merge"):
        b[0].merge(d[0])
    with pytest.raises(ConfigurationError, match="different bias policy"):
        bias_summary.check_summary(bias_policy(min_group_size=41), b[0])
    # drift: another reference (same policy) does not merge, and a check against another reference fails
    pq.write_table(drift_table(3000, 0.0, seed=9), tmp_path / "ref2.parquet")
    ref2 = drift_summary.summarize_reference(dpol, str(tmp_path / "ref2.parquet"))
    other_ref = drift_summary.summarize_partition(dpol, d[0].coverage.parts[d[0].partition]["uri"] + "#row_group=0",
                                                  partition_id="x", reference=ref2)
    with pytest.raises(ConfigurationError, match="reference"):
        d[1].merge(other_ref)
    with pytest.raises(ConfigurationError, match="another reference"):
        drift_summary.check_summary(dpol, merge_all(d), reference=ref2)
    with pytest.raises(ConfigurationError, match="different drift policy"):
        drift_summary.summarize_partition(drift_policy(bins=5), str(tmp_path / "ref2.parquet"), reference=reference)


def test_summary_size_is_bounded_by_groups_and_bins(leaves, drift_data):
    """Bytes per partition (printed) stay under a bound from groups x 16 cells and sketch bins x 4 words."""
    b, d = leaves
    pol = bias_policy()
    for s in b:
        size = len(json.dumps(s.signed_json()))
        state = s.state
        groups = sum(len(g["cells"]) for g in state["groupings"])
        rows = state["rows"]
        bins = sum(min(pol.sketch_bins, 4 * len(g["cells"]) * rows) for g in state["groupings"])
        bound = 4096 + groups * 16 * (len(str(rows)) + 2) + bins * 4 * 8 * 4 // 3 * 1.02 \
            + sum(len(json.dumps(v)) for v in state["sensitive"].values())
        print(f"INFO bias summary: {size} bytes for {rows} rows, {groups} groups")
        assert size <= bound
    reference = drift_data[4]
    dpol = drift_data[3]
    for s in d:
        size = len(json.dumps(s.signed_json()))
        rows = s.coverage.rows
        numeric = sum(1 for v in s.current.values() if "sketch" in v)
        cats = sum(len(v["counts"]) + len(v["unseen"]) for v in s.current.values() if "counts" in v)
        bound = 4096 + numeric * (min(dpol.sketch_bins, rows) * 4 * 8 * 4 // 3 * 1.02
                                  + (dpol.bins + 2) * (len(str(rows)) + 2)) + cats * (32 + 4 + len(str(rows)) + 2)
        print(f"INFO drift summary: {size} bytes for {rows} rows, {numeric} numeric features, {cats} categories")
        assert size <= bound
    print(f"INFO drift reference summary: {len(json.dumps(reference.signed_json()))} bytes")
