"""Drift on wide tables: the grouped wide-CSV reader, the unvalidated findings and the vectorized
categorical histograms give exactly what the per-column paths give."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from airflow_aisec.core.gates.drift import check_drift, evaluate_drift
from airflow_aisec.core.policy.sections.drift import DriftPolicy
from airflow_aisec.core.result import Finding
from tests.helpers.calls import count_calls


def _table(seed: int, columns: int = 40, rows: int = 6, odd: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    data = {}
    for i in range(columns):
        if i % 4 == 0:
            data[f"f{i}"] = pa.array(rng.choice(["n", "s", "e", "w"], rows))
        elif i % 4 == 1:
            data[f"f{i}"] = pa.array(rng.integers(0, 3, rows))  # declared categorical below (f1)
        elif i % 7 == 2:
            values = rng.normal(size=rows).tolist()
            values[seed % rows] = None
            data[f"f{i}"] = pa.array(values, pa.float64())
        else:
            data[f"f{i}"] = pa.array(rng.normal(loc=seed, size=rows))  # the current table drifts
    if odd:  # a value the wide reader's fast rules leave to pyarrow (its own batch)
        data["f3"] = pa.array(["+1.5"] + [str(v) for v in rng.normal(size=rows - 1)])
    return pa.table(data)


@pytest.mark.parametrize(("odd", "rows"), [(False, 6), (True, 6), (False, 300)])
def test_grouped_wide_csv_equals_pyarrows_path(tmp_path, monkeypatch, odd, rows):
    """300 rows: past the matrix limit, the blocks spill to per-feature accumulators fed from groups."""
    from airflow_aisec.core.io import wide_csv

    paths = []
    for k in range(2):
        paths.append(tmp_path / f"t{k}.csv")
        pacsv.write_csv(_table(k, rows=rows, odd=odd), paths[-1])
    section = DriftPolicy(max_unseen_fraction=0.0, categorical=["f1"], thresholds={"psi": {"max": 0.5}})
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    rows = count_calls(monkeypatch, wide_csv, "_row_groups")
    wide = check_drift(section, str(paths[0]), str(paths[1]))
    assert rows[0] >= 2  # both tables read by the wide reader
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 10**9)
    arrow = check_drift(section, str(paths[0]), str(paths[1]))
    assert wide.metrics == arrow.metrics
    assert [f.model_dump() for f in wide.findings] == [f.model_dump() for f in arrow.findings]
    assert wide.findings  # the check can fail


def test_trusted_finding_equals_validated():
    loc = {"feature": "a", "metric": "psi", "value": 0.3, "max": 0.2}
    for count in (None, 4):
        kwargs = {} if count is None else {"count": count}
        a = Finding(rule="drift.psi", severity="high", message="m", location=loc, **kwargs)
        b = Finding.trusted("drift.psi", "high", "m", loc, count)
        assert a == b and a.model_dump_json() == b.model_dump_json() and a.model_fields_set == b.model_fields_set
        [c] = Finding.trusted_many("high", [("drift.psi", "m", loc, count)])
        assert a == c and a.model_dump_json() == c.model_dump_json() and a.model_fields_set == c.model_fields_set
    with pytest.raises(ValueError):
        Finding.trusted_many("severe", [("drift.psi", "m", loc, None)])


def test_entries_keep_their_key_order_and_the_collector_its_state(monkeypatch):
    """The blocks build each feature's metrics entry in place: the same keys, in the same order, as the
    per-feature path; the collector is enabled again, nothing left frozen."""
    import gc

    from airflow_aisec.core.gates.drift import _block

    ref, cur = _table(1), _table(2)
    cur = cur.set_column(cur.schema.get_field_index("f2"), "f2", pa.array(["x"] * cur.num_rows))  # type change
    section = DriftPolicy(categorical=["f1"])
    assert gc.isenabled()
    matrix = evaluate_drift(section, ref, cur)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    monkeypatch.setattr(_block, "SMALL_ROWS", 0)  # every feature streamed on its own
    streamed = evaluate_drift(section, ref, cur)
    assert [list(e) for e in matrix.metrics["features"]] == [list(e) for e in streamed.metrics["features"]]
    assert [(f.rule, f.message) for f in matrix.findings] == [(f.rule, f.message) for f in streamed.findings]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), None, 0.5, 0.1])
def test_judge_bounds_fail_undefined_and_infinite_values(value):
    from airflow_aisec.core.gates.drift._judge import Judge
    from airflow_aisec.core.policy.base import Bound

    for bound in ({"max": 0.2}, {"min": 0.0}, {"min": 0.0, "max": 0.2}):
        judge = Judge(DriftPolicy(thresholds={"psi": bound}))
        checks, _ = judge._thresholds("x")
        findings: list[Finding] = []
        violated = judge._threshold_findings("x", {"psi": value}, checks, "numeric", findings)
        assert bool(violated) == Bound(**bound).violated(value) == bool(findings)
        if value is not None and not math.isfinite(value):
            assert violated == ["psi"]


def test_categorical_histograms_match_per_feature_path(monkeypatch):
    from airflow_aisec.core.gates.drift import _block

    rng = np.random.default_rng(5)
    names = [f"k{i}" for i in range(30)]
    letters = list("abcdefghijklmnopqrstuvwxyz")

    def table(seed: int) -> pa.Table:
        r = np.random.default_rng(seed)
        return pa.table({n: pa.array([None if r.random() < 0.1 else letters[int(x)] for x in
                                      r.integers(0, 2 + i % 20, 60)]) for i, n in enumerate(names)})

    section = DriftPolicy(max_unseen_fraction=0.05, category_label_min_count=2)
    ref, cur = table(int(rng.integers(100))), table(int(rng.integers(100, 200)))
    matrix = evaluate_drift(section, ref, cur)
    monkeypatch.setattr(_block, "SMALL_ROWS", 0)  # every feature streamed on its own
    streamed = evaluate_drift(section, ref, cur)
    assert matrix.metrics == streamed.metrics
    assert matrix.report_labels == streamed.report_labels
    assert [f.model_dump() for f in matrix.findings] == [f.model_dump() for f in streamed.findings]
