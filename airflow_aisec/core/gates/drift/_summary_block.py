"""Partition-summary states of a small table's numeric features, all features at once.

A drift summary (:mod:`.summary`) keeps, per numeric feature, a value sketch, and for the reference
the quantile edges and bin counts. Made feature by feature (:class:`._features.NumericFeature`), a
wide table (100,000 columns x 5 rows) pays numpy's per-call costs a dozen times per feature: most of
a minute. While a table is small (:func:`._block.small_table`) its numeric columns are one matrix
(:func:`._block.value_matrix`) and the states are made here for every feature at once, equal to the
per-feature ones byte for byte (a test compares them): a small column's sketch is exact (at most
``SMALL_ROWS`` values, and ``sketch_bins`` is at least 10,000), i.e. its distinct values with their
counts, and the edges and bin counts are :mod:`._block`'s.

The merge node goes the other way (:func:`value_matrices`): while both tables are small, it rebuilds
their value matrices from the exact sketches and compares them as the single-node check compares
small tables (:func:`._block.matrix_stats`), so a partitioned check of a small table gives the
single-node check's numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.drift import _block
from airflow_aisec.core.policy.sections.drift import DriftPolicy

if TYPE_CHECKING:
    import numpy as np


def _sorted_keys(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each column's finite values as :func:`~airflow_aisec.core.stats.order_keys`, sorted, missing
    values last (features x rows), and the number of values per column."""
    import numpy as np

    from airflow_aisec.core.stats import order_keys

    missing = np.isnan(values)
    keys = order_keys(np.where(missing, 0.0, values))
    keys[missing] = np.iinfo(np.uint64).max
    keys = np.sort(keys.T, axis=1)
    return keys, np.count_nonzero(~missing, axis=0)


def _sketches(keys: np.ndarray, counts: np.ndarray, policy: DriftPolicy) -> list[dict[str, Any]]:
    """Each column's :meth:`ValueSketch.to_json` (``policy.sketch_bins``), from :func:`_sorted_keys`."""
    import numpy as np

    from airflow_aisec.core.stats import ValueSketch, key_values, packed_slices

    features, rows = keys.shape
    starts = np.arange(rows)[None, :] < counts[:, None]
    starts[:, 1:] &= keys[:, 1:] != keys[:, :-1]  # the first of each run of equal keys
    flat = np.flatnonzero(starts)
    feature, row = flat // max(rows, 1), flat % max(rows, 1)
    same = np.append(feature[1:] == feature[:-1], False)
    run = np.where(same, np.append(row[1:], 0), counts[feature]) - row
    lo = keys.ravel()[flat]
    ends = np.concatenate(([0], np.cumsum(np.bincount(feature, minlength=features)))).tolist()
    los, runs = packed_slices(lo, ends, "<u8"), packed_slices(run, ends, "<i8")
    zeros: dict[int, str] = {}
    max_bins = ValueSketch(policy.sketch_bins).max_bins
    out = []
    for j, (lo_text, run_text) in enumerate(zip(los, runs)):
        size = ends[j + 1] - ends[j]
        if size > max_bins:  # not exact (cannot happen under the policy's limits): the sketch itself
            sketch = ValueSketch(policy.sketch_bins)
            sketch.add(key_values(keys[j, :counts[j]]))
            out.append(sketch.to_json())
            continue
        group = zeros.get(size)
        if group is None:
            group = zeros[size] = packed_slices(np.zeros(size, dtype=np.int64), [0, size], "<i8")[0]
        # One value per bin: a bin's largest key is its smallest.
        out.append({"max_bins": max_bins, "shift": 0, "group": group, "lo": lo_text, "hi": lo_text,
                    "count": run_text})
    return out


def reference_states(values: np.ndarray, policy: DriftPolicy) -> list[dict[str, Any]]:
    """Each column's reference state (rows, missing, sketch, edges, bin counts) of a small reference
    table's (rows x features) values; every column has a value (:meth:`._block.NumericBlock.end_reference`)."""
    import numpy as np

    from airflow_aisec.core.stats import key_values

    rows = len(values)
    keys, counts = _sorted_keys(values)
    present = np.arange(rows)[None, :] < counts[:, None]
    ordered = np.where(present, key_values(keys), np.nan).T  # rows x features, as np.sort would, missing last
    edges, first = _block._edges(ordered, counts, policy.bins)
    bins = _block._bin_counts(values, edges, first)
    widths = first.sum(axis=1)
    edge_texts = _float_slices(edges[first], np.concatenate(([0], np.cumsum(widths))).tolist())
    bin_lists = _block._prefix_lists(bins, widths + 1)
    return [{"rows": rows, "missing": rows - n, "sketch": sketch, "edges": edge_text, "bins": bin_list}
            for n, sketch, edge_text, bin_list in zip(counts.tolist(), _sketches(keys, counts, policy), edge_texts,
                                                       bin_lists)]


def current_states(values: np.ndarray, edges: Sequence[np.ndarray], policy: DriftPolicy) -> list[dict[str, Any]]:
    """Each column's current state (rows, missing, sketch, counts in the reference bins ``edges``) of a
    small partition's (rows x features) values."""
    import numpy as np

    rows = len(values)
    widths = np.fromiter(map(len, edges), dtype=np.intp, count=len(edges))
    padded = np.full((len(edges), int(widths.max(initial=0))), np.inf)
    used = np.arange(padded.shape[1])[None, :] < widths[:, None]
    if len(edges):
        padded[used] = np.concatenate(edges)
    bins = _block._bin_counts(values, padded, used)
    keys, counts = _sorted_keys(values)
    return [{"rows": rows, "missing": rows - n, "sketch": sketch, "bins": bin_list}
            for n, sketch, bin_list in zip(counts.tolist(), _sketches(keys, counts, policy),
                                           _block._prefix_lists(bins, widths + 1))]


def _float_slices(values: np.ndarray, ends: Sequence[int]) -> list[str]:
    """:func:`.summary._floats` of each slice ``values[ends[i]:ends[i + 1]]``."""
    import base64

    import numpy as np

    raw = np.ascontiguousarray(values, dtype="<f8").tobytes()
    return [base64.b64encode(raw[start * 8:end * 8]).decode() for start, end in itertools.pairwise(ends)]


def value_matrices(states: Sequence[dict[str, Any]], rows: int) -> np.ndarray | None:
    """The (rows x features) values whose exact sketches ``states`` hold, missing values last; None
    when a sketch is not exact (its bins merged values) or does not account for ``rows``."""
    import numpy as np

    from airflow_aisec.core.stats import key_values, unpacked_many

    for state in states:
        if int(state["sketch"]["shift"]) != 0 or int(state["rows"]) != rows:
            return None
    lo, sizes = unpacked_many([state["sketch"]["lo"] for state in states], "<u8")
    run, run_sizes = unpacked_many([state["sketch"]["count"] for state in states], "<i8")
    missing = np.fromiter((int(state["missing"]) for state in states), dtype=np.int64, count=len(states))
    feature_of_bin = np.repeat(np.arange(len(states)), sizes)
    if (sizes != run_sizes).any() or (run <= 0).any() \
            or (np.bincount(feature_of_bin, weights=run, minlength=len(states)) != rows - missing).any():
        return None  # the counts do not account for the values
    values = key_values(np.repeat(lo, run))
    feature = np.repeat(feature_of_bin, run)
    per_feature = np.bincount(feature, minlength=len(states))
    row = np.arange(len(values)) - np.concatenate(([0], np.cumsum(per_feature)))[feature]
    out = np.full((rows, len(states)), np.nan)
    out[row, feature] = values
    return out
