"""The wrapped hand-off between tasks: single-use Vault response-wrapping tokens.

The gate asks Vault to *wrap* a read of exactly the validated version (``X-Vault-Wrap-TTL``), so
the wrapping token's ``creation_path`` names the real secret path (a token minted with
``sys/wrapping/wrap`` would say ``sys/wrapping/wrap`` and could carry anything), and hands out
only :class:`SecretHandle` objects (the token plus value-free metadata).

The consumer looks the token up, refuses a token whose creation path is not the expected one
(substituted), unwraps it once and masks every value before returning it. A token that no longer
exists before its TTL ran out was unwrapped by someone else: :class:`WrappingTokenGone`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from airflow_aisec.core.gates.secrets._masking import GATE, Mask, mask_values, no_mask
from airflow_aisec.core.gates.secrets._requests import SecretRequest, validate_secret_path
from airflow_aisec.core.io.vault import kv_api_path, kv_secret, vault_uri
from airflow_aisec.core.policy.base import StrictModel
from airflow_aisec.core.policy.sections.secrets import SecretsPolicy
from airflow_aisec.exceptions import AccessDeniedError, InputDataError, SecurityViolationError

if TYPE_CHECKING:
    from airflow_aisec.core.io.vault import VaultClient

#: Version of the handle format that crosses XCom.
HANDLE_VERSION = 1
#: Clock-skew allowance when telling an expired wrapping token from a stolen one.
EXPIRY_GRACE_SECONDS = 5


class SecretHandle(StrictModel):
    """What crosses XCom for one secret: a single-use wrapping token and value-free metadata.

    The token itself is sensitive until used (whoever unwraps it first gets the secret): it is
    masked in every process that sees it and never written to results or the audit trail.
    """

    handle_version: Literal[1] = HANDLE_VERSION
    path: str
    mount: str
    kv_version: Literal[1, 2] = 2
    secret_version: int | None = None
    creation_path: str
    token: str = Field(min_length=1, repr=False)
    accessor: str
    ttl: int
    created_at: str
    expires_at: str

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        try:
            return validate_secret_path(value)
        except InputDataError as exc:
            raise ValueError(str(exc)) from None

    @property
    def expected_creation_path(self) -> str:
        return kv_api_path(self.mount, self.path, self.kv_version)

    def public(self) -> dict[str, Any]:
        """The handle without its token (for results, logs and the audit trail)."""
        return self.model_dump(mode="json", exclude={"token"})


def _parse_time(value: str) -> _dt.datetime | None:
    try:
        parsed = _dt.datetime.fromisoformat(value)  # Python 3.11 reads Vault's "...Z" with nanoseconds
    except (ValueError, AttributeError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.UTC)


def wrap_kv(
    vault: VaultClient,
    mount: str,
    path: str,
    *,
    ttl: int,
    kv_version: int = 2,
    version: int | None = None,
    mask: Mask = no_mask,
) -> SecretHandle:
    """Have Vault wrap a read of one KV secret; the value never reaches this process.

    Raises:
        ServiceUnavailableError: Vault unreachable or sealed.
        AccessDeniedError: denied or missing path.
        InputDataError: Vault did not return wrap information.
    """
    validate_secret_path(path)
    info = vault.kv_wrap(mount, path, ttl=ttl, kv_version=kv_version, version=version, gate=GATE)
    token = str(info["token"])
    mask(token)  # whoever holds it first gets the secret
    created = _parse_time(str(info.get("creation_time", ""))) or _dt.datetime.now(_dt.UTC)
    wrapped_ttl = int(info.get("ttl") or ttl)
    return SecretHandle(
        path=path,
        mount=mount,
        kv_version=kv_version,
        secret_version=version,
        creation_path=str(info.get("creation_path", "")),
        token=token,
        accessor=str(info.get("accessor", "")),
        ttl=wrapped_ttl,
        created_at=created.isoformat(),
        expires_at=(created + _dt.timedelta(seconds=wrapped_ttl)).isoformat(),
    )


def issue_wrapped_secrets(
    vault: VaultClient,
    section: SecretsPolicy,
    *,
    requests: Sequence[SecretRequest],
    versions: Mapping[str, int | None],
    ttl: int,
    mask: Mask = no_mask,
) -> list[SecretHandle]:
    """Wrap each validated secret (pinned to the validated version) for one downstream unwrap.

    Raises:
        ServiceUnavailableError: Vault unreachable or sealed.
        AccessDeniedError: denied or missing (e.g. deleted since validation).
    """
    return [
        wrap_kv(vault, section.kv_mount, req.path, ttl=ttl, kv_version=section.kv_version,
                version=versions.get(req.path), mask=mask)
        for req in requests
    ]


class WrappingTokenGone(SecurityViolationError):
    """The wrapping token no longer exists before its TTL ran out: someone unwrapped it first."""


def unwrap_handle(
    vault: VaultClient, handle: SecretHandle, *, mask: Mask, now: _dt.datetime | None = None
) -> dict[str, Any]:
    """Look up, check and unwrap one handle; every value is masked before it is returned.

    Raises:
        WrappingTokenGone: the token was already unwrapped (or revoked) before it expired.
        AccessDeniedError: the token expired (rule ``secrets.wrapping_token_expired``).
        SecurityViolationError: the token wraps something other than the expected path.
        ServiceUnavailableError: Vault unreachable or sealed.
    """
    mask(handle.token)
    what = vault_uri(handle.mount, handle.path, handle.secret_version)
    location = {"path": handle.path, "accessor": handle.accessor}

    def gone() -> AccessDeniedError | WrappingTokenGone:
        current = now or _dt.datetime.now(_dt.UTC)
        expires = _parse_time(handle.expires_at)
        if expires is not None and current > expires + _dt.timedelta(seconds=EXPIRY_GRACE_SECONDS):
            return AccessDeniedError(
                f"wrapping token for {what} expired (TTL {handle.ttl}s) before it was used; "
                "clear the gate task "
                "to issue a new one",
                rule=f"{GATE}.wrapping_token_expired",
                location=location,
            )
        return WrappingTokenGone(
            f"wrapping token for {what} was already unwrapped or revoked before its TTL ran out: "
            "the secret may have been intercepted",
            rule=f"{GATE}.wrapping_token_reused",
            location=location,
        )

    info = vault.wrapping_lookup(handle.token, what=what, gate=GATE)
    if info is None:
        raise gone()
    creation_path = info.get("creation_path")
    # Checked before unwrapping: a substituted token is never consumed, so it stays as evidence.
    if creation_path != handle.expected_creation_path or creation_path != handle.creation_path:
        raise SecurityViolationError(
            f"wrapping token handed over for {what} was created for a different Vault path: "
            "the handle was substituted",
            rule=f"{GATE}.wrapping_token_substituted",
            location={**location, "creation_path": str(creation_path)},
        )
    response = vault.unwrap(handle.token, what=what, gate=GATE)
    if response is None:
        raise gone()
    secret = kv_secret(response, kv_version=handle.kv_version, what=what, gate=GATE)
    data = secret.data
    mask_values(data, mask)
    if handle.secret_version is not None and secret.version != handle.secret_version:
        # Same path, other version (e.g. a rotated-out credential): not what the gate validated.
        data.clear()
        raise SecurityViolationError(
            f"wrapping token handed over for {what} wraps another version of the secret: the handle was substituted",
            rule=f"{GATE}.wrapping_token_substituted",
            location={**location, "version": secret.version},
        )
    return data
