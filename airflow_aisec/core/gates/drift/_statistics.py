"""The drift statistics: population stability index over bins, reference-quantile bins, and the same
from streamed counts: exact order statistics from a value sketch, and the two-sample KS statistic
from two sketches (exact, or with an error bound once a sketch had to merge values)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def psi(reference_counts: np.ndarray, current_counts: np.ndarray, *, epsilon: float = 1e-4) -> float:
    """Population stability index of two count vectors over the same bins.

    Args:
        reference_counts: Counts per bin in the reference.
        current_counts: Counts per bin in the current data.
        epsilon: Proportion used instead of 0 (keeps the log finite).

    Returns:
        ``sum((cur - ref) * ln(cur / ref))`` over bins; NaN when either side is empty.
    """
    import numpy as np

    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    if r.sum() <= 0 or c.sum() <= 0:
        return float("nan")
    pr = r / r.sum()
    pc = c / c.sum()
    pr = np.where(pr == 0, epsilon, pr)
    pc = np.where(pc == 0, epsilon, pc)
    return float(np.sum((pc - pr) * np.log(pc / pr)))


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Interior cut points at the reference's quantiles, duplicates removed.

    Bin ``i`` holds values in ``(edges[i-1], edges[i]]``; the outer bins are open.
    """
    import numpy as np

    qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    return np.unique(np.quantile(reference, qs))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of finite ``values`` per bin (``len(edges) + 1`` bins)."""
    import numpy as np

    return np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)


# --- The same statistics from streamed counts (see ``_features``) -----------------------------------

#: scipy's ``ks_2samp(method="auto")`` computes the exact p-value up to this sample size.
KS_EXACT_MAX_N = 10_000
#: Values of unresolved sketch bins gathered in memory at most while locating an order statistic;
#: beyond that the bins are sketched again, finer (one more pass over the reference).
COLLECT_LIMIT = 1 << 20


def quantile_ranks(n: int, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 0-based order statistics ``np.quantile(x, qs)`` (method ``linear``) interpolates between,
    and the weights, for a sample of ``n`` values and the interior quantiles of ``bins`` bins.

    Mirrors numpy 2's ``_quantile`` step by step so that :func:`lerp` of the order statistics is
    bit-for-bit ``np.quantile`` (a test compares them).
    """
    import numpy as np

    qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    virtual = (n - 1) * qs
    previous = np.floor(virtual)
    above = virtual >= n - 1
    prev_i = previous.astype(np.intp)
    next_i = prev_i + 1
    prev_i[above] = n - 1
    next_i[above] = n - 1
    gamma = virtual - np.where(above, -1, prev_i)  # numpy subtracts the index it took (-1 = last)
    return prev_i, next_i, gamma


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's quantile interpolation (``numpy.lib._function_base_impl._lerp``)."""
    import numpy as np

    diff = b - a
    out = a + diff * t
    return np.where(t >= 0.5, b - diff * (1 - t), out)


class OrderStatistics:
    """Exact order statistics of a streamed sample, from its :class:`~airflow_aisec.core.stats.ValueSketch`.

    Ranks that fall in a single-valued bin are known at once. The others need passes over the
    sample again: values of their bins are gathered (at most :data:`COLLECT_LIMIT`) and sorted, or,
    when the bins hold more, sketched again restricted to those bins, which makes the bins at
    least twice finer per pass (a handful of passes at most, in practice one). Memory stays
    bounded by the sketch size and :data:`COLLECT_LIMIT`.
    """

    def __init__(self, sketch_arrays: tuple[np.ndarray, ...], ranks: np.ndarray, max_bins: int) -> None:
        import numpy as np

        self.max_bins = max_bins
        self.ranks = np.asarray(ranks, dtype=np.int64)
        self.values = np.full(len(self.ranks), np.nan)
        self._todo = np.arange(len(self.ranks))
        self._space_ranks = self.ranks.copy()
        self._resolve(sketch_arrays)

    @property
    def done(self) -> bool:
        return len(self._todo) == 0

    def _resolve(self, arrays: tuple[np.ndarray, ...]) -> None:
        import numpy as np

        from airflow_aisec.core.stats import ValueSketch, key_values

        _, _, lo, hi, count = arrays
        cum = np.cumsum(count)
        r = self._space_ranks[self._todo]
        b = np.searchsorted(cum, r, side="right")
        single = lo[b] == hi[b]
        self.values[self._todo[single]] = key_values(lo[b[single]])
        self._todo, b, r = self._todo[~single], b[~single], r[~single]
        if not len(self._todo):
            return
        bins = np.unique(b)
        counts = count[bins]
        offsets = np.cumsum(counts) - counts
        where = np.searchsorted(bins, b)
        self._space_ranks = np.zeros(len(self.ranks), dtype=np.int64)
        self._space_ranks[self._todo] = offsets[where] + (r - (cum[b] - count[b]))
        self._lo, self._hi = lo[bins], hi[bins]
        self._collect: list[np.ndarray] | None = [] if int(counts.sum()) <= COLLECT_LIMIT else None
        self._sketch = ValueSketch(self.max_bins)

    def add(self, values: np.ndarray) -> None:
        """Feed the sample's finite values again (one pass; call :meth:`end_pass` after it)."""
        import numpy as np

        from airflow_aisec.core.stats import order_keys

        if self.done or not len(values):
            return
        keys = order_keys(values)
        idx = np.searchsorted(self._lo, keys, side="right") - 1
        inside = (idx >= 0) & (keys <= self._hi[np.maximum(idx, 0)])
        if self._collect is not None:
            self._collect.append(keys[inside])
        else:
            self._sketch.add(np.asarray(values, dtype=np.float64)[inside])

    def end_pass(self) -> None:
        import numpy as np

        from airflow_aisec.core.stats import key_values

        if self.done:
            return
        if self._collect is not None:
            keys = np.sort(np.concatenate(self._collect)) if self._collect else np.empty(0, np.uint64)
            self.values[self._todo] = key_values(keys[self._space_ranks[self._todo]])
            self._todo = self._todo[:0]
            return
        self._resolve(self._sketch.coarsened_to(self._sketch.shift))


def counts_at_or_below(arrays: tuple[np.ndarray, ...], edges: np.ndarray) -> np.ndarray | None:
    """Number of sketched values ``<= e`` for every edge, or None if a multi-valued bin straddles one."""
    import numpy as np

    from airflow_aisec.core.stats import order_keys

    _, _, lo, hi, count = arrays
    ke = order_keys(edges)
    j = np.searchsorted(hi, ke, side="right")  # bins entirely <= e
    inside = j < len(hi)
    if np.any(lo[j[inside]] <= ke[inside]):
        return None
    return np.concatenate(([0], np.cumsum(count)))[j]


def ks_from_sketches(ref: tuple[np.ndarray, ...], cur: tuple[np.ndarray, ...]) -> tuple[float, float]:
    """Two-sample KS statistic from two sketches on the same bins: ``(d_low, d_high)``.

    ``d_low`` is the largest gap between the two empirical CDFs at the bins' largest values,
    computed as ``scipy.stats.ks_2samp`` does (counts divided by the sample sizes); when every bin
    holds a single value it is exactly scipy's statistic and ``d_high == d_low``. Inside a bin
    holding several values the CDFs can move by at most the bin's share of each sample, so the
    true statistic is at most ``d_high``.
    """
    import numpy as np

    _, kr, lo_r, hi_r, cr = ref
    _, kc, lo_c, hi_c, cc = cur
    n1, n2 = int(cr.sum()), int(cc.sum())
    keys = np.union1d(kr, kc)
    cum_r = np.concatenate(([0], np.cumsum(cr)))[np.searchsorted(kr, keys, side="right")]
    cum_c = np.concatenate(([0], np.cumsum(cc)))[np.searchsorted(kc, keys, side="right")]
    diffs = cum_r / n1 - cum_c / n2
    d_low = float(max(np.clip(-diffs.min(), 0, 1), diffs.max()))
    # Bins with more than one distinct value (over both samples) bound the error.
    big = np.uint64(np.iinfo(np.uint64).max)
    ir, ic = np.searchsorted(kr, keys), np.searchsorted(kc, keys)
    in_r = (ir < len(kr)) & (kr[np.minimum(ir, len(kr) - 1)] == keys)
    in_c = (ic < len(kc)) & (kc[np.minimum(ic, len(kc) - 1)] == keys)
    lo = np.minimum(np.where(in_r, lo_r[np.minimum(ir, len(kr) - 1)], big),
                    np.where(in_c, lo_c[np.minimum(ic, len(kc) - 1)], big))
    hi = np.maximum(np.where(in_r, hi_r[np.minimum(ir, len(kr) - 1)], 0),
                    np.where(in_c, hi_c[np.minimum(ic, len(kc) - 1)], 0))
    multi = lo < hi
    if not multi.any():
        return d_low, d_low
    before = np.concatenate(([0.0], diffs[:-1]))
    r_share = np.diff(np.concatenate(([0], cum_r))) / n1
    c_share = np.diff(np.concatenate(([0], cum_c))) / n2
    up = np.maximum(np.abs(before + r_share), np.abs(before - c_share))[multi]
    return d_low, float(max(d_low, up.max()))


def ks_asymptotic_pvalue(d: float, n1: int, n2: int) -> float:
    """``scipy.stats.ks_2samp``'s two-sided p-value for samples too large for its exact method."""
    import numpy as np
    from scipy.stats import kstwo

    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(kstwo.sf(d, np.round(en)), 0, 1))
