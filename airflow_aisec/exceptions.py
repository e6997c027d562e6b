"""Exceptions raised by airflow-aisec.

The hierarchy lets callers (operators, the CLI, tests) tell failure kinds apart
without parsing messages: an invalid policy or input, or access a service refused,
is a configuration error (CLI exit 2, non-retryable task failure, verdict ``error``),
an unreachable service is retryable (CLI exit 3), a security violation is a
critical, never-waived ``fail`` (exit 1), and the signature errors separate a
tampered model from an untrusted key from a malformed bundle.

This module never imports Airflow.
"""

from __future__ import annotations


class AisecError(Exception):
    """Base class for every error raised by airflow-aisec."""

    #: CLI exit code for this kind of error.
    exit_code: int = 2


class ConfigurationError(AisecError):
    """Invalid configuration or input: fix the input, retrying cannot help (exit 2)."""

    exit_code = 2


class PolicyError(ConfigurationError):
    """A policy file is missing, unreadable or does not match the schema.

    Args:
        message: What is wrong, in one line.
        source: The file (or other origin) the policy came from.
        field: Dotted path of the offending field, when known.
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        parts = []
        if source:
            parts.append(str(source))
        if field:
            parts.append(f"field '{field}'")
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class InputDataError(ConfigurationError):
    """Input data (a dataset, a model directory, a signature file) is unusable."""


class AccessDeniedError(ConfigurationError):
    """A service refused access: an S3 403, missing credentials, a denied or missing Vault path.

    An access or configuration problem, not an attack: verdict ``error``, not retryable (exit 2),
    in every gate alike. (A service that cannot be reached is :class:`ServiceUnavailableError`.)

    Args:
        message: What was refused, naming the path or object, never a credential.
        rule: Rule id describing the refusal (``<gate>.vault_access_denied``, ``<gate>.path_missing``).
        location: Where (path, object), never a value.
    """

    def __init__(self, message: str, *, rule: str | None = None, location: dict | None = None):
        self.rule = rule
        self.location = location or {}
        super().__init__(message)


class ServiceUnavailableError(AisecError):
    """A required service (Vault, S3, ...) could not be reached: retryable, never a pass (exit 3)."""

    exit_code = 3


class SecurityViolationError(AisecError):
    """Something happened that only an attack or a misuse explains (e.g. a wrapping token reused).

    Not retryable. Reported as a policy violation (exit 1).
    """

    exit_code = 1

    def __init__(self, message: str, *, rule: str | None = None, location: dict | None = None):
        self.rule = rule
        self.location = location or {}
        super().__init__(message)




class SignatureVerificationError(SecurityViolationError):
    """Base class for a model that failed signature verification."""


class ModelTamperedError(SignatureVerificationError):
    """The model content differs from what was signed (bytes changed, files added/removed/renamed)."""


class UntrustedKeyError(SignatureVerificationError):
    """The signature is valid in form but was not made by a key the policy trusts."""


class MalformedSignatureError(SignatureVerificationError):
    """The signature bundle is missing, unparsable, or describes paths it must not (``../``)."""


class EvidenceChainError(AisecError):
    """The audit trail's hash chain is broken.

    Args:
        message: What is wrong.
        record: Identifier (file or object name) of the first bad record.
    """

    exit_code = 1

    def __init__(self, message: str, *, record: str | None = None):
        self.record = record
        super().__init__(f"{record}: {message}" if record else message)
