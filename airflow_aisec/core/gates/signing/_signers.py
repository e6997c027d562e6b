"""Who signs: one :class:`Signer` per kind of key (the shape of sigstore/model-transparency's signers).

* :class:`PemKeySigner`: a local PEM EC private key (P-256/384/521), model-signing's own signer.
* :class:`TransitSigner`: a Vault/OpenBao Transit ``ecdsa-p256`` key; the private key never
  leaves Vault. The DSSE pre-authentication encoding is hashed locally (sha256) and Vault signs
  that digest (``prehashed``, ``sha2-256``, ``asn1``). The bundle names the key by model-signing's
  hint (sha256 of the SPKI PEM), so any holder of the Transit public key verifies it with stock tools.

Both produce the same sigstore bundle (v0.3 JSON) over the same in-toto payload.
"""

from __future__ import annotations

import abc
import os
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.signing import _model_signing_compat as compat
from airflow_aisec.core.gates.signing._keys import key_fingerprint, load_private_key
from airflow_aisec.core.gates.signing._transit import read_transit_key
from airflow_aisec.exceptions import ConfigurationError

if TYPE_CHECKING:
    from airflow_aisec.core.io.vault import VaultClient
    from airflow_aisec.core.policy.sections.signing import SigningPolicy, TrustedKey


class Signer(abc.ABC):
    """A signing key: its public key, whether the policy trusts it, and the bundle it signs."""

    @property
    @abc.abstractmethod
    def public_key(self) -> Any:
        """The ``cryptography`` public key that verifies this signer's signatures."""

    @abc.abstractmethod
    def trusted_by(self, policy: SigningPolicy) -> TrustedKey | None:
        """The policy's trusted key entry for this key (and version), or None."""

    @abc.abstractmethod
    def metrics(self) -> dict[str, Any]:
        """Value-free description of the key for the result (kind, Transit name and version)."""

    #: The model-signing signer (``model_signing._signing.sign_sigstore_pb.Signer``), set by subclasses.
    _signer: Any

    def sign(self, payload: Any) -> str:
        """Sign a model-signing payload; returns the sigstore bundle JSON."""
        return compat.sign_payload(self._signer, payload)


class PemKeySigner(Signer):
    """A local PEM EC private key; loaded once to check it (then dropped), then read by the library's signer.

    Raises:
        ConfigurationError: the key is missing, unreadable, encrypted without (or with a wrong)
            password, or not EC P-256/384/521.
    """

    def __init__(self, path: str | os.PathLike[str], password: bytes | None = None) -> None:
        key = load_private_key(path, password)
        self._public_key = key.public_key()
        del key
        self._signer = compat.make_key_signer(str(path), password)

    @property
    def public_key(self) -> Any:
        return self._public_key

    def trusted_by(self, policy: SigningPolicy) -> TrustedKey | None:
        return policy.trusted_fingerprint(key_fingerprint(self._public_key))

    def metrics(self) -> dict[str, Any]:
        return {"key": "pem"}


class TransitSigner(Signer):
    """A Vault Transit ``ecdsa-p256`` key version (default: the latest).

    Raises:
        ServiceUnavailableError / AccessDeniedError: from Vault (reading the key).
        ConfigurationError: not an ``ecdsa-p256`` key, or no such version.
    """

    def __init__(self, vault: VaultClient, name: str, *, mount: str = "transit", version: int | None = None) -> None:
        tk = read_transit_key(vault, name, mount)
        self._version = version or tk.latest_version
        if self._version not in tk.public_keys:
            raise ConfigurationError(f"Transit key '{tk.name}' has no version {self._version}")
        self._vault = vault
        self._key = tk
        self._public_key = tk.public_keys[self._version]
        self._signer = compat.make_digest_signer(self._sign_digest, self._public_key)

    @property
    def public_key(self) -> Any:
        return self._public_key

    def trusted_by(self, policy: SigningPolicy) -> TrustedKey | None:
        ref = policy.trusted_transit(self._key.name, self._key.mount)
        return ref if ref and ref.transit and self._version in ref.transit.versions else None

    def metrics(self) -> dict[str, Any]:
        return {"key": "transit", "transit_key": self._key.name, "transit_mount": self._key.mount,
                "transit_key_version": self._version}

    def _sign_digest(self, digest: bytes) -> bytes:
        return self._vault.transit_sign_digest(self._key.name, digest, mount=self._key.mount,
                                               version=self._version)
