"""Drift's shortcuts for wide tables give exactly what the plain code gives: the kinds,
the read plan, the histogram lists, the finding messages and locations (a reference implementation
of the judge's per-threshold findings, as it was, is compared on random statistics), and the whole
check on random wide tables against the per-feature (streamed) path."""

from __future__ import annotations

import json
import math
import random
import struct
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from airflow_aisec.core.gates.drift import _block, _evaluate, check_drift
from airflow_aisec.core.gates.drift._judge import Judge
from airflow_aisec.core.policy.sections.drift import DriftPolicy
from airflow_aisec.core.stats import format_metric


def test_kinds_of_one_type_list_for_both_tables_equal_two_copies():
    types = [pa.float64(), pa.dictionary(pa.int8(), pa.string()), pa.string(), pa.dictionary(pa.int16(), pa.int64()),
             pa.struct([("x", pa.int64())]), pa.timestamp("ms"), pa.bool_(), pa.int8()]
    for forced in ([False] * len(types), [i % 2 == 0 for i in range(len(types))]):
        assert _evaluate._kinds(types, types, forced) == _evaluate._kinds(types, list(types), forced)


def test_plan_positions_equal_a_lookup_by_name():
    for units in ([("a", ["x", "y"]), ("b", ["z"])], [("a", ["x", "y"]), ("b", ["y", "z"])], [("a", ["x", "x"])],
                  [("a", [])], [("a", ["q"])]):
        names = list(dict.fromkeys(n for _, cols in units for n in cols))
        plan = _evaluate._plan(units)
        assert plan.names == names
        assert plan.where == [[names.index(n) for n in cols] for _, cols in units]


def test_prefix_lists_equal_slices():
    rng = np.random.default_rng(3)
    for uniform in (True, False):
        matrix = rng.random((50, 12))
        lengths = np.full(50, 7) if uniform else rng.integers(1, 13, 50)
        assert _block._prefix_lists(matrix, lengths) == [row[:k] for row, k in zip(matrix.tolist(), lengths.tolist())]


def test_shared_shares_equal_the_divisions():
    rng = np.random.default_rng(4)
    for rows in (1, 5, 7, 256):
        counts = rng.multinomial(rows, [0.2, 0.3, 0.1, 0.4], size=40)
        totals = counts.sum(axis=1)
        shares = counts / totals[:, None]
        got = _block._shares(counts, totals, shares)
        assert got.dtype == object and got.tolist() == shares.tolist()
        assert all(type(v) is float for v in got.ravel().tolist())
    counts = np.array([[1, 2], [3, 1]])
    shares = counts / counts.sum(axis=1)[:, None]
    assert _block._shares(counts, counts.sum(axis=1), shares) is shares  # totals differ: the divisions
    assert _block._shares(counts * 0, np.zeros(2, dtype=np.int64), shares) is shares  # no values


def test_percent_format_equals_the_format_spec():
    """The judge formats values as ``"%.4g" % v``, the messages' ``f"{v:.4g}"`` (faster): same text."""
    rng = random.Random(7)
    values = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, sys.float_info.max, 9.9995, 0.00012345, 1e16, 1, True]
    values += [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(20_000)]
    values += [rng.random() * 10.0 ** rng.randint(-12, 12) for _ in range(20_000)]
    assert [f"{v:.4g}" for v in values] == ["%.4g" % v for v in values]  # noqa: UP031


def _reference_findings(feature, stats, checks, kind):
    """The judge's findings of one feature before the speed-ups (location literal, ``format``)."""
    out, violated = [], []
    for metric, other_key, numeric_only, low, high, template, rule, head, must in checks:
        limits = {k: v for k, v in template.items() if k in ("min", "max")}
        if numeric_only and kind != "numeric":
            continue
        value = stats.get(metric)
        value_fails = value is None or not low <= value <= high
        other = None if other_key is None else stats.get(other_key)
        if not value_fails and (other is None or low <= other <= high):
            continue
        violated.append(metric)
        location = {"feature": feature, "metric": metric, "value": value, **limits}
        if other is None:
            if value is None:
                message = f"{head}{feature}' is undefined (NaN){must}; NaN never satisfies a threshold"
            else:
                message = f"{head}{feature}' is {value:.4g}{must}"
        else:
            location["other_end"] = other
            within = "" if value_fails else (
                f" (sketch error bound {format_metric(stats.get('ks_error_bound'))}: it may be "
                f"{format_metric(other)}, so the gate fails closed)")
            message = (f"{head}{feature}' is {format_metric(value)}{within}{must}"
                       + ("; NaN never satisfies a threshold" if value is None else ""))
        out.append((rule, message, location, None))
    return violated, out


@pytest.mark.parametrize("thresholds", [
    None,
    {"psi": {"max": 0.2}, "ks_statistic": {"max": 0.1}, "ks_pvalue": {"min": 0.05}},
    {"psi": {"min": 0.01, "max": 0.5}},
    {"ks_statistic": {"max": 0.3}},
])
def test_threshold_findings_equal_the_reference(thresholds):
    rng = random.Random(11)
    section = DriftPolicy(**({"thresholds": thresholds} if thresholds else {}))
    judge = Judge(section)
    checks = judge._thresholds("")[0]
    pool = [None, math.nan, math.inf, -math.inf, 0.0, -0.0, 0.05, 0.1, 0.2, 0.2000001, 1.0, 3.5e-7, 123456.789]
    for i in range(3000):
        stats = {m: rng.choice(pool + [rng.random()]) for m in ("psi", "ks_statistic", "ks_pvalue")}
        if rng.random() < 0.3:  # a merged sketch: the other ends of the KS range
            stats["ks_statistic_upper"] = rng.choice(pool + [rng.random()])
            stats["ks_pvalue_lower"] = rng.choice(pool + [rng.random()])
            stats["ks_error_bound"] = rng.choice([None, 0.01, rng.random()])
        kind = rng.choice(["numeric", "categorical"])
        items: list = []
        violated = judge._threshold_findings(f"f{i}", stats, checks, kind, items)
        want_violated, want_items = _reference_findings(f"f{i}", stats, checks, kind)
        assert violated == want_violated
        assert json.dumps(items) == json.dumps(want_items)  # key order included
        assert [list(loc) for _, _, loc, _ in items] == [list(loc) for _, _, loc, _ in want_items]


def _wide_table(seed: int, columns: int = 60, rows: int = 6) -> pa.Table:
    rng = np.random.default_rng(seed)
    data = {}
    for i in range(columns):
        if i % 5 == 0:  # categories, some only in the current table, some missing
            letters = ["n", "s", "e", "w"] + (["x", "y"] if seed else [])
            data[f"f{i}"] = pa.array([None if rng.random() < 0.15 else str(rng.choice(letters)) for _ in range(rows)])
        elif i % 5 == 1:
            values = rng.normal(loc=seed, size=rows)
            values[rng.random(rows) < 0.3] = np.inf if i % 2 else -np.inf
            data[f"f{i}"] = pa.array(values)
        elif i % 5 == 2:  # f2: no current value at all (a null column in CSV: a type change)
            gone = seed and i == 2
            data[f"f{i}"] = pa.array([None if gone or rng.random() < 0.3 else float(v) for v in rng.normal(size=rows)],
                                     pa.float64())
        elif i % 5 == 3:
            data[f"f{i}"] = pa.array(rng.integers(0, 2 + seed, rows).astype(float))  # ties
        else:
            data[f"f{i}"] = pa.array(rng.normal(loc=seed * (i % 3), size=rows))
    return pa.table(data)


@pytest.mark.parametrize("policy", [
    {"max_unseen_fraction": 0.0},
    {"max_unseen_fraction": 0.2, "thresholds": {"psi": {"max": 0.3}, "ks_statistic": {"max": 0.5},
                                                "ks_pvalue": {"min": 0.2}}},
    {"per_feature": {"f3": {"psi": {"max": 5.0}}, "f4": {"ks_statistic": {"max": 0.9}}, "f5": {"psi": {"min": 0.01}}}},
    {"thresholds": {"psi": {"max": 0.2}}, "per_feature": {"f4": {"ks_statistic": {"max": 0.01}}}},
])
def test_wide_check_equals_the_per_feature_path(tmp_path, monkeypatch, policy):
    """A wide CSV pair (matrix blocks, the wide reader, one schema) against every feature streamed on
    its own from pyarrow's record batches: the same findings and metrics (PSI to 1e-12)."""
    from airflow_aisec.core.io import wide_csv

    paths = []
    for k in range(2):
        paths.append(tmp_path / f"t{k}.csv")
        pacsv.write_csv(_wide_table(k), paths[-1])
    section = DriftPolicy(**policy)
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    fast = check_drift(section, str(paths[0]), str(paths[1]))
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 10**9)
    monkeypatch.setattr(_block, "SMALL_ROWS", 0)
    plain = check_drift(section, str(paths[0]), str(paths[1]))
    assert fast.findings
    assert [(f.rule, f.message, f.count) for f in fast.findings] == [(f.rule, f.message, f.count) for f in plain.findings]
    for a, b in zip(fast.findings, plain.findings):
        assert list(a.location) == list(b.location)
    a_doc, b_doc = fast.metrics, plain.metrics
    for a, b in zip(a_doc.pop("features"), b_doc.pop("features")):
        assert list(a) == list(b)
        pa_, pb = a.pop("psi", None), b.pop("psi", None)
        assert (pa_ is None) == (pb is None) and (pa_ is None or math.isclose(pa_, pb, rel_tol=1e-12, abs_tol=1e-12))
        assert json.dumps(a) == json.dumps(b)
    assert a_doc == b_doc
