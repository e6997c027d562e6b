"""Attack 1 of issue 11: the DAG author picks the policy. A policy named ``strict`` with
``enforcement: audit``, a blanket waiver with a plausible ``approved_by`` and a ``**`` secrets grant
lets PII in a public dataset pass, reads secrets outside the platform's grants, and passes an unsigned
model. Each test runs the real DAG twice with real Airflow (``dag.test()``) and real OpenBao: without
``[aisec] baseline_policy`` the attack works (the "fail first" half), with it the gate stops the run."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.helpers.env import patched_environ
from tests.helpers.vault import seed_kv, vault_conn_json

pytestmark = pytest.mark.integration

FINGERPRINT_ANY = "sha256:" + "a" * 64

PERMISSIVE = f"""
version: 1
name: strict
description: Production defaults for AI pipelines. Violations fail the run.
enforcement: audit
rules: {{"*": audit}}
waivers:
  - rule: "*"
    reason: "SEC-2291: approved by the security team"
    approved_by: security@example.com
    expires: 2099-12-31
pii:
  default_classification: public
  levels: {{public: {{allowed: ["*"]}}}}
secrets:
  kv_mount: secret
  grants:
    - {{dag_id: "*", paths: ["**"]}}
signing:
  trusted_keys: [{{id: any, fingerprint: "{FINGERPRINT_ANY}"}}]
  allow_unsigned: true
"""

BASELINE = """
version: 1
name: platform-baseline
enforcement: enforce
pii:
  default_classification: public
  levels: {public: {forbidden: ["*"]}}
secrets:
  kv_mount: secret
  grants:
    - {dag_id: "sec_floor_*", paths: ["secfloor/allowed/*"]}
signing:
  trusted_keys: [{id: platform, fingerprint: "FINGERPRINT"}]
  allow_unsigned: false
""".replace("FINGERPRINT", FINGERPRINT_ANY)

DAG = '''
import pendulum
from pathlib import Path
from airflow.sdk import DAG, task
from airflow_aisec.operators.pii import PiiGateOperator
from airflow_aisec.operators.secrets import VaultSecretsGateOperator
from airflow_aisec.operators.signing import ModelVerifyGateOperator

POLICY = {policy!r}

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False):
    @task
    def after():
        return "ran"

    {gate}
    gate >> after()
'''

PII_GATE = 'gate = PiiGateOperator(task_id="gate", data={data!r}, classification="public", policy=POLICY)'
SECRETS_GATE = 'gate = VaultSecretsGateOperator(task_id="gate", paths={paths!r}, policy=POLICY)'
SIGNING_GATE = 'gate = ModelVerifyGateOperator(task_id="gate", model={model!r}, public_key={key!r}, policy=POLICY)'


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("floor")
    (d / "permissive.yaml").write_text(PERMISSIVE)
    (d / "baseline.yaml").write_text(BASELINE)
    (d / "customers.csv").write_text("id,email\n" + "".join(f"{i},zq.user{i}@example.com\n" for i in range(20)))
    model = d / "model"
    model.mkdir()
    (model / "model.json").write_text('{"coef": [0.1, 0.2]}')  # never signed
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    (d / "k.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    return d


def _run(run_dag, files, gate: str, dag_id: str):
    dag_id = f"{dag_id}_{uuid.uuid4().hex[:6]}"
    return run_dag(DAG.format(policy=str(files / "permissive.yaml"), dag_id=dag_id, gate=gate), dag_id)


def _with_floor(monkeypatch, files) -> None:
    monkeypatch.setenv("AIRFLOW__AISEC__BASELINE_POLICY", str(files / "baseline.yaml"))


def test_pii_in_a_public_dataset_cannot_pass(run_dag, files, monkeypatch):
    gate = PII_GATE.format(data=str(files / "customers.csv"))
    attack = _run(run_dag, files, gate, "sec_floor_pii")
    assert attack.state == "success" and attack.xcom("gate")["verdict"] == "pass"  # the hole, without a floor

    _with_floor(monkeypatch, files)
    out = _run(run_dag, files, gate, "sec_floor_pii")
    assert out.state == "failed" and out.task_states["after"] == "upstream_failed"
    result = out.xcom("gate")
    assert result["verdict"] == "fail"
    (finding,) = [f for f in result["findings"] if f["rule"] == "pii.entity_not_allowed"]
    assert finding["enforcement"] == "enforce" and finding["waived"] is False
    assert result["waivers_applied"] == []
    assert result["policy"]["name"] == "strict" and result["baseline"]["name"] == "platform-baseline"
    assert "zq.user" not in json.dumps(result)


@pytest.fixture(scope="module")
def vault(bao_server):
    seed_kv(bao_server.client(), {"secfloor/allowed/api": {"token": "allowed-value-4b1e9c"},
                                  "secfloor/other/db": {"password": "outside-value-7d2f0a"}})
    with patched_environ({"AIRFLOW_CONN_VAULT_DEFAULT": vault_conn_json(bao_server.addr, password=bao_server.token)}):
        yield


def test_secrets_outside_the_baseline_grants_are_not_read(run_dag, files, vault, monkeypatch):
    outside = SECRETS_GATE.format(paths={"secfloor/other/db": ["password"]})
    attack = _run(run_dag, files, outside, "sec_floor_secrets")
    assert attack.state == "success" and attack.xcom("gate", "aisec_secret_handles")  # handed off, no floor

    _with_floor(monkeypatch, files)
    out = _run(run_dag, files, outside, "sec_floor_secrets")
    assert out.state == "failed"
    result = out.xcom("gate")
    assert result["verdict"] == "fail"
    (finding,) = result["findings"]
    assert finding["rule"] == "secrets.path_not_allowed" and finding["severity"] == "critical"
    assert out.xcom("gate", "aisec_secret_handles") is None  # nothing was wrapped
    blob = json.dumps({f"{k}": v for k, v in out.xcoms.items()}, default=str)
    assert "outside-value-7d2f0a" not in blob

    # what the baseline grants still works under the same permissive policy
    inside = _run(run_dag, files, SECRETS_GATE.format(paths={"secfloor/allowed/api": ["token"]}),
                  "sec_floor_secrets")
    assert inside.state == "success", inside.task_states
    assert inside.xcom("gate")["baseline"]["name"] == "platform-baseline"


def test_an_unsigned_model_cannot_pass_verification(run_dag, files, monkeypatch):
    gate = SIGNING_GATE.format(model=str(files / "model"), key=str(files / "k.pub"))
    attack = _run(run_dag, files, gate, "sec_floor_signing")
    assert attack.state == "success" and attack.xcom("gate")["verdict"] in ("pass", "warn")

    _with_floor(monkeypatch, files)
    out = _run(run_dag, files, gate, "sec_floor_signing")
    assert out.state == "failed" and out.task_states["after"] == "upstream_failed"
    result = out.xcom("gate")
    assert result["verdict"] in ("fail", "error")
    assert not any(f["waived"] for f in result["findings"])
    assert result["baseline"]["name"] == "platform-baseline"
