"""The platform gate: structural rules on a DAG's graph (cluster policy and ``aisec lint``).

Import-cheap and Airflow-free: the DAG is described by :class:`DagSpec` / :class:`TaskSpec`.
"""

from airflow_aisec.core.gates.platform._dagspec import DagSpec, TaskSpec
from airflow_aisec.core.gates.platform._pods import POD_RULES, image_registry, judge_pod
from airflow_aisec.core.gates.platform._rules import (
    APPROVAL_TRIGGER_RULE,
    WAIVER_ROUTE_RULE,
    gate_matches,
    rule_applies,
    target_matches,
)
from airflow_aisec.core.gates.platform.check import (
    PlatformViolation,
    check_dag,
    evaluate_dag,
    format_violations,
    violations_outcome,
)
from airflow_aisec.core.policy.sections.platform import FAILURE_BLOCKING_TRIGGER_RULES, RULE_PREFIX

__all__ = [
    "APPROVAL_TRIGGER_RULE",
    "FAILURE_BLOCKING_TRIGGER_RULES",
    "POD_RULES",
    "RULE_PREFIX",
    "WAIVER_ROUTE_RULE",
    "DagSpec",
    "PlatformViolation",
    "TaskSpec",
    "check_dag",
    "evaluate_dag",
    "format_violations",
    "gate_matches",
    "image_registry",
    "judge_pod",
    "rule_applies",
    "target_matches",
    "violations_outcome",
]
