"""Helpers shared by the gates that compute metrics over tables (bias, drift).

JSON-safe numbers, the way a metric value is written in a finding message, comma-separated column
lists, category encoding of pyarrow columns (canonical names, ``-1`` for missing), and the two
streaming building blocks that keep the gates' memory flat in the number of rows:
:class:`CategoryIndex` (category ids stable across record batches) and :class:`ValueSketch` (an
exact frequency table of float values that turns into a bounded histogram with known error when
there are too many distinct values). Both serialize for partition summaries (``to_json`` /
``from_json``, ``CategoryIndex.from_names``) and sketches merge associatively (``ValueSketch.merged``).
pyarrow and numpy are imported inside the functions that need them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


def json_float(value: Any) -> float | None:
    """JSON-safe float: NaN / inf become None (the evidence store's canonical JSON rejects NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def format_metric(value: float | None) -> str:
    """A metric value in a finding message (None is an undefined metric)."""
    return "undefined (NaN)" if value is None else f"{value:.4g}"


def split_names(value: Sequence[str] | str | None) -> list[str]:
    """Column names from a list or a comma-separated string; blanks dropped."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [c.strip() for c in value if c and c.strip()]


def canonical_text(value: Any, *, lower: bool) -> str | None:
    """Canonical text of a category value; None for missing (null, NaN, blank)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    if not text:
        return None
    return text.lower() if lower else text


def dictionary_codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[Any]]:
    """Codes (int64, -1 for null) and the distinct values of a column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    enc = pc.dictionary_encode(arr)
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype("int64", copy=False)
    return codes, enc.dictionary.to_pylist()


def category_codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    """Codes (-1 for missing: null, NaN, blank) and the canonical category names of a column.

    Values with the same canonical text are one category (" F" and "F", 1 and 1.0).
    """
    import numpy as np

    raw_codes, values = dictionary_codes(column)
    names: list[str] = []
    index: dict[str, int] = {}
    remap = np.empty(len(values) + 1, dtype=np.int64)
    for i, value in enumerate(values):
        text = canonical_text(value, lower=False)
        if text is None:
            remap[i] = -1
            continue
        if text not in index:
            index[text] = len(names)
            names.append(text)
        remap[i] = index[text]
    remap[len(values)] = -1  # null
    return remap[np.where(raw_codes < 0, len(values), raw_codes)], names


class CategoryIndex:
    """Canonical category names of one column across record batches: ids in first-seen order.

    ``encode`` turns a batch's column into int64 ids (``-1`` for missing: null, NaN, blank) that stay
    the same for the whole stream, so counts can be summed batch by batch.

    Args:
        lower: Lower-case the canonical text (labels) or keep it (categories).
        missing_name: Give missing values an id of their own, named so (bias ``missing_sensitive:
            group``); default: ``-1``.
        limit: Raise :class:`OverflowError` as soon as more than this many distinct names are seen
            (callers turn it into a value-free input error), so memory stays bounded.
    """

    _MISSING = object()

    def __init__(self, *, lower: bool = False, missing_name: str | None = None, limit: int | None = None) -> None:
        self.lower = lower
        self.missing_name = missing_name
        self.limit = limit
        self.names: list[str] = []
        self._ids: dict[Any, int] = {}

    def __len__(self) -> int:
        return len(self.names)

    @property
    def missing_id(self) -> int | None:
        """Id of the missing values' own category (``missing_name`` set and some seen), else None."""
        return self._ids.get(self._MISSING)

    @classmethod
    def from_names(cls, names: Sequence[str], *, missing_id: int | None = None, lower: bool = False,
                   missing_name: str | None = None, limit: int | None = None) -> CategoryIndex:
        """An index holding ``names`` as ids 0..n-1 (``missing_id``: the missing values' category), as
        rebuilt from a partition summary; OverflowError past ``limit``."""
        out = cls(lower=lower, missing_name=missing_name, limit=limit)
        for i, name in enumerate(names):
            out._id(cls._MISSING if i == missing_id else str(name), str(name))
        if len(out.names) != len(names):
            raise ValueError("duplicate category names")
        return out

    def _id(self, key: Any, name: str) -> int:
        found = self._ids.get(key)
        if found is None:
            if self.limit is not None and len(self.names) >= self.limit:
                raise OverflowError(self.limit)
            found = self._ids[key] = len(self.names)
            self.names.append(name)
        return found

    def encode(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """int64 ids of the column's values (``-1`` for missing unless ``missing_name`` is set)."""
        import numpy as np

        raw_codes, values = dictionary_codes(column)
        remap = np.empty(len(values) + 1, dtype=np.int64)
        for i, value in enumerate(values):
            text = canonical_text(value, lower=self.lower)
            remap[i] = -1 if text is None else self._id(text, text)
        remap[len(values)] = -1  # raw code -1 (null) indexes the last entry
        codes = remap[raw_codes]
        if self.missing_name is not None:
            missing = codes < 0
            if missing.any():
                codes[missing] = self._id(self._MISSING, self.missing_name)
        return codes

    def encode_values(self, values: Sequence[Any]) -> np.ndarray:
        """:meth:`encode` of a few Python values (``column.to_pylist()``): same ids, without the
        per-call cost of pyarrow's dictionary encoding (wide tables: one call per column)."""
        import numpy as np

        texts = [canonical_text(v, lower=self.lower) for v in values]
        codes = [-1 if t is None else self._id(t, t) for t in texts]
        if self.missing_name is not None and None in texts:
            missing_id = self._id(self._MISSING, self.missing_name)
            codes = [missing_id if c < 0 else c for c in codes]
        return np.array(codes, dtype=np.int64)


# --- Value sketch: exact counts of float values until there are too many distinct ones -------------

#: Default number of bins a value sketch keeps (per feature and table in drift, per grouping in bias).
#: At least 10,000, so samples scipy tests exactly (``ks_2samp`` on <= 10,000 values) stay exact.
DEFAULT_SKETCH_BINS = 16_384
_SIGN = 1 << 63


def order_keys(values: np.ndarray) -> np.ndarray:
    """uint64 keys that sort as the float64 values do (-0.0 and 0.0 share a key); values are finite."""
    import numpy as np

    bits = (np.asarray(values, dtype=np.float64) + 0.0).view(np.uint64)  # + 0.0 turns -0.0 into 0.0
    sign = np.uint64(_SIGN)
    return np.where(bits & sign, ~bits, bits | sign)


def key_values(keys: np.ndarray) -> np.ndarray:
    """The float64 values of :func:`order_keys` keys."""
    import numpy as np

    keys = np.asarray(keys, dtype=np.uint64)
    sign = np.uint64(_SIGN)
    return np.where(keys & sign, keys ^ sign, ~keys).view(np.float64)


class ValueSketch:
    """Counts of float values per group in at most about ``max_bins`` bins, merged batch by batch.

    A bin is a run of consecutive float64 values: ``order_keys(value) >> shift``. While the values
    have at most ``max_bins`` distinct (group, value) pairs, ``shift`` is 0 and every bin is one
    value: the sketch is the exact frequency table. Beyond that, ``shift`` grows just enough to keep
    at most ``max_bins // 2`` occupied bins (bins adapt to where the data is: only occupied bins are
    stored). Each bin also keeps the smallest and largest key it holds (``lo``, ``hi``): a bin with
    ``lo == hi`` still holds a single value, exactly. Statistics computed from a coarse sketch
    carry an error bound derived from the multi-valued bins (see the drift and bias gates).

    Memory is O(max_bins) whatever the number of rows: a batch is reduced to its bins, and the
    reduced batches are merged (and, if needed, coarsened) once they hold ``max_bins`` entries.
    """

    def __init__(self, max_bins: int = DEFAULT_SKETCH_BINS) -> None:
        import numpy as np

        self.max_bins = max(int(max_bins), 16)
        self.shift = 0
        self.group = np.empty(0, dtype=np.int64)
        self.key = np.empty(0, dtype=np.uint64)
        self.lo = np.empty(0, dtype=np.uint64)
        self.hi = np.empty(0, dtype=np.uint64)
        self.count = np.empty(0, dtype=np.int64)
        self._chunks: list[tuple[np.ndarray, ...]] = []
        self._pending = 0

    @property
    def total(self) -> int:
        self.flush()
        return int(self.count.sum())

    def add(self, values: np.ndarray, groups: np.ndarray | None = None) -> None:
        """Count finite float values (NaN must be removed first), each in its group (default 0)."""
        import numpy as np

        n = len(values)
        if n == 0:
            return
        raw = order_keys(values)
        if groups is None:
            raw.sort()
            g = np.zeros(n, dtype=np.int64)
            k = raw >> np.uint64(self.shift)
            new = np.empty(n, dtype=bool)
            new[0] = True
            np.not_equal(k[1:], k[:-1], out=new[1:])
        else:
            order = np.lexsort((raw, groups))
            raw, g = raw[order], np.asarray(groups, dtype=np.int64)[order]
            k = raw >> np.uint64(self.shift)
            new = np.empty(n, dtype=bool)
            new[0] = True
            new[1:] = (k[1:] != k[:-1]) | (g[1:] != g[:-1])
        starts = np.flatnonzero(new)
        ends = np.append(starts[1:], n)
        self._chunks.append((g[starts], k[starts], raw[starts], raw[ends - 1], ends - starts))
        self._pending += len(starts)
        if self._pending >= self.max_bins:
            self.flush()

    def flush(self) -> None:
        """Merge the reduced batches into the sketch (coarsening it if it grew past ``max_bins``)."""
        import numpy as np

        if not self._chunks:
            return
        parts = [(self.group, self.key, self.lo, self.hi, self.count), *self._chunks]
        self._chunks, self._pending = [], 0
        g, k, lo, hi, c = (np.concatenate([p[i] for p in parts]) for i in range(5))
        order = np.lexsort((k, g))
        self._reduce(g[order], k[order], lo[order], hi[order], c[order])
        if len(self.key) > self.max_bins:
            self._coarsen()

    def _reduce(self, g: np.ndarray, k: np.ndarray, lo: np.ndarray, hi: np.ndarray, c: np.ndarray) -> None:
        """Sum entries sorted by (group, key) that share both."""
        import numpy as np

        n = len(k)
        if n == 0:
            self.group, self.key, self.lo, self.hi, self.count = g, k, lo, hi, c
            return
        new = np.empty(n, dtype=bool)
        new[0] = True
        new[1:] = (k[1:] != k[:-1]) | (g[1:] != g[:-1])
        starts = np.flatnonzero(new)
        if len(starts) == n:
            self.group, self.key, self.lo, self.hi, self.count = g, k, lo, hi, c
            return
        self.group, self.key = g[starts], k[starts]
        self.lo = np.minimum.reduceat(lo, starts)
        self.hi = np.maximum.reduceat(hi, starts)
        self.count = np.add.reduceat(c, starts)

    def _distinct(self, extra: int) -> int:
        import numpy as np

        k = self.key >> np.uint64(extra)
        return 1 + int(np.count_nonzero((k[1:] != k[:-1]) | (self.group[1:] != self.group[:-1])))

    def _coarsen(self, target: int | None = None) -> None:
        """Smallest extra shift that leaves at most ``target`` (default ``max_bins // 2``) bins (binary search)."""
        import numpy as np

        target = self.max_bins // 2 if target is None else target
        low, high = 1, 63 - self.shift  # a shift of 63 leaves two bins per group (sign of the value)
        if high < 1:
            return
        while low < high:
            mid = (low + high) // 2
            if self._distinct(mid) <= target:
                high = mid
            else:
                low = mid + 1
        self.shift += low
        self._reduce(self.group, self.key >> np.uint64(low), self.lo, self.hi, self.count)

    def coarsened_to(self, shift: int) -> tuple[np.ndarray, ...]:
        """(group, key, lo, hi, count) with bins of ``shift`` (>= this sketch's), sorted by (group, key)."""
        import numpy as np

        self.flush()
        extra = shift - self.shift
        if extra <= 0:
            return self.group, self.key, self.lo, self.hi, self.count
        saved = (self.group, self.key, self.lo, self.hi, self.count)
        self._reduce(self.group, self.key >> np.uint64(extra), self.lo, self.hi, self.count)
        out = (self.group, self.key, self.lo, self.hi, self.count)
        self.group, self.key, self.lo, self.hi, self.count = saved
        return out

    # --- partition summaries: JSON state and merging ---------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Plain JSON state: shift and, per occupied bin, group, smallest / largest key and count
        (little-endian arrays, base64, zlib-compressed past a few hundred bytes; a bin's key is ``lo >> shift``)."""
        self.flush()
        return {"max_bins": self.max_bins, "shift": self.shift,
                **{name: _pack(getattr(self, name), "<i8" if name in ("group", "count") else "<u8")
                   for name in ("group", "lo", "hi", "count")}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ValueSketch:
        """Inverse of :meth:`to_json` (ValueError on malformed state)."""
        import numpy as np

        out = cls(int(d["max_bins"]))
        out.shift = int(d["shift"])
        if not 0 <= out.shift <= 63:
            raise ValueError("sketch shift out of range")
        out.group, out.count = unpacked(d["group"], "<i8"), unpacked(d["count"], "<i8")
        out.lo, out.hi = unpacked(d["lo"], "<u8"), unpacked(d["hi"], "<u8")
        if not len(out.group) == len(out.lo) == len(out.hi) == len(out.count):
            raise ValueError("sketch arrays differ in length")
        out.key = out.lo >> np.uint64(out.shift)
        return out

    def merged(self, other: ValueSketch, group_map: tuple[np.ndarray, np.ndarray] | None = None) -> ValueSketch:
        """A sketch of both sketches' values (neither is changed).

        The result's shift is the smallest at least both shifts that leaves at most ``max_bins`` bins,
        and a sketch at a given shift is a function of the values alone, so merging is associative
        and commutative: any order of merges gives the same bins. (A sketch streamed on one node
        coarsens to ``max_bins // 2``, so in the coarse regime its bins differ; both carry their
        error bounds.) ``group_map`` renumbers the groups of (self, other) first.
        """
        import numpy as np

        if other.max_bins != self.max_bins:
            raise ValueError("sketches with different max_bins do not merge")
        shift = max(self.shift, other.shift)
        parts = []
        for i, sketch in enumerate((self, other)):
            g, k, lo, hi, c = sketch.coarsened_to(shift)
            if group_map is not None:
                g = group_map[i][g] if len(g) else g
            parts.append((g, k, lo, hi, c))
        out = ValueSketch(self.max_bins)
        out.shift = shift
        g, k, lo, hi, c = (np.concatenate([p[i] for p in parts]) for i in range(5))
        keep = g >= 0
        g, k, lo, hi, c = g[keep], k[keep], lo[keep], hi[keep], c[keep]
        order = np.lexsort((k, g))
        out._reduce(g[order], k[order], lo[order], hi[order], c[order])
        if len(out.key) > out.max_bins:
            out._coarsen(out.max_bins)
        return out

    def regrouped(self, group_map: np.ndarray) -> ValueSketch:
        """This sketch with its groups renumbered (``-1``: dropped), in canonical (group, key) order."""
        empty = ValueSketch(self.max_bins)
        empty.shift = self.shift
        return self.merged(empty, (group_map, group_map))


#: Arrays packed at most this many bytes are stored uncompressed (a wide table's sketches hold a
#: few values each: zlib would add its header and cost a call per array), marked by a leading "=".
_RAW_PACK_BYTES = 256


def _pack(values: np.ndarray, dtype: str) -> str:
    import base64
    import zlib

    import numpy as np

    raw = np.ascontiguousarray(values, dtype=dtype).tobytes()
    if len(raw) <= _RAW_PACK_BYTES:
        return "=" + base64.b64encode(raw).decode()
    return base64.b64encode(zlib.compress(raw, 6)).decode()


def unpacked(text: str, dtype: str) -> np.ndarray:
    """An array of a sketch's JSON state (see :meth:`ValueSketch.to_json`); ValueError if malformed."""
    import base64
    import zlib

    import numpy as np

    text = str(text)
    if text.startswith("="):  # "=" never starts base64 text: an uncompressed array
        raw = base64.b64decode(text[1:], validate=True)
    else:
        raw = zlib.decompress(base64.b64decode(text, validate=True))
    return np.frombuffer(raw, dtype=dtype).astype(np.int64 if "i" in dtype else np.uint64)


def packed_slices(values: np.ndarray, ends: Sequence[int], dtype: str) -> list[str]:
    """What :meth:`ValueSketch.to_json` writes for each slice ``values[ends[i]:ends[i + 1]]``, converted
    once for all slices (a wide table's 100,000 sketches hold a few values each)."""
    import base64

    import numpy as np

    data = np.ascontiguousarray(values, dtype=dtype)
    raw, size = data.tobytes(), data.itemsize
    encode = base64.b64encode
    out = []
    for start, end in itertools.pairwise(ends):
        if (end - start) * size <= _RAW_PACK_BYTES:
            out.append("=" + encode(raw[start * size:end * size]).decode())
        else:
            out.append(_pack(data[start:end], dtype))
    return out


def unpacked_many(texts: Sequence[str], dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`unpacked` of each text, as one array of all values and each text's number of values
    (decoded with one array conversion: a wide table's 100,000 sketches). ValueError if one is malformed."""
    import binascii

    import numpy as np

    size = np.dtype(dtype).itemsize
    chunks, sizes = [], []
    for text in texts:
        text = str(text)
        if text.startswith("="):
            raw = binascii.a2b_base64(text[1:], strict_mode=True)
        else:
            raw = unpacked(text, dtype).astype(dtype).tobytes()
        if len(raw) % size:
            raise ValueError("packed array length is not a multiple of its item size")
        chunks.append(raw)
        sizes.append(len(raw) // size)
    values = np.frombuffer(b"".join(chunks), dtype=dtype).astype(np.int64 if "i" in dtype else np.uint64)
    return values, np.asarray(sizes, dtype=np.intp)
