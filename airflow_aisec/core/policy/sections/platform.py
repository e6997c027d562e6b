"""The ``platform`` policy section: structural DAG rules and human-approval routes.

Schema only (the engine is :mod:`airflow_aisec.core.gates.platform`, which matches these
selectors against a DAG). The constants the schema validates against live here too.

Example policy section::

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
      pods:                                      # isolated pods: KubernetesPodOperator / pod_override
        dag_tags: ["*"]
        run_as_non_root: true
        forbid_privileged: true
        forbid_host_namespaces: true             # hostNetwork, hostPID (and hostIPC)
        forbid_host_path: true
        read_only_root_filesystem: true
        require_limits: [cpu, memory]
        require_image_digest: true
        allowed_registries: ["registry.example.com", "*.dkr.ecr.*.amazonaws.com"]
      approvals:                                 # gate rules a person may waive at run time
        - rule: bias.demographic_parity_difference
          scope: {dag_id: "*", task_id: "bias_gate"}
          approvers: [ml-risk-lead]
"""

from __future__ import annotations

import fnmatch
import re

from pydantic import Field, field_validator, model_validator

from airflow_aisec.core.policy.base import GateSection, Severity, StrictModel

#: Rule id prefix of every platform rule (``platform.<rule id>``).
RULE_PREFIX = "platform."
#: Trigger rules under which a failed upstream task keeps a task from running.
FAILURE_BLOCKING_TRIGGER_RULES = ("all_success", "none_failed", "none_failed_min_one_success")
_RULE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")


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
        """Whether this route covers ``rule`` for that DAG and gate task (like ``Waiver.applies``)."""
        return (
            fnmatch.fnmatchcase(rule, self.rule)
            and fnmatch.fnmatchcase(dag_id, self.scope.dag_id)
            and fnmatch.fnmatchcase(gate_task_id, self.scope.task_id)
        )


class PodRules(StrictModel):
    """Isolation rules for the pods a DAG's tasks run in (rule ids ``platform.pod_*``).

    Judged on every ``KubernetesPodOperator`` (its arguments, ``full_pod_spec`` and pod template) and
    every ``executor_config["pod_override"]`` (a ``V1Pod`` or a plain dict), containers and init
    containers alike.

    Attributes:
        dag_tags: DAGs the rules apply to (tag globs; ``"*"`` = every DAG).
        run_as_non_root: ``runAsNonRoot: true`` on the pod or every container, and no ``runAsUser: 0``
            (``platform.pod_run_as_root``).
        forbid_privileged: No privileged container, no ``allowPrivilegeEscalation: true``
            (``platform.pod_privileged``).
        forbid_host_namespaces: No ``hostNetwork``, ``hostPID`` or ``hostIPC``
            (``platform.pod_host_network``, ``platform.pod_host_pid``, ``platform.pod_host_ipc``).
        forbid_host_path: No ``hostPath`` volume (``platform.pod_host_path``).
        read_only_root_filesystem: ``readOnlyRootFilesystem: true`` on every container
            (``platform.pod_writable_root_fs``).
        require_limits: Resource limits every container must set (``platform.pod_resource_limits``).
        require_image_digest: Images pinned by ``@sha256:<digest>`` (``platform.pod_image_digest``).
        allowed_registries: Registry hosts images may come from (``fnmatch`` globs over the host, or
            over ``host/path`` when the glob has a ``/``; ``docker.io`` for unqualified names).
            None: not checked (``platform.pod_image_registry``).
        severity: Severity of the findings.
    """

    dag_tags: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    run_as_non_root: bool = True
    forbid_privileged: bool = True
    forbid_host_namespaces: bool = True
    forbid_host_path: bool = True
    read_only_root_filesystem: bool = True
    require_limits: list[str] = Field(default_factory=lambda: ["cpu", "memory"])
    require_image_digest: bool = True
    allowed_registries: list[str] | None = None
    severity: Severity = Severity.HIGH

    @field_validator("allowed_registries")
    @classmethod
    def _registries(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and (not value or any(not g.strip() or g.strip() == "*" for g in value)):
            raise ValueError("allowed_registries must list registries ('*' or an empty list allows any: omit it)")
        return value


class PlatformPolicy(GateSection):
    """Policy section ``platform``: structural DAG rules and human-approval routes.

    Attributes:
        rules: Structural rules checked by the cluster policy and ``aisec lint``.
        approvals: Gate rules that may be routed to a person for a run-time waiver.
        blocking_trigger_rules: Trigger rules accepted on the path from a gate to a target.
        pods: Isolation rules for the pods of KubernetesPodOperator tasks and ``pod_override``
            executor configs (None: not checked).
    """

    rules: list[PlatformRule] = Field(default_factory=list)
    approvals: list[ApprovalRoute] = Field(default_factory=list)
    blocking_trigger_rules: list[str] = Field(default_factory=lambda: ["all_success"], min_length=1)
    pods: PodRules | None = None

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


__all__ = [
    "FAILURE_BLOCKING_TRIGGER_RULES",
    "RULE_PREFIX",
    "ApprovalRoute",
    "ApprovalScope",
    "GateSelector",
    "PlatformPolicy",
    "PlatformRule",
    "PodRules",
    "TaskSelector",
]
