"""Vault Transit signing keys: the public side, as Vault describes it.

The private key never leaves Vault: signing sends a digest through
:meth:`~airflow_aisec.core.io.vault.VaultClient.transit_sign_digest`, verification only needs
the public keys read here (``GET transit/keys/NAME``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.signing._keys import load_public_key
from airflow_aisec.exceptions import ConfigurationError

if TYPE_CHECKING:
    from airflow_aisec.core.io.vault import VaultClient


@dataclass(frozen=True)
class TransitKey:
    """A Transit key's public side as read from Vault."""

    name: str
    mount: str
    key_type: str
    latest_version: int
    public_keys: dict[int, Any]


def read_transit_key(vault: VaultClient, name: str, mount: str = "transit") -> TransitKey:
    """Read a Transit key's type and public keys.

    Raises:
        ServiceUnavailableError: Vault unreachable or sealed.
        AccessDeniedError: denied, or no such key.
        ConfigurationError: not an ``ecdsa-p256`` key.
    """
    data = vault.transit_read_key(name, mount=mount)
    key_type = str(data.get("type", ""))
    if key_type != "ecdsa-p256":
        raise ConfigurationError(
            f"Transit key '{name}' has type '{key_type or 'unknown'}'; model signing needs an ecdsa-p256 key"
        )
    public_keys: dict[int, Any] = {}
    for version, info in (data.get("keys") or {}).items():
        pem = (info or {}).get("public_key") if isinstance(info, dict) else None
        if pem:
            public_keys[int(version)] = load_public_key(pem.encode("ascii"), f"Transit key '{name}' v{version}")
    latest = int(data.get("latest_version") or (max(public_keys) if public_keys else 0))
    if not public_keys:
        raise ConfigurationError(f"Transit key '{name}' exposes no public keys")
    return TransitKey(name=name, mount=mount, key_type=key_type, latest_version=latest, public_keys=public_keys)
