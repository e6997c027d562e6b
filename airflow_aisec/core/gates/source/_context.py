"""What every step of one source-gate run shares: the section, the clock, the lazily created S3
client, the findings and inputs collected so far, and the helpers that build them."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.io.storage import is_s3_uri, read_bytes
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.loader import MAX_POLICY_BYTES
from airflow_aisec.core.result import Finding, InputRef
from airflow_aisec.exceptions import AccessDeniedError, ConfigurationError, InputDataError

if TYPE_CHECKING:
    from airflow_aisec.core.gates.source._pins import Pin
    from airflow_aisec.core.policy.sections.source import SourcePolicy

GATE = "source"


class S3ClientProvider:
    """Creates the S3 client only when an ``s3://`` location is actually read."""

    def __init__(self, client: Any):
        self._value = client
        self._client: Any = None

    def get(self) -> Any:
        if self._client is None:
            if self._value is None:
                from airflow_aisec.core.io.storage import make_s3_client

                self._client = make_s3_client()
            elif callable(self._value):
                self._client = self._value()
            else:
                self._client = self._value
        return self._client

    def for_uri(self, uri: str) -> Any:
        return self.get() if is_s3_uri(uri) else None


@dataclass
class Context:
    section: SourcePolicy
    base_dir: str | None
    s3: S3ClientProvider
    now: _dt.datetime
    pins: dict[str, Pin]
    expectation_items: list[Any]
    findings: list[Finding] = field(default_factory=list)
    inputs: list[InputRef] = field(default_factory=list)


def policy_dir(source: str | None) -> str | None:
    """Directory that relative paths in a policy are resolved against: that of the policy file.

    ``None`` for a policy not read from a local file (``s3://``, or a ``<string>`` source): relative
    paths are then taken as they are (relative to the working directory).
    """
    if not source or source.startswith("<"):
        return None
    return dirname(source)


def dirname(location: str) -> str | None:
    if is_s3_uri(location):
        return None
    return os.path.dirname(os.path.abspath(location))


def utc(value: _dt.datetime) -> _dt.datetime:
    return value.replace(tzinfo=_dt.UTC) if value.tzinfo is None else value.astimezone(_dt.UTC)


def finding(rule: str, message: str, *, severity: Severity = Severity.HIGH, count: int | None = None,
            **location: Any) -> Finding:
    return Finding(rule=f"{GATE}.{rule}", severity=severity, message=message, count=count, location=location)


def read_policy_file(location: str, what: str, base_dir: str | None, s3: S3ClientProvider,
                     inputs: list[InputRef]) -> tuple[str, bytes]:
    """Read a file the policy names (relative to the policy's directory), recorded as an input.

    Raises:
        ConfigurationError: missing or unreadable (the policy is wrong, not the data).
    """
    if not is_s3_uri(location) and not os.path.isabs(location) and base_dir:
        location = os.path.join(base_dir, location)
    try:
        data = read_bytes(location, s3_client=s3.for_uri(location), limit=MAX_POLICY_BYTES, what=what)
    except InputDataError as exc:
        message = str(exc)
        raise ConfigurationError(message if what in message else f"{what}: {message}") from None
    inputs.append(InputRef(uri=location, sha256=hashlib.sha256(data).hexdigest()))
    return location, data


@contextlib.contextmanager
def denied_is_bad_input() -> Iterator[None]:
    """An S3 'access denied' on a dataset is bad input for this gate (exit 2, as the issue asks),
    not a security violation: the object is unusable until someone fixes the grant."""
    try:
        yield
    except AccessDeniedError as exc:
        raise InputDataError(str(exc)) from None
