"""Verdict evaluation: enforcement levels, waivers, fail-closed errors."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_aisec.core.gate import run_check
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.core.result import AirflowRef, CheckOutcome, Finding, GateResult, InputRef, utcnow
from airflow_aisec.core.verdict import evaluate
from airflow_aisec.exceptions import InputDataError, SecurityViolationError, ServiceUnavailableError

POLICY = parse_policy(
    b"""
name: gate-test
enforcement: enforce
rules:
  drift.ks: warn
  drift.note: audit
waivers:
  - rule: drift.waived
    scope: {dag_id: "legacy_*", task_id: "*"}
    reason: "TICKET-1 accepted risk"
    approved_by: sec@example.com
    expires: 2099-12-31
  - rule: drift.expired
    reason: "old"
    approved_by: sec@example.com
    expires: 2000-01-01
drift: {}
""",
    source="inline",
)
REF = AirflowRef(dag_id="legacy_etl", run_id="r1", task_id="gate", try_number=1)


def outcome(*rules: str) -> CheckOutcome:
    return CheckOutcome(
        findings=[Finding(rule=r, message=f"{r} violated", count=3, location={"column": "c"}) for r in rules],
        metrics={"rows": 10},
        inputs=[InputRef(uri="file:///x.csv", sha256="ab" * 32)],
    )


def verdict(*rules: str, airflow=REF) -> GateResult:
    return evaluate("drift", POLICY, outcome(*rules), started_at=utcnow(), airflow=airflow)


def test_no_findings_pass():
    result = verdict()
    assert result.verdict == "pass"
    assert result.policy.name == "gate-test" and result.policy.sha256 == POLICY.sha256
    assert result.inputs[0].sha256 == "ab" * 32
    assert result.airflow.dag_id == "legacy_etl"
    assert result.schema_version == "1.2"


def test_enforce_fails_warn_warns_audit_passes():
    assert verdict("drift.psi").verdict == "fail"
    assert verdict("drift.ks").verdict == "warn"
    assert verdict("drift.note").verdict == "pass"
    assert verdict("drift.note", "drift.ks").verdict == "warn"
    assert verdict("drift.note", "drift.ks", "drift.psi").verdict == "fail"
    result = verdict("drift.note", "drift.ks", "drift.psi")
    assert [f.enforcement for f in result.findings] == ["audit", "warn", "enforce"]


def test_waiver_in_scope_applies_and_is_recorded():
    result = verdict("drift.waived")
    assert result.verdict == "pass"
    assert result.findings[0].waived is True
    assert result.waivers_applied[0].approved_by == "sec@example.com"
    assert result.waivers_applied[0].expires == "2099-12-31"


def test_waiver_out_of_scope_or_expired_does_not_apply():
    other = AirflowRef(dag_id="new_etl", run_id="r", task_id="gate")
    assert verdict("drift.waived", airflow=other).verdict == "fail"
    assert verdict("drift.waived", airflow=None).verdict == "fail"  # CLI run: dag_id "" is out of scope
    assert verdict("drift.expired").verdict == "fail"
    assert verdict("drift.expired").waivers_applied == []


def test_waiver_expiry_is_inclusive():
    result = evaluate(
        "drift", POLICY, outcome("drift.waived"), started_at=utcnow(), airflow=REF, today=dt.date(2099, 12, 31)
    )
    assert result.verdict == "pass"
    result = evaluate(
        "drift", POLICY, outcome("drift.waived"), started_at=utcnow(), airflow=REF, today=dt.date(2100, 1, 1)
    )
    assert result.verdict == "fail"


def test_summary_combines_every_blocking_finding():
    summary = verdict("drift.a", "drift.b", "drift.ks").summary()
    assert "2 finding(s)" in summary and "[drift.a]" in summary and "[drift.b]" in summary
    assert "[drift.ks]" not in summary  # warnings are not blocking


@pytest.mark.parametrize(
    ("exc", "etype", "retryable"),
    [
        (RuntimeError("secret-value-123 leaked in message"), "RuntimeError", False),
        (InputDataError("bad column 'x'"), "InputDataError", False),
        (ServiceUnavailableError("vault down"), "ServiceUnavailableError", True),
    ],
)
def test_exceptions_fail_closed(exc, etype, retryable):
    def boom():
        raise exc

    run = run_check("drift", POLICY, boom)
    assert run.result.verdict == "error"
    assert run.result.error.type == etype
    assert run.result.error.retryable is retryable
    assert run.retryable is retryable
    assert run.exception is exc
    assert "secret-value-123" not in run.result.model_dump_json()  # foreign messages are withheld


def test_a_check_that_exits_is_an_error_not_a_clean_exit():
    # SystemExit is not an Exception: it used to escape run_check, and exit code 0 reads as a pass.
    def exits():
        raise SystemExit(0)

    run = run_check("drift", POLICY, exits)
    assert run.result.verdict == "error" and run.result.error.type == "SystemExit"


def test_check_returning_wrong_type_is_an_error():
    run = run_check("drift", POLICY, lambda: {"verdict": "pass"})
    assert run.result.verdict == "error"


def test_security_violation_is_a_critical_unwaivable_fail():
    def attack():
        raise SecurityViolationError("wrapping token already used", rule="drift.waived", location={"path": "p"})

    run = run_check("drift", POLICY, attack)
    assert run.result.verdict == "fail"
    (finding,) = run.result.findings
    assert finding.rule == "drift.waived" and finding.severity == "critical"
    assert finding.waived is False  # even though a waiver for that rule exists


def test_result_round_trips_through_json():
    result = verdict("drift.psi", "drift.waived")
    again = GateResult.model_validate_json(result.model_dump_json())
    assert again == result
    assert again.to_dict()["findings"][0]["location"] == {"column": "c"}


def test_run_gate_refuses_a_policy_without_the_section_or_that_fails_to_load():
    from airflow_aisec.core.gate import run_gate
    from airflow_aisec.exceptions import PolicyError

    ran = []
    no_section = parse_policy(b"name: bare\n", source="inline")
    run = run_gate("drift", lambda: no_section, lambda loaded: ran.append(1) or CheckOutcome())
    assert run.result.verdict == "error" and "no 'drift' section" in run.result.error.message
    assert run.result.policy.name == "bare" and ran == []  # the check never ran

    def broken():
        raise PolicyError("bad field", source="p.yaml", field="x")

    run = run_gate("drift", broken, lambda loaded: CheckOutcome())
    assert run.result.verdict == "error" and run.result.policy is None
    assert isinstance(run.exception, PolicyError)

    run = run_gate("drift", lambda: POLICY, lambda loaded: outcome("drift.psi"), airflow=REF)
    assert run.result.verdict == "fail" and run.result.airflow.task_id == "gate"
