"""Everything the policy grants one DAG (or one of its tasks): concrete KV paths and database roles.

Used when the secrets check is asked about the grants themselves rather than about the paths an
operator requests (``aisec secrets check`` without paths). Patterns are expanded by listing the
KV engine from their literal prefix (``list`` capability on the metadata path, bounded);
database roles are checked with ``sys/capabilities-self``, so no credentials are created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_aisec.core.gates.secrets._masking import GATE
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.secrets import (
    SecretsPolicy,
    is_literal,
    literal_prefix,
    pattern_regex,
)
from airflow_aisec.core.result import Finding, InputRef
from airflow_aisec.exceptions import AccessDeniedError

if TYPE_CHECKING:
    from airflow_aisec.core.io.vault import VaultClient

#: Upper bound on secrets enumerated (and folders listed) for one pattern.
MAX_PATTERN_MATCHES = 1000


@dataclass
class Granted:
    """What the grants of a DAG/task name, made concrete."""

    paths: list[str] = field(default_factory=list)
    database_roles: list[str] = field(default_factory=list)
    patterns: int = 0
    findings: list[Finding] = field(default_factory=list)


def _enumerate_pattern(vault: VaultClient, section: SecretsPolicy, pattern: str) -> list[str]:
    """Concrete secrets matching a pattern, by listing from its literal prefix (bounded)."""
    regex = pattern_regex(pattern)
    prefix = literal_prefix(pattern)
    depth = None if "**" in pattern else len(pattern.split("/"))
    matches: list[str] = []
    queue = [prefix]
    visited = 0
    while queue:
        folder = queue.pop(0)
        visited += 1
        if visited > MAX_PATTERN_MATCHES:
            break
        keys = vault.kv_list(section.kv_mount, folder, kv_version=section.kv_version, gate=GATE)
        for key in keys or []:
            full = f"{folder}/{key}" if folder else key
            if key.endswith("/"):
                sub = full.rstrip("/")
                if depth is None or len(sub.split("/")) < depth:
                    queue.append(sub)
            elif regex.match(full):
                matches.append(full)
                if len(matches) >= MAX_PATTERN_MATCHES:
                    return matches
    return matches


def granted(vault: VaultClient, section: SecretsPolicy, *, dag_id: str, task_id: str | None) -> Granted:
    """Every concrete path and database role the grants give this DAG/task (``task_id`` None: any task).

    A pattern that matches no secret is a finding (``secrets.pattern_matches_nothing``).

    Raises:
        AccessDeniedError: the token may not list a pattern's folder.
        ServiceUnavailableError: Vault unreachable or sealed.
    """
    out = Granted()
    for grant in section.grants_for(dag_id, task_id):
        for pattern in grant.paths:
            if is_literal(pattern):
                targets = [pattern]
            else:
                out.patterns += 1
                targets = _enumerate_pattern(vault, section, pattern)
                if not targets:
                    out.findings.append(Finding(
                        rule=f"{GATE}.pattern_matches_nothing",
                        severity=Severity.MEDIUM,
                        message=f"no secret under {section.kv_mount}/ matches the granted pattern {pattern!r}",
                        count=0,
                        location={"path": pattern, "dag_id": grant.dag_id},
                    ))
            out.paths.extend(p for p in targets if p not in out.paths)
        out.database_roles.extend(r for r in grant.database_roles if r not in out.database_roles)
    return out


def check_database_role(vault: VaultClient, section: SecretsPolicy, role: str) -> InputRef:
    """Whether this token may get credentials for ``role`` (its capabilities; nothing is issued).

    Raises:
        AccessDeniedError: rule ``secrets.database_role_unreadable``.
        ServiceUnavailableError: Vault unreachable or sealed.
    """
    api_path = f"{section.database.mount}/creds/{role}"
    try:
        caps = vault.capabilities_self(api_path, gate=GATE)
    except AccessDeniedError:
        caps = []  # the token may not even ask (e.g. it is invalid): not readable
    if not ({"read", "root"} & set(caps)):
        raise AccessDeniedError(
            f"the token may not read vault://{api_path} (capabilities: {', '.join(caps) or 'none'})",
            rule=f"{GATE}.database_role_unreadable",
            location={"role": role},
        )
    return InputRef(uri=f"vault://{api_path}")
