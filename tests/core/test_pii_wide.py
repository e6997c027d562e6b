"""The pii gate's wide-table counting (:mod:`airflow_aisec.core.gates.pii._bulk`): text of many small blocks
laid end to end before one detection pass, columns grouped by Arrow type in numpy; the counts must equal
a column-by-column scan's whatever the block size, the pass size and the column types."""

from __future__ import annotations

import dataclasses
import decimal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.gates.pii import _detect, scan_table
from airflow_aisec.core.gates.pii._bulk import _text_of
from airflow_aisec.core.gates.pii._scan import ColumnStats, mark_coincidental, new_detector, tally_batch
from airflow_aisec.core.gates.pii._table import (
    as_strings,
    iter_rows,
    open_for_scan,
    sample_positions,
    select_columns,
)
from airflow_aisec.core.io import column_blocks
from airflow_aisec.core.io.column_blocks import ColumnBlock
from airflow_aisec.core.policy.sections.pii import PiiPolicy
from tests.helpers.calls import record_yields

ROWS = 5
PLANTED = ["user{c}@example.com", "4539148803436467", "4539148803436468", "call (212) 555-0199",
           "DE89 3704 0044 0532 0130 00", "ssn 372-81-4401 on file", "host 10.0.{r}.7", "https://example.org/{c}"]


def text(c: int, r: int) -> str | None:
    k = (c * 5 + r * 3) % 23
    if k < len(PLANTED):
        return PLANTED[k].format(c=c, r=r)
    return None if k == 11 else f"order {c}-{r}"


def mixed_table(columns: int = column_blocks.WIDE_COLUMNS + 200) -> pa.Table:
    """Text, large text, dictionary text, binary, integers of two widths, decimals, floats (not scanned:
    more than WIDE_COLUMNS are scanned all the same)
    and hinted names, interleaved so that every block holds several types."""
    data = {}
    for c in range(columns):
        values = [text(c, r) for r in range(ROWS)]
        kind = c % 9
        if kind == 1:
            data[f"c{c}"] = pa.array(values, pa.large_string())
        elif kind == 2:
            data[f"c{c}"] = pa.array(values, pa.string()).dictionary_encode()
        elif kind == 3:
            data[f"c{c}"] = pa.array([None if v is None else v.encode() for v in values], pa.binary())
        elif kind == 4:
            data[f"n{c}"] = pa.array([4539148803436467 if r == 2 else 1000 + c + r for r in range(ROWS)], pa.int64())
        elif kind == 5:
            data[f"i{c}"] = pa.array([123456789 + r for r in range(ROWS)], pa.int32())
        elif kind == 6:
            data[f"d{c}"] = pa.array([decimal.Decimal(f"{4539148803436467 + r}.00") for r in range(ROWS)],
                                     pa.decimal128(20, 2))
        elif kind == 7:
            data[f"f{c}"] = pa.array([0.5 * r for r in range(ROWS)], pa.float64())
        elif c % 50 == 0:
            data[f"bank_account_{c}"] = pa.array([f"{12345678 + r}" for r in range(ROWS)], pa.string())
        else:
            data[f"c{c}"] = pa.array(values, pa.string())
    return pa.table(data)


def policy(scan: dict) -> PiiPolicy:
    return PiiPolicy.model_validate({"levels": {"restricted": {"allowed": ["URL"]}}, "scan": scan,
                                     "column_hints": {"US_BANK_NUMBER": ["bank_account*"]}})


def reference(section: PiiPolicy, path) -> dict[str, dict]:
    """Every column its own plan and detection pass, over record batches."""
    dataset = open_for_scan(path, "parquet", str(path))
    columns, _ = select_columns(section, dataset.names, dataset.types, str(path))
    detector = new_detector(section)
    plans = _detect.build_plan(detector, columns)
    stats = {c: ColumnStats() for c in columns}
    positions = None
    if section.scan.mode == "sample":
        total = pq.ParquetFile(path).metadata.num_rows
        positions = sample_positions(total, section.scan.sample_size, section.scan.seed)
    for batch, rows in iter_rows(dataset, columns, batch_rows=section.scan.batch_rows, uri=str(path),
                                 positions=positions):
        tally_batch(stats, batch, rows, plans, detector, None)
    mark_coincidental(section, stats)
    return {name: dataclasses.asdict(col) for name, col in stats.items()}


@pytest.mark.parametrize(("block_columns", "cells_per_pass", "scan"), [
    (64, 1 << 18, {"mode": "full", "batch_rows": 2}),
    (7, 1 << 18, {"mode": "full", "batch_rows": 3}),
    (7, 50, {"mode": "full", "batch_rows": 2}),  # passes end inside a block and between blocks
    (2, 25, {"mode": "full", "batch_rows": 4}),
    (5, 1 << 18, {"mode": "sample", "sample_size": 3, "seed": 4, "batch_rows": 2}),
])
def test_small_blocks_and_passes_count_what_the_column_by_column_scan_counts(tmp_path, monkeypatch, block_columns,
                                                                             cells_per_pass, scan):
    path = tmp_path / "wide.parquet"
    pq.write_table(mixed_table(), path, row_group_size=3)
    section = policy(scan)
    expected = reference(section, path)
    assert len(expected) >= column_blocks.WIDE_COLUMNS  # read by blocks of columns
    monkeypatch.setattr(column_blocks, "BLOCK_COLUMNS", block_columns)
    monkeypatch.setattr(_detect, "MAX_CELLS_PER_PASS", cells_per_pass)
    report = scan_table(section, str(path))
    assert list(report.columns) == list(expected)
    assert {n: dataclasses.asdict(c) for n, c in report.columns.items()} == expected
    found = {e for col in report.columns.values() for e in col.carried()}
    assert {"EMAIL_ADDRESS", "CREDIT_CARD", "PHONE_NUMBER", "IBAN_CODE", "US_SSN", "IP_ADDRESS",
            "US_BANK_NUMBER"} <= found


def test_blocks_of_a_wide_parquet_file_are_a_few_dozen_columns(tmp_path, monkeypatch):
    path = tmp_path / "wide.parquet"
    pq.write_table(mixed_table(), path)
    widths = record_yields(monkeypatch, column_blocks, "iter_column_blocks", lambda block: len(block.columns))
    scan_table(policy({"mode": "full"}), str(path))
    assert widths and max(widths) == column_blocks.BLOCK_COLUMNS
    assert column_blocks.block_cells(10**6, 65_536) == min(column_blocks.BLOCK_CELLS, column_blocks.BLOCK_COLUMNS * 65_536)
    assert column_blocks.block_cells(5, 65_536) == column_blocks.BLOCK_COLUMNS * 5


@pytest.mark.parametrize("start", [0, 9])
def test_text_of_a_batch_groups_types_and_keeps_each_column_with_its_cells(start):
    table = mixed_table(40)
    batch = table.to_batches()[0]
    scanned = [k for k, t in enumerate(batch.schema.types) if not pa.types.is_floating(t)]
    block = ColumnBlock(0, ROWS, range(start, start + batch.num_columns), batch=batch)
    names = [f"x{k}" for k in range(start + batch.num_columns)]
    for members in (scanned, scanned[3:17], [scanned[5]], [k for k in scanned if k % 9 == 4]):
        cells, order = _text_of(block, names, members)
        assert sorted(order) == [start + k for k in members]
        got = cells.to_pylist()
        for seg, column in enumerate(order):
            assert got[seg * ROWS:(seg + 1) * ROWS] == as_strings(batch.column(column - start)).to_pylist()


def test_text_of_a_cells_block_takes_the_members_columns():
    cells = pa.array([f"v{c}-{r}" for c in range(6) for r in range(ROWS)])
    block = ColumnBlock(0, ROWS, range(6), cells=cells)
    got, order = _text_of(block, [f"c{c}" for c in range(6)], [1, 4])
    assert order == [1, 4]
    assert got.to_pylist() == [f"v{c}-{r}" for c in (1, 4) for r in range(ROWS)]
    assert np.array_equal(_text_of(block, [], list(range(6)))[0], cells)
