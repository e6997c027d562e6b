"""Turn a core check's outcome into a verdict, applying enforcement levels and waivers.

Both the Airflow operators and the CLI call :func:`run_check`, so a gate means
the same thing wherever it runs. Errors fail closed: any exception inside the
check gives verdict ``error``, never ``pass``.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from airflow_aisec.core.policy import LoadedPolicy
from airflow_aisec.core.policy.base import Enforcement, Severity
from airflow_aisec.core.result import (
    AirflowRef,
    CheckOutcome,
    ErrorInfo,
    Finding,
    GateResult,
    PolicyRef,
    Verdict,
    WaiverRef,
    utcnow,
)
from airflow_aisec.exceptions import AisecError, SecurityViolationError, ServiceUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateRun:
    """A finished gate: its result, and the exception that ended it (if any)."""

    result: GateResult
    exception: BaseException | None = None

    @property
    def retryable(self) -> bool:
        return isinstance(self.exception, ServiceUnavailableError)


def _policy_ref(loaded: LoadedPolicy | None) -> PolicyRef | None:
    if loaded is None:
        return None
    return PolicyRef(name=loaded.name, sha256=loaded.sha256, source=loaded.source)


def evaluate(
    gate: str,
    loaded: LoadedPolicy,
    outcome: CheckOutcome,
    *,
    started_at: str,
    airflow: AirflowRef | None = None,
    today: _dt.date | None = None,
) -> GateResult:
    """Resolve enforcement and waivers for every finding and compute the verdict.

    Verdict: ``fail`` if any enforce-level finding is not waived, else ``warn``
    if any warn-level finding is not waived, else ``pass`` (audit-level and
    waived findings are recorded only).
    """
    policy = loaded.policy
    section = getattr(policy, gate, None) if gate in type(policy).model_fields else None
    today = today or _dt.datetime.now(_dt.timezone.utc).date()
    dag_id = airflow.dag_id if airflow else ""
    task_id = airflow.task_id if airflow else ""

    findings: list[Finding] = []
    applied: dict[tuple, WaiverRef] = {}
    for finding in outcome.findings:
        level = finding.enforcement or policy.enforcement_for(finding.rule, section).value
        waived = False
        for waiver in policy.waivers:
            if waiver.applies(finding.rule, dag_id=dag_id, task_id=task_id, today=today):
                waived = True
                ref = WaiverRef(
                    rule=waiver.rule,
                    reason=waiver.reason,
                    approved_by=waiver.approved_by,
                    expires=waiver.expires.isoformat(),
                )
                applied[(waiver.rule, waiver.approved_by, waiver.expires)] = ref
                break
        findings.append(finding.model_copy(update={"enforcement": Enforcement(level), "waived": waived}))

    # model_copy does not re-validate: normalise enums to their values for the contract.
    findings = [Finding.model_validate(f.model_dump()) for f in findings]
    live = [f for f in findings if not f.waived]
    if any(f.enforcement == Enforcement.ENFORCE.value for f in live):
        verdict = Verdict.FAIL
    elif any(f.enforcement == Enforcement.WARN.value for f in live):
        verdict = Verdict.WARN
    else:
        verdict = Verdict.PASS
    return GateResult(
        gate=gate,
        verdict=verdict,
        policy=_policy_ref(loaded),
        findings=findings,
        metrics=outcome.metrics,
        inputs=outcome.inputs,
        reports=outcome.reports,
        waivers_applied=list(applied.values()),
        started_at=started_at,
        finished_at=utcnow(),
        airflow=airflow,
    )


def error_result(
    gate: str,
    exc: BaseException,
    *,
    loaded: LoadedPolicy | None,
    started_at: str,
    airflow: AirflowRef | None = None,
) -> GateResult:
    """Result for a gate that could not finish its check (verdict ``error``).

    Only the project's own exceptions keep their message: their texts are written
    to be value-free. Any other exception is reduced to its type, because a
    library's message may quote a data value or a secret.
    """
    if isinstance(exc, AisecError):
        message = str(exc)
    else:
        message = "unexpected internal error in the gate (details in the task log)"
    return GateResult(
        gate=gate,
        verdict=Verdict.ERROR,
        policy=_policy_ref(loaded),
        started_at=started_at,
        finished_at=utcnow(),
        airflow=airflow,
        error=ErrorInfo(
            type=type(exc).__name__,
            message=message,
            retryable=isinstance(exc, ServiceUnavailableError),
        ),
    )


def security_violation_result(
    gate: str,
    exc: SecurityViolationError,
    *,
    loaded: LoadedPolicy | None,
    started_at: str,
    airflow: AirflowRef | None = None,
) -> GateResult:
    """A security violation raised by a check is a ``fail`` with a critical finding, never waivable."""
    rule = getattr(exc, "rule", None) or f"{gate}.security_violation"
    finding = Finding(
        rule=rule,
        severity=Severity.CRITICAL,
        message=str(exc),
        count=1,
        location=dict(getattr(exc, "location", None) or {}),
        enforcement=Enforcement.ENFORCE,
    )
    return GateResult(
        gate=gate,
        verdict=Verdict.FAIL,
        policy=_policy_ref(loaded),
        findings=[Finding.model_validate(finding.model_dump())],
        started_at=started_at,
        finished_at=utcnow(),
        airflow=airflow,
    )


def run_check(
    gate: str,
    loaded: LoadedPolicy,
    check: Callable[[], CheckOutcome],
    *,
    airflow: AirflowRef | None = None,
    started_at: str | None = None,
) -> GateRun:
    """Run one core check and evaluate it against the policy, failing closed.

    Args:
        gate: Gate name; also the policy section that configures it.
        loaded: The validated policy.
        check: Zero-argument callable doing the actual work.
        airflow: Airflow identifiers when run inside a task.
        started_at: Start time, when the caller measured it (e.g. before loading the policy).

    Returns:
        The result, and the exception when the check raised one.
    """
    started_at = started_at or utcnow()
    try:
        outcome = check()
        if not isinstance(outcome, CheckOutcome):
            raise TypeError(f"check for gate {gate!r} returned {type(outcome).__name__}, not CheckOutcome")
        return GateRun(evaluate(gate, loaded, outcome, started_at=started_at, airflow=airflow))
    except SecurityViolationError as exc:
        return GateRun(
            security_violation_result(gate, exc, loaded=loaded, started_at=started_at, airflow=airflow), exc
        )
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - fail closed on anything; a library's exit(0) too
        log.debug("gate %s raised %s", gate, type(exc).__name__)
        return GateRun(error_result(gate, exc, loaded=loaded, started_at=started_at, airflow=airflow), exc)


def run_gate(
    gate: str,
    load: Callable[[], LoadedPolicy],
    check: Callable[[LoadedPolicy], CheckOutcome],
    *,
    airflow: AirflowRef | None = None,
) -> GateRun:
    """Load the policy, refuse one without the gate's section, then :func:`run_check`.

    The one entry point for the operators and the CLI: a policy that is missing, invalid or
    silent about this gate is a verdict ``error``, never a pass.

    Args:
        gate: Gate name; also the policy section that configures it.
        load: Loads and validates the policy (raises :class:`~airflow_aisec.exceptions.PolicyError`).
        check: The core check, given the loaded policy.
        airflow: Airflow identifiers when run inside a task.

    Returns:
        The result, and the exception that ended the gate (if any).
    """
    started_at = utcnow()
    loaded: LoadedPolicy | None = None
    try:
        loaded = load()
        loaded.policy.section(gate)
    except AisecError as exc:
        return GateRun(error_result(gate, exc, loaded=loaded, started_at=started_at, airflow=airflow), exc)
    return run_check(gate, loaded, lambda: check(loaded), airflow=airflow, started_at=started_at)
