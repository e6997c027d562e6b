"""A fresh PEM signing key pair on disk, as ``aisec model sign --key`` / ``verify --public-key`` take it.

The private key is made per call by ``cryptography`` and written under the caller's temporary
directory: no key text is stored anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple


class PemKeyPair(NamedTuple):
    """Paths of the two PEM files and the public key's fingerprint (as a policy's ``trusted_keys`` lists it)."""

    private: Path
    public: Path
    fingerprint: str


def write_pem_keypair(directory: Path, stem: str = "k") -> PemKeyPair:
    """A new ECDSA P-256 key: ``<stem>.pem`` (PKCS#8, unencrypted) and ``<stem>.pub`` in ``directory``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from airflow_aisec.core.gates.signing import key_fingerprint

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = directory / f"{stem}.pem", directory / f"{stem}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return PemKeyPair(private, public, key_fingerprint(key.public_key()))
