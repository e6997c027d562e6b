"""The pii gate over partitioned data: a summary per partition, merged, then judged once.

A :class:`PiiSummary` holds what :func:`~._scan.scan_local` counts (cells per column and entity,
checksum candidates and passes, the first row positions as ``[partition, row]``), the columns
scanned and skipped (by label: a column whose name holds PII is ``#<index>``), and a
:class:`~airflow_aisec.core.partitions.Coverage` of the rows seen; never a value or such a name.
:func:`check_summary` on the merged summary gives the verdict, findings and counts of
:func:`~.check.check_pii` on the whole data (one file split into row groups, or files laid end to
end in sorted order); chance correction runs on the merged counts, as on a single scan.

Not decomposable, so refused here (ConfigurationError): ``pii.scan.mode: sample`` (the sample is
drawn over the whole table's row count).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.io.schema_lists import schema_lists, type_names
from airflow_aisec.core.partitions import (
    Coverage,
    PartitionSummary,
    global_positions,
    merge_positions,
    merged_id,
    partition_order,
    section_digest,
    sha256_json,
    split_partition_uri,
    verified_content,
)
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.policy.sections.pii import Classification, PiiPolicy
    from airflow_aisec.core.result import CheckOutcome

GATE = "pii"


@dataclass
class PiiSummary(PartitionSummary):
    """Value-free counts of the pii scan of one or more partitions (see the module docstring)."""

    gate: str
    partition: str
    policy: str
    schema: str
    fmt: str
    coverage: Coverage
    rows_scanned: int
    column_order: list[str]
    columns: dict[str, dict[str, Any]]
    skipped: dict[str, str] = field(default_factory=dict)
    names_with_pii: dict[str, list[str]] = field(default_factory=dict)
    entities: list[str] = field(default_factory=list)
    nlp: dict[str, Any] = field(default_factory=dict)
    duration_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "gate": self.gate, "partition": self.partition, "policy": self.policy, "schema": self.schema,
            "fmt": self.fmt, "coverage": self.coverage.to_json(), "rows_scanned": self.rows_scanned,
            "column_order": list(self.column_order),
            "columns": {c: _column_json(v) for c, v in sorted(self.columns.items())},
            "skipped": dict(sorted(self.skipped.items())),
            "names_with_pii": {k: list(v) for k, v in sorted(self.names_with_pii.items())},
            "entities": list(self.entities), "nlp": dict(self.nlp), "duration_ms": int(self.duration_ms),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PiiSummary:
        content = verified_content(d)
        try:
            return cls(
                gate=str(content["gate"]), partition=str(content["partition"]), policy=str(content["policy"]),
                schema=str(content["schema"]), fmt=str(content["fmt"]),
                coverage=Coverage.from_json(content["coverage"]), rows_scanned=int(content["rows_scanned"]),
                column_order=[str(c) for c in content["column_order"]],
                columns={str(c): _column_json(v) for c, v in content["columns"].items()},
                skipped=dict(content.get("skipped", {})), names_with_pii=dict(content.get("names_with_pii", {})),
                entities=list(content.get("entities", [])), nlp=dict(content.get("nlp", {})),
                duration_ms=int(content.get("duration_ms", 0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputDataError(f"a pii partition summary is malformed ({type(exc).__name__})") from None

    def merge(self, other: PiiSummary) -> PiiSummary:
        self.require_same(other)  # same class and gate first
        self.require_same(other, policy=(self.policy, other.policy), schema=(self.schema, other.schema),
                          format=(self.fmt, other.fmt), columns=(self.column_order, other.column_order),
                          skipped_columns=(self.skipped, other.skipped),
                          column_names=(self.names_with_pii, other.names_with_pii),
                          entities=(self.entities, other.entities), nlp=(self.nlp, other.nlp))
        from airflow_aisec.core.gates.pii._scan import MAX_ROW_POSITIONS

        coverage = self.coverage.merge(other.coverage)
        orders = {pid: part["order"] for pid, part in coverage.parts.items()}
        columns: dict[str, dict[str, Any]] = {}
        for name in self.column_order:
            if name not in self.columns and name not in other.columns:
                continue  # nothing counted in either: not listed (read as empty)
            a, b = self.columns.get(name, _empty_column()), other.columns.get(name, _empty_column())
            entities: dict[str, Any] = {}
            for entity in sorted(set(a["entities"]) | set(b["entities"])):
                ea = a["entities"].get(entity, {"count": 0, "rows": []})
                eb = b["entities"].get(entity, {"count": 0, "rows": []})
                entities[entity] = {"count": ea["count"] + eb["count"],
                                    "rows": merge_positions(ea["rows"], eb["rows"], orders, MAX_ROW_POSITIONS)}
            columns[name] = {"entities": entities, "candidates": _add(a["candidates"], b["candidates"]),
                             "valid": _add(a["valid"], b["valid"])}
        return PiiSummary(
            gate=GATE, partition=merged_id(coverage.parts), policy=self.policy, schema=self.schema, fmt=self.fmt,
            coverage=coverage, rows_scanned=self.rows_scanned + other.rows_scanned,
            column_order=list(self.column_order), columns=columns, skipped=dict(self.skipped),
            names_with_pii=dict(self.names_with_pii), entities=list(self.entities), nlp=dict(self.nlp),
            duration_ms=self.duration_ms + other.duration_ms,
        )


def _empty_column() -> dict[str, Any]:
    return {"entities": {}, "candidates": {}, "valid": {}}


def _column_json(v: dict[str, Any]) -> dict[str, Any]:
    return {
        "entities": {e: {"count": int(s["count"]), "rows": [[str(p), int(r)] for p, r in s["rows"]]}
                     for e, s in sorted(v.get("entities", {}).items())},
        "candidates": {e: int(n) for e, n in sorted(v.get("candidates", {}).items())},
        "valid": {e: int(n) for e, n in sorted(v.get("valid", {}).items())},
    }


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in sorted(set(a) | set(b))}


# --- scanning a partition ------------------------------------------------------------------------

@dataclass
class ScanSetup:
    """What every partition of one table scans the same way: columns, labels, detector, plans.

    Built from the table's schema (:meth:`from_schema`); :meth:`header` / :meth:`from_header` carry
    it to Spark executors without re-reading the schema there.
    """

    section: PiiPolicy
    fmt: str
    columns: list[str]
    skipped: dict[str, str]
    labels: dict[str, str]
    names_with_pii: dict[str, list[str]]
    schema: str
    _prepared: Any = None

    @classmethod
    def from_schema(cls, section: PiiPolicy, schema: pa.Schema, uri: str, fmt: str) -> ScanSetup:
        from airflow_aisec.core.gates.pii._scan import column_labels, new_detector
        from airflow_aisec.core.gates.pii._table import select_columns

        refuse_sample(section)
        names, types = schema_lists(schema)
        columns, skipped = select_columns(section, names, types, uri)
        detector = new_detector(section)
        labels, names_with_pii = column_labels(detector, names)
        setup = cls(section=section, fmt=fmt, columns=columns,
                    skipped={labels.get(c, c): why for c, why in skipped.items()}, labels=labels,
                    names_with_pii=names_with_pii,
                    schema=sha256_json([list(pair) for pair in zip(names, type_names(types))]))
        setup._prepared = (detector,)
        return setup

    def header(self) -> dict[str, Any]:
        return {"fmt": self.fmt, "columns": self.columns, "skipped": self.skipped, "labels": self.labels,
                "names_with_pii": self.names_with_pii, "schema": self.schema}

    @classmethod
    def from_header(cls, section: PiiPolicy, header: dict[str, Any]) -> ScanSetup:
        return cls(section=section, **header)

    def _tools(self) -> tuple[Any, Any, Any]:
        from airflow_aisec.core.gates.pii._bulk import BulkPlan
        from airflow_aisec.core.gates.pii._scan import new_detector
        from airflow_aisec.core.gates.pii._text import build_text_scanner

        if self._prepared is None or len(self._prepared) < 3:
            detector = self._prepared[0] if self._prepared else new_detector(self.section)
            self._prepared = (detector, build_text_scanner(self.section), BulkPlan(detector, self.columns))
        return self._prepared

    def summarize(self, batches: Iterable[tuple[Any, Any]], *, partition_id: str, uri: str, order: list[Any],
                  rows: int | None = None, sha256: str | None = None, start: int = 0) -> PiiSummary:
        """Count ``(batch, local row positions)`` pairs into a summary of one partition (or of rows
        ``start .. start + rows`` of it when ``rows`` is given and the batches are a slice)."""
        from airflow_aisec.core.gates.pii._bulk import BlockCounter
        from airflow_aisec.core.gates.pii._presidio import quiet_presidio
        from airflow_aisec.core.gates.pii._scan import ColumnStats, nlp_metrics, scanned_entities
        from airflow_aisec.core.io.column_blocks import ColumnBlock

        started = time.perf_counter()
        detector, nlp, plan = self._tools()
        # The single-node scan's counter (columns grouped by hint set, cells of many columns per
        # detection pass); only columns with something to count get stats (the others read as empty).
        stats: dict[str, ColumnStats] = {}
        counter = BlockCounter(stats, plan, detector, nlp)
        everything = range(len(self.columns))
        scanned = 0
        with quiet_presidio():
            for batch, positions in batches:
                scanned += batch.num_rows
                if batch.schema.names != self.columns:
                    batch = batch.select(self.columns)
                counter.add(ColumnBlock(start=0, rows=batch.num_rows, columns=everything, batch=batch), positions)
            counter.flush()
        columns = {}
        for real, col in stats.items():
            columns[self.labels.get(real, real)] = {
                "entities": {e: {"count": s.count, "rows": [[partition_id, int(r)] for r in s.rows]}
                             for e, s in sorted(col.entities.items())},
                "candidates": dict(col.checksum_candidates), "valid": dict(col.checksum_valid)}
        return PiiSummary(
            gate=GATE, partition=partition_id, policy=section_digest(self.section), schema=self.schema,
            fmt=self.fmt, coverage=Coverage.single(partition_id, uri, order, scanned if rows is None else rows,
                                                   start=start, sha256=sha256),
            rows_scanned=scanned, column_order=[self.labels.get(c, c) for c in self.columns], columns=columns,
            skipped=dict(self.skipped), names_with_pii=dict(self.names_with_pii),
            entities=scanned_entities(self.section, detector), nlp=nlp_metrics(self.section),
            duration_ms=int((time.perf_counter() - started) * 1000),
        )


def refuse_sample(section: PiiPolicy) -> None:
    if section.scan.mode == "sample":
        raise ConfigurationError("pii.scan.mode 'sample' draws its sample over the whole table and cannot be "
                                 "split into partitions; use mode 'full' for a partitioned scan")


def _local_rows(batches: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    import numpy as np

    offset = 0
    for batch in batches:
        n = batch.num_rows
        yield batch, np.arange(offset, offset + n, dtype=np.int64)
        offset += n


def summarize_partition(section: PiiPolicy, partition_uri: str, *, partition_id: str | None = None,
                        s3_client: Any = None, fmt: str | None = None, **gate_inputs: Any) -> PiiSummary:
    """Scan one partition (a CSV / Parquet file, or ``file.parquet#row_group=N``) into a summary.

    ``gate_inputs`` (e.g. ``classification``) are accepted and unused: the level is applied once,
    by :func:`check_summary`.

    Raises:
        InputDataError: unreadable data, a row group that does not exist, a policy column missing.
        ConfigurationError: a sampled scan, or a row group of a CSV file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_aisec.core.gates.pii._table import iter_rows, open_for_scan
    from airflow_aisec.core.io.storage import sha256_file
    from airflow_aisec.core.io.tabular import count_rows, detect_format, local_copy

    refuse_sample(section)
    uri, row_group = split_partition_uri(partition_uri)
    partition_id = partition_id or str(partition_uri)
    fmt = detect_format(uri, fmt)
    if row_group is not None and fmt != "parquet":
        raise ConfigurationError(f"{uri}: row-group partitions need Parquet, not {fmt}")
    with local_copy(uri, s3_client=s3_client) as copy:
        dataset = open_for_scan(copy.path, fmt, uri)
        setup = ScanSetup.from_schema(section, dataset.schema, uri, fmt)
        batch_rows = section.scan.batch_rows
        if row_group is None:
            total = count_rows(dataset, uri)
            batches: Iterable[tuple[Any, Any]] = iter_rows(dataset, setup.columns, batch_rows=batch_rows, uri=uri)
        else:
            try:
                parquet = pq.ParquetFile(copy.path, pre_buffer=False)
                if row_group >= parquet.metadata.num_row_groups:
                    raise InputDataError(f"{uri}: no row group {row_group} "
                                         f"(the file has {parquet.metadata.num_row_groups})")
                total = parquet.metadata.row_group(row_group).num_rows
                batches = _local_rows(parquet.iter_batches(batch_size=batch_rows, row_groups=[row_group],
                                                           columns=setup.columns))
            except (pa.ArrowInvalid, OSError) as exc:
                raise InputDataError(f"{uri}: row group {row_group} could not be read ({type(exc).__name__})") \
                    from None
        try:
            summary = setup.summarize(batches, partition_id=partition_id, uri=uri,
                                      order=partition_order(partition_uri), sha256=sha256_file(copy.path))
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputDataError(f"{uri}: table could not be read ({type(exc).__name__})") from None
    if summary.rows_scanned != total:
        raise InputDataError(f"{partition_uri}: read {summary.rows_scanned} rows of {total} (truncated?)")
    return summary


# --- judging the merged summary -------------------------------------------------------------------

def to_report(section: PiiPolicy, summary: PiiSummary, *, uri: str | None = None) -> Any:
    """The :class:`~._scan.ScanReport` a single scan of the same data would have produced."""
    from airflow_aisec.core.gates.pii._scan import ColumnStats, EntityStats, ScanReport, mark_coincidental

    if summary.policy != section_digest(section):
        raise ConfigurationError("the pii summaries were made under a different pii policy section")
    offsets = summary.coverage.offsets()
    files = summary.coverage.files()
    root = uri or summary.coverage.root()
    if summary.coverage.rows == 0:
        raise InputDataError(f"{root}: the table is empty")
    stats: dict[str, ColumnStats] = {}
    for name in summary.column_order:
        col = summary.columns.get(name, _empty_column())
        stats[name] = ColumnStats(
            entities={e: EntityStats(count=s["count"], rows=global_positions(s["rows"], offsets))
                      for e, s in col["entities"].items()},
            checksum_candidates=dict(col["candidates"]), checksum_valid=dict(col["valid"]))
    mark_coincidental(section, stats)
    return ScanReport(
        uri=root, fmt=summary.fmt, sha256=files[0][1] if len(files) == 1 else None, mode="full",
        rows_total=summary.coverage.rows, rows_scanned=summary.rows_scanned, sample_size=None, seed=None,
        columns=stats, skipped=dict(summary.skipped), entities=list(summary.entities), nlp=dict(summary.nlp),
        duration_s=summary.duration_ms / 1000, labels={}, names_with_pii=dict(summary.names_with_pii),
    )


def check_summary(section: PiiPolicy, summary: PiiSummary, *, classification: str | Classification | None = None,
                  data: str | None = None, **gate_inputs: Any) -> CheckOutcome:
    """:func:`~.check.check_pii`'s verdict on merged summaries: same findings and counts.

    Args:
        section: The policy's ``pii`` section (the one the summaries were made under).
        summary: The merged summary of every partition.
        classification: Declared level; the policy's ``default_classification`` when omitted.
        data: Name of the data in the result (default: the file, or the directory common to the files).
    """
    from airflow_aisec.core.gates.pii._classify import classify
    from airflow_aisec.core.result import InputRef

    level = section.resolve_classification(classification)
    report = to_report(section, summary, uri=data)
    outcome = classify(section, report, level)
    files = summary.coverage.files()
    if len(files) > 1:
        outcome.inputs = [InputRef(uri=u, sha256=d) for u, d in files]
    outcome.metrics["partitions"] = {"count": len(summary.coverage.parts)}
    return outcome


def check_partitioned(section: PiiPolicy, uri: str, *, classification: str | Classification | None = None,
                      s3_client: Any = None, fmt: str | None = None, by: str = "file") -> CheckOutcome:
    """In one process: summarize every partition of ``uri`` (a file, a directory, an ``s3://`` prefix)
    and judge the merge (what ``aisec pii scan DIR`` does; mapped tasks do the same across workers)."""
    from airflow_aisec.core.partitions import list_partitions, merge_all

    parts = list_partitions(str(uri), s3_client=s3_client, by=by)
    summaries = [summarize_partition(section, p, partition_id=p, s3_client=s3_client, fmt=fmt) for p in parts]
    return check_summary(section, merge_all(summaries), classification=classification)
