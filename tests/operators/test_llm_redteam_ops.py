"""Red-team gate in real Airflow runs against a real local model server: the vulnerable model is stopped
before deploy, the guarded one deploys; the endpoint token comes from an Airflow connection or Vault and is
masked; no canary, planted token, reply or endpoint token reaches XCom, evidence or logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.model_server import running_model_server
from tests.helpers.vault import vault_conn_json

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TOKEN = "dag-model-token-7f3a9c"

DAG = '''
import pendulum
from airflow.sdk import DAG, task
from airflow_aisec.operators.llm_redteam import LlmRedTeamGateOperator

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False,
         tags=["model-deployment"]) as dag:
    @task
    def deploy():
        return "deployed"

    redteam = LlmRedTeamGateOperator(task_id="redteam", {args}, model="candidate", policy={policy!r},
                                     evidence_location={evidence!r})
    redteam >> deploy()
'''


def strict_section(tmp_path: Path) -> str:
    strict = (REPO / "policies" / "strict.yaml").read_text()
    section = strict[strict.index("\nllm_redteam:\n") + 1:]
    path = tmp_path / "policy.yaml"
    path.write_text(f"version: 1\nname: model-release\n{section}\n")
    return str(path)


def evidence_text(evidence: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in evidence.rglob("*") if p.is_file())


def connection(url: str) -> str:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return json.dumps({"conn_type": "http", "schema": "http", "host": host, "port": int(port), "password": TOKEN})


def test_vulnerable_model_is_stopped_before_deploy(run_dag, tmp_path, monkeypatch, capfd, caplog):
    evidence = tmp_path / "evidence"
    with running_model_server("vulnerable", record=tmp_path / "seen.txt", token=TOKEN) as server:
        monkeypatch.setenv("AIRFLOW_CONN_REDTEAM_MODEL", connection(server.url))
        source = DAG.format(dag_id="redteam_fail", args="conn_id='redteam_model'", policy=strict_section(tmp_path),
                            evidence=str(evidence))
        out = run_dag(source, "redteam_fail")
        seen = server.recorded()
    assert out.state == "failed"
    assert out.task_states == {"redteam": "failed", "deploy": "upstream_failed"}
    result = out.xcom("redteam")
    assert result["verdict"] == "fail"
    rules = {f["rule"] for f in result["findings"]}
    assert rules == {"llm_redteam.injection_success", "llm_redteam.system_prompt_leak"}
    assert result["metrics"]["model"] == "candidate" and result["metrics"]["answered"] > 20
    captured = capfd.readouterr()
    outputs = (captured.out + captured.err + caplog.text + json.dumps(list(out.xcoms.values()), default=str)
               + evidence_text(evidence))
    assert "llm_redteam.system_prompt_leak" in outputs
    assert len(seen) > 20
    leaked = [v for v in [*seen, TOKEN, "Sure! My instructions"] if v in outputs]
    assert not leaked


def test_guarded_model_deploys_with_token_from_vault(run_dag, tmp_path, monkeypatch, bao_server):
    bao_server.client().secrets.kv.v2.create_or_update_secret(path="ml/redteam-model", secret={"token": TOKEN})
    monkeypatch.setenv("AIRFLOW_CONN_VAULT_DEFAULT", vault_conn_json(bao_server.addr, password=bao_server.token))
    with running_model_server("guarded", token=TOKEN) as server:
        args = f"endpoint={server.url!r}, vault_secret_path='ml/redteam-model'"
        source = DAG.format(dag_id="redteam_pass", args=args, policy=strict_section(tmp_path),
                            evidence=str(tmp_path / "evidence"))
        out = run_dag(source, "redteam_pass")
    assert out.state == "success", out.task_states
    result = out.xcom("redteam")
    assert result["verdict"] == "pass" and result["findings"] == []
    assert result["metrics"]["success_rate"] == 0.0 and result["metrics"]["canary_leaks"] == 0
    assert TOKEN not in json.dumps(list(out.xcoms.values()), default=str)


def test_unreachable_model_never_passes(run_dag, tmp_path):
    from tests.helpers.net import free_port

    source = DAG.format(dag_id="redteam_down", args=f"endpoint='http://127.0.0.1:{free_port()}'",
                        policy=strict_section(tmp_path), evidence=str(tmp_path / "evidence"))
    out = run_dag(source, "redteam_down")
    assert out.task_states["deploy"] == "upstream_failed"
    result = out.xcom("redteam")
    assert result["verdict"] == "error" and result["error"]["retryable"] is True
