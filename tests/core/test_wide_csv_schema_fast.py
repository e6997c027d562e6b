"""core/io/csv_cells.py and the wide-CSV schema pass: the numpy cell cutter reads every plain line as the csv module does,
reading of the same lines, and the wide reader as a whole still equals pyarrow's own reader.
"""

from __future__ import annotations

import io
import os
import random

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from airflow_aisec.core.io import csv_cells, tabular, wide_csv
from airflow_aisec.exceptions import InputDataError
from tests.helpers.calls import count_calls


def _slow(data: bytes, width: int) -> tuple[list[str], str | None]:
    """The cells of ``data`` read line by line with the csv module (the reference), or its error."""
    rows: list[str] = []
    try:
        for number, line in enumerate(csv_cells.physical_lines(io.BytesIO(data)), start=2):
            cells = csv_cells.row_cells(line, "f", [f"c{i}" for i in range(width)], number)
            rows.extend(cells or [])
    except InputDataError as exc:
        return [], str(exc)
    return rows, None


def _fast(data: bytes, width: int) -> tuple[list[str], str | None]:
    try:
        return csv_cells.parse_rows(data, [f"c{i}" for i in range(width)], "f", 2).flat.to_pylist(), None
    except InputDataError as exc:
        return [], str(exc)


# Quotes, delimiters, line breaks, NUL, multi-byte and invalid UTF-8: every way a line can be irregular.
PIECES = ["a", "bc", "1", "-2.5", "", ",", '"', '""', '"x,y"', '"q"', "\r", "\n", "\r\n", " ", "é", "\x00", "NA"]


@pytest.mark.parametrize("seed", range(6))
def test_plain_cells_equal_the_csv_modules_reading_of_random_lines(seed):
    rng = random.Random(seed)
    plain = 0
    for _ in range(400):
        width = rng.randint(1, 4)
        data = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 14))).encode()
        if rng.random() < 0.05:
            data += b"\xe9"
        if rng.random() < 0.5:  # a regular line: quoted or not, the common case
            cells = [rng.choice(["a", "", "1.5", '"a,b"', '"z"', '""', "é"]) for _ in range(width)]
            data = (",".join(cells) + rng.choice(["\n", "\r\n", "\r", ""])).encode() * rng.randint(1, 3)
        plain += csv_cells.plain_cells(data, width) is not None
        assert _fast(data, width) == _slow(data, width), data
    assert plain > 100  # the byte-level split was taken, not only the fallback


def test_names_equal_the_csv_modules_reading():
    for line in [b'"a","b,c","d"', b'a,"b",c', b'"a""b",c', b'a,b', b'"x"y,z', b'"",""', b'"a","b"']:
        assert csv_cells.header_names(line) == csv_cells.split_fields(line.decode()), line


def test_first_line_splits_as_lines_does():
    for data in [b"h\nr1\nr2\n", b"h\r\nr1\r\n", b"h\rr1\rr2", b"h\r\rr1\n\nr2\n", b"h", b"", b"\nr1\n"]:
        first, rest = csv_cells.first_line(data)
        lines = list(csv_cells.physical_lines(io.BytesIO(data)))
        assert [first, *csv_cells.physical_lines(io.BytesIO(rest))] == (lines or [b""]), data


def test_a_field_longer_than_the_csv_module_allows_takes_its_path():
    import csv

    big = "x" * (csv.field_size_limit() + 1)
    data = f'"{big}",a\n'.encode()
    assert csv_cells.plain_cells(data, 2) is None
    with pytest.raises(csv.Error):
        csv_cells.parse_rows(data, ["c0", "c1"], "f", 2)


def _write(path, lines: list[str], *, bom: bool = False, newline: str = "\n", encoding: str = "utf-8") -> None:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + (newline.join(lines) + newline).encode(encoding))


def _both(monkeypatch, path, **kwargs):
    """(wide reader's schema and table, pyarrow's reader with a block holding the whole file)."""
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    dataset = tabular.open_dataset(path, "csv", **kwargs)
    assert wide_csv.eligible(dataset, str(path))
    got = pa.Table.from_batches(list(tabular.iter_batches(dataset, batch_rows=2)), schema=dataset.schema)
    want = pacsv.read_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 22))
    return got, want


NAMES = ["ints", "floats", "bools", "nulls", "text", "quoted", "dates", "mixed", "comma", "empty", "last"]
ROWS = [
    ["1", "1.5", "true", "", "a", '"b"', "2024-01-01", "1", '"x,y"', '""', '"z"'],
    ["-2", "2e3", "False", "NA", "bc", '"c d"', "2024-02-29", "z", '"p,q"', "", ""],
    ["30", "-0.25", "0", "null", "é", '"é"', "", "2", '","', '""', "q"],
]


@pytest.mark.parametrize("inner_commas", [False, True])  # cells trimmed in place, or copied
@pytest.mark.parametrize("quoted_header", [False, True])
@pytest.mark.parametrize("bom", [False, True])
# split: the rows past the first parse block are parsed apart (a file of lone-CR lines longer than
# its block was refused as one long row)
@pytest.mark.parametrize(("newline", "split"), [("\n", False), ("\r\n", False), ("\r", False), ("\n", True),
                                                ("\r\n", True), ("\r", True)])
def test_wide_reader_equals_pyarrows_reader(tmp_path, monkeypatch, inner_commas, quoted_header, newline, bom, split):
    path = tmp_path / "w.csv"
    keep = [i for i, n in enumerate(NAMES) if inner_commas or n != "comma"]
    header = ",".join(f'"{NAMES[i]}"' if quoted_header else NAMES[i] for i in keep)
    rows = [",".join(r[i] for i in keep) for r in ROWS]
    _write(path, [header, *rows, "", *rows[::-1]], bom=bom, newline=newline)
    if split:  # a first block of the header and every distinct row (types inferred as from the whole file)
        block = 3 * bom + len("".join([header, *rows]).encode()) + 4 * len(newline) + 1
        assert block < path.stat().st_size
        monkeypatch.setattr(tabular, "csv_block_size", lambda path: block)
    slow = count_calls(monkeypatch, csv_cells, "row_cells")
    parsed = count_calls(monkeypatch, wide_csv, "_parse_pieces")
    got, want = _both(monkeypatch, path)
    assert slow[0] == 0  # every line was split at the byte level
    assert parsed[0] == 1 + split  # the schema is the wide reader's (first block, then the rest), not pyarrow's
    assert got.schema.equals(want.schema), (got.schema, want.schema)
    assert got.equals(want)


def test_wide_reader_errors_are_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    header = ",".join(f'"{n}"' for n in NAMES)
    good = ",".join(ROWS[0])
    block = len(header) + len(good) + 4  # the header and a row: the bad rows come past the first block
    monkeypatch.setattr(tabular, "csv_block_size", lambda path: block)
    short = tmp_path / "short.csv"
    _write(short, [header, good, good, good, ",".join(ROWS[1][:-1])])
    with pytest.raises(InputDataError, match="wrong number of columns"):
        list(tabular.iter_batches(tabular.open_dataset(short, "csv")))
    latin = tmp_path / "latin.csv"
    _write(latin, [header, good, good, good, "", ",".join(ROWS[2])], encoding="latin-1")
    with pytest.raises(InputDataError, match=r"column 'text' holds text that is not UTF-8 \(first at line 6\)"):
        list(tabular.iter_batches(tabular.open_dataset(latin, "csv")))


def _lines_one_by_one(data: bytes) -> list[bytes]:
    """Physical lines as Python's own line iteration gives them (the reference: LF, CRLF, lone CR)."""
    out = []
    for raw in io.BytesIO(data):
        raw = raw.rstrip(b"\n").rstrip(b"\r")
        out.extend(raw.split(b"\r") if b"\r" in raw else [raw])
    return out


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
def test_physical_lines_read_in_chunks_equal_line_iteration(monkeypatch, chunk):
    monkeypatch.setattr(csv_cells, "_CHUNK", chunk)
    rng = random.Random(chunk)
    for _ in range(300):
        data = "".join(rng.choice(["a", "bc", ",", "\n", "\r", "\r\n", "", "é"]) for _ in range(rng.randint(0, 20)))
        assert list(csv_cells.physical_lines(io.BytesIO(data.encode()))) == _lines_one_by_one(data.encode()), data


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_a_line_longer_than_the_limit_is_refused_before_it_is_read_whole(monkeypatch, chunk):
    monkeypatch.setattr(csv_cells, "_CHUNK", chunk)
    ok = b"h\n" + b"x" * 10 + b"\r\n" + b"y" * 10
    assert list(csv_cells.physical_lines(io.BytesIO(ok), 10, "f.csv")) == [b"h", b"x" * 10, b"y" * 10]
    for data in (b"h\n" + b"x" * 11 + b"\n", b"h\n" + b"x" * 11, b"h\n" + b"x" * 1000 + b"\nz\n"):
        with pytest.raises(InputDataError, match=r"^f\.csv: a CSV row is longer than 10 bytes"):
            list(csv_cells.physical_lines(io.BytesIO(data), 10, "f.csv"))


class _Endless(io.RawIOBase):
    """A file of one endless line (``/dev/zero`` without NULs): counts what was read of it."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        buffer[:] = b"x" * len(buffer)
        self.served += len(buffer)
        return len(buffer)


def test_an_endless_line_is_read_only_up_to_the_limit():
    endless = _Endless()
    with pytest.raises(InputDataError, match="longer than 4096 bytes"):
        list(csv_cells.physical_lines(io.BufferedReader(endless), 4096, "f.csv"))
    assert endless.served <= 4 * csv_cells._CHUNK  # a few chunks, not the endless line


def _wide_with_gaps(path, columns: int = 20, gap: int = 5000, extra: bytes = b"") -> None:
    header = ",".join(f"c{i}" for i in range(columns))
    row = ",".join(str(i) for i in range(columns))
    path.write_bytes(f"{header}\n{row}\n".encode() + b"\n" * gap + f"{row}\n".encode() + extra)


def _lines_parsed(monkeypatch) -> list[int]:
    """The line breaks of each block the wide reader parses from here on."""
    parsed: list[int] = []
    parse = wide_csv.parse_rows

    def counted(data, *args, **kwargs):
        parsed.append(data.count(b"\n"))
        return parse(data, *args, **kwargs)

    monkeypatch.setattr(wide_csv, "parse_rows", counted)
    return parsed


def test_a_wide_csv_of_mostly_empty_lines_is_parsed_a_bounded_piece_at_a_time(tmp_path, monkeypatch):
    """Millions of empty lines are no rows: a parse must not take them all at once (its numpy arrays
    cost several times the bytes per line; 100 MB of empty lines took 9 GB and 3 minutes)."""
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    monkeypatch.setattr(wide_csv, "_PARSE_LINES", 100)
    monkeypatch.setattr(wide_csv, "_PARSED_MAX_BYTES", 0)  # the streamed path, not the whole-file one
    path = tmp_path / "gaps.csv"
    _wide_with_gaps(path)
    parsed = _lines_parsed(monkeypatch)
    table = tabular.open_dataset(path, "csv")
    read = pa.Table.from_batches(list(tabular.iter_batches(table, batch_rows=10)), schema=table.schema)
    assert read.num_rows == 2 and read.equals(pacsv.read_csv(path))
    assert max(parsed) <= 102 and tabular.count_rows(table, "gaps.csv") == 2


def test_a_small_wide_csv_of_mostly_empty_lines_is_parsed_whole_a_bounded_piece_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    monkeypatch.setattr(wide_csv, "_PARSE_LINES", 100)
    path = tmp_path / "gaps.csv"
    _wide_with_gaps(path)
    parsed = _lines_parsed(monkeypatch)
    wide_csv._PARSED.clear()
    table = tabular.open_dataset(path, "csv")
    assert wide_csv._PARSED  # kept whole for the batches, parsed in pieces
    read = pa.Table.from_batches(list(tabular.iter_batches(table, batch_rows=10)), schema=table.schema)
    assert read.num_rows == 2 and read.equals(pacsv.read_csv(path))
    assert max(parsed) <= 102  # up to the first line end after 100 bytes


def test_a_wide_csv_row_longer_than_the_block_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    monkeypatch.setattr(wide_csv, "_PARSED_MAX_BYTES", 0)
    path = tmp_path / "long.csv"
    _wide_with_gaps(path, gap=1, extra=b"9" * (tabular.CSV_BLOCK_BYTES + 10) + b"\n")
    table = tabular.open_dataset(path, "csv")
    with pytest.raises(InputDataError, match=rf"^long\.csv: a CSV row is longer than {tabular.CSV_BLOCK_BYTES} bytes"):
        list(tabular.iter_batches(table, uri="long.csv"))
    with pytest.raises(InputDataError, match="longer than"):
        tabular.count_rows(table, "long.csv")


@pytest.mark.parametrize("gap", [0, 1, 99, 100, 101, 250_000])
def test_rows_and_line_numbers_after_runs_of_empty_lines(tmp_path, monkeypatch, gap):
    """Empty lines before a row are counted a chunk at a time, not gathered: the rows, their count and
    the line an error names are what line-by-line reading gives, across chunk and parse-piece edges."""
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    monkeypatch.setattr(wide_csv, "_PARSE_LINES", 100)
    monkeypatch.setattr(wide_csv, "_PARSED_MAX_BYTES", 0)
    monkeypatch.setattr(csv_cells, "_CHUNK", 4096)
    path = tmp_path / "gaps.csv"
    _wide_with_gaps(path, gap=gap, extra=b"\n" * gap)
    table = tabular.open_dataset(path, "csv")
    read = pa.Table.from_batches(list(tabular.iter_batches(table, batch_rows=1)), schema=table.schema)
    assert read.num_rows == 2 and read.equals(pacsv.read_csv(path))
    # The same file with a row that is not UTF-8 at its end, past the rows the schema was inferred from.
    _wide_with_gaps(path, gap=gap, extra=b"\n" * gap + b"7," * 19 + b"\xff\n")
    bad_line = 1 + 1 + gap + 1 + gap + 1  # header, row, gap, row, gap, the bad row
    with pytest.raises(InputDataError, match=rf"holds text that is not UTF-8 \(first at line {bad_line}\)"):
        list(tabular.iter_batches(table, batch_rows=10))
    assert tabular.count_rows(table, "gaps.csv") == 3


@pytest.mark.parametrize("bad", [b"1,2", b"," * 200_000, b'"a",' * 3 + b"x"])
def test_a_row_with_another_number_of_fields_is_refused_without_pyarrows_reader(tmp_path, monkeypatch, bad):
    """The message pyarrow's path gives, but the row is not split by pyarrow's reader (a hostile 4 MB
    line of commas cost it 760 MB): neither the schema nor the batches open it."""
    import pyarrow.csv as pcsv_module

    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    path = tmp_path / "bad.csv"
    header = ",".join(f"c{i}" for i in range(20)).encode()
    row = ",".join(str(i) for i in range(20)).encode()
    path.write_bytes(header + b"\n" + row + b"\n" + bad + b"\n" + row + b"\n")
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 10**9)  # pyarrow's own path: the expected message
    with pytest.raises(InputDataError) as arrow:
        tabular.open_dataset(path, "csv", uri="bad.csv")
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    opened = count_calls(monkeypatch, pcsv_module, "open_csv")
    with pytest.raises(InputDataError) as wide:
        tabular.open_dataset(path, "csv", uri="bad.csv")
    assert str(wide.value) == str(arrow.value) == \
        "bad.csv: malformed CSV: a row has the wrong number of columns (truncated file?)"
    assert opened[0] == 0


def test_a_wide_schema_is_made_once_per_file_state_and_options(tmp_path, monkeypatch):
    """A redaction opens its input three times: the 100k-field schema is made once. A changed file, other
    options or another wide threshold make it anew."""
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    made = count_calls(monkeypatch, wide_csv, "_schema")
    path = tmp_path / "w.csv"
    _wide_with_gaps(path, gap=0)
    first = tabular.open_dataset(path, "csv")
    assert tabular.open_dataset(path, "csv").schema is first.schema and made[0] == 1
    tabular.open_dataset(path, "csv", csv_text=True)
    assert made[0] == 2  # other options
    before = path.stat()
    path.write_bytes(path.read_bytes().replace(b"\n0,", b"\n9,", 1))  # same size, new content
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**6))  # (within one clock tick, a new time)
    changed = tabular.open_dataset(path, "csv")
    assert made[0] == 3 and changed.schema.equals(first.schema)
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 10**9)
    assert tabular.open_dataset(path, "csv").schema.equals(first.schema) and made[0] == 4  # looked at anew: pyarrow's path


@pytest.mark.parametrize("split", [False, True])
def test_wide_reader_takes_a_lone_cr_in_the_first_line_as_a_line_end(tmp_path, monkeypatch, split):
    """The header ends at a lone CR and the first rows follow on the same LF-ended line: pyarrow's
    reading, with the rows of the first block and the rest parsed apart or together."""
    path = tmp_path / "cr.csv"
    header = ",".join(NAMES[:-2])
    rows = [",".join(r[: len(NAMES) - 2]) for r in ROWS]
    data = f"{header}\r{rows[0]}\r{rows[1]}\n{rows[2]}\n\n{rows[1]}\r\n{rows[0]}\n".encode()
    path.write_bytes(data)
    if split:
        block = data.index(rows[2].encode()) + len(rows[2]) + 1
        monkeypatch.setattr(tabular, "csv_block_size", lambda path: block)
    parsed = count_calls(monkeypatch, wide_csv, "_parse_pieces")
    got, want = _both(monkeypatch, path)
    assert parsed[0] == 1 + split  # the wide reader's own path: the first block, then the rest
    assert got.num_rows == 5
    assert got.schema.equals(want.schema) and got.equals(want)


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_lone_cr_lines_are_lines_under_the_limit(monkeypatch, chunk):
    """A file of old Mac line ends (lone CRs, no LF) longer than the limit is its short lines, not one
    long row; a line longer than the limit is still refused."""
    monkeypatch.setattr(csv_cells, "_CHUNK", chunk)
    data = b"h,i\r" + b"\r".join(b"%d,x" % i for i in range(40)) + b"\r\r"
    assert list(csv_cells.physical_lines(io.BytesIO(data), limit=8)) == _lines_one_by_one(data)
    with pytest.raises(InputDataError, match="longer than 8 bytes"):
        list(csv_cells.physical_lines(io.BytesIO(data + b"y" * 9 + b"\rz"), limit=8))
    # A flood of CRs after a line is held and counted like a long line (never held without bound).
    with pytest.raises(InputDataError, match="longer than 8 bytes"):
        list(csv_cells.physical_lines(io.BytesIO(b"h,i\r1,x" + b"\r" * 100), limit=8))
