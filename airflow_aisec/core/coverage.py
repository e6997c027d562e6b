"""Out-of-band detection: deployments and gate results the central audit trail does not back.

A DAG author runs arbitrary Python in the dag-processor and on workers (Airflow's trust model), so
a DAG can always *look* compliant: a "verification gate" that checks nothing, a result written to
XCom by hand. What such code cannot do is produce a matching record in the central, hash-chained
audit trail after the fact without it showing. :func:`find_gaps` compares what ran (rows read
from Airflow's metadata database by :mod:`airflow_aisec.coverage_db`) with what the trail
confirms (:class:`~airflow_aisec.core.trail_index.TrailIndex`):

* ``unverified_deployment``: a task that a platform rule protects (the rule's ``targets``, in a
  DAG with a matching tag) succeeded in a run, and the trail holds no chain-verified, passing
  (``pass`` or ``warn``) record of a gate the rule requires (``require_upstream``) for that run;
* ``unrecorded_gate_result``: a task's XCom ``aisec_result`` that no record of that task try
  matches (by DAG, run, task, map index, try and payload digest);
* ``trail_broken``: the trail itself does not verify (records after the break confirm nothing).

Used by ``aisec audit coverage`` and the UI's "Unverified deployments". Never imports Airflow.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from airflow_aisec.core.gates.platform import DagSpec, TaskSpec, gate_matches, rule_applies, target_matches
from airflow_aisec.core.policy.sections.platform import PlatformPolicy
from airflow_aisec.core.trail_index import PASSING_VERDICTS, TrailIndex
from airflow_aisec.exceptions import InputDataError

UNVERIFIED_DEPLOYMENT = "unverified_deployment"
UNRECORDED_GATE_RESULT = "unrecorded_gate_result"
TRAIL_BROKEN = "trail_broken"
#: Longest window ``--since`` accepts.
MAX_WINDOW = timedelta(days=3660)
_WINDOW_RE = re.compile(r"^\s*(\d{1,7})\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_window(text: str) -> timedelta:
    """``7d``, ``24h``, ``30m`` -> a timedelta.

    Raises:
        InputDataError: anything else, zero, or longer than :data:`MAX_WINDOW`.
    """
    match = _WINDOW_RE.match(str(text))
    if not match:
        raise InputDataError(f"--since must look like 7d, 24h or 30m (got {str(text)[:40]!r})")
    window = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if window <= timedelta(0) or window > MAX_WINDOW:
        raise InputDataError(f"--since must be between 1m and {MAX_WINDOW.days}d")
    return window


@dataclass(frozen=True)
class TaskRow:
    """One task instance of a run, as the metadata database has it."""

    task_id: str
    state: str | None
    map_index: int = -1
    try_number: int | None = None


@dataclass(frozen=True)
class ResultRow:
    """One XCom ``aisec_result`` of a run: where it is stored and the document (parsed JSON)."""

    task_id: str
    doc: Any
    map_index: int = -1
    try_number: int | None = None


@dataclass
class RunRows:
    """What the metadata database says about one DAG run.

    Attributes:
        task_classes: Task id -> qualified operator class names (most specific first) as far as
            they are known; tasks missing here are matched by task id only.
    """

    dag_id: str
    run_id: str
    tags: tuple[str, ...] = ()
    tasks: list[TaskRow] = field(default_factory=list)
    results: list[ResultRow] = field(default_factory=list)
    task_classes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class CoverageFinding:
    """One gap, value-free: ids, rule, and why."""

    kind: str
    message: str
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    rule: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "dag_id": self.dag_id, "run_id": self.run_id, "task_id": self.task_id,
                "rule": self.rule, "message": self.message}


@dataclass
class CoverageReport:
    runs: int = 0
    deployments: int = 0
    results: int = 0
    findings: list[CoverageFinding] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"runs_checked": self.runs, "deployments_checked": self.deployments,
                "results_checked": self.results, "findings": [f.to_dict() for f in self.findings]}


def _spec(run: RunRows, task_id: str, gate: str | None = None) -> TaskSpec:
    return TaskSpec(task_id=task_id, classes=tuple(run.task_classes.get(task_id, ())), gate=gate)


def _claims(run: RunRows, rule_gates: Iterable[Any]) -> list[str]:
    """Task ids whose XCom claims a passing result of a required gate (by gate name; for the message)."""
    names = {sel.gate for sel in rule_gates if sel.gate is not None}
    out = []
    for row in run.results:
        doc = row.doc if isinstance(row.doc, Mapping) else {}
        if doc.get("verdict") in PASSING_VERDICTS and (doc.get("gate") in names or not names):
            out.append(row.task_id)
    return sorted(set(out))


def deployment_gaps(section: PlatformPolicy, run: RunRows, index: TrailIndex) -> tuple[set[str], list[CoverageFinding]]:
    """Protected tasks that succeeded in ``run`` without a verified passing record of a required gate.

    Returns:
        ``(ids of the protected tasks that succeeded, findings)``.
    """
    dag = DagSpec.build(run.dag_id, (), tags=run.tags)
    entries = index.entries_for_run(run.dag_id, run.run_id)
    checked: set[str] = set()
    findings: list[CoverageFinding] = []
    for rule in section.rules:
        if not rule_applies(rule, dag):
            continue
        deployed = sorted({t.task_id for t in run.tasks
                           if t.state == "success" and target_matches(rule.targets, _spec(run, t.task_id))})
        if not deployed:
            continue
        checked.update(deployed)
        backed = [e for e in entries
                  if e.kind == "gate_result" and e.verdict in PASSING_VERDICTS
                  and any(gate_matches(sel, _spec(run, e.task_id, e.gate)) for sel in rule.require_upstream)]
        if backed:
            continue
        wanted = " or ".join(sel.describe() for sel in rule.require_upstream)
        claims = _claims(run, rule.require_upstream)
        why = (f"; the XCom of {claims} claims a pass the trail does not confirm" if claims else "")
        for task_id in deployed:
            findings.append(CoverageFinding(
                kind=UNVERIFIED_DEPLOYMENT, dag_id=run.dag_id, run_id=run.run_id, task_id=task_id,
                rule=rule.rule_id,
                message=(f"task '{task_id}' succeeded without a verified passing record of {wanted} for this "
                         f"run in the audit trail{why}"),
            ))
    return checked, findings


def result_gaps(run: RunRows, index: TrailIndex) -> list[CoverageFinding]:
    """XCom results of ``run`` that no record of that task try matches."""
    out = []
    for row in run.results:
        confirmation = index.confirm(row.doc, dag_id=run.dag_id, run_id=run.run_id, task_id=row.task_id,
                                     map_index=row.map_index, try_number=row.try_number)
        if not confirmation.verified:
            where = row.task_id + (f"[{row.map_index}]" if row.map_index >= 0 else "")
            out.append(CoverageFinding(
                kind=UNRECORDED_GATE_RESULT, dag_id=run.dag_id, run_id=run.run_id, task_id=row.task_id,
                message=f"XCom aisec_result of {where}: {confirmation.reason}",
            ))
    return out


def find_gaps(section: PlatformPolicy | None, runs: Iterable[RunRows], index: TrailIndex, *,
              deployments: bool = True, results: bool = True) -> CoverageReport:
    """Every gap in ``runs`` (see the module docstring); ``section`` None checks results only."""
    report = CoverageReport()
    if index.broken:
        report.findings.append(CoverageFinding(kind=TRAIL_BROKEN,
                                               message=f"the audit trail does not verify: {index.broken}"))
    for run in runs:
        report.runs += 1
        if deployments and section is not None:
            checked, found = deployment_gaps(section, run, index)
            report.deployments += len(checked)
            report.findings.extend(found)
        if results:
            report.results += len(run.results)
            report.findings.extend(result_gaps(run, index))
    return report
