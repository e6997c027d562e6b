"""The source gate over partitioned data: counts, schema and poisoning aggregates per partition, judged once.

A :class:`SourceSummary` holds a partition's rows, the table schema (Arrow IPC, metadata stripped:
names and types only), the newest value of the freshness column and the file's modification time,
label counts keyed by the sha256 of each class (never the class itself), and out-of-range counts
per column. :func:`check_summary` on the merged summary runs the single-node code
(``check_schema``, ``freshness_findings``, row bounds, ``poisoning_findings``) on the merged state,
with the reference profiled once there: for one file split into row groups the findings and
metrics equal ``check_sources`` on that file (``batches`` is the sum of the partitions' batches).

Not decomposable, refused for a partitioned scan (ConfigurationError naming the setting):

* ``source.expectations``: Great Expectations suites validate whole tables;
* ``source.pinning``: pins name whole objects (sha256, S3 VersionId), not parts of them;
* ``source.poisoning.duplicates``: an exact count of duplicate rows needs every row's hash in one place;
* ``source.poisoning.out_of_range`` without an explicit ``ranges`` entry per column: the bounds come
  from the reference, which every partition would have to read first.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.partitions import (
    Coverage,
    PartitionSummary,
    merged_id,
    partition_order,
    section_digest,
    split_partition_uri,
    verified_content,
)
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    from airflow_aisec.core.policy.sections.source import SourcePolicy
    from airflow_aisec.core.result import CheckOutcome

GATE = "source"


def class_key(value: str | None) -> str:
    """How a label class is named in a summary: a digest, so class names never leave the partition."""
    return "null" if value is None else hashlib.sha256(value.encode()).hexdigest()[:32]


@dataclass
class SourceSummary(PartitionSummary):
    gate: str
    partition: str
    policy: str
    schema: str
    coverage: Coverage
    batches: int = 0
    newest: str | None = None
    last_modified: str | None = None
    labels: dict[str, int] = field(default_factory=dict)
    outside: dict[str, int] = field(default_factory=dict)
    valid: dict[str, int] = field(default_factory=dict)
    size: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.gate, "partition": self.partition, "policy": self.policy, "schema": self.schema,
                "coverage": self.coverage.to_json(), "batches": self.batches, "newest": self.newest,
                "last_modified": self.last_modified, "labels": dict(sorted(self.labels.items())),
                "outside": dict(sorted(self.outside.items())), "valid": dict(sorted(self.valid.items())),
                "size": self.size}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SourceSummary:
        c = verified_content(d)
        try:
            return cls(gate=str(c["gate"]), partition=str(c["partition"]), policy=str(c["policy"]),
                       schema=str(c["schema"]), coverage=Coverage.from_json(c["coverage"]), batches=int(c["batches"]),
                       newest=c.get("newest"), last_modified=c.get("last_modified"),
                       labels={str(k): int(v) for k, v in c.get("labels", {}).items()},
                       outside={str(k): int(v) for k, v in c.get("outside", {}).items()},
                       valid={str(k): int(v) for k, v in c.get("valid", {}).items()}, size=int(c.get("size", 0)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputDataError(f"a source partition summary is malformed ({type(exc).__name__})") from None

    def merge(self, other: SourceSummary) -> SourceSummary:
        self.require_same(other)  # same class and gate first
        self.require_same(other, policy=(self.policy, other.policy), schema=(self.schema, other.schema))
        coverage = self.coverage.merge(other.coverage)

        def add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            return {k: a.get(k, 0) + b.get(k, 0) for k in sorted(set(a) | set(b))}

        same_file = {p["uri"] for p in self.coverage.parts.values()} == {p["uri"] for p in other.coverage.parts.values()}
        return SourceSummary(
            gate=GATE, partition=merged_id(coverage.parts), policy=self.policy, schema=self.schema, coverage=coverage,
            batches=self.batches + other.batches, newest=_latest(self.newest, other.newest),
            last_modified=_latest(self.last_modified, other.last_modified), labels=add(self.labels, other.labels),
            outside=add(self.outside, other.outside), valid=add(self.valid, other.valid),
            size=self.size if same_file and len({p["uri"] for p in coverage.parts.values()}) == 1
            else self.size + other.size,
        )


def _latest(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return max(a, b, key=_dt.datetime.fromisoformat)


def refuse_undecomposable(section: SourcePolicy) -> None:
    def no(setting: str, why: str) -> None:
        raise ConfigurationError(f"source.{setting} cannot be checked partition by partition ({why}); "
                                 "run the source gate on the whole data for this policy")

    if section.expectations is not None:
        no("expectations", "Great Expectations suites validate whole tables")
    if section.pinning is not None:
        no("pinning", "pins name whole objects, not their parts")
    poisoning = section.poisoning
    if poisoning is not None and poisoning.duplicates is not None:
        no("poisoning.duplicates", "exact duplicate counts need every row's hash in one place")
    oor = poisoning.out_of_range if poisoning is not None else None
    if oor is not None and (oor.columns is None or any(c not in oor.ranges for c in oor.columns)):
        no("poisoning.out_of_range", "bounds from the reference; give explicit ranges for its columns")


def _context(section: SourcePolicy, base_dir: str | None, s3_client: Any, now: _dt.datetime | None = None) -> Any:
    from airflow_aisec.core.gates.source._context import Context, S3ClientProvider, utc

    return Context(section=section, base_dir=base_dir, s3=S3ClientProvider(s3_client),
                   now=utc(now) if now else _dt.datetime.now(_dt.UTC), pins={}, expectation_items=[])


def _schema_bytes(schema: Any) -> str:
    return base64.b64encode(schema.remove_metadata().serialize().to_pybytes()).decode()


def summarize_partition(section: SourcePolicy, partition_uri: str, *, partition_id: str | None = None,
                        s3_client: Any = None, fmt: str | None = None, base_dir: str | None = None,
                        **gate_inputs: Any) -> SourceSummary:
    """One streamed pass over a partition (a file or ``file.parquet#row_group=N``): value-free aggregates.

    The partition's origin is checked first (nothing from an unapproved place is read).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_aisec.core.gates.source._columns import SchemaColumns
    from airflow_aisec.core.gates.source._context import denied_is_bad_input
    from airflow_aisec.core.gates.source._origin import canonical_target, check_origins
    from airflow_aisec.core.gates.source._scan import _named_columns, _open, _plan_scan
    from airflow_aisec.core.io.storage import sha256_file
    from airflow_aisec.core.io.tabular import check_columns, iter_batches, local_copy

    refuse_undecomposable(section)
    uri, row_group = split_partition_uri(partition_uri)
    partition_id = partition_id or str(partition_uri)
    target = canonical_target(uri)
    check_origins([target], section, base_dir)
    ctx = _context(section, base_dir, s3_client)
    with denied_is_bad_input(), local_copy(target.read_uri, s3_client=ctx.s3.for_uri(target.uri)) as copy:
        dataset = _open(copy, target, section)
        cols = SchemaColumns(dataset.names, dataset.types)
        check_columns(cols.names, _named_columns(section, None), target.uri)
        scan = _plan_scan(ctx, target, cols, None, None)
        columns = list(dict.fromkeys(scan.columns)) or [cols.names[0]]
        try:
            if row_group is None:
                batches = iter_batches(dataset, columns=columns, batch_rows=section.batch_rows, uri=target.uri)
            else:
                parquet = pq.ParquetFile(copy.path, pre_buffer=False)
                if row_group >= parquet.metadata.num_row_groups:
                    raise InputDataError(f"{uri}: no row group {row_group}")
                batches = parquet.iter_batches(batch_size=section.batch_rows, row_groups=[row_group], columns=columns)
            for batch in batches:
                scan.rows += batch.num_rows
                scan.batches += 1
                for accumulator in scan.accumulators:
                    accumulator.update(batch)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputDataError(f"{uri}: table could not be read ({type(exc).__name__})") from None
        digest = sha256_file(copy.path)
        modified = copy.last_modified.isoformat() if copy.last_modified else None
        size = int(copy.size or 0)
    labels = {class_key(k): v for k, v in scan.labels.counts.items()} if scan.labels is not None else {}
    oor = scan.out_of_range
    return SourceSummary(
        gate=GATE, partition=partition_id, policy=section_digest(section), schema=_schema_bytes(dataset.schema),
        coverage=Coverage.single(partition_id, uri, partition_order(partition_uri), scan.rows, sha256=digest),
        batches=scan.batches, newest=scan.newest.value.isoformat() if scan.newest and scan.newest.value else None,
        last_modified=modified, labels=labels, outside=dict(oor.outside) if oor else {},
        valid=dict(oor.valid) if oor else {}, size=size,
    )


def check_summary(section: SourcePolicy, summary: SourceSummary, *, reference: str | None = None,
                  base_dir: str | None = None, s3_client: Any = None, now: _dt.datetime | None = None,
                  data: str | None = None, **gate_inputs: Any) -> CheckOutcome:
    """``check_sources``' verdict on merged summaries (one dataset: the partitions' file or directory)."""
    import pyarrow as pa

    from airflow_aisec.core.gates.source._columns import SchemaColumns
    from airflow_aisec.core.gates.source._freshness import NewestTimestamp, freshness_findings
    from airflow_aisec.core.gates.source._origin import canonical_target, check_origins
    from airflow_aisec.core.gates.source._poisoning import LabelCounter, OutOfRangeCounter, poisoning_findings
    from airflow_aisec.core.gates.source._scan import Scan, _row_count_findings, profile_reference
    from airflow_aisec.core.gates.source._schema import check_schema
    from airflow_aisec.core.result import CheckOutcome, InputRef

    refuse_undecomposable(section)
    if summary.policy != section_digest(section):
        raise ConfigurationError("the source summaries were made under a different source policy section")
    summary.coverage.offsets()  # every row of every partition seen once
    files = summary.coverage.files()
    target = canonical_target(data or summary.coverage.root())
    ctx = _context(section, base_dir, s3_client, now)
    poisoning = section.poisoning
    reference_target = None
    if poisoning is not None:
        where = reference or poisoning.reference
        if where:
            reference_target = canonical_target(where, base_dir=None if reference else base_dir, role="reference")
        elif poisoning.needs_reference():
            raise ConfigurationError("source.poisoning: label_shift and volume need a reference dataset")
    if reference_target is not None:
        check_origins([reference_target], section, base_dir)
    metrics: dict[str, Any] = {"batch_rows": section.batch_rows, "datasets": []}
    profile = None
    if reference_target is not None:
        metrics["reference"] = {}
        profile = profile_reference(ctx, reference_target, metrics["reference"])
        if profile.labels is not None:  # compare class digests with class digests
            profile.labels.counts = {class_key(k): v for k, v in profile.labels.counts.items()}
    rows = summary.coverage.rows
    if rows == 0:
        raise InputDataError(f"{target.uri}: the table is empty")
    ctx.inputs.extend(InputRef(uri=u, sha256=d) for u, d in files)
    dm: dict[str, Any] = {"uri": target.uri}
    if len(files) == 1:
        dm.update({"sha256": files[0][1], "bytes": summary.size})
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(summary.schema)))
    dm.update({"rows": rows, "batches": summary.batches, "columns": len(schema)})
    check_schema(ctx, target, SchemaColumns.of(schema))
    newest = None
    if section.freshness is not None and section.freshness.column:
        newest = NewestTimestamp(section.freshness.column)
        newest.value = _dt.datetime.fromisoformat(summary.newest) if summary.newest else None
    modified = _dt.datetime.fromisoformat(summary.last_modified) if summary.last_modified else None
    freshness_findings(ctx, target, newest, modified, dm)
    _row_count_findings(ctx, target, rows)
    scan = Scan(rows=rows, batches=summary.batches)
    if poisoning is not None and poisoning.label_shift is not None:
        scan.labels = LabelCounter(poisoning.label_shift.column, max_classes=poisoning.label_shift.max_classes,
                                   uri=target.uri)
        scan.labels.counts = dict(summary.labels)
    if poisoning is not None and poisoning.out_of_range is not None:
        counter = OutOfRangeCounter({c: poisoning.out_of_range.ranges[c] for c in summary.valid})
        counter.outside, counter.valid = dict(summary.outside), dict(summary.valid)
        scan.out_of_range = counter
    poisoning_findings(ctx, target, scan, None, profile, dm)
    metrics["datasets"].append(dm)
    metrics["rows"] = rows
    metrics["partitions"] = {"count": len(summary.coverage.parts)}
    return CheckOutcome(findings=ctx.findings, metrics=metrics, inputs=ctx.inputs)
