"""Source gate summaries: row groups merged == check_sources on the file; undecomposable settings refused."""

from __future__ import annotations

import datetime as dt
import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from airflow_aisec.core.gates.source import check_sources
from airflow_aisec.core.gates.source.summary import check_summary, summarize_partition
from airflow_aisec.core.partitions import list_partitions, load_summary, merge_all
from airflow_aisec.core.policy import load_policy
from airflow_aisec.exceptions import ConfigurationError

SECRET_LABEL = "zz-secret-label-7781"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def table(n, *, seed, p_secret=0.3, outliers=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[:outliers] = 1000.0
    return pa.table({"id": np.arange(n), "x": x,
                     "label": rng.choice(["ok", SECRET_LABEL], size=n, p=[1 - p_secret, p_secret]),
                     "ts": pa.array([dt.datetime(2025, 12, 30, tzinfo=dt.UTC)] * n)})


def section(tmp_path, **extra):
    doc = {"version": 1, "name": "p", "source": {"origins": [f"{tmp_path}/*"], **extra}}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(doc))
    return load_policy(tmp_path / "policy.yaml").section("source")


def merged_and_single(sec, path, **kw):
    parts = list_partitions(str(path), by="row_group")
    summaries = [summarize_partition(sec, p, partition_id=p) for p in parts]
    random.Random(1).shuffle(summaries)
    merged = merge_all([load_summary("source", json.loads(json.dumps(s.signed_json()))) for s in summaries])
    return summaries, check_summary(sec, merged, now=NOW, **kw), check_sources(sec, str(path), now=NOW, **kw)


def same(outcome):
    d = outcome.model_dump(mode="json")
    d["metrics"].pop("partitions", None)
    for ds in d["metrics"]["datasets"]:
        ds.pop("batches")  # batches of the partitions, not of one pass
    return d


@pytest.mark.parametrize(("p_secret", "outliers", "rows_max"), [(0.3, 0, 10_000), (0.7, 40, 1000)])
def test_row_groups_merged_equal_check_sources(tmp_path, p_secret, outliers, rows_max):
    ref = tmp_path / "reference.parquet"
    pq.write_table(table(2000, seed=1), ref)
    data = tmp_path / "data.parquet"
    pq.write_table(table(2400, seed=2, p_secret=p_secret, outliers=outliers), data, row_group_size=300)
    sec = section(tmp_path, schema={"columns": {"id": "integer", "x": "float", "label": "string"}},
                  freshness={"max_age": "2d", "column": "ts"}, rows={"min": 10, "max": rows_max},
                  poisoning={"reference": str(ref), "label_shift": {"column": "label", "max_psi": 0.1},
                             "out_of_range": {"max_rate": 0.01, "columns": ["x"], "ranges": {"x": [-10, 10]}},
                             "volume": {"max_change": 0.5}})
    summaries, merged, single = merged_and_single(sec, data)
    assert len(summaries) == 8
    assert same(merged) == same(single)
    rules = {f.rule for f in single.findings}
    assert ("source.label_shift" in rules) == (p_secret == 0.7)
    assert ("source.out_of_range" in rules) == bool(outliers)
    text = json.dumps([s.signed_json() for s in summaries])
    assert SECRET_LABEL not in text and "1000.0" not in text


@pytest.mark.parametrize("extra", [
    {"expectations": {"expect": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}]}},
    {"pinning": {"required": True}},
    {"poisoning": {"duplicates": {"max_rate": 0.1}}},
    {"poisoning": {"reference": "r.parquet", "out_of_range": {"max_rate": 0.1}}},
])
def test_undecomposable_settings_are_refused(tmp_path, extra):
    data = tmp_path / "d.parquet"
    pq.write_table(table(10, seed=0), data)
    with pytest.raises(ConfigurationError, match="partition by partition"):
        summarize_partition(section(tmp_path, **extra), str(data), partition_id="d")
