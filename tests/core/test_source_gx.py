"""Great Expectations inside the source gate (one module: GX costs ~6 s to import, paid once here)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from airflow_aisec.core.gate import run_check
from airflow_aisec.core.gates.source import check_sources, policy_dir
from airflow_aisec.core.gates.source._expectations import parse_suite
from airflow_aisec.core.policy import load_policy
from airflow_aisec.exceptions import ConfigurationError, InputDataError

SECRET = "zz-planted-gx-value-5150"


def write_policy(directory, section: dict):
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "name": "gx-test", "source": section}, sort_keys=False))
    return load_policy(path)


def gate(tmp_path, data, expect=None, *, suite=None, batch_rows=97, **extra):
    section = {"origins": [f"{tmp_path}/*"], "batch_rows": batch_rows,
               "expectations": {**({"expect": expect} if expect else {}), **({"suite": suite} if suite else {}),
                                **extra}}
    loaded = write_policy(tmp_path, section)
    return run_check("source", loaded, lambda: check_sources(loaded.section("source"), [data],
                                                             base_dir=policy_dir(loaded.source)))


@pytest.fixture
def table_path(tmp_path):
    n = 1000
    amount = np.linspace(0, 100, n)
    amount[[5, 400, 401, 950]] = [-1, 1000, 2000, 3000]  # 4 out of [0, 100], spread over batches
    code = np.array([f"A{i:04d}" for i in range(n)], dtype=object)
    code[[10, 600]] = SECRET  # 2 that break the regex, one secret value
    nullable = pa.array([None if i % 50 == 0 else i for i in range(n)], pa.int64())  # 20 nulls
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": np.arange(n), "amount": amount, "code": code, "nullable": nullable}), path,
                   row_group_size=250)
    return str(path)


def by_type(result):
    return {f.location["expectation"]: f for f in result.findings}


def test_row_expectations_summed_over_batches_equal_the_truth(tmp_path, table_path):
    run = gate(tmp_path, table_path, [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0,
                                                                  "max_value": 100}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "code", "regex": "^A[0-9]{4}$"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "nullable"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "nullable", "min_value": 0}},
    ])
    result = run.result
    assert result.verdict == "fail", result.error
    found = by_type(result)
    assert found["expect_column_values_to_be_between"].count == 4
    assert found["expect_column_values_to_match_regex"].count == 2
    assert found["expect_column_values_to_not_be_null"].count == 20
    assert found["expect_column_values_to_be_between"].location["element_count"] == 1000
    assert result.metrics["datasets"][0]["batches"] > 4  # really streamed
    assert result.metrics["datasets"][0]["expectations"] == {"evaluated": 4, "failed": 3}


def test_mostly_is_applied_to_totals_not_per_batch(tmp_path):
    # All 50 bad rows sit in the first batch of 100: that batch alone is 50% bad, the table 5%.
    values = np.zeros(1000)
    values[:50] = -5
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"v": values}), path)
    ok = gate(tmp_path, str(path), [{"type": "expect_column_values_to_be_between",
                                     "kwargs": {"column": "v", "min_value": 0, "mostly": 0.9}}], batch_rows=100)
    assert ok.result.verdict == "pass", ok.result.findings
    strict = gate(tmp_path, str(path), [{"type": "expect_column_values_to_be_between",
                                         "kwargs": {"column": "v", "min_value": 0, "mostly": 0.96}}], batch_rows=100)
    [finding] = strict.result.findings
    assert finding.count == 50 and finding.location["unexpected_percent"] == 5.0


def test_whole_table_expectations_see_every_batch(tmp_path):
    ids = np.arange(1000)
    ids[999] = 3  # duplicate of a value in the first batch
    path = tmp_path / "u.parquet"
    pq.write_table(pa.table({"id": ids, "v": np.ones(1000)}), path)
    run = gate(tmp_path, str(path), [
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "v", "min_value": 0.5, "max_value": 1.5}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1, "max_value": 999}},
    ], batch_rows=100)
    found = by_type(run.result)
    assert set(found) == {"expect_column_values_to_be_unique", "expect_table_row_count_to_be_between"}
    assert found["expect_column_values_to_be_unique"].count == 2
    assert found["expect_column_values_to_be_unique"].location["mode"] == "table"
    assert found["expect_table_row_count_to_be_between"].message.endswith("on the table: failed")


def test_whole_table_row_limit_is_a_clear_error(tmp_path, table_path):
    run = gate(tmp_path, table_path, [{"type": "expect_column_mean_to_be_between",
                                       "kwargs": {"column": "amount", "min_value": 0}}], max_full_table_rows=500)
    assert isinstance(run.exception, ConfigurationError)
    assert "more than 500 rows" in run.result.error.message
    assert "max_full_table_rows" in run.result.error.message


def test_schema_expectations(tmp_path, table_path):
    run = gate(tmp_path, table_path, [
        {"type": "expect_column_to_exist", "kwargs": {"column": "label"}},
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["id", "amount", "code", "nullable"]}},
        {"type": "expect_table_column_count_to_equal", "kwargs": {"value": 5}},
    ])
    found = by_type(run.result)
    assert set(found) == {"expect_column_to_exist", "expect_table_column_count_to_equal"}
    assert found["expect_column_to_exist"].location["columns"] == ["label"]


def test_suite_json_file_gx1_and_legacy_keys(tmp_path, table_path):
    suite = {
        "name": "approved",
        "expectations": [
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0,
                                                                      "max_value": 100}, "meta": {}, "id": "x"},
            {"expectation_type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        ],
    }
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    run = gate(tmp_path, table_path, suite="suite.json")
    [finding] = run.result.findings
    assert finding.location["expectation_index"] == "suite[0]" and finding.count == 4
    assert any(i.uri.endswith("suite.json") and i.sha256 for i in run.result.inputs)


@pytest.mark.parametrize(
    ("expect", "suite_text", "match"),
    [
        ([{"type": "expect_the_unexpected", "kwargs": {}}], None, "unknown Great Expectations expectation type"),
        ([{"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": "x",
                                                                    "bogus": 1}}], None, "invalid arguments"),
        ([{"type": "expect_table_row_count_to_equal_other_table", "kwargs": {"other_table_name": "t"}}], None,
         "not supported"),
        (None, "{nope", "not valid JSON"),
        (None, '{"expectations": [{"kwargs": {}}]}', "no valid 'type'"),
        (None, '{"name": "x"}', "no 'expectations' list"),
    ],
)
def test_configuration_errors(tmp_path, table_path, expect, suite_text, match):
    suite = None
    if suite_text is not None:
        (tmp_path / "s.json").write_text(suite_text)
        suite = "s.json"
    run = gate(tmp_path, table_path, expect, suite=suite)
    assert run.result.verdict == "error"
    assert isinstance(run.exception, ConfigurationError), run.exception
    assert match in run.result.error.message


def test_missing_suite_file(tmp_path, table_path):
    run = gate(tmp_path, table_path, suite="missing.json")
    assert isinstance(run.exception, ConfigurationError) and "GX suite not found" in run.result.error.message


def test_expectation_on_a_column_not_in_the_data(tmp_path, table_path):
    run = gate(tmp_path, table_path, [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "nope"}}])
    assert isinstance(run.exception, InputDataError)
    assert "column(s) not in the data: 'nope'" in run.result.error.message


def test_csv_input(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,x\n2,\n3,z\n")
    run = gate(tmp_path, str(path), [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "b"}}])
    [finding] = run.result.findings
    assert finding.count == 1


def test_unexpected_values_never_reach_the_result(tmp_path, table_path):
    run = gate(tmp_path, table_path, [
        {"type": "expect_column_values_to_match_regex",
         "kwargs": {"column": "code", "regex": "^A", "result_format": "COMPLETE"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "code", "value_set": ["A0001"]}},
        {"type": "expect_column_distinct_values_to_be_in_set", "kwargs": {"column": "code", "value_set": ["A0001"]}},
        {"type": "expect_column_most_common_value_to_be_in_set", "kwargs": {"column": "code", "value_set": ["x"]}},
    ])
    assert run.result.verdict == "fail"
    assert len(run.result.findings) == 4
    assert SECRET not in json.dumps(run.result.to_dict())
    assert "A0002" not in json.dumps(run.result.to_dict())


def test_parse_suite_accepts_bare_list():
    specs = parse_suite(b'[{"type": "expect_column_to_exist", "kwargs": {"column": "a"}}]', "s")
    assert specs[0].type == "expect_column_to_exist"


def test_expectations_run_where_main_has_no_file(tmp_path, table_path):
    """``python -c`` (like an embedded interpreter or an xdist worker) has a ``__main__`` without
    ``__spec__`` or ``__file__``: pyspark, imported by GX, took it for a doctest run and ended the
    process with status 0 and no result. The check must run and fail on its planted violation."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"version": 1, "name": "gx-main", "source": {
        "origins": [f"{tmp_path}/*"],
        "expectations": {"expect": [{"type": "expect_column_values_to_be_between",
                                     "kwargs": {"column": "amount", "min_value": 0, "max_value": 100}}]}}}))
    code = ("import sys\n"
            "from airflow_aisec.core.gates.source import check_sources\n"
            "from airflow_aisec.core.policy import load_policy\n"
            f"out = check_sources(load_policy({str(policy)!r}).section('source'), [{table_path!r}])\n"
            "print('RULES', sorted({f.rule for f in out.findings}))\n"
            "print('UNEXPECTED', sum(f.count or 0 for f in out.findings))\n")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300,
                          env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "RULES ['source.expectation']" in done.stdout, (done.stdout, done.stderr[-2000:])
    assert "UNEXPECTED 4" in done.stdout
