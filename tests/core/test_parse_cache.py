"""core/io/parse_cache.py: a kept parse is served only while the file holds the bytes it came from.

A same-size rewrite within one timestamp tick keeps a file's identity (device, inode, size, times).
The tests make that collision certain (the identity made blind to times) rather than racing the clock:
the gate must then read the new bytes, never the parse of the old ones.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.io import parquet_files, parse_cache, tabular, wide_csv
from airflow_aisec.core.io.parse_cache import ParseCache, Source
from tests.helpers.calls import count_calls

WIDTH = 12


@pytest.fixture
def blind_identity(monkeypatch):
    """A file's identity without its times: a rewrite of the same size keeps it, as within one tick."""
    def identity(st):
        return (st.st_dev, st.st_ino, st.st_size)

    monkeypatch.setattr(wide_csv, "file_identity", identity)
    monkeypatch.setattr(parquet_files, "file_identity", identity)
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    wide_csv._PARSED.clear()
    wide_csv._SCHEMAS.clear()
    parquet_files._FOOTERS.clear()


def _rewrite_in_place(path, old: bytes, new: bytes) -> None:
    """The same file (inode), the same size, other bytes (every ``old`` made ``new``)."""
    data = path.read_bytes()
    assert len(old) == len(new) and old in data
    with open(path, "r+b") as fh:
        fh.write(data.replace(old, new))


def _wide_csv(path, cell: str) -> None:
    header = ",".join(f"c{i}" for i in range(WIDTH))
    rows = [",".join(cell if (r, c) == (1, 3) else f"word{r}x{c}" for c in range(WIDTH)) for r in range(3)]
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def _cells(path, **options) -> list:
    dataset = tabular.open_dataset(path, "csv", uri=str(path), **options)
    return pa.Table.from_batches(list(tabular.iter_batches(dataset, batch_rows=64))).column("c3").to_pylist()


def test_a_kept_parse_is_served_while_its_bytes_are_there_and_dropped_when_they_are_not(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    cache = ParseCache(kept=2, max_source_bytes=4)
    cache.put("long", "parse", Source(0, b"01234"))  # a source over the bound is not kept
    assert len(cache) == 0
    cache.put("k", "parse of 0123456789", Source(2, b"2345"))
    assert cache.get("k", path) == "parse of 0123456789"
    path.write_bytes(b"01xx456789")  # same size, other bytes where the parse read
    assert cache.get("k", path) is None and len(cache) == 0  # dropped: the next get parses again
    path.write_bytes(b"0123456789")
    cache.put("k", 1, Source(0, b"0123"))
    cache.put("j", 2, Source(0, b"0123"))
    assert cache.get("k", path) == 1  # served: now the newest
    cache.put("i", 3, Source(0, b"0123"))
    assert cache.get("j", path) is None and cache.get("k", path) == 1 and len(cache) == 2  # the oldest left
    path.unlink()
    assert cache.get("k", path) is None  # gone: the read that follows reports it
    os.mkfifo(path)  # no longer a regular file: never opened (an open would wait for a writer)
    cache.put("k", 1, Source(0, b"0123"))
    assert cache.get("k", path) is None


def test_a_wide_csv_rewritten_with_the_same_identity_is_read_anew(tmp_path, blind_identity, monkeypatch):
    path = tmp_path / "wide.csv"
    _wide_csv(path, "word1x3")
    made = count_calls(monkeypatch, wide_csv, "_schema")
    assert _cells(path) == ["word0x3", "word1x3", "word2x3"]
    assert _cells(path) == ["word0x3", "word1x3", "word2x3"] and made[0] == 1  # unchanged: the kept parse
    _rewrite_in_place(path, b"word1x3", b"12345.6")
    assert _cells(path) == ["word0x3", "12345.6", "word2x3"] and made[0] == 2  # not the kept rows, nor types


def test_a_wide_csv_gate_does_not_pass_on_a_kept_parse_of_earlier_bytes(tmp_path, blind_identity):
    """The pass that did not happen: a clean file scanned, then the same file (same size, same identity)
    holding an e-mail address: the second scan finds it."""
    from airflow_aisec.core.gates.pii import check_pii
    from airflow_aisec.core.policy.sections.pii import PiiPolicy

    path = tmp_path / "wide.csv"
    planted = "ann@example.org"
    _wide_csv(path, "x" * len(planted))
    section = PiiPolicy.model_validate({"entities": ["EMAIL_ADDRESS"], "scan": {"mode": "full"}})
    assert not check_pii(section, str(path), classification="restricted").findings
    _rewrite_in_place(path, b"x" * len(planted), planted.encode())
    findings = check_pii(section, str(path), classification="restricted").findings
    assert [f.location.get("column") for f in findings] == ["c3"]


def _parquet(path, first: str) -> None:
    # No stored Arrow schema: the names are the Parquet schema's (the footer's plain bytes).
    pq.write_table(pa.table({first: [1, 2, 3], "b": ["u", "v", "w"]}), path, compression="none", store_schema=False)


def test_a_parquet_footer_rewritten_with_the_same_identity_is_parsed_anew(tmp_path, blind_identity):
    path = tmp_path / "t.parquet"
    _parquet(path, "alpha")
    before = parquet_files.PARQUET_FOOTER_PARSES["count"]
    assert tabular.open_dataset(path, "parquet").names == ["alpha", "b"]
    assert tabular.open_dataset(path, "parquet").names == ["alpha", "b"]
    assert parquet_files.PARQUET_FOOTER_PARSES["count"] - before == 1  # unchanged: parsed once
    data = path.read_bytes()
    _rewrite_in_place(path, b"alpha", b"gamma")  # the name is in the footer only
    assert path.read_bytes() != data and tabular.open_dataset(path, "parquet").names == ["gamma", "b"]
    assert parquet_files.PARQUET_FOOTER_PARSES["count"] - before == 2


def test_a_file_that_is_not_parquet_leaves_nothing_kept(tmp_path):
    from airflow_aisec.exceptions import InputDataError

    path = tmp_path / "t.parquet"
    path.write_bytes(b"not a parquet file at all")
    with pytest.raises((InputDataError, pa.ArrowInvalid)):
        parquet_files.parquet_schema(path)
    assert parquet_files._footer_bytes(path, path.stat().st_size, "t.parquet") is None
    assert parse_cache.source_unchanged(tmp_path / "missing", Source(0, b"x")) is False
