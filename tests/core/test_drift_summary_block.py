"""Partitioned drift on small and wide tables: the summary states made for all numeric features at once
(``drift/_summary_block.py``) equal the per-feature ones byte for byte, and the merge node's matrix
comparison gives the single-node check's verdict, findings and metrics."""

from __future__ import annotations

import base64
import json
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.gates.drift import _block, _features, check_drift
from airflow_aisec.core.gates.drift import summary as drift_summary
from airflow_aisec.core.gates.drift._summary_block import value_matrices
from airflow_aisec.core.partitions import merge_all
from airflow_aisec.core.policy.sections.drift import DriftPolicy
from airflow_aisec.core.stats import ValueSketch, order_keys
from tests.helpers.calls import count_calls


def _table(rows: int, seed: int, shift: float = 0.0) -> pa.Table:
    """Numeric columns with ties, missing values, infinities, signed zeros, a constant and a
    single-valued column, and a categorical one."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1, rows)
    x[rng.random(rows) < 0.1] = np.nan
    odd = rng.choice([-0.0, 0.0, 1.5, np.inf, -np.inf, np.nan, -2.0], rows)
    only = np.full(rows, np.nan)
    only[seed % rows] = 7.25
    return pa.table({
        "x": x, "ties": rng.integers(-2, 3, rows).astype(float) + shift, "odd": odd, "only": only,
        "constant": np.full(rows, 3.0), "wide": rng.normal(shift, 1e6, rows), "n": rng.integers(0, 50, rows),
        "cat": rng.choice(["a", "b", "c"] + (["d"] if shift else []), rows).astype(object)})


def _policy(**extra) -> DriftPolicy:
    return DriftPolicy.model_validate({"thresholds": {"psi": {"max": 0.2}, "ks_statistic": {"max": 0.3}},
                                       "max_unseen_fraction": 0.1, **extra})


def _per_feature(monkeypatch) -> None:
    """No table is small: the numeric features stream one accumulator each (the reference path)."""
    monkeypatch.setattr(_block, "SMALL_ROWS", 0)


@pytest.mark.parametrize("rows", [1, 2, 7, 64, 256])
@pytest.mark.parametrize("bins", [2, 10, 37])
def test_states_equal_the_per_feature_states(tmp_path, monkeypatch, rows, bins):
    pol = _policy(bins=bins)
    pq.write_table(_table(rows, 1), tmp_path / "ref.parquet")
    pq.write_table(_table(rows, 2, shift=0.5), tmp_path / "cur.parquet", row_group_size=max(1, rows // 3))
    parts = [f"{tmp_path / 'cur.parquet'}#row_group={i}" for i in range(pq.ParquetFile(tmp_path / "cur.parquet")
                                                                          .metadata.num_row_groups)]
    reference = drift_summary.summarize_reference(pol, str(tmp_path / "ref.parquet"))
    summaries = [drift_summary.summarize_partition(pol, p, reference=reference).to_json() for p in parts]
    _per_feature(monkeypatch)
    accumulators = count_calls(monkeypatch, _features.NumericFeature, "__init__")
    expected = drift_summary.summarize_reference(pol, str(tmp_path / "ref.parquet"))
    assert json.dumps(reference.to_json()) == json.dumps(expected.to_json())  # byte for byte
    assert reference.digest() == expected.digest()
    assert summaries == [drift_summary.summarize_partition(pol, p, reference=expected).to_json() for p in parts]
    assert accumulators[0] > 0  # the reference path did run per feature


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("small", [True, False])
def test_small_partitioned_check_equals_single_node(tmp_path, monkeypatch, k, small):
    """Both ways (matrices, or per-feature accumulators everywhere) the merged check is the single-node
    check: same verdict, findings and metrics, and it fails on the planted drift."""
    if not small:
        _per_feature(monkeypatch)
    pol = _policy()
    pq.write_table(_table(120, 3), tmp_path / "ref.parquet")
    pq.write_table(_table(90, 4, shift=2.0), tmp_path / "cur.parquet", row_group_size=90 // k)
    parts = [f"{tmp_path / 'cur.parquet'}#row_group={i}" for i in range(k)]
    single = check_drift(pol, str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet"))
    reference = drift_summary.summarize_reference(pol, str(tmp_path / "ref.parquet"))
    merged = merge_all([drift_summary.summarize_partition(pol, p, reference=reference.signed_json()) for p in parts])
    outcome = drift_summary.check_summary(pol, merged, reference=reference)
    metrics = dict(outcome.metrics)
    assert metrics.pop("partitions")["count"] == k
    assert metrics == single.metrics
    assert [f.model_dump() for f in outcome.findings] == [f.model_dump() for f in single.findings]
    assert {"drift.psi", "drift.ks_statistic", "drift.unseen_category"} <= {f.rule for f in outcome.findings}


def test_wide_partitioned_drift_has_no_per_feature_accumulator(tmp_path, monkeypatch):
    """2,000 columns x 5 rows as a wide CSV file: no numeric feature gets an accumulator of its own
    anywhere (reference, partition, merge), and the result is the single-node check's."""
    from airflow_aisec.core.io import wide_csv

    rng = np.random.default_rng(5)
    for name, loc in (("ref", 0.0), ("cur", 3.0)):
        data = {f"c{i}": rng.normal(loc, 1, 5) for i in range(2_000)}
        data["c7"] = np.array(["n", "s", "n", "e", "w"], dtype=object)
        pacsv.write_csv(pa.table(data), tmp_path / f"{name}.csv")
    pol = _policy(categorical=["c7"])
    grouped = count_calls(monkeypatch, wide_csv, "iter_wide_csv_groups")
    accumulators = count_calls(monkeypatch, _features.NumericFeature, "__init__")
    reference = drift_summary.summarize_reference(pol, str(tmp_path / "ref.csv"))
    summary = drift_summary.summarize_partition(pol, str(tmp_path / "cur.csv"), reference=reference)
    outcome = drift_summary.check_summary(pol, summary, reference=reference)
    assert accumulators[0] == 0 and grouped[0] >= 1
    single = check_drift(pol, str(tmp_path / "ref.csv"), str(tmp_path / "cur.csv"))
    outcome.metrics.pop("partitions")
    assert outcome.metrics == single.metrics
    assert len(outcome.findings) == len(single.findings) >= 1_999  # every numeric feature drifted


def _state(values: list[float], rows: int) -> dict:
    sketch = ValueSketch(16_384)
    sketch.add(np.asarray(values, dtype=np.float64))
    return {"rows": rows, "missing": rows - len(values), "sketch": sketch.to_json()}


def test_value_matrices_rebuild_exact_sketches_and_refuse_others():
    states = [_state([2.0, -1.0, 2.0], 4), _state([], 4), _state([0.5, 0.5, 0.5, -0.0], 4)]
    matrix = value_matrices(states, 4)
    assert matrix is not None
    np.testing.assert_array_equal(matrix[:, 0], [-1.0, 2.0, 2.0, np.nan])
    assert np.isnan(matrix[:, 1]).all()
    np.testing.assert_array_equal(matrix[:, 2], [0.0, 0.5, 0.5, 0.5])
    assert value_matrices(states, 5) is None  # the rows do not match
    coarse = _state([1.0, 2.0], 4)
    coarse["sketch"]["shift"] = 3
    assert value_matrices([coarse], 4) is None  # merged values: not a matrix
    short = _state([1.0, 2.0], 4)
    short["missing"] = 1
    assert value_matrices([short], 4) is None  # the counts do not add up to the values


def test_sketch_json_small_arrays_raw_large_compressed_old_form_read():
    values = np.arange(100, dtype=np.float64)
    small, large = ValueSketch(16_384), ValueSketch(16_384)
    small.add(values[:3])
    large.add(values)
    assert small.to_json()["lo"].startswith("=") and not large.to_json()["lo"].startswith("=")
    for sketch in (small, large):
        back = ValueSketch.from_json(json.loads(json.dumps(sketch.to_json())))
        assert back.to_json() == sketch.to_json()
        np.testing.assert_array_equal(back.key, sketch.key)
    # Summaries written before raw arrays existed (every array compressed) still read.
    old = small.to_json()
    old["lo"] = base64.b64encode(zlib.compress(order_keys(values[:3]).astype("<u8").tobytes())).decode()
    np.testing.assert_array_equal(ValueSketch.from_json(old).lo, order_keys(values[:3]))
    with pytest.raises(ValueError):
        ValueSketch.from_json({**old, "lo": "=not base64!"})


def test_category_block_from_counts_refuses_counts_it_cannot_lay_out():
    from airflow_aisec.core.gates.drift._categories import CategoricalBlock

    pol = _policy()
    ok = CategoricalBlock.from_counts(["f"], pol, (4, 3), [(["a", "b", "z"], [3, 1], [1, 0, 2])])
    assert ok is not None
    (entry, _labels), = ok.stats({}, (4, 3))
    assert (entry["categories_reference"], entry["unseen_categories"], entry["unseen_rows"]) == (2, 1, 2)
    assert entry["reference_missing_fraction"] == 0.0 and entry["current_missing_fraction"] == 0.0
    for counts in ([(["a", "b"], [3, 0], [1, 1])],      # a reference category without a reference row
                   [(["a", "z"], [3], [1, 0])],         # an unseen category without a current row
                   [(["a"], [5], [1])],                 # more values than rows
                   [(["a"], [3, 1], [1, 1])]):          # counts for categories not named
        assert CategoricalBlock.from_counts(["f"], pol, (4, 3), counts) is None
    assert CategoricalBlock.from_counts(["f"], pol, (300, 3), [(["a"], [300], [3])]) is None  # not small
