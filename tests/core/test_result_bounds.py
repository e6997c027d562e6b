"""core/result_bounds.py: a result lists at most 1,000 findings and 1,000 items per metrics collection,
counts the rest, and decides the verdict (and what a person may approve) on every finding."""

from __future__ import annotations

import json

import pytest

from airflow_aisec.core.evidence import open_evidence_store
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.core.result import CheckOutcome, Finding, GateResult
from airflow_aisec.core.result_bounds import (
    MAX_FINDINGS_LISTED,
    MAX_METRIC_ITEMS,
    bound_metrics,
    choose_listed,
)
from airflow_aisec.core.verdict import assess_approval, evaluate
from airflow_aisec.exceptions import AisecError

POLICY = parse_policy(b"""
name: bounds
enforcement: enforce
rules:
  drift.ks_statistic: warn
  drift.unseen_category: audit
waivers:
  - {rule: drift.type_changed, reason: T-1, approved_by: a@example.com, expires: 2099-01-01}
platform:
  approvals:
    - {rule: drift.psi, approvers: [alice]}
    - {rule: drift.ks_statistic, approvers: [alice]}
drift: {}
""", source="inline")


def _finding(rule: str, i: int, severity: str = "high") -> Finding:
    return Finding(rule=rule, severity=severity, message=f"{rule} of feature 'c{i}'", location={"feature": f"c{i}"})


def _many() -> list[Finding]:
    """3,000 warnings, 2,000 audits, then 1,500 blocking findings, a waived one and a critical one last."""
    return ([_finding("drift.ks_statistic", i) for i in range(3000)]
            + [_finding("drift.unseen_category", i) for i in range(2000)]
            + [_finding("drift.psi", i) for i in range(1500)]
            + [_finding("drift.type_changed", 1), _finding("drift.psi", 99_999, "critical")])


def test_a_result_lists_a_bounded_number_of_findings_and_counts_the_rest():
    findings = _many()
    result = evaluate("drift", POLICY, CheckOutcome(findings=findings), started_at="t")
    assert result.verdict == "fail"  # decided on every finding, the blocking ones came last
    assert len(result.findings) == MAX_FINDINGS_LISTED
    omitted = {(o.rule, o.severity, o.enforcement, o.waived): o.findings for o in result.findings_omitted}
    listed = {}
    for f in result.findings:
        listed[(f.rule, f.severity, f.enforcement, f.waived)] = listed.get((f.rule, f.severity, f.enforcement,
                                                                            f.waived), 0) + 1
    totals = {k: listed.get(k, 0) + omitted.get(k, 0) for k in listed.keys() | omitted.keys()}
    assert totals == {("drift.ks_statistic", "high", "warn", False): 3000,
                      ("drift.unseen_category", "high", "audit", False): 2000,
                      ("drift.psi", "high", "enforce", False): 1500,
                      ("drift.psi", "critical", "enforce", False): 1,
                      ("drift.type_changed", "high", "enforce", True): 1}
    # Every group keeps a listed finding; blocking findings fill the list before warnings and audits.
    assert set(listed) == set(totals)
    assert listed[("drift.psi", "high", "enforce", False)] == MAX_FINDINGS_LISTED - 4
    # Listed in the check's order; the document is what XCom and the trail hold.
    positions = [findings.index(next(g for g in findings if g.location == f.location and g.rule == f.rule
                                     and g.severity == f.severity)) for f in result.findings]
    assert positions == sorted(positions)
    assert GateResult.model_validate(json.loads(result.model_dump_json())) == result
    assert result.summary().splitlines()[0] == "drift: fail: 1501 finding(s)"
    assert result.summary().splitlines()[-1] == "  ... and 1481 more"
    assert result.blocking_count == 1501


def test_an_approval_sees_every_rule_and_severity_of_the_full_list():
    findings = _many()
    result = evaluate("drift", POLICY, CheckOutcome(findings=findings), started_at="t")
    routes = POLICY.policy.platform.approvals
    bounded = assess_approval(result.blocking_findings, routes, dag_id="d", gate_task_id="t")
    blocking = [f.model_copy(update={"enforcement": "enforce"}) for f in findings
                if f.rule == "drift.psi"]  # every blocking finding of the full list
    unbounded = assess_approval(blocking, routes, dag_id="d", gate_task_id="t")
    assert bounded == unbounded
    assert bounded.refusal and "critical" in bounded.refusal  # the critical one, listed although it came last


def test_small_results_are_unchanged():
    findings = [_finding("drift.psi", i) for i in range(MAX_FINDINGS_LISTED)]
    assert choose_listed([(f.rule, f.severity, None, False) for f in findings]) == (list(range(len(findings))), [])
    metrics = {"features": list(range(MAX_METRIC_ITEMS)), "x": {"y": list(range(10))}}
    assert bound_metrics(metrics)[0] is metrics and bound_metrics(metrics)[1] == {}


def test_metrics_lists_and_mappings_are_cut_top_level_and_one_down():
    metrics = {"features": [{"feature": f"c{i}"} for i in range(2500)], "n": 3,
               "columns": {f"c{i}": i for i in range(1200)},
               "by": {"email": list(range(1001)), "phone": [1, 2], "deep": {"a": {"b": list(range(5000))}}}}
    cut, omitted = bound_metrics(metrics)
    assert omitted == {"features": 1500, "columns": 200, "by.email": 1}
    assert cut["features"] == metrics["features"][:MAX_METRIC_ITEMS] and cut["n"] == 3
    assert list(cut["columns"]) == [f"c{i}" for i in range(MAX_METRIC_ITEMS)]
    assert cut["by"]["phone"] == [1, 2] and len(cut["by"]["email"]) == MAX_METRIC_ITEMS
    assert len(metrics["features"]) == 2500 and len(metrics["by"]["email"]) == 1001  # the input is not changed
    result = evaluate("drift", POLICY, CheckOutcome(metrics=metrics), started_at="t")
    assert result.metrics_omitted == omitted and result.metrics == cut


def test_the_trail_refuses_a_record_its_verifier_could_not_read(tmp_path, monkeypatch):
    from airflow_aisec.core import evidence

    store = open_evidence_store(str(tmp_path / "trail"))
    store.append({"small": True})
    monkeypatch.setattr(evidence, "MAX_RECORD_BYTES", 4096)
    with pytest.raises(AisecError, match="larger than the trail's limit"):
        store.append({"big": "x" * 5000})
    assert store.verify().records == 1  # nothing written; the chain still verifies


def test_the_webhook_alert_carries_the_omitted_counts():
    from airflow_aisec.notifications.webhook import alert_payload

    result = evaluate("drift", POLICY, CheckOutcome(findings=_many()), started_at="t").to_dict()
    alert = alert_payload({}, result)
    assert alert["findings_omitted"] == [{k: o[k] for k in ("rule", "severity", "enforcement", "waived", "findings")}
                                         for o in result["findings_omitted"]]
    assert sum(o["findings"] for o in alert["findings_omitted"]) + len(alert["findings"]) == len(_many())
    assert alert["rules"] == sorted({f.rule for f in _many()})  # every rule, though not every finding, listed
