"""core/verdict.py: the one resolution of enforcement, waivers and human approvals."""

from __future__ import annotations

import datetime as dt

from airflow_aisec.core.gates.platform import DagSpec, TaskSpec, evaluate_dag
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.core.result import CheckOutcome, Finding, utcnow
from airflow_aisec.core.verdict import (
    Approval,
    approval_refusal,
    assess_approval,
    evaluate,
    nothing_to_approve,
    resolve,
    verdict_of,
)

POLICY = parse_policy(b"""
name: verdict-test
enforcement: enforce
rules:
  platform.*: warn
  platform.deploy-strict: enforce
  drift.ks: audit
waivers:
  - rule: platform.deploy-*
    scope: {dag_id: "legacy_*", task_id: "deploy"}
    reason: "TICKET-2"
    approved_by: sec@example.com
    expires: 2030-01-31
drift: {enforcement: warn}
platform:
  rules:
    - {id: deploy-strict, dag_tags: ["*"], targets: {task_ids: [deploy]}, require_upstream: [{gate: drift}]}
  approvals:
    - {rule: drift.psi, scope: {dag_id: "*", task_id: drift_gate}, approvers: [alice, bob]}
    - {rule: drift.ks, scope: {dag_id: "*", task_id: drift_gate}, approvers: [bob]}
    - {rule: "drift.open_*", approvers: []}
""", source="inline")
DAY = dt.date(2030, 1, 1)


def test_resolve_order_exact_rule_then_glob_then_section_then_default():
    policy, section = POLICY.policy, POLICY.section("drift")
    kw = {"dag_id": "d", "task_id": "t", "today": DAY}
    assert resolve(policy, section, "drift.ks", **kw).enforcement == "audit"  # exact rule
    assert resolve(policy, section, "drift.psi", **kw).enforcement == "warn"  # section
    assert resolve(policy, None, "drift.psi", **kw).enforcement == "enforce"  # policy default
    assert resolve(policy, None, "platform.deploy-strict", **kw).enforcement == "enforce"
    assert resolve(policy, None, "platform.other", **kw).enforcement == "warn"  # glob
    assert resolve(policy, section, "drift.ks", preset="enforce", **kw).enforcement == "enforce"  # check's own


def test_waivers_match_scope_and_expiry_and_can_be_refused():
    policy = POLICY.policy
    hit = resolve(policy, None, "platform.deploy-strict", dag_id="legacy_etl", task_id="deploy", today=DAY)
    assert hit.waived and not hit.blocking and hit.waiver.approved_by == "sec@example.com"
    assert not resolve(policy, None, "platform.deploy-strict", dag_id="etl", task_id="deploy", today=DAY).waived
    assert not resolve(policy, None, "platform.deploy-strict", dag_id="legacy_etl", task_id="deploy",
                       today=dt.date(2030, 2, 1)).waived
    unwaivable = resolve(policy, None, "platform.deploy-strict", dag_id="legacy_etl", task_id="deploy",
                         today=DAY, waivable=False)
    assert not unwaivable.waived and unwaivable.blocking


def test_gates_and_platform_rules_resolve_the_same_way():
    """The platform gate uses the same resolution as every gate: same rule, scope and day, same outcome."""
    from airflow_aisec.core.result import AirflowRef

    for dag_id in ("legacy_etl", "etl"):
        spec = DagSpec.build(dag_id, [TaskSpec("deploy")], tags=["x"])
        [violation] = evaluate_dag(POLICY, spec, today=DAY)
        gate = evaluate("platform", POLICY, CheckOutcome(findings=[Finding(rule=violation.rule, message="m")]),
                        started_at=utcnow(), airflow=AirflowRef(dag_id=dag_id, run_id="r", task_id="deploy"),
                        today=DAY)
        assert (violation.enforcement.value, violation.waived) == (gate.findings[0].enforcement,
                                                                   gate.findings[0].waived)
        assert violation.blocking == (gate.verdict == "fail")


def test_verdict_of():
    def f(level, waived=False):
        return Finding(rule="x.y", message="m", enforcement=level, waived=waived)

    assert verdict_of([]) == "pass"
    assert verdict_of([f("audit"), f("enforce", waived=True)]) == "pass"
    assert verdict_of([f("warn"), f("audit")]) == "warn"
    assert verdict_of([f("warn"), f("enforce")]) == "fail"


def test_which_results_can_be_approved():
    drift_enforced = parse_policy(b"name: p\ndrift: {}\n")
    passed = evaluate("drift", drift_enforced, CheckOutcome(), started_at=utcnow())
    assert nothing_to_approve(passed)
    failed = evaluate("drift", drift_enforced, CheckOutcome(findings=[Finding(rule="drift.psi", message="m")]),
                      started_at=utcnow())
    assert not nothing_to_approve(failed) and approval_refusal(failed) is None
    errored = failed.model_copy(update={"verdict": "error"})
    assert "only policy violations can be approved" in approval_refusal(errored)
    no_blocking = failed.model_copy(update={"findings": []})
    assert "without a blocking finding" in approval_refusal(no_blocking)


def test_assess_approval_routes_and_approvers():
    routes = POLICY.section("platform").approvals

    def assess(*findings, dag_id="d", gate_task_id="drift_gate"):
        found = [Finding(rule=r, severity=s, message="m") for r, s in findings]
        return assess_approval(found, routes, dag_id=dag_id, gate_task_id=gate_task_id)

    assert assess(("drift.psi", "high")) == Approval(("drift.psi",), ("alice", "bob"))
    assert assess(("drift.psi", "high"), ("drift.ks", "medium")) == Approval(("drift.ks", "drift.psi"), ("bob",))
    assert assess(("drift.open_x", "high")) == Approval(("drift.open_x",), ())  # anyone may answer
    critical = assess(("drift.psi", "critical"))
    assert critical.refusal == "not approvable: drift.psi (critical findings are never approvable)"
    unlisted = assess(("drift.psi", "high"), ("drift.label_shift", "high"))
    assert unlisted.refusal == "not approvable: drift.label_shift (not listed under platform.approvals)"
    assert assess(("drift.psi", "high"), gate_task_id="other_gate").refusal.startswith("not approvable")
    disjoint = assess_approval(
        [Finding(rule="drift.psi", message="m"), Finding(rule="drift.ks", message="m")],
        parse_policy(b"name: p\nplatform:\n  approvals:\n    - {rule: drift.psi, approvers: [alice]}\n"
                     b"    - {rule: drift.ks, approvers: [bob]}\n").section("platform").approvals,
        dag_id="d", gate_task_id="g")
    assert disjoint.refusal == "no single approver is allowed to approve all of the findings"
