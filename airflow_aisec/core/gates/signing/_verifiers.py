"""Who may have signed: one :class:`Verifier` per kind of key the caller names (PEM key or Transit key).

Trust never comes from the bundle. The caller names a key and the policy must trust it: a PEM key
by its fingerprint, a Transit key by name and explicit versions (a rotation does not extend trust
by itself). :func:`authenticate` then picks the trusted key that signed the bundle, or says why
none did (another key, an untrusted version, an altered bundle).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.signing import _model_signing_compat as compat
from airflow_aisec.core.gates.signing._errors import malformed, untrusted
from airflow_aisec.core.gates.signing._keys import MAX_KEY_BYTES, key_fingerprint, load_public_key
from airflow_aisec.core.gates.signing._transit import read_transit_key
from airflow_aisec.exceptions import ConfigurationError

if TYPE_CHECKING:
    from airflow_aisec.core.gates.signing._bundle import ParsedBundle
    from airflow_aisec.core.io.vault import VaultClient
    from airflow_aisec.core.policy.sections.signing import SigningPolicy


@dataclass(frozen=True)
class Candidate:
    """A trusted public key that may have signed the bundle."""

    trusted_id: str
    public_key: Any
    fingerprint: str
    hint: str
    description: str
    transit_version: int | None = None


class Verifier(abc.ABC):
    """The key a caller verifies with; the policy decides whether it is trusted."""

    @abc.abstractmethod
    def candidates(self, policy: SigningPolicy) -> tuple[list[Candidate], dict[str, str]]:
        """The trusted candidates, and hints of known-but-untrusted versions of the same key
        (hint -> description) for a precise message.

        Raises:
            UntrustedKeyError: the policy does not trust the named key (or none of its versions exist).
        """


class PemKeyVerifier(Verifier):
    """A PEM public key (local path or ``s3://``) the policy lists by fingerprint."""

    def __init__(self, public_key: str, *, s3_client: Any = None) -> None:
        self._uri = public_key
        self._s3_client = s3_client

    def candidates(self, policy: SigningPolicy) -> tuple[list[Candidate], dict[str, str]]:
        from airflow_aisec.core.io.storage import read_bytes

        data = read_bytes(self._uri, s3_client=self._s3_client, limit=MAX_KEY_BYTES, what="public key")
        key = load_public_key(data, "public key")
        fp = key_fingerprint(key)
        trusted = policy.trusted_fingerprint(fp)
        if trusted is None:
            raise untrusted(f"the public key given ({fp}) is not among the policy's trusted keys",
                            "key_not_in_policy", fingerprint=fp)
        return [Candidate(trusted.id, key, fp, compat.public_key_hint(key), f"PEM key {fp}")], {}


class TransitVerifier(Verifier):
    """A Vault Transit key the policy lists with explicit versions; its public keys come from Vault."""

    def __init__(self, vault: VaultClient | None, name: str, *, mount: str | None = None) -> None:
        self._vault = vault
        self._name = name
        self._mount = mount

    def candidates(self, policy: SigningPolicy) -> tuple[list[Candidate], dict[str, str]]:
        trusted = policy.trusted_transit(self._name, self._mount)
        if trusted is None or trusted.transit is None:
            raise untrusted(f"Transit key '{self._name}' is not among the policy's trusted keys",
                            "key_not_in_policy", transit_key=self._name)
        if self._vault is None:
            raise ConfigurationError("verifying with a Transit key needs a Vault client")
        tk = read_transit_key(self._vault, trusted.transit.name, trusted.transit.mount)
        candidates: list[Candidate] = []
        others: dict[str, str] = {}
        for version, key in sorted(tk.public_keys.items()):
            desc = f"Transit key '{tk.name}' v{version}"
            hint = compat.public_key_hint(key)
            if version in trusted.transit.versions:
                candidates.append(Candidate(trusted.id, key, key_fingerprint(key), hint, desc, version))
            else:
                others[hint] = desc
        if not candidates:
            raise untrusted(
                f"none of the trusted versions {trusted.transit.versions} of Transit key '{tk.name}' exist in Vault",
                "key_not_in_policy", transit_key=tk.name,
            )
        return candidates, others


def verify_dsse(public_key: Any, bundle: ParsedBundle) -> bool:
    """Whether the bundle's DSSE signature verifies with ``public_key``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    algorithm = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[public_key.curve.key_size]
    try:
        public_key.verify(bundle.signature, compat.pae(bundle.raw_payload), ec.ECDSA(algorithm))
    except InvalidSignature:
        return False
    return True


def authenticate(bundle: ParsedBundle, candidates: list[Candidate], others: dict[str, str]) -> Candidate:
    """Pick the trusted key that signed the bundle, or raise why none did."""
    if bundle.hint is not None:
        chosen = next((c for c in candidates if c.hint == bundle.hint), None)
        if chosen is None:
            if bundle.hint in others:
                raise untrusted(
                    f"the model was signed with {others[bundle.hint]}, a version the policy does not trust",
                    "version_not_trusted", signer_hint=bundle.hint,
                )
            names = "; ".join(sorted({c.description for c in candidates}))
            raise untrusted(
                f"the model was signed by another key (key hint {bundle.hint[:16]}...), not by the trusted {names}",
                "other_key", signer_hint=bundle.hint,
            )
        if not verify_dsse(chosen.public_key, bundle):
            raise malformed(
                "the bundle names the trusted key but its DSSE signature does not verify: the bundle was altered "
                "after signing or its key hint was forged",
                "bad_signature",
            )
        return chosen
    # Older bundles carry no hint: accept only a key whose signature verifies.
    for candidate in candidates:
        if verify_dsse(candidate.public_key, bundle):
            return candidate
    raise untrusted("the signature does not verify with any trusted key (bundle has no key hint)", "other_key")
