"""All numeric features of a drift check together: as matrices while the tables are small, else one
streamed :class:`~._features.NumericFeature` per feature.

A wide table (100,000 columns x 5 rows) would pay numpy's per-call overhead once per feature and
statistic; as long as both tables have at most :data:`SMALL_ROWS` rows and
:data:`CELL_BUDGET` cells, their numeric columns are kept as one float matrix each and every
statistic is computed for all features at once (sorting along the rows, one comparison tensor for
the bins), so the cost is linear in cells with a small per-column constant. Past either limit the
block spills: its rows so far go into per-feature accumulators, which then stream as usual (memory
flat in rows). Both paths give the same numbers: quantile edges and KS statistics bit for bit
(``np.quantile``, ``scipy.stats.ks_2samp``), PSI equal up to float summation order (1e-12).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.drift._features import NumericFeature, numeric_values, scipy_ks
from airflow_aisec.core.gates.drift._statistics import lerp
from airflow_aisec.core.policy.sections.drift import DriftPolicy
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import numpy as np

    from airflow_aisec.core.gates.drift._columns import Batch

#: A table with at most this many rows is kept as a matrix (if within :data:`CELL_BUDGET`).
SMALL_ROWS = 256
#: Cells (rows x numeric features) of one table kept as a matrix at most (8 bytes each).
CELL_BUDGET = 4_000_000
#: Elements of the (rows x features x edges) comparison tensor built at once when counting bins.
_TENSOR_BUDGET = 8_000_000


class NumericBlock:
    """The numeric features of one drift check (same protocol as the per-feature accumulators,
    with a list of columns, one per feature, in ``names`` order)."""

    kind = "numeric"
    takes_columns = True

    def __init__(self, names: Sequence[str], policy: DriftPolicy) -> None:
        self.names = list(names)
        self.policy = policy
        self._ref: list[np.ndarray] | None = []  # batches of (rows x features), while small
        self._cur: list[np.ndarray] | None = []
        self._ref_rows = self._cur_rows = 0
        self.features: list[NumericFeature] | None = None  # after spilling

    def _small(self, rows: int) -> bool:
        return small_table(rows, len(self.names))

    def _matrix(self, batch: Batch, positions: Sequence[int]) -> np.ndarray:
        return value_matrix(batch, positions)

    def _spill(self) -> None:
        """Leave matrix mode: feed the rows kept so far to one streamed accumulator per feature."""
        assert self._ref is not None
        self.features = [NumericFeature(name, self.policy) for name in self.names]
        for batch in self._ref:
            for j, feature in enumerate(self.features):
                feature.add_reference_values(batch[:, j])
        self._ref = None
        if self._cur is not None and self._cur_rows:
            self._end_features()
            for batch in self._cur:
                for j, feature in enumerate(self.features):
                    feature.add_current_values(batch[:, j])
        self._cur = None

    def _end_features(self) -> None:
        assert self.features is not None
        for feature in self.features:
            feature.end_reference()
        if any(f.pending for f in self.features):
            raise AssertionError("a small reference needs no further pass")

    def add_reference(self, batch: Batch, positions: Sequence[int]) -> None:
        if self.features is not None:
            for feature, column in zip(self.features, batch.columns(positions)):
                feature.add_reference(column)
            return
        assert self._ref is not None
        self._ref_rows += batch.rows
        self._ref.append(self._matrix(batch, positions))
        if not self._small(self._ref_rows):
            self._spill()

    def end_reference(self) -> None:
        import numpy as np

        if self.features is not None:
            for feature in self.features:
                feature.end_reference()
            return
        assert self._ref is not None
        ref = np.concatenate(self._ref) if self._ref else np.empty((0, len(self.names)))
        self._ref = [ref]
        counts = np.count_nonzero(~np.isnan(ref), axis=0)
        if not counts.all():
            name = self.names[int(np.argmin(counts))]
            raise InputDataError(f"feature '{name}' has no values in the reference table")

    @property
    def pending(self) -> bool:
        return self.features is not None and any(f.pending for f in self.features)

    def pending_names(self) -> list[str]:
        assert self.features is not None
        return [f.name for f in self.features if f.pending]

    def rescan(self, batch: Batch, positions: Sequence[int]) -> None:
        assert self.features is not None
        for feature, column in zip([f for f in self.features if f.pending], batch.columns(positions)):
            feature.rescan(column)

    def end_rescan(self) -> None:
        assert self.features is not None
        for feature in [f for f in self.features if f.pending]:
            feature.end_rescan()

    def add_current(self, batch: Batch, positions: Sequence[int]) -> None:
        if self.features is not None:
            for feature, column in zip(self.features, batch.columns(positions)):
                feature.add_current(column)
            return
        assert self._cur is not None
        self._cur_rows += batch.rows
        self._cur.append(self._matrix(batch, positions))
        if not self._small(self._cur_rows):
            self._spill()

    def reference_matrix(self) -> np.ndarray | None:
        """The reference's (rows x features) values after :meth:`end_reference`, or None once spilled
        (then :attr:`features` hold the reference)."""
        return None if self._ref is None or self.features is not None else self._ref[0]

    def stats(self, cache: MutableMapping[Any, Any], rows: tuple[int, int]) -> list[tuple[dict[str, Any], list[str]]]:
        """Per feature, in ``names`` order: its metrics entry (:func:`entry`) and histogram bin names."""
        import numpy as np

        if self.features is not None:
            return [(entry(f.name, self.kind, rows, stats), bins)
                    for f, (stats, bins) in zip(self.features, (f.stats(cache) for f in self.features))]
        assert self._ref is not None and self._cur is not None
        cur = np.concatenate(self._cur) if self._cur else np.empty((0, len(self.names)))
        return matrix_stats(self._ref[0], cur, self.policy, cache, self.names, rows)


def small_table(rows: int, features: int) -> bool:
    """Whether a table of ``rows`` x ``features`` numeric columns is kept as a matrix."""
    return rows <= SMALL_ROWS and rows * features <= CELL_BUDGET


def value_matrix(batch: Batch, positions: Sequence[int]) -> np.ndarray:
    """rows x columns (``positions`` of ``batch``) float64, NaN for missing: the columns of one type
    converted in one call."""
    import numpy as np

    rows = batch.rows
    out = np.empty((rows, len(positions)), dtype=np.float64)
    for _, indices, cells in batch.groups(positions):
        out[:, indices] = numeric_values(cells).reshape(len(indices), rows).T
    return out


def entry(name: str, kind: str, rows: tuple[int, int], stats: dict[str, Any]) -> dict[str, Any]:
    """A feature's metrics entry as the judge extends it in place: name, kind, both tables' rows, then
    the statistics (the matrix paths build it in one go: a wide table has 100,000)."""
    return {"feature": name, "kind": kind, "reference_rows": rows[0], "current_rows": rows[1], **stats}


def _edges(ref_sorted: np.ndarray, n1: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per feature: sorted quantile edges (features x bins-1) and which of them are distinct.

    The same steps as :func:`._statistics.quantile_ranks` / ``np.quantile``, with one sample size
    per feature.
    """
    import numpy as np

    qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    virtual = (n1[:, None] - 1) * qs[None, :]
    above = virtual >= (n1 - 1)[:, None]
    prev_i = np.floor(virtual).astype(np.intp)
    next_i = prev_i + 1
    last = np.broadcast_to((n1 - 1)[:, None], prev_i.shape)
    prev_i = np.where(above, last, prev_i)
    next_i = np.where(above, last, next_i)
    gamma = virtual - np.where(above, -1, prev_i)
    col = np.arange(len(n1))[:, None]
    edges = np.sort(lerp(ref_sorted[prev_i, col], ref_sorted[next_i, col], gamma), axis=1)
    first = np.ones(edges.shape, dtype=bool)
    first[:, 1:] = edges[:, 1:] != edges[:, :-1]
    return edges, first


def _bin_counts(values: np.ndarray, edges: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Counts per (feature, bin) of the finite values: bin = number of distinct edges below the value."""
    import numpy as np

    rows, features = values.shape
    width = edges.shape[1] + 1
    out = np.zeros((features, width), dtype=np.int64)
    step = max(1, _TENSOR_BUDGET // max(rows * width, 1))
    for start in range(0, features, step):
        v = values[:, start:start + step]
        e, f = edges[start:start + step], first[start:start + step]
        idx = ((v[:, :, None] > e[None, :, :]) & f[None, :, :]).sum(axis=2)  # rows x features
        ok = ~np.isnan(v)
        feat = np.broadcast_to(np.arange(v.shape[1]), v.shape)
        out[start:start + step] = np.bincount((feat * width + idx)[ok], minlength=v.shape[1] * width
                                              ).reshape(v.shape[1], width)
    return out


def _ks_statistics(ref: np.ndarray, cur: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """scipy's raw two-sample KS statistic per feature (NaN where the current sample is empty)."""
    import numpy as np

    both = np.concatenate((ref, cur), axis=0)
    order = np.argsort(both, axis=0, kind="stable")  # NaN last
    values = np.take_along_axis(both, order, axis=0)
    from_ref = order < len(ref)
    finite = ~np.isnan(values)
    cum1 = np.cumsum(from_ref & finite, axis=0)
    cum2 = np.cumsum(~from_ref & finite, axis=0)
    # Evaluate the CDFs once per distinct value, after its last occurrence (as searchsorted "right").
    last = finite.copy()
    last[:-1] &= values[1:] != values[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        diffs = cum1 / n1 - cum2 / n2
    hi = np.where(last, diffs, -np.inf).max(axis=0)
    lo = np.where(last, diffs, np.inf).min(axis=0)
    d = np.maximum(np.clip(-lo, 0, 1), hi)
    return np.where(n2 > 0, d, np.nan)


def _ks_values(ref: np.ndarray, cur: np.ndarray, n1: np.ndarray, n2: np.ndarray, d: np.ndarray,
               cache: MutableMapping[Any, Any]) -> list[tuple[float | None, float | None]]:
    """scipy's (statistic, p-value) per feature, (None, None) without current values. scipy's exact
    p-value depends on (n1, n2, d) only: it is computed once per combination, on the first feature
    that has it, and kept in ``cache`` (shared with the other blocks)."""
    import numpy as np

    out: list[tuple[float | None, float | None]] = [(None, None)] * len(n1)
    has = np.flatnonzero(n2 > 0)
    if not len(has):
        return out
    # (n1, n2, d) as one complex key: a 1-D sort (real part first), exact (small sample sizes).
    keys = (n1[has] * (int(n2.max()) + 1) + n2[has]).astype(np.float64) + 1j * d[has]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    values = []
    for j in has[first].tolist():
        key = (int(n1[j]), int(n2[j]), float(d[j]))
        if key not in cache:
            r_ok, c_ok = ref[:, j], cur[:, j]
            cache[key] = scipy_ks(r_ok[~np.isnan(r_ok)], c_ok[~np.isnan(c_ok)])
        values.append(cache[key])
    for j, v in zip(has.tolist(), inverse.reshape(-1).tolist()):
        out[j] = values[v]
    return out


def matrix_stats(ref: np.ndarray, cur: np.ndarray, policy: DriftPolicy, cache: MutableMapping[Any, Any],
                 names: Sequence[str], table_rows: tuple[int, int]) -> list[tuple[dict[str, Any], list[str]]]:
    """The statistics of :meth:`._features.NumericFeature.stats` for every column (``names``) of two small
    matrices, as metrics entries (:func:`entry`; ``table_rows``: both tables' rows)."""
    import numpy as np

    features = ref.shape[1]
    n1 = np.count_nonzero(~np.isnan(ref), axis=0)
    n2 = np.count_nonzero(~np.isnan(cur), axis=0)
    ref_missing, cur_missing = len(ref) - n1, len(cur) - n2
    edges, first = _edges(np.sort(ref, axis=0), n1, policy.bins)
    n_bins = first.sum(axis=1) + 1
    rc, cc = _bin_counts(ref, edges, first), _bin_counts(cur, edges, first)
    # PSI over [bins..., missing] (missing only when either table has some), then zero padding.
    width = rc.shape[1] + 1
    has_missing = (ref_missing > 0) | (cur_missing > 0)
    r_all = np.zeros((features, width), dtype=np.int64)
    c_all = np.zeros((features, width), dtype=np.int64)
    r_all[:, :-1], c_all[:, :-1] = rc, cc
    rows = np.arange(features)
    r_all[rows, n_bins] += np.where(has_missing, ref_missing, 0)
    c_all[rows, n_bins] += np.where(has_missing, cur_missing, 0)
    used = np.arange(width)[None, :] < (n_bins + has_missing)[:, None]
    r_sum, c_sum = r_all.sum(axis=1), c_all.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_share = r_all / r_sum[:, None]  # also the histograms' shares
        c_share = c_all / c_sum[:, None]
        pr = np.where(r_share == 0, policy.psi_epsilon, r_share)
        pc = np.where(c_share == 0, policy.psi_epsilon, c_share)
        terms = np.where(used, (pc - pr) * np.log(pc / pr), 0.0)
    psi = np.where((r_sum > 0) & (c_sum > 0), terms.sum(axis=1), np.nan)
    d = _ks_statistics(ref, cur, n1, n2)

    # The per-feature loop only picks Python values out of lists made once (wide tables: 100k features).
    ref_rows, cur_rows = len(ref), len(cur)
    ref_frac = (ref_missing / ref_rows).tolist()
    cur_frac = (cur_missing / cur_rows).tolist() if cur_rows else [None] * features
    psi_list = psi.tolist()
    for j in np.flatnonzero(~np.isfinite(psi)).tolist():
        psi_list[j] = None  # json_float of each value
    # Histogram shares of the used bins, a list per feature (its first k_all columns).
    k_all = n_bins + has_missing
    r_hist = _prefix_lists(_shares(r_all, r_sum, r_share), k_all)
    c_hist = _prefix_lists(_shares(c_all, c_sum, np.where(c_sum[:, None] > 0, c_share, 0.0)), k_all)
    ks = _ks_values(ref, cur, n1, n2, d, cache)
    # Bin names, one list per (bins, missing) shared by the features that have them.
    shapes = (n_bins * 2 + has_missing).tolist()
    names_of = {code: [str(i + 1) for i in range(code // 2)] + (["missing"] if code % 2 else [])
                for code in set(shapes)}
    bins_list = list(map(names_of.__getitem__, shapes))
    r_n, c_n = table_rows
    return [({"feature": name, "kind": "numeric", "reference_rows": r_n, "current_rows": c_n,
              "reference_missing_fraction": rf, "current_missing_fraction": cf, "psi": p,
              "ks_statistic": None, "ks_pvalue": None, "bin_count": nb, "sketch_exact": True,
              "histogram": {"bins": bins, "reference": rh, "current": ch}}
             if statistic is None else
             {"feature": name, "kind": "numeric", "reference_rows": r_n, "current_rows": c_n,
              "reference_missing_fraction": rf, "current_missing_fraction": cf, "psi": p,
              "ks_statistic": statistic, "ks_pvalue": pvalue, "ks_error_bound": 0.0, "bin_count": nb,
              "sketch_exact": True, "histogram": {"bins": bins, "reference": rh, "current": ch}}, bins)
            for name, nb, bins, rh, ch, rf, cf, p, (statistic, pvalue) in zip(
                names, n_bins.tolist(), bins_list, r_hist, c_hist, ref_frac, cur_frac, psi_list, ks)]


def _shares(counts: np.ndarray, totals: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """``shares`` (``counts / totals`` by row) as an object matrix of shared Python floats, one per
    distinct count, when every row has the same positive total (a table's rows: always, for the
    histograms); else ``shares`` itself. 1.6M histogram floats of a wide table are then a few
    dozen objects, made once and freed once."""
    import numpy as np

    if not len(totals) or totals[0] <= 0 or not (totals == totals[0]).all():
        return shares
    total = int(totals[0])  # counts are at most the total: a table of total + 1 values
    return np.array([c / total for c in range(total + 1)], dtype=object)[counts]


def _prefix_lists(matrix: np.ndarray, lengths: np.ndarray) -> list[list[float]]:
    """``[row[:k] for row, k in zip(matrix, lengths)]`` as Python lists, made by numpy per distinct
    length (a wide table's features mostly have the same number of bins)."""
    import numpy as np

    distinct = np.unique(lengths).tolist()
    if len(distinct) == 1:
        return matrix[:, :distinct[0]].tolist()
    out: list[list[float]] = [[]] * len(lengths)
    for k in distinct:
        rows = np.flatnonzero(lengths == k)
        for j, values in zip(rows.tolist(), matrix[rows, :k].tolist()):
            out[j] = values
    return out
