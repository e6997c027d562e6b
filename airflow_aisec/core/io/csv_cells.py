"""Cutting CSV lines into cells, for the wide-CSV reader (:mod:`.wide_csv`).

A plain block of lines (UTF-8, no NUL, every quote opening or closing a field, the same number of
fields on every line) is cut with numpy into one Arrow string array of all its cells, with no
Python string per cell (:func:`plain_cells`); any other line is read by the :mod:`csv` module, one
line at a time (:func:`row_cells`), whose errors name the file, the column and the line. Both read
a plain line the same way (tests compare them on random lines).
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import pyarrow as pa


#: Bytes read at a time by :func:`physical_lines`.
_CHUNK = 1 << 20


def physical_lines(fh: Any, limit: int | None = None, uri: str = "") -> Iterator[bytes]:
    """Physical rows: split on LF, CRLF and lone CR (as pyarrow does without newlines in values).

    The lines of :func:`physical_line_lists`, one at a time.

    Raises:
        InputDataError: a line longer than ``limit``.
    """
    for lines in physical_line_lists(fh, limit, uri):
        yield from lines


def physical_line_lists(fh: Any, limit: int | None = None, uri: str = "") -> Iterator[list[bytes]]:
    """:func:`physical_lines` a list at a time (the lines that end in one chunk read, never empty).

    Read a chunk at a time and split in C: a file of millions of empty lines costs no Python call
    per line, for a caller that takes a list of lines at once. With ``limit``, a line longer than
    ``limit`` bytes is refused once that much of it is read: a hostile file's one endless line is
    never held whole (pyarrow's reader refuses a row larger than its block, too).

    Raises:
        InputDataError: a line longer than ``limit``.
    """
    def too_long() -> InputDataError:
        return InputDataError(f"{uri}: a CSV row is longer than {limit} bytes (the reader's block size)")

    def checked(lines: list[bytes]) -> list[bytes]:
        if limit is not None and max(map(len, lines)) > limit:
            raise too_long()
        return lines

    def rows(raw: bytes) -> list[bytes]:
        line = raw.rstrip(b"\r")
        return checked(line.split(b"\r") if b"\r" in line else [line])

    unfinished: list[bytes] = []  # the pieces of a line that goes on in the next chunk
    held = 0
    cr_held = False  # whether ``unfinished`` holds a CR (a lone one ends a line once text follows it)
    while chunk := fh.read(_CHUNK):
        parts = chunk.split(b"\n")
        if len(parts) == 1:
            if (cr_held or b"\r" in chunk) and chunk.strip(b"\r"):
                # Lines ended by lone CRs (a file of old Mac line ends) are lines too: those up to the
                # last CR before other text (CRs at the end may come before an LF: dropped then). A
                # chunk of CRs only ends no line yet: it is held (and counted) like any other.
                pending = b"".join([*unfinished, chunk])
                cut = pending.rstrip(b"\r").rfind(b"\r")
                lines = checked(pending[:cut].split(b"\r")) if cut >= 0 else []
                unfinished = [pending[cut + 1:]]  # all of it when no line ended
                held, cr_held = len(unfinished[0]), b"\r" in unfinished[0]
            else:
                lines = []
                unfinished.append(chunk)
                held += len(chunk)
                cr_held = cr_held or b"\r" in chunk
            # Held bytes count their CRs: a flood of them after a line is refused like a long line.
            if limit is not None and held > limit + 1:  # + a CR before the LF
                raise too_long()
            if lines:
                yield lines
            continue
        if unfinished:
            parts[0] = b"".join([*unfinished, parts[0]])
        tail = parts.pop()
        unfinished, held, cr_held = ([tail], len(tail), b"\r" in tail) if tail else ([], 0, False)
        # Lines checked one by one only when one may need it (a CR, or one longer than the limit).
        if b"\r" in chunk or b"\r" in parts[0] or (limit is not None and max(map(len, parts)) > limit):
            parts = list(itertools.chain.from_iterable(map(rows, parts)))
        yield parts
    if unfinished:
        yield rows(b"".join(unfinished))


def split_fields(text: str) -> list[str]:
    return text.split(",") if '"' not in text else next(csv.reader([text]))


class WrongFieldCount(InputDataError):
    """A row with another number of fields than the header: the file is malformed, whoever reads it."""


def row_cells(line: bytes, uri: str, names: Sequence[str], number: int) -> list[str] | None:
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
    # Without quotes the commas tell the fields: a hostile line of millions is refused unsplit.
    if ('"' not in text and text.count(",") + 1 != len(names)) or len(cells := split_fields(text)) != len(names):
        raise WrongFieldCount(f"{uri}: malformed CSV: a row has the wrong number of columns (truncated file?)")
    return cells


def plain_cells(data: bytes, width: int | None) -> pa.Array | None:
    """Every cell of the lines in ``data``, row after row, as one string array, found with no Python
    string per cell; None unless every non-empty line is plain: UTF-8, no NUL, ``width`` fields (or
    all as many), each quote opening or closing a field (none inside one), no field longer than the
    csv module allows. A plain line has one reading, :func:`row_cells`'s; any other takes that path."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not data or b"\x00" in data:
        return None
    if width is not None and b'"' not in data and data.count(b",") > (width - 1) * (data.count(b"\n") + data.count(b"\r") + 1):
        return None  # more commas than its lines can hold: not plain (and no arrays made for them)
    try:
        data.decode("utf-8")  # cells are cut at ASCII bytes: all valid iff the whole is
    except UnicodeDecodeError:
        return None
    b = np.frombuffer(data, dtype=np.uint8)
    size = len(b)
    # The bytes that matter (quotes, commas, line breaks), in order: the work is on them.
    at = np.flatnonzero((b == 44) | (b == 34) | (b == 10) | (b == 13))
    code = b[at]
    quote, comma, brk = code == 34, code == 44, (code == 10) | (code == 13)  # a lone CR ends a line too
    lines_before = np.cumsum(brk, dtype=np.int32)
    if quote.any():
        where = np.flatnonzero(quote)
        if len(where) % 2:
            return None
        opening, closing = at[where[0::2]], at[where[1::2]]
        before = b[np.maximum(opening - 1, 0)]
        after = b[np.minimum(closing + 1, size - 1)]
        # A field's quotes: the first and the last byte of the field, on one line.
        if not (((before == 44) | (before == 10) | (before == 13) | (opening == 0)).all()
                and ((after == 44) | (after == 10) | (after == 13) | (closing == size - 1)).all()
                and (lines_before[where[0::2]] == lines_before[where[1::2]]).all()):
            return None
        # Commas after an odd number of quotes are inside quotes (a uint8 count keeps its parity).
        delimiter = comma & ((np.cumsum(quote, dtype=np.uint8) & 1) == 0)
        inner = int(np.count_nonzero(delimiter)) != int(np.count_nonzero(comma))
        comma = delimiter
    else:
        inner = False
    breaks = at[brk]
    # Lines: between breaks; empty ones are skipped.
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [size]))
    full = ends > starts
    if not full.any():
        return None
    # A field ends at a delimiter or at the end of a non-empty line.
    bound = comma.copy()
    bound[brk] = full[:-1]
    fields = np.diff(np.concatenate(([0], np.cumsum(comma)[brk], [comma.sum()])))[full] + 1
    if (fields != (fields[0] if width is None else width)).any():
        return None
    if not inner:
        # Each cell with the bytes after it up to the next one (its closing quote, delimiter, line
        # breaks, the next one's opening quote), trimmed: cells hold no quote, line break, or (here)
        # comma, so trimming those removes exactly the rest.
        ends = at[bound] + 1
        offsets = np.concatenate(([0], ends, [size] if full[-1] else [])).astype(np.int64)
        if offsets[-1] >= 1 << 31 or np.diff(offsets).max() > csv.field_size_limit():
            return None
        raw = pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets.astype(np.int32)),
                                          pa.py_buffer(data))
        return pc.ascii_trim(raw, characters='",\r\n')
    # Else the cells' bytes are copied without the quotes, delimiters and line breaks.
    dropped = comma | quote | brk
    dropped_before = np.cumsum(dropped) - dropped
    ends_at = at[bound] - dropped_before[bound]
    if full[-1]:  # the last line has no break after it
        ends_at = np.append(ends_at, size - dropped.sum())
    offsets = np.concatenate(([0], ends_at))
    if offsets[-1] >= 1 << 31 or np.diff(offsets).max() > csv.field_size_limit():
        return None
    mask = np.ones(size, dtype=bool)
    mask[at[dropped]] = False
    return pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets.astype(np.int32)),
                                       pa.py_buffer(b[mask]))


def header_names(line: bytes) -> list[str] | None:
    """The header's fields (None: not UTF-8)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if '"' not in text:
        return text.split(",")
    plain = plain_cells(line, None)
    return plain.to_pylist() if plain is not None else split_fields(text)


def first_line(data: bytes) -> tuple[bytes, bytes]:
    """The first line as :func:`physical_lines` reads it, and the bytes of the lines after it (the same lines)."""
    end = data.find(b"\n")
    raw, rest = (data, b"") if end < 0 else (data[:end], data[end + 1:])
    first = raw.rstrip(b"\r")
    if b"\r" in first:  # a lone CR: the line's other pieces are lines of their own
        first, _, more = first.partition(b"\r")
        rest = more + b"\n" + rest
    return first, rest


class Rows:
    """Data rows of a wide CSV file: every cell, row after row, as one string array."""

    def __init__(self, flat: pa.Array, width: int) -> None:
        self.flat, self.width = flat, width

    def __len__(self) -> int:
        return len(self.flat) // self.width

    def slice(self, start: int, stop: int) -> Rows:
        stop = min(stop, len(self))
        return Rows(self.flat.slice(start * self.width, (stop - start) * self.width), self.width)

    def pick(self, indices: Sequence[int]) -> pa.Array:
        """The cells of columns ``indices``, column after column."""
        import numpy as np
        import pyarrow as pa

        where = (np.asarray(indices, dtype=np.int64)[:, None]
                 + np.arange(len(self), dtype=np.int64)[None, :] * self.width)
        return self.flat.take(pa.array(where.ravel()))

    def row_major(self, indices: Sequence[int]) -> pa.Array:
        """The cells of columns ``indices``, row after row."""
        import numpy as np
        import pyarrow as pa

        where = (np.arange(len(self), dtype=np.int64)[:, None] * self.width
                 + np.asarray(indices, dtype=np.int64)[None, :])
        return self.flat.take(pa.array(where.ravel()))

    def lists(self, indices: Sequence[int]) -> list[list[str]]:
        """The cells of columns ``indices`` as Python strings, one list per row."""
        values = self.row_major(indices).to_pylist() if len(indices) else []
        k = len(indices)
        return [values[i:i + k] for i in range(0, len(values), k)] if k else [[] for _ in range(len(self))]


def parse_rows(data: bytes, names: Sequence[str], uri: str, first: int) -> Rows:
    """The rows of whole lines ``data`` (the first one is line ``first`` of the file).

    Raises:
        InputDataError: as :func:`row_cells`, for the first bad line.
    """
    import pyarrow as pa

    if not data.strip(b"\r\n"):  # empty lines only: no row (and no line to read one at a time)
        return Rows(pa.array([], pa.string()), len(names))
    plain = plain_cells(data, len(names))
    if plain is not None:
        return Rows(plain, len(names))
    rows = []
    for number, line in enumerate(physical_lines(io.BytesIO(data)), start=first):
        cells = row_cells(line, uri, names, number)
        if cells is not None:
            rows.append(cells)
    return Rows(pa.array(list(itertools.chain.from_iterable(rows)), pa.string()), len(names))
