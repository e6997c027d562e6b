"""Scale-out: gates under CeleryExecutor with a Redis broker and a PostgreSQL metadata database.

Real processes, as a deployment runs them: ``api-server`` (with the Task Execution API the worker calls),
``scheduler``, ``dag-processor`` and ``celery worker`` (its own AIRFLOW_HOME and working directory, so
nothing local is shared with the other processes but the DAG files). The evidence store is the moto S3
server, the only state the gates share. Vault is the real OpenBao of the ``bao_server`` fixture. The
cluster policy is active in every process. One cluster serves every test of this module.

What the runs prove:
* a passing gate lets its downstream task run, a failing gate fails and blocks its downstream task;
* a DAG that breaks a platform rule never loads (import error in the metadata DB naming rule and task);
* a human-approved waiver works end to end: the run waits, a permitted user answers through the REST
  HITL endpoint, the deploy task runs, the decision is in the audit trail;
* the example pipeline (``dags/secure_ml_training_pipeline.py``: good, tampered and poisoned runs, in
  parallel) ends as under ``dag.test()``: the good run deploys, the tampered one stops at
  ``verify_model_signature`` (``signing.tampered``), the poisoned one at ``validate_source``
  (``source.label_shift``); it loads under the strict policy's platform rules;
* every task ran on the Celery worker (which has its own AIRFLOW_HOME and HOME), and every result is in
  the S3 audit trail, whose chain verifies; nothing else is left in the worker's home, no home holds a
  local audit trail;
* the UI plugin in the api-server shows what the worker recorded: results from PostgreSQL, the evidence
  record and the bias report from S3;
* no Vault value (the KV secret the pipeline reads, the Vault token of the connection) is in the worker's
  task logs, any process log, the XCom and rendered-field tables, or the audit trail; a DAG that logs and
  prints the secret on purpose shows ``***`` in its worker task log (the masker works on the worker).

Local storage: the example pipeline keeps its data, model and serving copy under a local
``AISEC_EXAMPLE_ROOT`` (the DAG works on local paths). Only the worker's tasks touch it, and this test
reads it for its assertions: worker and test run on the same machine, which is acceptable here. With
workers on several hosts that root would have to be shared storage. Policy files are read from the
repository / the test directory by every process, like the DAG files (a deployment ships both with the
image). The gates themselves share nothing else but the configured S3 evidence store (and Vault, and the
XComs through the execution API).

Bounded: each wait has a deadline; on failure the tail of every process log and of the task logs is
printed. Every process is stopped (by its process group id) and the database dropped at the end.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers.cluster import REDIS_BASE, AirflowCluster, clear_queue, create_database, drop_database
from tests.helpers.net import free_port
from tests.helpers.vault import example_pipeline_vault, vault_conn_json

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
PASSWORDS = {"admin": "admin-" + secrets.token_hex(8), "approver": "approver-" + secrets.token_hex(8)}

# Default policy of the gates and platform policy of the cluster. The strict policy's platform rules are
# added to ``platform.rules`` when the file is written, so the example pipeline loads under them too.
POLICY = """
version: 1
name: celery-run
drift: {}
secrets:
  grants:
    - dag_id: celery_secret_masking
      paths: ["ml/training/*"]
      reason: positive control for the masker on the worker
platform:
  rules:
    - id: deploy-needs-drift-gate
      description: a deployed model must pass the drift gate
      dag_tags: [celery-deployment]
      targets: {task_ids: ["deploy*"]}
      require_upstream: [{gate: drift}]
  approvals:
    - rule: drift.feature_drift
      approvers: [approver]
"""

SECRET_PATH = "ml/training/feature-store"

# Positive control for the masker on the worker: a task that logs and prints the secret on purpose.
DAG_MASKING = f'''
import logging

import pendulum
from airflow.sdk import DAG, task
from airflow_aisec.operators.secrets import VaultSecretsGateOperator, vault_secrets

with DAG("celery_secret_masking", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False):
    @task
    def leak_on_purpose():
        with vault_secrets("fetch_secrets") as secrets:
            value = secrets["{SECRET_PATH}"]["token"]
            logging.getLogger("airflow.task").info("LEAK-CHECK logged: %s", value)
            print("LEAK-CHECK printed:", value)
            return len(value)

    VaultSecretsGateOperator(task_id="fetch_secrets", paths={{"{SECRET_PATH}": ["token"]}}) >> leak_on_purpose()
'''

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
         tags=["celery-deployment"]):
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
         tags=["celery-deployment"]):
    @task
    def deploy_waived():
        return _deploy("waived")

    gate = FakeDriftGate(task_id="drift_gate", findings=["drift.feature_drift"])
    waiver = AisecWaiverApprovalOperator(task_id="drift_waiver", gate_task_id="drift_gate")
    gate >> waiver >> deploy_waived()
'''

DAG_REJECTED = GATE + '''
with DAG("celery_ungated", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False,
         tags=["celery-deployment"]):
    @task
    def deploy_unverified():
        return _deploy("never")

    deploy_unverified()
'''


@dataclass
class CeleryCluster(AirflowCluster):
    example_root: Path | None = None
    #: Vault values that must never show up anywhere (the KV secret, the connection's token).
    vault_values: dict[str, str] = field(default_factory=dict)

    @property
    def worker_home(self) -> Path:
        return self.root / "worker-home"

    def task_logs(self, dag_id: str, run_id: str, task_id: str) -> list[Path]:
        """The worker's log files of one task instance (``dag_id=/run_id=/task_id=/attempt=N.log``)."""
        base = self.worker_home / "logs" / f"dag_id={dag_id}"
        return sorted(p for p in base.glob(f"run_id=*/task_id={task_id}/*.log") if p.parent.parent.name[7:] == run_id)


def _configure_vault(bao_server) -> dict[str, str]:
    """What ``docker/openbao/init.sh`` sets up for the pipeline: the KV v2 secret and the Transit key."""
    value = example_pipeline_vault(bao_server.client(), SECRET_PATH)
    return {"kv secret": value, "vault token": bao_server.token}


@pytest.fixture(scope="module")
def celery_cluster(tmp_path_factory, postgres_dsn, redis_url, s3_server, bao_server):
    """A CeleryExecutor deployment on loopback; yields a :class:`CeleryCluster`."""
    import yaml

    root = tmp_path_factory.mktemp("celery-run")
    suffix = secrets.token_hex(4)
    queue = f"aisec-{suffix}"
    database = create_database(f"aisec_celery_{suffix}")
    sa_url = database.sa_url
    port = free_port()

    bucket = f"aisec-celery-{suffix}"
    s3_server.client().create_bucket(Bucket=bucket)
    evidence = f"s3://{bucket}/audit"

    dags = root / "dags"
    dags.mkdir()
    (dags / "celery_gates.py").write_text(textwrap.dedent(DAG_GATES))
    (dags / "celery_waiver.py").write_text(textwrap.dedent(DAG_WAIVER))
    (dags / "celery_ungated.py").write_text(textwrap.dedent(DAG_REJECTED))
    (dags / "celery_secret_masking.py").write_text(textwrap.dedent(DAG_MASKING))
    # The example pipeline, unchanged; its settings come from the environment (see its docstring).
    (dags / "secure_ml_training_pipeline.py").write_text((REPO / "dags" / "secure_ml_training_pipeline.py").read_text())
    example_root = root / "aisec-example"  # the example policy allows data under */aisec-example/landing/
    example_root.mkdir()
    policy = root / "policy.yaml"
    document = yaml.safe_load(POLICY)
    strict = yaml.safe_load((REPO / "policies" / "strict.yaml").read_text())
    document["platform"]["rules"] += strict["platform"]["rules"]
    policy.write_text(yaml.safe_dump(document, sort_keys=False))
    vault_values = _configure_vault(bao_server)
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
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # airflow-aisec: policy for the gates, platform rules for the cluster policy, S3 audit trail.
        "AIRFLOW__AISEC__DEFAULT_POLICY": str(policy),
        "AIRFLOW__AISEC__PLATFORM_POLICY": str(policy),
        "AIRFLOW__AISEC__EVIDENCE_LOCATION": evidence,
        "AIRFLOW__AISEC__EVIDENCE_AWS_CONN_ID": "aws_default",
        # The example pipeline: local data root, the repository's policies, Vault through VaultHook.
        "AISEC_EXAMPLE_ROOT": str(example_root),
        "AISEC_POLICY_DIR": str(REPO / "policies"),
        "AIRFLOW_CONN_VAULT_DEFAULT": vault_conn_json(
            bao_server.addr, schema="secret", password=bao_server.token,
            extra={"auth_type": "token", "kv_engine_version": 2},
        ),
    })
    for var in ("VAULT_ADDR", "VAULT_TOKEN"):  # Vault only through the Airflow connection
        env.pop(var, None)
    cluster = CeleryCluster(root=root, env=env, api=f"http://127.0.0.1:{port}", queue=queue, evidence=evidence,
                            db_dsn=database.dsn, passwords=PASSWORDS, example_root=example_root,
                            vault_values=vault_values)
    try:
        cluster.migrate()
        cluster.start_core()
        # The worker: its own home (Airflow's and the user's) and working directory; it shares only the
        # DAG and policy files, the broker, the execution API, Vault and the S3 audit trail with the rest.
        worker_home = root / "worker-home"
        worker_home.mkdir()
        # Only the worker holds the key that seals the secrets hand-off in XCom (as in docker/compose.yaml).
        worker_env = {**env, "AIRFLOW_HOME": str(worker_home), "HOME": str(worker_home),
                      "AIRFLOW__AISEC__HANDOFF_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode()}
        cluster.start_celery_worker(f"aisec-worker-{suffix}@%h", env=worker_env, cwd=worker_home)
        cluster.wait_for_api(timeout=300)
        yield cluster
    except BaseException:
        print(cluster.dump_logs(), file=sys.stderr)
        raise
    finally:
        cluster.stop()
        clear_queue(11, queue)
        drop_database(database.name)


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

    [ungated] = c.wait("DAG parsing", parsed, timeout=300)
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

    c.wait("the waiver to ask for input", asking, timeout=300)
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

    states = c.wait("both runs to finish", finished, timeout=600, interval=2)
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

    # 6. The S3 audit trail: one record per gate and the waiver decision, chain intact. (The trail is
    # shared with the other tests of this module: count only these two DAGs' records.)
    from airflow_aisec.core.evidence import open_evidence_store

    store = open_evidence_store(c.evidence, s3_client=s3_server.client())
    report = store.verify()
    records = [r for r in store.read_records()
               if (r["payload"].get("airflow") or {}).get("dag_id") in ("celery_gates", "celery_waiver")]
    assert report.records >= len(records) == 5
    by_task = {(r["payload"].get("airflow") or {}).get("task_id"): r for r in records if r["kind"] == "gate_result"}
    assert {t: r["payload"]["verdict"] for t, r in by_task.items()} == {
        "pass_gate": "pass", "fail_gate": "fail", "drift_gate": "fail"}
    assert all(r["payload"]["policy"]["name"] == "celery-run" for r in by_task.values())
    decisions = [r["payload"] for r in records if r["kind"] == "approval"]
    assert len(decisions) == 1 and decisions[0]["decision"] == "approved"
    assert decisions[0]["approver"]["id"] == "approver" and decisions[0]["responded_at"]
    assert [r["kind"] for r in records].count("approval_request") == 1


# ------------------------------------------------------------------------------------------
# The example pipeline (dags/secure_ml_training_pipeline.py) on the Celery worker
# ------------------------------------------------------------------------------------------
PIPELINE = "secure_ml_training_pipeline"
TAMPERED = f"{PIPELINE}_tampered"
POISONED = f"{PIPELINE}_poisoned"
MASKING = "celery_secret_masking"
PIPELINE_GATES = ["validate_source", "classify_pii", "redact_pii", "fetch_secrets", "check_bias", "scan_model",
                  "sign_model", "verify_model_signature"]


@dataclass
class PipelineRuns:
    run_ids: dict[str, str]
    states: dict[str, str]
    tis: dict[str, dict[str, dict]]
    seconds: float

    def task_states(self, dag_id: str) -> dict[str, str]:
        return {t: ti["state"] for t, ti in self.tis[dag_id].items()}


@pytest.fixture(scope="module")
def pipeline_runs(celery_cluster) -> PipelineRuns:
    """The three example DAGs and the masking control, run (in parallel) to the end on the worker."""
    c = celery_cluster
    dag_ids = [PIPELINE, TAMPERED, POISONED, MASKING]
    try:
        def parsed():
            if not all(c.request("GET", f"/api/v2/dags/{d}")[0] == 200 for d in dag_ids):
                _, body = c.request("GET", "/api/v2/importErrors")
                errors = [e for e in body.get("import_errors", [])
                          if e["filename"].endswith(("secure_ml_training_pipeline.py", "celery_secret_masking.py"))]
                assert not errors, errors  # e.g. a platform rule of the strict policy rejecting the example
                return False
            return True

        c.wait("the example DAGs to be parsed", parsed, timeout=300)
        t0 = time.monotonic()
        # The good run first: its ingest lands the shared reference dataset once (ingest checks for it and
        # writes it in place, so two first runs at once could race on it); then the rest in parallel.
        run_ids = {PIPELINE: c.trigger(PIPELINE)}

        def ingested():
            state = c.task_states(PIPELINE, run_ids[PIPELINE]).get("ingest", {}).get("state")
            assert state not in ("failed", "upstream_failed"), state
            return state == "success"

        c.wait("the good run's ingest", ingested, timeout=300)
        run_ids.update({d: c.trigger(d) for d in dag_ids if d != PIPELINE})

        def finished():
            states = {d: c.run_state(d, r) for d, r in run_ids.items()}
            return states if all(s in TERMINAL for s in states.values()) else None

        states = c.wait("the example runs to finish", finished, timeout=1200, interval=3)
        seconds = time.monotonic() - t0
        print(f"\nexample pipeline runs under Celery: {seconds:.0f}s for {len(dag_ids)} runs", file=sys.stderr)
        return PipelineRuns(run_ids=run_ids, states=states, seconds=seconds,
                            tis={d: c.task_states(d, r) for d, r in run_ids.items()})
    except BaseException:
        print(c.dump_logs(), file=sys.stderr)
        raise


def test_example_pipeline_runs_end_as_under_dag_test(celery_cluster, pipeline_runs):
    c, runs = celery_cluster, pipeline_runs
    assert runs.states == {PIPELINE: "success", TAMPERED: "failed", POISONED: "failed", MASKING: "success"}, runs.tis

    # The good run: every task succeeded, every gate passed (or warned), the model was deployed.
    assert set(runs.task_states(PIPELINE).values()) == {"success"}, runs.task_states(PIPELINE)
    for gate in PIPELINE_GATES:
        assert c.xcom(PIPELINE, runs.run_ids[PIPELINE], gate)["verdict"] in ("pass", "warn"), gate
    served = c.example_root / "serving" / PIPELINE
    assert c.xcom(PIPELINE, runs.run_ids[PIPELINE], "deploy", "return_value") == str(served)
    assert (served / "model" / "model.json").is_file() and (served / "model.sig").is_file()

    # Tampered: signed, modified, stopped at the verification gate; deploy never ran.
    tampered = runs.task_states(TAMPERED)
    assert tampered["sign_model"] == tampered["tamper_with_model"] == "success"
    assert tampered["verify_model_signature"] == "failed"
    assert tampered["deploy"] == "upstream_failed"
    result = c.xcom(TAMPERED, runs.run_ids[TAMPERED], "verify_model_signature")
    assert result["verdict"] == "fail"
    assert {f["rule"] for f in result["findings"]} == {"signing.tampered"}

    # Poisoned: stopped at source validation on the label shift; nothing downstream ran.
    poisoned = runs.task_states(POISONED)
    assert poisoned["ingest"] == "success" and poisoned["validate_source"] == "failed"
    assert {s for t, s in poisoned.items() if t not in ("ingest", "validate_source")} == {"upstream_failed"}
    result = c.xcom(POISONED, runs.run_ids[POISONED], "validate_source")
    assert result["verdict"] == "fail" and "source.label_shift" in {f["rule"] for f in result["findings"]}

    # Deploy ran in the good run only.
    deployed = {d for d in (PIPELINE, TAMPERED, POISONED) if runs.task_states(d)["deploy"] == "success"}
    assert deployed == {PIPELINE}
    assert sorted(p.name for p in (c.example_root / "serving").iterdir()) == [PIPELINE]


def test_example_pipeline_ran_on_the_worker_with_only_the_s3_evidence_store(celery_cluster, pipeline_runs):
    c, runs = celery_cluster, pipeline_runs
    ran = [(d, ti) for d, tis in runs.tis.items() for ti in tis.values() if ti["state"] in ("success", "failed")]
    assert {ti["queue"] for _, ti in ran} == {c.queue}
    assert {ti["executor"] or "CeleryExecutor" for _, ti in ran} == {"CeleryExecutor"}
    # Each task's log was written by the worker, under the worker's own home, and nowhere else.
    for dag_id, ti in ran:
        assert c.task_logs(dag_id, runs.run_ids[dag_id], ti["task_id"]), (dag_id, ti["task_id"])
    assert not list((c.root / "home" / "logs").glob("dag_id=*")), "task logs outside the worker's home"
    # No gate fell back to a local audit trail ($AIRFLOW_HOME/aisec/evidence) or left any other state in
    # the worker's home (also its $HOME: no caches, no token files) or the other processes' home.
    assert sorted(p.name for p in c.worker_home.iterdir()) == ["airflow.cfg", "logs"]
    assert not (c.root / "home" / "aisec").exists()


def test_example_pipeline_results_are_in_the_s3_audit_trail(celery_cluster, pipeline_runs, s3_server):
    from airflow_aisec.core.evidence import open_evidence_store

    c, runs = celery_cluster, pipeline_runs
    store = open_evidence_store(c.evidence, s3_client=s3_server.client())
    report = store.verify()  # the whole chain, written concurrently by parallel tasks of four runs
    records = store.read_records()
    assert report.records == len(records)

    def gate_results(dag_id: str) -> dict[str, dict]:
        out = {}
        for r in records:
            air = r["payload"].get("airflow") or {}
            if r["kind"] == "gate_result" and (air.get("dag_id"), air.get("run_id")) == (dag_id, runs.run_ids[dag_id]):
                assert air["task_id"] not in out, f"two results for {dag_id}.{air['task_id']}"
                out[air["task_id"]] = r["payload"]
        return out

    good = gate_results(PIPELINE)
    assert set(good) == set(PIPELINE_GATES)
    assert {t: p["verdict"] in ("pass", "warn") for t, p in good.items()} == dict.fromkeys(PIPELINE_GATES, True)
    assert good["validate_source"]["policy"]["name"] == "example-pipeline-source"
    assert {p["policy"]["name"] for t, p in good.items() if t != "validate_source"} == {"strict"}

    tampered = gate_results(TAMPERED)
    assert set(tampered) == set(PIPELINE_GATES)
    assert tampered["verify_model_signature"]["verdict"] == "fail"
    assert {f["rule"] for f in tampered["verify_model_signature"]["findings"]} == {"signing.tampered"}
    assert {t for t, p in tampered.items() if p["verdict"] not in ("pass", "warn")} == {"verify_model_signature"}

    poisoned = gate_results(POISONED)
    assert set(poisoned) == {"validate_source"}
    assert poisoned["validate_source"]["verdict"] == "fail"
    assert "source.label_shift" in {f["rule"] for f in poisoned["validate_source"]["findings"]}

    # Each record matches the result the gate pushed to XCom (the evidence anchor in XCom names it).
    for dag_id, results in ((PIPELINE, good), (TAMPERED, tampered), (POISONED, poisoned)):
        for task_id, payload in results.items():
            anchor = c.xcom(dag_id, runs.run_ids[dag_id], task_id, "aisec_evidence")
            assert anchor["location"] == c.evidence
            raw = store.read_record(anchor["name"])
            assert raw is not None and hashlib.sha256(raw).hexdigest() == anchor["sha256"]
            assert json.loads(raw)["payload"] == payload

    # The train tasks unwrapped the secret handed over by the gate: recorded, with accessors only.
    unwrapped = {(r["payload"]["airflow"]["dag_id"], r["payload"]["airflow"]["task_id"])
                 for r in records if r["kind"] == "secret_unwrapped"}
    assert {(PIPELINE, "train"), (TAMPERED, "train"), (MASKING, "leak_on_purpose")} <= unwrapped


def test_no_vault_value_in_worker_task_logs_xcom_or_audit_trail(celery_cluster, pipeline_runs, s3_server):
    c, runs = celery_cluster, pipeline_runs
    values = c.vault_values
    assert all(len(v) >= 8 for v in values.values())

    def hits(text: str) -> list[str]:
        return [name for name, value in values.items() if value in text]

    # 1. The worker's task logs (every attempt of every task) and every process's own log.
    task_logs = sorted((c.worker_home / "logs").rglob("*.log"))
    ran = sum(ti["state"] in ("success", "failed") for tis in runs.tis.values() for ti in tis.values())
    assert len(task_logs) >= ran  # one per attempt; tasks that never ran (upstream_failed) have none
    leaks = {str(p.relative_to(c.root)): hits(p.read_text(errors="replace")) for p in task_logs}
    leaks.update({p.name: hits(p.read_text(errors="replace")) for p in c.root.glob("*.log")})
    assert {k: v for k, v in leaks.items() if v} == {}

    # 2. Positive control: the task that logged and printed the secret on purpose shows the mask instead.
    [log_file] = c.task_logs(MASKING, runs.run_ids[MASKING], "leak_on_purpose")
    text = log_file.read_text(errors="replace")
    assert "LEAK-CHECK logged: ***" in text, text[-3000:]
    assert "LEAK-CHECK printed: ***" in text, text[-3000:]
    assert c.xcom(MASKING, runs.run_ids[MASKING], "leak_on_purpose", "return_value") == len(values["kv secret"])

    # 3. XComs and rendered template fields, straight from the metadata database.
    import psycopg2

    with psycopg2.connect(c.db_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT dag_id, task_id, key, value::text FROM xcom")
        xcoms = cur.fetchall()
        cur.execute("SELECT dag_id, task_id, rendered_fields::text FROM rendered_task_instance_fields")
        rendered = cur.fetchall()
    assert {(d, t) for d, t, k, _ in xcoms if k == "aisec_secret_handles"} >= {(PIPELINE, "fetch_secrets")}
    assert [(d, t, k) for d, t, k, v in xcoms if hits(v or "")] == []
    assert [(d, t) for d, t, v in rendered if hits(v or "")] == []

    # 4. Every object of the S3 audit trail, byte for byte.
    from airflow_aisec.core.io.storage import parse_s3_uri

    loc = parse_s3_uri(c.evidence)
    s3 = s3_server.client()
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket)
            for o in page.get("Contents", [])]
    assert len(keys) > 20
    trail = {k: s3.get_object(Bucket=loc.bucket, Key=k)["Body"].read().decode() for k in keys}
    assert {k: hits(v) for k, v in trail.items() if hits(v)} == {}


def test_ui_plugin_on_the_api_server_shows_what_the_worker_recorded(celery_cluster, pipeline_runs):
    """The api-server (another process) serves the worker's results from PostgreSQL and S3 only."""
    c, runs = celery_cluster, pipeline_runs
    status, view = c.request("GET", f"/aisec/api/runs/{TAMPERED}/{runs.run_ids[TAMPERED]}")
    assert status == 200, view
    verdicts = {g["task_id"]: g["verdict"] for g in view["gates"]}
    assert set(verdicts) == set(PIPELINE_GATES), verdicts
    assert verdicts.pop("verify_model_signature") == "fail"
    assert set(verdicts.values()) <= {"pass", "warn"}, verdicts

    # The evidence record behind the failed gate: read from S3 by the api-server, checked against the XCom.
    status, evidence = c.request(
        "GET", f"/aisec/runs/{TAMPERED}/{runs.run_ids[TAMPERED]}/tasks/verify_model_signature/evidence")
    assert status == 200, evidence
    assert evidence["checks"]["verified"] is True, evidence["checks"]
    assert evidence["record"]["payload"]["findings"][0]["rule"] == "signing.tampered"

    # The bias gate's HTML report, written by the worker next to the S3 audit trail.
    good = runs.run_ids[PIPELINE]
    status, view = c.request("GET", f"/aisec/api/runs/{PIPELINE}/{good}")
    [bias] = [g for g in view["gates"] if g["task_id"] == "check_bias"]
    assert bias["result"]["reports"] and bias["result"]["reports"][0]["uri"].startswith(c.evidence + "/reports/")
    status, ctype, body = c.get_raw(f"/aisec/runs/{PIPELINE}/{good}/tasks/check_bias/reports/0")
    assert status == 200 and ctype.startswith("text/html") and b"<html" in body.lower()

    # The overview counts in SQL on PostgreSQL's JSON (the dag.test() runs use SQLite).
    status, overview = c.request("GET", f"/aisec/api/overview?dag_id={POISONED}")
    assert status == 200, overview
    assert overview["counts"]["fail"] == 1 and sum(overview["counts"].values()) == 1, overview["counts"]
    status, overview = c.request("GET", "/aisec/api/overview?verdict=fail&limit=500")
    assert status == 200, overview
    failed = {(r["dag_id"], r["task_id"]) for r in overview["results"]}
    assert {(TAMPERED, "verify_model_signature"), (POISONED, "validate_source")} <= failed
