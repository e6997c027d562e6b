"""Content pinned at approval time: sha256 (inline or from a manifest file), S3 VersionId and ETag.

A manifest is the JSON ``aisec source pin`` prints, or ``sha256sum`` text. Keys are canonicalised
like the datasets they pin (local paths resolved against the policy's or the manifest's directory).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_aisec.core.gates.source._context import (
    Context,
    S3ClientProvider,
    dirname,
    finding,
    read_policy_file,
)
from airflow_aisec.core.gates.source._origin import Target, resolve_local
from airflow_aisec.core.io.json_input import loads_json
from airflow_aisec.core.io.storage import is_s3_uri, parse_s3_uri
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.source import SHA256_PATTERN, S3Pin, SourcePolicy
from airflow_aisec.core.result import InputRef
from airflow_aisec.exceptions import ConfigurationError


@dataclass
class Pin:
    sha256: str | None = None
    version_id: str | None = None
    etag: str | None = None
    sources: list[str] = field(default_factory=list)


def _pin_key(key: str, base_dir: str | None) -> str:
    key = key.strip()
    if is_s3_uri(key):
        return parse_s3_uri(key).uri
    key = key.removeprefix("file://")
    return resolve_local(key, base_dir)


def parse_manifest(data: bytes, source: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Parse a manifest: JSON ``{"sha256": {...}, "s3_versions": {...}}`` or ``sha256sum`` lines.

    Raises:
        ConfigurationError: unparsable manifest or an invalid digest.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{source}: manifest is not UTF-8 text") from None
    sha: dict[str, str] = {}
    versions: dict[str, dict[str, str]] = {}
    if text.lstrip().startswith("{"):
        try:
            doc = loads_json(text)
        except ValueError:
            raise ConfigurationError(f"{source}: manifest is not valid JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("sha256", {}), dict) or not isinstance(
            doc.get("s3_versions", {}), dict
        ):
            raise ConfigurationError(f"{source}: manifest JSON needs 'sha256' and/or 's3_versions' mappings")
        for key, digest in (doc.get("sha256") or {}).items():
            if not isinstance(digest, str) or not SHA256_PATTERN.match(digest.strip().lower()):
                raise ConfigurationError(f"{source}: invalid sha256 for '{key}'")
            sha[str(key)] = digest.strip().lower()
        for key, pin in (doc.get("s3_versions") or {}).items():
            if not is_s3_uri(str(key)) or not isinstance(pin, dict):
                raise ConfigurationError(f"{source}: s3_versions entry '{key}' is not an s3:// URI with a mapping")
            try:
                S3Pin.model_validate(pin)
            except ValueError:
                raise ConfigurationError(f"{source}: s3_versions entry '{key}' is invalid") from None
            versions[str(key)] = {k: str(v) for k, v in pin.items() if v}
        return sha, versions
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, name = line.partition(" ")
        name = name.strip().lstrip("*")
        if not SHA256_PATTERN.match(digest.lower()) or not name:
            raise ConfigurationError(f"{source}: line {lineno} is not '<sha256>  <path>'")
        sha[name] = digest.lower()
    return sha, versions


def load_pins(section: SourcePolicy, base_dir: str | None, s3: S3ClientProvider,
              inputs: list[InputRef]) -> dict[str, Pin]:
    """Every pin of the section (inline and manifest), by canonical URI.

    Raises:
        ConfigurationError: an unreadable manifest, or two pins disagreeing about one dataset.
    """
    pins: dict[str, Pin] = {}
    pinning = section.pinning
    if pinning is None:
        return pins

    def add(key: str, where: str, *, sha: str | None = None, version_id: str | None = None,
            etag: str | None = None, key_base: str | None = None) -> None:
        pin = pins.setdefault(_pin_key(key, key_base), Pin())
        for attr, value in (("sha256", sha), ("version_id", version_id), ("etag", etag)):
            if value is None:
                continue
            current = getattr(pin, attr)
            if current is not None and current != value:
                raise ConfigurationError(f"conflicting pinned {attr} for '{key}' ({where})")
            setattr(pin, attr, value)
        pin.sources.append(where)

    for key, digest in pinning.sha256.items():
        add(key, "source.pinning.sha256", sha=digest, key_base=base_dir)
    for key, s3pin in pinning.s3_versions.items():
        add(key, "source.pinning.s3_versions", version_id=s3pin.version_id,
            etag=s3pin.etag.strip('"') if s3pin.etag else None)
    if pinning.manifest:
        location, data = read_policy_file(pinning.manifest, "pinning manifest", base_dir, s3, inputs)
        sha, versions = parse_manifest(data, location)
        manifest_base = dirname(location) or base_dir
        for key, digest in sha.items():
            add(key, location, sha=digest, key_base=manifest_base)
        for key, pin in versions.items():
            add(key, location, version_id=pin.get("version_id"),
                etag=pin["etag"].strip('"') if pin.get("etag") else None)
    return pins


def check_pins(ctx: Context, target: Target, digest: str, version_id: str | None, etag: str | None) -> bool:
    """Append pin findings; return whether the target is pinned at all."""
    pin = ctx.pins.get(target.canonical)
    if pin is None:
        return False
    if pin.sha256 is not None and pin.sha256 != digest:
        ctx.findings.append(finding(
            "digest_mismatch",
            f"{target.role} {target.uri}: content does not match its pinned sha256",
            severity=Severity.CRITICAL, count=1, uri=target.uri, role=target.role,
            sha256=digest, expected_sha256=pin.sha256,
        ))
    if pin.version_id is not None:
        if target.scheme != "s3":
            raise ConfigurationError(f"a VersionId is pinned for a non-S3 dataset: {target.uri}")
        if version_id != pin.version_id:
            ctx.findings.append(finding(
                "version_mismatch",
                f"{target.role} {target.uri}: current S3 VersionId is not the pinned one"
                + ("" if version_id else " (bucket not versioned)"),
                severity=Severity.CRITICAL, count=1, uri=target.uri, role=target.role,
                version_id=version_id, expected_version_id=pin.version_id,
            ))
    if pin.etag is not None:
        if target.scheme != "s3":
            raise ConfigurationError(f"an ETag is pinned for a non-S3 dataset: {target.uri}")
        if etag != pin.etag:
            ctx.findings.append(finding(
                "etag_mismatch",
                f"{target.role} {target.uri}: current S3 ETag is not the pinned one",
                severity=Severity.CRITICAL, count=1, uri=target.uri, role=target.role,
                etag=etag, expected_etag=pin.etag,
            ))
    return True


def require_pinned(ctx: Context, target: Target, pinned: bool) -> None:
    if ctx.section.pinning is not None and ctx.section.pinning.required and not pinned:
        ctx.findings.append(finding(
            "not_pinned",
            f"{target.role} {target.uri} has no pinned sha256, VersionId or ETag (source.pinning.required)",
            severity=Severity.HIGH, count=1, uri=target.uri, role=target.role,
        ))
