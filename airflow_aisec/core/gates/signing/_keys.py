"""Signing keys on disk: load PEM keys (EC P-256/384/521 only), fingerprint and re-encode them.

A key's fingerprint is ``sha256:<hex>`` over its DER SubjectPublicKeyInfo: what the policy's
``signing.trusted_keys[].fingerprint`` names. Private key material never appears in a message.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from airflow_aisec.core.io.files import read_user_file
from airflow_aisec.core.io.storage import is_s3_uri
from airflow_aisec.exceptions import ConfigurationError

#: Largest key file accepted (public or private PEM): a key is a few hundred bytes.
MAX_KEY_BYTES = 64 * 1024


def check_ec_key(public_key: Any, what: str) -> None:
    """Refuse anything but an EC P-256/384/521 key (what model-signing's key signer supports)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ConfigurationError(f"{what} is not an elliptic-curve key (model-signing needs EC P-256/384/521)")
    if public_key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
        raise ConfigurationError(f"{what} uses curve {public_key.curve.name}; only P-256/384/521 are supported")


def key_fingerprint(public_key: Any) -> str:
    """``sha256:<hex>`` over the public key's DER SubjectPublicKeyInfo."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def public_key_pem(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(data: bytes, what: str = "public key") -> Any:
    """Load a PEM public key (EC P-256/384/521 only).

    Raises:
        ConfigurationError: not a PEM public key, or not a supported EC key.
    """
    from cryptography.hazmat.primitives import serialization

    if len(data) > MAX_KEY_BYTES:
        raise ConfigurationError(f"{what} is larger than {MAX_KEY_BYTES} bytes")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ConfigurationError(f"{what} is not a PEM public key") from None
    except Exception as exc:  # noqa: BLE001 - cryptography raises its own types for odd input
        raise ConfigurationError(f"{what} could not be parsed ({type(exc).__name__})") from None
    check_ec_key(key, what)
    return key


def load_private_key(path: str | os.PathLike[str], password: bytes | None = None) -> Any:
    """Load a local PEM EC private key (the value never appears in a message).

    Raises:
        ConfigurationError: missing, unreadable, not a regular file (FIFO, device, directory, symlink
            loop), larger than ``MAX_KEY_BYTES``, encrypted without a password, wrong password,
            or not an EC P-256/384/521 key.
    """
    from cryptography.hazmat.primitives import serialization

    p = Path(path)
    if is_s3_uri(str(path)):
        raise ConfigurationError("private keys are read from local files only, not from S3")
    data = read_user_file(p, limit=MAX_KEY_BYTES, what="private key", error=ConfigurationError)
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError:
        raise ConfigurationError(
            f"private key {p} is encrypted and no password was given, or a password was given for an "
            "unencrypted key"
        ) from None
    except ValueError:
        raise ConfigurationError(f"{p} is not a PEM private key, or the password is wrong") from None
    except Exception as exc:  # noqa: BLE001
        raise ConfigurationError(f"private key {p} could not be loaded ({type(exc).__name__})") from None
    finally:
        del data
    check_ec_key(key.public_key(), f"private key {p}")
    return key
