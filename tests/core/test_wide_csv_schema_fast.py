"""core/io/csv_cells.py and the wide-CSV schema pass: the numpy cell cutter reads every plain line as the csv module does,
reading of the same lines, and the wide reader as a whole still equals pyarrow's own reader.
"""

from __future__ import annotations

import io
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
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("bom", [False, True])
def test_wide_reader_equals_pyarrows_reader(tmp_path, monkeypatch, inner_commas, quoted_header, newline, bom):
    path = tmp_path / "w.csv"
    keep = [i for i, n in enumerate(NAMES) if inner_commas or n != "comma"]
    header = ",".join(f'"{NAMES[i]}"' if quoted_header else NAMES[i] for i in keep)
    rows = [",".join(r[i] for i in keep) for r in ROWS]
    _write(path, [header, *rows, "", *rows[::-1]], bom=bom, newline=newline)
    slow = count_calls(monkeypatch, csv_cells, "row_cells")
    got, want = _both(monkeypatch, path)
    assert slow[0] == 0  # every line was split at the byte level
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
