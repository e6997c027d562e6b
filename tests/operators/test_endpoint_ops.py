"""EndpointSecurityGateOperator in real DAG runs (``dag.test()``) against real serving processes; the token
(from an Airflow connection or from OpenBao) never reaches a finding, XCom, the audit trail or the logs."""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_aisec.operators.endpoint import EndpointSecurityGateOperator
from tests.helpers.endpoint_setup import write_endpoint_setup
from tests.helpers.env import patched_environ
from tests.helpers.serving import running_serving
from tests.helpers.vault import seed_kv, vault_conn_json

pytestmark = pytest.mark.integration

TOKEN = "op-token-" + uuid.uuid4().hex + "-PLANTED"

DAG = """
import pendulum
from airflow.sdk import DAG
from airflow_aisec.operators.endpoint import EndpointSecurityGateOperator

with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False):
    EndpointSecurityGateOperator(task_id="endpoint_gate", url={url!r}, policy={policy!r},
                                 ca_bundle={ca!r}, evidence_location={evidence!r}, **{source!r})
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("endpoint-op")
    pki, policy = write_endpoint_setup(root, "endpoint-op")
    conn = json.dumps({"conn_type": "http", "password": TOKEN})
    with patched_environ({"AIRFLOW_CONN_MODEL_SERVING": conn}):
        yield {"root": root, "pki": pki, "policy": policy}


def _dag(dag_id, url, env, source):
    return DAG.format(dag_id=dag_id, url=url, policy=str(env["policy"]), ca=str(env["pki"].ca),
                      evidence=str(env["root"] / "evidence"), source=source)


def _no_token(outcome, env, captured: str):
    assert "endpoint gate:" in captured  # the task's log lines were captured: a leak there would be seen
    texts = [json.dumps({f"{t}/{k}": v for (t, k), v in outcome.xcoms.items()}, default=str), captured]
    texts += [p.read_text(errors="replace") for p in (env["root"] / "evidence").rglob("*") if p.is_file()]
    for text in texts:
        assert TOKEN not in text


def test_constructor_does_no_io_and_templates_url():
    op = EndpointSecurityGateOperator(task_id="e", url="{{ params.url }}", token_conn_id="model_serving")
    assert "url" in op.template_fields and op.url == "{{ params.url }}"


def test_hardened_endpoint_passes_in_a_dag_run(run_dag, env, capfd):
    with running_serving("hardened", TOKEN, pki=env["pki"]) as server:
        out = run_dag(_dag("endpoint_gate_ok", server.url, env, {"token_conn_id": "model_serving"}),
                      "endpoint_gate_ok")
    assert out.state == "success", out.task_states
    result = out.xcom("endpoint_gate")
    assert result["verdict"] == "pass" and result["metrics"]["tls_version"]
    _no_token(out, env, "".join(capfd.readouterr()))


def test_insecure_endpoint_fails_the_run_without_leaking_the_token(run_dag, env, capfd):
    with running_serving("insecure", TOKEN, pki=env["pki"]) as server:
        out = run_dag(_dag("endpoint_gate_bad", server.url, env, {"token_conn_id": "model_serving"}),
                      "endpoint_gate_bad")
    assert out.state == "failed" and out.task_states["endpoint_gate"] == "failed"
    result = out.xcom("endpoint_gate")
    assert result["verdict"] == "fail"
    assert {"endpoint.unauthenticated_access", "endpoint.invalid_token_accepted"} <= {
        f["rule"] for f in result["findings"]}
    _no_token(out, env, "".join(capfd.readouterr()))


def test_token_from_vault(run_dag, env, bao_server, capfd):
    seed_kv(bao_server.client(), {"serving/churn": {"token": TOKEN}})
    vault = vault_conn_json(bao_server.addr, schema="secret", password=bao_server.token,
                            extra={"auth_type": "token", "kv_engine_version": 2})
    with patched_environ({"AIRFLOW_CONN_VAULT_DEFAULT": vault}), \
            running_serving("hardened", TOKEN, pki=env["pki"]) as server:
        out = run_dag(_dag("endpoint_gate_vault", server.url, env, {"vault_secret_path": "serving/churn"}),
                      "endpoint_gate_vault")
    assert out.state == "success", out.task_states
    assert out.xcom("endpoint_gate")["verdict"] == "pass"
    _no_token(out, env, "".join(capfd.readouterr()))


def test_missing_connection_is_a_configuration_error(run_dag, env):
    out = run_dag(_dag("endpoint_gate_noconn", "https://127.0.0.1:1", env, {"token_conn_id": "absent_conn"}),
                  "endpoint_gate_noconn")
    assert out.state == "failed"
    result = out.xcom("endpoint_gate")
    assert result["verdict"] == "error" and "absent_conn" in result["error"]["message"]
