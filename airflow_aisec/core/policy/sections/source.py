"""The ``source`` policy section (schema only): what the source-validation gate checks.

Sub-models: origin allow-list, pinning (sha256 / S3 VersionId / ETag), freshness, row bounds,
column schema, Great Expectations expectations (``ExpectationsPolicy``) and poisoning signals
against a reference dataset (``PoisoningPolicy``). The engine is :mod:`airflow_aisec.core.gates.source`.

The grammar of origin patterns, column type names and digests lives here too, because the schema
validates them; the engine imports these helpers from here (never the other way round).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, field_validator, model_validator

from airflow_aisec.core.policy.base import GateSection, StrictModel

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "EXPECTATION_TYPE_PATTERN",
    "SHA256_PATTERN",
    "TYPE_FAMILIES",
    "DuplicatesPolicy",
    "Duration",
    "ExpectationSpec",
    "ExpectationsPolicy",
    "FreshnessPolicy",
    "LabelShiftPolicy",
    "Origin",
    "OutOfRangePolicy",
    "PinningPolicy",
    "PoisoningPolicy",
    "RowBounds",
    "S3Pin",
    "SchemaPolicy",
    "SourcePolicy",
    "VolumePolicy",
    "parse_origin",
    "pyarrow_type",
]

#: A lower-case hex sha256 digest.
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
#: A Great Expectations expectation type name.
EXPECTATION_TYPE_PATTERN = re.compile(r"^expect_[a-z0-9_]+$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Same test as core.io.storage.is_s3_uri (a section imports no engine or I/O module).
_S3_SCHEME = "s3://"


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


def pyarrow_type(name: str) -> pa.DataType:
    """The pyarrow type a type name (``int64``, ``timestamp[ms]``, ...) stands for.

    Raises:
        ValueError: not a pyarrow type name (the message lists the families too).
    """
    import pyarrow as pa

    try:
        return pa.type_for_alias(name)
    except (ValueError, KeyError):
        raise ValueError(
            f"unknown column type '{name}': use a pyarrow type name (int64, double, string, "
            f"timestamp[ms], ...) or a family ({', '.join(sorted(set(TYPE_FAMILIES)))})"
        ) from None


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


# ------------------------------------------------------------------------------------------------
# Pinning, freshness, row bounds, schema
# ------------------------------------------------------------------------------------------------
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


Sha256Hex = Annotated[str, BeforeValidator(_lower_hex), Field(pattern=SHA256_PATTERN.pattern)]


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
            if not str(key).startswith(_S3_SCHEME):
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
                pyarrow_type(declared.strip())
        return value


# ------------------------------------------------------------------------------------------------
# Great Expectations
# ------------------------------------------------------------------------------------------------
class ExpectationSpec(StrictModel):
    """One expectation, in GX's own configuration shape.

    Attributes:
        type: GX expectation type, e.g. ``expect_column_values_to_not_be_null``.
        kwargs: Its arguments (``column``, ``min_value``, ``mostly``, ...).
        meta: Free-form notes (ignored, kept so GX suite entries can be pasted as they are).
    """

    type: str = Field(pattern=EXPECTATION_TYPE_PATTERN.pattern)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] | None = None


class ExpectationsPolicy(StrictModel):
    """``source.expectations``: a GX suite file and/or expectations written in the policy.

    Attributes:
        suite: Path (relative to the policy file) or ``s3://`` URI of a GX suite JSON.
        expect: Expectations declared inline.
        max_full_table_rows: Most rows kept in memory for whole-table expectations.
    """

    suite: str | None = None
    expect: list[ExpectationSpec] = Field(default_factory=list)
    max_full_table_rows: int = Field(default=1_000_000, ge=1)

    @model_validator(mode="after")
    def _something_to_check(self) -> ExpectationsPolicy:
        if not self.suite and not self.expect:
            raise ValueError("give a GX suite file ('suite') or at least one expectation ('expect')")
        return self


# ------------------------------------------------------------------------------------------------
# Poisoning signals
# ------------------------------------------------------------------------------------------------
class LabelShiftPolicy(StrictModel):
    """Label distribution shift against the reference.

    Attributes:
        column: The (categorical) label column.
        method: ``psi`` (fails when PSI > ``max_psi``) or ``chi2`` (fails when p < ``min_p_value``).
        max_psi: Largest PSI accepted (0.1 small, 0.25 large shift by the usual rule of thumb).
        min_p_value: Smallest chi-square p-value accepted (with large tables tiny shifts are
            significant: prefer PSI there).
        max_classes: More distinct labels than this is not a categorical label: an error.
    """

    column: str = Field(min_length=1)
    method: Literal["psi", "chi2"] = "psi"
    max_psi: float = Field(default=0.2, gt=0)
    min_p_value: float = Field(default=0.001, gt=0, lt=1)
    max_classes: int = Field(default=1000, ge=2, le=1_000_000)


class DuplicatesPolicy(StrictModel):
    """Duplicate-row rate (rows that repeat an earlier row / all rows).

    Attributes:
        max_rate: Largest accepted rate, 0..1.
        columns: Columns that define a duplicate (default: all columns).
    """

    max_rate: float = Field(ge=0, le=1)
    columns: list[str] | None = Field(default=None, min_length=1)


class OutOfRangePolicy(StrictModel):
    """Per-feature share of values outside the expected range.

    Attributes:
        max_rate: Largest accepted share per column, 0..1.
        columns: Numeric columns to check (default: the reference's numeric columns, label excluded).
        ranges: Explicit ``[min, max]`` per column; other columns use the reference's min/max.
        margin: Widen reference ranges by this fraction of their width on each side.
    """

    max_rate: float = Field(ge=0, le=1)
    columns: list[str] | None = Field(default=None, min_length=1)
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    margin: float = Field(default=0.0, ge=0)

    @field_validator("ranges")
    @classmethod
    def _ordered(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for name, (low, high) in value.items():
            if not (math.isfinite(low) and math.isfinite(high)) or low > high:
                raise ValueError(f"range of '{name}' must be finite [min, max] with min <= max")
        return value


class VolumePolicy(StrictModel):
    """Sudden volume change.

    Attributes:
        max_change: Largest accepted relative change of the row count, |rows - ref| / ref.
    """

    max_change: float = Field(gt=0)


class PoisoningPolicy(StrictModel):
    """``source.poisoning``: signals computed against a trusted reference dataset.

    Attributes:
        reference: Reference dataset (path relative to the policy file, or ``s3://``); the
            operator's ``reference`` argument or ``--reference`` overrides it.
    """

    reference: str | None = None
    label_shift: LabelShiftPolicy | None = None
    duplicates: DuplicatesPolicy | None = None
    out_of_range: OutOfRangePolicy | None = None
    volume: VolumePolicy | None = None

    @model_validator(mode="after")
    def _something_to_check(self) -> PoisoningPolicy:
        if not any((self.label_shift, self.duplicates, self.out_of_range, self.volume)):
            raise ValueError("configure at least one of label_shift, duplicates, out_of_range, volume")
        return self

    def needs_reference(self) -> bool:
        oor = self.out_of_range
        oor_needs = oor is not None and (oor.columns is None or any(c not in oor.ranges for c in oor.columns))
        return bool(self.label_shift or self.volume or oor_needs)


# ------------------------------------------------------------------------------------------------
# The section
# ------------------------------------------------------------------------------------------------
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
