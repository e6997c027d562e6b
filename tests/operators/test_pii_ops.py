"""PII gate and redaction operators in real Airflow DAG runs (dag.test), with real OpenBao and moto S3.

Leak test: the planted values never appear in task logs, XCom, the result or the evidence store.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.vault import vault_conn_json

pytestmark = pytest.mark.integration

SSN = "372-81-4409"
EMAIL = "zq.dag-planted@example.com"
CARD = "4539 1488 0343 6467"
HMAC_KEY = "dag-hmac-key-7f3a9c21b8e4d5f6"
PLANTED = [SSN, EMAIL, CARD, "372814409", "4539148803436467", HMAC_KEY, "zq.dag-planted"]

POLICY = """
version: 1
name: pii-dag-test
enforcement: enforce
pii:
  default_classification: public
  levels:
    public: {forbidden: ["*"]}
    internal: {allowed: [EMAIL_ADDRESS], forbidden: ["*"]}
  redaction:
    method: hash
    key: {vault_path: aisec/dag-hmac}
"""

RESIDUAL_POLICY = """
version: 1
name: pii-residual
pii:
  redaction: {method: mask, mask_token: "redacted@example.com"}
"""

DAG = '''
import pendulum
from airflow.sdk import DAG, task
from airflow_aisec.operators.pii import PiiGateOperator, PiiRedactOperator

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False) as dag:
    @task
    def train():
        return "trained"

    gate = {operator}(task_id="pii", policy={policy!r}, evidence_location={evidence!r}, {args})
    gate >> train()
'''


def write_tables(tmp_path: Path) -> tuple[Path, Path]:
    dirty = tmp_path / "dirty.parquet"
    pq.write_table(pa.table({
        "id": list(range(50)),
        "email": [EMAIL if i % 5 == 0 else "" for i in range(50)],
        "notes": [f"ssn {SSN}, card {CARD}" if i == 13 else "routine visit" for i in range(50)],
    }), dirty)
    clean = tmp_path / "clean.parquet"
    pq.write_table(pa.table({"id": list(range(50)), "txt": ["weather is fine"] * 50}), clean)
    return dirty, clean


@pytest.fixture
def setup(tmp_path):
    dirty, clean = write_tables(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    evidence = tmp_path / "evidence"
    return {"dirty": dirty, "clean": clean, "policy": str(policy), "evidence": evidence, "tmp": tmp_path}


def dag_source(setup, dag_id: str, operator: str, args: str, policy: str | None = None) -> str:
    return DAG.format(dag_id=dag_id, operator=operator, policy=policy or setup["policy"],
                      evidence=str(setup["evidence"]), args=args)


def evidence_text(evidence: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in evidence.rglob("*") if p.is_file())


def assert_no_leak(*texts: str) -> None:
    for text in texts:
        for value in PLANTED:
            assert value not in text, value


def test_pii_gate_passes_a_clean_table(run_dag, setup):
    out = run_dag(dag_source(setup, "pii_gate_pass", "PiiGateOperator", f"data={str(setup['clean'])!r}"),
                  "pii_gate_pass")
    assert out.state == "success"
    assert out.task_states == {"pii": "success", "train": "success"}
    result = out.xcom("pii")
    assert result["verdict"] == "pass" and result["gate"] == "pii"
    assert result["metrics"]["classification"] == "public" and result["metrics"]["pii_columns"] == {}


def test_pii_gate_fails_on_pii_and_leaks_nothing(run_dag, setup, capfd, caplog):
    out = run_dag(dag_source(setup, "pii_gate_fail", "PiiGateOperator", f"data={str(setup['dirty'])!r}"),
                  "pii_gate_fail")
    assert out.state == "failed"
    assert out.task_states == {"pii": "failed", "train": "upstream_failed"}
    result = out.xcom("pii")
    assert result["verdict"] == "fail"
    found = {(f["location"]["column"], f["location"]["entity"]) for f in result["findings"]}
    assert found == {("email", "EMAIL_ADDRESS"), ("notes", "US_SSN"), ("notes", "CREDIT_CARD")}
    ssn = next(f for f in result["findings"] if f["location"]["entity"] == "US_SSN")
    assert ssn["location"]["rows"] == [13] and ssn["count"] == 1 and ssn["enforcement"] == "enforce"
    captured = capfd.readouterr()
    logs = captured.out + captured.err + caplog.text
    assert "pii.entity_not_allowed" in logs  # the findings were logged...
    assert_no_leak(logs, json.dumps(list(out.xcoms.values()), default=str), evidence_text(setup["evidence"]))  # ...no values


def test_pii_gate_declared_classification_is_templated(run_dag, setup):
    # e-mail is allowed in internal datasets; the SSN and card in the notes still fail
    out = run_dag(dag_source(setup, "pii_gate_internal", "PiiGateOperator",
                             f"data={str(setup['dirty'])!r}, classification='{{{{ params.level }}}}', "
                             "params={'level': 'internal'}"),
                  "pii_gate_internal")
    assert out.state == "failed"
    assert {f["location"]["entity"] for f in out.xcom("pii")["findings"]} == {"US_SSN", "CREDIT_CARD"}
    assert out.xcom("pii")["metrics"]["classification"] == "internal"


def test_pii_gate_bad_input_fails_the_task_never_passes(run_dag, setup):
    truncated = setup["tmp"] / "truncated.parquet"
    data = setup["dirty"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    out = run_dag(dag_source(setup, "pii_gate_bad", "PiiGateOperator", f"data={str(truncated)!r}"),
                  "pii_gate_bad")
    assert out.task_states["pii"] == "failed" and out.task_states["train"] == "upstream_failed"
    result = out.xcom("pii")
    assert result["verdict"] == "error" and result["error"]["type"] == "InputDataError"
    assert "truncated" in result["error"]["message"]


def test_pii_gate_reads_s3_through_s3hook(run_dag, setup, s3_server):
    client = s3_server.client()
    client.create_bucket(Bucket="dag-pii")
    client.upload_file(str(setup["dirty"]), "dag-pii", "in/dirty.parquet")
    client.upload_file(str(setup["clean"]), "dag-pii", "in/clean.parquet")
    ok = run_dag(dag_source(setup, "pii_gate_s3_pass", "PiiGateOperator", "data='s3://dag-pii/in/clean.parquet'"),
                 "pii_gate_s3_pass")
    assert ok.state == "success" and ok.xcom("pii")["inputs"][0]["uri"] == "s3://dag-pii/in/clean.parquet"
    bad = run_dag(dag_source(setup, "pii_gate_s3_fail", "PiiGateOperator", "data='s3://dag-pii/in/dirty.parquet'"),
                  "pii_gate_s3_fail")
    assert bad.state == "failed" and bad.xcom("pii")["verdict"] == "fail"
    missing = run_dag(dag_source(setup, "pii_gate_s3_missing", "PiiGateOperator",
                                 "data='s3://dag-pii/in/nope.parquet'"), "pii_gate_s3_missing")
    assert missing.task_states["pii"] == "failed" and missing.xcom("pii")["verdict"] == "error"


@pytest.fixture
def vault_conn(bao_server, monkeypatch):
    bao_server.client().secrets.kv.v2.create_or_update_secret(path="aisec/dag-hmac", secret={"key": HMAC_KEY})
    monkeypatch.setenv("AIRFLOW_CONN_VAULT_DEFAULT", vault_conn_json(bao_server.addr, password=bao_server.token))
    return bao_server


def test_redaction_with_vault_key_passes_and_output_is_clean(run_dag, setup, vault_conn, capfd, caplog):
    output = setup["tmp"] / "out" / "redacted.parquet"
    output.parent.mkdir()
    before = setup["dirty"].read_bytes()
    out = run_dag(dag_source(setup, "pii_redact_pass", "PiiRedactOperator",
                             f"data={str(setup['dirty'])!r}, output_uri={str(output)!r}"), "pii_redact_pass")
    assert out.state == "success", out.task_states
    assert out.task_states == {"pii": "success", "train": "success"}
    result = out.xcom("pii")
    assert result["verdict"] == "pass" and result["metrics"]["redaction"]["published"] is True
    assert result["metrics"]["redaction"]["method"] == "hash"
    assert [i["uri"] for i in result["inputs"]] == [str(setup["dirty"]), str(output)]
    assert setup["dirty"].read_bytes() == before
    table = pq.read_table(output)
    assert table.column("email")[0].as_py().startswith("EMAIL_ADDRESS_")
    assert "US_SSN_" in table.column("notes")[13].as_py()
    captured = capfd.readouterr()
    assert_no_leak(captured.out + captured.err + caplog.text, json.dumps(list(out.xcoms.values()), default=str),
                   evidence_text(setup["evidence"]), json.dumps(table.to_pylist()))


def test_redaction_residual_fails_and_publishes_nothing(run_dag, setup):
    policy = setup["tmp"] / "residual.yaml"
    policy.write_text(RESIDUAL_POLICY)
    output = setup["tmp"] / "residual.parquet"
    out = run_dag(dag_source(setup, "pii_redact_fail", "PiiRedactOperator",
                             f"data={str(setup['dirty'])!r}, output_uri={str(output)!r}", policy=str(policy)),
                  "pii_redact_fail")
    assert out.state == "failed"
    assert out.task_states == {"pii": "failed", "train": "upstream_failed"}
    result = out.xcom("pii")
    assert result["verdict"] == "fail"
    assert {f["rule"] for f in result["findings"]} == {"pii.redaction_residual"}
    assert result["metrics"]["redaction"]["published"] is False
    assert not output.exists()


def test_redaction_s3_to_s3(run_dag, setup, s3_server, vault_conn):
    client = s3_server.client()
    client.create_bucket(Bucket="dag-redact")
    client.upload_file(str(setup["dirty"]), "dag-redact", "raw/dirty.parquet")
    out = run_dag(dag_source(setup, "pii_redact_s3", "PiiRedactOperator",
                             "data='s3://dag-redact/raw/dirty.parquet', output_uri='s3://dag-redact/clean/dirty.parquet'"),
                  "pii_redact_s3")
    assert out.state == "success", out.task_states
    body = client.get_object(Bucket="dag-redact", Key="clean/dirty.parquet")["Body"].read()
    local = setup["tmp"] / "from_s3.parquet"
    local.write_bytes(body)
    assert_no_leak(json.dumps(pq.read_table(local).to_pylist()))


def test_redaction_without_a_vault_connection_fails_closed(run_dag, setup, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_VAULT_DEFAULT", raising=False)
    output = setup["tmp"] / "nokey.parquet"
    out = run_dag(dag_source(setup, "pii_redact_nokey", "PiiRedactOperator",
                             f"data={str(setup['dirty'])!r}, output_uri={str(output)!r}, "
                             "vault_conn_id='vault_missing'"), "pii_redact_nokey")
    assert out.task_states == {"pii": "failed", "train": "upstream_failed"}
    result = out.xcom("pii")
    assert result["verdict"] == "error" and result["error"]["type"] == "ConfigurationError"
    assert "vault_missing" in result["error"]["message"]
    assert not output.exists()
