"""The redaction and signing operators under ``[aisec] baseline_policy`` whose sections differ from the
DAG's policy, run with real ``dag.test()``: the check runs under both, one redacted copy and one signature
are written, they obey both policies, and the result pushed to XCom records the files written."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.gates.pii import check_pii
from airflow_aisec.core.gates.signing import verify_model
from airflow_aisec.core.policy import load_policy
from tests.helpers.signing_keys import write_pem_keypair

pytestmark = pytest.mark.integration

EMAILS = ["zq.alice@example.com", "zq.bob@example.org"]

POLICY = """
version: 1
name: {name}
pii:
  levels: {{public: {{forbidden: ["*"]}}, internal: {{allowed: [EMAIL_ADDRESS]}}}}
  redaction: {{method: {method}, classification: {level}}}
signing:
  trusted_keys: [{{id: release, fingerprint: "{fingerprint}"}}]
  allow_symlinks: {symlinks}
"""

DAG = '''
import pendulum
from airflow.sdk import DAG
from airflow_aisec.operators.pii import PiiRedactOperator
from airflow_aisec.operators.signing import ModelSignOperator

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False):
    PiiRedactOperator(task_id="redact", data={data!r}, output_uri={out!r}, policy={policy!r})
    ModelSignOperator(task_id="sign", model={model!r}, private_key={key!r}, policy={policy!r})
'''


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_one_redacted_copy_and_one_signature_obeying_both_policies(run_dag, tmp_path, monkeypatch):
    key = write_pem_keypair(tmp_path)
    (tmp_path / "own.yaml").write_text(POLICY.format(name="own", method="mask", level="public",
                                                     fingerprint=key.fingerprint, symlinks="true"))
    (tmp_path / "floor.yaml").write_text(POLICY.format(name="floor", method="drop", level="internal",
                                                       fingerprint=key.fingerprint, symlinks="false"))
    data = tmp_path / "people.parquet"
    pq.write_table(pa.table({"id": list(range(30)), "email": [EMAILS[i % 2] for i in range(30)]}), data)
    out_dir, models = tmp_path / "out", tmp_path / "models"
    out_dir.mkdir()
    (models / "m").mkdir(parents=True)
    (models / "m" / "weights.bin").write_bytes(bytes(range(256)) * 16)
    monkeypatch.setenv("AIRFLOW__AISEC__BASELINE_POLICY", str(tmp_path / "floor.yaml"))

    dag_id = f"layered_outputs_{uuid.uuid4().hex[:6]}"
    run = run_dag(DAG.format(dag_id=dag_id, data=str(data), out=str(out_dir / "people.parquet"),
                             model=str(models / "m"), key=str(key.private), policy=str(tmp_path / "own.yaml")),
                  dag_id)
    assert run.state == "success", run.task_states
    redacted = run.xcom("redact")
    assert redacted["baseline"]["name"] == "floor" and redacted["verdict"] == "pass"
    assert sorted(p.name for p in out_dir.iterdir()) == ["people.parquet"]
    out = out_dir / "people.parquet"
    assert not any(e in json.dumps(pq.read_table(out).to_pylist()) for e in EMAILS)
    assert {i["uri"]: i["sha256"] for i in redacted["inputs"]}[str(out)] == _sha256(out)
    for name in ("own", "floor"):
        section = load_policy(str(tmp_path / f"{name}.yaml")).section("pii")
        assert check_pii(section, str(out), classification=section.redaction.classification).findings == []

    assert sorted(p.name for p in models.iterdir()) == ["m", "m.provenance.json", "m.sig"]
    signed = run.xcom("sign")["metrics"]
    assert signed["signature_sha256"] == _sha256(models / "m.sig")
    assert signed["provenance_sha256"] == _sha256(models / "m.provenance.json")
    for name in ("own", "floor"):
        section = load_policy(str(tmp_path / f"{name}.yaml")).section("signing")
        assert verify_model(section, str(models / "m"), public_key=str(key.public)).metrics["verified"] is True
