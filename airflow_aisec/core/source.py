"""Source validation gate: is this dataset what we agreed to train on?

For each dataset (CSV or Parquet, local path or ``s3://``), checked against the policy's
``source`` section:

* **origin**: the URI must match an allow-list glob (``s3://bucket-glob/key-glob`` or a local
  ``file:///path-glob``). Local paths are resolved (symlinks, ``..``) before matching, S3 keys with
  ``.``/``..`` segments are refused. A dataset from anywhere else is refused *before any byte is
  read*: an :class:`~airflow_aisec.exceptions.InputDataError` (exit 2), never waivable.
* **pinned content**: sha256 from an inline manifest or a manifest file, and/or the S3
  ``VersionId`` / ``ETag`` recorded at approval time (``aisec source pin`` prints them).
* **freshness** (object / file modification time, or the newest value of a timestamp column) and
  **row-count bounds**.
* **schema**: column types (pyarrow type names or families such as ``integer``, ``string``) and,
  unless allowed, no extra columns.
* **Great Expectations** expectations (see :mod:`airflow_aisec.core.expectations`).
* **poisoning signals** against a reference dataset (see :mod:`airflow_aisec.core.poisoning`).

Everything streams in batches of ``batch_rows`` rows: memory is bounded by the batch size, not
the file size (limits: whole-table GX expectations, and one Parquet row group). S3 objects are
downloaded to a temporary file first (disk, not memory), exactly the version whose metadata was
checked. Findings carry counts, column names, digests and URIs, never cell values.

Relative paths written in the policy (reference, suite, manifest, local origin globs, manifest
keys) are resolved against the policy file's directory.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from airflow_aisec.core.expectations import ExpectationsPolicy
from airflow_aisec.core.poisoning import PoisoningPolicy
from airflow_aisec.core.policy.base import GateSection, Severity, StrictModel
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef
from airflow_aisec.core.io.storage import is_s3_uri, parse_s3_uri, read_bytes, sha256_file
from airflow_aisec.exceptions import AccessDeniedError, ConfigurationError, InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.policy import LoadedPolicy

GATE = "source"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_GLOB_CHARS = re.compile(r"[*?\[]")
#: Clock skew tolerated between the data's clock and this host's before a timestamp counts as "in the future".
FUTURE_SKEW_SECONDS = 300


# ================================================================================================
# Policy section
# ================================================================================================
def _parse_duration(value: Any) -> Any:
    """Seconds (number), ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"``, ``"2w"``, or a timedelta."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '24h'")  # noqa: TRY004 - pydantic
    if isinstance(value, (int, float)):
        return _dt.timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if not match:
            raise ValueError("a duration is a number of seconds or a string like '90s', '15m', '24h', '7d', '2w'")
        return _dt.timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2)])
    return value


Duration = Annotated[_dt.timedelta, BeforeValidator(_parse_duration)]


#: Type families accepted in ``schema.columns`` (anything else must be a pyarrow type name).
TYPE_FAMILIES: dict[str, str] = {
    "any": "any",
    "integer": "integer",
    "int": "integer",
    "floating": "floating",
    "float": "floating",
    "numeric": "numeric",
    "number": "numeric",
    "decimal": "decimal",
    "string": "string",
    "str": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "timestamp": "timestamp",
    "datetime": "timestamp",
    "date": "date",
    "temporal": "temporal",
    "binary": "binary",
}


def _family_matches(family: str, t: pa.DataType) -> bool:
    import pyarrow as pa

    T = pa.types
    return {
        "any": True,
        "integer": T.is_integer(t),
        "floating": T.is_floating(t),
        "numeric": T.is_integer(t) or T.is_floating(t) or T.is_decimal(t),
        "decimal": T.is_decimal(t),
        "string": T.is_string(t) or T.is_large_string(t) or T.is_string_view(t),
        "boolean": T.is_boolean(t),
        "timestamp": T.is_timestamp(t),
        "date": T.is_date(t),
        "temporal": T.is_temporal(t),
        "binary": T.is_binary(t) or T.is_large_binary(t) or T.is_fixed_size_binary(t) or T.is_binary_view(t),
    }[family]


def _concrete_type(name: str) -> pa.DataType:
    import pyarrow as pa

    try:
        return pa.type_for_alias(name)
    except (ValueError, KeyError):
        raise ValueError(
            f"unknown column type '{name}': use a pyarrow type name (int64, double, string, "
            f"timestamp[ms], ...) or a family ({', '.join(sorted(set(TYPE_FAMILIES)))})"
        ) from None


def type_matches(declared: str, actual: pa.DataType) -> bool:
    """Whether a column's pyarrow type satisfies a declared type (family or exact pyarrow type)."""
    key = declared.strip().lower()
    if key in TYPE_FAMILIES:
        return _family_matches(TYPE_FAMILIES[key], actual)
    expected = _concrete_type(declared.strip())
    if expected == actual:
        return True
    # A string declared as 'string' also accepts large_string is handled by the family; here only
    # timestamps get leeway: 'timestamp[us]' matches any time zone of that unit.
    import pyarrow as pa

    return bool(pa.types.is_timestamp(expected) and pa.types.is_timestamp(actual) and expected.unit == actual.unit)


def csv_conversion_type(declared: str) -> pa.DataType | None:
    """Type to convert a CSV column to, so that the declared type rather than inference decides."""
    import pyarrow as pa

    key = declared.strip().lower()
    family = TYPE_FAMILIES.get(key)
    if family is None:
        return _concrete_type(declared.strip())
    return {"integer": pa.int64(), "floating": pa.float64(), "string": pa.string(), "boolean": pa.bool_()}.get(family)


@dataclass(frozen=True)
class Origin:
    """A parsed allow-list entry."""

    pattern: str
    scheme: str
    bucket: str | None
    path: str


def parse_origin(pattern: str) -> Origin:
    """Parse ``s3://bucket-glob/key-glob``, ``file:///path-glob`` or a local path glob.

    Raises:
        ValueError: unsupported scheme or an S3 pattern without a key glob.
    """
    text = pattern.strip()
    if not text:
        raise ValueError("empty origin pattern")
    if text.startswith("s3://"):
        bucket, sep, key = text[5:].partition("/")
        if not bucket or not sep or not key:
            raise ValueError(f"origin '{pattern}': use s3://BUCKET-GLOB/KEY-GLOB (e.g. s3://{bucket or 'bucket'}/*)")
        return Origin(pattern, "s3", bucket, key)
    if text.startswith("file://"):
        path = text[len("file://"):]
        if not path.startswith("/"):
            raise ValueError(f"origin '{pattern}': file:// patterns need an absolute path (file:///data/*)")
        return Origin(pattern, "file", None, path)
    if "://" in text:
        raise ValueError(f"origin '{pattern}': unsupported scheme (only s3:// and local paths are read)")
    return Origin(pattern, "file", None, text)


class S3Pin(StrictModel):
    """S3 object identity recorded at approval time."""

    version_id: str | None = Field(default=None, min_length=1)
    etag: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> S3Pin:
        if not self.version_id and not self.etag:
            raise ValueError("pin at least one of version_id, etag")
        return self


def _lower_hex(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


Sha256Hex = Annotated[str, BeforeValidator(_lower_hex), Field(pattern=_SHA256_RE.pattern)]


class PinningPolicy(StrictModel):
    """Content pinned at approval time.

    Attributes:
        required: Every dataset (and the reference) must be pinned, else ``source.not_pinned``.
        sha256: Inline manifest: URI or path -> sha256.
        manifest: Manifest file (JSON from ``aisec source pin``, or ``sha256sum`` text).
        s3_versions: ``s3://`` URI -> pinned VersionId and/or ETag.
    """

    required: bool = False
    sha256: dict[str, Sha256Hex] = Field(default_factory=dict)
    manifest: str | None = None
    s3_versions: dict[str, S3Pin] = Field(default_factory=dict)

    @field_validator("s3_versions")
    @classmethod
    def _s3_keys(cls, value: dict[str, S3Pin]) -> dict[str, S3Pin]:
        for key in value:
            if not is_s3_uri(key):
                raise ValueError(f"s3_versions keys must be s3:// URIs, got '{key}'")
        return value


class FreshnessPolicy(StrictModel):
    """Maximum age of the data.

    Attributes:
        max_age: Seconds or ``"24h"``-style duration.
        column: Use the newest value of this timestamp/date column instead of the modification time.
    """

    max_age: Duration
    column: str | None = Field(default=None, min_length=1)

    @field_validator("max_age")
    @classmethod
    def _positive(cls, value: _dt.timedelta) -> _dt.timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("max_age must be positive")
        return value


class RowBounds(StrictModel):
    min: int | None = Field(default=None, ge=1)
    max: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> RowBounds:
        if self.min is None and self.max is None:
            raise ValueError("give min and/or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is larger than max")
        return self


class SchemaPolicy(StrictModel):
    """Expected columns and types.

    Attributes:
        columns: Column name -> pyarrow type name (``int64``, ``double``, ``timestamp[ms]``) or a
            family (``integer``, ``floating``, ``numeric``, ``string``, ``boolean``, ``timestamp``,
            ``date``, ``temporal``, ``binary``, ``any``). For CSV the declared type drives parsing.
        allow_extra_columns: Columns not listed are accepted (default: a finding).
    """

    columns: dict[str, str] = Field(min_length=1)
    allow_extra_columns: bool = False

    @field_validator("columns")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        for declared in value.values():
            if declared.strip().lower() not in TYPE_FAMILIES:
                _concrete_type(declared.strip())
        return value


class SourcePolicy(GateSection):
    """Policy section ``source``.

    Attributes:
        origins: Allow-list of origin globs (required; anything else is refused).
        format: Force ``csv`` or ``parquet`` (default: from the file extension).
        batch_rows: Rows per streamed batch (bounds memory).
        pinning: Pinned sha256 / S3 VersionId / ETag.
        freshness: Maximum age.
        rows: Row-count bounds.
        schema: Columns and types (YAML key ``schema``).
        expectations: Great Expectations expectations.
        poisoning: Signals against a reference dataset.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)

    origins: list[str] = Field(min_length=1)
    format: Literal["csv", "parquet"] | None = None
    batch_rows: int = Field(default=65_536, ge=1, le=10_000_000)
    pinning: PinningPolicy | None = None
    freshness: FreshnessPolicy | None = None
    rows: RowBounds | None = None
    table_schema: SchemaPolicy | None = Field(default=None, alias="schema")
    expectations: ExpectationsPolicy | None = None
    poisoning: PoisoningPolicy | None = None

    @field_validator("origins")
    @classmethod
    def _parse_origins(cls, value: list[str]) -> list[str]:
        for pattern in value:
            parse_origin(pattern)
        return value


# ================================================================================================
# Inputs: canonical form and origin checks
# ================================================================================================
@dataclass(frozen=True)
class Target:
    """A dataset URI with the canonical form used for origin and pin matching."""

    uri: str
    canonical: str
    scheme: str
    bucket: str | None
    path: str
    role: str = "data"

    @property
    def read_uri(self) -> str:
        return self.canonical if self.scheme == "s3" else self.path


def _resolve_local(path: str, base_dir: str | None) -> str:
    if not os.path.isabs(path) and base_dir:
        path = os.path.join(base_dir, path)
    return os.path.realpath(os.path.abspath(path))


def canonical_target(uri: str, *, base_dir: str | None = None, role: str = "data") -> Target:
    """Canonical form of a dataset URI.

    Raises:
        InputDataError: unsupported scheme, an S3 URI without an object key, or an S3 key with
            ``.``/``..`` segments (which some clients and proxies normalise away).
    """
    text = str(uri).strip()
    if not text:
        raise InputDataError("empty dataset URI")
    if is_s3_uri(text):
        loc = parse_s3_uri(text)
        if not loc.key or loc.key.endswith("/"):
            raise InputDataError(f"S3 URI names a bucket or prefix, not an object: {text}")
        if any(part in (".", "..") for part in loc.key.split("/")):
            raise InputDataError(f"S3 key with '.' or '..' path segments refused: {text}")
        return Target(text, loc.uri, "s3", loc.bucket, loc.key, role)
    if text.startswith("file://"):
        text = text[len("file://"):]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise InputDataError(f"unsupported URI scheme '{scheme}' (only local paths and s3:// are read): {uri}")
    real = _resolve_local(text, base_dir)
    return Target(str(uri), real, "file", None, real, role)


def _local_pattern(path: str, base_dir: str | None) -> str:
    """Absolute, normalised glob whose fixed leading directories are resolved like inputs are."""
    if not os.path.isabs(path) and base_dir:
        path = os.path.join(base_dir, path)
    path = os.path.normpath(os.path.abspath(path))
    parts = path.split(os.sep)
    fixed = 0
    for i, part in enumerate(parts):
        if _GLOB_CHARS.search(part):
            break
        fixed = i + 1
    if fixed == len(parts):
        return os.path.realpath(path)
    head = os.path.realpath(os.sep.join(parts[:fixed]) or os.sep)
    return os.path.join(head, *parts[fixed:])


def origin_allowed(target: Target, origins: Iterable[Origin], *, base_dir: str | None = None) -> bool:
    """Whether a canonical target matches one allow-list entry (bucket and key matched separately)."""
    for origin in origins:
        if origin.scheme != target.scheme:
            continue
        if target.scheme == "s3":
            if fnmatch.fnmatchcase(target.bucket or "", origin.bucket or "") and fnmatch.fnmatchcase(
                target.path, origin.path
            ):
                return True
        elif fnmatch.fnmatchcase(target.path, _local_pattern(origin.path, base_dir)):
            return True
    return False


def check_origins(targets: Iterable[Target], section: SourcePolicy, base_dir: str | None) -> None:
    """Refuse (before reading anything) every target outside the allow-list.

    Raises:
        InputDataError: the first target not on the allow-list.
    """
    origins = [parse_origin(p) for p in section.origins]
    for target in targets:
        if not origin_allowed(target, origins, base_dir=base_dir):
            what = "reference dataset" if target.role == "reference" else "dataset"
            raise InputDataError(f"{what} origin not on the allow-list (source.origins): {target.uri}")


# ================================================================================================
# Pins
# ================================================================================================
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
    return _resolve_local(key, base_dir)


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
            doc = json.loads(text)
        except ValueError:
            raise ConfigurationError(f"{source}: manifest is not valid JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("sha256", {}), dict) or not isinstance(
            doc.get("s3_versions", {}), dict
        ):
            raise ConfigurationError(f"{source}: manifest JSON needs 'sha256' and/or 's3_versions' mappings")
        for key, digest in (doc.get("sha256") or {}).items():
            if not isinstance(digest, str) or not _SHA256_RE.match(digest.strip().lower()):
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
        if not _SHA256_RE.match(digest.lower()) or not name:
            raise ConfigurationError(f"{source}: line {lineno} is not '<sha256>  <path>'")
        sha[name] = digest.lower()
    return sha, versions


def _dirname(location: str) -> str | None:
    if is_s3_uri(location):
        return None
    return os.path.dirname(os.path.abspath(location))


# ================================================================================================
# The check
# ================================================================================================
class _S3ClientProvider:
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
class _Context:
    section: SourcePolicy
    base_dir: str | None
    s3: _S3ClientProvider
    now: _dt.datetime
    pins: dict[str, Pin]
    expectation_items: list[Any]
    findings: list[Finding] = field(default_factory=list)
    inputs: list[InputRef] = field(default_factory=list)


def _fmt_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _utc(value: _dt.datetime) -> _dt.datetime:
    return value.replace(tzinfo=_dt.UTC) if value.tzinfo is None else value.astimezone(_dt.UTC)


def _finding(rule: str, message: str, *, severity: Severity = Severity.HIGH, count: int | None = None,
             **location: Any) -> Finding:
    return Finding(rule=f"{GATE}.{rule}", severity=severity, message=message, count=count, location=location)


def _read_policy_file(location: str, what: str, base_dir: str | None, s3: _S3ClientProvider,
                      inputs: list[InputRef]) -> tuple[str, bytes]:
    """Read a file the policy names (relative to the policy's directory), recorded as an input.

    Raises:
        ConfigurationError: missing or unreadable (the policy is wrong, not the data).
    """
    if not is_s3_uri(location) and not os.path.isabs(location) and base_dir:
        location = os.path.join(base_dir, location)
    try:
        data = read_bytes(location, s3_client=s3.for_uri(location))
    except InputDataError as exc:
        raise ConfigurationError(f"{what}: {exc}") from None
    inputs.append(InputRef(uri=location, sha256=hashlib.sha256(data).hexdigest()))
    return location, data


def _load_pins(ctx_section: SourcePolicy, base_dir: str | None, s3: _S3ClientProvider,
               inputs: list[InputRef]) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    pinning = ctx_section.pinning
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
        location, data = _read_policy_file(pinning.manifest, "pinning manifest", base_dir, s3, inputs)
        sha, versions = parse_manifest(data, location)
        manifest_base = _dirname(location) or base_dir
        for key, digest in sha.items():
            add(key, location, sha=digest, key_base=manifest_base)
        for key, pin in versions.items():
            add(key, location, version_id=pin.get("version_id"),
                etag=pin["etag"].strip('"') if pin.get("etag") else None)
    return pins


def _load_expectations(section: SourcePolicy, base_dir: str | None, s3: _S3ClientProvider,
                       inputs: list[InputRef]) -> list[Any]:
    from airflow_aisec.core.expectations import build_items, parse_suite

    policy = section.expectations
    if policy is None:
        return []
    suite_specs = []
    suite_name = "suite"
    if policy.suite:
        location, data = _read_policy_file(policy.suite, "GX suite", base_dir, s3, inputs)
        suite_specs = parse_suite(data, location)
    return build_items(policy.expect, suite_specs, suite_name)


def _check_pins(ctx: _Context, target: Target, digest: str, version_id: str | None, etag: str | None) -> bool:
    """Append pin findings; return whether the target is pinned at all."""
    pin = ctx.pins.get(target.canonical)
    if pin is None:
        return False
    if pin.sha256 is not None and pin.sha256 != digest:
        ctx.findings.append(_finding(
            "digest_mismatch",
            f"{target.role} {target.uri}: content does not match its pinned sha256",
            severity=Severity.CRITICAL, count=1, uri=target.uri, role=target.role,
            sha256=digest, expected_sha256=pin.sha256,
        ))
    if pin.version_id is not None:
        if target.scheme != "s3":
            raise ConfigurationError(f"a VersionId is pinned for a non-S3 dataset: {target.uri}")
        if version_id != pin.version_id:
            ctx.findings.append(_finding(
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
            ctx.findings.append(_finding(
                "etag_mismatch",
                f"{target.role} {target.uri}: current S3 ETag is not the pinned one",
                severity=Severity.CRITICAL, count=1, uri=target.uri, role=target.role,
                etag=etag, expected_etag=pin.etag,
            ))
    return True


def _declared_csv_types(section: SourcePolicy) -> dict[str, Any]:
    if section.table_schema is None:
        return {}
    types = {}
    for name, declared in section.table_schema.columns.items():
        converted = csv_conversion_type(declared)
        if converted is not None:
            types[name] = converted
    return types


def _newest_timestamp(arr: pa.Array) -> _dt.datetime | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = arr.type
    if pa.types.is_timestamp(t):
        arr = pc.cast(arr, pa.timestamp("us", tz=t.tz), safe=False)
    elif pa.types.is_date(t):
        arr = pc.cast(arr, pa.timestamp("us"))
    newest = pc.max(arr).as_py()
    return _utc(newest) if newest is not None else None


class _NewestTimestamp:
    """Streaming maximum of a timestamp/date column (UTC)."""

    def __init__(self, column: str):
        self.column = column
        self.value: _dt.datetime | None = None

    def update(self, batch: pa.RecordBatch) -> None:
        newest = _newest_timestamp(batch.column(batch.schema.get_field_index(self.column)))
        if newest is not None and (self.value is None or newest > self.value):
            self.value = newest


@dataclass
class _Profile:
    """What a scan of one table produced."""

    rows: int = 0
    batches: int = 0
    labels: Any = None
    ranges: Any = None


def _open(copy: Any, target: Target, section: SourcePolicy) -> Any:
    from airflow_aisec.core.io.tabular import detect_format, open_dataset

    fmt = detect_format(target.uri, section.format)
    # pyarrow ignores declared columns the file lacks; those are reported by name afterwards.
    csv_types = _declared_csv_types(section) if fmt == "csv" else None
    # Empty CSV fields are missing values (as in pandas), so not-null expectations see them.
    return open_dataset(copy.path, fmt, uri=target.uri, csv_column_types=csv_types or None,
                        csv_empty_as_null=True)


def _check_schema(ctx: _Context, target: Target, schema: pa.Schema) -> None:
    policy = ctx.section.table_schema
    if policy is None:
        return
    for name, declared in policy.columns.items():
        actual = schema.field(name).type
        if not type_matches(declared, actual):
            ctx.findings.append(_finding(
                "schema_type", f"{target.uri}: column '{name}' is {actual}, the policy requires {declared}",
                count=1, uri=target.uri, column=name, actual_type=str(actual), expected_type=declared,
            ))
    if not policy.allow_extra_columns:
        extra = [n for n in schema.names if n not in policy.columns]
        if extra:
            ctx.findings.append(_finding(
                "schema_extra_column",
                f"{target.uri}: {len(extra)} column(s) not in the policy schema: "
                + ", ".join(repr(n) for n in extra[:20]) + (" ..." if len(extra) > 20 else ""),
                count=len(extra), uri=target.uri, columns=extra[:100],
            ))


def _profile_reference(ctx: _Context, target: Target, metrics: dict[str, Any]) -> _Profile:
    """Stream the reference: row count, label counts, numeric ranges."""
    from airflow_aisec.core.poisoning import LabelCounter, RangeProfile, is_numeric
    from airflow_aisec.core.io.tabular import check_columns, iter_batches, local_copy

    poisoning = ctx.section.poisoning
    assert poisoning is not None
    with _denied_is_bad_input(), local_copy(target.read_uri, s3_client=ctx.s3.for_uri(target.uri)) as copy:
        digest = sha256_file(copy.path)
        ctx.inputs.append(InputRef(uri=target.uri, sha256=digest))
        pinned = _check_pins(ctx, target, digest, copy.s3_version_id, copy.s3_etag)
        _require_pinned(ctx, target, pinned)
        dataset = _open(copy, target, ctx.section)
        schema = dataset.schema
        needed: list[str] = []
        profile = _Profile()
        accumulators: list[Any] = []
        if poisoning.label_shift:
            check_columns(schema.names, [poisoning.label_shift.column], target.uri)
            profile.labels = LabelCounter(poisoning.label_shift.column,
                                          max_classes=poisoning.label_shift.max_classes, uri=target.uri)
            accumulators.append(profile.labels)
            needed.append(poisoning.label_shift.column)
        oor = poisoning.out_of_range
        if oor is not None:
            if oor.columns is not None:
                range_cols = [c for c in oor.columns if c not in oor.ranges]
                check_columns(schema.names, range_cols, target.uri)
                _require_numeric(schema, range_cols, target.uri)
            else:
                label = poisoning.label_shift.column if poisoning.label_shift else None
                range_cols = [f.name for f in schema if is_numeric(f.type) and f.name != label
                              and f.name not in oor.ranges]
            profile.ranges = RangeProfile(range_cols)
            accumulators.append(profile.ranges)
            needed.extend(range_cols)
        needed = list(dict.fromkeys(needed)) or [schema.names[0]]
        for batch in iter_batches(dataset, columns=needed, batch_rows=ctx.section.batch_rows, uri=target.uri):
            profile.rows += batch.num_rows
            profile.batches += 1
            for acc in accumulators:
                acc.update(batch)
    if profile.rows == 0:
        raise InputDataError(f"{target.uri}: the reference table is empty")
    metrics.update({"uri": target.uri, "sha256": digest, "rows": profile.rows})
    return profile


def _require_numeric(schema: pa.Schema, columns: Sequence[str], uri: str) -> None:
    from airflow_aisec.core.poisoning import is_numeric

    for name in columns:
        if not is_numeric(schema.field(name).type):
            raise ConfigurationError(f"{uri}: out_of_range column '{name}' is not numeric ({schema.field(name).type})")


def _require_pinned(ctx: _Context, target: Target, pinned: bool) -> None:
    if ctx.section.pinning is not None and ctx.section.pinning.required and not pinned:
        ctx.findings.append(_finding(
            "not_pinned",
            f"{target.role} {target.uri} has no pinned sha256, VersionId or ETag (source.pinning.required)",
            severity=Severity.HIGH, count=1, uri=target.uri, role=target.role,
        ))


@contextlib.contextmanager
def _denied_is_bad_input() -> Iterator[None]:
    """An S3 'access denied' on a dataset is bad input for this gate (exit 2, as the issue asks),
    not a security violation: the object is unusable until someone fixes the grant."""
    try:
        yield
    except AccessDeniedError as exc:
        raise InputDataError(str(exc)) from None


@dataclass
class _Scan:
    """Accumulators of one streamed pass over a dataset."""

    accumulators: list[Any] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    newest: _NewestTimestamp | None = None
    gx: Any = None
    labels: Any = None
    duplicates: Any = None
    out_of_range: Any = None
    rows: int = 0
    batches: int = 0

    def add(self, accumulator: Any, columns: Iterable[str]) -> Any:
        self.accumulators.append(accumulator)
        self.columns.extend(columns)
        return accumulator


def _named_columns(section: SourcePolicy, gx: Any) -> list[str]:
    """Every column the policy names: each must exist, so a typo cannot silently skip a check."""
    named: list[str] = []
    if section.table_schema is not None:
        named += list(section.table_schema.columns)
    if section.freshness is not None and section.freshness.column:
        named.append(section.freshness.column)
    if gx is not None:
        named += gx.required_columns
    poisoning = section.poisoning
    if poisoning is not None:
        if poisoning.label_shift:
            named.append(poisoning.label_shift.column)
        if poisoning.duplicates and poisoning.duplicates.columns:
            named += poisoning.duplicates.columns
        if poisoning.out_of_range and poisoning.out_of_range.columns:
            named += poisoning.out_of_range.columns
    return list(dict.fromkeys(named))


def _plan_scan(ctx: _Context, target: Target, schema: pa.Schema, gx: Any, reference: _Profile | None) -> _Scan:
    """Set up the accumulators (and the columns they read) for one streamed pass."""
    import pyarrow as pa

    from airflow_aisec.core.poisoning import (
        DuplicateCounter,
        LabelCounter,
        OutOfRangeCounter,
        resolve_bounds,
    )
    from airflow_aisec.core.io.tabular import check_columns

    section = ctx.section
    scan = _Scan()
    freshness = section.freshness
    if freshness is not None and freshness.column:
        col_type = schema.field(freshness.column).type
        if not (pa.types.is_timestamp(col_type) or pa.types.is_date(col_type)):
            raise InputDataError(
                f"{target.uri}: freshness column '{freshness.column}' is not a timestamp or date ({col_type})"
            )
        scan.newest = scan.add(_NewestTimestamp(freshness.column), [freshness.column])
    if gx is not None:
        scan.gx = scan.add(gx, gx.scan_columns)
    poisoning = section.poisoning
    if poisoning is None:
        return scan
    if poisoning.label_shift:
        ls = poisoning.label_shift
        scan.labels = scan.add(LabelCounter(ls.column, max_classes=ls.max_classes, uri=target.uri), [ls.column])
    if poisoning.duplicates:
        columns = poisoning.duplicates.columns
        scan.duplicates = scan.add(DuplicateCounter(columns=columns), columns or schema.names)
    if poisoning.out_of_range:
        oor = poisoning.out_of_range
        if oor.columns is not None:
            columns = list(oor.columns)
            _require_numeric(schema, columns, target.uri)
        else:
            label = poisoning.label_shift.column if poisoning.label_shift else None
            # Columns given a range, and the reference's numeric columns, must be here and numeric:
            # a renamed or retyped column must not drop out of the check.
            expected = [c for c in dict.fromkeys(
                [*oor.ranges, *(reference.ranges.columns if reference and reference.ranges else [])]) if c != label]
            check_columns(schema.names, expected, target.uri)
            _require_numeric(schema, expected, target.uri)
            columns = [n for n in schema.names if n in set(expected)]
        bounds = resolve_bounds(oor, columns, reference.ranges if reference else None)
        scan.out_of_range = scan.add(OutOfRangeCounter(bounds), bounds)
    return scan


def _scan_input(ctx: _Context, target: Target, reference: _Profile | None) -> dict[str, Any]:
    """All checks on one dataset, in one streamed pass; returns its metrics."""
    from airflow_aisec.core.io.tabular import check_columns, iter_batches, local_copy

    section = ctx.section
    metrics: dict[str, Any] = {"uri": target.uri}
    with _denied_is_bad_input(), local_copy(target.read_uri, s3_client=ctx.s3.for_uri(target.uri)) as copy:
        before = os.stat(copy.path)
        digest = sha256_file(copy.path)
        ctx.inputs.append(InputRef(uri=target.uri, sha256=digest))
        metrics.update({"sha256": digest, "bytes": copy.size})
        if copy.s3_version_id:
            metrics["s3_version_id"] = copy.s3_version_id
        if copy.s3_etag:
            metrics["s3_etag"] = copy.s3_etag
        pinned = _check_pins(ctx, target, digest, copy.s3_version_id, copy.s3_etag)
        _require_pinned(ctx, target, pinned)

        dataset = _open(copy, target, section)
        schema = dataset.schema
        gx = None
        if ctx.expectation_items:
            from airflow_aisec.core.expectations import GxValidator

            limit = section.expectations.max_full_table_rows if section.expectations else 1
            gx = GxValidator(ctx.expectation_items, schema, target.uri, limit)
        check_columns(schema.names, _named_columns(section, gx), target.uri)
        _check_schema(ctx, target, schema)

        scan = _plan_scan(ctx, target, schema, gx, reference)
        columns = list(dict.fromkeys(scan.columns)) or [schema.names[0]]
        duplicate_rows = None
        try:
            for batch in iter_batches(dataset, columns=columns, batch_rows=section.batch_rows, uri=target.uri):
                scan.rows += batch.num_rows
                scan.batches += 1
                for accumulator in scan.accumulators:
                    accumulator.update(batch)
            if scan.rows == 0:
                raise InputDataError(f"{target.uri}: the table is empty")
            if scan.duplicates is not None:
                duplicate_rows = scan.duplicates.finish()
        finally:
            if scan.duplicates is not None:
                scan.duplicates.close()
        after = os.stat(copy.path)
        if (before.st_size, before.st_mtime_ns, before.st_ino) != (after.st_size, after.st_mtime_ns, after.st_ino):
            raise InputDataError(f"{target.uri}: the file changed while it was being validated")
        metrics.update({"rows": scan.rows, "batches": scan.batches, "columns": len(schema.names)})

        _freshness_findings(ctx, target, scan, copy.last_modified, metrics)
        _row_count_findings(ctx, target, scan.rows)
        if gx is not None:
            _expectation_findings(ctx, target, gx.finish(scan.rows), metrics)
    _poisoning_findings(ctx, target, scan, duplicate_rows, reference, metrics)
    return metrics


def _freshness_findings(ctx: _Context, target: Target, scan: _Scan, last_modified: _dt.datetime | None,
                        metrics: dict[str, Any]) -> None:
    freshness = ctx.section.freshness
    if freshness is None:
        return
    if freshness.column:
        stamp = scan.newest.value if scan.newest is not None else None
        basis = f"newest '{freshness.column}' value"
    else:
        stamp = _utc(last_modified) if last_modified else None
        basis = "modification time"
    limit = freshness.max_age.total_seconds()
    if stamp is None:
        ctx.findings.append(_finding(
            "stale", f"{target.uri}: no {basis} to judge freshness by", count=1, uri=target.uri,
            max_age_seconds=limit,
        ))
        return
    age = (ctx.now - stamp).total_seconds()
    if age < -FUTURE_SKEW_SECONDS:
        # A date ahead of now proves nothing about freshness (one forged row would make any data "new").
        ctx.findings.append(_finding(
            "stale", f"{target.uri}: its {basis} is {_fmt_age(-age)} in the future; freshness cannot be judged",
            count=1, uri=target.uri, age_seconds=round(age, 3), max_age_seconds=limit,
        ))
        return
    age = max(age, 0.0)
    metrics["age_seconds"] = round(age, 3)
    if age > limit:
        ctx.findings.append(_finding(
            "stale", f"{target.uri}: data is {_fmt_age(age)} old by its {basis} (max {_fmt_age(limit)})",
            count=1, uri=target.uri, age_seconds=round(age, 3), max_age_seconds=limit,
        ))


def _row_count_findings(ctx: _Context, target: Target, rows: int) -> None:
    bounds = ctx.section.rows
    if bounds is None:
        return
    if (bounds.min is not None and rows < bounds.min) or (bounds.max is not None and rows > bounds.max):
        low = bounds.min if bounds.min is not None else "-"
        high = bounds.max if bounds.max is not None else "-"
        ctx.findings.append(_finding(
            "row_count", f"{target.uri}: {rows} rows, outside the allowed bounds [{low}, {high}]",
            count=rows, uri=target.uri, rows=rows, min=bounds.min, max=bounds.max,
        ))


def _expectation_findings(ctx: _Context, target: Target, outcomes: list[Any], metrics: dict[str, Any]) -> None:
    failed = [o for o in outcomes if not o.success]
    metrics["expectations"] = {"evaluated": len(outcomes), "failed": len(failed)}
    for o in failed:
        on = ("on " + ", ".join(repr(c) for c in o.columns)) if o.columns else "on the table"
        if o.unexpected_count is not None:
            detail = f"{o.unexpected_count} of {o.element_count} rows unexpected ({o.unexpected_percent:.2f}% of non-null)"
        else:
            detail = "failed"
        ctx.findings.append(_finding(
            "expectation", f"{target.uri}: {o.type} {on}: {detail}",
            count=o.unexpected_count if o.unexpected_count is not None else 1,
            uri=target.uri, expectation=o.type, expectation_index=f"{o.origin}[{o.index}]",
            columns=o.columns, mode=o.mode, element_count=o.element_count,
            unexpected_percent=None if o.unexpected_percent is None else round(o.unexpected_percent, 4),
        ))


def _poisoning_findings(ctx: _Context, target: Target, scan: _Scan, duplicate_rows: int | None,
                        reference: _Profile | None, metrics: dict[str, Any]) -> None:
    from airflow_aisec.core.poisoning import label_shift

    poisoning = ctx.section.poisoning
    if poisoning is None:
        return
    rows = scan.rows
    ls = poisoning.label_shift
    if ls is not None and scan.labels is not None and reference is not None and reference.labels is not None:
        # scipy (~1 s to import) only when the chi-square test is the configured method.
        shift = label_shift(scan.labels.counts, reference.labels.counts, chi2=ls.method == "chi2")
        metrics["label_shift"] = {"psi": round(shift.psi, 6), "classes": shift.classes,
                                  "new_classes": shift.new_classes, "missing_classes": shift.missing_classes}
        if shift.chi2_p_value is not None:
            metrics["label_shift"]["chi2_p_value"] = shift.chi2_p_value
        if ls.method == "psi" and shift.psi > ls.max_psi:
            ctx.findings.append(_finding(
                "label_shift",
                f"{target.uri}: label '{ls.column}' distribution shifted from the reference: "
                f"PSI {shift.psi:.4f} > {ls.max_psi} ({shift.new_classes} new class(es))",
                count=shift.classes, uri=target.uri, column=ls.column, method="psi",
                psi=round(shift.psi, 6), max_psi=ls.max_psi, new_classes=shift.new_classes,
            ))
        if ls.method == "chi2" and shift.chi2_p_value is not None and shift.chi2_p_value < ls.min_p_value:
            ctx.findings.append(_finding(
                "label_shift",
                f"{target.uri}: label '{ls.column}' distribution differs from the reference: "
                f"chi-square p={shift.chi2_p_value:.3g} < {ls.min_p_value}",
                count=shift.classes, uri=target.uri, column=ls.column, method="chi2",
                p_value=shift.chi2_p_value, min_p_value=ls.min_p_value, new_classes=shift.new_classes,
            ))
    dup = poisoning.duplicates
    if dup is not None and duplicate_rows is not None:
        rate = duplicate_rows / rows
        metrics["duplicate_rows"] = duplicate_rows
        metrics["duplicate_rate"] = round(rate, 6)
        if rate > dup.max_rate:
            ctx.findings.append(_finding(
                "duplicate_rate",
                f"{target.uri}: {rate:.2%} duplicate rows ({duplicate_rows} of {rows}), max {dup.max_rate:.2%}",
                count=duplicate_rows, uri=target.uri, rate=round(rate, 6), max_rate=dup.max_rate,
                columns=dup.columns,
            ))
    oor = poisoning.out_of_range
    if oor is not None and scan.out_of_range is not None:
        counter = scan.out_of_range
        rates = counter.rates()
        metrics["out_of_range_rate"] = {k: round(v, 6) for k, v in rates.items()}
        for name, rate in rates.items():
            if rate > oor.max_rate:
                basis = "policy range" if name in oor.ranges else "reference range"
                ctx.findings.append(_finding(
                    "out_of_range",
                    f"{target.uri}: column '{name}': {rate:.2%} of values outside the {basis} "
                    f"({counter.outside[name]} of {counter.valid[name]}), max {oor.max_rate:.2%}",
                    count=counter.outside[name], uri=target.uri, column=name, rate=round(rate, 6),
                    max_rate=oor.max_rate,
                ))
    if poisoning.volume is not None and reference is not None:
        change = (rows - reference.rows) / reference.rows
        metrics["volume_change"] = round(change, 6)
        if abs(change) > poisoning.volume.max_change:
            ctx.findings.append(_finding(
                "volume_change",
                f"{target.uri}: row count changed by {change:+.1%} against the reference "
                f"({rows} vs {reference.rows}; max ±{poisoning.volume.max_change:.0%})",
                count=rows, uri=target.uri, rows=rows, reference_rows=reference.rows,
                change=round(change, 6), max_change=poisoning.volume.max_change,
            ))


def check_sources(
    data: Sequence[str] | str,
    loaded: LoadedPolicy,
    *,
    reference: str | None = None,
    s3_client: Any | Callable[[], Any] | None = None,
    now: _dt.datetime | None = None,
) -> CheckOutcome:
    """Validate datasets against the policy's ``source`` section.

    Args:
        data: Dataset URIs (local paths or ``s3://``), CSV or Parquet.
        loaded: The validated policy (must have a ``source`` section).
        reference: Reference dataset for poisoning signals (overrides ``source.poisoning.reference``).
        s3_client: A boto3 S3 client, or a zero-argument callable returning one (created only when
            an ``s3://`` location is read). Default: from the standard AWS environment.
        now: Current time (for tests of freshness).

    Returns:
        Findings (violations), metrics per dataset, inputs with their sha256.

    Raises:
        InputDataError: origin not allowed, missing/unreadable/empty/wrong-format data, a column
            named in the policy absent, S3 object missing or denied.
        ConfigurationError: unusable suite, manifest or poisoning configuration.
        ServiceUnavailableError: S3 unreachable.
    """
    section = loaded.policy.section(GATE)
    assert isinstance(section, SourcePolicy)
    uris = [data] if isinstance(data, str) else list(data or [])
    uris = [u for u in (str(x).strip() for x in uris) if u]
    if not uris:
        raise InputDataError("no dataset given")
    base_dir = _dirname(loaded.source) if loaded.source and not loaded.source.startswith("<") else None
    s3 = _S3ClientProvider(s3_client)
    now = _utc(now) if now else _dt.datetime.now(_dt.UTC)

    targets = [canonical_target(u) for u in uris]
    reference_target = None
    poisoning = section.poisoning
    if poisoning is not None:
        if reference:
            reference_target = canonical_target(reference, role="reference")
        elif poisoning.reference:
            reference_target = canonical_target(poisoning.reference, base_dir=base_dir, role="reference")
        if poisoning.needs_reference() and reference_target is None:
            raise ConfigurationError(
                "source.poisoning: label_shift, volume and reference-based out_of_range need a reference dataset "
                "(source.poisoning.reference, the operator's reference= or --reference)"
            )
    # Origins first: nothing from an unapproved place is downloaded or parsed.
    check_origins([*targets, *([reference_target] if reference_target else [])], section, base_dir)

    inputs: list[InputRef] = []
    pins = _load_pins(section, base_dir, s3, inputs)
    items = _load_expectations(section, base_dir, s3, inputs)
    ctx = _Context(section=section, base_dir=base_dir, s3=s3, now=now, pins=pins, expectation_items=items,
                   inputs=inputs)

    metrics: dict[str, Any] = {"batch_rows": section.batch_rows, "datasets": []}
    reference_profile = None
    if reference_target is not None:
        metrics["reference"] = {}
        reference_profile = _profile_reference(ctx, reference_target, metrics["reference"])
    for target in targets:
        metrics["datasets"].append(_scan_input(ctx, target, reference_profile))
    metrics["rows"] = sum(m.get("rows", 0) for m in metrics["datasets"])
    return CheckOutcome(findings=ctx.findings, metrics=metrics, inputs=ctx.inputs)


def pin_sources(data: Sequence[str], *, s3_client: Any | Callable[[], Any] | None = None) -> dict[str, Any]:
    """The manifest to record at approval time: sha256 of each dataset and S3 VersionId / ETag.

    Returns:
        ``{"sha256": {uri: hex}, "s3_versions": {uri: {"version_id": ..., "etag": ...}}}``.
    """
    from airflow_aisec.core.io.tabular import local_copy

    s3 = _S3ClientProvider(s3_client)
    manifest: dict[str, Any] = {"sha256": {}, "s3_versions": {}}
    for uri in data:
        target = canonical_target(uri)
        with _denied_is_bad_input(), local_copy(target.read_uri, s3_client=s3.for_uri(target.uri)) as copy:
            manifest["sha256"][target.canonical] = sha256_file(copy.path)
            if target.scheme == "s3":
                pin = {k: v for k, v in (("version_id", copy.s3_version_id), ("etag", copy.s3_etag))
                       if v and v != "null"}
                if pin:
                    manifest["s3_versions"][target.canonical] = pin
    if not manifest["s3_versions"]:
        del manifest["s3_versions"]
    return manifest
