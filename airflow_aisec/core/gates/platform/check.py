"""Platform rules: which gates a DAG must contain, evaluated on the DAG's graph.

A platform team writes rules such as "a DAG tagged ``model-deployment`` must have a
model verification gate upstream of every deploying task" (schema and example:
:mod:`airflow_aisec.core.policy.sections.platform`). Tasks have no tags in Airflow 3.3,
so rules select DAGs by their tags and tasks by operator class (or task id). The same
evaluation runs in two places:

* the cluster policy (:mod:`airflow_aisec.cluster_policy`), which turns a violation
  into a DAG import error while Airflow parses the file;
* ``aisec lint DAG_FOLDER --policy P``, which checks DAG files in CI.

Both describe the DAG with the small, Airflow-free :class:`DagSpec`, so this package
never imports Airflow. Enforcement levels and waivers are resolved by
:mod:`airflow_aisec.core.verdict`, as for every gate.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_aisec.core import verdict
from airflow_aisec.core.gates.platform._dagspec import DagSpec
from airflow_aisec.core.gates.platform._pods import pod_violations
from airflow_aisec.core.gates.platform._rules import (
    WAIVER_ROUTE_RULE,
    rule_violations,
    waiver_route_violations,
)
from airflow_aisec.core.policy.base import Enforcement, Severity
from airflow_aisec.core.result import CheckOutcome, Finding

if TYPE_CHECKING:
    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.policy.sections.platform import PlatformPolicy


def check_dag(section: PlatformPolicy, dag: DagSpec) -> CheckOutcome:
    """Evaluate the structural rules on one DAG, before enforcement levels and waivers.

    The pod isolation rules (``platform.pod_*``, section ``pods``) are judged on every task's pods.
    A miswired approval task is always a finding (rule ``platform.waiver_route_invalid``,
    critical, level ``enforce`` fixed): it could turn a failed gate into a pass.

    Returns:
        One finding per violation, in a stable order, located by ``{"dag_id", "task_id"}``.
    """
    where = dag.dag_id
    findings = [
        Finding(rule=WAIVER_ROUTE_RULE, severity=Severity.CRITICAL, message=msg, count=1,
                location={"dag_id": where, "task_id": tid}, enforcement=Enforcement.ENFORCE)
        for tid, msg in waiver_route_violations(dag)
    ]
    findings += [
        Finding(rule=rule, severity=severity, message=msg, count=1, location={"dag_id": where, "task_id": tid})
        for rule, tid, msg, severity in [*rule_violations(section, dag), *pod_violations(section.pods, dag)]
    ]
    return CheckOutcome(findings=findings, metrics={"tasks": len(dag.tasks)})


@dataclass(frozen=True)
class PlatformViolation:
    """One rule broken by one task of one DAG.

    Attributes:
        rule: ``platform.<id>``.
        dag_id: The DAG.
        task_id: The unprotected (or miswired) task.
        message: Value-free explanation naming rule, task and missing gate.
        enforcement: Resolved level (``enforce`` blocks the DAG).
        severity: From the rule.
        waived: An unexpired policy waiver covers it.
    """

    rule: str
    dag_id: str
    task_id: str
    message: str
    enforcement: Enforcement = Enforcement.ENFORCE
    severity: Severity = Severity.HIGH
    waived: bool = False

    @property
    def blocking(self) -> bool:
        return self.enforcement == Enforcement.ENFORCE and not self.waived

    def to_finding(self) -> Finding:
        return Finding(
            rule=self.rule,
            severity=self.severity,
            message=self.message,
            count=1,
            location={"dag_id": self.dag_id, "task_id": self.task_id},
            enforcement=self.enforcement,
            waived=self.waived,
        )

    def format(self) -> str:
        flag = " (waived)" if self.waived else ""
        return f"[{self.rule}] {self.enforcement.value}: {self.message}{flag}"


def evaluate_dag(loaded: LoadedPolicy, dag: DagSpec, *, today: _dt.date | None = None) -> list[PlatformViolation]:
    """Check one DAG against the policy's ``platform`` section, resolving enforcement and waivers.

    Enforcement and waivers resolve as for every gate (:func:`airflow_aisec.core.verdict.resolve`);
    waivers are matched on the DAG id and the violating task's id. The built-in waiver-route
    rule is always ``enforce`` and never waived.

    Raises:
        PolicyError: the policy has no ``platform`` section.
    """
    section = loaded.section("platform")
    today = today or verdict.today_utc()
    out: list[PlatformViolation] = []
    for finding in check_dag(section, dag).findings:
        task_id = finding.location["task_id"]
        res = verdict.resolve(loaded.policy, section, finding.rule, dag_id=dag.dag_id, task_id=task_id,
                              today=today, preset=finding.enforcement, waivable=finding.rule != WAIVER_ROUTE_RULE)
        out.append(PlatformViolation(finding.rule, dag.dag_id, task_id, finding.message, res.enforcement,
                                     Severity(finding.severity), res.waived))
    return out


def violations_outcome(violations: Iterable[PlatformViolation], *, dags: int) -> CheckOutcome:
    """Violations as a gate outcome (for ``--json`` and the evidence store)."""
    found = list(violations)
    return CheckOutcome(
        findings=[v.to_finding() for v in found],
        metrics={"dags_checked": dags, "violations": len(found)},
    )


def format_violations(violations: Sequence[PlatformViolation], *, policy_name: str) -> str:
    """The message of a cluster-policy rejection: one line per blocking violation."""
    blocking = [v for v in violations if v.blocking]
    lines = [f"aisec platform policy '{policy_name}' rejects this DAG: {len(blocking)} violation(s)"]
    lines += [f"  {v.format()}" for v in blocking]
    return "\n".join(lines)
