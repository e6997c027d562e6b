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
)
from airflow_aisec.core.policy.sections.drift import DriftPolicy
from airflow_aisec.core.stats import canonical_text, json_float
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from airflow_aisec.core.gates.drift._columns import Batch

Columns = Sequence["pa.Array | pa.ChunkedArray"]


#: A categorical histogram's last bins, when not empty, as bits of a feature's histogram shape.
_TAIL = (("other", 4), ("unseen", 2), ("missing", 1))


class CategoricalBlock:
    """The categorical features of one drift check (same protocol as the per-feature accumulators,
    with a list of columns, one per feature, in ``names`` order)."""

    kind = "categorical"
    takes_columns = True
    pending = False  # categories need a single pass

    def __init__(self, names: Sequence[str], policy: DriftPolicy) -> None:
        self.names = list(names)
        self.policy = policy
        self._columns: dict[str, list[tuple[Batch, Sequence[int]]]] = {"ref": [], "cur": []}  # replayed on spill
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

    def _global_ids(self, batch: Batch, positions: Sequence[int]) -> np.ndarray:
        """rows x features ids of the canonical names (-1 for missing); columns of one type in one call."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = batch.rows
        out = np.empty((rows, len(positions)), dtype=np.int64)
        for _, indices, arr in batch.groups(positions):  # dictionaries already decoded
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

    def _add(self, table: str, batch: Batch, positions: Sequence[int]) -> None:
        rows = self._rows[table] + batch.rows
        if not self._small(rows):
            self._spill()
            self._feed(table, batch.columns(positions))
            return
        self._rows[table] = rows
        self._columns[table].append((batch, positions))
        self._ids[table].append(self._global_ids(batch, positions))
        self._too_many(table)

    def _feed(self, table: str, columns: Columns) -> None:
        assert self.features is not None
        for feature, column in zip(self.features, columns):
            (feature.add_reference if table == "ref" else feature.add_current)(column)

    def _spill(self) -> None:
        """Leave matrix mode: replay the columns kept so far into one accumulator per feature."""
        self.features = [CategoricalFeature(name, self.policy) for name in self.names]
        for batch, positions in self._columns["ref"]:
            self._feed("ref", batch.columns(positions))
        if self._ended:
            for feature in self.features:
                feature.end_reference()
        for batch, positions in self._columns["cur"]:
            self._feed("cur", batch.columns(positions))
        self._columns, self._ids = {"ref": [], "cur": []}, {"ref": [], "cur": []}

    def add_reference(self, batch: Batch, positions: Sequence[int]) -> None:
        if self.features is not None:
            self._feed("ref", batch.columns(positions))
        else:
            self._add("ref", batch, positions)

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

    def add_current(self, batch: Batch, positions: Sequence[int]) -> None:
        if self.features is not None:
            self._feed("cur", batch.columns(positions))
        else:
            self._add("cur", batch, positions)

    def categories(self) -> list[tuple[list[str], list[int]]]:
        """Per feature, in ``names`` order: the categories of the rows added as reference so far
        (canonical names, in the order :class:`~airflow_aisec.core.stats.CategoryIndex` numbers them)
        and their counts. A partition summary feeds its partition as reference (:mod:`.summary`)."""
        import numpy as np

        if self.features is not None:
            return [(list(f.index.names), [int(c) for c in f.ref_counts]) for f in self.features]
        features = len(self.names)
        ids = np.concatenate(self._ids["ref"]) if self._ids["ref"] else np.full((0, features), -1)
        k, feat, _row, local, _first, u_feat, u_local, u_global = self._distinct(ids)
        width = max(int(k.max(initial=0)), 1)
        counts = np.bincount(feat * width + local, minlength=features * width).reshape(features, width)
        global_of = np.zeros((features, width), dtype=np.int64)
        global_of[u_feat, u_local] = u_global
        names = list(self._global)
        return [([names[g] for g in ids_], counts_) for ids_, counts_ in
                zip(_block._prefix_lists(global_of, k), _block._prefix_lists(counts, k))]

    @classmethod
    def from_counts(cls, names: Sequence[str], policy: DriftPolicy, rows: tuple[int, int],
                    features: Sequence[tuple[Sequence[str], Sequence[int], Sequence[int]]]) -> CategoricalBlock | None:
        """The block that would have been fed two small tables with these category counts: per feature
        (``names``), its category names (the reference's first, in order), their reference counts and
        their current counts. The merge of partition summaries compares through it as the single-node
        check does. None where the rows cannot be laid out so (a reference category without a
        reference row would be numbered after the current ones; counts beyond the rows)."""
        import numpy as np

        ref_rows, cur_rows = rows
        if not _block.small_table(max(ref_rows, cur_rows), len(names)):
            return None
        block = cls(names, policy)
        global_ids: dict[str, int] = {}
        matrices = []
        for table, table_rows in ((1, ref_rows), (2, cur_rows)):
            out = np.full((table_rows, len(names)), -1, dtype=np.int64)
            for j, feature in enumerate(features):
                categories, counts = feature[0], feature[table]
                if len(counts) > len(categories) or any(c <= 0 for c in counts[:len(feature[1])] if table == 1) \
                        or any(c <= 0 for c in counts[len(feature[1]):]):
                    return None  # every category is seen in the table that numbers it first
                if sum(counts) > table_rows or any(c < 0 for c in counts):
                    return None
                ids = [global_ids.setdefault(n, len(global_ids)) for n in categories[:len(counts)]]
                out[:sum(counts), j] = np.repeat(np.asarray(ids, dtype=np.int64), np.asarray(counts, dtype=np.int64))
            matrices.append(out)
        block._global = global_ids
        block._ids = {"ref": [matrices[0]], "cur": [matrices[1]]}
        block._rows = {"ref": ref_rows, "cur": cur_rows}
        block._ended = True
        return block

    def stats(self, cache: MutableMapping[Any, Any], rows: tuple[int, int]) -> list[tuple[dict[str, Any], list[str]]]:
        """Per feature, in ``names`` order: :meth:`._features.CategoricalFeature.stats` as a metrics entry
        (:func:`._block.entry`)."""
        import numpy as np

        if self.features is not None:
            return [(_block.entry(f.name, self.kind, rows, stats), labels)
                    for f, (stats, labels) in zip(self.features, (f.stats(cache) for f in self.features))]
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
        # Everything per (feature, category) as matrices; the loop below only assembles lists.
        col = np.arange(width)[None, :]
        seen = col < n_ref[:, None]
        unseen = ~seen & (col < k[:, None])
        unseen_rows = np.where(unseen, cc, 0).sum(axis=1)
        categories_current = np.count_nonzero(cc, axis=1)
        unseen_categories = np.count_nonzero(np.where(unseen, cc, 0), axis=1)
        # Most frequent reference categories first, ties by id (a stable sort of -count; others last).
        order = np.argsort(np.where(seen, -rc, 1), axis=1, kind="stable")[:, :REPORT_TOP_CATEGORIES]
        top_r = np.take_along_axis(rc, order, axis=1)
        top_c = np.take_along_axis(cc, order, axis=1)
        shown = np.take_along_axis(global_of, order, axis=1) if show else order
        n_top = np.minimum(n_ref, REPORT_TOP_CATEGORIES)
        in_top = np.arange(order.shape[1])[None, :] < n_top[:, None]
        other_r = np.where(seen, rc, 0).sum(axis=1) - np.where(in_top, top_r, 0).sum(axis=1)
        other_c = np.where(seen, cc, 0).sum(axis=1) - np.where(in_top, top_c, 0).sum(axis=1)
        nameable = (top_r >= min_count).tolist() if show else None
        # Histograms (as finish_histogram makes them): the top categories, then "other", "unseen" and
        # "missing" when not empty; all shares as matrices, one flat list cut per feature.
        has_tail = np.stack(((other_r > 0) | (other_c > 0), unseen_rows > 0, (r_missing > 0) | (c_missing > 0)), axis=1)
        zeros = np.zeros(features, dtype=np.int64)
        r_values = np.concatenate((top_r, np.stack((other_r, zeros, r_missing), axis=1)), axis=1) / r_total
        c_values = np.concatenate((top_c, np.stack((other_c, unseen_rows, c_missing), axis=1)), axis=1) / c_total
        include = np.concatenate((in_top, has_tail), axis=1)
        r_flat, c_flat = r_values[include].tolist(), c_values[include].tolist()
        ends = np.cumsum(np.count_nonzero(include, axis=1)).tolist()
        shapes = (n_top * 8 + has_tail @ np.array([4, 2, 1])).tolist()
        rank_names = [f"category {rank}" for rank in range(1, REPORT_TOP_CATEGORIES + 1)]
        bins_of = {code: rank_names[:code // 8] + [t for t, bit in _TAIL if code & bit] for code in set(shapes)}
        has_missing = has_tail[:, 2].tolist()
        out: list[tuple[dict[str, Any], list[str]]] = []
        r_n, c_n = rows
        start = 0
        for j, (name, nt, nr, ur, kc, ku, gl, shape, end, hm) in enumerate(zip(
                self.names, n_top.tolist(), n_ref.tolist(), unseen_rows.tolist(), categories_current.tolist(),
                unseen_categories.tolist(), shown.tolist(), shapes, ends, has_missing)):
            metric_bins = bins_of[shape][:]
            if nameable is None:
                labels = metric_bins[:]
            else:
                ok = nameable[j]
                labels = [names[gl[r]] if ok[r] else metric_bins[r] for r in range(nt)] + metric_bins[nt:]
            r_hist, c_hist = r_flat[start:end], c_flat[start:end]
            start = end
            stats: dict[str, Any] = {
                "feature": name, "kind": "categorical", "reference_rows": r_n, "current_rows": c_n,
                "psi": psi[j],
                "categories_reference": nr,
                "categories_current": kc,
                "unseen_categories": ku,
                "unseen_rows": ur,
                "unseen_fraction": json_float(ur / cur_rows) if cur_rows else None,
                "histogram": {"bins": metric_bins, "reference": r_hist, "current": c_hist},
                "reference_missing_fraction": r_hist[-1] if hm else 0.0,
                "current_missing_fraction": c_hist[-1] if hm else 0.0,
            }
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
