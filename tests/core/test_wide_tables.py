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
from tests.helpers.calls import count_calls

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




def test_pii_column_scans_do_not_grow_with_columns(tmp_path, monkeypatch):
    calls = count_calls(monkeypatch, _detect, "detect_column")
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
    calls = count_calls(monkeypatch, _poisoning, "_column_hash")
    together = _poisoning.row_hashes(batch)
    assert calls[0] <= 3  # one call per column type (text, int64), not per column
    expected = np.full(batch.num_rows, np.uint64(0xCBF29CE484222325), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for arr in batch.columns:
            expected = (expected ^ _poisoning._column_hash(arr)) * np.uint64(_poisoning._MIX)
            expected ^= expected >> np.uint64(29)
    assert np.array_equal(together, expected)


# ------------------------------------------------------------------------------------------------
# Wide CSV files: read per cell (core/io/wide_csv.py) with pyarrow's types, values and errors
# ------------------------------------------------------------------------------------------------
MIXED_COLUMNS = {
    "ints": ["1", "-2", "007", "", "42"],
    "floats": ["1.5", "2", "-0.25", "1e5", "NA"],
    "bools": ["true", "False", "1", "0", ""],
    "zero_one": ["0", "1", "1", "0", "1"],
    "empty": ["", "", "NaN", "null", ""],
    "text": ["a", "b c", "", "NA", "d"],
    "quoted": ["x,y", 'say "hi"', "z", "", "w"],
    "dates": ["2024-01-01", "2024-02-29", "", "2023-12-31", "2024-01-02"],
    "times": ["12:00:00", "13:30:15", "00:00:01", "", "23:59:59"],
    "stamps": ["2024-01-01T10:00:00", "2024-01-02 11:00:00", "", "2024-01-03T00:00:00Z", "2024-01-04"],
    "plus": ["+5", "6", "7", "8", "9"],
    "spaced": [" 5", "6 ", "7", "8", "9"],
    "hex": ["0x1F", "0x20", "3", "4", "5"],
    "huge": ["123456789012345678901", "1", "2", "3", "4"],
    "int_then_text": ["1", "2", "3", "x", "5"],
    "specials": ["inf", "-inf", "nan", "1.5", "-Infinity"],
    "words": ["true", "2", "false", "", "1"],
    "hexish": ["deadbeef", "cafe", "e", "f", "a"],
}


def _write_mixed(path, repeat: int = 1) -> list[str]:
    names = [f"{name}_{k}" for k in range(repeat) for name in MIXED_COLUMNS]
    lines = [",".join(f'"{n}"' for n in names)]
    rows = len(next(iter(MIXED_COLUMNS.values())))
    for r in range(rows):
        cells = []
        for _ in range(repeat):
            for values in MIXED_COLUMNS.values():
                v = values[r]
                cells.append('"' + v.replace('"', '""') + '"' if ("," in v or '"' in v) else v)
        lines.append(",".join(cells))
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return names


def _read_both(monkeypatch, path, **kwargs):
    from airflow_aisec.core.io import tabular, wide_csv

    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    wide = tabular.open_dataset(path, "csv", **kwargs)
    wide_table = pa.Table.from_batches(list(tabular.iter_batches(wide, batch_rows=2)), schema=wide.schema)
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 10**9)
    arrow = tabular.open_dataset(path, "csv", **kwargs)
    arrow_table = pa.Table.from_batches(list(tabular.iter_batches(arrow, batch_rows=2)), schema=arrow.schema)
    return wide, wide_table, arrow, arrow_table


@pytest.mark.parametrize("empty_as_null", [False, True])
def test_wide_csv_reader_gives_pyarrows_types_and_values(tmp_path, monkeypatch, empty_as_null):
    from airflow_aisec.core.io import wide_csv

    path = tmp_path / "mixed.csv"
    _write_mixed(path, repeat=2)
    seen = count_calls(monkeypatch, wide_csv, "iter_wide_csv")
    wide, wide_table, arrow, arrow_table = _read_both(monkeypatch, path, csv_empty_as_null=empty_as_null)
    assert seen[0] == 1  # the wide path was taken for the first read, pyarrow's for the second
    assert wide.schema.equals(arrow.schema), (wide.schema, arrow.schema)
    assert wide_table.equals(arrow_table)
    assert wide.schema.field("floats_0").type == pa.float64() and wide.schema.field("dates_1").type == pa.date32()


def test_wide_csv_reader_skips_a_byte_order_mark_as_pyarrow_does(tmp_path, monkeypatch):
    path = tmp_path / "bom.csv"
    _write_mixed(path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    wide, wide_table, arrow, arrow_table = _read_both(monkeypatch, path)
    assert wide.schema.equals(arrow.schema) and wide.schema.names[0] == "ints_0"
    assert wide_table.equals(arrow_table)


def test_wide_csv_reader_with_declared_types_and_projection(tmp_path, monkeypatch):
    from airflow_aisec.core.io import tabular

    path = tmp_path / "mixed.csv"
    _write_mixed(path)
    declared = {"ints_0": pa.float64(), "text_0": pa.string(), "zero_one_0": pa.bool_(), "dates_0": pa.string()}
    wide, _, arrow, _ = _read_both(monkeypatch, path, csv_column_types=declared)
    assert wide.schema.equals(arrow.schema)
    columns = ["dates_0", "ints_0", "zero_one_0", "quoted_0"]
    got = pa.Table.from_batches(list(tabular.iter_batches(wide, columns=columns, batch_rows=3)))
    want = pa.Table.from_batches(list(tabular.iter_batches(arrow, columns=columns, batch_rows=3)))
    assert got.equals(want)
    assert got.schema.names == columns


def test_wide_csv_reader_errors_are_pyarrows_and_value_free(tmp_path, monkeypatch):
    from airflow_aisec.core.io import tabular, wide_csv
    from airflow_aisec.exceptions import InputDataError

    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    names = [f"c{i}" for i in range(10)]
    short = tmp_path / "short.csv"
    short.write_text(",".join(names) + "\n" + ",".join(["1"] * 10) + "\n" + ",".join(["2"] * 9) + "\n")
    with pytest.raises(InputDataError, match="wrong number of columns"):
        list(tabular.iter_batches(tabular.open_dataset(short, "csv")))
    latin = tmp_path / "latin.csv"
    latin.write_bytes((",".join(names) + "\n" + ",".join(["a"] * 10) + "\n").encode()
                      + b"a,a,a,caf\xe9,a,a,a,a,a,a\n")
    for block in (1 << 20, 64):  # in the first parse block (pyarrow's path), or after it (the wide reader)
        monkeypatch.setattr(tabular, "csv_block_size", lambda path, block=block: block)
        with pytest.raises(InputDataError, match=r"column 'c3' holds text that is not UTF-8 \(first at line 3\)"):
            list(tabular.iter_batches(tabular.open_dataset(latin, "csv")))
    monkeypatch.undo()
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    typed = tmp_path / "typed.csv"
    typed.write_text(",".join(names) + "\n" + ",".join(["1"] * 9 + [SECRET]) + "\n")
    with pytest.raises(InputDataError, match="CSV column 'c9' holds a value that is not") as info:
        list(tabular.iter_batches(tabular.open_dataset(typed, "csv", csv_column_types={"c9": pa.int64()})))
    assert SECRET not in str(info.value)


SECRET = "zz-planted-4242"


def _source_policy(tmp_path, reference):
    from airflow_aisec.core.policy.sections.source import SourcePolicy

    return SourcePolicy.model_validate({
        "origins": [f"{tmp_path}/*"],
        "poisoning": {"reference": str(reference), "duplicates": {"max_rate": 1.0},
                      "out_of_range": {"max_rate": 1.0, "margin": 0.5}},
    })


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_source_gate_reads_do_not_grow_with_columns(tmp_path, monkeypatch, fmt):
    """pyarrow CSV reader opens, Parquet footer parses and cast calls per check do not grow with columns."""
    import pyarrow.compute as pc

    from airflow_aisec.core.gates.source import check_sources
    from airflow_aisec.core.io import parquet_files, wide_csv

    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    fills = count_calls(monkeypatch, pc, "fill_null")
    counts = {}
    for columns in (30, 300):
        folder = tmp_path / str(columns)
        folder.mkdir()
        path = folder / f"t.{fmt}"
        table = pa.table({f"c{i}": (pa.array([i + r for r in range(5)]) if i % 3 == 0 else
                                    pa.array([float(i) / (r + 1) for r in range(5)]) if i % 3 == 1 else
                                    pa.array([f"w{i}-{r}" for r in range(5)])) for i in range(columns)})
        pacsv.write_csv(table, path) if fmt == "csv" else pq.write_table(table, path)
        wide_csv.ARROW_CALLS["count"] = 0
        parses = parquet_files.PARQUET_FOOTER_PARSES["count"]
        fills[0] = 0
        outcome = check_sources(_source_policy(folder, path), [str(path)])
        assert outcome.metrics["datasets"][0]["columns"] == columns
        assert len(outcome.metrics["datasets"][0]["out_of_range_rate"]) == 2 * columns // 3
        counts[columns] = (wide_csv.ARROW_CALLS["count"], parquet_files.PARQUET_FOOTER_PARSES["count"] - parses,
                           fills[0])
    assert counts[300] == counts[30], counts
    assert counts[30][1] == (1 if fmt == "parquet" else 0)  # data and reference: one footer parse


def test_out_of_range_counts_equal_column_by_column():
    batch = pa.record_batch({"a": pa.array([1, 2, None, 9]), "b": pa.array([0.5, float("nan"), 3.0, -1.0]),
                             "c": pa.array([5, 6, 7, 8], pa.int32()), "d": pa.array([None, None, None, None], pa.int64())})
    bounds = {"a": (0.0, 5.0), "b": (0.0, 1.0), "c": (6.0, 7.0), "d": (0.0, 1.0)}
    counter = _poisoning.OutOfRangeCounter(bounds)
    counter.update(batch)
    assert counter.valid == {"a": 3, "b": 3, "c": 4, "d": 0}
    assert counter.outside == {"a": 1, "b": 2, "c": 2, "d": 0}
    profile = _poisoning.RangeProfile(["a", "b", "c", "d"])
    profile.update(batch)
    profile.update(pa.record_batch({"a": pa.array([-3]), "b": pa.array([7.0]), "c": pa.array([1], pa.int32()),
                                    "d": pa.array([None], pa.int64())}))
    assert profile.low == {"a": -3.0, "b": -1.0, "c": 1.0} and profile.high == {"a": 9.0, "b": 7.0, "c": 8.0}


def test_category_index_encode_values_equals_encode():
    from airflow_aisec.core.stats import CategoryIndex

    batches = [pa.array(["b", " a", None, "", "b", "c "]), pa.array(["a", "d", None, "c"]),
               pa.array([1.0, float("nan"), 2.5, -0.0, None]), pa.array([True, False, None])]
    for lower, missing in ((False, None), (True, "<missing>")):
        slow, fast = CategoryIndex(lower=lower, missing_name=missing), CategoryIndex(lower=lower, missing_name=missing)
        for arr in batches:
            assert slow.encode(arr).tolist() == fast.encode_values(arr.to_pylist()).tolist()
        assert slow.names == fast.names


def test_drift_of_a_wide_csv_equals_pyarrows_path(tmp_path, monkeypatch):
    from airflow_aisec.core.gates.drift import check_drift
    from airflow_aisec.core.io import wide_csv
    from airflow_aisec.core.policy.sections.drift import DriftPolicy

    rng = np.random.default_rng(3)
    paths = []
    for k in range(2):
        table = pa.table({f"f{i}": (pa.array(rng.normal(size=6)) if i % 4 else
                                    pa.array(rng.choice(["n", "s", "e", "w"], 6))) for i in range(40)})
        paths.append(tmp_path / f"t{k}.csv")
        pacsv.write_csv(table, paths[-1])
    section = DriftPolicy(max_unseen_fraction=1.0)
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    calls = count_calls(monkeypatch, wide_csv, "_row_groups")  # drift reads wide CSV as typed groups
    wide = check_drift(section, str(paths[0]), str(paths[1]))
    assert calls[0] >= 2
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 10**9)
    arrow = check_drift(section, str(paths[0]), str(paths[1]))
    assert wide.metrics == arrow.metrics
    assert [f.rule for f in wide.findings] == [f.rule for f in arrow.findings]


def _bias_table(columns: int, rows: int = 12) -> pa.Table:
    """``y``, ``p``, ``sex`` and unread columns pyarrow types as dates, floats and text."""
    data = {"y": pa.array([r % 2 for r in range(rows)]), "p": pa.array([1 if r % 3 == 0 else r % 2 for r in range(rows)]),
            "sex": pa.array(["F", "M", "F"] * (rows // 3))}
    for c in range(columns - 3):
        data[f"c{c}"] = (pa.array([f"2024-01-{r + 1:02d}" for r in range(rows)]) if c % 3 == 0 else
                         pa.array([float(c + r) for r in range(rows)]) if c % 3 == 1 else
                         pa.array([f"w{c}-{r}" for r in range(rows)]))
    return pa.table(data)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_bias_of_a_wide_table_reads_only_its_columns_and_equals_pyarrows_path(tmp_path, monkeypatch, fmt):
    from airflow_aisec.core.gates.bias import check_bias
    from airflow_aisec.core.io import column_blocks, wide_csv
    from airflow_aisec.core.policy.sections.bias import BiasPolicy

    path = tmp_path / f"wide.{fmt}"
    table = _bias_table(40)
    pacsv.write_csv(table, path) if fmt == "csv" else pq.write_table(table, path)
    section = BiasPolicy(label="y", prediction="p", sensitive=["sex"], min_group_size=1,
                         thresholds={"demographic_parity_difference": {"max": 0.1}})
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    monkeypatch.setattr(column_blocks, "WIDE_COLUMNS", 8)
    widths = []
    classify = wide_csv._classify
    monkeypatch.setattr(wide_csv, "_classify", lambda rows, names: widths.append(len(names)) or classify(rows, names))
    wide_csv.ARROW_CALLS["count"] = 0
    wide = check_bias(section, str(path))
    # Only the three named columns are typed: the unread date columns never reach pyarrow's inference.
    assert widths == ([3] if fmt == "csv" else [])
    assert wide_csv.ARROW_CALLS["count"] == 0
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 10**9)
    monkeypatch.setattr(column_blocks, "WIDE_COLUMNS", 10**9)
    arrow = check_bias(section, str(path))
    assert wide.metrics == arrow.metrics
    assert [(f.rule, f.message) for f in wide.findings] == [(f.rule, f.message) for f in arrow.findings]
    assert any(f.rule for f in wide.findings)  # the threshold is exceeded: a verdict, not only metrics


def test_bias_of_a_wide_csv_names_a_missing_column(tmp_path, monkeypatch):
    from airflow_aisec.core.gates.bias import check_bias
    from airflow_aisec.core.io import wide_csv
    from airflow_aisec.core.policy.sections.bias import BiasPolicy
    from airflow_aisec.exceptions import InputDataError

    path = tmp_path / "wide.csv"
    pacsv.write_csv(_bias_table(20), path)
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    section = BiasPolicy(label="y", prediction="p", sensitive=["gender"], min_group_size=1)
    with pytest.raises(InputDataError, match=r"column\(s\) not in the data: 'gender'"):
        check_bias(section, str(path))


@pytest.mark.parametrize("gate", ["drift", "source"])
def test_wide_parquet_read_without_threads_gives_the_same_result(tmp_path, monkeypatch, gate):
    from airflow_aisec.core.gates.drift import check_drift
    from airflow_aisec.core.gates.source import check_sources
    from airflow_aisec.core.io import column_blocks, tabular
    from airflow_aisec.core.policy.sections.drift import DriftPolicy

    rng = np.random.default_rng(5)
    paths = []
    for k in range(2):
        table = pa.table({f"f{i}": (pa.array(rng.normal(size=9)) if i % 4 else
                                    pa.array(rng.choice(["n", "s", "e", "w"], 9))) for i in range(30)})
        paths.append(tmp_path / f"t{k}.parquet")
        pq.write_table(table, paths[-1])
    threads = []
    iter_batches = tabular.iter_batches

    def spy(*args, use_threads=True, **kwargs):
        threads.append(use_threads)
        return iter_batches(*args, use_threads=use_threads, **kwargs)

    monkeypatch.setattr(tabular, "iter_batches", spy)

    def run():
        if gate == "drift":
            return check_drift(DriftPolicy(max_unseen_fraction=1.0), str(paths[0]), str(paths[1]))
        return check_sources(_source_policy(tmp_path, paths[0]), [str(paths[1])])

    threaded = run()
    assert threads and all(threads)
    monkeypatch.setattr(column_blocks, "WIDE_COLUMNS", 8)
    threads.clear()
    alone = run()
    assert threads and not any(threads)
    assert threaded.metrics == alone.metrics
    assert [(f.rule, f.message) for f in threaded.findings] == [(f.rule, f.message) for f in alone.findings]


def _count_parsed_rows(monkeypatch) -> list[int]:
    """Rows parsed by the wide reader from here on (one-element list)."""
    from airflow_aisec.core.io import wide_csv

    seen = [0]
    parse = wide_csv.parse_rows

    def counted(*args, **kwargs):
        rows = parse(*args, **kwargs)
        seen[0] += len(rows)
        return rows

    monkeypatch.setattr(wide_csv, "parse_rows", counted)
    return seen


def test_a_wide_csv_parsed_for_its_schema_is_not_parsed_again_unless_it_changed(tmp_path, monkeypatch):
    import os

    from airflow_aisec.core.io import tabular, wide_csv

    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    path = tmp_path / "mixed.csv"
    _write_mixed(path, repeat=2)
    seen = _count_parsed_rows(monkeypatch)
    table = tabular.open_dataset(path, "csv")
    parsed = seen[0]
    first = pa.Table.from_batches(list(tabular.iter_batches(table, batch_rows=2)))
    assert seen[0] == parsed  # the batches reused the rows the schema pass parsed
    # Rewritten with other values (same header, same size): the batches read the new file, not the old rows.
    text = path.read_text(encoding="utf-8")
    stat = path.stat()
    path.write_text(text.replace("b c", "b d"), encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old modification time
    again = pa.Table.from_batches(list(tabular.iter_batches(table, batch_rows=2)))
    assert seen[0] > parsed and not again.equals(first)


#: Values at the edges of the wide reader's classification (text characters, float words in any
#: case, non-ASCII letters, signs and exponents): one column each, with integers around them.
EDGE_VALUES = ["INF", "+NaN", "-infinity", "nAn", "+inf", "İnf", "ınf", "é", "1.", ".5", "1e", "1E+3", "1e-3",
               "--5", "5-", "x", "\t7", "7 ", "-", "abc", "ﬁ", "0x1f", "t", "123456789012345678", "-0", "True",
               "infx", "1.#IND", "-nan", "FALSE"]


def test_wide_csv_reader_classifies_edge_values_as_pyarrow_does(tmp_path, monkeypatch):
    path = tmp_path / "edges.csv"
    names = [f"e{i}" for i in range(len(EDGE_VALUES))]
    rows = [[value if r == 1 else str(r) for value in EDGE_VALUES] for r in range(4)]
    rows.append(EDGE_VALUES[::-1])  # a second value of another kind in every column
    path.write_text("\n".join(",".join(line) for line in [names, *rows]) + "\n", encoding="utf-8")
    wide, wide_table, arrow, arrow_table = _read_both(monkeypatch, path)
    assert wide.schema.equals(arrow.schema), (wide.schema, arrow.schema)
    assert repr(wide_table.to_pydict()) == repr(arrow_table.to_pydict())  # NaN cells: equals() says unequal


def test_wide_csv_reader_with_parameterized_types_and_most_columns(tmp_path, monkeypatch):
    from airflow_aisec.core.io import tabular

    path = tmp_path / "mixed.csv"
    names = _write_mixed(path, repeat=2)
    declared = {"dates_0": pa.timestamp("s"), "dates_1": pa.timestamp("ms"), "ints_0": pa.int32()}
    wide, _, arrow, _ = _read_both(monkeypatch, path, csv_column_types=declared)
    assert wide.schema.equals(arrow.schema)
    columns = [n for n in names if n != "text_0"][::-1] + ["ints_0"]  # most columns, reordered, one twice
    got = pa.Table.from_batches(list(tabular.iter_batches(wide, columns=columns, batch_rows=2)))
    want = pa.Table.from_batches(list(tabular.iter_batches(arrow, columns=columns, batch_rows=2)))
    assert got.equals(want)
    assert got.schema.names == columns


def _write_plain(path, columns: int = 20, rows: int = 6, extra: bytes = b"") -> int:
    """A wide-enough CSV (ints and words alternating) and the size of a parse block that holds its header
    and first row only."""
    lines = [",".join(f"c{i}" for i in range(columns))]
    lines += [",".join(str(r * 100 + i) if i % 2 == 0 else f"w{r}-{i}" for i in range(columns)) for r in range(rows)]
    data = ("\r\n".join(lines) + "\r\n").encode() + extra
    path.write_bytes(data)
    return len(lines[0]) + len(lines[1]) + 5


def test_a_small_wide_csv_longer_than_its_first_block_is_parsed_once_and_read_as_pyarrow_does(tmp_path, monkeypatch):
    from airflow_aisec.core.io import tabular

    path = tmp_path / "plain.csv"
    block = _write_plain(path)
    monkeypatch.setattr(tabular, "csv_block_size", lambda p: block)  # the first block: the header and one row
    seen = _count_parsed_rows(monkeypatch)
    wide, wide_table, arrow, arrow_table = _read_both(monkeypatch, path)
    assert wide.schema.equals(arrow.schema)  # types from the first block only, as pyarrow infers them
    assert wide_table.equals(arrow_table) and wide_table.num_rows == 6
    assert seen[0] == 6  # every row parsed once: the schema pass kept the rows past its block


def test_a_bad_row_past_the_first_block_is_reported_by_the_batches(tmp_path, monkeypatch):
    from airflow_aisec.core.io import tabular, wide_csv
    from airflow_aisec.exceptions import InputDataError

    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    path = tmp_path / "short.csv"
    block = _write_plain(path, extra=b"1,2,3\r\n")  # a short row at the end, past the first block
    monkeypatch.setattr(tabular, "csv_block_size", lambda p: block)
    table = tabular.open_dataset(path, "csv")
    with pytest.raises(InputDataError, match="wrong number of columns"):
        list(tabular.iter_batches(table, batch_rows=2))


def test_wide_readers_in_threads_give_each_file_its_own_table(tmp_path, monkeypatch):
    """The readers' caches (parsed wide CSV rows, Parquet footers) are shared by a process's threads:
    many threads reading more files than the caches keep get what a lone read gets, and no error."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from airflow_aisec.core.io import tabular, wide_csv

    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    paths = []
    for k in range(6):
        table = pa.table({f"c{i}": [float(k * 100 + i * 10 + r) for r in range(5)] for i in range(12)})
        path = tmp_path / f"t{k}.{'csv' if k % 2 else 'parquet'}"
        (pacsv.write_csv if k % 2 else pq.write_table)(table, path)
        paths.append(path)

    def read(path):
        dataset = tabular.open_dataset(path, path.suffix[1:])
        return pa.Table.from_batches(list(tabular.iter_batches(dataset, batch_rows=2)), schema=dataset.schema)

    alone = {path: read(path) for path in paths}
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: the caches' updates interleave
    try:
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(read, paths * 40))
    finally:
        sys.setswitchinterval(interval)
    assert all(table.equals(alone[path]) for path, table in zip(paths * 40, together))
    assert len({alone[path].column("c0")[0].as_py() for path in paths}) == len(paths)  # six different tables


def test_text_laid_end_to_end_is_large_past_32_bit_offsets_or_beside_large(monkeypatch):
    """One join rule for every detection pass over many columns (pii, redaction, prompt injection):
    ``large_string`` beside a large one, or past what ``string`` offsets reach (2 GiB, here lowered)."""
    from airflow_aisec.core.io import column_blocks

    small, other, large = pa.array(["ab", None, "c"]), pa.array(["de"]), pa.array(["f"], pa.large_string())
    assert column_blocks.end_to_end([small]) is small
    assert column_blocks.end_to_end([]).equals(pa.array([], pa.string()))
    joined = column_blocks.end_to_end([small, other])
    assert joined.type == pa.string() and joined.to_pylist() == ["ab", None, "c", "de"]
    assert column_blocks.end_to_end([small, large]).type == pa.large_string()
    monkeypatch.setattr(column_blocks, "STRING_BYTES", small.nbytes + other.nbytes - 1)
    past = column_blocks.end_to_end([small, other])
    assert past.type == pa.large_string() and past.to_pylist() == ["ab", None, "c", "de"]
