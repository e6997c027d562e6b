"""Platform rules: which gates a DAG must contain, evaluated on the DAG's graph.

A platform team writes rules such as "a DAG tagged ``model-deployment`` must have a
model verification gate upstream of every deploying task". Tasks have no tags in
Airflow 3.3, so rules select DAGs by their tags and tasks by operator class (or
task id). The same evaluation runs in two places:

* the cluster policy (:mod:`airflow_aisec.cluster_policy`), which turns a violation
  into a DAG import error while Airflow parses the file;
* ``aisec lint DAG_FOLDER --policy P``, which checks DAG files in CI.

Both describe the DAG with the small, Airflow-free :class:`DagSpec` below, so this
module never imports Airflow.

Policy section example::

    platform:
      blocking_trigger_rules: [all_success]     # the default
      rules:
        - id: model-deployment-verified
          description: a deployed model must have passed signature verification
          dag_tags: [model-deployment]           # globs; "*" = every DAG, tagged or not
          targets:                               # the tasks to protect (any selector matches)
            operators: ["*.S3CreateObjectOperator", "*ToS3Operator"]
            task_ids: ["deploy*"]
          require_upstream:                      # any one of these must block every target
            - gate: signing
              operator: "airflow_aisec.operators.signing.*Verif*"
      approvals:                                 # gate rules a person may waive at run time
        - rule: bias.demographic_parity_difference
          scope: {dag_id: "*", task_id: "bias_gate"}
          approvers: [ml-risk-lead]

"Upstream" means *blocking*: a failing gate must stop the target. So a gate counts
only when there is a path from it to the target on which the target and every task
in between use a blocking trigger rule (default only ``all_success``: ``all_done``,
``one_success`` and friends run a task although its gate failed, ``none_failed``
runs it although the gate was skipped). The one exception is the human approval of
that same gate (:class:`~airflow_aisec.operators.approval.AisecWaiverApprovalOperator`),
which runs after a failed gate by design and itself fails unless a person approves.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import functools
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from airflow_aisec.core.policy.base import Enforcement, GateSection, Severity, StrictModel
from airflow_aisec.core.result import CheckOutcome, Finding

if TYPE_CHECKING:
    from airflow_aisec.core.policy import LoadedPolicy

#: Rule id prefix of every platform rule (``platform.<rule id>``).
RULE_PREFIX = "platform."
#: Built-in rule: a human-approval task must sit directly, and only, behind the gate it approves.
WAIVER_ROUTE_RULE = "platform.waiver_route_invalid"
#: Trigger rules under which a failed upstream task keeps a task from running.
FAILURE_BLOCKING_TRIGGER_RULES = ("all_success", "none_failed", "none_failed_min_one_success")
_RULE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
#: Trigger rule of the approval route; every other value on an approval task is a wiring error.
APPROVAL_TRIGGER_RULE = "all_done"


# --------------------------------------------------------------------------------------------
# Policy section
# --------------------------------------------------------------------------------------------
class GateSelector(StrictModel):
    """Which tasks count as the required gate. Both fields given: both must match.

    Attributes:
        gate: Gate name, i.e. the operator's ``gate`` class attribute (``signing``, ``pii``...).
        operator: ``fnmatch`` glob over the operator's qualified class name or any of its
            base classes (``airflow_aisec.operators.signing.*``).
    """

    gate: str | None = Field(default=None, min_length=1)
    operator: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _not_empty(self) -> GateSelector:
        if self.gate is None and self.operator is None:
            raise ValueError("a gate selector needs 'gate' or 'operator'")
        return self

    def matches(self, task: TaskSpec) -> bool:
        if self.gate is not None and task.gate != self.gate:
            return False
        return self.operator is None or _any_glob(task.classes, [self.operator])

    def describe(self) -> str:
        parts = []
        if self.gate is not None:
            parts.append(f"gate '{self.gate}'")
        if self.operator is not None:
            parts.append(f"operator '{self.operator}'")
        return " and ".join(parts)


class TaskSelector(StrictModel):
    """Which tasks a rule protects. A task matches if any glob matches.

    Attributes:
        operators: Globs over the qualified class name of the operator or of a base class,
            so subclasses of a listed operator are covered too.
        task_ids: Globs over task ids (for ``@task`` functions, whose class says nothing).
            Weaker than ``operators``: renaming a task escapes it.
    """

    operators: list[str] = Field(default_factory=list)
    task_ids: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> TaskSelector:
        if not self.operators and not self.task_ids:
            raise ValueError("targets need at least one of 'operators' or 'task_ids'")
        if any(not g.strip() for g in [*self.operators, *self.task_ids]):
            raise ValueError("empty glob in targets")
        return self

    def matches(self, task: TaskSpec) -> bool:
        return _any_glob(task.classes, self.operators) or _any_glob([task.task_id], self.task_ids)


class PlatformRule(StrictModel):
    """One structural rule.

    Attributes:
        id: Short id; findings use ``platform.<id>``, which ``rules:`` and ``waivers:`` can name.
        description: Shown in violation messages.
        dag_tags: The rule applies to a DAG having any tag that matches one of these globs;
            the single value ``"*"`` applies it to every DAG, untagged ones included.
        targets: The tasks that must be protected.
        require_upstream: Gate selectors; each target needs one matching task upstream,
            on a blocking path.
        severity: Severity of the finding.
    """

    id: str
    description: str | None = None
    dag_tags: list[str] = Field(min_length=1)
    targets: TaskSelector
    require_upstream: list[GateSelector] = Field(min_length=1)
    severity: Severity = Severity.HIGH

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not _RULE_ID_RE.match(value):
            raise ValueError("rule id must be lower-case letters, digits, '.', '_' or '-' (max 100)")
        return value

    @property
    def rule_id(self) -> str:
        return RULE_PREFIX + self.id

    def applies_to(self, dag: DagSpec) -> bool:
        if "*" in self.dag_tags:
            return True
        return _any_glob(dag.tags, self.dag_tags)


class ApprovalScope(StrictModel):
    """Where an approval route applies: globs over the DAG id and the *gate's* task id."""

    dag_id: str = "*"
    task_id: str = "*"


class ApprovalRoute(StrictModel):
    """A gate rule whose violation a person may approve at run time (human-in-the-loop waiver).

    Attributes:
        rule: Gate rule id or glob (``bias.*``). A bare ``*`` is refused: approval is an
            exception granted per rule, not a switch for every gate.
        scope: DAG / gate-task globs.
        approvers: Airflow user ids allowed to answer. Empty: anyone allowed to answer
            human-in-the-loop tasks of the DAG.
        reason: Shown to the approver.
    """

    rule: str = Field(min_length=1)
    scope: ApprovalScope = ApprovalScope()
    approvers: list[str] = Field(default_factory=list)
    reason: str | None = None

    @field_validator("rule")
    @classmethod
    def _not_everything(cls, value: str) -> str:
        gate, _, check = value.partition(".")
        if not gate or "*" in gate or "?" in gate or "[" in gate or not check:
            raise ValueError("approval rule must name one gate: '<gate>.<check>' or '<gate>.*'")
        return value

    @field_validator("approvers")
    @classmethod
    def _non_empty_ids(cls, value: list[str]) -> list[str]:
        if any(not v.strip() for v in value):
            raise ValueError("empty approver id")
        return value

    def applies(self, rule: str, *, dag_id: str, gate_task_id: str) -> bool:
        return (
            fnmatch.fnmatchcase(rule, self.rule)
            and fnmatch.fnmatchcase(dag_id, self.scope.dag_id)
            and fnmatch.fnmatchcase(gate_task_id, self.scope.task_id)
        )


class PlatformPolicy(GateSection):
    """Policy section ``platform``: structural DAG rules and human-approval routes.

    Attributes:
        rules: Structural rules checked by the cluster policy and ``aisec lint``.
        approvals: Gate rules that may be routed to a person for a run-time waiver.
        blocking_trigger_rules: Trigger rules accepted on the path from a gate to a target.
    """

    rules: list[PlatformRule] = Field(default_factory=list)
    approvals: list[ApprovalRoute] = Field(default_factory=list)
    blocking_trigger_rules: list[str] = Field(default_factory=lambda: ["all_success"], min_length=1)

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, value: list[PlatformRule]) -> list[PlatformRule]:
        seen: set[str] = set()
        for rule in value:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id '{rule.id}'")
            seen.add(rule.id)
        return value

    @field_validator("blocking_trigger_rules")
    @classmethod
    def _only_blocking(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if v not in FAILURE_BLOCKING_TRIGGER_RULES]
        if bad:
            raise ValueError(
                f"trigger rule(s) {bad} let a task run after its gate failed; "
                f"allowed: {list(FAILURE_BLOCKING_TRIGGER_RULES)}"
            )
        return value


# --------------------------------------------------------------------------------------------
# Neutral DAG description
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskSpec:
    """What the rules need to know about one task.

    Attributes:
        task_id: The task id.
        classes: Qualified names of the operator class and its base classes, most specific first.
        gate: The operator's gate name when it is an aisec gate, else None.
        upstream: Ids of the direct upstream tasks.
        trigger_rule: The task's trigger rule.
        approves: For a human-approval waiver task: the task id of the gate it approves.
    """

    task_id: str
    classes: tuple[str, ...] = ()
    gate: str | None = None
    upstream: tuple[str, ...] = ()
    trigger_rule: str = "all_success"
    approves: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "classes": list(self.classes),
            "gate": self.gate,
            "upstream": list(self.upstream),
            "trigger_rule": self.trigger_rule,
            "approves": self.approves,
        }


@dataclass(frozen=True)
class DagSpec:
    """A DAG as the rules see it: id, tags, and tasks with their upstream edges."""

    dag_id: str
    tags: tuple[str, ...] = ()
    tasks: Mapping[str, TaskSpec] = field(default_factory=dict)
    fileloc: str | None = None

    @classmethod
    def build(
        cls, dag_id: str, tasks: Iterable[TaskSpec], *, tags: Iterable[str] = (), fileloc: str | None = None
    ) -> DagSpec:
        return cls(dag_id=dag_id, tags=tuple(sorted(tags)), tasks={t.task_id: t for t in tasks},
                   fileloc=fileloc)

    def downstream(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {tid: [] for tid in self.tasks}
        for task in self.tasks.values():
            for up in task.upstream:
                out.setdefault(up, []).append(task.task_id)
        return out

    def ancestors(self, task_id: str) -> set[str]:
        seen: set[str] = set()
        queue = deque(self.tasks[task_id].upstream)
        while queue:
            tid = queue.popleft()
            if tid in seen or tid not in self.tasks:
                continue
            seen.add(tid)
            queue.extend(self.tasks[tid].upstream)
        return seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "tags": list(self.tags),
            "fileloc": self.fileloc,
            "tasks": [t.to_dict() for t in self.tasks.values()],
        }


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
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


@functools.lru_cache(maxsize=1024)
def _glob_regex(globs: tuple[str, ...]) -> re.Pattern[str]:
    """One compiled regex for a set of ``fnmatch`` globs (rules run on every task of every DAG parse)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))


def _any_glob(values: Iterable[str], globs: Sequence[str]) -> bool:
    if not globs:
        return False
    match = _glob_regex(tuple(globs)).match
    return any(match(v) for v in values)


#: Sentinel in a trigger-rule list: follow every edge (plain reachability, for messages).
_ANY = ("*",)


def _blocks(task: TaskSpec, gate_id: str, blocking_rules: Sequence[str]) -> bool:
    """Whether a failure of ``gate_id`` keeps ``task`` from running (one hop)."""
    if "*" in blocking_rules:
        return True
    if task.approves is not None:
        # An approval task runs after a failed gate on purpose; it blocks only for its own gate
        # (it fails unless a person approves that gate's findings).
        return task.approves == gate_id and task.trigger_rule == APPROVAL_TRIGGER_RULE
    return task.trigger_rule in blocking_rules


def _blocked_by(dag: DagSpec, gate_id: str, blocking_rules: Sequence[str],
                downstream: Mapping[str, list[str]]) -> set[str]:
    """Tasks a failure of ``gate_id`` keeps from running: reachable from it through blocking tasks only.

    One breadth-first walk per gate, so a rule costs O(gates x (tasks + edges)), not per target.
    """
    reached: set[str] = set()
    queue = deque([gate_id])
    while queue:
        current = queue.popleft()
        for child in downstream.get(current, ()):
            if child in reached or child not in dag.tasks:
                continue
            if _blocks(dag.tasks[child], gate_id, blocking_rules):
                reached.add(child)
                queue.append(child)
    return reached


def _waiver_route_violations(dag: DagSpec) -> list[tuple[str, str]]:
    out = []
    for task in dag.tasks.values():
        if task.approves is None:
            continue
        gate = dag.tasks.get(task.approves)
        name = f"approval task '{task.task_id}'"
        if gate is None:
            problem = f"{name} names gate task '{task.approves}', which is not in the DAG"
        elif gate.gate is None:
            problem = f"{name} names '{task.approves}', which is not an aisec gate"
        elif set(task.upstream) != {task.approves}:
            problem = (f"{name} must have exactly one upstream task, its gate '{task.approves}' "
                       f"(has: {sorted(task.upstream)})")
        elif task.trigger_rule != APPROVAL_TRIGGER_RULE:
            problem = f"{name} must use trigger rule '{APPROVAL_TRIGGER_RULE}' (has '{task.trigger_rule}')"
        else:
            continue
        out.append((task.task_id, problem))
    return out


def check_dag(section: PlatformPolicy, dag: DagSpec) -> list[tuple[str, str, str, Severity]]:
    """Evaluate the structural rules on one DAG, before enforcement levels and waivers.

    Returns:
        ``(rule id, task id, message, severity)`` for every violation, in a stable order.
    """
    out: list[tuple[str, str, str, Severity]] = [
        (WAIVER_ROUTE_RULE, tid, msg, Severity.CRITICAL) for tid, msg in _waiver_route_violations(dag)
    ]
    rules = [r for r in section.rules if r.applies_to(dag)]
    if not rules:
        return out
    downstream = dag.downstream()
    blocking = tuple(section.blocking_trigger_rules)
    for rule in rules:
        what = rule.description or rule.id
        wanted = " or ".join(s.describe() for s in rule.require_upstream)
        targets = [t for t in dag.tasks.values() if rule.targets.matches(t)]
        if not targets:
            continue
        gates = {tid for tid, t in dag.tasks.items() if any(s.matches(t) for s in rule.require_upstream)}
        protected: set[str] = set()
        for gate_id in sorted(gates):
            protected |= _blocked_by(dag, gate_id, blocking, downstream)
        reach: dict[str, set[str]] | None = None  # gate -> all descendants, only if something is unprotected
        for task in targets:
            if task.task_id in protected:
                continue
            if reach is None:
                reach = {g: _blocked_by(dag, g, FAILURE_BLOCKING_TRIGGER_RULES + _ANY, downstream) for g in gates}
            upstream_gates = sorted(g for g in gates if task.task_id in reach[g])  # for the message
            if upstream_gates:
                message = (
                    f"DAG '{dag.dag_id}' task '{task.task_id}': gate task(s) {upstream_gates} are upstream but "
                    f"a failure would not stop it (trigger rule '{task.trigger_rule}' on the task or a task in "
                    f"between is not one of {list(blocking)}); rule: {what}"
                )
            else:
                message = f"DAG '{dag.dag_id}' task '{task.task_id}': no {wanted} upstream; rule: {what}"
            out.append((rule.rule_id, task.task_id, message, rule.severity))
    return out


def platform_section(loaded: LoadedPolicy) -> PlatformPolicy:
    """The policy's ``platform`` section.

    Raises:
        PolicyError: there is none (naming the file): platform enforcement never defaults to "no rules".
    """
    from airflow_aisec.exceptions import PolicyError

    section = getattr(loaded.policy, "platform", None)
    if section is None:
        raise PolicyError(
            f"policy '{loaded.name}' has no 'platform' section (platform rules and approvals live there)",
            source=loaded.source,
            field="platform",
        )
    return section


def evaluate_dag(loaded: LoadedPolicy, dag: DagSpec, *, today: _dt.date | None = None) -> list[PlatformViolation]:
    """Check one DAG against the policy's ``platform`` section, resolving enforcement and waivers.

    Enforcement: the policy's ``rules:`` overrides, then the section's ``enforcement``, then the
    policy default (the same resolution as every gate). Waivers are matched on the DAG id and the
    violating task's id. The built-in waiver-route rule is always ``enforce`` and never waived:
    a miswired approval could turn a failed gate into a pass.

    Raises:
        PolicyError: the policy has no ``platform`` section.
    """
    policy = loaded.policy
    section = platform_section(loaded)
    today = today or _dt.datetime.now(_dt.UTC).date()
    out: list[PlatformViolation] = []
    for rule_id, task_id, message, severity in check_dag(section, dag):
        if rule_id == WAIVER_ROUTE_RULE:
            out.append(PlatformViolation(rule_id, dag.dag_id, task_id, message, Enforcement.ENFORCE, severity))
            continue
        level = Enforcement(policy.enforcement_for(rule_id, section))
        waived = any(w.applies(rule_id, dag_id=dag.dag_id, task_id=task_id, today=today) for w in policy.waivers)
        out.append(PlatformViolation(rule_id, dag.dag_id, task_id, message, level, severity, waived))
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
