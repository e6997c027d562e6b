"""The pii gate on wide tables (column blocks, column-major text): the same counts as the record-batch scan.

A table of >= 1,024 columns is read as blocks of columns (a wide CSV file as one column-major text
array, a wide Parquet file a slice of columns at a time) and counted per block; these tests check it
against the column-by-column reference (record batches, one detection pass per column) and against
the same cells laid out long.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.gates.pii import _detect, check_pii, scan_table
from airflow_aisec.core.gates.pii._bulk import _normalised, hinted_sets
from airflow_aisec.core.gates.pii._patterns import Detector, normalise_column_name
from airflow_aisec.core.gates.pii._scan import ColumnStats, mark_coincidental, new_detector, tally_batch
from airflow_aisec.core.gates.pii._table import iter_rows, open_for_scan, select_columns
from airflow_aisec.core.io import column_blocks, parquet_files
from airflow_aisec.core.policy.sections.pii import PiiPolicy

COLUMNS = column_blocks.WIDE_COLUMNS + 76
ROWS = 3
PLANTED = [
    "user{c}@example.com",
    "4539148803436467",  # Luhn-valid card
    "4539148803436468",  # fails Luhn
    "call (212) 555-01{r}{r}",
    "DE89 3704 0044 0532 0130 00",
    "ssn 372-81-4401 on file",
    "host 10.0.{r}.{c2}",
    "see https://example.org/{c}",
]


def cell(c: int, r: int) -> str | None:
    """Planted values in about one cell in three, words elsewhere, a few nulls."""
    k = (c * 7 + r * 3) % 29
    if k < len(PLANTED):
        return PLANTED[k].format(c=c, r=r, c2=c % 250)
    return None if k == 13 else f"order {c}-{r} shipped"


def wide_table() -> pa.Table:
    data = {}
    for c in range(COLUMNS):
        values = [cell(c, r) for r in range(ROWS)]
        if c % 97 == 5:  # integer column (cards and bank numbers as numbers)
            data[f"n{c}"] = pa.array([4539148803436467 if r == 1 else 123456789 + r for r in range(ROWS)], pa.int64())
        elif c % 101 == 7:
            data[f"bank_account_{c}"] = pa.array([f"{12345678 + r}" for r in range(ROWS)], pa.string())
        elif c % 89 == 3:
            data[f"c{c}"] = pa.array(values, pa.large_string())
        else:
            data[f"c{c}"] = pa.array(values, pa.string())
    return pa.table(data)


def policy(scan: dict | None = None) -> PiiPolicy:
    return PiiPolicy.model_validate({
        "levels": {"restricted": {"allowed": ["URL"]}},
        "scan": scan or {"mode": "full", "batch_rows": 2},
        "column_hints": {"US_BANK_NUMBER": ["bank_account*"]},
    })


def write(table: pa.Table, path, fmt: str) -> None:
    pacsv.write_csv(table, path) if fmt == "csv" else pq.write_table(table, path)


def reference(section: PiiPolicy, path) -> dict[str, ColumnStats]:
    """The record-batch scan: every column its own plan and detection pass (``tally_batch``)."""
    dataset = open_for_scan(path, "csv" if str(path).endswith(".csv") else "parquet", str(path))
    columns, _ = select_columns(section, dataset.names, dataset.types, str(path))
    detector = new_detector(section)
    plans = _detect.build_plan(detector, columns)
    stats = {c: ColumnStats() for c in columns}
    for batch, rows in iter_rows(dataset, columns, batch_rows=section.scan.batch_rows, uri=str(path)):
        tally_batch(stats, batch, rows, plans, detector, None)
    mark_coincidental(section, stats)
    return stats


def asdicts(columns: dict[str, ColumnStats]) -> dict[str, dict]:
    return {name: dataclasses.asdict(col) for name, col in columns.items()}


@pytest.mark.parametrize(("fmt", "block_cells"), [("csv", None), ("parquet", None), ("parquet", 64)])
def test_wide_scan_by_blocks_equals_the_column_by_column_scan(tmp_path, monkeypatch, fmt, block_cells):
    path = tmp_path / f"wide.{fmt}"
    section = policy()
    if block_cells:  # row groups of 2 rows, each read in blocks of 32 columns
        pq.write_table(wide_table(), path, row_group_size=2)
        monkeypatch.setattr(column_blocks, "BLOCK_CELLS", block_cells)
    else:
        write(wide_table(), path, fmt)
    report = scan_table(section, str(path))
    monkeypatch.setattr(_detect, "MAX_CELLS_PER_PASS", 1)
    expected = reference(section, path)
    assert list(report.columns) == list(expected)
    assert asdicts(report.columns) == asdicts(expected)
    assert report.rows_scanned == report.rows_total == ROWS
    found = {e for col in report.columns.values() for e in col.carried()}
    assert {"EMAIL_ADDRESS", "CREDIT_CARD", "PHONE_NUMBER", "IBAN_CODE", "US_SSN", "IP_ADDRESS",
            "US_BANK_NUMBER"} <= found


SAMPLE = {"mode": "sample", "sample_size": 2, "seed": 3, "batch_rows": 2}


@pytest.mark.parametrize(("fmt", "scan"), [("csv", None), ("parquet", None), ("csv", SAMPLE), ("parquet", SAMPLE)])
def test_wide_check_equals_the_record_batch_path(tmp_path, monkeypatch, fmt, scan):
    """Same verdict, findings and metrics whether the wide table is read by blocks or by batches."""
    path = tmp_path / f"wide.{fmt}"
    write(wide_table(), path, fmt)
    by_blocks = check_pii(policy(scan), str(path), classification="restricted")
    monkeypatch.setattr(column_blocks, "WIDE_COLUMNS", 10**9)  # record batches, as a narrow table
    by_batches = check_pii(policy(scan), str(path), classification="restricted")
    assert by_blocks.findings and by_blocks.findings == by_batches.findings
    drop = {"duration_s", "cells_per_s"}
    assert {k: v for k, v in by_blocks.metrics.items() if k not in drop} == \
        {k: v for k, v in by_batches.metrics.items() if k not in drop}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_wide_and_long_tables_with_the_same_cells_find_the_same_entities(tmp_path, fmt):
    """Cell (column c, row r) of the wide table is cell (column r, row c) of the long one: every
    entity is found in the same cells (no column names give context in either)."""
    wide = pa.table({f"c{c}": pa.array([cell(c, r) for r in range(ROWS)], pa.string()) for c in range(COLUMNS)})
    long = pa.table({f"r{r}": pa.array([cell(c, r) for c in range(COLUMNS)], pa.string()) for r in range(ROWS)})
    section = PiiPolicy.model_validate({"levels": {"restricted": {"allowed": ["*"]}}, "scan": {"mode": "full"},
                                        "min_share": 0.0})
    paths = {}
    for name, table in (("wide", wide), ("long", long)):
        paths[name] = tmp_path / f"{name}.{fmt}"
        write(table, paths[name], fmt)
    wide_report = scan_table(section, str(paths["wide"]))
    long_report = scan_table(section, str(paths["long"]))
    # Wide: at most 3 rows per column, so its row positions list every hit.
    per_row: dict[tuple[str, int], int] = {}
    for col in wide_report.columns.values():
        for entity, st in col.entities.items():
            assert st.count == len(st.rows)
            for r in st.rows:
                per_row[(entity, r)] = per_row.get((entity, r), 0) + 1
    long_counts = {(e, int(name[1:])): st.count for name, col in long_report.columns.items()
                   for e, st in col.entities.items()}
    assert per_row == long_counts
    assert len(per_row) >= 10
    for name, col in long_report.columns.items():  # and the first rows found are the same columns
        for entity, st in col.entities.items():
            assert all(int(name[1:]) in wide_report.columns[f"c{c}"].entities[entity].rows for c in st.rows)
    totals = {}
    for report in (wide_report, long_report):
        totals[id(report)] = {e: sum(c.checksum_candidates.get(e, 0) for c in report.columns.values())
                              for e in ("CREDIT_CARD", "IBAN_CODE")}
    assert totals[id(wide_report)] == totals[id(long_report)]


def test_a_wide_parquet_footer_is_parsed_once_per_scan(tmp_path):
    path = tmp_path / "wide.parquet"
    write(wide_table(), path, "parquet")
    before = parquet_files.PARQUET_FOOTER_PARSES["count"]
    scan_table(policy(), str(path))
    assert parquet_files.PARQUET_FOOTER_PARSES["count"] - before == 1


NAMES = ["c1", "customerSSN", "CustomerSSN", "bank account#", "Bank_Acct_2", "PhoneNumber", "cell", "cellar",
         "mobile_phone", "ip", "shipping_ip", "tip", "IPv4Addr", "passport_no", "__ssn__", "Téléphone", "tel_nr",
         "Straße", "ſsn", "Kelvin_\u212a", "x9Y", "aBC", "ABC", "a1B2C3", "account_number_x", "iban", "routing",
         "socsec_id", "my_social_security", "", "   ", "SSN", "e-mail", "zip code", "telefono_movil", "gsm_no"]


@pytest.mark.parametrize("hints", [None, {"US_PASSPORT": ["pp_num*"]}, {"US_PASSPORT": ["pp[0-9]*"]}])
def test_column_hints_in_bulk_equal_one_name_at_a_time(hints):
    detector = Detector(["EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "US_PASSPORT", "US_BANK_NUMBER", "IP_ADDRESS",
                         "IBAN_CODE", "ABA_ROUTING_NUMBER"], column_hints=hints)
    names = NAMES + ["pp_num_3", "pp7", "ppx"]
    assert _normalised(names).to_pylist() == [normalise_column_name(n) for n in names]
    assert hinted_sets(detector, names) == [detector.hinted_entities(n) for n in names]
    assert any(hinted_sets(detector, names))
