"""Scanning a table: per column, how many cells carry each entity type (value-free counts).

Tables stream in blocks of columns and rows (:mod:`airflow_aisec.core.io.column_blocks`), counted
many columns at a time (:mod:`._bulk`), so memory follows the block size, not the file, and time the
number of cells, not of columns. A scan is full or a seeded sample, and the report records which.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.collector import collector_paused
from airflow_aisec.core.gates.pii._bulk import BlockCounter, BulkPlan
from airflow_aisec.core.gates.pii._detect import build_plan, detect_column, detect_columns
from airflow_aisec.core.gates.pii._patterns import Detector
from airflow_aisec.core.gates.pii._presidio import quiet_presidio
from airflow_aisec.core.gates.pii._table import open_for_scan, sample_positions, select_columns
from airflow_aisec.core.gates.pii._text import build_text_scanner
from airflow_aisec.core.gates.pii._validators import coincidental
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    from airflow_aisec.core.policy.sections.pii import PiiPolicy

#: Row positions kept per (column, entity) finding.
MAX_ROW_POSITIONS = 5


@dataclass
class EntityStats:
    count: int = 0
    rows: list[int] = field(default_factory=list)

    def add(self, position: int) -> None:
        self.count += 1
        if len(self.rows) < MAX_ROW_POSITIONS:
            self.rows.append(position)


@dataclass
class ColumnStats:
    """Per-column counts: cells per entity, and checksum candidates vs valid for chance correction."""

    entities: dict[str, EntityStats] = field(default_factory=dict)
    checksum_candidates: dict[str, int] = field(default_factory=dict)
    checksum_valid: dict[str, int] = field(default_factory=dict)
    coincidental: set[str] = field(default_factory=set)

    def carried(self) -> dict[str, EntityStats]:
        """Entities detected, minus coincidental checksum matches."""
        return {e: s for e, s in self.entities.items() if e not in self.coincidental}


class _ReadOnlyDict(dict):
    """A dict that refuses changes (the counts of :data:`NOTHING_FOUND`, shared by many columns)."""

    def _refuse(self, *_args: Any, **_kwargs: Any) -> None:
        raise TypeError("the counts of a column where nothing was found are shared and read-only")

    __setitem__ = __delitem__ = setdefault = update = pop = popitem = clear = _refuse  # type: ignore[assignment]


#: The counts of every column where a scan found nothing: one shared, read-only object, so a table
#: of 100,000 columns does not build 100,000 empty ones.
NOTHING_FOUND = ColumnStats(entities=_ReadOnlyDict(), checksum_candidates=_ReadOnlyDict(),
                            checksum_valid=_ReadOnlyDict(), coincidental=frozenset())  # type: ignore[arg-type]


@dataclass
class ScanReport:
    """What a scan saw: value-free counts only."""

    uri: str
    fmt: str
    sha256: str | None
    mode: str
    rows_total: int
    rows_scanned: int
    sample_size: int | None
    seed: int | None
    columns: dict[str, ColumnStats]
    skipped: dict[str, str]
    entities: list[str]
    nlp: dict[str, Any]
    duration_s: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    names_with_pii: dict[str, list[str]] = field(default_factory=dict)

    def label(self, name: str) -> str:
        """How results refer to a column: its name, or ``#<index>`` when the name itself holds PII."""
        return self.labels.get(name, name)

    @property
    def cells_scanned(self) -> int:
        return self.rows_scanned * len(self.columns)

    def scan_metrics(self) -> dict[str, Any]:
        scan: dict[str, Any] = {"mode": self.mode, "rows_total": self.rows_total, "rows_scanned": self.rows_scanned}
        if self.mode == "sample":
            scan.update(sample_size=self.sample_size, seed=self.seed)
        return scan


def _text_entities(section: PiiPolicy) -> set[str]:
    """PERSON / LOCATION looked for, offline (``pii.text``) or with a spaCy model (``pii.nlp``)."""
    out = set(section.nlp.entities) if section.nlp.enabled else set()
    return out | (set(section.text.entities) if section.text.enabled else set())


def column_labels(detector: Detector, names: Sequence[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Columns whose *name* holds PII (a CSV without a header row makes its first row the names).

    Returns:
        ``{name: "#<index>"}`` for those columns (results never show such a name), and the
        entities found per label.
    """
    import pyarrow as pa

    if not names:
        return {}, {}
    plan = build_plan(detector, [""])[0]
    hits = detect_column(pa.array([str(n) for n in names], pa.string()), plan, detector).hits()
    labels: dict[str, str] = {}
    found: dict[str, list[str]] = {}
    for entity, where in sorted(hits.items()):
        for i in where.tolist():
            label = f"#{i}"
            labels[names[i]] = label
            found.setdefault(label, []).append(entity)
    return labels, found


# The steps of scan_local as functions, shared with partition summaries (core/gates/pii/summary.py),
# so a partitioned scan counts exactly what the single scan counts.
def new_detector(section: PiiPolicy) -> Detector:
    """The detector the policy asks for."""
    return Detector(section.entities, column_hints=section.column_hints, phone_regions=section.phone_regions)


def tally_batch(stats: dict[str, ColumnStats], batch: Any, rows: Any, plans: Sequence[Any], detector: Detector,
                nlp: Any) -> None:
    """Count one batch into ``stats``; ``rows`` (numpy int64) are the positions reported for its rows.

    The per-column path: every column its own plan (``plans``) and detection pass. The scans (single
    node and partitions) count with :class:`~._bulk.BlockCounter`; the tests hold them to this one."""
    for plan, found, tally in detect_columns(batch, plans, detector, nlp):
        col = stats[plan.name]
        for entity, where in found.items():
            st = col.entities.setdefault(entity, EntityStats())
            st.count += len(where)
            room = MAX_ROW_POSITIONS - len(st.rows)
            if room > 0:
                st.rows.extend(int(r) for r in rows[where[:room]])
        for entity, (candidates, valid) in tally.items():
            col.checksum_candidates[entity] = col.checksum_candidates.get(entity, 0) + candidates
            col.checksum_valid[entity] = col.checksum_valid.get(entity, 0) + valid


def mark_coincidental(section: PiiPolicy, stats: dict[str, ColumnStats]) -> None:
    """Chance correction on the whole scan's counts (checksum candidates vs valid per column)."""
    if section.chance_correction:
        for col in stats.values():
            for entity, candidates in col.checksum_candidates.items():
                if coincidental(entity, candidates, col.checksum_valid.get(entity, 0)):
                    col.coincidental.add(entity)


def nlp_metrics(section: PiiPolicy) -> dict[str, Any]:
    if not section.nlp.enabled:
        return {"enabled": False}
    return {"enabled": True, "engine": section.nlp.engine, "model": section.nlp.model,
            "entities": list(section.nlp.entities)}


def scanned_entities(section: PiiPolicy, detector: Detector) -> list[str]:
    return list(detector.entities) + [e for e in ("PERSON", "LOCATION") if e in _text_entities(section)]


def scan_table(
    section: PiiPolicy,
    uri: str,
    *,
    s3_client: Any = None,
    fmt: str | None = None,
    full: bool = False,
    detector: Detector | None = None,
) -> ScanReport:
    """Scan a table and count, per column, the cells carrying each entity type.

    Args:
        section: The ``pii`` policy section.
        uri: Local path or ``s3://bucket/key``.
        s3_client: boto3 client for ``s3://`` (operators pass ``S3Hook(...).get_conn()``).
        fmt: ``csv`` or ``parquet``; from the extension when omitted.
        full: Scan every row even when the policy asks for a sample (redaction needs this).
        detector: A prepared :class:`Detector` (built from the policy when omitted).

    Returns:
        Value-free counts.

    Raises:
        InputDataError: unreadable, truncated, wrong format, empty, or a policy column missing.
        AccessDeniedError / ServiceUnavailableError: S3 refused or unreachable.
    """
    from airflow_aisec.core.io.tabular import detect_format, local_copy

    uri = str(uri)
    fmt = detect_format(uri, fmt)
    with local_copy(uri, s3_client=s3_client) as copy:
        return scan_local(section, copy.path, uri, fmt, full=full, detector=detector)


def scan_local(
    section: PiiPolicy,
    path: Path,
    uri: str,
    fmt: str,
    *,
    full: bool = False,
    detector: Detector | None = None,
) -> ScanReport:
    """:func:`scan_table` on a local file (``uri`` is the name reported)."""
    from airflow_aisec.core.io.column_blocks import block_cells, block_rows, iter_column_blocks
    from airflow_aisec.core.io.storage import sha256_file

    started = time.perf_counter()
    with quiet_presidio(), collector_paused():
        dataset = open_for_scan(path, fmt, uri)
        columns, skipped = select_columns(section, dataset.names, dataset.types, uri)
        from airflow_aisec.core.io.tabular import count_rows

        total = count_rows(dataset, uri)
        if total == 0:
            raise InputDataError(f"{uri}: the table is empty")
        sampled = section.scan.mode == "sample" and not full
        positions = sample_positions(total, section.scan.sample_size, section.scan.seed) if sampled else None
        detector = detector or new_detector(section)
        labels, names_with_pii = column_labels(detector, dataset.names)
        nlp = build_text_scanner(section)
        found: dict[str, ColumnStats] = {}
        counter = BlockCounter(found, BulkPlan(detector, columns), detector, nlp)
        scanned = 0
        for block in iter_column_blocks(dataset, columns, batch_rows=section.scan.batch_rows, uri=uri,
                                        block_cells=block_cells(total, section.scan.batch_rows)):
            chosen = block_rows(block, positions)
            if chosen is None:
                continue
            block, rows = chosen
            if not block.columns or block.columns[0] == 0:  # each row range once, not once per block of columns
                scanned += block.rows
            counter.add(block, rows)
        counter.flush()
        digest = sha256_file(path)
    mark_coincidental(section, found)
    stats = dict.fromkeys(columns, NOTHING_FOUND)
    stats.update(found)
    nlp_info = nlp_metrics(section)
    return ScanReport(
        uri=uri, fmt=fmt, sha256=digest, mode="sample" if sampled else "full", rows_total=total,
        rows_scanned=scanned, sample_size=section.scan.sample_size if sampled else None,
        seed=section.scan.seed if sampled else None, columns=stats, skipped=skipped,
        entities=scanned_entities(section, detector),
        nlp=nlp_info, duration_s=time.perf_counter() - started, labels=labels, names_with_pii=names_with_pii,
    )
