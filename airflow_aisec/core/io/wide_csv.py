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

from airflow_aisec.core.io.csv_cells import (
    Rows,
    WrongFieldCount,
    first_line,
    header_names,
    parse_rows,
    physical_line_lists,
    split_fields,
)
from airflow_aisec.core.io.parse_cache import ParseCache, Source, file_identity
from airflow_aisec.core.io.schema_lists import ColumnLists, check_width
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

#: Header columns from which a CSV file is read here rather than by pyarrow's reader.
WIDE_COLUMNS = 1024
#: Cells per record batch at most (a wide file's batch has fewer rows than asked).
BATCH_CELLS = 1 << 20
#: Bytes and lines parsed at once at most (a batch then has fewer rows): parsing costs a few times
#: the bytes in numpy arrays, and empty lines count though they hold no row.
_PARSE_BYTES = 16 << 20
_PARSE_LINES = 1 << 16
#: pyarrow's default CSV null tokens and boolean spellings.
NULL_VALUES = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "N/A",
               "NA", "NULL", "NaN", "n/a", "nan", "null")
TRUE_VALUES = ("1", "True", "TRUE", "true")
FALSE_VALUES = ("0", "False", "FALSE", "false")
_INT = r"^-?[0-9]{1,18}$"
_FLOAT = r"^-?[0-9]{1,18}(\.[0-9]+)?([eE]-?[0-9]{1,3})?$"
# Characters of integers, dates, times, timestamps (hex digits, x, t, z, T, Z, ':', '+', '-', '.',
# space, tab): a value with any other character is parsed by no type but string.
_NOT_TEXT = "0123456789abcdefABCDEFxXtTzZ:+-. \t"
#: Float spellings (any ASCII case, a sign or not) that are not text, lowercased.
_FLOAT_WORDS = tuple(sign + word for sign in ("", "+", "-") for word in ("inf", "infinity", "nan"))
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


#: A small wide file parsed whole for its schema is kept (two files) for the batches that follow.
_PARSED_MAX_BYTES = 16 << 20
_PARSED = ParseCache(kept=2, max_source_bytes=_PARSED_MAX_BYTES)


def _header(path: str | os.PathLike[str], block_size: int, uri: str) -> tuple[list[str], Rows, Source] | None:
    """Column names, the rows of the first parse block (pyarrow infers types from them) and the bytes
    they were parsed from."""
    import pyarrow as pa

    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        identity = file_identity(st)
        # A small wide file is read whole (one read, no join): the rows past the first block are
        # parsed once, here, for the batches.
        small = st.st_size <= _PARSED_MAX_BYTES
        data = fh.read(max(block_size, st.st_size + 1) if small else block_size)
    source = Source(0, data)  # data may be rebuilt below (a lone CR in the first line)
    end = data.find(b"\n", 0, block_size)
    if data.count(b",", 0, end if end >= 0 else min(len(data), block_size)) + 1 < WIDE_COLUMNS:
        return None  # too few fields, even if no comma is quoted: not wide (no need to split the block)
    complete = len(data) < block_size
    small = small and len(data) == st.st_size  # it changed while being read: no rows kept
    if complete:
        head_end = len(data)
    else:  # the first block's whole lines (a file of lone-CR line ends has no LF: its CRs end them)
        head_end = data.rfind(b"\n", 0, block_size)
        head_end = (head_end if head_end >= 0 else data.rfind(b"\r", 0, block_size)) + 1
    start = len(_BOM) if data.startswith(_BOM) else 0
    line_end = data.find(b"\n", start, head_end)
    line_end = head_end if line_end < 0 else line_end
    body_start = line_end + 1
    line = data[start:line_end].rstrip(b"\r")
    if b"\r" in line:  # a lone CR in the first line: first_line's reading (its pieces are lines)
        line, body = first_line(data[start:head_end])
        data, body_start, head_end = body + data[head_end:], 0, len(body)
    names = header_names(line)
    if names is not None:
        check_width(len(names), uri)  # before a set, a schema or a row of that many
    if names is None or len(names) < WIDE_COLUMNS or len(set(names)) != len(names):
        return None
    try:
        # A bad line here sends the file to pyarrow's path (its message), but for a row with another
        # number of fields: pyarrow refuses it with this message too, after splitting it into fields
        # (a hostile 4 MB line of commas cost its CSV reader 760 MB).
        rows = _parse_pieces(data, names, uri, body_start, head_end)
    except WrongFieldCount:
        raise
    except InputDataError:
        return None
    if small:
        kept: Rows | None = rows
        if not complete:
            try:
                kept = Rows(pa.concat_arrays([rows.flat, _parse_pieces(data, names, uri, head_end).flat]), len(names))
            except InputDataError:
                kept = None  # the batches report it
        if kept is not None:  # the whole file: its batches need not parse it again
            _PARSED.put(identity, (names, kept), source)
    return names, rows, source


def _parse_pieces(data: bytes, names: Sequence[str], uri: str, start: int = 0, stop: int | None = None) -> Rows:
    """:func:`parse_rows` of ``data[start:stop]`` a piece at a time (each sliced from ``data``, which
    is not copied whole first), each piece up to the first line end after _PARSE_LINES bytes (so at
    most that many lines and one more): a block of millions of empty lines costs no more than a block
    of rows. Line numbers in errors are not the file's (only
    :class:`~.csv_cells.WrongFieldCount`, which names none, is shown)."""
    import pyarrow as pa

    stop = len(data) if stop is None else stop
    pieces = []
    while start < stop:
        end = data.find(b"\n", start + _PARSE_LINES, stop)
        end = stop if end < 0 else end + 1
        pieces.append(parse_rows(data[start:end], names, uri, 2).flat)
        start = end
    return Rows(pa.concat_arrays(pieces) if pieces else pa.array([], pa.string()), len(names))


def _per_column(flags: pa.Array, rows: int, width: int) -> Any:
    """A boolean array over column-major cells as (columns x rows) numpy."""
    return flags.to_numpy(zero_copy_only=False).reshape(width, rows)


def _classify(cells: pa.Array, names: Sequence[str]) -> list[str | None]:
    """pyarrow's inferred type per column where sure (``int64``, ``bool``, ``double``, ``string``, ``null``),
    from ``cells``: the rows' cells of columns ``names``, row after row."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    width = len(names)
    if not len(cells):
        return ["null"] * width
    n = len(cells) // width

    def flag(values: Any) -> Any:
        return pc.fill_null(values, False).to_numpy(zero_copy_only=False)

    def per_column(flags: Any) -> Any:
        return flags.reshape(n, width)  # row-major cells: one row per line, one column per entry

    null = flag(pc.is_in(cells, value_set=pa.array(NULL_VALUES)))
    boolean = flag(pc.is_in(cells, value_set=pa.array(TRUE_VALUES + FALSE_VALUES))) | null
    # _TEXT without a regular expression: trimming the characters it allows leaves something iff one is not.
    text = flag(pc.greater(pc.binary_length(pc.ascii_trim(cells, characters=_NOT_TEXT)), 0)) & ~boolean
    words = np.flatnonzero(text)
    text[words] = ~flag(pc.is_in(pc.ascii_lower(cells.take(pa.array(words))), value_set=pa.array(_FLOAT_WORDS)))
    string = per_column(text).any(axis=0)
    # A column with text is decided (no number matches a text character): the numeric expressions
    # are evaluated only on the other columns' non-null cells.
    floating = null.copy()
    open_cells = np.flatnonzero((~per_column(null) & ~string[None, :]).ravel())
    floating[open_cells] = flag(pc.match_substring_regex(cells.take(pa.array(open_cells)), _FLOAT))
    integer = null.copy()
    numbers = np.flatnonzero(floating & ~null)
    # _INT given _FLOAT: no fraction or exponent, i.e. digits after the sign.
    integer[numbers] = flag(pc.ascii_is_decimal(pc.ascii_ltrim(cells.take(pa.array(numbers)), characters="-")))
    kinds = np.full(width, None, dtype=object)
    kinds[string] = "string"
    for kind, ok in (("double", floating), ("bool", boolean), ("int64", integer), ("null", null)):
        kinds[per_column(ok).all(axis=0)] = kind  # last assignment wins: pyarrow's order of preference
    return kinds.tolist()


def _arrow_read(rows: Rows, indices: Sequence[int], names: Sequence[str] | Mapping[int, str],
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
    writer.writerows(rows.lists(indices))
    ARROW_CALLS["count"] += 1
    try:
        return pcsv.read_csv(io.BytesIO(buf.getvalue().encode("utf-8")),
                             read_options=pcsv.ReadOptions(block_size=max(1 << 20, 2 * buf.tell())),
                             convert_options=pcsv.ConvertOptions(column_types=dict(types or {}),
                                                                 strings_can_be_null=strings_can_be_null))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InputDataError(_csv_error_message(exc, sub, uri, [(types or {}).get(n, "") for n in sub],
                                                path=path)) from None


#: The last wide schemas made, by file identity and the options they were made under: a gate opens
#: one file several times (a redaction: scan, shape, rewrite), and each 100k-field schema costs ~0.1 s.
#: A schema is kept with the block it was inferred from: a larger block (a header over 2 MB) is read again.
_SCHEMAS = ParseCache(kept=4, max_source_bytes=_PARSED_MAX_BYTES + 1)


def wide_csv_schema(path: str | os.PathLike[str], block_size: int, *, declared: Mapping[str, Any] | None,
                    uri: str, text: bool = False, columns: Sequence[str] | None = None) -> ColumnLists | None:
    """The columns (names, types; the Arrow schema made when asked for) pyarrow would infer for a wide
    CSV file, or ``None`` (not wide, or not plain).

    ``text``: every column is text (a gate reading all cells as strings needs no inference).
    ``columns``: only these columns are ever read; the others are typed as text, not inferred.
    """
    if str(path).lower().endswith((".gz", ".bz2", ".zst")):
        return None
    key = (file_identity(os.stat(path)), WIDE_COLUMNS, block_size, text, None if columns is None else tuple(columns),
           tuple((name, str(kind)) for name, kind in (declared or {}).items()))
    schema = _SCHEMAS.get(key, path)
    if schema is None:
        made = _schema(path, block_size, declared=declared, uri=uri, text=text, columns=columns)
        if made is None:
            return None
        schema, source = made
        _SCHEMAS.put(key, schema, source)
    return schema


def _schema(path: str | os.PathLike[str], block_size: int, *, declared: Mapping[str, Any] | None,
            uri: str, text: bool, columns: Sequence[str] | None) -> tuple[ColumnLists, Source] | None:
    """The columns, and the bytes they were inferred from."""
    import pyarrow as pa

    found = _header(path, block_size, uri)
    if found is None:
        return None
    names, rows, source = found
    if text:
        return ColumnLists(names, [pa.string()] * len(names)), source
    declared = dict(declared or {})
    if columns is None:
        kinds = _classify(rows.flat, names)
    else:
        # Unread columns cost nothing to type: inference is per cell, over the read ones only.
        present = set(names) if len(columns) > 16 else names  # a few scans in C: no 100k-entry set
        chosen = _indices(names, [c for c in columns if c in present])  # a missing one is reported when read
        kinds = ["string"] * len(names)
        for i, kind in zip(chosen, _classify(rows.row_major(chosen), [names[i] for i in chosen])):
            kinds[i] = kind
    aliases = {kind: pa.type_for_alias(kind) for kind in set(kinds) if kind is not None}  # per type, not column
    types: list[Any] = list(map(aliases.get, kinds))
    given = []
    if declared:
        position = {name: i for i, name in enumerate(names)}
        given = [position[name] for name in declared if name in position]
        for i in given:
            types[i] = declared[names[i]]
    unsure = [i for i, kind in enumerate(kinds) if kind is None and names[i] not in declared] if None in kinds else []
    if unsure:
        table = _arrow_read(rows, unsure, names, None, False, uri, path)
        for i, field in zip(unsure, table.schema):
            types[i] = field.type
    # Only declared and pyarrow-inferred types can be binary (a classified kind never is).
    if {pa.binary(), pa.large_binary()} & {types[i] for i in given + unsure}:
        return None
    return ColumnLists(names, types), source


#: The last projections' column positions and type groups, per table's columns (see :func:`_layout`).
_LAYOUTS: list[tuple[ColumnLists, list[str], list[int], list[tuple[Any, str | None, Any]]]] = []


def _layout(columns: ColumnLists, projection: Sequence[str]) -> tuple[list[int], list[tuple[Any, str | None, Any]]]:
    """The positions of ``projection`` in ``columns`` and their groups by type (:func:`_by_type`),
    kept for the last two (a gate reads a file's columns more than once)."""
    wanted = list(projection)
    for known, chosen, indices, kinds in _LAYOUTS:
        if known is columns and chosen == wanted:
            return indices, kinds
    names, types = columns.names, columns.types
    indices = _indices(names, wanted)
    kinds = _by_type(types if len(indices) == len(types) and indices == list(range(len(types)))
                     else [types[i] for i in indices])
    for _, _, where in kinds:
        where.flags.writeable = False  # shared by the reads that follow
    _LAYOUTS[:] = [(columns, wanted, indices, kinds), *_LAYOUTS[:1]]
    return indices, kinds


def eligible(table: Any, path: str) -> bool:
    """Whether a CSV :class:`~.tabular.TableFile` is read by :func:`iter_wide_csv`."""
    return (table.kind == "csv" and len(table.column_lists) >= WIDE_COLUMNS
            and not str(path).lower().endswith((".gz", ".bz2", ".zst")) and _default_options(table))


def _by_type(types: Sequence[Any]) -> list[tuple[Any, str | None, Any]]:
    """Positions in ``types`` grouped by type, in order of first position: (type, its alias if one of
    the fast rules' types else None, positions). Grouped by type id (an attribute): hashing or
    printing 100k DataType objects costs a str() each."""
    import numpy as np

    codes = np.fromiter((t.id for t in types), dtype=np.int64, count=len(types))
    groups: list[tuple[Any, str | None, Any]] = []
    for code in np.unique(codes).tolist():
        where = np.flatnonzero(codes == code)
        first = types[int(where[0])]
        alias = str(first)
        if alias in _SIMPLE:  # these types have no parameters: one id, one type
            groups.append((first, alias, where))
            continue
        exact: dict[Any, list[int]] = {}
        for p in where.tolist():
            exact.setdefault(types[p], []).append(p)
        groups.extend((t, None, np.asarray(ps, dtype=np.intp)) for t, ps in exact.items())
    return sorted(groups, key=lambda group: int(group[2][0]))


def _convert(rows: Rows, group: Sequence[int], kind: str,
             strings_can_be_null: bool) -> tuple[pa.Array | None, list[int]]:
    """The cells of a group of same-typed columns as one converted array, and the columns the fast
    rules do not cover (converted by pyarrow instead)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(rows)
    cells = rows.pick(group)
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


def _batch(rows: Rows, columns: ColumnLists, projection: Sequence[int], strings_can_be_null: bool,
           uri: str, path: str | os.PathLike[str]) -> pa.RecordBatch:
    import numpy as np
    import pyarrow as pa

    n = len(rows)
    all_names, all_types = columns.names, columns.types
    width = len(all_names)
    if len(projection) == width and list(projection) == list(range(width)):
        types, schema = all_types, columns.schema
    else:
        # Some columns of a wide file: their schema alone, not the file's (100,000 fields: ~50 ms).
        types = [all_types[i] for i in projection]
        schema = pa.schema([(all_names[i], all_types[i]) for i in projection])
    where_of = np.asarray(projection, dtype=np.int64)
    out: list[Any] = [None] * len(projection)
    slow: list[int] = []  # positions in the projection, converted by pyarrow
    rests = []
    for _, kind, where in _by_type(types):
        if kind is None:
            slow.extend(where.tolist())
            continue
        converted, rest = _convert(rows, where_of[where].tolist(), kind, strings_can_be_null)
        if converted is None:
            # Some column holds a value the fast rules do not cover: convert the group's conforming
            # columns here and the rest with pyarrow.
            bad = np.isin(where_of[where], rest)
            rests.extend(where[bad].tolist())
            where = where[~bad]
            converted = _convert(rows, where_of[where].tolist(), kind, strings_can_be_null)[0] \
                if len(where) else None
        pieces = map(converted.slice, range(0, len(where) * n, n), itertools.repeat(n)) if len(where) else ()
        for p, piece in zip(where.tolist(), pieces):
            out[p] = piece
    slow = sorted(slow) + rests  # pyarrow reports the first bad column in this order
    if slow:
        # Each column once, in this order (pyarrow reports the first bad one).
        index_of = {p: int(where_of[p]) for p in slow}
        wanted = list(dict.fromkeys(index_of.values()))
        names = {index_of[p]: all_names[index_of[p]] for p in slow}
        table = _arrow_read(rows, wanted, names, {names[index_of[p]]: types[p] for p in slow}, strings_can_be_null,
                            uri, path)
        read = {i: table.column(k).combine_chunks() for k, i in enumerate(wanted)}
        for p in slow:
            out[p] = read[index_of[p]]
    return pa.RecordBatch.from_arrays(out, schema=schema)


def _row_groups(path: str | os.PathLike[str], names: Sequence[str], per_batch: int, uri: str) -> Iterator[Rows]:
    """The data rows of a wide CSV file, ``per_batch`` rows at a time."""
    parsed = _PARSED.get(file_identity(os.stat(path)), path)
    if parsed is not None and parsed[0] == list(names):
        for start in range(0, len(parsed[1]), per_batch):
            yield parsed[1].slice(start, start + per_batch)
        return
    from airflow_aisec.core.io.tabular import csv_block_size

    with open(path, "rb") as fh:
        lists = physical_line_lists(fh, csv_block_size(path), uri)
        first = next(lists, [b""])
        header = first[0].removeprefix(_BOM)
        found = header_names(header)
        if (found if found is not None else split_fields(header.decode("utf-8", "replace"))) != names:
            raise InputDataError(f"{uri}: the CSV header changed while it was being read")
        # Lines are gathered until they hold a batch's rows, then parsed together; a parse never
        # takes more than _PARSE_BYTES or _PARSE_LINES (a hostile file's millions of empty lines).
        # Empty lines before a row only count (a line number): a list of them is skipped at once.
        pending: list[bytes] = []
        number = full = size = 0
        for lines in itertools.chain([first[1:]], lists):
            if not full and not any(lines):
                number += len(lines)
                continue
            for line in lines:
                if not full and not line:
                    number += 1
                    continue
                pending.append(line)
                full += bool(line)
                size += len(line) + 1
                if full >= per_batch or size >= _PARSE_BYTES or len(pending) >= _PARSE_LINES:
                    yield parse_rows(b"\n".join(pending), names, uri, 2 + number)
                    number, pending, full, size = number + len(pending), [], 0, 0
        if full:
            yield parse_rows(b"\n".join(pending), names, uri, 2 + number)


def _indices(names: Sequence[str], projection: Sequence[str] | None) -> list[int]:
    if projection is None or list(projection) == list(names):
        return list(range(len(names)))
    if len(projection) <= 16:
        names = list(names)
        return [names.index(c) for c in projection]  # a few scans in C: no 100k-entry dict
    position = {name: i for i, name in enumerate(names)}
    return [position[c] for c in projection]


def iter_wide_csv(path: str | os.PathLike[str], columns: ColumnLists, projection: Sequence[str] | None,
                  batch_rows: int, *, strings_can_be_null: bool, uri: str) -> Iterator[pa.RecordBatch]:
    """Record batches of a wide CSV file with ``columns`` (from :func:`wide_csv_schema` or pyarrow).

    Raises:
        InputDataError: wrong number of columns in a row, text that is not UTF-8, a value that is
            not of its column's type (pyarrow's message, value-free).
    """
    names = columns.names
    indices = _indices(names, projection)
    per_batch = max(1, min(batch_rows, BATCH_CELLS // max(len(names), 1)))
    for rows in _row_groups(path, names, per_batch, uri):
        yield _batch(rows, columns, indices, strings_can_be_null, uri, path)


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

    all_names = table.names
    indices, kinds = _layout(table.column_lists, projection)
    nulls = table.convert_options.strings_can_be_null
    where_of = np.asarray(indices, dtype=np.int64)
    simple = all(alias is not None for _, alias, _ in kinds)
    per_batch = max(1, min(batch_rows, BATCH_CELLS // max(len(all_names), 1)))
    try:
        for rows in _row_groups(table.path, all_names, per_batch, uri):
            groups: list[tuple[Any, Any, pa.Array]] | None = None
            if simple:
                groups = []
                for data_type, alias, where in kinds:
                    cells, _ = _convert(rows, where_of[where].tolist(), alias, nulls)
                    if cells is None:  # a value for pyarrow's own conversion: this row group as a batch
                        groups = None
                        break
                    groups.append((data_type, where, cells))
            if groups is None:
                yield len(rows), None, _batch(rows, table.column_lists, indices, nulls, uri, table.path)
            else:
                yield len(rows), groups, None
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, ValueError) as exc:
        raise InputDataError(_read_error_message(table, exc, uri)) from None


def iter_wide_csv_text(path: str | os.PathLike[str], names: Sequence[str], projection: Sequence[str] | None,
                       batch_rows: int, *, uri: str) -> Iterator[tuple[int, pa.Array]]:
    """``(rows, cells)`` of a wide CSV file read as text (empty fields are empty strings): the cells
    of the projected columns column after column, as one string array, with no per-column array."""
    import numpy as np

    indices = np.asarray(_indices(names, projection), dtype=np.int64)
    width = len(names)
    per_batch = max(1, min(batch_rows, BATCH_CELLS // max(width, 1)))
    for rows in _row_groups(path, names, per_batch, uri):
        yield len(rows), rows.pick(indices)


def count_rows(path: str | os.PathLike[str], uri: str) -> int:
    """Data rows of a plain CSV file read without newlines in values: its non-empty lines but the header.

    Raises:
        InputDataError: a line longer than the file's parse block.
    """
    from airflow_aisec.core.io.tabular import csv_block_size

    with open(path, "rb") as fh:
        return max(0, sum(len(lines) - lines.count(b"") for lines in physical_line_lists(fh, csv_block_size(path), uri))
                   - 1)
