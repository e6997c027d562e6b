"""One streamed pass per dataset: every accumulator (freshness, GX, poisoning) fed batch by batch.

Memory is bounded by ``batch_rows``, not the file size. S3 objects are downloaded to a temporary
file first (disk, not memory), exactly the version whose metadata is checked; a file that changes
while it is read is refused.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.source._columns import BatchColumns, GroupColumns, SchemaColumns
from airflow_aisec.core.gates.source._context import Context, denied_is_bad_input, finding
from airflow_aisec.core.gates.source._expectations import GxValidator, expectation_findings
from airflow_aisec.core.gates.source._freshness import NewestTimestamp, freshness_findings
from airflow_aisec.core.gates.source._pins import check_pins, require_pinned
from airflow_aisec.core.gates.source._poisoning import (
    DuplicateCounter,
    LabelCounter,
    OutOfRangeCounter,
    RangeProfile,
    poisoning_findings,
    resolve_bounds,
    within_own_ranges,
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
    range_columns: list[str] = field(default_factory=list)  # out_of_range's, before a self reference's split

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


def _require_numeric(cols: SchemaColumns, columns: Sequence[str], uri: str) -> None:
    if cols.all_numeric(columns):  # the usual case, at a wide table's 20,000 columns: one lookup each
        return
    position = cols.position
    for name in columns:
        if not cols.numeric[position[name]]:
            raise ConfigurationError(f"{uri}: out_of_range column '{name}' is not numeric ({cols.types[position[name]]})")


def _record_pins(ctx: Context, target: Target, copy: Any, digest: str) -> None:
    ctx.inputs.append(InputRef(uri=target.uri, sha256=digest))
    pinned = check_pins(ctx, target, digest, copy.s3_version_id, copy.s3_etag)
    require_pinned(ctx, target, pinned)


def _plan_reference(ctx: Context, target: Target, cols: SchemaColumns) -> tuple[Profile, list[Any], list[str]]:
    """The reference's accumulators (label counts, numeric ranges) and the columns they read."""
    from airflow_aisec.core.io.tabular import check_columns

    poisoning = ctx.section.poisoning
    assert poisoning is not None
    needed: list[str] = []
    profile = Profile()
    accumulators: list[Any] = []
    if poisoning.label_shift:
        check_columns(cols.names, [poisoning.label_shift.column], target.uri)
        profile.labels = LabelCounter(poisoning.label_shift.column,
                                      max_classes=poisoning.label_shift.max_classes, uri=target.uri)
        accumulators.append(profile.labels)
        needed.append(poisoning.label_shift.column)
    oor = poisoning.out_of_range
    if oor is not None:
        if oor.columns is not None:
            range_cols = [c for c in oor.columns if c not in oor.ranges]
            check_columns(cols.names, range_cols, target.uri)
            _require_numeric(cols, range_cols, target.uri)
        else:
            label = poisoning.label_shift.column if poisoning.label_shift else None
            range_cols = cols.numeric_names({label, *oor.ranges} - {None})
        profile.ranges = RangeProfile(range_cols)
        accumulators.append(profile.ranges)
        needed.extend(range_cols)
    return profile, accumulators, list(dict.fromkeys(needed)) or [cols.names[0]]


def _stream(dataset: Any, columns: list[str], batch_rows: int, uri: str, accumulators: list[Any],
            cols: SchemaColumns) -> Iterator[Any]:
    """Feed every batch to the accumulators (the poisoning ones share one view of its columns); yields
    each batch's row count. ``cols``: the dataset's schema columns."""
    from airflow_aisec.core.io.column_blocks import threads_for
    from airflow_aisec.core.io.tabular import iter_batches

    views = [getattr(acc, "reads_columns_view", False) for acc in accumulators]
    every = columns == cols.names  # a wide table's usual case: the schema's own name -> index map serves
    parts = _wide_csv_parts(dataset, columns, cols.names, batch_rows, uri)
    if parts is not None:
        # A wide CSV file's batches come as same-typed groups of cells, with no per-column array.
        position = functools.cache(lambda: cols.position if every else {name: i for i, name in enumerate(columns)})
        for rows, groups, batch in parts:
            view = (GroupColumns(rows, groups, columns, position) if groups is not None
                    else BatchColumns(batch, position() if batch.schema.names == columns else None))
            for accumulator, wants_view in zip(accumulators, views):
                accumulator.update(view if wants_view else view.batch)
            yield rows
        return
    position = cols.position if every else {name: i for i, name in enumerate(columns)}  # once, not per batch
    for batch in iter_batches(dataset, columns=columns, batch_rows=batch_rows, uri=uri,
                              use_threads=threads_for(dataset, len(columns))):
        view = BatchColumns(batch, position if batch.schema.names == columns else None)
        for accumulator, wants_view in zip(accumulators, views):
            accumulator.update(view if wants_view else batch)
        yield batch.num_rows


def _wide_csv_parts(dataset: Any, columns: list[str], names: list[str], batch_rows: int,
                    uri: str) -> Iterator[Any] | None:
    """A wide CSV file's batches as :func:`~airflow_aisec.core.io.wide_csv.iter_wide_csv_groups` yields
    them (None: not such a file, read it as record batches). ``names``: the file's columns."""
    from airflow_aisec.core.io import wide_csv
    from airflow_aisec.core.io.tabular import check_columns

    if dataset.kind != "csv" or not wide_csv.eligible(dataset, dataset.path):
        return None
    if columns != names:
        check_columns(names, columns, uri)  # as iter_batches does
    return wide_csv.iter_wide_csv_groups(dataset, columns, batch_rows, uri=uri)


def profile_reference(ctx: Context, target: Target, metrics: dict[str, Any]) -> Profile:
    """Stream the reference: row count, label counts, numeric ranges."""
    from airflow_aisec.core.io.tabular import local_copy

    with denied_is_bad_input(), local_copy(target.read_uri, s3_client=ctx.s3.for_uri(target.uri)) as copy:
        digest = sha256_file(copy.path)
        _record_pins(ctx, target, copy, digest)
        dataset = _open(copy, target, ctx.section)
        cols = SchemaColumns(dataset.names, dataset.types)
        profile, accumulators, needed = _plan_reference(ctx, target, cols)
        for rows in _stream(dataset, needed, ctx.section.batch_rows, target.uri, accumulators, cols):
            profile.rows += rows
            profile.batches += 1
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


def _plan_scan(ctx: Context, target: Target, schema: pa.Schema | SchemaColumns, gx: Any, reference: Profile | None,
               *, self_reference: bool = False) -> Scan:
    """Set up the accumulators (and the columns they read) for one streamed pass.

    ``self_reference``: ``reference`` is being profiled from this very file in the same pass, so
    only columns with an explicit range are counted here (see :func:`within_own_ranges`).
    """
    import pyarrow as pa

    from airflow_aisec.core.io.tabular import check_columns

    section = ctx.section
    cols = schema if isinstance(schema, SchemaColumns) else SchemaColumns.of(schema)
    scan = Scan()
    freshness = section.freshness
    if freshness is not None and freshness.column:
        col_type = cols.type_of(freshness.column)
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
        scan.duplicates = scan.add(DuplicateCounter(columns=columns), columns or cols.names)
    if poisoning.out_of_range:
        oor = poisoning.out_of_range
        if oor.columns is not None:
            columns = list(oor.columns)
            _require_numeric(cols, columns, target.uri)
        else:
            label = poisoning.label_shift.column if poisoning.label_shift else None
            # Columns given a range, and the reference's numeric columns, must be here and numeric:
            # a renamed or retyped column must not drop out of the check.
            expected = [c for c in dict.fromkeys(
                [*oor.ranges, *(reference.ranges.columns if reference and reference.ranges else [])]) if c != label]
            check_columns(cols.names, expected, target.uri)
            _require_numeric(cols, expected, target.uri)
            wanted = set(expected)
            columns = [n for n in cols.names if n in wanted]
        scan.range_columns = columns
        if self_reference:
            columns = [c for c in columns if c in oor.ranges]
        bounds = resolve_bounds(oor, columns, reference.ranges if reference and not self_reference else None)
        scan.out_of_range = scan.add(OutOfRangeCounter(bounds), bounds)
    return scan


def _union(cols: SchemaColumns, names: list[str]) -> list[str]:
    """``names`` without repeats, in order; at once when they start with every column of the schema
    (duplicate rows over all columns, a wide table's usual case), which the rest can only repeat."""
    width = len(cols.names)
    if len(names) >= width and names[:width] == cols.names and cols.has_all(names[width:]):
        return cols.names
    return list(dict.fromkeys(names))


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


@dataclass
class SelfReference:
    """The reference is the scanned file itself (same device, inode, size and modification time):
    it is profiled in the same pass, so the file is read, and its CSV types inferred, once."""

    target: Target
    metrics: dict[str, Any]
    profile: Profile | None = None


def scan_input(ctx: Context, target: Target, reference: Profile | None, *,
               self_reference: SelfReference | None = None) -> dict[str, Any]:
    """All checks on one dataset, in one streamed pass; returns its metrics.

    With ``self_reference`` (and ``reference`` None) the reference profile is made in that pass and
    left in ``self_reference.profile``; the reference's checks come first, as if it had been read
    on its own before.
    """
    from airflow_aisec.core.io.tabular import check_columns, local_copy

    section = ctx.section
    metrics: dict[str, Any] = {"uri": target.uri}
    with denied_is_bad_input(), local_copy(target.read_uri, s3_client=ctx.s3.for_uri(target.uri)) as copy:
        before = os.stat(copy.path)
        digest = sha256_file(copy.path)
        first = target  # the file is read (and its read errors named) as the reference when it is one
        own: list[Any] = []
        needed: list[str] = []
        if self_reference is not None:
            first = self_reference.target
            _record_pins(ctx, first, copy, digest)
            dataset = _open(copy, first, section)
            cols = SchemaColumns(dataset.names, dataset.types)
            reference, own, needed = _plan_reference(ctx, first, cols)
            self_reference.profile = reference
        _record_pins(ctx, target, copy, digest)
        metrics.update({"sha256": digest, "bytes": copy.size})
        if copy.s3_version_id:
            metrics["s3_version_id"] = copy.s3_version_id
        if copy.s3_etag:
            metrics["s3_etag"] = copy.s3_etag

        if self_reference is None:
            dataset = _open(copy, target, section)
            cols = SchemaColumns(dataset.names, dataset.types)
        gx = None
        if ctx.expectation_items:
            limit = section.expectations.max_full_table_rows if section.expectations else 1
            gx = GxValidator(ctx.expectation_items, dataset.schema, target.uri, limit)
        check_columns(cols.names, _named_columns(section, gx), target.uri)
        check_schema(ctx, target, cols)

        scan = _plan_scan(ctx, target, cols, gx, reference, self_reference=self_reference is not None)
        columns = _union(cols, [*scan.columns, *needed]) or [cols.names[0]]
        duplicate_rows = None
        try:
            for rows in _stream(dataset, columns, section.batch_rows, first.uri, [*own, *scan.accumulators], cols):
                scan.rows += rows
                scan.batches += 1
            if scan.rows == 0:
                raise InputDataError(f"{first.uri}: the reference table is empty" if self_reference is not None
                                     else f"{target.uri}: the table is empty")
            if scan.duplicates is not None:
                duplicate_rows = scan.duplicates.finish()
        finally:
            if scan.duplicates is not None:
                scan.duplicates.close()
        after = os.stat(copy.path)
        if (before.st_size, before.st_mtime_ns, before.st_ino) != (after.st_size, after.st_mtime_ns, after.st_ino):
            raise InputDataError(f"{target.uri}: the file changed while it was being validated")
        metrics.update({"rows": scan.rows, "batches": scan.batches, "columns": len(cols.names)})
        if self_reference is not None:
            assert reference is not None
            reference.rows, reference.batches = scan.rows, scan.batches
            self_reference.metrics.update({"uri": first.uri, "sha256": digest, "rows": scan.rows})
            if scan.out_of_range is not None:
                assert section.poisoning is not None and section.poisoning.out_of_range is not None
                scan.out_of_range = within_own_ranges(section.poisoning.out_of_range, scan.range_columns,
                                                      reference.ranges, scan.out_of_range)

        freshness_findings(ctx, target, scan.newest, copy.last_modified, metrics)
        _row_count_findings(ctx, target, scan.rows)
        if gx is not None:
            expectation_findings(ctx, target, gx.finish(scan.rows), metrics)
    poisoning_findings(ctx, target, scan, duplicate_rows, reference, metrics)
    return metrics
