"""Sealing the wrapped hand-off: what crosses XCom is useless without ``[aisec] handoff_key``.

A Vault wrapping token is a bearer credential until it is used: whoever calls
``sys/wrapping/unwrap`` with it first gets the secret. XComs are readable by every user who may
read the DAG (REST API, UI), and masking covers logs, not XCom. So the gate seals each token with
AES-256-GCM under a key only the workers hold (``[aisec] handoff_key``), and XCom carries only the
sealed token plus value-free metadata (path, accessor, TTL). The associated data binds a sealed
token to the DAG, the run, the gate task and the handle's public fields: copied into another run,
another task's XCom or another handle, it does not open (a security violation, like a substituted
token). Someone who can read XCom but cannot run tasks gets nothing usable; a DAG author, who runs
code on the workers, can open it (Airflow's trust model), and single use plus the interception
check still catch a token used twice.

Key format: 32 random bytes, URL-safe base64 (``aisec secrets handoff-key`` prints a new one).
Several comma-separated keys rotate: the first seals, any of them opens (each sealed token names
its key by a short fingerprint). No key: the gate hands nothing off and fails with a
configuration error; a plain token is never written to XCom, and a consumer refuses one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_aisec.core.evidence import canonical_json
from airflow_aisec.core.gates.secrets._masking import GATE
from airflow_aisec.core.gates.secrets._wrapping import SecretHandle
from airflow_aisec.exceptions import ConfigurationError, InputDataError, SecurityViolationError

#: Version of the sealed envelope that crosses XCom.
ENVELOPE_VERSION = 2
SEALED_PREFIX = "aisec-sealed:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12
MISSING_KEY = (
    "[aisec] handoff_key is not set: the secrets hand-off is sealed with a key only workers hold, and a "
    "plain wrapping token is never put in XCom; set it on the workers (aisec secrets handoff-key prints one)"
)


def new_handoff_key() -> str:
    """A fresh key for ``[aisec] handoff_key``."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode()


def parse_handoff_keys(raw: str | None) -> list[bytes]:
    """The configured keys, first one sealing (value-free errors).

    Raises:
        ConfigurationError: unset, or a key that is not 32 bytes of URL-safe base64.
    """
    keys = []
    for number, part in enumerate((raw or "").split(","), start=1):
        part = part.strip()
        if not part:
            continue
        try:
            key = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise ConfigurationError(
                f"[aisec] handoff_key: key {number} is not {KEY_BYTES} bytes of URL-safe base64"
            )
        keys.append(key)
    if not keys:
        raise ConfigurationError(MISSING_KEY)
    return keys


def _fingerprint(key: bytes) -> str:
    return hashlib.sha256(b"aisec-handoff-key:" + key).hexdigest()[:16]


def _aad(*, dag_id: str, run_id: str, task_id: str, handle: SecretHandle) -> bytes:
    return canonical_json({"v": ENVELOPE_VERSION, "dag_id": dag_id, "run_id": run_id, "task_id": task_id,
                           "handle": handle.public()})


def seal_handles(
    handles: Sequence[SecretHandle], keys: Sequence[bytes], *, dag_id: str, run_id: str, task_id: str
) -> dict[str, Any]:
    """The XCom value of a hand-off: every token sealed for this DAG run and gate task."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = keys[0]
    sealed = []
    for handle in handles:
        nonce = os.urandom(NONCE_BYTES)
        box = AESGCM(key).encrypt(nonce, handle.token.encode(), _aad(dag_id=dag_id, run_id=run_id,
                                                                     task_id=task_id, handle=handle))
        token = f"{SEALED_PREFIX}{_fingerprint(key)}:{base64.urlsafe_b64encode(nonce + box).decode()}"
        sealed.append({**handle.public(), "token": token})
    return {"handle_version": ENVELOPE_VERSION, "sealed": True, "handles": sealed}


def open_handles(
    envelope: Any, keys: Sequence[bytes], *, dag_id: str, run_id: str, task_id: str
) -> list[SecretHandle]:
    """The handles of a sealed hand-off from gate task ``task_id`` of this DAG run, tokens opened.

    The caller masks each token at once (it is a credential until used).

    Raises:
        InputDataError: missing, malformed, or not sealed (a plain token is refused).
        ConfigurationError: sealed with a key this worker does not hold.
        SecurityViolationError: does not open for this DAG run and task (altered or copied).
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from pydantic import ValidationError

    items = envelope.get("handles") if isinstance(envelope, Mapping) else None
    if not isinstance(items, list) or not items:
        raise InputDataError(f"secret handles from task '{task_id}' are malformed")
    try:
        handles = [SecretHandle.model_validate(item) for item in items]
    except ValidationError:
        raise InputDataError(f"secret handles from task '{task_id}' are malformed") from None
    if envelope.get("sealed") is not True or envelope.get("handle_version") != ENVELOPE_VERSION:
        raise InputDataError(
            f"secret handles from task '{task_id}' are not sealed with [aisec] handoff_key: a plain wrapping "
            "token in XCom is refused (clear the gate task so that it issues a sealed one)"
        )
    by_fingerprint = {_fingerprint(k): k for k in keys}
    out = []
    for handle in handles:
        fingerprint, _, body = handle.token.removeprefix(SEALED_PREFIX).partition(":")
        if not handle.token.startswith(SEALED_PREFIX) or not body:
            raise InputDataError(f"secret handles from task '{task_id}' are malformed")
        key = by_fingerprint.get(fingerprint)
        if key is None:
            raise ConfigurationError(
                f"the hand-off from task '{task_id}' was sealed with a key this worker does not hold "
                "([aisec] handoff_key differs between workers, or was rotated without keeping the old key)"
            )
        try:
            data = base64.urlsafe_b64decode(body)
            plain = AESGCM(key).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:],
                                        _aad(dag_id=dag_id, run_id=run_id, task_id=task_id, handle=handle))
        except (binascii.Error, ValueError, InvalidTag):
            raise SecurityViolationError(
                f"the sealed hand-off for {handle.mount}/{handle.path} does not open for this DAG run and task "
                f"'{task_id}': it was altered, or copied from another run or task",
                rule=f"{GATE}.handoff_tampered",
                location={"path": handle.path, "accessor": handle.accessor},
            ) from None
        out.append(handle.model_copy(update={"token": plain.decode()}))
    return out
