"""Drift, categorical features of small / wide tables as one block: the same statistics, findings,
report labels and errors as one streamed accumulator per feature, bit for bit."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from airflow_aisec.core.gates.drift import _block, _categories, _evaluate, evaluate_drift
from airflow_aisec.core.gates.drift._statistics import psi
from airflow_aisec.core.io.schema_lists import ColumnLists
from airflow_aisec.core.policy.base import Bound
from airflow_aisec.core.policy.sections.drift import DriftPolicy, DriftThresholds
from airflow_aisec.exceptions import InputDataError


def categorical_columns(rows: int, seed: int, extra: int = 0) -> dict[str, pa.Array]:
    """Strings with blanks, nulls and padding, booleans, forced-categorical ints and floats, a
    dictionary column, and a feature with many categories (more than the report's top 15)."""
    rng = np.random.default_rng(seed)
    words = np.array(["north", " north", "south", "east", "west", "", "NORTH"] + [f"x{i}" for i in range(extra)],
                     dtype=object)
    text = words[rng.integers(0, len(words), rows)].tolist()
    text = [None if rng.random() < 0.1 else t for t in text]
    many = [f"c{v}" for v in rng.integers(0, 30 + extra, rows)]
    floats = rng.integers(0, 4, rows).astype(float)
    floats[rng.random(rows) < 0.15] = np.nan
    return {
        "text": pa.array(text, pa.string()),
        "large": pa.array(text, pa.large_string()),
        "flag": pa.array((rng.random(rows) < 0.3).tolist()),
        "code": pa.array(rng.integers(0, 5 + extra, rows)),
        "ratio": pa.array(floats),
        "dict": pa.array(words[rng.integers(0, 4, rows)].tolist()).dictionary_encode(),
        "many": pa.array(many),
        "constant": pa.array(["same"] * rows),
        "num": pa.array(rng.normal(size=rows)),
    }


def policy(**kw) -> DriftPolicy:
    return DriftPolicy(categorical=["code", "ratio"], category_label_min_count=2,
                       thresholds=DriftThresholds(psi=Bound(max=0.1), ks_statistic=Bound(max=0.5)), **kw)


def both_paths(monkeypatch, section, ref, cur):
    with monkeypatch.context() as m:
        m.setattr(_categories, "CategoricalFeature", None)  # the block must not fall back to them
        block = evaluate_drift(section, ref, cur)
    with monkeypatch.context() as m:
        m.setattr(_block, "SMALL_ROWS", 0)  # every block spills: one accumulator per feature
        streamed = evaluate_drift(section, ref, cur)
    return block, streamed


def categorical_part(ev):
    kinds = {f["feature"]: f["kind"] for f in ev.metrics["features"]}
    features = [f for f in ev.metrics["features"] if f["kind"] == "categorical"]
    findings = [f.model_dump() for f in ev.findings if kinds[f.location["feature"]] == "categorical"]
    labels = {k: v for k, v in ev.report_labels.items() if kinds[k] == "categorical"}
    return features, findings, labels


@pytest.mark.parametrize(("ref_rows", "cur_rows", "extra"), [(5, 5, 0), (40, 33, 0), (200, 150, 12), (1, 3, 0)])
def test_block_equals_per_feature_accumulators(monkeypatch, ref_rows, cur_rows, extra):
    ref = pa.table(categorical_columns(ref_rows, 1))
    cur = pa.table(categorical_columns(cur_rows, 2, extra=extra))  # extra: categories the reference lacks
    block, streamed = both_paths(monkeypatch, policy(max_unseen_fraction=0.05), ref, cur)
    assert categorical_part(block) == categorical_part(streamed)
    assert block.metrics["features_drifted"] == streamed.metrics["features_drifted"]
    many = next(f for f in block.metrics["features"] if f["feature"] == "many")
    codes = {v: i for i, v in enumerate(dict.fromkeys(ref["many"].to_pylist() + cur["many"].to_pylist()))}
    rc = np.bincount([codes[v] for v in ref["many"].to_pylist()], minlength=len(codes))
    cc = np.bincount([codes[v] for v in cur["many"].to_pylist()], minlength=len(codes))
    assert many["psi"] == psi(rc, cc, epsilon=1e-4)  # oracle: the 1-D definition, bit for bit


def test_wide_table_of_many_batches_and_columns(monkeypatch):
    monkeypatch.setattr(_evaluate, "TABLE_BATCH_ROWS", 3)  # several batches, still small
    rng = np.random.default_rng(7)
    cats = np.array(["a", "b", "c", None], dtype=object)
    ref = pa.table({f"f{i}": pa.array(cats[rng.integers(0, 4, 7)].tolist(), pa.string()) for i in range(300)})
    cur = pa.table({f"f{i}": pa.array(cats[rng.integers(0, 4, 6)].tolist(), pa.string()) for i in range(300)})
    ref = ref.set_column(0, "f0", pa.array(["a"] * 7))
    block, streamed = both_paths(monkeypatch, DriftPolicy(max_unseen_fraction=1.0), ref, cur)
    assert block.metrics == streamed.metrics
    assert [f.model_dump() for f in block.findings] == [f.model_dump() for f in streamed.findings]


def test_spill_in_the_current_table(monkeypatch):
    monkeypatch.setattr(_block, "SMALL_ROWS", 60)
    monkeypatch.setattr(_evaluate, "TABLE_BATCH_ROWS", 25)
    ref, cur = pa.table(categorical_columns(50, 3)), pa.table(categorical_columns(400, 4, extra=3))
    section = policy(max_unseen_fraction=0.0)
    spilled = evaluate_drift(section, ref, cur)
    monkeypatch.setattr(_block, "SMALL_ROWS", 0)
    streamed = evaluate_drift(section, ref, cur)
    assert categorical_part(spilled) == categorical_part(streamed)


@pytest.mark.parametrize("where", ["reference", "current"])
def test_too_many_categories_is_the_same_error(monkeypatch, where):
    ref = {"ok": ["a", "b", "a", "b"], "ids": ["a", "b", "a", "a"]}
    cur = {"ok": ["a", "b", "b", "a"], "ids": ["a", "b", "a", "b"]}
    (ref if where == "reference" else cur)["ids"] = ["p", "q", "r", "s"]
    errors = []
    for small in (256, 0):
        monkeypatch.setattr(_block, "SMALL_ROWS", small)
        with pytest.raises(InputDataError) as err:
            evaluate_drift(DriftPolicy(max_categories=3), pa.table(ref), pa.table(cur))
        errors.append(str(err.value))
    assert errors[0] == errors[1]
    assert "feature 'ids' has more than max_categories (3)" in errors[0]


def test_feature_without_reference_values_is_the_same_error(monkeypatch):
    ref = pa.table({"a": ["x", "y"], "b": pa.array([None, " "], pa.string())})
    cur = pa.table({"a": ["x", "y"], "b": ["u", "v"]})
    errors = []
    for small in (256, 0):
        monkeypatch.setattr(_block, "SMALL_ROWS", small)
        with pytest.raises(InputDataError) as err:
            evaluate_drift(DriftPolicy(), ref, cur)
        errors.append(str(err.value))
    assert errors[0] == errors[1] == "feature 'b' has no values in the reference table"


def test_a_source_may_return_its_columns_in_another_order():
    ref, cur = pa.table(categorical_columns(20, 8)), pa.table(categorical_columns(20, 9, extra=2))
    section = policy(max_unseen_fraction=0.5)
    want = evaluate_drift(section, ref, cur)

    def reversed_source(table, name):
        def batches(columns):
            yield from table.select(columns[::-1]).to_batches()

        return _evaluate.TableSource(column_lists=ColumnLists.of(table.schema), batches=batches, name=name)

    chosen = _evaluate.resolve_features(section, ref.schema.names)
    got = _evaluate.evaluate_sources(section, reversed_source(ref, "r"), reversed_source(cur, "c"), chosen)
    assert got.metrics == want.metrics
    assert [f.model_dump() for f in got.findings] == [f.model_dump() for f in want.findings]
