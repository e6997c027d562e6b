"""Rule evaluation on a :class:`DagSpec`: selector matching and the "blocking path" graph walk.

"Upstream" means *blocking*: a failing gate must stop the target. So a gate counts
only when there is a path from it to the target on which the target and every task
in between use a blocking trigger rule (default only ``all_success``: ``all_done``,
``one_success`` and friends run a task although its gate failed, ``none_failed``
runs it although the gate was skipped). The one exception is the human approval of
that same gate (:class:`~airflow_aisec.operators.approval.AisecWaiverApprovalOperator`),
which runs after a failed gate by design and itself fails unless a person approves.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from airflow_aisec.core.gates.platform._dagspec import DagSpec, TaskSpec
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.platform import (
    FAILURE_BLOCKING_TRIGGER_RULES,
    GateSelector,
    PlatformPolicy,
    PlatformRule,
    TaskSelector,
)

#: Built-in rule: a human-approval task must sit directly, and only, behind the gate it approves.
WAIVER_ROUTE_RULE = "platform.waiver_route_invalid"
#: Trigger rule of the approval route; every other value on an approval task is a wiring error.
APPROVAL_TRIGGER_RULE = "all_done"
#: Sentinel in a trigger-rule list: follow every edge (plain reachability, for messages).
_ANY = ("*",)


@functools.lru_cache(maxsize=1024)
def _glob_regex(globs: tuple[str, ...]) -> re.Pattern[str]:
    """One compiled regex for a set of ``fnmatch`` globs (rules run on every task of every DAG parse)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))


def _any_glob(values: Iterable[str], globs: Sequence[str]) -> bool:
    if not globs:
        return False
    match = _glob_regex(tuple(globs)).match
    return any(match(v) for v in values)


def gate_matches(selector: GateSelector, task: TaskSpec) -> bool:
    """Whether ``task`` is the gate ``selector`` asks for (both fields, when both are given)."""
    if selector.gate is not None and task.gate != selector.gate:
        return False
    return selector.operator is None or _any_glob(task.classes, [selector.operator])


def target_matches(selector: TaskSelector, task: TaskSpec) -> bool:
    """Whether ``task`` is one a rule protects (any glob matches)."""
    return _any_glob(task.classes, selector.operators) or _any_glob([task.task_id], selector.task_ids)


def rule_applies(rule: PlatformRule, dag: DagSpec) -> bool:
    """Whether ``rule`` applies to ``dag`` (by tag; ``"*"`` = every DAG, untagged ones too)."""
    if "*" in rule.dag_tags:
        return True
    return _any_glob(dag.tags, rule.dag_tags)


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


def waiver_route_violations(dag: DagSpec) -> list[tuple[str, str]]:
    """``(task id, problem)`` of every approval task not wired directly, and only, behind its gate."""
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


def rule_violations(section: PlatformPolicy, dag: DagSpec) -> list[tuple[str, str, str, Severity]]:
    """``(rule id, task id, message, severity)`` of every unprotected target, in a stable order."""
    out: list[tuple[str, str, str, Severity]] = []
    rules = [r for r in section.rules if rule_applies(r, dag)]
    if not rules:
        return out
    downstream = dag.downstream()
    blocking = tuple(section.blocking_trigger_rules)
    for rule in rules:
        what = rule.description or rule.id
        wanted = " or ".join(s.describe() for s in rule.require_upstream)
        targets = [t for t in dag.tasks.values() if target_matches(rule.targets, t)]
        if not targets:
            continue
        gates = {tid for tid, t in dag.tasks.items() if any(gate_matches(s, t) for s in rule.require_upstream)}
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
