"""All categorical features of a drift check together: as one id matrix while the tables are small,
else one streamed :class:`~._features.CategoricalFeature` per feature.

The counterpart of :class:`~._block.NumericBlock` for categories. A wide table (100,000 columns x 5
rows) would pay pyarrow's and numpy's per-call costs once per feature; while both tables are within
``_block.SMALL_ROWS`` rows and ``_block.CELL_BUDGET`` cells, the categorical columns of one type are
dictionary-encoded in one call into ids of their canonical names, per-feature category ids (first
seen, reference then current, as :class:`~airflow_aisec.core.stats.CategoryIndex` assigns them) and
counts come from one sort, and PSI is computed for all features with the same number of categories
at once. The numbers are the per-feature accumulator's, bit for bit (same PSI summation: one row per
feature, as long as its own bins). Past either limit the block spills: the columns kept so far are
replayed into per-feature accumulators, which then stream as usual.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.drift import _block
from airflow_aisec.core.gates.drift._features import (
    REPORT_TOP_CATEGORIES,
    CategoricalFeature,
    finish_histogram,
)
from airflow_aisec.core.policy.sections.drift import DriftPolicy
from airflow_aisec.core.stats import canonical_text, json_float
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

Columns = Sequence["pa.Array | pa.ChunkedArray"]


class CategoricalBlock:
    """The categorical features of one drift check (same protocol as the per-feature accumulators,
    with a list of columns, one per feature, in ``names`` order)."""

    kind = "categorical"
    takes_columns = True
    pending = False  # categories need a single pass

    def __init__(self, names: Sequence[str], policy: DriftPolicy) -> None:
        self.names = list(names)
        self.policy = policy
        self._columns: dict[str, list[Columns]] = {"ref": [], "cur": []}  # replayed if the block spills
        self._ids: dict[str, list[np.ndarray]] = {"ref": [], "cur": []}  # rows x features, -1 missing
        self._rows = {"ref": 0, "cur": 0}
        self._ended = False
        self._global: dict[str, int] = {}  # canonical name -> id shared by all features
        self.features: list[CategoricalFeature] | None = None  # after spilling

    def _small(self, rows: int) -> bool:
        return rows <= _block.SMALL_ROWS and rows * len(self.names) <= _block.CELL_BUDGET

    def _text_ids(self, values: list[Any]) -> np.ndarray:
        import numpy as np

        ids = np.empty(len(values) + 1, dtype=np.int64)
        for i, value in enumerate(values):
            text = canonical_text(value, lower=False)
            ids[i] = -1 if text is None else self._global.setdefault(text, len(self._global))
        ids[len(values)] = -1  # raw code -1 (null) indexes the last entry
        return ids

    def _global_ids(self, columns: Columns) -> np.ndarray:
        """rows x features ids of the canonical names (-1 for missing); columns of one type in one call."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = len(columns[0])
        out = np.empty((rows, len(columns)), dtype=np.int64)
        by_type: dict[pa.DataType, list[int]] = {}
        for j, column in enumerate(columns):
            by_type.setdefault(column.type, []).append(j)
        for dtype, indices in by_type.items():
            chunks = [chunk for j in indices for chunk in
                      (columns[j].chunks if isinstance(columns[j], pa.ChunkedArray) else [columns[j]])]
            if pa.types.is_dictionary(dtype):
                chunks = [chunk.cast(dtype.value_type) for chunk in chunks]
            arr = pa.concat_arrays(chunks) if chunks else pa.array([], dtype)
            try:
                enc = pc.dictionary_encode(arr)
                raw = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
                ids = self._text_ids(enc.dictionary.to_pylist())[raw]
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
                # A type pyarrow does not hash (a forced categorical of nested values): Python values.
                ids = self._text_ids(arr.to_pylist())[:-1]
            out[:, indices] = ids.reshape(len(indices), rows).T
        return out

    def _too_many(self, table: str) -> None:
        """InputDataError for the first feature with more than ``max_categories`` names so far."""
        import numpy as np

        ids = np.concatenate(self._ids["ref"] + (self._ids["cur"] if table == "cur" else []))
        counts = self._distinct(ids)[0]
        over = np.flatnonzero(counts > self.policy.max_categories)
        if len(over):
            raise InputDataError(
                f"feature '{self.names[int(over[0])]}' has more than max_categories ({self.policy.max_categories}) "
                "distinct categories: exclude it or declare it numeric"
            )

    def _distinct(self, ids: np.ndarray) -> tuple[np.ndarray, ...]:
        """The distinct names of each feature of a (rows x features) id matrix, in first-seen order.

        Returns: names per feature; the feature, row and local id of every present cell; the
        first row, feature, local id and global id of every distinct (feature, name).
        """
        import numpy as np

        features = ids.shape[1]
        by_feature = np.ascontiguousarray(ids.T)
        feat, row = np.nonzero(by_feature >= 0)  # ordered by feature, then row
        size = len(self._global) + 1
        keys, first, inverse = np.unique(feat * size + by_feature[feat, row], return_index=True,
                                         return_inverse=True)
        counts = np.bincount(keys // size, minlength=features)
        order = np.argsort(first, kind="stable")  # feature, then first row: CategoryIndex's ids
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        local = np.empty(len(keys), dtype=np.int64)
        local[order] = np.arange(len(keys)) - starts[keys[order] // size]
        return counts, feat, row, local[inverse.reshape(-1)], row[first], keys // size, local, keys % size

    def _add(self, table: str, columns: Columns) -> None:
        rows = self._rows[table] + len(columns[0])
        if not self._small(rows):
            self._spill()
            self._feed(table, columns)
            return
        self._rows[table] = rows
        self._columns[table].append(list(columns))
        self._ids[table].append(self._global_ids(columns))
        self._too_many(table)

    def _feed(self, table: str, columns: Columns) -> None:
        assert self.features is not None
        for feature, column in zip(self.features, columns):
            (feature.add_reference if table == "ref" else feature.add_current)(column)

    def _spill(self) -> None:
        """Leave matrix mode: replay the columns kept so far into one accumulator per feature."""
        self.features = [CategoricalFeature(name, self.policy) for name in self.names]
        for columns in self._columns["ref"]:
            self._feed("ref", columns)
        if self._ended:
            for feature in self.features:
                feature.end_reference()
        for columns in self._columns["cur"]:
            self._feed("cur", columns)
        self._columns, self._ids = {"ref": [], "cur": []}, {"ref": [], "cur": []}

    def add_reference(self, columns: Columns) -> None:
        if self.features is not None:
            self._feed("ref", columns)
        else:
            self._add("ref", columns)

    def end_reference(self) -> None:
        import numpy as np

        self._ended = True
        if self.features is not None:
            for feature in self.features:
                feature.end_reference()
            return
        ids = np.concatenate(self._ids["ref"]) if self._ids["ref"] else np.full((0, len(self.names)), -1)
        present = np.count_nonzero(ids >= 0, axis=0)
        if not present.all():
            name = self.names[int(np.argmin(present))]
            raise InputDataError(f"feature '{name}' has no values in the reference table")

    def pending_names(self) -> list[str]:
        return []

    def add_current(self, columns: Columns) -> None:
        if self.features is not None:
            self._feed("cur", columns)
        else:
            self._add("cur", columns)

    def stats(self, cache: MutableMapping[Any, Any]) -> list[tuple[dict[str, Any], list[str]]]:
        """Per feature, in ``names`` order: :meth:`._features.CategoricalFeature.stats`."""
        import numpy as np

        if self.features is not None:
            return [feature.stats(cache) for feature in self.features]
        features = len(self.names)
        ref_rows, cur_rows = self._rows["ref"], self._rows["cur"]
        ids = np.concatenate(self._ids["ref"] + self._ids["cur"])
        k, feat, row, local, first_row, u_feat, u_local, u_global = self._distinct(ids)
        width = max(int(k.max()), 1)
        is_ref = row < ref_rows
        cells = feat * width + local
        rc = np.bincount(cells[is_ref], minlength=features * width).reshape(features, width)
        cc = np.bincount(cells[~is_ref], minlength=features * width).reshape(features, width)
        n_ref = np.bincount(u_feat[first_row < ref_rows], minlength=features)
        r_missing = ref_rows - rc.sum(axis=1)
        c_missing = cur_rows - cc.sum(axis=1)
        global_of = np.full((features, width), -1, dtype=np.int64)
        global_of[u_feat, u_local] = u_global
        psi = self._psi(rc, cc, r_missing, c_missing, k)

        names = list(self._global)
        policy = self.policy
        show = policy.report_category_labels
        min_count = policy.category_label_min_count
        r_total, c_total = max(ref_rows, 1), max(cur_rows, 1)
        out: list[tuple[dict[str, Any], list[str]]] = []
        for j, (rcl, ccl, gl, kj, nr, rm, cm) in enumerate(zip(
                rc.tolist(), cc.tolist(), global_of.tolist(), k.tolist(), n_ref.tolist(), r_missing.tolist(),
                c_missing.tolist())):
            unseen = ccl[nr:kj]
            unseen_rows = sum(unseen)
            stats: dict[str, Any] = {
                "psi": psi[j],
                "categories_reference": nr,
                "categories_current": sum(1 for c in ccl[:kj] if c),
                "unseen_categories": sum(1 for c in unseen if c),
                "unseen_rows": unseen_rows,
                "unseen_fraction": json_float(unseen_rows / cur_rows) if cur_rows else None,
            }
            # Histogram: most frequent reference categories, then "other", "unseen", "missing".
            top = sorted(range(nr), key=lambda i, rcl=rcl: -rcl[i])[:REPORT_TOP_CATEGORIES]  # stable
            labels: list[str] = []
            metric_bins: list[str] = []
            r_hist: list[float] = []
            c_hist: list[float] = []
            for rank, i in enumerate(top, start=1):
                metric_bins.append(f"category {rank}")
                labels.append(names[gl[i]] if show and rcl[i] >= min_count else f"category {rank}")
                r_hist.append(float(rcl[i]) / r_total)
                c_hist.append(float(ccl[i]) / c_total)
            rest = sorted(set(range(nr)) - set(top)) if nr > len(top) else []
            finish_histogram(stats, (metric_bins, labels, r_hist, c_hist), (r_total, c_total), (
                ("other", sum(rcl[i] for i in rest), sum(ccl[i] for i in rest)),
                ("unseen", 0, unseen_rows),
                ("missing", rm, cm),
            ))
            out.append((stats, labels))
        return out

    def _psi(self, rc: np.ndarray, cc: np.ndarray, r_missing: np.ndarray, c_missing: np.ndarray,
             k: np.ndarray) -> list[float | None]:
        """:func:`._statistics.psi` of every feature over [its categories..., missing]: the features
        with the same number of categories as one matrix, each row summed as the 1-D vector is."""
        import numpy as np

        eps = self.policy.psi_epsilon
        out: list[float | None] = [None] * len(k)
        for size in np.unique(k).tolist():
            rows = np.flatnonzero(k == size)
            r = np.concatenate((rc[rows, :size], r_missing[rows, None]), axis=1).astype(np.float64)
            c = np.concatenate((cc[rows, :size], c_missing[rows, None]), axis=1).astype(np.float64)
            r_sum, c_sum = r.sum(axis=1), c.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                pr = r / r_sum[:, None]
                pc = c / c_sum[:, None]
                pr = np.where(pr == 0, eps, pr)
                pc = np.where(pc == 0, eps, pc)
                values = np.ascontiguousarray((pc - pr) * np.log(pc / pr)).sum(axis=1)
            values = np.where((r_sum > 0) & (c_sum > 0), values, np.nan)
            for j, v in zip(rows.tolist(), values.tolist()):
                out[j] = json_float(v)
        return out
