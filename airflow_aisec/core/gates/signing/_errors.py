"""Rule ids of the signing gate and its verification errors, each with a machine-readable reason.

Verification fails with a distinct exception per cause (all ``SecurityViolationError``, so the
gate reports a critical, never-waived finding); ``location["reason"]`` names the precise cause.
"""

from __future__ import annotations

from typing import Any

from airflow_aisec.exceptions import MalformedSignatureError, ModelTamperedError, UntrustedKeyError

GATE = "signing"
RULE_TAMPERED = "signing.tampered"
RULE_UNTRUSTED = "signing.untrusted_key"
RULE_MALFORMED = "signing.malformed"
RULE_UNSIGNED = "signing.unsigned"
RULE_FAILED = "signing.verification_failed"

_MAX_LISTED = 5


def tampered(message: str, reason: str, **location: Any) -> ModelTamperedError:
    return ModelTamperedError(message, rule=RULE_TAMPERED, location={"reason": reason, **location})


def untrusted(message: str, reason: str, **location: Any) -> UntrustedKeyError:
    return UntrustedKeyError(message, rule=RULE_UNTRUSTED, location={"reason": reason, **location})


def malformed(message: str, reason: str, **location: Any) -> MalformedSignatureError:
    return MalformedSignatureError(message, rule=RULE_MALFORMED, location={"reason": reason, **location})


def listing(names: list[str]) -> str:
    """The first few names, and how many more (messages stay short on huge models)."""
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... (+{len(names) - _MAX_LISTED})" if len(names) > _MAX_LISTED else "")
