"""Scale-out: gates under CeleryExecutor with a Redis broker and a PostgreSQL metadata database.

Real processes, as a deployment runs them: ``api-server`` (with the Task Execution API the worker calls),
``scheduler``, ``dag-processor`` and ``celery worker`` (its own AIRFLOW_HOME and working directory, so
nothing local is shared with the other processes but the DAG files). The evidence store is the moto S3
server, the only state the gates share. The cluster policy is active in every process.

What the run proves:
* a passing gate lets its downstream task run, a failing gate fails and blocks its downstream task;
* a DAG that breaks a platform rule never loads (import error in the metadata DB naming rule and task);
* a human-approved waiver works end to end: the run waits, a permitted user answers through the REST
  HITL endpoint, the deploy task runs, the decision is in the audit trail;
* every task ran on the Celery worker, and every result is in the S3 audit trail, whose chain verifies.

Bounded: each wait has a deadline; on failure the tail of every process log and of the task logs is
printed. Every process is stopped (by its process group id) and the database dropped at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

VENV_BIN = Path(sys.executable).parent
PG_ADMIN_DSN = os.environ.get("AISEC_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("AISEC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
PASSWORDS = {"admin": "admin-" + secrets.token_hex(8), "approver": "approver-" + secrets.token_hex(8)}

POLICY = """
version: 1
name: celery-run
drift: {}
platform:
  rules:
    - id: deploy-needs-drift-gate
      description: a deployed model must pass the drift gate
      dag_tags: [model-deployment]
      targets: {task_ids: ["deploy*"]}
      require_upstream: [{gate: drift}]
  approvals:
    - rule: drift.feature_drift
      approvers: [approver]
"""

GATE = '''
import pendulum
from airflow.sdk import DAG, task
from airflow_aisec.core.result import CheckOutcome, Finding
from airflow_aisec.operators.approval import AisecWaiverApprovalOperator
from airflow_aisec.operators.base import AisecGateOperator


class FakeDriftGate(AisecGateOperator):
    """Test gate: reports the findings it is given (the real gates land in their own issues)."""

    gate = "drift"

    def __init__(self, *, findings=(), **kwargs):
        super().__init__(**kwargs)
        self.findings = list(findings)

    def check(self, loaded, context):
        return CheckOutcome(findings=[Finding(rule=r, message=f"{r} over threshold", count=2)
                                      for r in self.findings], metrics={"columns": 3})


def _deploy(marker):
    import os, socket
    return {"marker": marker, "pid": os.getpid(), "host": socket.gethostname()}
'''

DAG_GATES = GATE + '''
with DAG("celery_gates", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False,
         tags=["model-deployment"]):
    @task
    def deploy_ok():
        return _deploy("ok")

    @task
    def deploy_blocked():
        return _deploy("must-not-run")

    FakeDriftGate(task_id="pass_gate") >> deploy_ok()
    FakeDriftGate(task_id="fail_gate", findings=["drift.label_shift"]) >> deploy_blocked()
'''

DAG_WAIVER = GATE + '''
with DAG("celery_waiver", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False,
         tags=["model-deployment"]):
    @task
    def deploy_waived():
        return _deploy("waived")

    gate = FakeDriftGate(task_id="drift_gate", findings=["drift.feature_drift"])
    waiver = AisecWaiverApprovalOperator(task_id="drift_waiver", gate_task_id="drift_gate")
    gate >> waiver >> deploy_waived()
'''

DAG_REJECTED = GATE + '''
with DAG("celery_ungated", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False,
         tags=["model-deployment"]):
    @task
    def deploy_unverified():
        return _deploy("never")

    deploy_unverified()
'''


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class CeleryCluster:
    root: Path
    env: dict[str, str]
    api: str
    queue: str
    evidence: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    # --- processes -----------------------------------------------------------------------------
    def start(self, name: str, args: list[str], *, env: dict | None = None, cwd: Path | None = None) -> None:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [str(VENV_BIN / "airflow"), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env or self.env, cwd=str(cwd or self.root), start_new_session=True,
        )

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise AssertionError(f"process(es) exited early: {dead}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)  # the group this test started (start_new_session)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)

    def dump_logs(self, limit: int = 4000) -> str:
        out = []
        for path in sorted(self.root.rglob("*.log")):
            text = path.read_text(errors="replace")
            out.append(f"===== {path.relative_to(self.root)} (last {limit} chars) =====\n{text[-limit:]}")
        return "\n".join(out)

    # --- REST ----------------------------------------------------------------------------------
    def token(self, user: str) -> str:
        if user not in self.tokens:
            status, body = self.request("POST", "/auth/token",
                                        {"username": user, "password": PASSWORDS[user]}, auth=None)
            assert status == 201, (status, body)
            self.tokens[user] = body["access_token"]
        return self.tokens[user]

    def request(self, method: str, path: str, payload=None, *, auth: str | None = "admin"):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token(auth)}"
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.api + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return exc.code, json.loads(body)
            except ValueError:
                return exc.code, body.decode(errors="replace")

    def wait(self, what: str, predicate, timeout: float, interval: float = 1.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, dict]:
        status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        assert status == 200, body
        return {ti["task_id"]: ti for ti in body["task_instances"]}


def _psql(dsn: str, *statements: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def celery_cluster(tmp_path_factory, postgres_dsn, redis_url, s3_server):
    """A CeleryExecutor deployment on loopback; yields a :class:`CeleryCluster`."""
    root = tmp_path_factory.mktemp("celery-run")
    suffix = secrets.token_hex(4)
    db = f"aisec_celery_{suffix}"
    queue = f"aisec-{suffix}"
    admin_dsn = PG_ADMIN_DSN
    _psql(admin_dsn, f'CREATE DATABASE "{db}"')
    db_dsn = admin_dsn.rsplit("/", 1)[0] + f"/{db}"
    sa_url = db_dsn.replace("postgresql://", "postgresql+psycopg2://", 1)
    port = _free_port()

    bucket = f"aisec-celery-{suffix}"
    s3_server.client().create_bucket(Bucket=bucket)
    evidence = f"s3://{bucket}/audit"

    dags = root / "dags"
    dags.mkdir()
    (dags / "celery_gates.py").write_text(textwrap.dedent(DAG_GATES))
    (dags / "celery_waiver.py").write_text(textwrap.dedent(DAG_WAIVER))
    (dags / "celery_ungated.py").write_text(textwrap.dedent(DAG_REJECTED))
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    home = root / "home"
    home.mkdir()

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sa_url,
        "AIRFLOW__CELERY__BROKER_URL": f"{REDIS_BASE}/11",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + sa_url,
        "AIRFLOW__CELERY__DEFAULT_QUEUE": queue,
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,approver:op",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # airflow-aisec: policy for the gates, platform rules for the cluster policy, S3 audit trail.
        "AIRFLOW__AISEC__DEFAULT_POLICY": str(policy),
        "AIRFLOW__AISEC__PLATFORM_POLICY": str(policy),
        "AIRFLOW__AISEC__EVIDENCE_LOCATION": evidence,
        "AIRFLOW__AISEC__EVIDENCE_AWS_CONN_ID": "aws_default",
    })
    cluster = CeleryCluster(root=root, env=env, api=f"http://127.0.0.1:{port}", queue=queue, evidence=evidence)
    try:
        migrate = subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], check=False, env=env, cwd=root,
                                 capture_output=True, text=True, timeout=240)
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]

        cluster.start("api-server", ["api-server", "--workers", "1"])
        cluster.start("scheduler", ["scheduler"])
        cluster.start("dag-processor", ["dag-processor"])
        # The worker: its own home and working directory; it shares only the DAG files, the broker,
        # the execution API and the S3 audit trail with the rest.
        worker_home = root / "worker-home"
        worker_home.mkdir()
        worker_env = {**env, "AIRFLOW_HOME": str(worker_home)}
        cluster.start("celery-worker", ["celery", "worker", "--queues", queue, "--concurrency", "2",
                                        "--celery-hostname", f"aisec-worker-{suffix}@%h", "--skip-serve-logs",
                                        "--without-gossip", "--without-mingle"],
                      env=worker_env, cwd=worker_home)

        def api_up():
            try:
                with urllib.request.urlopen(cluster.api + "/api/v2/monitor/health", timeout=3):
                    return True
            except (OSError, urllib.error.HTTPError):
                return False

        cluster.wait("the api-server", api_up, timeout=120)
        yield cluster
    except BaseException:
        print(cluster.dump_logs(), file=sys.stderr)
        raise
    finally:
        cluster.stop()
        try:
            import redis

            redis.Redis.from_url(f"{REDIS_BASE}/11").delete(queue)
        except Exception:  # noqa: BLE001, S110 - best-effort cleanup of our own queue key
            pass
        _psql(admin_dsn,
              f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' "
              "AND pid <> pg_backend_pid()",
              f'DROP DATABASE IF EXISTS "{db}"')


TERMINAL = {"success", "failed"}


def test_gates_under_celery_executor(celery_cluster, s3_server):
    c = celery_cluster
    try:
        _run_and_check(c, s3_server)
    except BaseException:
        print(c.dump_logs(), file=sys.stderr)
        raise


def _run_and_check(c: CeleryCluster, s3_server) -> None:
    # 1. The dag-processor parses the folder with the cluster policy active.
    def parsed():
        ok = all(c.request("GET", f"/api/v2/dags/{d}")[0] == 200 for d in ("celery_gates", "celery_waiver"))
        _, body = c.request("GET", "/api/v2/importErrors")
        errors = [e for e in body.get("import_errors", []) if "celery_ungated" in e["filename"]] if ok else []
        return errors if ok and errors else None

    [ungated] = c.wait("DAG parsing", parsed, timeout=120)
    assert "AirflowClusterPolicyViolation" in ungated["stack_trace"]
    assert "[platform.deploy-needs-drift-gate]" in ungated["stack_trace"]
    assert "task 'deploy_unverified'" in ungated["stack_trace"]
    assert c.request("GET", "/api/v2/dags/celery_ungated")[0] == 404

    # 2. Trigger both DAGs.
    runs = {}
    for dag_id in ("celery_gates", "celery_waiver"):
        status, body = c.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
        assert status == 200, body
        runs[dag_id] = body["dag_run_id"]

    # 3. The waiver asks a person; the approver answers through the REST HITL endpoint.
    waiver_path = (f"/api/v2/dags/celery_waiver/dagRuns/{runs['celery_waiver']}"
                   "/taskInstances/drift_waiver/-1/hitlDetails")

    def asking():
        tis = c.task_states("celery_waiver", runs["celery_waiver"])
        state = tis.get("drift_waiver", {}).get("state")
        assert state not in ("failed", "upstream_failed"), tis
        return state == "awaiting_input"

    c.wait("the waiver to ask for input", asking, timeout=150)
    status, detail = c.request("GET", waiver_path)
    assert status == 200, detail
    assert detail["assigned_users"] == [{"id": "approver", "name": "approver"}]
    assert "drift.feature_drift" in detail["body"]
    status, body = c.request("PATCH", waiver_path, {"chosen_options": ["Approve"], "params_input": {}},
                             auth="approver")
    assert status == 200, body

    # 4. Both runs finish.
    def finished():
        states = {d: c.request("GET", f"/api/v2/dags/{d}/dagRuns/{r}")[1]["state"] for d, r in runs.items()}
        return states if all(s in TERMINAL for s in states.values()) else None

    states = c.wait("both runs to finish", finished, timeout=180, interval=2)
    gates = c.task_states("celery_gates", runs["celery_gates"])
    waiver = c.task_states("celery_waiver", runs["celery_waiver"])
    assert {t: ti["state"] for t, ti in gates.items()} == {
        "pass_gate": "success", "deploy_ok": "success", "fail_gate": "failed", "deploy_blocked": "upstream_failed"}
    assert {t: ti["state"] for t, ti in waiver.items()} == {
        "drift_gate": "failed", "drift_waiver": "success", "deploy_waived": "success"}
    assert states == {"celery_gates": "failed", "celery_waiver": "success"}

    # 5. Every task that ran went through our Celery queue, on the worker.
    ran = [ti for ti in [*gates.values(), *waiver.values()] if ti["state"] in ("success", "failed")]
    assert {ti["queue"] for ti in ran} == {c.queue}
    assert {ti["executor"] or "CeleryExecutor" for ti in ran} == {"CeleryExecutor"}
    worker_log = (c.root / "celery-worker.log").read_text(errors="replace")
    assert worker_log.count("execute_workload") >= len(ran), "the worker did not execute every task"

    # XCom of the gates (pushed from the worker through the execution API).
    status, body = c.request(
        "GET", f"/api/v2/dags/celery_gates/dagRuns/{runs['celery_gates']}/taskInstances/fail_gate/xcomEntries/"
        "aisec_result")
    assert status == 200, body
    result = body["value"] if isinstance(body["value"], dict) else json.loads(body["value"])
    assert result["verdict"] == "fail" and result["findings"][0]["rule"] == "drift.label_shift"

    # 6. The S3 audit trail: one record per gate and the waiver decision, chain intact.
    from airflow_aisec.core.evidence import open_evidence_store

    store = open_evidence_store(c.evidence, s3_client=s3_server.client())
    report = store.verify()
    records = store.read_records()
    assert report.records == len(records) == 5
    by_task = {(r["payload"].get("airflow") or {}).get("task_id"): r for r in records if r["kind"] == "gate_result"}
    assert {t: r["payload"]["verdict"] for t, r in by_task.items()} == {
        "pass_gate": "pass", "fail_gate": "fail", "drift_gate": "fail"}
    assert all(r["payload"]["policy"]["name"] == "celery-run" for r in by_task.values())
    decisions = [r["payload"] for r in records if r["kind"] == "approval"]
    assert len(decisions) == 1 and decisions[0]["decision"] == "approved"
    assert decisions[0]["approver"]["id"] == "approver" and decisions[0]["responded_at"]
    assert [r["kind"] for r in records].count("approval_request") == 1
