"""Data-poisoning signals for the source gate, computed batch by batch in bounded memory.

Signals, each compared with a threshold from the policy:

* **label shift**: the label column's class distribution against a reference dataset, as the
  population stability index (PSI) or a chi-square test of homogeneity (p-value). Memory: one
  counter per class (capped by ``max_classes``). Label values never leave this module: results
  carry the index, the p-value and the number of classes only.
* **duplicate-row rate**: every row is reduced to a 64-bit hash (per-column hashes combined), the
  hashes are partitioned by their top bits into temporary files and each partition is counted on
  its own, so memory is about 8 bytes x rows / partitions, not the table. A false duplicate needs a
  64-bit collision (probability about rows^2 / 2^65).
* **out-of-range rate**: per numeric feature, the share of values outside the range seen in the
  reference (widened by ``margin``) or an explicit range from the policy.
* **volume change**: relative change of the row count against the reference.

The policy side (``PoisoningPolicy`` and its parts) is in :mod:`airflow_aisec.core.policy.sections.source`.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.source._columns import (
    BatchColumns,
    GroupColumns,
    float_matrix,
    positions_of,
    type_groups,
    view_of,
)
from airflow_aisec.core.gates.source._context import Context, finding
from airflow_aisec.core.policy.sections.source import OutOfRangePolicy
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from airflow_aisec.core.gates.source._origin import Target
    from airflow_aisec.core.gates.source._scan import Profile, Scan

#: Smallest share used in the PSI so that a class absent on one side gives a large, finite value.
PSI_EPSILON = 1e-4


# ------------------------------------------------------------------------------------------------
# Accumulators: update(batch) per streamed batch, then read the totals.
# ------------------------------------------------------------------------------------------------
class LabelCounter:
    """Counts of each label class (keys normalised to text so CSV and Parquet labels compare)."""

    reads_columns_view = True

    def __init__(self, column: str, *, max_classes: int, uri: str):
        self.column = column
        self.max_classes = max_classes
        self.uri = uri
        self.counts: dict[str | None, int] = {}

    def update(self, batch: pa.RecordBatch | BatchColumns | GroupColumns) -> None:
        import pyarrow.compute as pc

        view = view_of(batch)
        if isinstance(view, GroupColumns):
            values = view.column(list(view.names).index(self.column))  # one scan in C: no 100k-entry dict
        else:
            values = view.batch.column(view.batch.schema.get_field_index(self.column))
        counted = pc.value_counts(values)
        for value, count in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()):
            key = None if value is None else str(value)
            self.counts[key] = self.counts.get(key, 0) + int(count)
        if len(self.counts) > self.max_classes:
            raise InputDataError(
                f"{self.uri}: label column '{self.column}' has more than {self.max_classes} distinct values; "
                "label_shift needs a categorical label (raise label_shift.max_classes if intended)"
            )


@dataclass
class LabelShift:
    psi: float
    chi2_p_value: float | None
    classes: int
    new_classes: int
    missing_classes: int


def label_shift(data: dict[Any, int], reference: dict[Any, int], *, chi2: bool = True) -> LabelShift:
    """PSI and (when ``chi2``) the chi-square homogeneity p-value of two class-count tables.

    Raises:
        InputDataError: a side has no labelled row.
        ConfigurationError: ``chi2`` asked for but scipy (shipped with the ``gx`` extra) is missing.
    """
    import numpy as np

    keys = [k for k in dict.fromkeys([*reference, *data]) if data.get(k, 0) or reference.get(k, 0)]
    d = np.array([data.get(k, 0) for k in keys], dtype=float)
    r = np.array([reference.get(k, 0) for k in keys], dtype=float)
    if not keys or d.sum() == 0 or r.sum() == 0:
        raise InputDataError("label shift needs at least one labelled row in the data and in the reference")
    p = np.maximum(d / d.sum(), PSI_EPSILON)
    q = np.maximum(r / r.sum(), PSI_EPSILON)
    psi = float(np.sum((p - q) * np.log(p / q)))
    p_value: float | None = None
    if chi2 and len(keys) < 2:
        p_value = 1.0
    elif chi2:
        try:
            from scipy.stats import chi2_contingency
        except ImportError:
            raise ConfigurationError("label_shift method 'chi2' needs scipy (install airflow-aisec[gx])") from None
        p_value = float(chi2_contingency(np.vstack([d, r]), correction=False).pvalue)
    return LabelShift(
        psi=psi,
        chi2_p_value=p_value,
        classes=len(keys),
        new_classes=int(np.sum((d > 0) & (r == 0))),
        missing_classes=int(np.sum((d == 0) & (r > 0))),
    )


class RangeProfile:
    """Streaming min / max of numeric columns (the reference's ranges), and their count of values.

    Kept as arrays (a wide table's 100,000 columns cost no Python loop per batch); :attr:`low`,
    :attr:`high` (columns with a value only) and :attr:`valid` are dicts built once when read.
    """

    reads_columns_view = True

    def __init__(self, columns: Sequence[str]):
        import numpy as np

        self.columns = list(columns)
        self._low = np.full(len(self.columns), np.inf)
        self._high = np.full(len(self.columns), -np.inf)
        self._valid = np.zeros(len(self.columns), dtype=np.int64)
        self._dicts: tuple[dict[str, float], dict[str, float], dict[str, int]] | None = None

    def update(self, batch: pa.RecordBatch | BatchColumns | GroupColumns) -> None:
        import numpy as np

        values = float_matrix(batch, self.columns)
        present = ~np.isnan(values)
        counts = present.sum(axis=1)
        seen = counts > 0
        with np.errstate(invalid="ignore"):
            lows = np.where(seen[:, None], values, np.inf).min(axis=1, initial=np.inf, where=present)
            highs = np.where(seen[:, None], values, -np.inf).max(axis=1, initial=-np.inf, where=present)
        # As min(old, new) / max(old, new): the old value stays unless the new one is beyond it.
        np.copyto(self._low, lows, where=seen & (lows < self._low))
        np.copyto(self._high, highs, where=seen & (highs > self._high))
        self._valid += counts
        self._dicts = None

    def _as_dicts(self) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
        if self._dicts is None:
            valid = self._valid.tolist()
            seen = self._valid > 0
            names = [name for name, count in zip(self.columns, valid) if count]
            counts = dict(zip(self.columns, valid))
            if len(counts) < len(valid):  # a column named twice was counted twice, as it always was
                counts = dict.fromkeys(self.columns, 0)
                for name, count in zip(self.columns, valid):
                    counts[name] += count
            self._dicts = (dict(zip(names, self._low[seen].tolist())), dict(zip(names, self._high[seen].tolist())),
                           counts)
        return self._dicts

    @property
    def low(self) -> dict[str, float]:
        return self._as_dicts()[0]

    @property
    def high(self) -> dict[str, float]:
        return self._as_dicts()[1]

    @property
    def valid(self) -> dict[str, int]:
        return self._as_dicts()[2]


class OutOfRangeCounter:
    """Per column: values outside ``[low, high]`` (nulls and NaN are not counted either way)."""

    reads_columns_view = True

    def __init__(self, bounds: dict[str, tuple[float, float]]):
        self.bounds = bounds
        self.outside: dict[str, int] = dict.fromkeys(bounds, 0)
        self.valid: dict[str, int] = dict.fromkeys(bounds, 0)

    def update(self, batch: pa.RecordBatch | BatchColumns | GroupColumns) -> None:
        import numpy as np

        names = list(self.bounds)
        values = float_matrix(batch, names)
        limits = np.array([self.bounds[n] for n in names], dtype=np.float64).reshape(len(names), 2)
        valid = ~np.isnan(values)
        with np.errstate(invalid="ignore"):
            outside = valid & ((values < limits[:, :1]) | (values > limits[:, 1:]))
        for name, v, o in zip(names, valid.sum(axis=1).tolist(), outside.sum(axis=1).tolist()):
            self.valid[name] += v
            self.outside[name] += o

    def rates(self) -> dict[str, float]:
        return {n: (self.outside[n] / self.valid[n] if self.valid[n] else 0.0) for n in self.bounds}


# ------------------------------------------------------------------------------------------------
# Duplicate rows
# ------------------------------------------------------------------------------------------------
_MIX = 0x100000001B3  # FNV-1a 64-bit prime
_NULL_HASH = 0x9E3779B97F4A7C15


def _column_hash(arr: pa.Array) -> np.ndarray:
    """64-bit hash per value that depends on the value only (not on nulls elsewhere in the batch)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from pandas.util import hash_array

    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = pc.fill_null(arr.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False) + 0.0  # -0.0 -> 0.0
        values[np.isnan(values)] = np.nan  # one NaN bit pattern
        hashed = hash_array(values, categorize=False)
    elif pa.types.is_integer(t) or pa.types.is_boolean(t) or (pa.types.is_temporal(t) and t.bit_width in (32, 64)):
        if pa.types.is_temporal(t) and t.bit_width == 32:
            arr = arr.view(pa.int32())  # date32 and time32 have no cast to int64
        as_int = pa.int64() if not pa.types.is_boolean(t) else pa.int8()
        try:
            values = pc.fill_null(arr.cast(as_int), 0).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:  # uint64 beyond int64: hash the text form instead
            values = np.asarray(arr.cast(pa.string()).to_pylist(), dtype=object)
        hashed = hash_array(values, categorize=False)
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or \
            pa.types.is_large_binary(t) or pa.types.is_string_view(t):
        values = arr.to_numpy(zero_copy_only=False).astype(object, copy=False)  # the same str objects
        values[nulls] = ""
        hashed = hash_array(values, categorize=False)
    else:  # nested and other types: their text form is stable
        values = np.asarray([repr(v) for v in arr.to_pylist()], dtype=object)
        hashed = hash_array(values, categorize=False)
    hashed = hashed.astype(np.uint64, copy=True)
    hashed[nulls] = np.uint64(_NULL_HASH)
    return hashed


#: From this many columns a row's column hashes are summed after a position-salted mix (a few numpy
#: calls over all cells) instead of folded one column after the other (numpy calls per column).
WIDE_ROW_COLUMNS = 1024
_MIX1, _MIX2 = 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53  # murmur3 fmix64


def row_hashes(batch: pa.RecordBatch | BatchColumns | GroupColumns) -> np.ndarray:
    """One 64-bit hash per row, combining the column hashes in column order.

    Narrow batches fold them column after column (FNV-style multiply and xor-shift). Batches of
    ``WIDE_ROW_COLUMNS`` columns or more add ``mix(hash ^ salt of the column's position)`` over the
    columns: ``mix`` is a bijection, so rows differing in one column never collide, and otherwise a
    false duplicate needs a 64-bit collision, as with the fold. A table's batches all have the same
    columns, so one table is always hashed one way.
    """
    import numpy as np

    hashes = _hash_matrix(batch)
    with np.errstate(over="ignore"):
        if len(hashes) >= WIDE_ROW_COLUMNS:
            hashes ^= _position_salts(len(hashes))[:, None]
            return _mix64(_mix64(hashes).sum(axis=0, dtype=np.uint64))
        combined = np.full(hashes.shape[1], np.uint64(0xCBF29CE484222325), dtype=np.uint64)
        shifted = np.empty_like(combined)
        mix, shift = np.uint64(_MIX), np.uint64(29)  # made once: this loop runs per column
        xor, multiply, right_shift = np.bitwise_xor, np.multiply, np.right_shift
        for hashed in hashes:
            xor(combined, hashed, out=combined)
            multiply(combined, mix, out=combined)
            right_shift(combined, shift, out=shifted)
            xor(combined, shifted, out=combined)
    return combined


def _mix64(values: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser, in place (a bijection of uint64)."""
    import numpy as np

    shift = np.uint64(33)
    with np.errstate(over="ignore"):
        values ^= values >> shift
        values *= np.uint64(_MIX1)
        values ^= values >> shift
        values *= np.uint64(_MIX2)
        values ^= values >> shift
    return values


@functools.lru_cache(maxsize=4)
def _position_salts(columns: int) -> np.ndarray:
    """A distinct pseudo-random 64-bit salt per column position (read-only: it is cached)."""
    import numpy as np

    with np.errstate(over="ignore"):
        salts = _mix64(np.arange(1, columns + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    salts.flags.writeable = False
    return salts


#: Cells hashed in one call when columns of one type are laid end to end.
_MAX_CELLS_PER_HASH = 1 << 18


def _hash_matrix(batch: pa.RecordBatch | BatchColumns | GroupColumns) -> np.ndarray:
    """:func:`_column_hash` of every column, as the rows of one (columns x rows) matrix.

    The hash of a value depends on the value only, so columns of one plain type (signed integers,
    floats, text) are laid end to end and hashed in one call: a wide table pays the per-call cost
    per group of columns, not per column.
    """
    import numpy as np
    import pyarrow as pa

    view = view_of(batch)
    n = view.num_rows
    if isinstance(view, GroupColumns):
        return _group_hash_matrix(view)
    columns = view.columns
    out = np.empty((len(columns), n), dtype=np.uint64)
    if not n:
        return out
    groups: list[np.ndarray] = []
    for t, members in type_groups(view.types):
        if (pa.types.is_signed_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t)
                  or pa.types.is_large_string(t)):  # the type id fixes these types
            groups.append(members)
            continue
        for i in members.tolist():
            out[i] = _column_hash(columns[i])
    per_call = max(1, _MAX_CELLS_PER_HASH // max(n, 1))
    for members in groups:
        for start in range(0, len(members), per_call):
            chunk = members[start:start + per_call]
            if len(chunk) == 1:
                out[chunk[0]] = _column_hash(columns[chunk[0]])
                continue
            out[chunk] = _column_hash(pa.concat_arrays([columns[i] for i in chunk.tolist()])).reshape(len(chunk), n)
    return out


def _group_hash_matrix(view: GroupColumns) -> np.ndarray:
    """:func:`_hash_matrix` of a batch held as same-typed groups: each group's cells hashed in calls
    of up to ``_MAX_CELLS_PER_HASH`` cells, straight into the rows of its columns."""
    import numpy as np
    import pyarrow as pa

    n = view.num_rows
    out = np.empty((len(view.names), n), dtype=np.uint64)
    if not n:
        return out
    per_call = max(1, _MAX_CELLS_PER_HASH // n)
    for t, where, cells in view.groups:
        # A value's hash depends on it alone for these types (an unsigned integer's does not: a
        # column with one beyond int64 is hashed as text), so they may be hashed many columns at once.
        together = (pa.types.is_signed_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t)
                    or pa.types.is_large_string(t) or pa.types.is_boolean(t) or pa.types.is_null(t))
        step = per_call if together else 1
        for start in range(0, len(where), step):
            chunk = where[start:start + step]
            out[chunk] = _column_hash(cells.slice(start * n, len(chunk) * n)).reshape(len(chunk), n)
    return out


@dataclass
class DuplicateCounter:
    """Counts rows equal to an earlier row, in memory bounded by ``rows x 8 / partitions`` bytes.

    Hashes are buffered up to ``buffer_rows`` and then spilled to ``partitions`` temporary files by
    their top bits; :meth:`finish` counts each partition on its own.
    """

    reads_columns_view = True  # not a field: no annotation

    columns: list[str] | None = None
    partitions: int = 64
    buffer_rows: int = 1 << 18
    rows: int = 0
    _buffer: list[Any] = field(default_factory=list)
    _buffered: int = 0
    _tmpdir: tempfile.TemporaryDirectory | None = None
    _files: list[Any] = field(default_factory=list)

    def update(self, batch: pa.RecordBatch | BatchColumns | GroupColumns) -> None:
        if self.columns is not None:
            view = view_of(batch)
            batch = (view.select(positions_of(view, self.columns)) if isinstance(view, GroupColumns)
                     else view.batch.select(self.columns))
        hashes = row_hashes(batch)
        self.rows += len(hashes)
        self._buffer.append(hashes)
        self._buffered += len(hashes)
        if self._buffered >= self.buffer_rows:
            self._spill()

    def _spill(self) -> None:
        import numpy as np

        if not self._buffer:
            return
        if self._tmpdir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="aisec-dups-")
            self._files = [
                open(os.path.join(self._tmpdir.name, f"p{i:03d}.u64"), "wb")  # noqa: SIM115 - closed in finish
                for i in range(self.partitions)
            ]
        hashes = np.sort(np.concatenate(self._buffer))
        self._buffer, self._buffered = [], 0
        shift = np.uint64(64 - int(math.log2(self.partitions)))
        part = (hashes >> shift).astype(np.int64)
        bounds = np.searchsorted(part, np.arange(self.partitions + 1))
        for i in range(self.partitions):
            lo, hi = bounds[i], bounds[i + 1]
            if hi > lo:
                hashes[lo:hi].tofile(self._files[i])

    def finish(self) -> int:
        """Number of duplicate rows (rows minus distinct rows)."""
        import numpy as np

        try:
            if self._tmpdir is None:
                distinct = len(np.unique(np.concatenate(self._buffer))) if self._buffer else 0
                self._buffer = []
                return self.rows - distinct
            self._spill()
            distinct = 0
            for fh in self._files:
                fh.close()
                part = np.fromfile(fh.name, dtype=np.uint64)
                distinct += len(np.unique(part))
                del part
            return self.rows - distinct
        finally:
            self.close()

    def close(self) -> None:
        for fh in self._files:
            if not fh.closed:
                fh.close()
        self._files = []
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


def resolve_bounds(
    policy: OutOfRangePolicy,
    columns: Sequence[str],
    reference: RangeProfile | None,
) -> dict[str, tuple[float, float]]:
    """Bounds per column: explicit range, else the reference's min/max widened by the margin."""
    bounds: dict[str, tuple[float, float]] = {}
    lows, highs = (reference.low, reference.high) if reference is not None else ({}, {})  # once, not per column
    for name in columns:
        if name in policy.ranges:
            bounds[name] = policy.ranges[name]
            continue
        if reference is None or name not in lows:
            if reference is None:
                raise ConfigurationError(f"out_of_range: column '{name}' needs a range or a reference dataset")
            continue  # all-null in the reference: nothing to compare with
        low, high = lows[name], highs[name]
        pad = (high - low) * policy.margin
        bounds[name] = (low - pad, high + pad)
    return bounds


def within_own_ranges(policy: OutOfRangePolicy, columns: Sequence[str], profile: RangeProfile,
                      explicit: OutOfRangeCounter) -> OutOfRangeCounter:
    """Out-of-range counts of a table whose reference is the table itself (profiled in the same pass).

    No value lies outside its own column's ``[min, max]``, nor outside that range widened by a
    margin >= 0 (rounding is monotone, and a NaN bound, from ``inf * 0``, compares false), so a
    column bounded by the reference has 0 values outside and ``profile.valid`` values; only the
    columns with an explicit range were counted value by value (``explicit``).
    """
    counter = OutOfRangeCounter(resolve_bounds(policy, columns, profile))
    valid = profile.valid
    for name in counter.bounds:
        if name in explicit.bounds:
            counter.valid[name], counter.outside[name] = explicit.valid[name], explicit.outside[name]
        else:
            counter.valid[name] = valid[name]
    return counter


def poisoning_findings(ctx: Context, target: Target, scan: Scan, duplicate_rows: int | None,
                       reference: Profile | None, metrics: dict[str, Any]) -> None:
    """Compare one scanned dataset with the reference profile and the thresholds of ``source.poisoning``."""
    poisoning = ctx.section.poisoning
    if poisoning is None:
        return
    rows = scan.rows
    ls = poisoning.label_shift
    if ls is not None and scan.labels is not None and reference is not None and reference.labels is not None:
        # scipy (~1 s to import) only when the chi-square test is the configured method.
        shift = label_shift(scan.labels.counts, reference.labels.counts, chi2=ls.method == "chi2")
        metrics["label_shift"] = {"psi": round(shift.psi, 6), "classes": shift.classes,
                                  "new_classes": shift.new_classes, "missing_classes": shift.missing_classes}
        if shift.chi2_p_value is not None:
            metrics["label_shift"]["chi2_p_value"] = shift.chi2_p_value
        if ls.method == "psi" and shift.psi > ls.max_psi:
            ctx.findings.append(finding(
                "label_shift",
                f"{target.uri}: label '{ls.column}' distribution shifted from the reference: "
                f"PSI {shift.psi:.4f} > {ls.max_psi} ({shift.new_classes} new class(es))",
                count=shift.classes, uri=target.uri, column=ls.column, method="psi",
                psi=round(shift.psi, 6), max_psi=ls.max_psi, new_classes=shift.new_classes,
            ))
        if ls.method == "chi2" and shift.chi2_p_value is not None and shift.chi2_p_value < ls.min_p_value:
            ctx.findings.append(finding(
                "label_shift",
                f"{target.uri}: label '{ls.column}' distribution differs from the reference: "
                f"chi-square p={shift.chi2_p_value:.3g} < {ls.min_p_value}",
                count=shift.classes, uri=target.uri, column=ls.column, method="chi2",
                p_value=shift.chi2_p_value, min_p_value=ls.min_p_value, new_classes=shift.new_classes,
            ))
    dup = poisoning.duplicates
    if dup is not None and duplicate_rows is not None:
        rate = duplicate_rows / rows
        metrics["duplicate_rows"] = duplicate_rows
        metrics["duplicate_rate"] = round(rate, 6)
        if rate > dup.max_rate:
            ctx.findings.append(finding(
                "duplicate_rate",
                f"{target.uri}: {rate:.2%} duplicate rows ({duplicate_rows} of {rows}), max {dup.max_rate:.2%}",
                count=duplicate_rows, uri=target.uri, rate=round(rate, 6), max_rate=dup.max_rate,
                columns=dup.columns,
            ))
    oor = poisoning.out_of_range
    if oor is not None and scan.out_of_range is not None:
        counter = scan.out_of_range
        rates = counter.rates()
        metrics["out_of_range_rate"] = {k: round(v, 6) for k, v in rates.items()}
        for name, rate in rates.items():
            if rate > oor.max_rate:
                basis = "policy range" if name in oor.ranges else "reference range"
                ctx.findings.append(finding(
                    "out_of_range",
                    f"{target.uri}: column '{name}': {rate:.2%} of values outside the {basis} "
                    f"({counter.outside[name]} of {counter.valid[name]}), max {oor.max_rate:.2%}",
                    count=counter.outside[name], uri=target.uri, column=name, rate=round(rate, 6),
                    max_rate=oor.max_rate,
                ))
    if poisoning.volume is not None and reference is not None:
        change = (rows - reference.rows) / reference.rows
        metrics["volume_change"] = round(change, 6)
        if abs(change) > poisoning.volume.max_change:
            ctx.findings.append(finding(
                "volume_change",
                f"{target.uri}: row count changed by {change:+.1%} against the reference "
                f"({rows} vs {reference.rows}; max ±{poisoning.volume.max_change:.0%})",
                count=rows, uri=target.uri, rows=rows, reference_rows=reference.rows,
                change=round(change, 6), max_change=poisoning.volume.max_change,
            ))
