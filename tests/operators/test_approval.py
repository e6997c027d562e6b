"""Human-approved waivers (AisecWaiverApprovalOperator): real DAG runs with dag.test(), answered through the
real HITL REST endpoint of Airflow's API app (in-process, real SimpleAuthManager login), evidence in a real
local audit trail. The point of every test: a violation never turns into a silent pass.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from airflow_aisec.core.evidence import open_evidence_store
from tests.helpers.env import patched_environ

pytestmark = pytest.mark.integration

PASSWORDS = {"admin": "admin-pw", "approver": "approver-pw", "intruder": "intruder-pw"}

GATE_MODULE = '''
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow_aisec.core.result import CheckOutcome, Finding
from airflow_aisec.operators.approval import AisecWaiverApprovalOperator
from airflow_aisec.operators.base import AisecGateOperator


class FakeDriftGate(AisecGateOperator):
    gate = "drift"

    def __init__(self, *, findings=(), boom=False, doctor=False, **kwargs):
        super().__init__(**kwargs)
        self.findings = list(findings)
        self.boom = boom
        self.doctor = doctor

    def check(self, loaded, context):
        if self.boom:
            raise RuntimeError("internal failure")
        return CheckOutcome(findings=[Finding(rule=r, severity=s, message=f"{r} over threshold", count=3)
                                      for r, s in self.findings])

    def execute(self, context):
        try:
            return super().execute(context)
        except Exception:
            if self.doctor:  # an attacker rewrites the XCom result to "pass" after the gate failed
                from airflow_aisec.core.result import XCOM_KEY
                doc = context["ti"].xcom_pull(task_ids=self.task_id, key=XCOM_KEY)
                doc["verdict"] = "pass"
                doc["findings"] = []
                context["ti"].xcom_push(key=XCOM_KEY, value=doc)
            raise
'''


def dag_source(dag_id: str, policy: Path, evidence: Path, findings, **gate_kw) -> str:
    extra = "".join(f", {k}={v!r}" for k, v in gate_kw.items())
    return GATE_MODULE + f'''

with DAG({dag_id!r}, schedule=None, catchup=False, tags=["model-deployment"]):
    gate = FakeDriftGate(task_id="drift_gate", policy={str(policy)!r}, evidence_location={str(evidence)!r},
                         findings={list(findings)!r}{extra})
    waiver = AisecWaiverApprovalOperator(task_id="drift_waiver", gate_task_id="drift_gate",
                                         body="Model release {{{{ dag_run.run_id }}}}")
    deploy = EmptyOperator(task_id="deploy")
    gate >> waiver >> deploy
'''


POLICY = """
version: 1
name: waiver-test
drift: {}
platform:
  approvals:
    - rule: drift.feature_drift
      scope: {dag_id: "waiver_*", task_id: drift_gate}
      approvers: [approver]
      reason: drift on a feature the model does not use
    - rule: drift.critical_thing
"""


@pytest.fixture(scope="module")
def hitl_api(airflow_db, tmp_path_factory):
    """The real Airflow API app (core routes + SimpleAuthManager), in-process, with known users."""
    pw_file = tmp_path_factory.mktemp("auth") / "passwords.json"
    pw_file.write_text(json.dumps(PASSWORDS))
    env = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,approver:op,intruder:op",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(pw_file),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
    }
    with patched_environ(env):
        from airflow.api_fastapi.app import create_app, purge_cached_app
        from fastapi.testclient import TestClient

        purge_cached_app()
        app = create_app(apps="core")
        with TestClient(app) as client:
            yield client
        purge_cached_app()


def token(client, user: str) -> str:
    resp = client.post("/auth/token", json={"username": user, "password": PASSWORDS[user]})
    assert resp.status_code == 201, resp.text
    return resp.json()["access_token"]


def _awaiting(dag_id: str, task_id: str):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as s:
        ti = (s.query(TaskInstance)
              .filter_by(dag_id=dag_id, task_id=task_id, state=TaskInstanceState.AWAITING_INPUT).first())
        return (ti.run_id, ti.map_index) if ti else None


def _fail_waiting(dag_id: str, task_id: str) -> None:
    """Unblock dag.test() when the responder itself broke (it would otherwise wait forever)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as s:
        for ti in s.query(TaskInstance).filter_by(dag_id=dag_id, task_id=task_id).all():
            if ti.state == TaskInstanceState.AWAITING_INPUT:
                ti.state = TaskInstanceState.FAILED


def run_with_responder(run_dag, source, dag_id, respond, *, task_id="drift_waiver", wait=60.0):
    """Run the DAG with dag.test(); when the waiver task waits for input, call ``respond(run_id)``."""
    box: dict = {}

    def worker():
        deadline = time.monotonic() + wait
        try:
            while time.monotonic() < deadline:
                found = _awaiting(dag_id, task_id)
                if found:
                    box["asked"] = True
                    respond(found[0])
                    return
                if box.get("done"):
                    return
                time.sleep(0.3)
            raise TimeoutError("waiver task never asked for input")
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc
            _fail_waiting(dag_id, task_id)

    t = threading.Thread(target=worker, daemon=True)
    t.start()
    try:
        outcome = run_dag(source, dag_id)
    finally:
        box["done"] = True
        t.join(timeout=30)
    if "error" in box and not isinstance(box["error"], TimeoutError):
        raise box["error"]
    return outcome, box


def answer(client, user, dag_id, run_id, option, task_id="drift_waiver"):
    return client.patch(
        f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
        json={"chosen_options": [option], "params_input": {}},
        headers={"Authorization": f"Bearer {token(client, user)}"},
    )


@pytest.fixture
def setup(tmp_path, monkeypatch):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    evidence = tmp_path / "evidence"
    # The waiver trusts (and records in) only the central trail: make it this test's trail.
    monkeypatch.setenv("AIRFLOW__AISEC__EVIDENCE_LOCATION", str(evidence))
    return policy, evidence


def records(evidence: Path) -> list[dict]:
    store = open_evidence_store(evidence)
    store.verify()  # the audit trail stays a valid hash chain
    return store.read_records()


def test_approved_waiver_lets_deploy_run_and_is_recorded(run_dag, hitl_api, setup):
    policy, evidence = setup
    dag_id = "waiver_approve"
    src = dag_source(dag_id, policy, evidence, [("drift.feature_drift", "high")])
    responses = {}

    def respond(run_id):
        # An authenticated user who is not an approver is refused by the API.
        responses["intruder"] = answer(hitl_api, "intruder", dag_id, run_id, "Approve").status_code
        responses["approver"] = answer(hitl_api, "approver", dag_id, run_id, "Approve").status_code

    outcome, box = run_with_responder(run_dag, src, dag_id, respond)
    assert box.get("asked"), "the waiver never asked a person"
    assert responses == {"intruder": 403, "approver": 200}
    assert outcome.task_states == {"drift_gate": "failed", "drift_waiver": "success", "deploy": "success"}
    assert outcome.state == "success"
    # The gate's own verdict stays "fail": the waiver is visible, not a rewrite.
    assert outcome.xcom("drift_gate")["verdict"] == "fail"
    decision = outcome.xcom("drift_waiver", "aisec_approval")
    assert decision["decision"] == "approved" and decision["approver"] == "approver"

    recs = records(evidence)
    assert [r["kind"] for r in recs] == ["gate_result", "approval_request", "approval"]
    gate_rec, request, approval = recs
    assert gate_rec["payload"]["verdict"] == "fail"
    assert request["payload"]["decision"] == "requested"
    assert request["payload"]["approvers"] == ["approver"]
    p = approval["payload"]
    assert p["decision"] == "approved"
    assert p["approver"] == {"id": "approver", "name": "approver"}
    assert p["responded_at"] and p["responded_at"].startswith("20")
    assert p["rules"] == ["drift.feature_drift"]
    assert p["gate_evidence"]["seq"] == gate_rec["seq"]
    import hashlib

    raw = (evidence / gate_rec_name(gate_rec)).read_bytes()
    assert p["gate_evidence"]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert p["policy"]["name"] == "waiver-test"
    assert p["airflow"]["dag_id"] == dag_id and p["airflow"]["task_id"] == "drift_waiver"


def gate_rec_name(rec: dict) -> str:
    return f"{rec['seq']:012d}.json"


def test_rejected_waiver_fails_and_blocks_deploy(run_dag, hitl_api, setup):
    policy, evidence = setup
    dag_id = "waiver_reject"
    src = dag_source(dag_id, policy, evidence, [("drift.feature_drift", "high")])
    codes = []
    outcome, box = run_with_responder(
        run_dag, src, dag_id, lambda run_id: codes.append(answer(hitl_api, "approver", dag_id, run_id,
                                                                   "Reject").status_code))
    assert box.get("asked") and codes == [200]
    assert outcome.state == "failed"
    assert outcome.task_states == {"drift_gate": "failed", "drift_waiver": "failed", "deploy": "upstream_failed"}
    recs = records(evidence)
    assert [r["kind"] for r in recs] == ["gate_result", "approval_request", "approval"]
    assert recs[-1]["payload"]["decision"] == "rejected"
    assert recs[-1]["payload"]["approver"]["id"] == "approver"


@pytest.mark.parametrize(
    ("dag_id", "findings", "gate_kw", "reason"),
    [
        # A rule nobody listed under platform.approvals.
        ("waiver_unlisted", [("drift.feature_drift", "high"), ("drift.label_shift", "high")], {},
         "drift.label_shift (not listed under platform.approvals)"),
        # Listed, but critical: never approvable.
        ("waiver_critical", [("drift.critical_thing", "critical")], {},
         "drift.critical_thing (critical findings are never approvable)"),
        # The gate crashed: errors are never approvable.
        ("waiver_error", [], {"boom": True}, "the gate ended in 'error'"),
        # XCom rewritten to "pass" after the gate failed: it no longer matches the audit trail.
        ("waiver_doctored", [("drift.feature_drift", "high")], {"doctor": True},
         "differs from its evidence record"),
        # The waiver's scope names the DAG id pattern waiver_*: another DAG is out of scope.
        ("other_scope", [("drift.feature_drift", "high")], {},
         "drift.feature_drift (not listed under platform.approvals)"),
    ],
)
def test_not_approvable_fails_without_asking(run_dag, setup, dag_id, findings, gate_kw, reason):
    policy, evidence = setup
    outcome = run_dag(dag_source(dag_id, policy, evidence, findings, **gate_kw), dag_id)
    assert outcome.state == "failed"
    assert outcome.task_states["drift_waiver"] == "failed"
    assert outcome.task_states["deploy"] == "upstream_failed"
    kinds = [r["kind"] for r in records(evidence)]
    assert kinds == ["gate_result"], kinds  # no request was ever made
    decision = outcome.xcom("drift_waiver", "aisec_approval")
    assert decision["decision"] == "refused"
    assert reason in decision["reason"], decision["reason"]


def test_passing_gate_needs_no_approval(run_dag, setup):
    policy, evidence = setup
    dag_id = "waiver_pass"
    outcome = run_dag(dag_source(dag_id, policy, evidence, []), dag_id)
    assert outcome.state == "success"
    assert outcome.task_states == {"drift_gate": "success", "drift_waiver": "success", "deploy": "success"}
    assert outcome.xcom("drift_waiver", "aisec_approval") == {"decision": "not_needed"}
    assert [r["kind"] for r in records(evidence)] == ["gate_result"]


def test_policy_changed_while_gate_failed_is_refused(run_dag, setup, tmp_path):
    policy, evidence = setup
    dag_id = "waiver_changed"
    src = dag_source(dag_id, policy, evidence, [("drift.feature_drift", "high")])
    # The gate's result names the policy digest it ran with; edit the file between gate and waiver
    # by making the gate itself append a route for everything after it has run.
    src = src.replace(
        "    def execute(self, context):\n        try:",
        "    def execute(self, context):\n"
        f"        import pathlib; p = pathlib.Path({str(policy)!r})\n"
        "        try:",
    ).replace("            raise\n", "            p.write_text(p.read_text() + '    - rule: drift.label_shift\\n')\n"
                                  "            raise\n")
    outcome = run_dag(src, dag_id)
    assert outcome.task_states["drift_waiver"] == "failed"
    assert outcome.task_states["deploy"] == "upstream_failed"
    assert [r["kind"] for r in records(evidence)] == ["gate_result"]
    assert "policy file changed since the gate ran" in outcome.xcom("drift_waiver", "aisec_approval")["reason"]


# ------------------------------------------------------------------------------------------------
# Decisions that a live HITL answer cannot easily produce here (timeout sweep, default answers,
# all-admins auth mode): execute_complete() driven directly with a stub task instance over a real
# gate result in a real audit trail.
# ------------------------------------------------------------------------------------------------
class StubTI:
    def __init__(self, xcoms: dict, task_id: str = "drift_waiver"):
        self.xcoms = dict(xcoms)
        self.pushed: dict = {}
        self.dag_id, self.run_id, self.task_id, self.try_number, self.map_index = (
            "waiver_stub", "manual__1", task_id, 1, -1)

    def xcom_pull(self, task_ids=None, key="return_value", **_):
        return self.xcoms.get((task_ids, key))

    def xcom_push(self, key, value):
        self.pushed[key] = value


@pytest.fixture
def failed_gate(setup):
    """A real 'fail' result of the drift gate recorded in a real audit trail, as the gate leaves it."""
    from airflow_aisec.core.gate import run_check
    from airflow_aisec.core.policy import load_policy
    from airflow_aisec.core.result import AirflowRef, CheckOutcome, Finding

    policy, evidence = setup
    loaded = load_policy(policy)
    run = run_check("drift", loaded, lambda: CheckOutcome(findings=[
        Finding(rule="drift.feature_drift", message="feature drift over threshold", count=2)]),
        airflow=AirflowRef(dag_id="waiver_stub", run_id="manual__1", task_id="drift_gate"))
    ref = open_evidence_store(evidence).append(run.result.to_dict())
    return {("drift_gate", "aisec_result"): run.result.to_dict(), ("drift_gate", "aisec_evidence"): ref.to_dict()}


def _waiver(evidence):
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    from airflow_aisec.operators.approval import AisecWaiverApprovalOperator

    with DAG("waiver_stub", schedule=None):
        gate = EmptyOperator(task_id="drift_gate")
        waiver = AisecWaiverApprovalOperator(task_id="drift_waiver", gate_task_id="drift_gate",
                                             evidence_location=str(evidence))
        gate >> waiver
    return waiver


def test_evidence_reference_to_another_trail_is_refused(failed_gate, setup, tmp_path):
    """XCom is writable by tasks: a reference pointing at a forged trail must not be followed."""
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_aisec.core.evidence import open_evidence_store as open_store

    _, evidence = setup
    forged = dict(failed_gate)
    result = forged[("drift_gate", "aisec_result")]
    ref = open_store(tmp_path / "forged-trail").append(result)
    forged[("drift_gate", "aisec_evidence")] = ref.to_dict()
    ti = StubTI(forged)
    with pytest.raises(AirflowFailException, match="outside the configured audit trail"):
        _waiver(evidence)._verified_result({"ti": ti, "task_instance": ti})


def test_evidence_record_of_another_run_is_refused(failed_gate, setup):
    from airflow.sdk.exceptions import AirflowFailException

    _, evidence = setup
    ti = StubTI(failed_gate)
    ti.run_id = "manual__2"  # the record (and XCom) were copied from run manual__1
    with pytest.raises(AirflowFailException, match="another task or run"):
        _waiver(evidence)._verified_result({"ti": ti, "task_instance": ti})


@pytest.mark.parametrize(
    ("event", "decision", "message"),
    [
        ({"error": "timeout passed", "error_type": "timeout"}, "timeout", r"no decision \(timeout\)"),
        # A default answer applied by the scheduler has no responding user: never an approval.
        ({"chosen_options": ["Approve"], "params_input": {}, "responded_at": None, "responded_by_user": None},
         "refused", "without a responding user"),
        # With simple_auth_manager_all_admins the API lets anyone answer; the operator still checks.
        ({"chosen_options": ["Approve"], "params_input": {}, "responded_at": None,
          "responded_by_user": {"id": "intruder", "name": "intruder"}}, "refused", "is not an approver"),
    ],
)
def test_decisions_that_never_approve(failed_gate, setup, event, decision, message):
    from airflow.sdk.exceptions import AirflowFailException

    _, evidence = setup
    waiver = _waiver(evidence)
    ti = StubTI(failed_gate)
    with pytest.raises(AirflowFailException, match=message):
        waiver.execute_complete({"ti": ti, "task_instance": ti}, event)
    last = records(evidence)[-1]
    assert last["kind"] == "approval" and last["payload"]["decision"] == decision


def test_approval_without_audit_trail_does_not_count(failed_gate, setup):
    """If the decision cannot be written to the audit trail, the approval fails (retryable), never passes."""
    import datetime as dt
    import os

    from airflow.sdk.exceptions import AirflowException

    _, evidence = setup
    waiver = _waiver(evidence)
    ti = StubTI(failed_gate)
    os.chmod(evidence, 0o500)
    try:
        if os.access(evidence, os.W_OK):  # running as root: permissions do not stop us
            (evidence / ".lock").unlink(missing_ok=True)
            os.chmod(evidence, 0o700)
            (evidence / ".lock").mkdir()  # an unopenable lock file breaks appends for root too
        with pytest.raises(AirflowException, match="could not record the approved decision"):
            waiver.execute_complete({"ti": ti, "task_instance": ti}, {
                "chosen_options": ["Approve"], "params_input": {},
                "responded_at": dt.datetime.now(dt.UTC),
                "responded_by_user": {"id": "approver", "name": "approver"}})
    finally:
        os.chmod(evidence, 0o700)
    assert "aisec_approval" not in ti.pushed


@pytest.mark.parametrize("arg", ["fail_on_reject", "defaults", "assigned_users", "trigger_rule", "options"])
def test_fixed_arguments_are_refused(arg):
    from airflow_aisec.operators.approval import AisecWaiverApprovalOperator

    with pytest.raises(ValueError, match=arg):
        AisecWaiverApprovalOperator(task_id="w", gate_task_id="g", **{arg: None})


def test_defaults_are_fail_closed(tmp_path):
    waiver = _waiver(tmp_path / "evidence")
    assert waiver.fail_on_reject is True
    assert waiver.defaults is None  # no answer is applied on timeout
    assert waiver.trigger_rule == "all_done"
    assert waiver.options == ["Approve", "Reject"]
