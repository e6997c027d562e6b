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

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
def is_numeric(data_type: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_decimal(data_type)


class LabelCounter:
    """Counts of each label class (keys normalised to text so CSV and Parquet labels compare)."""

    def __init__(self, column: str, *, max_classes: int, uri: str):
        self.column = column
        self.max_classes = max_classes
        self.uri = uri
        self.counts: dict[str | None, int] = {}

    def update(self, batch: pa.RecordBatch) -> None:
        import pyarrow.compute as pc

        counted = pc.value_counts(batch.column(batch.schema.get_field_index(self.column)))
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


def float_matrix(batch: pa.RecordBatch, names: Sequence[str]) -> np.ndarray:
    """Columns ``names`` of a batch as a (columns x rows) float64 matrix, NaN for nulls.

    Columns of one type are cast in one call, so a wide table pays per type, not per column.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = batch.num_rows
    by_name = dict(zip(batch.schema.names, batch.columns))
    out = np.empty((len(names), n), dtype=np.float64)
    groups: dict[Any, list[int]] = {}
    for j, name in enumerate(names):
        groups.setdefault(by_name[name].type, []).append(j)
    for members in groups.values():
        arr = pa.concat_arrays([by_name[names[j]] for j in members]) if len(members) > 1 else by_name[names[members[0]]]
        values = pc.fill_null(arr.cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False)
        out[members] = values.reshape(len(members), n)
    return out


class RangeProfile:
    """Streaming min / max of numeric columns (the reference's ranges)."""

    def __init__(self, columns: Sequence[str]):
        self.columns = list(columns)
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}

    def update(self, batch: pa.RecordBatch) -> None:
        import numpy as np

        values = float_matrix(batch, self.columns)
        seen = ~np.isnan(values).all(axis=1)
        with np.errstate(invalid="ignore"):
            lows = np.where(seen[:, None], values, np.inf).min(axis=1, initial=np.inf, where=~np.isnan(values))
            highs = np.where(seen[:, None], values, -np.inf).max(axis=1, initial=-np.inf, where=~np.isnan(values))
        for name, low, high, ok in zip(self.columns, lows.tolist(), highs.tolist(), seen.tolist()):
            if not ok:
                continue
            self.low[name] = min(self.low.get(name, low), low)
            self.high[name] = max(self.high.get(name, high), high)


class OutOfRangeCounter:
    """Per column: values outside ``[low, high]`` (nulls and NaN are not counted either way)."""

    def __init__(self, bounds: dict[str, tuple[float, float]]):
        self.bounds = bounds
        self.outside: dict[str, int] = dict.fromkeys(bounds, 0)
        self.valid: dict[str, int] = dict.fromkeys(bounds, 0)

    def update(self, batch: pa.RecordBatch) -> None:
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
    elif pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_temporal(t):
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


def row_hashes(batch: pa.RecordBatch) -> np.ndarray:
    """One 64-bit hash per row, combining the column hashes in column order."""
    import numpy as np

    combined = np.full(batch.num_rows, np.uint64(0xCBF29CE484222325), dtype=np.uint64)
    shifted = np.empty_like(combined)
    mix, shift = np.uint64(_MIX), np.uint64(29)  # made once: a wide table runs this loop per column
    xor, multiply, right_shift = np.bitwise_xor, np.multiply, np.right_shift
    with np.errstate(over="ignore"):
        for hashed in _column_hashes(batch):
            xor(combined, hashed, out=combined)
            multiply(combined, mix, out=combined)
            right_shift(combined, shift, out=shifted)
            xor(combined, shifted, out=combined)
    return combined


#: Cells hashed in one call when columns of one type are laid end to end.
_MAX_CELLS_PER_HASH = 1 << 18


def _column_hashes(batch: pa.RecordBatch) -> list[np.ndarray]:
    """:func:`_column_hash` of every column, in column order, with the same values.

    The hash of a value depends on the value only, so columns of one plain type (signed integers,
    floats, text) are laid end to end and hashed in one call: a wide table pays the per-call cost
    per group of columns, not per column.
    """
    import pyarrow as pa

    n = batch.num_rows
    columns = batch.columns  # batch.column(i) costs more, per column
    out: list[Any] = [None] * batch.num_columns
    groups: dict[Any, list[int]] = {}
    plain: dict[Any, bool] = {}  # per distinct type, not per column
    for i, arr in enumerate(columns):
        t = arr.type
        grouped = plain.get(t)
        if grouped is None:
            grouped = plain[t] = bool(n) and (pa.types.is_signed_integer(t) or pa.types.is_floating(t)
                                              or pa.types.is_string(t) or pa.types.is_large_string(t))
        if grouped:
            groups.setdefault(t, []).append(i)
        else:
            out[i] = _column_hash(arr)
    per_call = max(1, _MAX_CELLS_PER_HASH // max(n, 1))
    for members in groups.values():
        for start in range(0, len(members), per_call):
            chunk = members[start:start + per_call]
            if len(chunk) == 1:
                out[chunk[0]] = _column_hash(columns[chunk[0]])
                continue
            hashed = _column_hash(pa.concat_arrays([columns[i] for i in chunk])).reshape(len(chunk), n)
            for j, i in enumerate(chunk):
                out[i] = hashed[j]
    return out


@dataclass
class DuplicateCounter:
    """Counts rows equal to an earlier row, in memory bounded by ``rows x 8 / partitions`` bytes.

    Hashes are buffered up to ``buffer_rows`` and then spilled to ``partitions`` temporary files by
    their top bits; :meth:`finish` counts each partition on its own.
    """

    columns: list[str] | None = None
    partitions: int = 64
    buffer_rows: int = 1 << 18
    rows: int = 0
    _buffer: list[Any] = field(default_factory=list)
    _buffered: int = 0
    _tmpdir: tempfile.TemporaryDirectory | None = None
    _files: list[Any] = field(default_factory=list)

    def update(self, batch: pa.RecordBatch) -> None:
        if self.columns is not None:
            batch = batch.select(self.columns)
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
    for name in columns:
        if name in policy.ranges:
            bounds[name] = policy.ranges[name]
            continue
        if reference is None or name not in reference.low:
            if reference is None:
                raise ConfigurationError(f"out_of_range: column '{name}' needs a range or a reference dataset")
            continue  # all-null in the reference: nothing to compare with
        low, high = reference.low[name], reference.high[name]
        pad = (high - low) * policy.margin
        bounds[name] = (low - pad, high + pad)
    return bounds


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
