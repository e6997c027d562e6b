"""``dags/partitioned_pii.py`` in real ``dag.test()`` runs: mapped scans per partition, one merged verdict,
equal to ``PiiGateOperator`` on the same data (findings and counts), one audit record with every digest."""

from __future__ import annotations

import json

import pyarrow.csv as pacsv
import pytest

from tests.helpers.env import REPO, patched_environ
from tests.helpers.partitions import assert_value_free, planted_table, write_files, write_whole

pytestmark = pytest.mark.integration

DAG_FILE = REPO / "dags" / "partitioned_pii.py"
SINGLE_DAG = """
from airflow.sdk import DAG
import pendulum
from airflow_aisec.operators.pii import PiiGateOperator
with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False):
    PiiGateOperator(task_id="pii_gate", data={data!r}, policy={policy!r}, classification={classification!r})
"""
POLICY = str(REPO / "policies" / "strict.yaml")


def _env(data, by="row_group", classification=""):
    return {
        "AISEC_PARTITIONED_DATA": str(data), "AISEC_PARTITION_BY": by, "AISEC_CLASSIFICATION": classification,
        "AISEC_POLICY_DIR": str(REPO / "policies"),
        "AIRFLOW__AISEC__BASELINE_POLICY": str(REPO / "policies" / "baseline.yaml"),
        "AIRFLOW__AISEC__POLICY_ROOTS": str(REPO / "policies"),
    }


def _partitioned(run_dag, data, **kw):
    with patched_environ(_env(data, **kw)):
        return run_dag(DAG_FILE.read_text(), "partitioned_pii", filename="partitioned_pii.py")


def _single(run_dag, data, dag_id, classification=None, **kw):
    with patched_environ(_env(data, **kw)):
        src = SINGLE_DAG.format(dag_id=dag_id, data=str(data), policy=POLICY, classification=classification)
        return run_dag(src, dag_id)


def _same(result: dict, *, drop_uri=False) -> dict:
    out = {"verdict": result["verdict"], "findings": json.loads(json.dumps(result["findings"])),
           "metrics": {k: v for k, v in result["metrics"].items()
                       if k not in ("duration_s", "cells_per_s", "partitions")}}
    if drop_uri:
        for f in out["findings"]:
            f["location"].pop("uri", None)
    return out


def test_row_group_partitions_fail_exactly_like_the_single_task_gate(run_dag, tmp_path):
    data = write_whole(planted_table(), tmp_path / "customers.parquet", row_group_size=125)
    out = _partitioned(run_dag, data)
    assert out.state == "failed"
    assert out.task_states["pii_gate"] == "failed" and out.task_states["scan_partition"] == "success"
    merged = out.xcom("pii_gate")
    single_run = _single(run_dag, data, "single_pii_rg")
    single = single_run.xcom("pii_gate")
    assert single_run.state == "failed" and merged["verdict"] == "fail"
    assert _same(merged) == _same(single)
    assert {f["location"]["entity"] for f in merged["findings"]} >= {"US_SSN", "EMAIL_ADDRESS", "CREDIT_CARD"}
    parts = merged["metrics"]["partitions"]
    assert parts["count"] == 8 and len(parts["digests"]) == 8
    assert all(k.startswith(str(data) + "#row_group=") for k in parts["digests"])
    # One trail record for the merged gate, with every partition's digest; the scans wrote none.
    evidence = out.xcoms[("pii_gate", "aisec_evidence")]
    from airflow_aisec.core.evidence import open_evidence_store

    records = [r for r in open_evidence_store(evidence["location"]).read_records()
               if r["payload"].get("airflow", {}).get("run_id") == out.run_id]
    assert [r["payload"]["airflow"]["task_id"] for r in records] == ["pii_gate"]
    assert records[0]["payload"]["metrics"]["partitions"]["digests"] == parts["digests"]
    assert_value_free({f"{t}/{k}": v for (t, k), v in out.xcoms.items()})


def test_clean_data_passes_and_a_declared_level_is_applied_once(run_dag, tmp_path):
    data = write_whole(planted_table(clean=True), tmp_path / "clean.parquet", row_group_size=250)
    out = _partitioned(run_dag, data)
    assert out.state == "success", out.task_states
    assert out.xcom("pii_gate")["verdict"] == "pass"
    planted = write_whole(planted_table(), tmp_path / "restricted.parquet", row_group_size=250)
    out = _partitioned(run_dag, planted, classification="restricted")
    assert out.state == "success" and out.xcom("pii_gate")["verdict"] == "pass"
    assert out.xcom("pii_gate")["metrics"]["classification"] == "restricted"


def test_csv_files_of_a_directory_equal_the_concatenated_table(run_dag, tmp_path):
    table = planted_table()
    lake = tmp_path / "lake"
    write_files(table, lake, [250, 250, 250, 250], fmt="csv")
    whole = tmp_path / "whole.csv"
    pacsv.write_csv(table, whole)
    out = _partitioned(run_dag, lake, by="file", classification="internal")
    single = _single(run_dag, whole, "single_pii_csv", classification="internal")
    assert out.state == single.state == "failed"
    merged = out.xcom("pii_gate")
    assert _same(merged, drop_uri=True) == _same(single.xcom("pii_gate"), drop_uri=True)
    assert [i["uri"] for i in merged["inputs"]] == [str(p) for p in sorted(lake.iterdir())]


def test_a_broken_partition_is_an_error_result_never_a_pass(run_dag, tmp_path):
    lake = tmp_path / "broken"
    write_files(planted_table(clean=True), lake, [500, 500])
    (lake / "part-00001.parquet").write_bytes(b"PAR1 truncated")
    out = _partitioned(run_dag, lake, by="file")
    assert out.state == "failed"
    result = out.xcom("pii_gate")
    assert result is not None and result["verdict"] == "error", out.task_states


TAMPER_DAG = """
from airflow.sdk import DAG, task
import pendulum
from airflow_aisec.operators.partitions import (GateMergeOperator, GatePartitionListOperator,
                                                GatePartitionScanOperator)
with DAG("partitioned_tampered", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False):
    parts = GatePartitionListOperator(task_id="list_partitions", data={data!r}, by="row_group")
    scans = GatePartitionScanOperator.partial(task_id="scan_partition", gate="pii", policy={policy!r}) \\
        .expand(data=parts.output)

    @task
    def hide_the_ssn(envelopes):
        from airflow_aisec.core.partitions import sha256_json

        out = [dict(e) for e in envelopes]
        for envelope in out:
            for summary in envelope["summaries"]:
                notes = summary["columns"].get("notes")  # listed only in partitions where it has a hit
                if notes:
                    notes["entities"].pop("US_SSN", None)
                if {recompute!r}:  # a forger recomputes the sha256; only the MAC is beyond reach
                    summary["digest"] = sha256_json({{k: v for k, v in summary.items() if k not in ("digest", "mac")}})
        return out

    GateMergeOperator(task_id="pii_gate", gate="pii", policy={policy!r}, summaries=hide_the_ssn(scans.output),
                      partitions=parts.output)
"""


@pytest.mark.parametrize("recompute", [False, True], ids=["digest-kept", "digest-recomputed"])
def test_a_summary_changed_between_scan_and_merge_is_a_critical_violation(run_dag, tmp_path, recompute):
    data = write_whole(planted_table(), tmp_path / "customers.parquet", row_group_size=250)
    with patched_environ(_env(data)):
        out = run_dag(TAMPER_DAG.format(data=str(data), policy=POLICY, recompute=recompute), "partitioned_tampered")
    assert out.state == "failed" and out.task_states["pii_gate"] == "failed"
    result = out.xcom("pii_gate")
    assert result["verdict"] == "fail"
    (finding,) = result["findings"]
    assert finding["rule"] == "partitions.summary_tampered" and finding["severity"] == "critical"
    assert not finding["waived"]


def test_constructors_do_no_io():
    from airflow.sdk import DAG

    from airflow_aisec.operators.partitions import (
        GateMergeOperator,
        GatePartitionListOperator,
        GatePartitionScanOperator,
    )
    from tests.helpers.no_io import forbid_io

    with DAG("no_io_partitions", schedule=None), forbid_io("partition operators"):
        parts = GatePartitionListOperator(task_id="list", data="s3://nowhere/lake/", by="row_group")
        scans = GatePartitionScanOperator.partial(task_id="scan", gate="pii", policy=POLICY,
                                                  inputs={"classification": "internal"}).expand(data=parts.output)
        merge = GateMergeOperator(task_id="merge", gate="pii", policy=POLICY, summaries=scans.output,
                                  partitions=parts.output, data="s3://nowhere/lake/")
    assert merge.gate == "pii" and merge.trigger_rule == "all_done"


SOURCE_DAG = """
from airflow.sdk import DAG
import pendulum
from airflow_aisec.operators.partitions import (GateMergeOperator, GatePartitionListOperator,
                                                GatePartitionScanOperator)
with DAG("partitioned_source", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False):
    parts = GatePartitionListOperator(task_id="list_partitions", data={data!r}, by="row_group")
    scans = GatePartitionScanOperator.partial(task_id="scan_partition", gate="source", policy={policy!r}) \\
        .expand(data=parts.output)
    GateMergeOperator(task_id="source_gate", gate="source", policy={policy!r}, summaries=scans.output,
                      partitions=parts.output)
"""


def test_source_gate_over_row_groups_equals_check_sources(run_dag, tmp_path):
    import yaml

    from airflow_aisec.core.gates.source import check_sources, policy_dir
    from airflow_aisec.core.policy import load_policy

    data = write_whole(planted_table(), tmp_path / "data.parquet", row_group_size=200)
    policy = tmp_path / "source.yaml"
    policy.write_text(yaml.safe_dump({"version": 1, "name": "src", "source": {
        "origins": [f"{tmp_path}/*"], "rows": {"max": 900},
        "schema": {"columns": {"id": "integer", "email": "string"}, "allow_extra_columns": False}}}))
    env = {**_env(data), "AIRFLOW__AISEC__POLICY_ROOTS": str(tmp_path), "AIRFLOW__AISEC__BASELINE_POLICY": ""}
    with patched_environ(env):
        out = run_dag(SOURCE_DAG.format(data=str(data), policy=str(policy)), "partitioned_source")
    assert out.state == "failed"
    merged = out.xcom("source_gate")
    loaded = load_policy(policy)
    single = check_sources(loaded.section("source"), str(data), base_dir=policy_dir(loaded.source))
    assert {f["rule"] for f in merged["findings"]} == {"source.row_count", "source.schema_extra_column"}
    assert [(f["rule"], f["message"], f["count"]) for f in merged["findings"]] == \
        [(f.rule, f.message, f.count) for f in single.findings]
    assert merged["metrics"]["rows"] == single.metrics["rows"] == 1000
    assert merged["metrics"]["partitions"]["count"] == 5


BIAS_DAG = SOURCE_DAG.replace("partitioned_source", "partitioned_bias").replace('gate="source"', 'gate="bias"') \
    .replace('"source_gate"', '"bias_gate"')


def test_bias_gate_over_row_groups_equals_check_bias(run_dag, tmp_path):
    """Bias through the mapped operators (list, scan per row group, merge): the merged result in XCom is
    the single-node check on the whole file: verdict, findings and metrics."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    from airflow_aisec.core.gates.bias import check_bias
    from airflow_aisec.core.policy import load_policy

    rng = np.random.default_rng(5)
    n = 3000
    group = rng.choice(["a", "b", "c"], n)
    label = (rng.random(n) < 0.5).astype(int)
    prediction = np.where(group == "c", rng.random(n) < 0.8, rng.random(n) < 0.3).astype(int)  # c is favoured
    data = tmp_path / "scores.parquet"
    pq.write_table(pa.table({"y": label, "p": prediction, "g": group}), data, row_group_size=500)
    policy = tmp_path / "bias.yaml"
    policy.write_text(yaml.safe_dump({"version": 1, "name": "bias", "bias": {
        "label": "y", "prediction": "p", "sensitive": ["g"], "min_group_size": 30,
        "thresholds": {"demographic_parity_difference": {"max": 0.1}}}}))
    env = {**_env(data), "AIRFLOW__AISEC__POLICY_ROOTS": str(tmp_path), "AIRFLOW__AISEC__BASELINE_POLICY": ""}
    with patched_environ(env):
        out = run_dag(BIAS_DAG.format(data=str(data), policy=str(policy)), "partitioned_bias")
    assert out.state == "failed"
    merged = out.xcom("bias_gate")
    single = check_bias(load_policy(policy).section("bias"), str(data))
    assert merged["verdict"] == "fail"
    assert [f["rule"] for f in merged["findings"]] == [f.rule for f in single.findings]
    assert {f["rule"] for f in merged["findings"]} == {"bias.demographic_parity_difference"}
    assert [(f["message"], f["count"]) for f in merged["findings"]] == [(f.message, f.count) for f in single.findings]
    metrics = {k: v for k, v in merged["metrics"].items() if k not in ("duration_s", "partitions")}
    assert json.loads(json.dumps(metrics)) == json.loads(json.dumps(
        {k: v for k, v in single.metrics.items() if k != "duration_s"}))
    assert merged["metrics"]["partitions"]["count"] == 6
