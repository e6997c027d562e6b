"""Source gate on wide tables: the reference read in the data's pass when it is the same file, and
wide row hashes (summed, position-salted) that still count duplicate rows exactly."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.gates.source import _poisoning, _scan, check_sources
from airflow_aisec.core.policy.sections.source import SourcePolicy
from airflow_aisec.exceptions import InputDataError


def _table(rows: int = 40, seed: int = 0) -> pa.Table:
    """``rows`` rows, the last quarter repeating the first (so also a NaN and an inf row)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    x[3] = np.inf
    x[5] = np.nan
    y = rng.integers(0, 50, rows).astype(float)
    y[:4] = 7.0  # a constant stretch; with the margin 0 below, [min, max] is tight
    z = rng.integers(-5, 5, rows)
    repeat = rows - rows // 4
    for values in (x, y, z):
        values[repeat:] = values[:rows - repeat]
    return pa.table({
        "id": pa.array(np.arange(rows) % repeat),
        "x": pa.array(x),
        "y": pa.array(y),
        "n": pa.array([None] * rows, pa.int64()),  # all null: no reference range
        "z": pa.array(z),
        "label": pa.array(np.array(["a", "b", "c"])[(np.arange(rows) % repeat) % 3]),
    })


def _write(table: pa.Table, path) -> str:
    pacsv.write_csv(table, path) if str(path).endswith(".csv") else pq.write_table(table, path, row_group_size=16)
    return str(path)


def _policy(folder, reference, margin: float, **poisoning) -> SourcePolicy:
    return SourcePolicy.model_validate({
        "origins": [f"{folder}/*"],
        "rows": {"min": 1},
        "poisoning": {"reference": str(reference),
                      "label_shift": {"column": "label", "max_psi": 0.01},
                      "volume": {"max_change": 0.5},
                      "duplicates": {"max_rate": 0.0},
                      "out_of_range": {"max_rate": 0.0, "margin": margin, "ranges": {"z": [-2, 2]}},
                      **poisoning},
    })


def _comparable(outcome) -> tuple:
    reference = {k: v for k, v in outcome.metrics["reference"].items() if k != "uri"}
    metrics = {k: v for k, v in outcome.metrics.items() if k != "reference"}
    findings = [(f.rule, f.message, f.count, f.location) for f in outcome.findings]
    return metrics, reference, findings, [i.sha256 for i in outcome.inputs]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("margin", [0.0, 0.25])
@pytest.mark.parametrize("columns", [None, ["x", "z"]])
def test_a_reference_that_is_the_data_file_is_read_in_its_pass_with_the_same_outcome(tmp_path, monkeypatch, fmt,
                                                                                    margin, columns):
    folder = tmp_path / "data"
    folder.mkdir()
    data = _write(_table(), folder / f"t.{fmt}")
    copy = folder / f"copy.{fmt}"
    shutil.copyfile(data, copy)  # same bytes, another inode: read on its own, as before
    opened = []
    original = _scan._open
    monkeypatch.setattr(_scan, "_open", lambda *a: opened.append(a[1].uri) or original(*a))
    extra = {} if columns is None else {"out_of_range": {"max_rate": 0.0, "margin": margin, "columns": columns,
                                                         "ranges": {"z": [-2, 2]}}}

    apart = check_sources(_policy(folder, copy, margin, **extra), [data])
    assert opened == [str(copy), data]
    opened.clear()
    together = check_sources(_policy(folder, data, margin, **extra), [data])
    assert opened == [data]  # one open, one pass

    assert _comparable(together) == _comparable(apart)
    rules = {f.rule for f in together.findings}
    assert {"source.duplicate_rate", "source.out_of_range"} <= rules  # z's explicit range is still counted
    rates = together.metrics["datasets"][0]["out_of_range_rate"]
    assert rates["z"] > 0 and rates["x"] == 0.0 and "n" not in rates


def test_a_self_reference_is_read_first_for_its_own_errors(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    data = _write(_table().slice(0, 0), folder / "empty.parquet")
    with pytest.raises(InputDataError, match="the reference table is empty"):
        check_sources(_policy(folder, data, 0.0), [data])


def test_only_the_first_dataset_shares_the_reference_pass(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    first = _write(_table(seed=1), folder / "a.parquet")
    second = _write(_table(seed=2), folder / "b.parquet")
    opened = []
    original = _scan._open
    monkeypatch.setattr(_scan, "_open", lambda *a: opened.append(a[1].uri) or original(*a))
    outcome = check_sources(_policy(folder, second, 0.0), [first, second])
    assert opened == [second, first, second]  # the reference is read on its own before the first dataset
    assert [d["uri"] for d in outcome.metrics["datasets"]] == [first, second]


# ------------------------------------------------------------------------------------------------
# Wide row hashes
# ------------------------------------------------------------------------------------------------
def _wide_rows(columns: int) -> list[list]:
    """Rows over int, float, text and timestamp columns, with exact duplicates and near misses."""
    rng = np.random.default_rng(7)
    base = []
    for r in range(6):
        row = []
        for c in range(columns):
            kind = c % 4
            if kind == 0:
                row.append(int(rng.integers(0, 3)))
            elif kind == 1:
                row.append(float(rng.integers(0, 3)) / 2)
            elif kind == 2:
                row.append(str(rng.integers(0, 3)))
            else:
                row.append(int(rng.integers(0, 2)) * 1_000_000)
        base.append(row)
    rows = [list(r) for r in base]
    rows.append(list(base[0]))  # exact duplicate
    rows.append(list(base[1]))  # exact duplicate
    one_off = list(base[2])
    one_off[columns // 2] = "x" if isinstance(one_off[columns // 2], str) else one_off[columns // 2]
    one_off[-1] = base[2][-1] + 1  # one column differs
    rows.append(one_off)
    swapped = list(base[3])
    swapped[0], swapped[4] = swapped[4] + 1, swapped[0] + 1  # two columns of one type changed
    rows.append(swapped)
    nulls = list(base[4])
    nulls[2] = None
    rows.append(nulls)
    empty = list(base[4])
    empty[2] = ""  # an empty string is not a null
    rows.append(empty)
    rows.append(list(nulls))  # duplicate of the row with a null
    rows.append(list(base[5]))  # duplicate
    return rows


def _batch(rows: list[list], columns: int) -> pa.RecordBatch:
    types = [pa.int64(), pa.float64(), pa.string(), pa.timestamp("us")]
    return pa.record_batch({f"c{c}": pa.array([r[c] for r in rows], types[c % 4]) for c in range(columns)})


@pytest.mark.parametrize("columns", [8, _poisoning.WIDE_ROW_COLUMNS, _poisoning.WIDE_ROW_COLUMNS + 37])
def test_duplicate_rows_of_a_wide_batch_are_counted_exactly(columns):
    rows = _wide_rows(columns)
    distinct = len({tuple(r) for r in rows})
    counter = _poisoning.DuplicateCounter()
    counter.update(_batch(rows, columns))
    assert counter.finish() == len(rows) - distinct == 4


def test_wide_row_hashes_depend_on_the_row_only_and_on_column_positions():
    columns = _poisoning.WIDE_ROW_COLUMNS + 5
    rows = _wide_rows(columns)
    whole = _poisoning.row_hashes(_batch(rows, columns))
    for r in (0, 9, 10):  # alone in its batch: the same hash as among the others
        assert _poisoning.row_hashes(_batch(rows[r:r + 1], columns))[0] == whole[r]
    assert len(set(whole.tolist())) == len({tuple(r) for r in rows})
    # The same values in other columns of the same type make another row.
    text = [c for c in range(columns) if c % 4 == 2]
    a = [list(rows[0])]
    b = [list(rows[0])]
    b[0][text[0]], b[0][text[1]] = "p", "q"
    a[0][text[0]], a[0][text[1]] = "q", "p"
    assert _poisoning.row_hashes(_batch(a, columns))[0] != _poisoning.row_hashes(_batch(b, columns))[0]


def test_wide_row_hashes_equal_a_sum_of_salted_mixes_of_the_column_hashes():
    columns = _poisoning.WIDE_ROW_COLUMNS
    batch = _batch(_wide_rows(columns), columns)
    salts = _poisoning._position_salts(columns)
    expected = np.zeros(batch.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c, arr in enumerate(batch.columns):
            expected += _poisoning._mix64(_poisoning._column_hash(arr) ^ salts[c])
    assert np.array_equal(_poisoning.row_hashes(batch), _poisoning._mix64(expected))


def test_a_wide_self_referenced_csv_takes_one_pass(tmp_path, monkeypatch):
    from airflow_aisec.core.io import wide_csv

    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    columns = 60
    rows = _wide_rows(columns)
    table = pa.Table.from_batches([_batch(rows, columns)]).drop_columns([f"c{c}" for c in range(3, columns, 4)])
    folder = tmp_path / "data"
    folder.mkdir()
    path = _write(table, folder / "w.csv")
    section = SourcePolicy.model_validate({
        "origins": [f"{folder}/*"],
        "poisoning": {"reference": path, "duplicates": {"max_rate": 1.0}, "out_of_range": {"max_rate": 1.0}},
    })
    outcome = check_sources(section, [path])
    metrics = outcome.metrics["datasets"][0]
    # 5, not 4: CSV reads the empty string as a null (and the text digits as integers).
    assert metrics["duplicate_rows"] == 5 and metrics["columns"] == table.num_columns
    assert set(metrics["out_of_range_rate"].values()) == {0.0}
    assert outcome.metrics["reference"] == {"uri": path, "sha256": metrics["sha256"], "rows": len(rows)}
    assert os.path.exists(path)


# ------------------------------------------------------------------------------------------------
# Wide CSV files read as same-typed groups of cells (no per-column array)
# ------------------------------------------------------------------------------------------------
def _mixed_csv(path, seed: int, *, odd: str | None = None, columns: int = 30, rows: int = 12) -> str:
    """Ints, floats, text (quoted commas and quotes), booleans, nulls, an all-null column and a label;
    rows 9.. repeat rows 0.. . ``odd``: "plus" puts a "+5" in an integer column of row 5 (its row group
    is left to pyarrow's conversion), "inf" an "inf" in a float column, "date" adds a date column (every
    row group left to pyarrow)."""
    import csv

    rng = np.random.default_rng(seed)
    names = ["label", *[f"c{c}" for c in range(columns)], "empty"] + (["day"] if odd == "date" else [])
    body = []
    for r in range(rows):
        if r >= 9:
            body.append(list(body[r - 9]))
            continue
        row = [["a", "b", "c"][int(rng.integers(0, 3))]]
        for c in range(columns):
            kind = c % 5
            value = (str(int(rng.integers(-20, 20))) if kind == 0 else f"{rng.normal(scale=10):.3f}" if kind == 1
                     else rng.choice(["x", "y,z", 'say "hi"', "w"]) if kind == 2 else rng.choice(["true", "False"])
                     if kind == 3 else str(int(rng.integers(0, 4))))
            row.append("" if rng.random() < 0.1 else value)  # some nulls in every type
        row.append("")
        if odd == "date":
            row.append(f"2024-01-{r + 1:02d}")
        body.append(row)
    if odd == "plus":
        body[5][1] = "+5"
    if odd == "inf":
        body[5][2] = "inf"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(body)
    return str(path)


def _wide_policy(folder, reference, duplicates: list[str] | None) -> SourcePolicy:
    return SourcePolicy.model_validate({
        "origins": [f"{folder}/*"],
        "rows": {"min": 1, "max": 11},
        "batch_rows": 4,
        "poisoning": {"reference": str(reference),
                      "label_shift": {"column": "label", "max_psi": 1e-9},
                      "volume": {"max_change": 1e-9},
                      "duplicates": {"max_rate": 0.0, **({"columns": duplicates} if duplicates else {})},
                      "out_of_range": {"max_rate": 0.0, "margin": 0.0, "ranges": {"c4": [0, 1]}}},
    })


def _outcome(outcome) -> tuple:
    return outcome.metrics, [f.model_dump() for f in outcome.findings], [i.sha256 for i in outcome.inputs]


@pytest.mark.parametrize("odd", [None, "plus", "inf", "date"])
@pytest.mark.parametrize("self_reference", [True, False])
@pytest.mark.parametrize("duplicates", [None, ["c0", "c2", "label", "c3", "c0"]])
@pytest.mark.parametrize("wide_hash", [True, False])
def test_a_wide_csv_read_as_groups_gives_the_record_batch_outcome(tmp_path, monkeypatch, odd, self_reference,
                                                                  duplicates, wide_hash):
    from airflow_aisec.core.io import wide_csv
    from tests.helpers.calls import count_calls

    folder = tmp_path / "data"
    folder.mkdir()
    data = _mixed_csv(folder / "t.csv", 1, odd=odd)
    reference = data if self_reference else _mixed_csv(folder / "ref.csv", 2, odd=odd, rows=14)
    section = _wide_policy(folder, reference, duplicates)
    if wide_hash:  # the position-salted sum (order-free), else the fold in column order
        monkeypatch.setattr(_poisoning, "WIDE_ROW_COLUMNS", 8)
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    grouped_hashes = count_calls(monkeypatch, _poisoning, "_group_hash_matrix")
    fallbacks = count_calls(monkeypatch, wide_csv, "_batch")
    grouped = check_sources(section, [data])
    dates_read = odd == "date" and duplicates is None  # a date column read: every row group is a record batch
    assert (grouped_hashes[0] > 0) == (not dates_read)
    assert (fallbacks[0] > 0) == (odd is not None and (odd != "date" or dates_read))  # pyarrow's conversion
    with monkeypatch.context() as m:  # the same reader, as record batches
        m.setattr(_scan, "_wide_csv_parts", lambda *a: None)
        batches = check_sources(section, [data])
    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 10**9)  # pyarrow's reader
    arrow = check_sources(section, [data])
    assert _outcome(grouped) == _outcome(batches) == _outcome(arrow)
    rules = {f.rule for f in grouped.findings}
    assert {"source.duplicate_rate", "source.out_of_range", "source.row_count"} <= rules  # the checks can fail
    if not self_reference:
        assert {"source.label_shift", "source.volume_change"} <= rules
    assert grouped.metrics["datasets"][0]["duplicate_rows"] == 3


def _groups_and_batch(path, names, batch_rows: int = 5):
    from airflow_aisec.core.gates.source._columns import GroupColumns
    from airflow_aisec.core.io import wide_csv
    from airflow_aisec.core.io.tabular import open_dataset

    dataset = open_dataset(path, "csv", uri=path, csv_empty_as_null=True)
    names = names if names is not None else dataset.schema.names
    parts = list(wide_csv.iter_wide_csv_groups(dataset, names, batch_rows, uri=path))
    batches = list(wide_csv.iter_wide_csv(dataset.path, dataset.column_lists, names, batch_rows, uri=path,
                                          strings_can_be_null=True))
    assert all(groups is not None for _, groups, _ in parts)
    return [GroupColumns(rows, groups, list(names)) for rows, groups, _ in parts], batches


@pytest.mark.parametrize("projection", [None, ["c7", "label", "c0", "empty", "c1", "c3"]])
def test_group_views_give_the_record_batch_arrays_hashes_values_and_labels(tmp_path, monkeypatch, projection):
    from airflow_aisec.core.gates.source._columns import float_matrix
    from airflow_aisec.core.io import wide_csv

    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    path = _mixed_csv(tmp_path / "t.csv", 3)
    views, batches = _groups_and_batch(path, projection)
    assert len(views) == len(batches) == 3
    for view, batch in zip(views, batches):
        assert view.batch.equals(batch) and view.batch.schema == batch.schema
        names = batch.schema.names
        for p in (0, len(names) // 2, len(names) - 1):
            assert view.column(p).equals(batch.column(p))
        assert np.array_equal(_poisoning._hash_matrix(view), _poisoning._hash_matrix(batch))
        assert np.array_equal(_poisoning.row_hashes(view), _poisoning.row_hashes(batch))
        subset = [n for n in reversed(names) if n != "label"][:4]
        subset += subset[1:3]  # a column named twice is hashed twice, as batch.select gives it
        picked = view.select([names.index(n) for n in subset])
        assert picked.names == subset and picked.batch.equals(batch.select(subset))
        assert np.array_equal(_poisoning._hash_matrix(picked), _poisoning._hash_matrix(batch.select(subset)))
        numeric = [n for n, t in zip(names, batch.schema.types) if pa.types.is_integer(t) or pa.types.is_floating(t)]
        assert numeric
        for wanted in (numeric[::-1], numeric + numeric[:1]):
            assert np.array_equal(float_matrix(view, wanted), float_matrix(batch, wanted), equal_nan=True)
        labels, expected = (_poisoning.LabelCounter("label", max_classes=10, uri="u") for _ in range(2))
        labels.update(view)
        expected.update(batch)
        assert labels.counts == expected.counts and sum(labels.counts.values()) == batch.num_rows


def test_a_wide_csv_missing_a_policy_column_is_named_before_reading(tmp_path, monkeypatch):
    from airflow_aisec.core.io import wide_csv

    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    folder = tmp_path / "data"
    folder.mkdir()
    data = _mixed_csv(folder / "t.csv", 1)
    with pytest.raises(InputDataError, match="'nope'"):
        check_sources(_wide_policy(folder, data, ["c0", "nope"]), [data])


@pytest.mark.parametrize("names", [["a", "b", "c", "c", "a"], ["a", "b", "c"], ["b", "a", "b", "c"], ["a", "b"],
                                   ["a", "b", "c", "x"], ["a", "b", "c", "b", "x", "a"]])
def test_the_columns_read_are_the_named_ones_without_repeats_in_order(names):
    from airflow_aisec.core.gates.source._columns import SchemaColumns

    cols = SchemaColumns.of(pa.schema([("a", pa.int64()), ("b", pa.string()), ("c", pa.float64())]))
    assert _scan._union(cols, names) == list(dict.fromkeys(names))
    cols.position  # noqa: B018 - the same answer once the name -> index map is built
    assert _scan._union(cols, names) == list(dict.fromkeys(names))
