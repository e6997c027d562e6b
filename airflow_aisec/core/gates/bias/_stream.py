"""The bias gate's counts, accumulated record batch by record batch (memory flat in the number of rows).

Every fairness metric is a function of four confusion counts per group; ROC AUC of the scores'
ranks within each group. :class:`BiasStream` keeps, per grouping (a sensitive column or an
intersection), counts indexed by (group, label spelling, prediction spelling) and, with a score
column, a :class:`~airflow_aisec.core.stats.ValueSketch` of the scores per (group, label
spelling). Which spelling is the positive label is decided at the end, on the whole column, exactly
as for a table in memory. Memory: groups x 16 counts, one sketch of at most ``sketch_bins`` bins per
grouping, and one record batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.bias._columns import BiasColumns
from airflow_aisec.core.gates.bias._encoding import (
    binary_lut,
    encode_sensitive,
    score_values,
    sensitive_index,
)
from airflow_aisec.core.policy.sections.bias import BiasPolicy
from airflow_aisec.core.stats import CategoryIndex, ValueSketch
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from airflow_aisec.core.gates.bias._metrics import ConfusionCounts

#: Spellings of a label / prediction counted apart (e.g. "1", "true", "yes" before the policy maps them).
SPELLINGS = 4
#: Distinct values of a label / prediction column tracked at most (a binary column has two).
_VALUE_LIMIT = 1000


@dataclass
class GroupingCounts:
    """Counts of one grouping after the stream."""

    columns: tuple[str, ...]
    labels: list[str]  # raw group names, one per group
    counts: ConfusionCounts
    missing_rows: int
    auc: Any = None  # callable(keep mask) -> (auc, bound, overall, overall_bound), with a score column


class _Grouping:
    def __init__(self, columns: tuple[str, ...], indexes: list[CategoryIndex], policy: BiasPolicy,
                 with_scores: bool) -> None:
        import numpy as np

        self.columns = columns
        self.name = " & ".join(columns)
        self.indexes = indexes
        self.max_groups = policy.max_groups
        self.combos: dict[tuple[int, ...], int] = {}
        self.cells = np.zeros((0, SPELLINGS, SPELLINGS), dtype=np.int64)
        self.missing_rows = 0
        self.sketch = ValueSketch(policy.sketch_bins) if with_scores else None

    @property
    def n_groups(self) -> int:
        return len(self.indexes[0]) if len(self.columns) == 1 else len(self.combos)

    def _combine(self, codes: list[np.ndarray], valid: np.ndarray) -> np.ndarray:
        """Group ids of an intersection: each combination of values gets an id the first time it is seen."""
        import numpy as np

        space = 1
        combined = np.zeros(int(valid.sum()), dtype=np.int64)
        for index, code in zip(self.indexes, codes):
            size = max(len(index), 1)
            space *= size
            if space >= 2**63:  # int64 would wrap around and merge distinct groups
                raise ConfigurationError(f"intersection '{self.name}' has more value combinations than can be "
                                         "encoded; intersect fewer columns")
            combined = combined * size + code[valid]
        present, inverse = np.unique(combined, return_inverse=True)
        lut = np.empty(len(present), dtype=np.int64)
        for i, combo in enumerate(present.tolist()):
            parts = []
            for index in reversed(self.indexes):
                combo, code = divmod(combo, max(len(index), 1))
                parts.append(code)
            key = tuple(reversed(parts))
            found = self.combos.get(key)
            if found is None:
                if len(self.combos) >= self.max_groups:
                    raise InputDataError(f"sensitive column(s) '{self.name}' form more than max_groups "
                                         f"({self.max_groups}) groups")
                found = self.combos[key] = len(self.combos)
            lut[i] = found
        groups = np.full(len(valid), -1, dtype=np.int64)
        groups[valid] = lut[inverse]
        return groups

    def add(self, codes: list[np.ndarray], y: np.ndarray, p: np.ndarray, scores: np.ndarray | None,
            row_ok: np.ndarray) -> None:
        import numpy as np

        valid = codes[0] >= 0
        for code in codes[1:]:
            valid &= code >= 0
        self.missing_rows += int(len(valid) - np.count_nonzero(valid))
        groups = codes[0] if len(codes) == 1 else self._combine(codes, valid)
        use = valid & row_ok
        g = groups[use]
        size = self.n_groups
        cells = np.bincount((g * SPELLINGS + y[use]) * SPELLINGS + p[use], minlength=size * SPELLINGS * SPELLINGS)
        if len(self.cells) < size:
            grown = np.zeros((size, SPELLINGS, SPELLINGS), dtype=np.int64)
            grown[: len(self.cells)] = self.cells
            self.cells = grown
        self.cells += cells.reshape(size, SPELLINGS, SPELLINGS)
        if self.sketch is not None and scores is not None:
            self.sketch.add(scores[use], g * SPELLINGS + y[use])

    def finish(self, y_lut: np.ndarray, p_lut: np.ndarray) -> GroupingCounts:
        import numpy as np

        from airflow_aisec.core.gates.bias._metrics import ConfusionCounts, roc_auc_from_sketch

        present = np.flatnonzero(self.cells.sum(axis=(1, 2)))
        cells = self.cells[present]
        yes_y, yes_p = y_lut.astype(np.int64), p_lut.astype(np.int64)
        no_y, no_p = 1 - yes_y, 1 - yes_p
        counts = ConfusionCounts(
            tn=np.einsum("gyp,y,p->g", cells, no_y, no_p), fp=np.einsum("gyp,y,p->g", cells, no_y, yes_p),
            fn=np.einsum("gyp,y,p->g", cells, yes_y, no_p), tp=np.einsum("gyp,y,p->g", cells, yes_y, yes_p),
        )
        if len(self.columns) == 1:
            names = self.indexes[0].names
            labels = [names[i] for i in present.tolist()]
        else:
            combos = list(self.combos)
            labels = [", ".join(f"{c}={index.names[code]}" for c, index, code in
                                zip(self.columns, self.indexes, combos[i])) for i in present.tolist()]
        auc = None
        if self.sketch is not None:
            compact = np.full(max(self.n_groups, 1), -1, dtype=np.int64)
            compact[present] = np.arange(len(present))
            sketch = self.sketch.coarsened_to(self.sketch.shift)
            space = max(self.n_groups, 1) * SPELLINGS
            groups_of = compact[np.arange(space) // SPELLINGS]
            label_of = yes_y[np.arange(space) % SPELLINGS]

            def auc(keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
                return roc_auc_from_sketch(sketch, label_of, groups_of, len(present), keep)

        return GroupingCounts(columns=self.columns, labels=labels, counts=counts,
                              missing_rows=self.missing_rows, auc=auc)


class BiasStream:
    """Feed record batches with :meth:`add`, then :meth:`finish` for the counts of every grouping.

    Errors that do not need the whole table (too many groups, a non-numeric score column) are
    raised at once; the others (missing labels, non-binary columns) at :meth:`finish`, with counts
    over the whole table.
    """

    def __init__(self, section: BiasPolicy, columns: BiasColumns, schema: pa.Schema | None = None) -> None:
        import numpy as np
        import pyarrow as pa

        self.section = section
        self.columns = columns
        if columns.score and schema is not None:
            dtype = schema.field(columns.score).type
            if not (pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)):
                raise InputDataError(f"score column '{columns.score}' is not numeric")
        self.label = CategoryIndex(lower=True, limit=_VALUE_LIMIT)
        self.prediction = CategoryIndex(lower=True, limit=_VALUE_LIMIT) if columns.prediction else None
        self.label_missing = self.prediction_missing = self.score_bad = 0
        self.rows = 0
        self.overall = np.zeros(SPELLINGS * SPELLINGS, dtype=np.int64)
        self.overflow = False
        self.sensitive = {c: sensitive_index(c, section.missing_sensitive, section.max_groups)
                          for c in columns.sensitive}
        self.groupings = [
            _Grouping(cols, [self.sensitive[c] for c in cols], section, columns.score is not None)
            for cols in [(c,) for c in columns.sensitive] + list(columns.intersections)
        ]

    def _binary(self, index: CategoryIndex, column: Any, name: str, role: str) -> np.ndarray:
        try:
            return index.encode(column)
        except OverflowError:
            raise InputDataError(f"{role} column '{name}' is not binary: more than {_VALUE_LIMIT} distinct "
                                 "values") from None

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        import numpy as np

        cols = self.columns
        by_name = dict(zip(batch.schema.names, batch.columns))
        n = batch.num_rows
        if n == 0:
            return
        self.rows += n
        y = self._binary(self.label, by_name[cols.label], cols.label, "label")
        self.label_missing += int(np.count_nonzero(y < 0))
        scores = None
        finite = np.ones(n, dtype=bool)
        if cols.score:
            try:
                scores = score_values(by_name[cols.score], cols.score)
            except InputDataError as exc:  # non-finite values: counted over the whole table
                if "is not numeric" in str(exc):
                    raise
                import pyarrow as pa

                column = by_name[cols.score]
                arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
                scores = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
            finite = np.isfinite(scores)
            self.score_bad += int(n - np.count_nonzero(finite))
        if self.prediction is not None:
            p = self._binary(self.prediction, by_name[cols.prediction], cols.prediction, "prediction")
            self.prediction_missing += int(np.count_nonzero(p < 0))
        else:
            assert scores is not None and self.section.score_threshold is not None
            with np.errstate(invalid="ignore"):
                p = (scores >= self.section.score_threshold).astype(np.int64)
        self.overflow |= bool((y >= SPELLINGS).any() or (p >= SPELLINGS).any())
        row_ok = (y >= 0) & (y < SPELLINGS) & (p >= 0) & (p < SPELLINGS) & finite
        self.overall += np.bincount(y[row_ok] * SPELLINGS + p[row_ok], minlength=SPELLINGS * SPELLINGS)
        codes = {c: encode_sensitive(index, by_name[c], c) for c, index in self.sensitive.items()}
        for grouping in self.groupings:
            grouping.add([codes[c] for c in grouping.columns], y, p, scores, row_ok)

    def finish(self) -> tuple[list[GroupingCounts], dict[str, float]]:
        """Counts per grouping and the overall rates (``positive_rate``, ``prediction_rate``).

        Raises:
            InputDataError: empty table, missing or non-binary labels/predictions, bad scores.
        """
        import numpy as np

        section, cols = self.section, self.columns
        if self.rows == 0:
            raise InputDataError("the table is empty")
        y_lut = binary_lut(self.label.names, self.label_missing, cols.label, "label",
                           section.positive_label, section.negative_label)
        if self.score_bad:
            raise InputDataError(f"score column '{cols.score}' has {self.score_bad} missing or non-finite value(s)")
        if self.prediction is not None:
            pos = section.prediction_positive_label
            neg = section.prediction_negative_label
            if pos is None:
                pos, neg = section.positive_label, (neg if neg is not None else section.negative_label)
            p_lut = binary_lut(self.prediction.names, self.prediction_missing, cols.prediction or "", "prediction",
                               pos, neg)
        else:
            p_lut = np.array([0, 1], dtype=np.int8)
        if self.overflow:
            raise InputDataError(f"label or prediction column spells its two values in more than {SPELLINGS} ways")
        y_lut = np.pad(y_lut, (0, SPELLINGS - len(y_lut)))
        p_lut = np.pad(p_lut, (0, SPELLINGS - len(p_lut)))
        overall = self.overall.reshape(SPELLINGS, SPELLINGS)
        rates = {
            "positive_rate": float(overall.sum(axis=1) @ y_lut) / self.rows,
            "prediction_rate": float(overall.sum(axis=0) @ p_lut) / self.rows,
        }
        return [g.finish(y_lut, p_lut) for g in self.groupings], rates
