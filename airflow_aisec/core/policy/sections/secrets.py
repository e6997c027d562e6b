"""The ``secrets`` policy section (schema only; the engine is :mod:`airflow_aisec.core.gates.secrets`).

Grants give KV path patterns and database roles to DAGs by ``dag_id`` glob (optionally narrowed
by ``task_id`` glob); nothing is readable unless a grant allows it. Path patterns and durations
are part of the schema, so their syntax lives here too.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from airflow_aisec.core.policy.base import GateSection, StrictModel
from airflow_aisec.exceptions import ConfigurationError

#: Largest accepted TTLs (Vault's own ceilings are configurable; these keep policies sane).
MAX_WRAP_TTL_SECONDS = 24 * 3600
MAX_LEASE_TTL_SECONDS = 7 * 24 * 3600

_PATTERN_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.@=+\-*]+$")
_MOUNT_RE = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")
#: A database secrets engine role: a literal name.
ROLE_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


# --------------------------------------------------------------------------------------------
# Durations and path patterns
# --------------------------------------------------------------------------------------------
def parse_duration(value: Any) -> int:
    """Seconds from an int or a Vault-style duration (``"90s"``, ``"5m"``, ``"1h"``, ``"1d"``).

    Raises:
        ValueError: not a positive duration.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError("expected a duration such as 300, '300s', '5m' or '1h'")
    if seconds <= 0:
        raise ValueError("duration must be positive")
    return seconds


#: Seconds; written as an int or a Vault-style duration string (the JSON Schema accepts both).
Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": r"^\s*\d+\s*[smhd]?\s*$"},
            ]
        }
    ),
]


def _validate_pattern(pattern: str) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("path pattern must be a non-empty string")
    for segment in pattern.split("/"):
        if segment in ("", ".", "..") or not _PATTERN_SEGMENT_RE.match(segment):
            raise ValueError(
                f"invalid path pattern {pattern!r}: segments of [A-Za-z0-9_.@=+-*] joined by '/'"
            )
        if "**" in segment and segment != "**":
            raise ValueError(f"invalid path pattern {pattern!r}: '**' must be a whole segment")
    return pattern


def _segment_regex(segment: str) -> str:
    return "".join("[^/]*" if ch == "*" else re.escape(ch) for ch in segment)


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path pattern: ``*`` matches within one segment, a ``**`` segment any number of segments."""
    parts = pattern.split("/")
    regex = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _segment_regex(part) + ("" if last else "/")
    return re.compile(rf"\A{regex}\Z")


def path_matches(pattern: str, path: str) -> bool:
    """Whether a concrete path matches a grant pattern (see :func:`pattern_regex`)."""
    return pattern_regex(pattern).match(path) is not None


def is_literal(pattern: str) -> bool:
    return "*" not in pattern


def literal_prefix(pattern: str) -> str:
    """The leading segments of a pattern without wildcards (``a/b/*/c`` -> ``a/b``)."""
    out = []
    for segment in pattern.split("/"):
        if "*" in segment:
            break
        out.append(segment)
    return "/".join(out)


# --------------------------------------------------------------------------------------------
# Policy section
# --------------------------------------------------------------------------------------------
def _valid_mount(value: str) -> str:
    if not _MOUNT_RE.match(value):
        raise ValueError(f"invalid mount {value!r}")
    return value


class SecretGrant(StrictModel):
    """Which secrets the matching DAGs (and tasks) may read.

    Attributes:
        dag_id: ``fnmatch`` glob over DAG ids.
        task_id: ``fnmatch`` glob over the id of the task that reads (the gate task for a wrapped
            hand-off, the task itself for dynamic credentials). Default ``*``.
        paths: KV path patterns relative to ``kv_mount``: ``*`` matches within one segment,
            a ``**`` segment matches any depth.
        database_roles: Database secrets engine roles (literal names) the tasks may get
            credentials for.
        reason: Why the grant exists (ticket, owner).
    """

    dag_id: str = Field(min_length=1)
    task_id: str = Field(default="*", min_length=1)
    paths: list[str] = Field(default_factory=list)
    database_roles: list[str] = Field(default_factory=list)
    reason: str | None = None

    @field_validator("paths")
    @classmethod
    def _check_paths(cls, value: list[str]) -> list[str]:
        return [_validate_pattern(p) for p in value]

    @field_validator("database_roles")
    @classmethod
    def _check_roles(cls, value: list[str]) -> list[str]:
        for role in value:
            if not ROLE_RE.match(role):
                raise ValueError(f"invalid database role {role!r}: a literal role name, no globs")
        return value

    @model_validator(mode="after")
    def _grants_something(self) -> SecretGrant:
        if not self.paths and not self.database_roles:
            raise ValueError("a grant needs at least one of 'paths' or 'database_roles'")
        return self

    def applies_to(self, dag_id: str, task_id: str | None) -> bool:
        """Whether the grant covers this DAG and task (``task_id`` None: some task of the DAG)."""
        return fnmatch.fnmatchcase(dag_id, self.dag_id) and (
            task_id is None or fnmatch.fnmatchcase(task_id, self.task_id)
        )


class DatabaseSecretsSettings(StrictModel):
    """Dynamic database credentials (Vault's database secrets engine).

    Attributes:
        mount: Mount point of the database secrets engine.
        max_lease_ttl: Longest lease accepted; a role handing out longer-lived credentials is a
            finding (``secrets.lease_ttl_exceeds_policy``) and the credentials are revoked at once.
    """

    mount: str = "database"
    max_lease_ttl: Duration = 3600

    _check_mount = field_validator("mount")(classmethod(lambda cls, value: _valid_mount(value)))

    @field_validator("max_lease_ttl")
    @classmethod
    def _check_ttl(cls, value: int) -> int:
        if value > MAX_LEASE_TTL_SECONDS:
            raise ValueError(f"max_lease_ttl must be at most {MAX_LEASE_TTL_SECONDS} seconds")
        return value


class SecretsPolicy(GateSection):
    """Policy section ``secrets``.

    Example::

        secrets:
          kv_mount: secret
          kv_version: 2
          wrap_ttl: 5m
          grants:
            - dag_id: "train_*"
              paths: ["ml/training/*"]
              database_roles: [train-readonly]
          database: {mount: database, max_lease_ttl: 1h}

    Attributes:
        kv_mount: Mount point of the KV secrets engine the paths are relative to.
        kv_version: KV engine version (1 or 2).
        wrap_ttl: Lifetime of the single-use wrapping tokens handed to downstream tasks; also the
            longest an operator may ask for.
        grants: Who may read what. Nothing is readable unless a grant allows it.
        unmaskable_keys: Key names (``fnmatch`` globs) whose values may be too short for Airflow's
            masker (e.g. ``port``); any other short value is a ``secrets.value_unmaskable`` finding.
        database: Dynamic database credential settings.
    """

    kv_mount: str = "secret"
    kv_version: Literal[1, 2] = 2
    wrap_ttl: Duration = 300
    grants: list[SecretGrant] = Field(default_factory=list)
    unmaskable_keys: list[str] = Field(default_factory=list)
    database: DatabaseSecretsSettings = DatabaseSecretsSettings()

    _check_mount = field_validator("kv_mount")(classmethod(lambda cls, value: _valid_mount(value)))

    @field_validator("wrap_ttl")
    @classmethod
    def _check_wrap_ttl(cls, value: int) -> int:
        if value > MAX_WRAP_TTL_SECONDS:
            raise ValueError(f"wrap_ttl must be at most {MAX_WRAP_TTL_SECONDS} seconds")
        return value

    # --- queries ---------------------------------------------------------------------------
    def grants_for(self, dag_id: str, task_id: str | None) -> list[SecretGrant]:
        """The grants of a DAG's task (``task_id`` None: of any of its tasks)."""
        return [g for g in self.grants if g.applies_to(dag_id, task_id)]

    def path_allowed(self, dag_id: str, task_id: str | None, path: str) -> bool:
        return any(path_matches(p, path) for g in self.grants_for(dag_id, task_id) for p in g.paths)

    def database_role_allowed(self, dag_id: str, task_id: str | None, role: str) -> bool:
        return any(role in g.database_roles for g in self.grants_for(dag_id, task_id))

    def key_may_be_unmaskable(self, key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, glob) for glob in self.unmaskable_keys)

    def effective_wrap_ttl(self, requested: Any = None) -> int:
        """The TTL to wrap with: the policy's, or a shorter one the operator asked for.

        Raises:
            ConfigurationError: the request is not a duration or exceeds the policy.
        """
        if requested is None or requested == "":
            return self.wrap_ttl
        try:
            seconds = parse_duration(requested)
        except ValueError as exc:
            raise ConfigurationError(f"wrap_ttl: {exc}") from None
        if seconds > self.wrap_ttl:
            raise ConfigurationError(
                f"wrap_ttl {seconds}s exceeds the policy's secrets.wrap_ttl of {self.wrap_ttl}s"
            )
        return seconds


__all__ = ["DatabaseSecretsSettings", "Duration", "SecretGrant", "SecretsPolicy"]
