"""The policy document: top-level fields, waivers, and the gate sections it is made of.

A policy is a YAML mapping validated by pydantic (:class:`Policy`). Unknown keys
are errors, and a gate whose section is absent refuses to run: nothing here ever
defaults to "allow". Each gate's section schema lives in :mod:`.sections`; reading
and parsing files is :mod:`.loader`'s job.

Example::

    version: 1
    name: strict
    enforcement: enforce          # default level for every rule
    rules:                        # per-rule overrides (ids or globs)
      drift.*: warn
    waivers:
      - rule: pii.entity_not_allowed
        scope: {dag_id: "legacy_*", task_id: "*"}
        reason: "JIRA-123: legacy export, masked downstream"
        approved_by: security@example.com
        expires: 2027-01-31
    pii: {...}
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
from dataclasses import dataclass

from pydantic import Field, field_validator

from airflow_aisec.core.policy.base import Enforcement, GateSection, StrictModel
from airflow_aisec.core.policy.sections.bias import BiasPolicy
from airflow_aisec.core.policy.sections.drift import DriftPolicy
from airflow_aisec.core.policy.sections.endpoint import EndpointPolicy
from airflow_aisec.core.policy.sections.llm_redteam import LlmRedTeamPolicy
from airflow_aisec.core.policy.sections.model_scan import ModelScanPolicy
from airflow_aisec.core.policy.sections.pii import PiiPolicy
from airflow_aisec.core.policy.sections.platform import PlatformPolicy
from airflow_aisec.core.policy.sections.prompt_injection import PromptInjectionPolicy
from airflow_aisec.core.policy.sections.secrets import SecretsPolicy
from airflow_aisec.core.policy.sections.signing import SigningPolicy
from airflow_aisec.core.policy.sections.source import SourcePolicy
from airflow_aisec.core.policy.sections.storage import StoragePolicy
from airflow_aisec.exceptions import PolicyError

SUPPORTED_VERSIONS = (1,)


class WaiverScope(StrictModel):
    """Where a waiver applies: ``fnmatch`` globs over the DAG id and task id."""

    dag_id: str = "*"
    task_id: str = "*"


class Waiver(StrictModel):
    """A time-limited, approved exception to one rule.

    Attributes:
        rule: Rule id (or glob) the waiver covers.
        scope: DAG/task globs where it applies.
        reason: Why (ticket, justification).
        approved_by: Who approved it.
        expires: Last day (inclusive, UTC) on which it applies. Required.
    """

    rule: str = Field(min_length=1)
    scope: WaiverScope = WaiverScope()
    reason: str = Field(min_length=1)
    approved_by: str = Field(min_length=1)
    expires: _dt.date

    def applies(self, rule: str, *, dag_id: str, task_id: str, today: _dt.date) -> bool:
        """Whether this waiver covers ``rule`` for that DAG/task on ``today``."""
        return (
            today <= self.expires
            and fnmatch.fnmatchcase(rule, self.rule)
            and fnmatch.fnmatchcase(dag_id, self.scope.dag_id)
            and fnmatch.fnmatchcase(task_id, self.scope.task_id)
        )


class Policy(StrictModel):
    """Top-level policy document."""

    version: int = 1
    name: str = Field(min_length=1)
    description: str | None = None
    enforcement: Enforcement = Enforcement.ENFORCE
    rules: dict[str, Enforcement] = Field(default_factory=dict)
    waivers: list[Waiver] = Field(default_factory=list)

    source: SourcePolicy | None = None
    pii: PiiPolicy | None = None
    secrets: SecretsPolicy | None = None
    signing: SigningPolicy | None = None
    model_scan: ModelScanPolicy | None = None
    bias: BiasPolicy | None = None
    drift: DriftPolicy | None = None
    platform: PlatformPolicy | None = None
    prompt_injection: PromptInjectionPolicy | None = None
    llm_redteam: LlmRedTeamPolicy | None = None
    endpoint: EndpointPolicy | None = None
    storage: StoragePolicy | None = None

    @field_validator("version")
    @classmethod
    def _supported_version(cls, value: int) -> int:
        if value not in SUPPORTED_VERSIONS:
            raise ValueError(f"unsupported policy version {value}; supported: {SUPPORTED_VERSIONS}")
        return value

    def enforcement_for(self, rule: str, section: GateSection | None = None) -> Enforcement:
        """Resolve a rule's enforcement level.

        Order: exact id in ``rules``, then the most specific matching glob in
        ``rules``, then the section's ``enforcement``, then the policy default.
        """
        if rule in self.rules:
            return self.rules[rule]
        globs = [g for g in self.rules if fnmatch.fnmatchcase(rule, g)]
        if globs:
            return self.rules[max(globs, key=len)]
        if section is not None and section.enforcement is not None:
            return section.enforcement
        return self.enforcement

    def section(self, name: str, *, source: str | None = None) -> GateSection:
        """Return a gate's section, refusing to run a gate the policy does not configure.

        Args:
            name: The section (gate) name.
            source: The policy's file, named in the error.

        Raises:
            PolicyError: the policy has no such section.
        """
        value = getattr(self, name, None) if name in type(self).model_fields else None
        if value is None:
            raise PolicyError(
                f"policy '{self.name}' has no '{name}' section; a gate without a policy refuses to run",
                source=source,
                field=name,
            )
        return value


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy plus where it came from and its digest."""

    policy: Policy
    sha256: str
    source: str

    @property
    def name(self) -> str:
        return self.policy.name

    def section(self, gate: str) -> GateSection:
        """The gate's section: the one way the Airflow layer and the CLI hand a check its policy.

        Raises:
            PolicyError: the policy has no such section (a gate without a policy refuses to run),
                naming the policy file.
        """
        return self.policy.section(gate, source=self.source)


