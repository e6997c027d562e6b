"""Policy as code: load, validate and query the YAML policy that drives every gate.

A policy is a YAML mapping validated by pydantic (:class:`Policy`). Unknown keys
are errors, a missing or unreadable policy is an error, and a gate whose section
is absent refuses to run: nothing here ever defaults to "allow".

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
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from airflow_aisec.core.bias import BiasPolicy
from airflow_aisec.core.drift import DriftPolicy
from airflow_aisec.core.model_scan import ModelScanPolicy
from airflow_aisec.core.pii import PiiPolicy
from airflow_aisec.core.platform import PlatformPolicy
from airflow_aisec.core.policy_model import Enforcement, GateSection, StrictModel
from airflow_aisec.core.secrets import SecretsPolicy
from airflow_aisec.core.signing import SigningPolicy
from airflow_aisec.core.source import SourcePolicy
from airflow_aisec.exceptions import PolicyError

SUPPORTED_VERSIONS = (1,)
#: Largest policy file accepted: a policy is hand-written text, not data.
MAX_POLICY_BYTES = 1024 * 1024
#: Most values (mapping keys and values, list items) a policy may hold once YAML aliases are expanded:
#: more than any alias-free document within MAX_POLICY_BYTES, far less than an alias bomb.
MAX_POLICY_VALUES = 1_000_000


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

    def section(self, name: str) -> GateSection:
        """Return a gate's section, refusing to run a gate the policy does not configure.

        Raises:
            PolicyError: the policy has no such section.
        """
        value = getattr(self, name, None) if name in type(self).model_fields else None
        if value is None:
            raise PolicyError(
                f"policy '{self.name}' has no '{name}' section; a gate without a policy refuses to run",
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (a silent override is a typo waiting to happen)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "mapping key is not hashable", key_node.start_mark
            ) from None
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _check_expanded_size(document: Any, source: str) -> None:
    """Refuse a document whose aliases expand it beyond :data:`MAX_POLICY_VALUES` values (or forever).

    PyYAML shares an aliased node instead of copying it, but validation walks every reference:
    counting references before they are followed keeps the walk itself bounded.
    """
    count = 1
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            children: list[Any] = [*node.keys(), *node.values()]
        elif isinstance(node, list):
            children = node
        else:
            continue
        count += len(children)
        if count > MAX_POLICY_VALUES:
            raise PolicyError(
                f"policy expands to more than {MAX_POLICY_VALUES} values (YAML aliases repeating large or "
                "recursive parts?)", source=source,
            )
        stack.extend(children)


def _format_validation_error(exc: ValidationError) -> tuple[str, str]:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "<root>"
    message = first.get("msg", "invalid value")
    if first.get("type") == "extra_forbidden":
        message = "unknown key (not in the policy schema)"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error(s))"
    return field, message


def parse_policy(data: bytes, source: str = "<policy>") -> LoadedPolicy:
    """Validate raw policy bytes.

    Args:
        data: The file content.
        source: Name used in error messages and recorded in results.

    Returns:
        The validated policy with its sha256.

    Raises:
        PolicyError: for anything that is not a valid policy.
    """
    if not data or not data.strip():
        raise PolicyError("policy is empty", source=source)
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(f"policy is larger than {MAX_POLICY_BYTES} bytes", source=source)
    if b"\x00" in data:
        raise PolicyError("policy is a binary file, expected YAML text", source=source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError("policy is not UTF-8 text", source=source) from None
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise PolicyError(f"{where}malformed YAML: {exc.problem or exc.context}", source=source) from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        raise PolicyError(f"malformed YAML: {type(exc).__name__}", source=source) from None
    if not isinstance(document, dict):
        kind = "empty document" if document is None else f"a YAML {type(document).__name__}"
        raise PolicyError(f"policy must be a YAML mapping, got {kind}", source=source)
    _check_expanded_size(document, source)
    try:
        policy = Policy.model_validate(document)
    except ValidationError as exc:
        field, message = _format_validation_error(exc)
        raise PolicyError(message, source=source, field=field) from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise PolicyError(f"invalid policy: {type(exc).__name__}", source=source) from None
    return LoadedPolicy(policy=policy, sha256=hashlib.sha256(data).hexdigest(), source=source)


def load_policy(path: str | os.PathLike[str]) -> LoadedPolicy:
    """Load and validate a policy file.

    Raises:
        PolicyError: the path is missing, unreadable, or not a valid policy.
    """
    if path is None or str(path).strip() == "":
        raise PolicyError("no policy given; gates refuse to run without a policy")
    p = Path(path)
    try:
        if p.is_dir():
            raise PolicyError("policy path is a directory, expected a YAML file", source=str(p))
        data = p.read_bytes()
    except FileNotFoundError:
        raise PolicyError("policy file not found", source=str(p)) from None
    except PermissionError:
        raise PolicyError("policy file is not readable (permission denied)", source=str(p)) from None
    except OSError as exc:
        raise PolicyError(f"cannot read policy file: {exc.strerror}", source=str(p)) from None
    return parse_policy(data, source=str(p))


def policy_json_schema() -> dict[str, Any]:
    """JSON Schema of the policy format (what ``aisec policy schema`` prints)."""
    return Policy.model_json_schema()
