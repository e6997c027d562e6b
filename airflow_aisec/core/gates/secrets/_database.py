"""Dynamic database credentials (Vault's database secrets engine): issue, bound, revoke.

Username and password are masked the moment they arrive; a lease longer than the policy allows
is a finding; revocation is synchronous (the database user is dropped before it returns).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_aisec.core.gates.secrets._masking import GATE, Mask
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.secrets import SecretsPolicy
from airflow_aisec.core.result import Finding
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    from airflow_aisec.core.io.vault import VaultClient

_LEASE_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


@dataclass(frozen=True, repr=False)
class DatabaseCredentials:
    """A short-lived database user from Vault's database secrets engine.

    ``repr`` shows the role and lease only, never the username or password.
    """

    role: str
    username: str
    password: str
    lease_id: str
    lease_duration: int
    renewable: bool

    def __repr__(self) -> str:
        return (
            f"DatabaseCredentials(role={self.role!r}, lease_duration={self.lease_duration}, "
            "username=***, password=***)"
        )

    __str__ = __repr__


def issue_database_credentials(vault: VaultClient, mount: str, role: str, *, mask: Mask) -> DatabaseCredentials:
    """Ask the database secrets engine for credentials; username and password are masked first.

    Raises:
        ServiceUnavailableError: Vault unreachable or sealed.
        AccessDeniedError: denied, or no such role.
        InputDataError: the response is not a credential.
    """
    response = vault.database_credentials(mount, role, gate=GATE)
    data = response.get("data")
    lease_id = response.get("lease_id")
    if not isinstance(data, Mapping) or not data.get("username") or not data.get("password") or not lease_id:
        if lease_id:
            revoke_lease(vault, str(lease_id))
        raise InputDataError(f"Vault returned no database credentials for vault://{mount}/creds/{role}")
    username, password = str(data["username"]), str(data["password"])
    mask(password)
    mask(username)
    return DatabaseCredentials(
        role=role,
        username=username,
        password=password,
        lease_id=str(lease_id),
        lease_duration=int(response.get("lease_duration") or 0),
        renewable=bool(response.get("renewable")),
    )


def revoke_lease(vault: VaultClient, lease_id: str) -> None:
    """Revoke a lease now (synchronously: the database user is dropped before this returns).

    Raises:
        InputDataError: malformed lease id.
        ServiceUnavailableError: Vault unreachable or sealed.
        AccessDeniedError: the token may not revoke it.
    """
    if not isinstance(lease_id, str) or not _LEASE_ID_RE.match(lease_id) or ".." in lease_id.split("/"):
        raise InputDataError("malformed lease id")
    vault.revoke_lease(lease_id, gate=GATE)


def lease_findings(section: SecretsPolicy, creds: DatabaseCredentials) -> list[Finding]:
    """A lease longer than the policy allows is a finding."""
    limit = section.database.max_lease_ttl
    if creds.lease_duration <= 0 or creds.lease_duration > limit:
        return [
            Finding(
                rule=f"{GATE}.lease_ttl_exceeds_policy",
                severity=Severity.HIGH,
                message=(
                    f"database role '{creds.role}' issued a lease of {creds.lease_duration}s; "
                    "the policy allows "
                    f"at most {limit}s (set the role's default_ttl/max_ttl lower)"
                ),
                count=1,
                location={"role": creds.role, "lease_duration": creds.lease_duration, "max_lease_ttl": limit},
            )
        ]
    return []
