"""One real Airflow for the security suite: api-server, scheduler and dag-processor (LocalExecutor,
SQLite) with users of different rights, the real OpenBao of the session and the example pipeline.

Users (``security_auth_manager.SecurityAuthManager``):

* ``admin``: everything;
* ``viewer``: reads every DAG (REST API, UI, XCom), changes nothing;
* ``writer``: may change only ``aisec_sec_attacker`` (e.g. write its XComs through the REST API),
  reads the other DAGs but not ``aisec_sec_victim`` at all.

The DAG files are below; each test module triggers the runs it needs.
"""

from __future__ import annotations

import base64
import os
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tests.helpers.env import REPO
from tests.helpers.vault import example_pipeline_vault, seed_kv, vault_conn_json
from tests.plugins.ui_airflow import LiveAirflow, live_airflow
from tests.plugins.ui_dags import GATE_OPERATOR_SOURCE, XSS_PAYLOAD, pick_gate, policy_text

HERE = Path(__file__).resolve().parent

VICTIM = "aisec_sec_victim"
ATTACKER = "aisec_sec_attacker"
HANDOFF = "aisec_sec_handoff"
FAKE_DEPLOY = "aisec_sec_fake_verify_deploy"
PIPELINE = "secure_ml_training_pipeline"

PASSWORDS = {"viewer": "viewer-pw-" + uuid.uuid4().hex[:8], "writer": "writer-pw-" + uuid.uuid4().hex[:8]}
#: Only in the victim DAG's result and report: nobody without access may ever receive it.
VICTIM_MARKER = "VICTIM-ONLY-" + uuid.uuid4().hex[:10]
#: The secret the hand-off DAG reads from OpenBao.
HANDOFF_SECRET = "handoff-pw-" + uuid.uuid4().hex
HANDOFF_PATH = "sec/handoff/db"

SECRETS_POLICY = f"""
version: 1
name: security-suite-secrets
secrets:
  wrap_ttl: 10m
  grants:
    - dag_id: "{HANDOFF}"
      task_id: "fetch"
      paths: ["sec/handoff/*"]
"""


def new_handoff_key() -> str:
    """A fresh ``[aisec] handoff_key`` (32 random bytes, URL-safe base64)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _dag_header() -> str:
    return textwrap.dedent(
        """
        import datetime
        from airflow.sdk import DAG, task
        """
    )


def victim_source(gate: str, policy: str, report: str) -> str:
    return GATE_OPERATOR_SOURCE.format(gate=gate) + _dag_header() + textwrap.dedent(
        f"""
        with DAG("{VICTIM}", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False):
            UiTestGate(
                task_id="gate_victim",
                policy={policy!r},
                findings=[{{"rule": "{gate}.minor_shift", "severity": "low",
                            "message": "{VICTIM_MARKER} in column salary", "count": 1}}],
                reports=[{{"name": "victim report", "uri": {report!r}}}],
            )
        """
    )


def attacker_source(gate: str, policy: str, report: str) -> str:
    return GATE_OPERATOR_SOURCE.format(gate=gate) + _dag_header() + textwrap.dedent(
        f"""
        with DAG("{ATTACKER}", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False):
            UiTestGate(task_id="gate_ok", policy={policy!r}, reports=[{{"name": "own report", "uri": {report!r}}}])
            UiTestGate(
                task_id="gate_fail",
                policy={policy!r},
                findings=[{{"rule": "{gate}.psi_exceeded", "severity": "critical",
                            "message": "PSI above threshold", "count": 3}}],
            )

            @task
            def plain():
                return "nothing to see"

            plain()
        """
    )


def handoff_source(policy: str, flag: str, side: str) -> str:
    return _dag_header() + textwrap.dedent(
        f"""
        import hashlib
        import os
        from airflow.providers.standard.sensors.python import PythonSensor
        from airflow_aisec.operators.secrets import VaultSecretsGateOperator, vault_secrets

        with DAG("{HANDOFF}", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False):
            fetch = VaultSecretsGateOperator(task_id="fetch", paths={{"{HANDOFF_PATH}": ["password"]}},
                                             policy={policy!r})
            wait = PythonSensor(task_id="wait_for_release", python_callable=lambda: os.path.exists({flag!r}),
                                poke_interval=1, timeout=900, mode="reschedule")

            @task
            def consume():
                with vault_secrets("fetch") as secrets:
                    value = secrets["{HANDOFF_PATH}"]["password"]
                    with open(os.path.join({side!r}, "consumed.sha256"), "w") as fh:
                        fh.write(hashlib.sha256(value.encode()).hexdigest())

            fetch >> wait >> consume()
        """
    )


def fake_verify_source(private_trail: str) -> str:
    """A deploy DAG that satisfies the platform rule with a 'verification gate' that checks nothing and
    records its pass in a trail of its own choosing (a DAG author can run any code)."""
    return _dag_header() + textwrap.dedent(
        f"""
        from airflow_aisec.operators.signing import ModelVerifyGateOperator


        class QuickVerify(ModelVerifyGateOperator):
            def execute(self, context):
                from airflow_aisec.core.evidence import open_evidence_store
                from airflow_aisec.core.result import GateResult, utcnow
                from airflow_aisec.operators.base import airflow_ref

                result = GateResult(gate="signing", verdict="pass", started_at=utcnow(), finished_at=utcnow(),
                                    airflow=airflow_ref(context))
                ref = open_evidence_store({private_trail!r}).append(result.to_dict())
                context["ti"].xcom_push(key="aisec_result", value=result.to_dict())
                context["ti"].xcom_push(key="aisec_evidence", value=ref.to_dict())
                return "pass"


        with DAG("{FAKE_DEPLOY}", schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False,
                 tags=["model-deployment"]):
            verify = QuickVerify(task_id="verify_model_signature", model="/nonexistent/model",
                                 signature="/nonexistent/model.sig", transit_key="model-signing")

            @task
            def deploy():
                return "deployed"

            verify >> deploy()
        """
    )


@dataclass
class SecurityAirflow:
    live: LiveAirflow
    home: Path
    evidence: Path
    report_root: Path
    private_trail: Path
    side: Path
    flag: Path
    bao_addr: str
    bao_token: str
    handoff_key: str
    gate: str
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, user: str) -> str:
        if user == "admin":
            return self.live.token()
        if user not in self.tokens:
            self.tokens[user] = self.live.login(user, PASSWORDS[user])
        return self.tokens[user]

    def as_user(self, user: str, method: str, path: str, body=None):
        return self.live.request(method, path, body, token=self.token(user))

    def run_and_wait(self, dag_id: str, timeout: float = 300) -> tuple[str, str]:
        self.live.wait_for_dag(dag_id)
        run_id = self.live.trigger(dag_id)
        return run_id, self.live.wait_for_run(dag_id, run_id, timeout=timeout)

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        status, body = self.live.request(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
        )
        return body.get("state") if status == 200 else None

    def wait_for_task(self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.task_state(dag_id, run_id, task_id)
            if state in states:
                return state
            self.live.check_alive()
            time.sleep(1)
        raise AssertionError(f"{dag_id}/{task_id} still {state} after {timeout}s\n{self.live.logs()}")

    def xcom_path(self, dag_id: str, run_id: str, task_id: str, key: str | None = None) -> str:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries"
        return path + (f"/{key}" if key else "")


def run_url(dag_id: str, run_id: str, *, api: bool = False) -> str:
    return f"/aisec/{'api/' if api else ''}runs/{dag_id}/{quote(run_id, safe=':+')}"


def start_security_airflow(tmp: Path, bao_server) -> Iterator[SecurityAirflow]:
    """Generator for the session fixture (see ``tests/security/conftest.py``)."""
    home = tmp / "airflow"
    evidence = home / "evidence"
    report_root = evidence / "reports"  # the gates' default report root: the plugin serves it
    report_root.mkdir(parents=True)
    victim_report = report_root / "victim-report.html"
    victim_report.write_text(f"<html><body><p>{VICTIM_MARKER}</p></body></html>")
    own_report = report_root / "attacker-report.html"
    own_report.write_text("<html><body><p>the attacker's own report</p></body></html>")
    private_trail = tmp / "private-trail"
    side = tmp / "side"
    side.mkdir()
    flag = tmp / "release-consumer.flag"

    gate = pick_gate()
    policy = tmp / "ui-policy.yaml"
    policy.write_text(policy_text(gate))
    secrets_policy = tmp / "secrets-policy.yaml"
    secrets_policy.write_text(SECRETS_POLICY)

    root_client = bao_server.client()
    seed_kv(root_client, {HANDOFF_PATH: {"password": HANDOFF_SECRET}})
    example_pipeline_vault(root_client)
    example_root = tmp / "example" / "aisec-example"
    example_root.mkdir(parents=True)

    handoff_key = new_handoff_key()
    dag_files = {
        f"{VICTIM}.py": victim_source(gate, str(policy), str(victim_report)),
        f"{ATTACKER}.py": attacker_source(gate, str(policy), str(own_report)),
        f"{HANDOFF}.py": handoff_source(str(secrets_policy), str(flag), str(side)),
        f"{FAKE_DEPLOY}.py": fake_verify_source(str(private_trail)),
        "secure_ml_training_pipeline.py": (REPO / "dags" / "secure_ml_training_pipeline.py").read_text(),
    }
    extra_env = {
        "AIRFLOW__CORE__AUTH_MANAGER": "security_auth_manager.SecurityAuthManager",
        "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer,writer:user",
        "AIRFLOW__AISEC__PLATFORM_POLICY": str(REPO / "policies" / "strict.yaml"),
        "AIRFLOW__AISEC__HANDOFF_KEY": handoff_key,
        "AIRFLOW_CONN_VAULT_DEFAULT": vault_conn_json(
            bao_server.addr, schema="secret", password=bao_server.token,
            extra={"auth_type": "token", "kv_engine_version": 2},
        ),
        "AISEC_EXAMPLE_ROOT": str(example_root),
        "AISEC_POLICY_DIR": str(REPO / "policies"),
    }
    with live_airflow(home, dag_files, extra_env=extra_env, passwords=PASSWORDS) as live:
        yield SecurityAirflow(
            live=live,
            home=home,
            evidence=evidence,
            report_root=report_root,
            private_trail=private_trail,
            side=side,
            flag=flag,
            bao_addr=bao_server.addr,
            bao_token=bao_server.token,
            handoff_key=handoff_key,
            gate=gate,
        )


__all__ = [
    "ATTACKER",
    "FAKE_DEPLOY",
    "HANDOFF",
    "HANDOFF_PATH",
    "HANDOFF_SECRET",
    "PASSWORDS",
    "PIPELINE",
    "VICTIM",
    "VICTIM_MARKER",
    "XSS_PAYLOAD",
    "SecurityAirflow",
    "run_url",
    "start_security_airflow",
]
