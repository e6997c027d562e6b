"""What a finding means under a policy: enforcement levels, waivers, human approvals, verdicts.

The one place that resolves them, so a rule means the same thing in every gate, in the
platform rules (:mod:`airflow_aisec.core.gates.platform`) and in a human-approval waiver
(:class:`~airflow_aisec.operators.approval.AisecWaiverApprovalOperator`):

* enforcement: the policy's ``rules:`` overrides (exact id, then the most specific glob), then
  the gate section's ``enforcement``, then the policy default (:meth:`Policy.enforcement_for`);
* waivers: the first unexpired policy waiver whose rule and DAG/task scope match;
* verdict: ``fail`` if an enforce-level finding is not waived, else ``warn`` if a warn-level one
  is not, else ``pass``; a check that raised is ``error`` (fail closed), a
  :class:`~airflow_aisec.exceptions.SecurityViolationError` a critical, never-waived ``fail``;
* approvals: which blocking findings of a failed gate a person may waive at run time, and who;
* the policy floor (:func:`evaluate_layered`): a gate checked under its own policy and under the
  platform's baseline gets, rule by rule, the stricter of the two outcomes.
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.collector import collector_paused
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
from airflow_aisec.core.result_bounds import bound_metrics, choose_listed
from airflow_aisec.exceptions import AisecError, SecurityViolationError, ServiceUnavailableError

if TYPE_CHECKING:
    from airflow_aisec.core.policy import LoadedPolicy, Policy, Waiver
    from airflow_aisec.core.policy.base import GateSection
    from airflow_aisec.core.policy.sections.platform import ApprovalRoute


def today_utc() -> _dt.date:
    """Today in UTC: the day waiver expiry dates are compared with (inclusive)."""
    return _dt.datetime.now(_dt.UTC).date()


# --------------------------------------------------------------------------------------------
# Enforcement and waivers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Resolution:
    """A rule's resolved enforcement level and the waiver covering it (if any)."""

    enforcement: Enforcement
    waiver: Waiver | None = None

    @property
    def waived(self) -> bool:
        return self.waiver is not None

    @property
    def blocking(self) -> bool:
        return self.enforcement == Enforcement.ENFORCE and not self.waived


def resolve(
    policy: Policy,
    section: GateSection | None,
    rule: str,
    *,
    dag_id: str,
    task_id: str,
    today: _dt.date,
    preset: Enforcement | str | None = None,
    waivable: bool = True,
) -> Resolution:
    """Resolve one finding's enforcement level and waiver.

    Args:
        policy: The policy document (``rules:``, default ``enforcement``, ``waivers:``).
        section: The gate's section (its ``enforcement``), or None.
        rule: The finding's rule id.
        dag_id: DAG the finding belongs to ("" outside Airflow: then no scoped waiver matches).
        task_id: Task the finding belongs to.
        today: Day compared with waiver expiry dates.
        preset: A level the check fixed itself; it wins over the policy.
        waivable: False for findings no waiver may cover (miswired approval routes).
    """
    level = Enforcement(preset) if preset else Enforcement(policy.enforcement_for(rule, section))
    if not waivable:
        return Resolution(level)
    for waiver in policy.waivers:
        if waiver.applies(rule, dag_id=dag_id, task_id=task_id, today=today):
            return Resolution(level, waiver)
    return Resolution(level)


def verdict_of(findings: Iterable[Finding]) -> Verdict:
    """``fail`` if an enforce-level finding is not waived, else ``warn`` if a warn-level one is not, else ``pass``."""
    return _verdict_of_levels((f.enforcement, f.waived) for f in findings)


def _verdict_of_levels(levels: Iterable[tuple[str | None, bool]]) -> Verdict:
    """:func:`verdict_of` from the findings' (enforcement, waived) pairs."""
    live = [level for level, waived in levels if not waived]  # str enums: values and members compare equal
    if Enforcement.ENFORCE in live:
        return Verdict.FAIL
    if Enforcement.WARN in live:
        return Verdict.WARN
    return Verdict.PASS


def policy_ref(loaded: LoadedPolicy | None) -> PolicyRef | None:
    if loaded is None:
        return None
    return PolicyRef(name=loaded.name, sha256=loaded.sha256, source=loaded.source)


# --------------------------------------------------------------------------------------------
# Gate results
# --------------------------------------------------------------------------------------------
_STRICTNESS = {Enforcement.AUDIT: 0, Enforcement.WARN: 1, Enforcement.ENFORCE: 2}


def stricter(a: Enforcement, b: Enforcement) -> Enforcement:
    """The stricter of two enforcement levels (``enforce`` > ``warn`` > ``audit``)."""
    return a if _STRICTNESS[Enforcement(a)] >= _STRICTNESS[Enforcement(b)] else b


def _section_of(policy: Policy, gate: str) -> GateSection | None:
    return getattr(policy, gate, None) if gate in type(policy).model_fields else None


def _finding_key(finding: Finding) -> tuple[Any, ...]:
    """What makes two runs' findings one finding: every field but ``waived``, as a hashable value (a wide
    table's gate raises 100,000s of findings: no JSON text per finding)."""
    return (finding.rule, finding.severity, finding.message, finding.count, finding.enforcement,
            _frozen(finding.location))


def _frozen(value: Any) -> Any:
    """``value`` as nested tuples, typed so that JSON-distinct values stay distinct (``1``, ``1.0``, ``True``)."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), _frozen(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_frozen(v) for v in value))
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return (type(value).__name__, repr(value))  # repr: NaN equals NaN, as its JSON text did
    return ("str", str(value))


@dataclass(frozen=True)
class LayerRun:
    """One policy a gate's check ran under, and what the check found under it."""

    loaded: LoadedPolicy
    outcome: CheckOutcome


def evaluate(
    gate: str,
    loaded: LoadedPolicy,
    outcome: CheckOutcome,
    *,
    started_at: str,
    airflow: AirflowRef | None = None,
    today: _dt.date | None = None,
) -> GateResult:
    """Resolve enforcement and waivers for every finding of a check and compute the verdict.

    Verdict: ``fail`` if any enforce-level finding is not waived, else ``warn``
    if any warn-level finding is not waived, else ``pass`` (audit-level and
    waived findings are recorded only).
    """
    return evaluate_layered(gate, [LayerRun(loaded, outcome)], policy=loaded, baseline=None,
                            started_at=started_at, airflow=airflow, today=today)


@dataclass(frozen=True)
class _Resolved:
    """The findings a result lists (resolved), the omitted ones counted, the verdict over all, the waivers applied."""

    findings: list[Finding]
    omitted: list[dict[str, Any]]
    verdict: Verdict
    applied: dict[tuple, WaiverRef]


def _resolved(gate: str, runs: Sequence[LayerRun], evaluators: list[LoadedPolicy], *, dag_id: str, task_id: str,
              today: _dt.date) -> _Resolved:
    """Every run's findings merged and resolved (level and waiver), bounded for the result
    (:mod:`~airflow_aisec.core.result_bounds`), and the verdict over all of them."""
    # A finding two runs both raised is one finding (raised by both); repeats within a run stay.
    merged: list[tuple[Finding, list[LoadedPolicy]]] = []
    if len(runs) == 1:
        merged = [(finding, [runs[0].loaded]) for finding in runs[0].outcome.findings]
    else:
        by_key: dict[tuple[Any, ...], list[int]] = {}
        for run in runs:
            for finding in run.outcome.findings:
                key = _finding_key(finding)
                match = next((i for i in by_key.get(key, []) if all(r is not run.loaded for r in merged[i][1])),
                             None)
                if match is not None:
                    merged[match][1].append(run.loaded)
                else:
                    by_key.setdefault(key, []).append(len(merged))
                    merged.append((finding, [run.loaded]))

    # A finding's level depends on its rule and the check's preset, its waiver on the rule and the
    # policies that raised it: resolved once per distinct combination, not per finding.
    applied: dict[tuple, WaiverRef] = {}
    resolutions: dict[tuple[Any, ...], tuple[Enforcement, bool]] = {}

    def resolution(finding: Finding, raisers: list[LoadedPolicy]) -> tuple[Enforcement, bool]:
        levels = [resolve(loaded.policy, _section_of(loaded.policy, gate), finding.rule, dag_id=dag_id,
                          task_id=task_id, today=today, preset=finding.enforcement, waivable=False).enforcement
                  for loaded in evaluators]
        waivers = [resolve(loaded.policy, None, finding.rule, dag_id=dag_id, task_id=task_id, today=today).waiver
                   for loaded in raisers]
        waived = all(w is not None for w in waivers)
        if waived:
            for w in waivers:
                applied[(w.rule, w.approved_by, w.expires)] = WaiverRef(
                    rule=w.rule, reason=w.reason, approved_by=w.approved_by, expires=w.expires.isoformat()
                )
        return functools.reduce(stricter, levels), waived

    resolved = []
    for finding, raisers in merged:
        key = (finding.rule, finding.enforcement, *map(id, raisers))
        found = resolutions.get(key)
        if found is None:
            found = resolutions[key] = resolution(finding, raisers)
        resolved.append(found)
    # The verdict sees every finding; the result lists a bounded number, built only for those.
    verdict = _verdict_of_levels({(Enforcement(level).value, waived) for level, waived in resolutions.values()})
    severity = {s: Severity(s).value for s in {f.severity for f, _ in merged}}
    levels = {level: Enforcement(level).value for level, _ in resolutions.values()}
    listed, omitted = choose_listed([(f.rule, severity[f.severity], levels[level], waived)
                                     for (f, _), (level, waived) in zip(merged, resolved)])
    findings = Finding.resolved_many([merged[i][0] for i in listed], [resolved[i] for i in listed])
    return _Resolved(findings, omitted, verdict, applied)


def evaluate_layered(
    gate: str,
    runs: Sequence[LayerRun],
    *,
    policy: LoadedPolicy | None,
    baseline: LoadedPolicy | None,
    started_at: str,
    airflow: AirflowRef | None = None,
    today: _dt.date | None = None,
) -> GateResult:
    """Evaluate a check that ran under one or more policies (the gate's own, the baseline): the
    stricter outcome wins, rule by rule.

    * every finding of any run counts (identical findings of two runs are one finding);
    * its level is the strictest of the levels every *evaluating* policy gives its rule: each run's
      policy, and the gate's own policy even when it has no section for the gate (it may tighten,
      never lower: ``enforcement: audit`` or ``rules:`` in the own policy cannot undo the baseline);
    * it is waived only if every run that raised it holds a waiver for it: the own policy's waivers
      never waive a finding the baseline raised unless the baseline holds that waiver too;
    * metrics come from the own policy's run when there is one (else the baseline's); inputs and
      reports of every run are listed once.

    Args:
        gate: Gate name (the policy section).
        runs: The check's outcome under each policy it ran under (at least one).
        policy: The gate's own policy (recorded as ``policy``), None if it did not load.
        baseline: The platform's floor (recorded as ``baseline``), None without one.
        started_at: When the gate started.
        airflow: Airflow identifiers (waiver scopes match them).
        today: Day compared with waiver expiry dates.
    """
    if not runs:
        raise ValueError("evaluate_layered needs at least one run")
    today = today or today_utc()
    dag_id = airflow.dag_id if airflow else ""
    task_id = airflow.task_id if airflow else ""

    evaluators: list[LoadedPolicy] = [r.loaded for r in runs]
    if policy is not None and all(e is not policy for e in evaluators):
        evaluators.append(policy)

    with collector_paused():  # a wide table's 100,000s of findings: see core/collector.py
        resolved = _resolved(gate, runs, evaluators, dag_id=dag_id, task_id=task_id, today=today)
    primary = next((r for r in runs if r.loaded is policy), runs[0]).outcome
    inputs = {i.uri: i for r in runs for i in r.outcome.inputs}
    reports = {rep.uri: rep for r in runs for rep in r.outcome.reports}
    ordered_inputs = [*primary.inputs, *(i for u, i in inputs.items() if u not in {p.uri for p in primary.inputs})]
    ordered_reports = [*primary.reports,
                       *(rep for u, rep in reports.items() if u not in {p.uri for p in primary.reports})]
    metrics, metrics_omitted = bound_metrics(primary.metrics)
    return GateResult(
        gate=gate,
        verdict=resolved.verdict,
        policy=policy_ref(policy),
        baseline=policy_ref(baseline),
        findings=resolved.findings,
        findings_omitted=resolved.omitted,
        metrics=metrics,
        metrics_omitted=metrics_omitted,
        inputs=ordered_inputs,
        reports=ordered_reports,
        waivers_applied=list(resolved.applied.values()),
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
    baseline: LoadedPolicy | None = None,
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
        policy=policy_ref(loaded),
        baseline=policy_ref(baseline),
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
    baseline: LoadedPolicy | None = None,
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
        policy=policy_ref(loaded),
        baseline=policy_ref(baseline),
        findings=[Finding.model_validate(finding.model_dump())],
        started_at=started_at,
        finished_at=utcnow(),
        airflow=airflow,
    )


# --------------------------------------------------------------------------------------------
# Human approval of a failed gate (platform.approvals)
# --------------------------------------------------------------------------------------------
def nothing_to_approve(result: GateResult) -> bool:
    """A ``pass`` or ``warn`` result: the run may go on without asking anyone."""
    return result.verdict in (Verdict.PASS.value, Verdict.WARN.value)


def approval_refusal(result: GateResult) -> str | None:
    """Why no person may approve this result whatever the policy says (None: the routes decide).

    Only a ``fail`` with blocking findings can be approved: an ``error`` is not a policy
    violation, and a failure without a blocking finding leaves nothing to approve.
    """
    if result.verdict != Verdict.FAIL.value:
        return f"the gate ended in '{result.verdict}'; only policy violations can be approved"
    if not result.blocking_findings:
        return "the gate failed without a blocking finding; nothing a person could approve"
    return None


@dataclass(frozen=True)
class Approval:
    """Whether a person may waive a failed gate's blocking findings, and who.

    Attributes:
        rules: The blocking rules the approval would waive.
        approvers: User ids allowed to answer; empty means anyone allowed to answer the DAG's
            human-in-the-loop tasks.
        refusal: Why nobody may approve (value-free), or None when the approval may be asked for.
    """

    rules: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()
    refusal: str | None = None


def assess_approval(
    findings: Sequence[Finding], routes: Sequence[ApprovalRoute], *, dag_id: str, gate_task_id: str
) -> Approval:
    """Decide whether a person may approve these blocking findings under ``platform.approvals``.

    Every finding must be covered: a critical finding never is, and a finding no route lists
    refuses the whole approval. The approvers are those every finding's routes allow (a route
    without approvers leaves its findings open to anyone).

    Args:
        findings: The failed gate's blocking findings.
        routes: The ``platform.approvals`` of the policy the gate ran with.
        dag_id: The DAG.
        gate_task_id: The gate's task id (route scopes name it).
    """
    refused: list[str] = []
    allowed: set[str] | None = None
    for finding in findings:
        if finding.severity == Severity.CRITICAL:
            refused.append(f"{finding.rule} (critical findings are never approvable)")
            continue
        matching = [r for r in routes if r.applies(finding.rule, dag_id=dag_id, gate_task_id=gate_task_id)]
        if not matching:
            refused.append(f"{finding.rule} (not listed under platform.approvals)")
            continue
        if any(not r.approvers for r in matching):
            continue  # one route leaves it open to anyone allowed to answer
        users = {u for r in matching for u in r.approvers}
        allowed = users if allowed is None else allowed & users
    rules = tuple(sorted({f.rule for f in findings}))
    if refused:
        return Approval(rules, refusal="not approvable: " + "; ".join(sorted(set(refused))))
    if allowed is not None and not allowed:
        return Approval(rules, refusal="no single approver is allowed to approve all of the findings")
    return Approval(rules, tuple(sorted(allowed or ())))
