"""SourceValidationOperator in real Airflow DAG runs (dag.test()), with S3 through S3Hook on a real moto server."""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.airflow import assert_retryable_error, task_context
from tests.helpers.net import free_port
from tests.helpers.no_io import forbid_io

pytestmark = pytest.mark.integration

PLANTED_LABEL = "zz-poison-label-" + uuid.uuid4().hex[:8]
PLANTED_EMAIL = "victim-" + uuid.uuid4().hex[:8] + "@example.org"

DAG_TEMPLATE = '''
import pendulum
from airflow.sdk import DAG, task
from airflow_aisec.operators.source import SourceValidationOperator

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False) as dag:
    @task
    def extract():
        return {data!r}

    @task
    def train(path):
        return "trained"

    path = extract()
    gate = SourceValidationOperator(
        task_id="validate_source",
        data="{{{{ ti.xcom_pull(task_ids='extract') }}}}",
        reference={reference!r},
        policy={policy!r},
        evidence_location={evidence!r},
    )
    path >> gate >> train(path)
'''


def table(n=2000, *, seed=0, poison=0) -> pa.Table:
    rng = np.random.default_rng(seed)
    label = rng.choice(["cat", "dog"], size=n).astype(object)
    email = np.array([f"user{i}@corp.test" for i in range(n)], dtype=object)
    x = rng.normal(size=n)
    if poison:
        label[:poison] = PLANTED_LABEL
        email[:poison] = PLANTED_EMAIL
        x[:poison] = 999.0
    return pa.table({"id": np.arange(n), "x": x, "email": email, "label": label})


def parquet_bytes(t: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(t, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def env(tmp_path_factory, s3_server):
    root = tmp_path_factory.mktemp("source_ops")
    approved = root / "approved"
    approved.mkdir()
    client = s3_server.client()
    bucket = "ml-approved-" + uuid.uuid4().hex[:8]
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=bucket, Key="datasets/train.parquet", Body=parquet_bytes(table(seed=1)))
    pq.write_table(table(seed=0), approved / "reference.parquet")
    pq.write_table(table(seed=2, poison=300), approved / "poisoned.parquet")
    policy = root / "policy.yaml"
    policy.write_text(f"""
version: 1
name: source-ops
source:
  origins: ["s3://ml-approved-*/datasets/*", "{approved}/*"]
  batch_rows: 500
  schema:
    columns: {{id: integer, x: floating, email: string, label: string}}
  rows: {{min: 100}}
  poisoning:
    label_shift: {{column: label, max_psi: 0.1}}
    duplicates: {{max_rate: 0.01}}
    out_of_range: {{max_rate: 0.01, columns: [x], margin: 0.1}}
    volume: {{max_change: 0.5}}
""")
    return {"root": root, "approved": approved, "bucket": bucket, "policy": str(policy),
            "evidence": str(root / "evidence"), "reference": str(approved / "reference.parquet")}


def make_dag(env, dag_id: str, data: str) -> str:
    return DAG_TEMPLATE.format(dag_id=dag_id, data=data, reference=env["reference"], policy=env["policy"],
                               evidence=env["evidence"])


def task_logs(dag_id: str) -> str:
    """Task log files written under AIRFLOW_HOME for a DAG."""
    base = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    return "".join(p.read_text(errors="replace") for p in base.rglob("*") if p.is_file() and dag_id in str(p))


def evidence_payloads(location: str) -> list[dict]:
    from airflow_aisec.core.evidence import open_evidence_store

    store = open_evidence_store(location)
    store.verify()
    return [r["payload"] for r in store.read_records()]


def test_clean_s3_dataset_passes_and_training_runs(run_dag, env):
    uri = f"s3://{env['bucket']}/datasets/train.parquet"
    out = run_dag(make_dag(env, "source_gate_pass", uri), "source_gate_pass")
    assert out.state == "success", out.task_states
    assert out.task_states == {"extract": "success", "validate_source": "success", "train": "success"}
    result = out.xcom("validate_source")
    assert result["verdict"] == "pass" and result["gate"] == "source"
    assert result["inputs"][0]["uri"] == env["reference"]
    assert result["inputs"][1]["uri"] == uri and len(result["inputs"][1]["sha256"]) == 64
    assert result["metrics"]["datasets"][0]["s3_version_id"]
    assert result["airflow"]["task_id"] == "validate_source"


def test_poisoned_dataset_fails_the_run_without_leaking_values(run_dag, env, capfd):
    data = str(env["approved"] / "poisoned.parquet")
    out = run_dag(make_dag(env, "source_gate_fail", data), "source_gate_fail")
    logs = "".join(capfd.readouterr()) + task_logs("source_gate_fail")
    assert out.state == "failed"
    assert out.task_states["validate_source"] == "failed"
    assert out.task_states["train"] == "upstream_failed"
    result = out.xcom("validate_source")
    assert result["verdict"] == "fail"
    assert {f["rule"] for f in result["findings"]} == {"source.label_shift", "source.out_of_range"}
    stored = [p for p in evidence_payloads(env["evidence"]) if p.get("airflow", {}).get("dag_id") == "source_gate_fail"]
    assert stored and stored[-1]["verdict"] == "fail"
    assert "source.label_shift" in logs  # the log names the violation...
    everything = json.dumps(list(out.xcoms.values()), default=str) + json.dumps(stored) + logs
    for value in (PLANTED_LABEL, PLANTED_EMAIL, "999.0"):
        assert value not in everything  # ...but never a cell value


def test_origin_outside_allow_list_fails_the_task(run_dag, env, tmp_path):
    rogue = tmp_path / "rogue.parquet"
    pq.write_table(table(), rogue)
    out = run_dag(make_dag(env, "source_gate_origin", str(rogue)), "source_gate_origin")
    assert out.task_states["validate_source"] == "failed"
    assert out.task_states["train"] == "upstream_failed"
    result = out.xcom("validate_source")
    assert result["verdict"] == "error"
    assert result["error"]["type"] == "InputDataError"
    assert "origin not on the allow-list" in result["error"]["message"]


# ------------------------------------------------------------------------------------------------
# execute() directly: retryable vs not (a retryable task would keep dag.test() waiting)
# ------------------------------------------------------------------------------------------------
def test_unreachable_s3_is_a_retryable_failure(env, tmp_path, monkeypatch):
    from airflow_aisec.operators.source import SourceValidationOperator

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEAD", json.dumps({
        "conn_type": "aws", "login": "x", "password": "y",
        "extra": {"endpoint_url": f"http://127.0.0.1:{free_port()}", "region_name": "us-east-1",
                  "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}},
    }))
    policy = tmp_path / "p.yaml"
    policy.write_text('version: 1\nname: p\nsource: {origins: ["s3://*/*"]}\n')
    op = SourceValidationOperator(task_id="t", data=f"s3://{env['bucket']}/datasets/train.parquet",
                                  policy=str(policy), aws_conn_id="aws_dead", evidence_location=str(tmp_path / "ev"))
    ctx = task_context()
    assert_retryable_error(lambda: op.execute(ctx), ctx)


def test_missing_object_is_not_retryable(env, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_aisec.operators.source import SourceValidationOperator

    policy = tmp_path / "p.yaml"
    policy.write_text('version: 1\nname: p\nsource: {origins: ["s3://*/*"]}\n')
    uri = f"s3://{env['bucket']}/datasets/missing.parquet"
    op = SourceValidationOperator(task_id="t", data=[uri], policy=str(policy), evidence_location=str(tmp_path / "ev"))
    with pytest.raises(AirflowFailException, match="S3 object or bucket not found"):
        op.execute(task_context())


def test_constructor_does_no_io_and_templates():
    from airflow_aisec.operators.source import SourceValidationOperator

    with forbid_io("SourceValidationOperator.__init__"):
        op = SourceValidationOperator(task_id="t", data="s3://nowhere/x.parquet", policy="/no/such.yaml",
                                      reference="s3://nowhere/ref.parquet", aws_conn_id="nope")
    assert op.gate == "source"
    assert set(op.template_fields) >= {"policy", "evidence_location", "data", "reference"}
    assert not Path("/no/such.yaml").exists() and os.environ.get("AIRFLOW_CONN_NOPE") is None


@pytest.mark.parametrize("kind", ["truncated", "wrong_format", "empty", "missing_column", "missing_file"])
def test_bad_inputs_fail_the_task_without_retry(tmp_path, kind):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_aisec.operators.source import SourceValidationOperator

    path = tmp_path / "d.parquet"
    if kind == "truncated":
        pq.write_table(table(200), path)
        path.write_bytes(path.read_bytes()[:-40])
    elif kind == "wrong_format":
        path.write_text("id,label\n1,a\n")
    elif kind == "empty":
        pq.write_table(table(0), path)
    elif kind == "missing_column":
        pq.write_table(pa.table({"id": [1, 2]}), path)
    policy = tmp_path / "p.yaml"
    policy.write_text(f"version: 1\nname: p\nsource:\n  origins: ['{tmp_path}/*']\n"
                      "  schema: {columns: {id: integer, label: string}, allow_extra_columns: true}\n")
    op = SourceValidationOperator(task_id="t", data=str(path), policy=str(policy), evidence_location=str(tmp_path / "ev"))
    ctx = task_context()
    with pytest.raises(AirflowFailException) as info:
        op.execute(ctx)
    assert "\n" not in str(info.value)
    pushed = ctx["ti"].xcom_push.call_args_list[0].kwargs["value"]
    assert pushed["verdict"] == "error" and pushed["error"]["type"] == "InputDataError"
    assert pushed["error"]["retryable"] is False
