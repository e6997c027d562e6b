"""Wide CSV files (thousands of columns, few rows): schema and batches at a small cost per column.

pyarrow's CSV reader pays tens of microseconds per column and block, and several times that to
infer types: a 100,000-column file took minutes. This reader keeps pyarrow's meaning and pays per
cell instead:

* Type inference as pyarrow does it (on the rows of the first parse block, first type in the order
  null, int64, bool, ..., float64, string that takes every value), decided here only when a
  conservative classification is sure of the answer: every value a null token, a plain integer
  (up to 18 digits), a boolean token or a plain decimal; or a column with a value no non-text type
  can parse (a letter other than hex digits, ``x``, ``t``, ``z``...). Every other column (dates,
  times, ``+5``, `` 5``, ``0x1F``...) is inferred by pyarrow itself, on those columns only.
* Conversion: the cells of all columns of one type are converted in one call (null tokens, regular
  expressions checked by pyarrow's compute kernels); a column with a value the fast rules do not
  cover, and every type other than text / integers / floats / booleans / null, is converted by
  pyarrow's CSV reader on a small CSV of those columns, so its values and errors are pyarrow's.

Used only for plain (uncompressed) UTF-8 files with default parse and convert options; anything
else, or a file this module cannot vouch for, takes pyarrow's own path (:func:`wide_csv_schema`
returns ``None``).
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

#: Header columns from which a CSV file is read here rather than by pyarrow's reader.
WIDE_COLUMNS = 1024
#: Cells per record batch at most (a wide file's batch has fewer rows than asked).
BATCH_CELLS = 1 << 20
#: pyarrow's default CSV null tokens and boolean spellings.
NULL_VALUES = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "N/A",
               "NA", "NULL", "NaN", "n/a", "nan", "null")
TRUE_VALUES = ("1", "True", "TRUE", "true")
FALSE_VALUES = ("0", "False", "FALSE", "false")
_INT = r"^-?[0-9]{1,18}$"
_FLOAT = r"^-?[0-9]{1,18}(\.[0-9]+)?([eE]-?[0-9]{1,3})?$"
# A value with any other character is parsed by no type but string (hex digits, x, t, z, T, Z,
# ':', '+', '-', '.', space and tab can appear in integers, dates, times, timestamps).
_TEXT = r"[^0-9a-fA-FxXtTzZ:+\-. \t]"
_FLOAT_WORDS = r"^[+-]?([iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])$"
_SIMPLE = ("int64", "double", "bool", "string", "null")
_BOM = b"\xef\xbb\xbf"  # skipped by pyarrow too

#: How many times pyarrow's CSV reader was opened here (tests count it: it must not grow with columns).
ARROW_CALLS = {"count": 0}


def _default_options(table: Any) -> bool:
    """Whether a CSV :class:`~.tabular.TableFile` uses the parse / convert options this reader implements."""
    parse, convert, read = table.parse_options, table.convert_options, table.read_options
    if parse is None or convert is None or read is None:
        return False
    return (parse.delimiter == "," and parse.quote_char == '"' and parse.double_quote and not parse.escape_char
            and not parse.newlines_in_values and parse.ignore_empty_lines
            and list(convert.null_values) == list(NULL_VALUES) and list(convert.true_values) == list(TRUE_VALUES)
            and list(convert.false_values) == list(FALSE_VALUES) and convert.check_utf8
            and convert.quoted_strings_can_be_null and not convert.auto_dict_encode
            and convert.decimal_point == "." and not list(convert.timestamp_parsers)
            and not convert.include_missing_columns
            and read.skip_rows == 0 and read.skip_rows_after_names == 0 and not read.column_names
            and not read.autogenerate_column_names and read.encoding in ("utf8", "utf-8"))


def _lines(fh: Any) -> Iterator[bytes]:
    """Physical rows: split on LF, CRLF and lone CR (as pyarrow does without newlines in values)."""
    for raw in fh:
        raw = raw.rstrip(b"\n").rstrip(b"\r")
        yield from (raw.split(b"\r") if b"\r" in raw else (raw,))


def _split(text: str) -> list[str]:
    return text.split(",") if '"' not in text else next(csv.reader([text]))


def _cells(line: bytes, uri: str, names: Sequence[str], number: int) -> list[str] | None:
    """One row's cells (None: an empty line, skipped)."""
    if not line:
        return None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        cells = next(csv.reader([line.decode("utf-8", "surrogateescape")]))
        bad = next((i for i, c in enumerate(cells) if any("\udc80" <= ch <= "\udcff" for ch in c)), None)
        column = f"'{names[bad]}'" if bad is not None and bad < len(names) else "(unknown)"
        raise InputDataError(f"{uri}: CSV column {column} holds text that is not UTF-8 (first at line {number})") \
            from None
    cells = _split(text)
    if len(cells) != len(names):
        raise InputDataError(f"{uri}: malformed CSV: a row has the wrong number of columns (truncated file?)")
    return cells


#: A small wide file parsed whole for its schema is kept (one file, by identity) for the batches that follow.
_PARSED: dict[tuple[Any, ...], tuple[list[str], list[list[str]]]] = {}
_PARSED_MAX_BYTES = 16 << 20


def _identity(st: os.stat_result) -> tuple[Any, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _header(path: str | os.PathLike[str], block_size: int) -> tuple[list[str], list[list[str]]] | None:
    """Column names and the rows of the first parse block (pyarrow infers types from them)."""
    with open(path, "rb") as fh:
        identity = _identity(os.fstat(fh.fileno()))
        head = fh.read(block_size)
        complete = len(head) < block_size
    if head.split(b"\n", 1)[0].count(b",") + 1 < WIDE_COLUMNS:
        return None  # too few fields, even if no comma is quoted: not wide (no need to split the block)
    if not complete:
        head = head[: head.rfind(b"\n") + 1]
    lines = list(_lines(io.BytesIO(head.removeprefix(_BOM))))
    if not lines:
        return None
    try:
        names = _split(lines[0].decode("utf-8"))
    except UnicodeDecodeError:
        return None
    if len(names) < WIDE_COLUMNS or len(set(names)) != len(names):
        return None
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            cells = _cells(line, "", names, number)
        except InputDataError:
            return None  # pyarrow's path reports it
        if cells is not None:
            rows.append(cells)
    _PARSED.clear()
    if complete and len(head) <= _PARSED_MAX_BYTES:
        _PARSED[identity] = (names, rows)  # the whole file: its batches need not parse it again
    return names, rows


def _column_major(columns: Sequence[Sequence[str]], indices: Sequence[int]) -> pa.Array:
    """The cells of ``columns[i]`` for ``i`` in ``indices``, column after column, as one string array."""
    import pyarrow as pa

    return pa.array(list(itertools.chain.from_iterable(columns[i] for i in indices)), pa.string())


def _per_column(flags: pa.Array, rows: int, width: int) -> Any:
    """A boolean array over column-major cells as (columns x rows) numpy."""
    return flags.to_numpy(zero_copy_only=False).reshape(width, rows)


def _classify(rows: list[list[str]], names: list[str]) -> list[str | None]:
    """pyarrow's inferred type per column where sure (``int64``, ``bool``, ``double``, ``string``, ``null``)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    width = len(names)
    if not rows:
        return ["null"] * width
    cells = _column_major(list(zip(*rows)), range(width))
    n = len(rows)

    def flag(values: Any) -> Any:
        return _per_column(pc.fill_null(values, False), n, width)

    null = flag(pc.is_in(cells, value_set=pa.array(NULL_VALUES)))
    integer = flag(pc.match_substring_regex(cells, _INT)) | null
    boolean = flag(pc.is_in(cells, value_set=pa.array(TRUE_VALUES + FALSE_VALUES))) | null
    floating = flag(pc.match_substring_regex(cells, _FLOAT)) | null
    text = flag(pc.match_substring_regex(cells, _TEXT)) & ~null & ~flag(
        pc.match_substring_regex(cells, _FLOAT_WORDS)) & ~boolean
    kinds = np.full(width, None, dtype=object)
    kinds[text.any(axis=1)] = "string"
    for kind, ok in (("double", floating), ("bool", boolean), ("int64", integer), ("null", null)):
        kinds[ok.all(axis=1)] = kind  # last assignment wins: pyarrow's order of preference
    return kinds.tolist()


def _arrow_read(rows: Sequence[Sequence[str]], indices: Sequence[int], names: Sequence[str],
                types: Mapping[str, Any] | None, strings_can_be_null: bool, uri: str,
                path: str | os.PathLike[str]) -> pa.Table:
    """pyarrow's CSV reader over a small CSV of columns ``indices`` (its types, values and errors)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from airflow_aisec.core.io.tabular import _csv_error_message

    sub = [names[i] for i in indices]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(sub)
    writer.writerows([row[i] for i in indices] for row in rows)
    ARROW_CALLS["count"] += 1
    try:
        return pcsv.read_csv(io.BytesIO(buf.getvalue().encode("utf-8")),
                             read_options=pcsv.ReadOptions(block_size=max(1 << 20, 2 * buf.tell())),
                             convert_options=pcsv.ConvertOptions(column_types=dict(types or {}),
                                                                 strings_can_be_null=strings_can_be_null))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InputDataError(_csv_error_message(exc, sub, uri, [(types or {}).get(n, "") for n in sub],
                                                path=path)) from None


def wide_csv_schema(path: str | os.PathLike[str], block_size: int, *, declared: Mapping[str, Any] | None,
                    uri: str, text: bool = False, columns: Sequence[str] | None = None) -> pa.Schema | None:
    """The schema pyarrow would infer for a wide CSV file, or ``None`` (not wide, or not plain).

    ``text``: every column is text (a gate reading all cells as strings needs no inference).
    ``columns``: only these columns are ever read; the others are typed as text, not inferred.
    """
    import pyarrow as pa

    if str(path).lower().endswith((".gz", ".bz2", ".zst")):
        return None
    found = _header(path, block_size)
    if found is None:
        return None
    names, rows = found
    if text:
        return pa.schema([pa.field(n, pa.string()) for n in names])
    declared = dict(declared or {})
    if columns is None:
        kinds = _classify(rows, names)
    else:
        # Unread columns cost nothing to type: inference is per cell, over the read ones only.
        present = set(names)
        chosen = _indices(names, [c for c in columns if c in present])  # a missing one is reported when read
        kinds = ["string"] * len(names)
        for i, kind in zip(chosen, _classify([[row[i] for i in chosen] for row in rows], [names[i] for i in chosen])):
            kinds[i] = kind
    types: list[Any] = [None] * len(names)
    unsure = []
    for i, (name, kind) in enumerate(zip(names, kinds)):
        if name in declared:
            types[i] = declared[name]
        elif kind is None:
            unsure.append(i)
        else:
            types[i] = pa.type_for_alias(kind)
    if unsure:
        table = _arrow_read(rows, unsure, names, None, False, uri, path)
        for i, field in zip(unsure, table.schema):
            types[i] = field.type
    if {pa.binary(), pa.large_binary()} & set(types):
        return None
    return pa.schema(list(zip(names, types)))  # (name, type) pairs: cheaper than 100k pa.field calls


def eligible(table: Any, path: str) -> bool:
    """Whether a CSV :class:`~.tabular.TableFile` is read by :func:`iter_wide_csv`."""
    return (table.kind == "csv" and len(table.schema) >= WIDE_COLUMNS
            and not str(path).lower().endswith((".gz", ".bz2", ".zst")) and _default_options(table))


def _convert(rows: list[list[str]], columns: Sequence[Sequence[str]], group: list[int], kind: str,
             strings_can_be_null: bool) -> tuple[pa.Array | None, list[int]]:
    """The cells of a group of same-typed columns as one converted array, and the columns the fast
    rules do not cover (converted by pyarrow instead)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(rows)
    cells = _column_major(columns, group)
    if kind == "string" and not strings_can_be_null:
        return cells, []
    null = pc.fill_null(pc.is_in(cells, value_set=pa.array(NULL_VALUES)), False)
    if kind == "string":
        return pc.if_else(null, pa.scalar(None, pa.string()), cells), []
    if kind == "null":
        ok = null
    elif kind == "bool":
        ok = pc.or_(null, pc.is_in(cells, value_set=pa.array(TRUE_VALUES + FALSE_VALUES)))
    else:
        ok = pc.or_(null, pc.match_substring_regex(cells, _INT if kind == "int64" else _FLOAT))
    good = _per_column(ok, n, len(group)).all(axis=1)
    if not good.all():
        return None, [group[j] for j in np.flatnonzero(~good)]
    if kind == "null":
        return pa.nulls(len(cells)), []
    valued = pc.if_else(null, pa.scalar(None, pa.string()), cells)
    if kind == "bool":
        return pc.if_else(null, pa.scalar(None, pa.bool_()), pc.is_in(cells, value_set=pa.array(TRUE_VALUES))), []
    return pc.cast(valued, pa.type_for_alias(kind)), []


def _batch(rows: list[list[str]], schema: pa.Schema, projection: Sequence[int], strings_can_be_null: bool,
           uri: str, path: str | os.PathLike[str]) -> pa.RecordBatch:
    import pyarrow as pa

    names = schema.names
    types = schema.types
    n = len(rows)
    if 2 * len(projection) < len(names):
        # A few columns of a wide file: only those are transposed.
        columns: Any = {i: tuple(row[i] for row in rows) for i in projection}
    else:
        columns = list(zip(*rows))  # transposed once per batch
    out: dict[int, pa.Array] = {}
    groups: dict[str, list[int]] = {}
    slow: list[int] = []
    aliases = {t: str(t) for t in set(types)}  # per type, not per column: str(DataType) costs microseconds
    for i in projection:
        alias = aliases[types[i]]
        if alias in _SIMPLE:
            groups.setdefault(alias, []).append(i)
        else:
            slow.append(i)
    for kind, group in groups.items():
        converted, rest = _convert(rows, columns, group, kind, strings_can_be_null)
        if converted is None:
            # Some column holds a value the fast rules do not cover: convert the group's conforming
            # columns here and the rest with pyarrow.
            bad = set(rest)
            slow.extend(rest)
            group = [i for i in group if i not in bad]
            converted = _convert(rows, columns, group, kind, strings_can_be_null)[0] if group else None
        for k, i in enumerate(group):
            out[i] = converted.slice(k * n, n)
    if slow:
        table = _arrow_read(rows, slow, names, {names[i]: types[i] for i in slow}, strings_can_be_null, uri, path)
        for k, i in enumerate(slow):
            out[i] = table.column(k).combine_chunks()
    if list(projection) != list(range(len(names))):
        schema = pa.schema([schema.field(i) for i in projection])
    return pa.RecordBatch.from_arrays([out[i] for i in projection], schema=schema)


def _row_groups(path: str | os.PathLike[str], names: Sequence[str], per_batch: int,
                uri: str) -> Iterator[list[list[str]]]:
    """The data rows of a wide CSV file, ``per_batch`` rows at a time (each row's cells as strings)."""
    parsed = _PARSED.get(_identity(os.stat(path)))
    if parsed is not None and parsed[0] == list(names):
        for start in range(0, len(parsed[1]), per_batch):
            yield parsed[1][start:start + per_batch]
        return
    rows: list[list[str]] = []
    with open(path, "rb") as fh:
        lines = _lines(fh)
        if _split(next(lines, b"").removeprefix(_BOM).decode("utf-8", "replace")) != names:
            raise InputDataError(f"{uri}: the CSV header changed while it was being read")
        for number, line in enumerate(lines, start=2):
            cells = _cells(line, uri, names, number)
            if cells is None:
                continue
            rows.append(cells)
            if len(rows) >= per_batch:
                yield rows
                rows = []
    if rows:
        yield rows


def _indices(names: Sequence[str], projection: Sequence[str] | None) -> list[int]:
    if projection is None or list(projection) == list(names):
        return list(range(len(names)))
    if len(projection) <= 16:
        names = list(names)
        return [names.index(c) for c in projection]  # a few scans in C: no 100k-entry dict
    position = {name: i for i, name in enumerate(names)}
    return [position[c] for c in projection]


def iter_wide_csv(path: str | os.PathLike[str], schema: pa.Schema, projection: Sequence[str] | None,
                  batch_rows: int, *, strings_can_be_null: bool, uri: str) -> Iterator[pa.RecordBatch]:
    """Record batches of a wide CSV file with ``schema`` (from :func:`wide_csv_schema` or pyarrow).

    Raises:
        InputDataError: wrong number of columns in a row, text that is not UTF-8, a value that is
            not of its column's type (pyarrow's message, value-free).
    """
    names = schema.names
    indices = _indices(names, projection)
    per_batch = max(1, min(batch_rows, BATCH_CELLS // max(len(names), 1)))
    for rows in _row_groups(path, names, per_batch, uri):
        yield _batch(rows, schema, indices, strings_can_be_null, uri, path)


def iter_wide_csv_groups(table: Any, projection: Sequence[str], batch_rows: int, *,
                         uri: str) -> Iterator[tuple[int, list[tuple[Any, Any, pa.Array]] | None, pa.RecordBatch | None]]:
    """A wide CSV file's ``projection`` columns by type, with no per-column array: ``(rows, groups,
    None)`` where each group is (type, positions of its columns in ``projection``, their cells column
    after column), or ``(rows, None, batch)`` for a row group with a value the fast rules do not
    cover (then that group is :func:`iter_wide_csv`'s record batch). Cells, types and errors are
    :func:`iter_wide_csv`'s: the same conversions on the same rows.

    Raises:
        InputDataError: as :func:`iter_wide_csv`.
    """
    import numpy as np
    import pyarrow as pa

    from airflow_aisec.core.io.tabular import _read_error_message

    schema = table.schema
    all_names, types = schema.names, schema.types
    indices = _indices(all_names, projection)
    nulls = table.convert_options.strings_can_be_null
    kinds: dict[str, list[int]] = {}
    aliases = {t: str(t) for t in {types[i] for i in indices}}  # str() per type, not per column
    for p, i in enumerate(indices):
        kinds.setdefault(aliases[types[i]], []).append(p)
    simple = all(alias in _SIMPLE for alias in kinds)
    per_batch = max(1, min(batch_rows, BATCH_CELLS // max(len(all_names), 1)))
    try:
        for rows in _row_groups(table.path, all_names, per_batch, uri):
            groups: list[tuple[Any, Any, pa.Array]] | None = None
            if simple:
                columns: Any = list(zip(*rows)) if 2 * len(indices) >= len(all_names) else \
                    {i: tuple(row[i] for row in rows) for i in indices}
                groups = []
                for alias, where in kinds.items():
                    cells, _ = _convert(rows, columns, [indices[p] for p in where], alias, nulls)
                    if cells is None:  # a value for pyarrow's own conversion: this row group as a batch
                        groups = None
                        break
                    groups.append((types[indices[where[0]]], np.asarray(where, dtype=np.intp), cells))
            if groups is None:
                yield len(rows), None, _batch(rows, schema, indices, nulls, uri, table.path)
            else:
                yield len(rows), groups, None
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, ValueError) as exc:
        raise InputDataError(_read_error_message(table, exc, uri)) from None


def iter_wide_csv_text(path: str | os.PathLike[str], names: Sequence[str], projection: Sequence[str] | None,
                       batch_rows: int, *, uri: str) -> Iterator[tuple[int, pa.Array]]:
    """``(rows, cells)`` of a wide CSV file read as text (empty fields are empty strings): the cells
    of the projected columns column after column, as one string array, with no per-column array."""
    import numpy as np
    import pyarrow as pa

    indices = np.asarray(_indices(names, projection), dtype=np.int64)
    width = len(names)
    per_batch = max(1, min(batch_rows, BATCH_CELLS // max(width, 1)))
    for rows in _row_groups(path, names, per_batch, uri):
        n = len(rows)
        # Row after row into Arrow in one call, then reordered column after column there.
        flat = pa.array(list(itertools.chain.from_iterable(rows)), pa.string())
        yield n, flat.take(pa.array((indices[:, None] + np.arange(n, dtype=np.int64)[None, :] * width).ravel()))


def count_rows(path: str | os.PathLike[str]) -> int:
    """Data rows of a plain CSV file read without newlines in values: its non-empty lines but the header."""
    with open(path, "rb") as fh:
        return max(0, sum(1 for line in _lines(fh) if line) - 1)
