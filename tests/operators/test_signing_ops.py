"""Sign-after-training, verify-before-deploy in real Airflow runs (dag.test), local and Vault Transit keys."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from tests.helpers.airflow import assert_retryable_error, task_context
from tests.helpers.net import free_port
from tests.helpers.services import start_bao
from tests.helpers.signing_keys import write_pem_keypair
from tests.helpers.vault import enable_engine, vault_conn_json

pytestmark = pytest.mark.integration

POLICY = """
version: 1
name: signing-test
signing:
  trusted_keys:
    - id: ci-pem
      fingerprint: "{fingerprint}"
    - id: ci-transit
      transit: {{name: "{transit}", versions: [1]}}
"""

DAG = '''
import pendulum
from pathlib import Path
from airflow.sdk import DAG, task
from airflow_aisec.operators.signing import ModelSignOperator, ModelVerifyGateOperator
from airflow_aisec.sensors.signing import ModelSignatureSensor

MODEL = Path({model!r})

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False) as dag:
    @task
    def train():
        (MODEL / "sub").mkdir(parents=True, exist_ok=True)
        (MODEL / "model.safetensors").write_bytes(b"\\x02" + b"\\x00" * 7 + b"{{}}" + b"\\x01" * 2048)
        (MODEL / "sub" / "config.json").write_text('{{"layers": 3}}')
        return str(MODEL)

    @task
    def between():
        {between}

    @task
    def deploy():
        return "deployed"

    sign = ModelSignOperator(task_id="sign", model=str(MODEL), {sign_key}, policy={policy!r},
                             evidence_location={evidence!r})
    verify = {verifier}(task_id="verify", model=str(MODEL), {verify_key}, policy={policy!r},
                        evidence_location={evidence!r}{verifier_extra})
    train() >> sign >> between() >> verify >> deploy()
'''


@pytest.fixture(scope="module")
def pem(tmp_path_factory):
    return write_pem_keypair(tmp_path_factory.mktemp("opkeys"))


@pytest.fixture(scope="module")
def transit(bao_server):
    client = bao_server.client()
    enable_engine(client, "transit", "transit")
    name = f"ops-{uuid.uuid4().hex[:8]}"
    client.secrets.transit.create_key(name=name, key_type="ecdsa-p256")
    os.environ["AIRFLOW_CONN_VAULT_DEFAULT"] = vault_conn_json(
        bao_server.addr, password=bao_server.token, extra={"auth_type": "token", "kv_engine_version": 2}
    )
    yield name
    os.environ.pop("AIRFLOW_CONN_VAULT_DEFAULT", None)


@pytest.fixture
def make(tmp_path, pem):
    def _make(dag_id, *, between="return None", transit_key=None, verifier="ModelVerifyGateOperator",
              verifier_extra="", policy_text=None):
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text or POLICY.format(fingerprint=pem[2], transit=transit_key or "unused"))
        if transit_key:
            sign_key, verify_key = f"transit_key={transit_key!r}", f"transit_key={transit_key!r}"
        else:
            sign_key, verify_key = f"private_key={str(pem[0])!r}", f"public_key={str(pem[1])!r}"
        return DAG.format(model=str(tmp_path / "model"), dag_id=dag_id, between=between, sign_key=sign_key,
                          verify_key=verify_key, policy=str(policy), evidence=str(tmp_path / "evidence"),
                          verifier=verifier, verifier_extra=verifier_extra)

    _make.evidence = tmp_path / "evidence"
    _make.model = tmp_path / "model"
    return _make


def evidence_payloads(path: Path) -> list[dict]:
    from airflow_aisec.core.evidence import open_evidence_store

    store = open_evidence_store(path)
    store.verify()
    return [r["payload"] for r in store.read_records()]


def test_sign_then_verify_gate_lets_the_deploy_run(run_dag, make, pem):
    out = run_dag(make("sig_pem_ok"), "sig_pem_ok")
    assert out.state == "success", out.task_states
    assert out.task_states == {"train": "success", "sign": "success", "between": "success", "verify": "success",
                               "deploy": "success"}
    signed = out.xcom("sign")
    assert signed["verdict"] == "pass" and signed["metrics"]["key_fingerprint"] == pem[2]
    summary = out.xcom("sign", "aisec_signature")
    assert summary["signature"] == str(make.model) + ".sig" and len(summary["model_digest"]) == 64
    verified = out.xcom("verify")
    assert verified["verdict"] == "pass" and verified["metrics"]["trusted_key_id"] == "ci-pem"
    assert verified["metrics"]["model_digest"] == summary["model_digest"]
    assert [p["gate"] for p in evidence_payloads(make.evidence)] == ["signing", "signing"]


def test_tampered_model_fails_the_gate_and_blocks_the_deploy(run_dag, make):
    between = "(MODEL / 'model.safetensors').write_bytes(b'backdoored weights')"
    out = run_dag(make("sig_pem_tampered", between=between), "sig_pem_tampered")
    assert out.state == "failed"
    assert out.task_states["verify"] == "failed" and out.task_states["deploy"] == "upstream_failed"
    result = out.xcom("verify")
    assert result["verdict"] == "fail"
    (finding,) = result["findings"]
    assert finding["rule"] == "signing.tampered" and finding["severity"] == "critical"
    assert finding["location"]["changed"] == ["model.safetensors"]
    assert evidence_payloads(make.evidence)[-1]["verdict"] == "fail"


def test_signature_swapped_for_another_keys_fails_as_untrusted(run_dag, make, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    rogue = tmp_path / "rogue.pem"
    rogue.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    between = ("from airflow_aisec.core.gates.signing import sign_model; "
               f"sign_model(None, MODEL, private_key={str(rogue)!r})")
    out = run_dag(make("sig_pem_rogue", between=between), "sig_pem_rogue")
    assert out.task_states["verify"] == "failed" and out.task_states["deploy"] == "upstream_failed"
    assert out.xcom("verify")["findings"][0]["rule"] == "signing.untrusted_key"


def test_transit_signing_through_the_vault_connection(run_dag, make, transit, bao_server):
    out = run_dag(make("sig_transit_ok", transit_key=transit), "sig_transit_ok")
    assert out.state == "success", out.task_states
    assert out.xcom("sign")["metrics"]["transit_key"] == transit
    assert out.xcom("verify")["metrics"]["transit_key_version"] == 1
    # The Vault token never lands in XCom, results or the audit trail.
    everything = json.dumps(list(out.xcoms.values()), default=str) + json.dumps(evidence_payloads(make.evidence))
    assert bao_server.token not in everything


def test_sensor_waits_for_the_signature_then_verifies(run_dag, make, pem):
    # The signature reaches the watched location ~2 s after the sensor starts poking (a background
    # thread of the in-process dag.test run moves it there).
    hidden, sig = str(make.model) + "-staging.sig", str(make.model) + "-late.sig"
    between = ("import os, threading, time; "
               f"threading.Thread(target=lambda: (time.sleep(2.5), os.rename({hidden!r}, {sig!r})), "
               "daemon=True).start()")
    dag = make("sig_sensor_ok", between=between, verifier="ModelSignatureSensor",
               verifier_extra=f", signature={sig!r}, poke_interval=1, timeout=60, mode='poke'")
    dag = dag.replace("sign = ModelSignOperator(task_id=\"sign\", model=str(MODEL),",
                      f"sign = ModelSignOperator(task_id=\"sign\", model=str(MODEL), signature={hidden!r},")
    assert hidden in dag
    out = run_dag(dag, "sig_sensor_ok")
    assert out.state == "success", out.task_states
    assert out.xcom("verify")["verdict"] == "pass"
    assert out.xcom("verify")["metrics"]["signature"] == sig


def test_sensor_times_out_without_a_signature(run_dag, make, pem):
    dag = make("sig_sensor_timeout", verifier="ModelSignatureSensor",
               verifier_extra=", signature='/nonexistent/never.sig', poke_interval=1, timeout=3, mode='poke'")
    out = run_dag(dag, "sig_sensor_timeout")
    assert out.task_states["verify"] == "failed" and out.task_states["deploy"] == "upstream_failed"
    assert out.xcom("verify") is None  # it never got to verify anything


def test_sensor_fails_on_a_tampered_model_instead_of_waiting(run_dag, make):
    between = "(MODEL / 'sub' / 'extra.py').write_text('import os')"
    out = run_dag(make("sig_sensor_tampered", between=between, verifier="ModelSignatureSensor",
                       verifier_extra=", poke_interval=1, timeout=60, mode='poke'"), "sig_sensor_tampered")
    assert out.task_states["verify"] == "failed"
    assert out.xcom("verify")["findings"][0]["location"]["added"] == ["sub/extra.py"]


def test_policy_without_signing_section_refuses_to_run(run_dag, make):
    out = run_dag(make("sig_nopolicy", policy_text="version: 1\nname: empty\n"), "sig_nopolicy")
    assert out.task_states["sign"] == "failed"
    assert "no 'signing' section" in out.xcom("sign")["error"]["message"]


def test_s3_model_signed_and_verified_in_a_dag(run_dag, make, s3_server, pem, tmp_path):
    client = s3_server.client()
    bucket = f"dagmodels-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=bucket, Key="m/model.safetensors", Body=b"\x02" + b"\x00" * 7 + b"{}")
    dag = make("sig_s3").replace("model=str(MODEL)", f"model='s3://{bucket}/m/'")
    out = run_dag(dag, "sig_s3")
    assert out.state == "success", out.task_states
    assert out.xcom("sign", "aisec_signature")["signature"] == f"s3://{bucket}/m.sig"
    assert out.xcom("verify")["metrics"]["s3_versions_checked"] == 1


def test_operators_validate_arguments_without_io():
    from airflow_aisec.operators.signing import ModelSignOperator, ModelVerifyGateOperator
    from airflow_aisec.sensors.signing import ModelSignatureSensor

    with pytest.raises(ValueError, match="exactly one"):
        ModelSignOperator(task_id="s", model="/nonexistent")
    with pytest.raises(ValueError, match="exactly one"):
        ModelVerifyGateOperator(task_id="v", model="/nonexistent", public_key="a", transit_key="b")
    with pytest.raises(ValueError, match="exactly one"):
        ModelSignatureSensor(task_id="w", model="/nonexistent")
    op = ModelVerifyGateOperator(task_id="v2", model="/nonexistent/{{ ds }}", transit_key="k")
    assert {"model", "signature", "public_key", "transit_key", "policy"} <= set(op.template_fields)


# --------------------------------------------------------------------------------------------
# A Vault outage while signing or verifying is retryable, exactly like in the secrets gate
# --------------------------------------------------------------------------------------------
def _transit_gates(tmp_path: Path, model: Path, name: str):
    from airflow_aisec.operators.signing import ModelSignOperator, ModelVerifyGateOperator

    policy = tmp_path / "outage.yaml"
    policy.write_text(f"version: 1\nname: outage\nsigning:\n  trusted_keys:\n"
                      f"    - {{id: t, transit: {{name: {name}, versions: [1]}}}}\n")
    common = {"model": str(model), "transit_key": name, "policy": str(policy),
              "evidence_location": str(tmp_path / "ev"), "vault_conn_id": "vault_outage"}
    return ModelSignOperator(task_id="sign", **common), ModelVerifyGateOperator(task_id="verify", **common)


@pytest.mark.parametrize("auth", ["token", "approle"])
def test_vault_outage_while_signing_is_retryable(tmp_path, monkeypatch, auth):
    """Token auth fails at the Transit request, AppRole already at the login: both retry, message kept."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.safetensors").write_bytes(b"\x02" + b"\x00" * 7 + b"{}")
    name = f"outage-{uuid.uuid4().hex[:8]}"
    server = start_bao("sign-outage")
    try:
        root = server.client()
        enable_engine(root, "transit", "transit")
        root.secrets.transit.create_key(name=name, key_type="ecdsa-p256")
        conn: dict = {"password": server.token}
        if auth == "approle":
            root.sys.enable_auth_method("approle")
            root.sys.create_or_update_policy("sign", 'path "transit/*" { capabilities = ["read", "update"] }')
            root.auth.approle.create_or_update_approle("signer", token_policies=["sign"], token_ttl="10m")
            conn = {"login": root.auth.approle.read_role_id("signer")["data"]["role_id"],
                    "password": root.auth.approle.generate_secret_id("signer")["data"]["secret_id"],
                    "extra": {"auth_type": "approle"}}
        monkeypatch.setenv("AIRFLOW_CONN_VAULT_OUTAGE", vault_conn_json(server.addr, **conn))
        sign, verify = _transit_gates(tmp_path, model, name)
        assert sign.execute(task_context(dag_id="sig_outage", task_id="sign")) == "pass"
        assert verify.execute(task_context(dag_id="sig_outage", task_id="verify")) == "pass"
    finally:
        server.stop()  # Vault goes away between runs

    for gate in _transit_gates(tmp_path, model, name):
        ctx = task_context(dag_id="sig_outage", task_id=gate.task_id)
        pushed = assert_retryable_error(lambda gate=gate, ctx=ctx: gate.execute(ctx), ctx)
        assert pushed["error"]["type"] == "ServiceUnavailableError"
        assert pushed["error"]["message"].startswith("Vault unreachable for ")  # the gate's own message, kept
        assert server.token not in json.dumps(pushed)


def test_unreachable_vault_address_while_signing_is_retryable(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.safetensors").write_bytes(b"\x00" * 16)
    monkeypatch.setenv("AIRFLOW_CONN_VAULT_OUTAGE", vault_conn_json(f"http://127.0.0.1:{free_port()}",
                                                                    password="x"))
    sign, _verify = _transit_gates(tmp_path, model, "any-key")
    ctx = task_context(dag_id="sig_outage", task_id="sign")
    pushed = assert_retryable_error(lambda: sign.execute(ctx), ctx)
    # VaultHook probes the token when it connects: the outage shows there, translated like everywhere.
    assert pushed["error"]["message"] == "Vault unreachable for Vault connection 'vault_outage': ConnectionError"


def test_sign_operator_refuses_a_file_name_verify_would_refuse(run_dag, make):
    dag = make("sig_pem_backslash")
    anchor = "        (MODEL / \"sub\" / \"config.json\")"
    assert anchor in dag
    dag = dag.replace(anchor, "        (MODEL / \"sub\" / \"we\\\\ird.bin\").write_bytes(b\"w\")\n" + anchor, 1)
    out = run_dag(dag, "sig_pem_backslash")
    assert out.task_states["sign"] == "failed" and out.task_states["deploy"] == "upstream_failed"
    result = out.xcom("sign")
    assert result["verdict"] == "error", result
    assert not Path(str(make.model) + ".sig").exists()
