"""Reports and evidence records the UI may serve, and nothing else.

Report URIs and evidence locations come from XComs, which any task can write.
The API server therefore only reads files under locations its own configuration
names: for reports ``<evidence_location>/reports`` (where the gates write them by
default) and ``[aisec] report_roots`` (comma-separated directories or ``s3://``
prefixes). Anything else is shown as text, never fetched, so a crafted XCom cannot
make the UI read ``/etc/passwd`` or an arbitrary bucket. On top of that the app
serves a report only when the result naming it is confirmed by the audit trail
(:mod:`airflow_aisec.plugins.trust`, which also reads the evidence records).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_aisec import settings
from airflow_aisec.core.io.storage import is_s3_uri, parse_s3_uri
from airflow_aisec.exceptions import AisecError, ConfigurationError, ServiceUnavailableError

#: Largest report the UI serves (an HTML report is small; anything bigger is a misuse).
MAX_REPORT_BYTES = 20 * 1024 * 1024
MAX_RECORD_BYTES = 5 * 1024 * 1024
EXTERNAL_SCHEMES = ("http", "https")


def report_roots() -> list[str]:
    """Where the UI may read reports: ``<evidence_location>/reports`` (where the bias and drift
    gates write them by default) plus ``[aisec] report_roots``."""
    return [f"{evidence_location().rstrip('/')}/reports", *settings.report_roots()]


def evidence_location() -> str:
    """The configured audit trail (same default as the operators)."""
    return settings.evidence_location()


def _local_path(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return parts.path or None
    if parts.scheme == "" and uri.startswith("/"):
        return uri
    return None


def _under(path: str, root: str) -> bool:
    real = os.path.realpath(path)
    real_root = os.path.realpath(root)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _s3_under(uri: str, root: str) -> bool:
    loc, base = parse_s3_uri(uri), parse_s3_uri(root)
    prefix = base.key.strip("/")
    return loc.bucket == base.bucket and (not prefix or loc.key.startswith(prefix + "/"))


@dataclass(frozen=True)
class ReportLink:
    """How the UI shows one report: an external link, a link to the plugin, or text only."""

    kind: str  # "external" | "served" | "text"
    note: str = ""


def classify_report(uri: str) -> ReportLink:
    scheme = urlsplit(uri).scheme.lower()
    if scheme in EXTERNAL_SCHEMES:
        return ReportLink("external")
    if is_servable(uri):
        return ReportLink("served")
    if scheme not in ("", "file", "s3"):
        return ReportLink("text", "not a link: unsupported scheme")
    return ReportLink("text", "not served: outside [aisec] report_roots")


def is_servable(uri: str) -> bool:
    try:
        if is_s3_uri(uri):
            return any(is_s3_uri(r) and _s3_under(uri, r) for r in report_roots())
        path = _local_path(uri)
        return path is not None and any(not is_s3_uri(r) and _under(path, r) for r in report_roots())
    except (AisecError, ValueError):
        return False


def _s3_client() -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=settings.evidence_aws_conn_id()).get_conn()


def _read_s3(uri: str, limit: int) -> bytes | None:
    from botocore.exceptions import BotoCoreError, ClientError

    loc = parse_s3_uri(uri)
    try:
        obj = _s3_client().get_object(Bucket=loc.bucket, Key=loc.key)
        if int(obj.get("ContentLength") or 0) > limit:
            raise ConfigurationError("file is too large to show")
        return obj["Body"].read(limit + 1)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise ServiceUnavailableError("object store refused the read") from None
    except BotoCoreError:
        raise ServiceUnavailableError("object store is not reachable") from None


def _read_local(path: str, limit: int) -> bytes | None:
    try:
        if os.path.getsize(path) > limit:
            raise ConfigurationError("file is too large to show")
        with open(path, "rb") as fh:
            return fh.read(limit + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except PermissionError:
        raise ServiceUnavailableError("file is not readable by the API server") from None


def read_report(uri: str) -> bytes | None:
    """Bytes of a servable report, None when it does not exist.

    Raises:
        ConfigurationError: the report is not servable or too large.
        ServiceUnavailableError: the storage cannot be read.
    """
    if not is_servable(uri):
        raise ConfigurationError("report is outside [aisec] report_roots")
    if is_s3_uri(uri):
        return _read_s3(uri, MAX_REPORT_BYTES)
    return _read_local(_local_path(uri) or "", MAX_REPORT_BYTES)
