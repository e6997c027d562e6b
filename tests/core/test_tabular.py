"""The shared table reader: formats, bad files, streaming in bounded batches, value-free errors."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.io.tabular import (
    check_columns,
    detect_format,
    iter_batches,
    local_copy,
    open_dataset,
    read_table,
    sniff_format,
)
from airflow_aisec.exceptions import InputDataError
from tests.helpers.calls import count_calls

SECRET_CELL = "zz-planted-cell-4242"


@pytest.fixture
def parquet_file(tmp_path):
    path = tmp_path / "t.parquet"
    table = pa.table({"id": list(range(1000)), "name": [f"n{i}" for i in range(1000)]})
    pq.write_table(table, path, row_group_size=100)
    return path


def test_detect_format():
    assert detect_format("s3://b/x.parquet") == "parquet"
    assert detect_format("/a/b.PQ") == "parquet"
    assert detect_format("/a/b.csv.gz") == "csv"
    assert detect_format("/a/b.data", "CSV") == "csv"
    with pytest.raises(InputDataError, match="cannot tell the table format"):
        detect_format("/a/b.json")
    with pytest.raises(InputDataError, match="unsupported table format 'orc'"):
        detect_format("/a/b.csv", "orc")


def test_local_copy_reports_size_and_mtime(parquet_file):
    with local_copy(str(parquet_file)) as copy:
        assert copy.path == parquet_file
        assert copy.size == parquet_file.stat().st_size
        assert copy.last_modified is not None and copy.last_modified.tzinfo is not None
        assert copy.s3_version_id is None


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_local_copy_bad_paths(tmp_path, kind):
    target = tmp_path / "nope.csv" if kind == "missing" else tmp_path
    with pytest.raises(InputDataError, match="file not found|not a regular file"), local_copy(str(target)):
        pass


def test_dangling_symlink_is_a_clear_error(tmp_path):
    link = tmp_path / "gone.csv"
    link.symlink_to(tmp_path / "deleted.csv")
    with pytest.raises(InputDataError, match="file not found"), local_copy(str(link)):
        pass


def test_streams_in_batches_no_larger_than_batch_rows(parquet_file):
    dataset = open_dataset(parquet_file, "parquet")
    sizes = [b.num_rows for b in iter_batches(dataset, batch_rows=64, uri="t")]
    assert sum(sizes) == 1000
    assert max(sizes) <= 64
    assert len(sizes) >= 1000 // 64


def test_projection_and_missing_column(parquet_file):
    dataset = open_dataset(parquet_file, "parquet")
    batch = next(iter_batches(dataset, columns=["name"], uri="t"))
    assert batch.schema.names == ["name"]
    with pytest.raises(InputDataError, match="column\\(s\\) not in the data: 'nope'"):
        list(iter_batches(dataset, columns=["name", "nope"], uri="t"))
    with pytest.raises(InputDataError, match="'x'"):
        check_columns(["a"], ["x"], "t")


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes(b"")
    with pytest.raises(InputDataError, match="empty \\(0 bytes\\)"):
        open_dataset(path, "csv")


def test_truncated_parquet(parquet_file, tmp_path):
    data = parquet_file.read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match="truncated"):
        open_dataset(cut, "parquet")


def test_wrong_format_both_ways(parquet_file, tmp_path):
    as_csv = tmp_path / "really_parquet.csv"
    as_csv.write_bytes(parquet_file.read_bytes())
    with pytest.raises(InputDataError, match="Parquet file, not CSV"):
        open_dataset(as_csv, "csv")
    as_parquet = tmp_path / "really_csv.parquet"
    as_parquet.write_text("a,b\n1,2\n")
    with pytest.raises(InputDataError, match="not a Parquet file"):
        open_dataset(as_parquet, "parquet")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\x00\x01\x02garbage")
    with pytest.raises(InputDataError, match="binary data"):
        sniff_format(binary, "csv")


def test_csv_conversion_error_names_column_not_value(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,amount\n1,10\n2," + SECRET_CELL + "\n")
    with pytest.raises(InputDataError) as info:  # the first block is converted when the dataset opens
        open_dataset(path, "csv", csv_column_types={"amount": pa.int64()})
    message = str(info.value)
    assert "CSV column 'amount'" in message
    assert SECRET_CELL not in message


def test_csv_conversion_error_in_a_later_block(tmp_path):
    # Inference sees integers in the first block; a later block holds text: named, value withheld.
    path = tmp_path / "big.csv"
    with open(path, "w") as fh:
        fh.write("id,amount\n")
        fh.writelines(f"{i},{i}\n" for i in range(300_000))
        fh.write("300000," + SECRET_CELL + "\n")
    dataset = open_dataset(path, "csv")
    with pytest.raises(InputDataError) as info:
        list(iter_batches(dataset, uri="big.csv"))
    message = str(info.value)
    assert "CSV column 'amount'" in message and "int64" in message
    assert SECRET_CELL not in message


def test_truncated_csv_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,c\n1,2,3\n4," + SECRET_CELL + "\n")
    with pytest.raises(InputDataError) as info:
        list(iter_batches(open_dataset(path, "csv"), uri="t.csv"))
    assert "wrong number of columns" in str(info.value)
    assert SECRET_CELL not in str(info.value)


def test_read_table_empty_and_allow_empty(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("a,b\n")
    with pytest.raises(InputDataError, match="empty"):
        read_table(str(path))
    assert read_table(str(path), allow_empty=True).num_rows == 0


def test_read_table_columns(parquet_file):
    table = read_table(str(parquet_file), columns=["id"])
    assert table.num_rows == 1000 and table.schema.names == ["id"]


def test_csv_empty_fields_as_null_only_when_asked(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("a,b\n1,x\n2,\n")
    default = pa.Table.from_batches(list(iter_batches(open_dataset(path, "csv"))))
    assert default.column("b").null_count == 0
    nulls = pa.Table.from_batches(list(iter_batches(open_dataset(path, "csv", csv_empty_as_null=True))))
    assert nulls.column("b").null_count == 1


def test_parquet_with_duplicate_column_names_is_refused(tmp_path):
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["a", "a"]), path)
    with pytest.raises(InputDataError, match="duplicate column names in the Parquet schema"):
        open_dataset(path, "parquet")


def test_parquet_footer_is_parsed_once_per_file(tmp_path, parquet_file):
    from airflow_aisec.core.io import parquet_files

    before = parquet_files.PARQUET_FOOTER_PARSES["count"]
    for _ in range(3):
        dataset = open_dataset(parquet_file, "parquet")
        assert sum(b.num_rows for b in iter_batches(dataset, columns=["name"], batch_rows=64)) == 1000
    assert parquet_files.PARQUET_FOOTER_PARSES["count"] - before == 1
    pq.write_table(pa.table({"id": [1], "name": ["x"]}), parquet_file)  # rewritten: parsed again
    assert sum(b.num_rows for b in iter_batches(open_dataset(parquet_file, "parquet"))) == 1
    assert parquet_files.PARQUET_FOOTER_PARSES["count"] - before == 2


def test_a_compressed_csv_gets_its_block_from_its_decompressed_header(tmp_path):
    """Its compressed bytes have no lines: the first newline byte among them set the block (up to 256 MiB;
    pyarrow holds a few: a 1 MB gzip file of empty lines took 1.3 GB). Now the plain block, and a header
    too long for it (a wide table) is an input error naming the file."""
    import bz2
    import gzip

    from airflow_aisec.core.io.tabular import COMPRESSED_HEADER_BYTES, CSV_BLOCK_BYTES, csv_block_size

    empty_lines = b"id,text\n" + b"\n" * (16 << 20)
    for suffix, compress in ((".gz", gzip.compress), (".bz2", bz2.compress)):
        path = tmp_path / f"lines.csv{suffix}"
        path.write_bytes(compress(empty_lines))
        assert csv_block_size(path) == CSV_BLOCK_BYTES
        dataset = open_dataset(path, "csv", uri=str(path))
        assert dataset.read_options.block_size == CSV_BLOCK_BYTES
        assert sum(b.num_rows for b in iter_batches(dataset, uri=str(path))) == 0
    fits = tmp_path / "fits.csv.gz"
    columns = COMPRESSED_HEADER_BYTES // 8
    names = ",".join(f"c{i}" for i in range(columns))
    assert len(names) < COMPRESSED_HEADER_BYTES
    fits.write_bytes(gzip.compress(f"{names}\n{','.join(['1'] * columns)}\n".encode()))
    assert open_dataset(fits, "csv", uri="fits.csv.gz").names[:2] == ["c0", "c1"]
    wide = tmp_path / "wide.csv.gz"
    wide.write_bytes(gzip.compress((",".join(f"column_{i}" for i in range(20_000)) + "\n").encode()))
    with pytest.raises(InputDataError, match=f"wide.csv.gz: the header line of a compressed CSV file is longer "
                                            f"than {COMPRESSED_HEADER_BYTES} bytes"):
        open_dataset(wide, "csv", uri="wide.csv.gz")


def test_a_table_wider_than_the_limit_is_an_input_error_before_it_is_read(tmp_path, monkeypatch):
    """Every gate's memory has a per-column part: a table's width is bounded (a 32 MB CSV header of
    3,000,000 names took 1.5 GB), for CSV read by the wide reader or by pyarrow, and for Parquet."""
    from airflow_aisec.core.io import parquet_files, schema_lists, wide_csv

    monkeypatch.setattr(schema_lists, "MAX_COLUMNS", 1500)
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(1501)) + "\n" + ",".join(["1"] * 1501) + "\n")
    made = count_calls(monkeypatch, wide_csv, "_parse_pieces")
    with pytest.raises(InputDataError, match=r"wide.csv: 1,501 columns, more than the 1,500 a table may have"):
        open_dataset(wide, "csv", uri="wide.csv")
    assert made[0] == 0  # refused from its header, before its rows
    monkeypatch.setattr(schema_lists, "MAX_COLUMNS", 3)
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("a,b,c,d\n1,2,3,4\n")
    with pytest.raises(InputDataError, match="narrow.csv: 4 columns, more than the 3"):
        open_dataset(narrow, "csv", uri="narrow.csv")
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({n: [1] for n in "abcd"}), table)
    with pytest.raises(InputDataError, match="t.parquet: 4 columns, more than the 3"):
        open_dataset(table, "parquet", uri="t.parquet")
    # A Parquet footer is bounded in bytes before pyarrow parses it (its parse holds ~16x them).
    monkeypatch.setattr(parquet_files, "MAX_FOOTER_BYTES", 64)
    parquet_files._FOOTERS.clear()
    parses = parquet_files.PARQUET_FOOTER_PARSES["count"]
    with pytest.raises(InputDataError, match=r"t.parquet: Parquet footer of [0-9,]+ bytes, more than 64"):
        open_dataset(table, "parquet", uri="t.parquet")
    assert parquet_files.PARQUET_FOOTER_PARSES["count"] == parses
