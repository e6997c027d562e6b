"""One streamed pass per dataset: every accumulator (freshness, GX, poisoning) fed batch by batch.

Memory is bounded by ``batch_rows``, not the file size. S3 objects are downloaded to a temporary
file first (disk, not memory), exactly the version whose metadata is checked; a file that changes
while it is read is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.source._context import Context, denied_is_bad_input, finding
from airflow_aisec.core.gates.source._expectations import GxValidator, expectation_findings
from airflow_aisec.core.gates.source._freshness import NewestTimestamp, freshness_findings
from airflow_aisec.core.gates.source._pins import check_pins, require_pinned
from airflow_aisec.core.gates.source._poisoning import (
    DuplicateCounter,
    LabelCounter,
    OutOfRangeCounter,
    RangeProfile,
    is_numeric,
    poisoning_findings,
    resolve_bounds,
)
from airflow_aisec.core.gates.source._schema import check_schema, declared_csv_types
from airflow_aisec.core.io.storage import sha256_file
from airflow_aisec.core.policy.sections.source import SourcePolicy
from airflow_aisec.core.result import InputRef
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.gates.source._origin import Target


@dataclass
class Profile:
    """What a scan of the reference table produced."""

    rows: int = 0
    batches: int = 0
    labels: Any = None
    ranges: Any = None


@dataclass
class Scan:
    """Accumulators of one streamed pass over a dataset."""

    accumulators: list[Any] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    newest: NewestTimestamp | None = None
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


def _open(copy: Any, target: Target, section: SourcePolicy) -> Any:
    from airflow_aisec.core.io.tabular import detect_format, open_dataset

    fmt = detect_format(target.uri, section.format)
    # pyarrow ignores declared columns the file lacks; those are reported by name afterwards.
    csv_types = declared_csv_types(section) if fmt == "csv" else None
    # Empty CSV fields are missing values (as in pandas), so not-null expectations see them.
    return open_dataset(copy.path, fmt, uri=target.uri, csv_column_types=csv_types or None,
                        csv_empty_as_null=True)


def _numeric_types(schema: pa.Schema) -> dict[Any, bool]:
    """Whether each distinct type of the schema is numeric (decided per type, not per column)."""
    return {t: is_numeric(t) for t in set(schema.types)}


def _require_numeric(schema: pa.Schema, columns: Sequence[str], uri: str) -> None:
    types = dict(zip(schema.names, schema.types))
    numeric = _numeric_types(schema)
    for name in columns:
        if not numeric[types[name]]:
            raise ConfigurationError(f"{uri}: out_of_range column '{name}' is not numeric ({types[name]})")


def profile_reference(ctx: Context, target: Target, metrics: dict[str, Any]) -> Profile:
    """Stream the reference: row count, label counts, numeric ranges."""
    from airflow_aisec.core.io.column_blocks import threads_for
    from airflow_aisec.core.io.tabular import check_columns, iter_batches, local_copy

    poisoning = ctx.section.poisoning
    assert poisoning is not None
    with denied_is_bad_input(), local_copy(target.read_uri, s3_client=ctx.s3.for_uri(target.uri)) as copy:
        digest = sha256_file(copy.path)
        ctx.inputs.append(InputRef(uri=target.uri, sha256=digest))
        pinned = check_pins(ctx, target, digest, copy.s3_version_id, copy.s3_etag)
        require_pinned(ctx, target, pinned)
        dataset = _open(copy, target, ctx.section)
        schema = dataset.schema
        needed: list[str] = []
        profile = Profile()
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
                numeric = _numeric_types(schema)
                range_cols = [n for n, t in zip(schema.names, schema.types) if numeric[t] and n != label
                              and n not in oor.ranges]
            profile.ranges = RangeProfile(range_cols)
            accumulators.append(profile.ranges)
            needed.extend(range_cols)
        needed = list(dict.fromkeys(needed)) or [schema.names[0]]
        for batch in iter_batches(dataset, columns=needed, batch_rows=ctx.section.batch_rows, uri=target.uri,
                                  use_threads=threads_for(dataset, len(needed))):
            profile.rows += batch.num_rows
            profile.batches += 1
            for acc in accumulators:
                acc.update(batch)
    if profile.rows == 0:
        raise InputDataError(f"{target.uri}: the reference table is empty")
    metrics.update({"uri": target.uri, "sha256": digest, "rows": profile.rows})
    return profile


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


def _plan_scan(ctx: Context, target: Target, schema: pa.Schema, gx: Any, reference: Profile | None) -> Scan:
    """Set up the accumulators (and the columns they read) for one streamed pass."""
    import pyarrow as pa

    from airflow_aisec.core.io.tabular import check_columns

    section = ctx.section
    scan = Scan()
    freshness = section.freshness
    if freshness is not None and freshness.column:
        col_type = schema.field(freshness.column).type
        if not (pa.types.is_timestamp(col_type) or pa.types.is_date(col_type)):
            raise InputDataError(
                f"{target.uri}: freshness column '{freshness.column}' is not a timestamp or date ({col_type})"
            )
        scan.newest = scan.add(NewestTimestamp(freshness.column), [freshness.column])
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
            wanted = set(expected)
            columns = [n for n in schema.names if n in wanted]
        bounds = resolve_bounds(oor, columns, reference.ranges if reference else None)
        scan.out_of_range = scan.add(OutOfRangeCounter(bounds), bounds)
    return scan


def _row_count_findings(ctx: Context, target: Target, rows: int) -> None:
    bounds = ctx.section.rows
    if bounds is None:
        return
    if (bounds.min is not None and rows < bounds.min) or (bounds.max is not None and rows > bounds.max):
        low = bounds.min if bounds.min is not None else "-"
        high = bounds.max if bounds.max is not None else "-"
        ctx.findings.append(finding(
            "row_count", f"{target.uri}: {rows} rows, outside the allowed bounds [{low}, {high}]",
            count=rows, uri=target.uri, rows=rows, min=bounds.min, max=bounds.max,
        ))


def scan_input(ctx: Context, target: Target, reference: Profile | None) -> dict[str, Any]:
    """All checks on one dataset, in one streamed pass; returns its metrics."""
    from airflow_aisec.core.io.column_blocks import threads_for
    from airflow_aisec.core.io.tabular import check_columns, iter_batches, local_copy

    section = ctx.section
    metrics: dict[str, Any] = {"uri": target.uri}
    with denied_is_bad_input(), local_copy(target.read_uri, s3_client=ctx.s3.for_uri(target.uri)) as copy:
        before = os.stat(copy.path)
        digest = sha256_file(copy.path)
        ctx.inputs.append(InputRef(uri=target.uri, sha256=digest))
        metrics.update({"sha256": digest, "bytes": copy.size})
        if copy.s3_version_id:
            metrics["s3_version_id"] = copy.s3_version_id
        if copy.s3_etag:
            metrics["s3_etag"] = copy.s3_etag
        pinned = check_pins(ctx, target, digest, copy.s3_version_id, copy.s3_etag)
        require_pinned(ctx, target, pinned)

        dataset = _open(copy, target, section)
        schema = dataset.schema
        gx = None
        if ctx.expectation_items:
            limit = section.expectations.max_full_table_rows if section.expectations else 1
            gx = GxValidator(ctx.expectation_items, schema, target.uri, limit)
        check_columns(schema.names, _named_columns(section, gx), target.uri)
        check_schema(ctx, target, schema)

        scan = _plan_scan(ctx, target, schema, gx, reference)
        columns = list(dict.fromkeys(scan.columns)) or [schema.names[0]]
        duplicate_rows = None
        try:
            for batch in iter_batches(dataset, columns=columns, batch_rows=section.batch_rows, uri=target.uri,
                                      use_threads=threads_for(dataset, len(columns))):
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

        freshness_findings(ctx, target, scan.newest, copy.last_modified, metrics)
        _row_count_findings(ctx, target, scan.rows)
        if gx is not None:
            expectation_findings(ctx, target, gx.finish(scan.rows), metrics)
    poisoning_findings(ctx, target, scan, duplicate_rows, reference, metrics)
    return metrics
