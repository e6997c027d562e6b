"""Drift gate, streamed: numbers equal numpy/scipy on the same data (matrix path for small tables,
sketch path for large ones, several batches, files), exact quantile edges past the sketch size, the
KS error bound (fail closed across the threshold), and memory that does not grow with rows (sketch
sizes counted, not timed)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import ks_2samp

from airflow_aisec.core.gates.drift import (
    _block,
    _evaluate,
    _statistics,
    bin_counts,
    check_drift,
    evaluate_drift,
    psi,
    quantile_edges,
)
from airflow_aisec.core.policy.base import Bound
from airflow_aisec.core.policy.sections.drift import DriftPolicy, DriftThresholds
from airflow_aisec.core.stats import ValueSketch, key_values, order_keys

LOOSE = DriftThresholds(psi=Bound(max=1e9), ks_statistic=Bound(max=1.0))


def expected_numeric(ref: np.ndarray, cur: np.ndarray, bins: int = 10, eps: float = 1e-4) -> dict:
    """The gate's definitions computed the obvious way on all values in memory (numpy, scipy)."""
    r_ok, c_ok = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    edges = quantile_edges(r_ok, bins)
    rc, cc = bin_counts(r_ok, edges), bin_counts(c_ok, edges)
    r_miss, c_miss = len(ref) - len(r_ok), len(cur) - len(c_ok)
    if r_miss or c_miss:
        rc, cc = np.append(rc, r_miss), np.append(cc, c_miss)
    ks = ks_2samp(r_ok, c_ok)
    return {"psi": psi(rc, cc, epsilon=eps), "ks_statistic": float(ks.statistic), "ks_pvalue": float(ks.pvalue),
            "bin_count": len(edges) + 1, "ref_hist": (rc / rc.sum()).tolist()}


def mixed_columns(n: int, seed: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    with_missing = rng.normal(shift, 1, n)
    with_missing[rng.random(n) < 0.1] = np.nan
    with_inf = rng.lognormal(0, 1, n)
    with_inf[rng.random(n) < 0.01] = np.inf
    return {
        "normal": rng.normal(shift, 1, n),
        "ties": rng.integers(-3, 4, n).astype(float),  # a handful of distinct values, negative and zero
        "missing": with_missing,
        "inf": with_inf,
        "signed_zero": np.where(rng.random(n) < 0.5, -0.0, 0.0) + rng.integers(0, 2, n),
    }


def check_equal(ev, ref_cols, cur_cols, rel=1e-12):
    for name in ref_cols:
        got = next(f for f in ev.metrics["features"] if f["feature"] == name)
        want = expected_numeric(ref_cols[name], cur_cols[name])
        assert got["bin_count"] == want["bin_count"], name
        assert got["psi"] == pytest.approx(want["psi"], rel=rel, abs=1e-15), name
        assert got["ks_statistic"] == want["ks_statistic"], name  # bit for bit
        assert got["ks_pvalue"] == pytest.approx(want["ks_pvalue"], rel=1e-12, abs=1e-300), name
        assert got["ks_error_bound"] == 0.0 and got["sketch_exact"]
        assert got["histogram"]["reference"] == pytest.approx(want["ref_hist"], rel=1e-12)


@pytest.mark.parametrize("n", [7, 200, 3000, 30_000])
def test_numeric_statistics_equal_numpy_and_scipy(n, monkeypatch):
    # several batches (the table is streamed in chunks of 1,000 rows): counts summed batch by batch
    monkeypatch.setattr(_evaluate, "TABLE_BATCH_ROWS", 1000)
    ref, cur = mixed_columns(n, 1), mixed_columns(n + 13, 2, shift=0.3)
    # exact while a feature has at most sketch_bins distinct values per table
    ev = evaluate_drift(DriftPolicy(thresholds=LOOSE, sketch_bins=max(16_384, 2 * n)), pa.table(ref), pa.table(cur))
    check_equal(ev, ref, cur)


def test_matrix_path_and_streamed_path_agree(monkeypatch):
    rng = np.random.default_rng(3)
    ref = {f"c{i}": np.where(rng.random(6) < 0.2, np.nan, rng.normal(size=6)) for i in range(300)}
    cur = {f"c{i}": rng.integers(0, 3, 5).astype(float) for i in range(300)}
    ref["c0"][:] = [1, 1, 1, 1, 1, np.nan]  # one distinct value: one bin
    pol = DriftPolicy(thresholds=LOOSE)
    small = evaluate_drift(pol, pa.table(ref), pa.table(cur))
    check_equal(small, ref, cur)
    monkeypatch.setattr(_block, "SMALL_ROWS", 0)  # force the per-feature streamed path
    streamed = evaluate_drift(pol, pa.table(ref), pa.table(cur))
    for a, b in zip(small.metrics["features"], streamed.metrics["features"]):
        assert a["psi"] == pytest.approx(b["psi"], rel=1e-12)
        assert {k: a[k] for k in ("ks_statistic", "ks_pvalue", "bin_count", "reference_missing_fraction")} == \
               {k: b[k] for k in ("ks_statistic", "ks_pvalue", "bin_count", "reference_missing_fraction")}


def test_spill_from_matrix_to_streamed_in_the_current_table(monkeypatch):
    monkeypatch.setattr(_block, "SMALL_ROWS", 100)
    monkeypatch.setattr(_evaluate, "TABLE_BATCH_ROWS", 60)
    ref, cur = mixed_columns(90, 4), mixed_columns(500, 5, shift=1.0)  # small reference, large current
    ev = evaluate_drift(DriftPolicy(thresholds=LOOSE), pa.table(ref), pa.table(cur))
    check_equal(ev, ref, cur)


def test_quantile_ranks_reproduce_np_quantile_bit_for_bit():
    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 9, 10, 11, 99, 1001, 12345]:
        x = np.sort(rng.normal(size=n))
        for bins in (2, 3, 10, 17, 100):
            prev, nxt, gamma = _statistics.quantile_ranks(n, bins)
            got = _statistics.lerp(x[prev], x[nxt], gamma)
            want = np.quantile(x, np.linspace(0.0, 1.0, bins + 1)[1:-1])
            assert np.array_equal(got, want), (n, bins)


def test_order_keys_sort_like_floats_and_round_trip():
    v = np.array([-np.inf, -1e308, -1.5, -5e-324, -0.0, 0.0, 5e-324, 1.0, 2.5, 1e308, np.inf])
    keys = order_keys(v)
    assert all(int(a) <= int(b) for a, b in itertools.pairwise(keys))
    assert keys[4] == keys[5]  # -0.0 and 0.0 are one value, as for scipy
    assert np.array_equal(key_values(keys), v + 0.0)


def test_sketch_size_does_not_grow_with_rows():
    """Memory flatness, counted: the entries a sketch holds stay under its limit, whatever the rows."""
    rng = np.random.default_rng(0)
    sizes = []
    for rows in (50_000, 500_000):
        sketch = ValueSketch(max_bins=10_000)
        for start in range(0, rows, 65_536):
            sketch.add(rng.normal(size=min(65_536, rows - start)))
            assert sketch._pending <= 10_000 + 65_536
        sketch.flush()
        assert sketch.total == rows
        sizes.append(len(sketch.key))
        assert len(sketch.key) <= 10_000
    assert sizes[1] <= 10_000 and sizes[0] <= 10_000


def test_exact_quantiles_past_the_sketch_size_need_extra_passes(monkeypatch):
    """A reference with far more distinct values than sketch_bins: the edges are still np.quantile's
    (refinement passes, including the sub-sketch path when the bins hold too many values), so PSI is
    exact; KS comes with a bound that contains scipy's statistic."""
    monkeypatch.setattr(_statistics, "COLLECT_LIMIT", 500)  # force the sub-sketch refinement
    monkeypatch.setattr(_evaluate, "TABLE_BATCH_ROWS", 20_000)
    rng = np.random.default_rng(7)
    n = 120_000
    ref = {"x": np.concatenate([rng.normal(size=n - 1000), np.full(1000, 0.5)])}  # a heavy tie inside a bin
    cur = {"x": rng.normal(0.05, 1.0, n)}
    passes = []
    real_stream = _evaluate._stream

    def counting(source, units, step, *plan):
        passes.append(step)
        return real_stream(source, units, step, *plan)

    monkeypatch.setattr(_evaluate, "_stream", counting)
    ev = evaluate_drift(DriftPolicy(thresholds=LOOSE, sketch_bins=10_000), pa.table(ref), pa.table(cur))
    got = ev.metrics["features"][0]
    want = expected_numeric(ref["x"], cur["x"])
    assert passes.count("rescan") >= 1
    assert got["bin_count"] == want["bin_count"]
    assert got["psi"] == pytest.approx(want["psi"], rel=1e-12)
    assert got["sketch_exact"] is False
    assert got["ks_statistic"] <= want["ks_statistic"] <= got["ks_statistic_upper"]
    assert 0 < got["ks_error_bound"] < 0.01
    assert got["ks_pvalue_lower"] <= want["ks_pvalue"] * (1 + 1e-9) + 1e-300


def test_order_statistics_exact_on_hostile_values(monkeypatch):
    monkeypatch.setattr(_statistics, "COLLECT_LIMIT", 64)
    rng = np.random.default_rng(11)
    values = np.concatenate([rng.normal(size=40_000), rng.normal(1e300, 1e299, 50), np.full(5000, -0.0),
                             rng.uniform(1.0, 1.0 + 1e-12, 20_000)])
    sketch = ValueSketch(max_bins=1024)
    for chunk in np.array_split(values, 7):
        sketch.add(chunk)
    ranks = np.array([0, 1, 777, 20_000, 40_000, len(values) - 1])
    order = _statistics.OrderStatistics(sketch.coarsened_to(sketch.shift), ranks, 1024)
    for _ in range(70):
        if order.done:
            break
        for chunk in np.array_split(values, 5):
            order.add(chunk)
        order.end_pass()
    assert order.done
    assert np.array_equal(order.values, np.sort(values)[ranks] + 0.0)


def test_ks_threshold_inside_the_error_bound_fails_closed():
    rng = np.random.default_rng(5)
    ref, cur = {"x": rng.normal(size=60_000)}, {"x": rng.normal(0.02, 1, 60_000)}
    base = {"sketch_bins": 10_000}
    probe = evaluate_drift(DriftPolicy(thresholds=LOOSE, **base), pa.table(ref), pa.table(cur))
    f = probe.metrics["features"][0]
    lo, hi = f["ks_statistic"], f["ks_statistic_upper"]
    assert hi > lo

    def rules_at(limit: float) -> list[str]:
        pol = DriftPolicy(thresholds=DriftThresholds(psi=Bound(max=1e9), ks_statistic=Bound(max=limit)), **base)
        ev = evaluate_drift(pol, pa.table(ref), pa.table(cur))
        return [x.message for x in ev.findings if x.rule == "drift.ks_statistic"]

    inside = rules_at((lo + hi) / 2)
    assert inside and "fails closed" in inside[0]
    assert rules_at(lo / 2) and not rules_at(min(1.0, hi * 1.01))


def test_categorical_counts_streamed_equal_whole_table(monkeypatch):
    monkeypatch.setattr(_evaluate, "TABLE_BATCH_ROWS", 333)
    rng = np.random.default_rng(2)
    cats = [f"c{i:03d}" for i in range(120)]
    ref = rng.choice(cats[:100], 5000).astype(object)
    cur = rng.choice(cats, 4000).astype(object)
    ref[rng.random(5000) < 0.05] = None
    cur[rng.random(4000) < 0.2] = " "  # blank counts as missing
    pol = DriftPolicy(thresholds=DriftThresholds(psi=Bound(max=1e9)), max_unseen_fraction=1.0)
    ev = evaluate_drift(pol, pa.table({"k": pa.array(ref, pa.string())}), pa.table({"k": pa.array(cur, pa.string())}))
    f = ev.metrics["features"][0]
    r = pd.Series(ref).map(lambda v: None if v is None or not str(v).strip() else v)
    c = pd.Series(cur).map(lambda v: None if v is None or not str(v).strip() else v)
    order = list(dict.fromkeys(r.dropna()))
    order += [k for k in dict.fromkeys(c.dropna()) if k not in order]
    rc = np.array([int((r == k).sum()) for k in order] + [int(r.isna().sum())])
    cc = np.array([int((c == k).sum()) for k in order] + [int(c.isna().sum())])
    assert f["psi"] == pytest.approx(psi(rc, cc), rel=1e-12)
    assert f["categories_reference"] == 100 and f["categories_current"] == c.dropna().nunique()
    unseen = int(c.isin(cats[100:]).sum())
    assert f["unseen_rows"] == unseen and f["unseen_fraction"] == pytest.approx(unseen / 4000)
    assert f["current_missing_fraction"] == pytest.approx(c.isna().mean())


def test_files_streamed_equal_in_memory(tmp_path):
    """Parquet (several row groups) and CSV (several blocks) streamed from disk give the numbers of
    the same data in memory, and numpy/scipy's."""
    import pyarrow.csv as pcsv

    ref, cur = mixed_columns(70_000, 8), mixed_columns(90_000, 9, shift=0.1)
    del ref["inf"], cur["inf"]  # CSV round trip of inf is not the point here
    ref_df, cur_df = pd.DataFrame(ref), pd.DataFrame(cur)
    ref_df["region"] = np.random.default_rng(1).choice(["n", "s", "e"], len(ref_df))
    cur_df["region"] = np.random.default_rng(2).choice(["n", "s", "e"], len(cur_df))
    pq.write_table(pa.Table.from_pandas(ref_df, preserve_index=False), tmp_path / "r.parquet", row_group_size=8192)
    cur_df.to_csv(tmp_path / "c.csv", index=False)
    pol = DriftPolicy(thresholds=LOOSE, sketch_bins=200_000)
    out = check_drift(pol, str(tmp_path / "r.parquet"), str(tmp_path / "c.csv"))
    cur_read = pcsv.read_csv(tmp_path / "c.csv")
    mem = evaluate_drift(pol, pa.Table.from_pandas(ref_df, preserve_index=False), cur_read)
    assert out.metrics["features"] == mem.metrics["features"]
    cur_values = {k: cur_read.column(k).to_numpy(zero_copy_only=False).astype(float) for k in ref}
    check_equal(out, ref, cur_values)
    region = next(f for f in out.metrics["features"] if f["feature"] == "region")
    assert region["kind"] == "categorical" and math.isfinite(region["psi"])
