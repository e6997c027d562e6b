"""Per-feature drift statistics accumulated batch by batch: numeric (quantile-bin PSI, KS) and
categorical (PSI, unseen categories).

Every accumulator holds counts, never rows: a numeric feature keeps two
:class:`~airflow_aisec.core.stats.ValueSketch` (reference, current) and its bin counts, a categorical
one a :class:`~airflow_aisec.core.stats.CategoryIndex` and two count vectors. Peak memory depends on
the number of features, ``sketch_bins`` and the batch size, not on the number of rows.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.drift._statistics import (
    KS_EXACT_MAX_N,
    OrderStatistics,
    counts_at_or_below,
    ks_asymptotic_pvalue,
    ks_from_sketches,
    lerp,
    psi,
    quantile_ranks,
)
from airflow_aisec.core.policy.sections.drift import DriftPolicy
from airflow_aisec.core.stats import CategoryIndex, ValueSketch, json_float, key_values
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

#: Columns of at most this many values are encoded in Python (same ids as pyarrow's path).
SMALL_COLUMN = 64
#: Categories shown by name in the report at most (the rest are summed as "other").
REPORT_TOP_CATEGORIES = 15


def feature_kind(dtype: pa.DataType, forced: bool) -> str | None:
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if forced:
        return "categorical"
    if pa.types.is_boolean(dtype) or pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "categorical"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if pa.types.is_temporal(dtype):
        return "numeric"
    return None


def numeric_values(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 values, NaN for null and non-finite (temporal types as their integer ticks)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_temporal(arr.type):
        arr = pc.cast(arr, pa.int64()) if not pa.types.is_date32(arr.type) else pc.cast(arr, pa.int32())
    values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
    values[~np.isfinite(values)] = np.nan
    return values


def scipy_ks(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """``scipy.stats.ks_2samp`` (statistic, p-value); scipy's own fallback warnings are not shown."""
    import warnings

    from scipy.stats import ks_2samp  # heavy: imported only when a numeric feature is checked

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "exact calculation unsuccessful": scipy falls back
        result = ks_2samp(ref, cur)
    return float(result.statistic), float(result.pvalue)


class NumericFeature:
    """PSI on reference-quantile bins and the two-sample KS test, from streamed counts.

    Protocol (driven by :mod:`._evaluate`): :meth:`add_reference` for every reference batch, then
    :meth:`end_reference`; while :attr:`pending`, one more pass of :meth:`rescan` over the reference
    and :meth:`end_rescan` (only when the reference had more than ``sketch_bins`` distinct values);
    then :meth:`add_current` for every current batch, and :meth:`stats`.
    """

    kind = "numeric"

    def __init__(self, name: str, policy: DriftPolicy) -> None:
        self.name = name
        self.policy = policy
        self.ref = ValueSketch(policy.sketch_bins)
        self.cur = ValueSketch(policy.sketch_bins)
        self.ref_rows = self.cur_rows = self.ref_missing = self.cur_missing = 0
        self.edges: np.ndarray | None = None
        self.ref_bins: np.ndarray | None = None
        self.cur_bins: np.ndarray | None = None
        self._order: OrderStatistics | None = None
        self._ranks: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._count: np.ndarray | None = None

    def add_reference(self, column: pa.ChunkedArray | pa.Array) -> None:
        self.add_reference_values(numeric_values(column))

    def add_reference_values(self, values: np.ndarray) -> None:
        """Like :meth:`add_reference`, for float64 values with NaN for missing."""
        import numpy as np

        ok = values[~np.isnan(values)]
        self.ref_rows += len(values)
        self.ref_missing += len(values) - len(ok)
        self.ref.add(ok)

    def end_reference(self) -> None:
        """Locate the quantile edges (exactly; :attr:`pending` if that takes another pass)."""
        import numpy as np

        n = self.ref.total
        if n == 0:
            raise InputDataError(f"feature '{self.name}' has no values in the reference table")
        prev_i, next_i, gamma = quantile_ranks(n, self.policy.bins)
        ranks, inverse = np.unique(np.concatenate((prev_i, next_i)), return_inverse=True)
        self._ranks = (inverse[: len(prev_i)], inverse[len(prev_i):], gamma)
        self._order = OrderStatistics(self.ref.coarsened_to(self.ref.shift), ranks, self.policy.sketch_bins)
        self._edges_if_known()

    def _edges_if_known(self) -> None:
        import numpy as np

        assert self._order is not None and self._ranks is not None
        if not self._order.done:
            return
        values = self._order.values
        a_idx, b_idx, gamma = self._ranks
        self.edges = np.unique(lerp(values[a_idx], values[b_idx], gamma))
        self.cur_bins = np.zeros(len(self.edges) + 1, dtype=np.int64)
        at_or_below = counts_at_or_below(self.ref.coarsened_to(self.ref.shift), self.edges)
        if at_or_below is not None:
            self.ref_bins = np.diff(np.concatenate(([0], at_or_below, [self.ref.total])))
        else:
            self._count = np.zeros(len(self.edges) + 1, dtype=np.int64)
        self._order = None

    @property
    def pending(self) -> bool:
        """True while the reference must be read again (edges or bin counts not known yet)."""
        return self.ref_bins is None

    def rescan(self, column: pa.ChunkedArray | pa.Array) -> None:
        import numpy as np

        values = numeric_values(column)
        ok = values[~np.isnan(values)]
        if self._order is not None:
            self._order.add(ok)
        elif self._count is not None:
            self._count += np.bincount(np.searchsorted(self.edges, ok, side="left"), minlength=len(self._count))

    def end_rescan(self) -> None:
        if self._order is not None:
            self._order.end_pass()
            self._edges_if_known()
        elif self._count is not None:
            self.ref_bins, self._count = self._count, None

    def add_current(self, column: pa.ChunkedArray | pa.Array) -> None:
        self.add_current_values(numeric_values(column))

    def add_current_values(self, values: np.ndarray) -> None:
        """Like :meth:`add_current`, for float64 values with NaN for missing."""
        import numpy as np

        assert self.edges is not None and self.cur_bins is not None
        ok = values[~np.isnan(values)]
        self.cur_rows += len(values)
        self.cur_missing += len(values) - len(ok)
        self.cur.add(ok)
        if len(ok):
            self.cur_bins += np.bincount(np.searchsorted(self.edges, ok, side="left"), minlength=len(self.cur_bins))

    def _ks(self, cache: MutableMapping[tuple[int, int, float], tuple[float, float]]) -> dict[str, Any]:
        """KS statistic and p-value, equal to ``scipy.stats.ks_2samp`` (method ``auto``) when exact."""
        import numpy as np

        n1, n2 = self.ref.total, self.cur.total
        shift = max(self.ref.shift, self.cur.shift)
        ref, cur = self.ref.coarsened_to(shift), self.cur.coarsened_to(shift)
        d_low, d_high = ks_from_sketches(ref, cur)
        out: dict[str, Any] = {}
        if max(n1, n2) <= KS_EXACT_MAX_N and shift == 0:
            # scipy's exact p-value depends on (n1, n2, d) only: compute it once per combination.
            key = (n1, n2, d_low)
            if key not in cache:
                cache[key] = scipy_ks(np.repeat(key_values(ref[1]), ref[4]), np.repeat(key_values(cur[1]), cur[4]))
            statistic, pvalue = cache[key]
        else:
            statistic, pvalue = d_low, ks_asymptotic_pvalue(d_low, n1, n2)
        out["ks_statistic"] = json_float(statistic)
        out["ks_pvalue"] = json_float(pvalue)
        out["ks_error_bound"] = json_float(d_high - d_low)
        if d_high > d_low:
            # The sketch merged values: the true statistic lies in [ks_statistic, ks_statistic_upper].
            out["ks_statistic_upper"] = json_float(d_high)
            out["ks_pvalue_lower"] = json_float(ks_asymptotic_pvalue(d_high, n1, n2))
        return out

    def stats(self, cache: MutableMapping[tuple[int, int, float], tuple[float, float]]
              ) -> tuple[dict[str, Any], list[str]]:
        import numpy as np

        assert self.edges is not None and self.ref_bins is not None and self.cur_bins is not None
        rc, cc = self.ref_bins, self.cur_bins
        bins = [str(i + 1) for i in range(len(rc))]
        if self.ref_missing or self.cur_missing:
            rc = np.append(rc, self.ref_missing)
            cc = np.append(cc, self.cur_missing)
            bins.append("missing")
        stats: dict[str, Any] = {
            "reference_missing_fraction": json_float(self.ref_missing / self.ref_rows),
            "current_missing_fraction": json_float(self.cur_missing / self.cur_rows) if self.cur_rows else None,
            "psi": json_float(psi(rc, cc, epsilon=self.policy.psi_epsilon)),
        }
        if self.cur.total:
            stats.update(self._ks(cache))
        else:
            stats["ks_statistic"] = stats["ks_pvalue"] = None
        stats["bin_count"] = int(len(self.edges) + 1)
        stats["sketch_exact"] = self.ref.shift == 0 and self.cur.shift == 0
        stats["histogram"] = {"bins": bins, "reference": (rc / rc.sum()).tolist(), "current":
                              (cc / cc.sum()).tolist() if cc.sum() else [0.0] * len(cc)}
        return stats, bins


class CategoricalFeature:
    """PSI over categories (plus a "missing" bin) and unseen categories, from streamed counts."""

    kind = "categorical"
    pending = False

    def __init__(self, name: str, policy: DriftPolicy) -> None:
        import numpy as np

        self.name = name
        self.policy = policy
        self.index = CategoryIndex(limit=policy.max_categories)
        self.ref_counts = np.zeros(0, dtype=np.int64)
        self.cur_counts = np.zeros(0, dtype=np.int64)
        self.ref_rows = self.cur_rows = self.ref_missing = self.cur_missing = 0
        self.ref_categories = 0

    def _encode(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        try:
            if len(column) <= SMALL_COLUMN:
                # A wide table's columns are short: Python beats pyarrow's per-call cost.
                return self.index.encode_values(column.to_pylist())
            return self.index.encode(column)
        except OverflowError:
            raise InputDataError(
                f"feature '{self.name}' has more than max_categories ({self.policy.max_categories}) distinct "
                "categories: exclude it or declare it numeric"
            ) from None

    @staticmethod
    def _add(counts: np.ndarray, codes: np.ndarray, size: int) -> np.ndarray:
        import numpy as np

        found = np.bincount(codes[codes >= 0], minlength=size)
        if len(counts) < size:
            counts = np.concatenate((counts, np.zeros(size - len(counts), dtype=np.int64)))
        return counts + found

    def add_reference(self, column: pa.ChunkedArray | pa.Array) -> None:
        import numpy as np

        codes = self._encode(column)
        self.ref_rows += len(codes)
        self.ref_missing += int(np.count_nonzero(codes < 0))
        self.ref_counts = self._add(self.ref_counts, codes, len(self.index))

    def end_reference(self) -> None:
        self.ref_categories = len(self.index)
        if not self.ref_categories:
            raise InputDataError(f"feature '{self.name}' has no values in the reference table")

    def rescan(self, column: pa.ChunkedArray | pa.Array) -> None:  # never pending
        return None

    def end_rescan(self) -> None:
        return None

    def add_current(self, column: pa.ChunkedArray | pa.Array) -> None:
        import numpy as np

        codes = self._encode(column)
        self.cur_rows += len(codes)
        self.cur_missing += int(np.count_nonzero(codes < 0))
        self.cur_counts = self._add(self.cur_counts, codes, len(self.index))

    def stats(self, cache: MutableMapping[Any, Any]) -> tuple[dict[str, Any], list[str]]:
        import numpy as np

        policy = self.policy
        k = len(self.index)
        rc = np.concatenate((self.ref_counts, np.zeros(k - len(self.ref_counts), dtype=np.int64)))
        cc = np.concatenate((self.cur_counts, np.zeros(k - len(self.cur_counts), dtype=np.int64)))
        n_ref = self.ref_categories
        r_missing, c_missing = self.ref_missing, self.cur_missing
        unseen = np.arange(k) >= n_ref
        unseen_rows = int(cc[unseen].sum())
        stats: dict[str, Any] = {
            "psi": json_float(psi(np.append(rc, r_missing), np.append(cc, c_missing), epsilon=policy.psi_epsilon)),
            "categories_reference": n_ref,
            "categories_current": int(np.count_nonzero(cc)),
            "unseen_categories": int(np.count_nonzero(cc[unseen])),
            "unseen_rows": unseen_rows,
            "unseen_fraction": json_float(unseen_rows / self.cur_rows) if self.cur_rows else None,
        }
        # Histogram: most frequent reference categories, then "other", "unseen", "missing".
        order = np.argsort(-rc[:n_ref], kind="stable")
        top = order[:REPORT_TOP_CATEGORIES]
        rest = np.ones(n_ref, dtype=bool)
        rest[top] = False
        labels: list[str] = []
        metric_bins: list[str] = []
        r_hist: list[float] = []
        c_hist: list[float] = []
        r_total = max(self.ref_rows, 1)
        c_total = max(self.cur_rows, 1)
        names = self.index.names
        for rank, i in enumerate(top.tolist(), start=1):
            metric_bins.append(f"category {rank}")
            shown = policy.report_category_labels and rc[i] >= policy.category_label_min_count
            labels.append(names[i] if shown else f"category {rank}")
            r_hist.append(float(rc[i]) / r_total)
            c_hist.append(float(cc[i]) / c_total)
        finish_histogram(stats, (metric_bins, labels, r_hist, c_hist), (r_total, c_total), (
            ("other", rc[:n_ref][rest].sum(), cc[:n_ref][rest].sum()),
            ("unseen", 0, unseen_rows),
            ("missing", r_missing, c_missing),
        ))
        return stats, labels


def finish_histogram(stats: dict[str, Any], parts: tuple[list[str], list[str], list[float], list[float]],
                     totals: tuple[int, int], tail: tuple[tuple[str, Any, Any], ...]) -> None:
    """Append the non-empty "other" / "unseen" / "missing" bins to a categorical histogram (bins, labels,
    reference and current shares) and store it, with the missing fractions, in ``stats``."""
    metric_bins, labels, r_hist, c_hist = parts
    r_total, c_total = totals
    for label, r_val, c_val in tail:
        if r_val or c_val:
            metric_bins.append(label)
            labels.append(label)
            r_hist.append(float(r_val) / r_total)
            c_hist.append(float(c_val) / c_total)
    stats["histogram"] = {"bins": metric_bins, "reference": r_hist, "current": c_hist}
    stats["reference_missing_fraction"] = r_hist[-1] if metric_bins[-1] == "missing" else 0.0
    stats["current_missing_fraction"] = c_hist[-1] if metric_bins[-1] == "missing" else 0.0
