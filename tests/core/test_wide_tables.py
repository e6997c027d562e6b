"""Wide tables: the pii and source gates scan many columns in few passes, with unchanged results.

Growth is counted, not timed: the number of RE2 column scans (pii) and hash calls (source duplicates)
per batch does not grow with the number of columns.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.gates.pii import _detect, scan_table
from airflow_aisec.core.gates.source import _poisoning
from airflow_aisec.core.policy.sections.pii import PiiPolicy

CARD_OK = "4539148803436467"  # Luhn-valid
CARD_BAD = "4539148803436468"


def wide_table(columns: int, rows: int = 6) -> pa.Table:
    """Text columns with planted PII in some cells, hinted and integer columns among them."""
    data = {}
    for c in range(columns):
        kind = c % 7
        if kind == 0:
            values = [f"user{c}x{r}@example.com" if r % 3 == 0 else f"note {c} {r}" for r in range(rows)]
        elif kind == 1:
            values = [CARD_OK if r % 2 else CARD_BAD for r in range(rows)]
        elif kind == 2:
            values = [f"call (212) 555-01{r:02d} about ssn 372-81-44{r:02d}" if r == 1 else "none" for r in range(rows)]
        elif kind == 3:
            data[f"bank_account_{c}"] = pa.array([123456789 + r for r in range(rows)], pa.int64())
            continue
        elif kind == 4:
            data[f"pp_num_{c}"] = pa.array([f"{912803456 + r}" for r in range(rows)], pa.string())
            continue
        elif kind == 5:
            values = [None if r == 2 else f"DE89 3704 0044 0532 0130 0{r}" for r in range(rows)]
        else:
            values = [f"order {c}-{r} shipped" for r in range(rows)]
        data[f"c{c}"] = pa.array(values, pa.string())
    return pa.table(data)


def pii_policy() -> PiiPolicy:
    return PiiPolicy.model_validate({
        "levels": {"restricted": {"allowed": ["*"]}},
        "scan": {"mode": "full", "batch_rows": 4},
        "column_hints": {"US_PASSPORT": ["pp_num*"], "US_BANK_NUMBER": ["bank_account*"]},
    })


def _stats(report) -> dict:
    return {name: dataclasses.asdict(col) for name, col in report.columns.items()}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_pii_scan_of_many_columns_at_once_equals_column_by_column(tmp_path, monkeypatch, fmt):
    path = tmp_path / f"wide.{fmt}"
    table = wide_table(70)
    pacsv.write_csv(table, path) if fmt == "csv" else pq.write_table(table, path)
    together = scan_table(pii_policy(), str(path))
    monkeypatch.setattr(_detect, "MAX_CELLS_PER_PASS", 1)  # one column per pass: the column-by-column scan
    alone = scan_table(pii_policy(), str(path))
    assert _stats(together) == _stats(alone)
    found = {e for col in together.columns.values() for e in col.carried()}
    assert {"EMAIL_ADDRESS", "CREDIT_CARD", "PHONE_NUMBER", "US_SSN", "IBAN_CODE"} <= found
    assert any(col.checksum_candidates for col in together.columns.values())


def test_pii_scan_of_string_and_large_string_columns_together(tmp_path, monkeypatch):
    table = wide_table(14)
    table = table.set_column(0, table.field(0).name, table.column(0).cast(pa.large_string()))
    path = tmp_path / "mixed.parquet"
    pq.write_table(table, path)
    together = scan_table(pii_policy(), str(path))
    monkeypatch.setattr(_detect, "MAX_CELLS_PER_PASS", 1)
    assert _stats(together) == _stats(scan_table(pii_policy(), str(path)))


def _count_calls(monkeypatch, module, name) -> list[int]:
    calls = [0]
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_pii_column_scans_do_not_grow_with_columns(tmp_path, monkeypatch):
    calls = _count_calls(monkeypatch, _detect, "detect_column")
    counts = {}
    for columns in (14, 140):
        path = tmp_path / f"wide{columns}.parquet"
        pq.write_table(wide_table(columns), path)
        calls[0] = 0
        report = scan_table(pii_policy(), str(path))
        assert len(report.columns) == columns
        counts[columns] = calls[0]
    assert counts[140] == counts[14], counts  # per batch: one pass per plan (hinted set), plus the names


def test_row_hashes_of_many_columns_at_once_equal_column_by_column(monkeypatch):
    batch = wide_table(60).to_batches()[0]
    calls = _count_calls(monkeypatch, _poisoning, "_column_hash")
    together = _poisoning.row_hashes(batch)
    assert calls[0] <= 3  # one call per column type (text, int64), not per column
    expected = np.full(batch.num_rows, np.uint64(0xCBF29CE484222325), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for arr in batch.columns:
            expected = (expected ^ _poisoning._column_hash(arr)) * np.uint64(_poisoning._MIX)
            expected ^= expected >> np.uint64(29)
    assert np.array_equal(together, expected)
