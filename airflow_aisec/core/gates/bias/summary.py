"""The bias gate over partitioned data: per-group confusion counts per partition, merged, judged once.

A :class:`BiasSummary` is the state of a :class:`~._stream.BiasStream` after one partition, in a
canonical form: label / prediction spellings and the group names of every sensitive column sorted
(missing values' own group last), per grouping the confusion cells of each group (and of each
intersection's value combination, sorted), rows without a sensitive value, and with a score column
the :class:`~airflow_aisec.core.stats.ValueSketch` of scores per (group, label spelling). Merging
renumbers both sides into the union of names and adds the counts, so it is associative and
commutative and its JSON is the same in any merge order.

What a summary holds. Counts, label spellings (e.g. ``"0"``, ``"1"``), the sensitive columns' group
names, and score sketch bins (scores, not linked to rows). Group names are needed to merge the same
group seen by different partitions, and they already appear in the gate's findings and metrics; the
summary is therefore as sensitive as the metrics document and is only ever written where that is
(XCom, the trail). Small groups are hidden (``<small group N>``) when the merged summary is judged,
exactly as in the single-node check: a partition cannot know which groups end up small.

:func:`check_summary` rebuilds the stream from the merged summary and runs the single-node
evaluation (:func:`~._evaluate.evaluate_stream`): verdict, findings and metrics equal
:func:`~.check.check_bias` on the concatenated data (counts exactly). ROC AUC keeps the streaming
promise: exact while a grouping has at most ``sketch_bins`` distinct (group, score) pairs over the
whole data; beyond, each AUC carries ``roc_auc_error_bound`` and a threshold within it fails closed
(the merged sketch's bins may differ from a single node's, both bounds hold).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.partitions import (
    Coverage,
    PartitionSummary,
    merged_id,
    partition_batches,
    partition_order,
    section_digest,
    verified_content,
)
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import numpy as np

    from airflow_aisec.core.gates.bias._columns import BiasColumns
    from airflow_aisec.core.gates.bias._stream import BiasStream
    from airflow_aisec.core.policy.sections.bias import BiasPolicy
    from airflow_aisec.core.result import CheckOutcome
    from airflow_aisec.core.stats import ValueSketch

GATE = "bias"
_S = 4  # label / prediction spellings counted apart (``_stream.SPELLINGS``)


# --- reading one partition ------------------------------------------------------------------------

# --- the stream's state, canonical and mergeable ----------------------------------------------------

@dataclass
class _Grouping:
    combos: list[tuple[int, ...]] | None  # intersections: code tuple of each group; None: one column
    cells: np.ndarray  # (groups, 4, 4) int64: group x label spelling x prediction spelling
    missing_rows: int
    sketch: ValueSketch | None  # score sketch, sketch group = group * 4 + label spelling


@dataclass
class _State:
    rows: int
    label_missing: int
    prediction_missing: int
    score_bad: int
    overflow: bool
    label: list[str]
    prediction: list[str] | None  # None: predictions from score_threshold (spellings 0 / 1)
    overall: np.ndarray  # (4, 4)
    sensitive: dict[str, tuple[list[str], int | None]]  # column -> (group names, id of the missing group)
    groupings: list[_Grouping]

    @classmethod
    def of_stream(cls, stream: BiasStream) -> _State:
        return cls(
            rows=stream.rows, label_missing=stream.label_missing, prediction_missing=stream.prediction_missing,
            score_bad=stream.score_bad, overflow=stream.overflow, label=list(stream.label.names),
            prediction=list(stream.prediction.names) if stream.prediction is not None else None,
            overall=stream.overall.reshape(_S, _S).copy(),
            sensitive={c: (list(ix.names), ix.missing_id) for c, ix in stream.sensitive.items()},
            groupings=[_Grouping(list(g.combos) if len(g.columns) > 1 else None, g.cells.copy(), g.missing_rows,
                                 g.sketch) for g in stream.groupings],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "label_missing": self.label_missing, "prediction_missing": self.prediction_missing,
            "score_bad": self.score_bad, "overflow": self.overflow, "label": self.label,
            "prediction": self.prediction, "overall": self.overall.ravel().tolist(),
            "sensitive": {c: {"names": n, "missing_id": m} for c, (n, m) in sorted(self.sensitive.items())},
            "groupings": [{"combos": None if g.combos is None else [list(c) for c in g.combos],
                           "cells": g.cells.reshape(len(g.cells), _S * _S).tolist(), "missing_rows": g.missing_rows,
                           "sketch": g.sketch.to_json() if g.sketch is not None else None} for g in self.groupings],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> _State:
        import numpy as np

        from airflow_aisec.core.stats import ValueSketch

        def cells(v: Any) -> np.ndarray:
            arr = np.array(v, dtype=np.int64).reshape(-1, _S, _S)
            if (arr < 0).any():
                raise ValueError("negative count")
            return arr

        return cls(
            rows=int(d["rows"]), label_missing=int(d["label_missing"]), prediction_missing=int(d["prediction_missing"]),
            score_bad=int(d["score_bad"]), overflow=bool(d["overflow"]), label=[str(x) for x in d["label"]],
            prediction=None if d["prediction"] is None else [str(x) for x in d["prediction"]],
            overall=cells(d["overall"]).reshape(_S, _S),
            sensitive={str(c): ([str(x) for x in v["names"]], None if v["missing_id"] is None else int(v["missing_id"]))
                       for c, v in d["sensitive"].items()},
            groupings=[_Grouping(None if g["combos"] is None else [tuple(int(x) for x in c) for c in g["combos"]],
                                 cells(g["cells"]), int(g["missing_rows"]),
                                 None if g["sketch"] is None else ValueSketch.from_json(g["sketch"]))
                       for g in d["groupings"]],
        )


def _spelling_map(names: list[str] | None, target: list[str] | None) -> np.ndarray:
    """Old spelling id (0..3) -> canonical id, ``-1`` where the canonical id does not fit (overflow)."""
    import numpy as np

    if names is None or target is None:
        return np.arange(_S)  # score-thresholded predictions: 0 / 1 already
    pos = {n: i for i, n in enumerate(target)}
    out = np.full(_S, -1, dtype=np.int64)
    for i, name in enumerate(names[:_S]):
        out[i] = pos[name] if pos[name] < _S else -1
    return out


def _combine(states: Sequence[_State], max_groups: int, columns: BiasColumns) -> _State:
    """The canonical state of all ``states`` together (one state: its canonical form)."""
    import numpy as np

    from airflow_aisec.core.gates.bias._encoding import MISSING_LABEL
    from airflow_aisec.core.gates.bias._stream import _VALUE_LIMIT

    label = sorted({n for s in states for n in s.label})
    has_pred = states[0].prediction is not None
    prediction = sorted({n for s in states for n in (s.prediction or [])}) if has_pred else None
    for names, col, role in ((label, columns.label, "label"), (prediction or [], columns.prediction, "prediction")):
        if len(names) > _VALUE_LIMIT:
            raise InputDataError(f"{role} column '{col}' is not binary: more than {_VALUE_LIMIT} distinct values")
    sensitive: dict[str, tuple[list[str], int | None]] = {}
    code_pos: dict[str, dict[Any, int]] = {}
    for col in columns.sensitive:
        real = sorted({n for s in states for i, n in enumerate(s.sensitive[col][0]) if i != s.sensitive[col][1]})
        missing = any(s.sensitive[col][1] is not None for s in states)
        names = real + ([MISSING_LABEL] if missing else [])
        if len(names) > max_groups:
            raise InputDataError(f"sensitive column '{col}' has more than max_groups ({max_groups}) distinct "
                                 "values: is it a categorical column?")
        sensitive[col] = (names, len(real) if missing else None)
        code_pos[col] = {**{n: i for i, n in enumerate(real)}, None: len(real)}
    groupings_cols = [(c,) for c in columns.sensitive] + list(columns.intersections)
    out = _State(rows=sum(s.rows for s in states), label_missing=sum(s.label_missing for s in states),
                 prediction_missing=sum(s.prediction_missing for s in states),
                 score_bad=sum(s.score_bad for s in states),
                 overflow=any(s.overflow for s in states) or len(label) > _S or len(prediction or []) > _S,
                 label=label, prediction=prediction, overall=np.zeros((_S, _S), dtype=np.int64),
                 sensitive=sensitive, groupings=[])
    maps = []  # per state: (label map, prediction map, per column old code -> new code)
    for s in states:
        lmap, pmap = _spelling_map(s.label, label), _spelling_map(s.prediction, prediction)
        cmaps = {}
        for col in columns.sensitive:
            names, miss = s.sensitive[col]
            cmaps[col] = np.array([code_pos[col][None if i == miss else n] for i, n in enumerate(names)],
                                  dtype=np.int64)
        maps.append((lmap, pmap, cmaps))
        _add_cells(out.overall[None], s.overall[None], np.zeros(1, dtype=np.int64), lmap, pmap)
    for k, cols in enumerate(groupings_cols):
        gmaps = []
        if len(cols) == 1:
            combos = None
            size = len(sensitive[cols[0]][0])
            for _, _, cmaps in maps:
                gmaps.append(cmaps[cols[0]])
        else:
            new_keys = [[tuple(int(cm[c][code]) for c, code in zip(cols, combo)) for combo in s.groupings[k].combos]
                        for s, (_, _, cm) in zip(states, maps)]
            combos = sorted({key for keys in new_keys for key in keys})
            if len(combos) > max_groups:
                raise InputDataError(f"sensitive column(s) '{' & '.join(cols)}' form more than max_groups "
                                     f"({max_groups}) groups")
            pos = {key: i for i, key in enumerate(combos)}
            size = len(combos)
            gmaps = [np.array([pos[key] for key in keys], dtype=np.int64) for keys in new_keys]
        cells = np.zeros((size, _S, _S), dtype=np.int64)
        sketch = None
        for s, (lmap, pmap, _), gmap in zip(states, maps, gmaps):
            g = s.groupings[k]
            _add_cells(cells, g.cells, gmap, lmap, pmap)
            if g.sketch is not None:
                # sketch group = group * 4 + label spelling: renumber both parts
                old = np.arange(len(gmap) * _S)
                ny = lmap[old % _S]
                smap = np.where(ny >= 0, gmap[old // _S] * _S + ny, -1) if len(gmap) else old
                moved = g.sketch.regrouped(smap)
                sketch = moved if sketch is None else sketch.merged(moved)
        out.groupings.append(_Grouping(combos, cells, sum(s.groupings[k].missing_rows for s in states), sketch))
    return out


def _add_cells(into: np.ndarray, cells: np.ndarray, gmap: np.ndarray, lmap: np.ndarray, pmap: np.ndarray) -> None:
    """``into[gmap[g], lmap[y], pmap[p]] += cells[g, y, p]`` (cells with an unmapped spelling dropped)."""
    import numpy as np

    if not len(cells):
        return
    g, y, p = np.meshgrid(np.arange(len(cells)), np.arange(_S), np.arange(_S), indexing="ij")
    ny, np_ = lmap[y], pmap[p]
    ok = (ny >= 0) & (np_ >= 0) & (cells > 0)
    np.add.at(into, (gmap[g[ok]], ny[ok], np_[ok]), cells[ok])


def _to_stream(state: _State, section: BiasPolicy, columns: BiasColumns) -> BiasStream:
    """A :class:`BiasStream` holding ``state``, as if it had read the data itself."""
    import numpy as np

    from airflow_aisec.core.gates.bias._encoding import MISSING_LABEL
    from airflow_aisec.core.gates.bias._stream import _VALUE_LIMIT, BiasStream
    from airflow_aisec.core.gates.bias._stream import _Grouping as StreamGrouping
    from airflow_aisec.core.stats import CategoryIndex

    stream = BiasStream(section, columns)
    stream.label = CategoryIndex.from_names(state.label, lower=True, limit=_VALUE_LIMIT)
    if state.prediction is not None:
        stream.prediction = CategoryIndex.from_names(state.prediction, lower=True, limit=_VALUE_LIMIT)
    stream.rows, stream.label_missing = state.rows, state.label_missing
    stream.prediction_missing, stream.score_bad, stream.overflow = state.prediction_missing, state.score_bad, state.overflow
    stream.overall = state.overall.ravel().astype(np.int64)
    mode_name = MISSING_LABEL if section.missing_sensitive == "group" else None
    stream.sensitive = {c: CategoryIndex.from_names(n, missing_id=m, missing_name=mode_name, limit=None)
                        for c, (n, m) in state.sensitive.items()}
    stream.groupings = []
    cols_list = [(c,) for c in columns.sensitive] + list(columns.intersections)
    for cols, g in zip(cols_list, state.groupings):
        grouping = StreamGrouping(cols, [stream.sensitive[c] for c in cols], section, columns.score is not None)
        grouping.cells = g.cells
        grouping.combos = {key: i for i, key in enumerate(g.combos or [])}
        grouping.missing_rows = g.missing_rows
        if g.sketch is not None:
            grouping.sketch = g.sketch
        stream.groupings.append(grouping)
    return stream


# --- the summary ----------------------------------------------------------------------------------

def _columns_json(columns: BiasColumns) -> dict[str, Any]:
    return {"label": columns.label, "prediction": columns.prediction, "score": columns.score,
            "sensitive": list(columns.sensitive), "intersections": [list(c) for c in columns.intersections]}


def _columns_from_json(d: dict[str, Any]) -> BiasColumns:
    from airflow_aisec.core.gates.bias._columns import BiasColumns

    return BiasColumns(label=str(d["label"]), prediction=d["prediction"], score=d["score"],
                       sensitive=tuple(str(c) for c in d["sensitive"]),
                       intersections=tuple(tuple(str(c) for c in cols) for cols in d["intersections"]))


@dataclass
class BiasSummary(PartitionSummary):
    gate: str
    partition: str
    policy: str
    columns: dict[str, Any]
    max_groups: int  # the section's (its digest is in ``policy``): merging refuses more groups
    coverage: Coverage
    state: dict[str, Any]  # canonical :class:`_State` JSON

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.gate, "partition": self.partition, "policy": self.policy, "columns": self.columns,
                "max_groups": self.max_groups, "coverage": self.coverage.to_json(), "state": self.state}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BiasSummary:
        c = verified_content(d)
        try:
            summary = cls(gate=str(c["gate"]), partition=str(c["partition"]), policy=str(c["policy"]),
                          columns=dict(c["columns"]), max_groups=int(c["max_groups"]),
                          coverage=Coverage.from_json(c["coverage"]), state=dict(c["state"]))
            _State.from_json(summary.state)  # well-formed
            _columns_from_json(summary.columns)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise InputDataError(f"a bias partition summary is malformed ({type(exc).__name__})") from None
        return summary

    def merge(self, other: BiasSummary) -> BiasSummary:
        self.require_same(other)  # same gate first: another gate's summary lacks these fields
        self.require_same(other, policy=(self.policy, other.policy), columns=(self.columns, other.columns),
                          max_groups=(self.max_groups, other.max_groups))
        columns = _columns_from_json(self.columns)
        state = _combine([_State.from_json(self.state), _State.from_json(other.state)], self.max_groups, columns)
        coverage = self.coverage.merge(other.coverage)
        return BiasSummary(gate=GATE, partition=merged_id(coverage.parts), policy=self.policy, columns=self.columns,
                           max_groups=self.max_groups, coverage=coverage, state=state.to_json())


def summarize_partition(section: BiasPolicy, partition_uri: str, *, partition_id: str | None = None,
                        s3_client: Any = None, fmt: str | None = None, label: str | None = None,
                        prediction: str | None = None, score: str | None = None,
                        sensitive: Sequence[str] | str | None = None, **gate_inputs: Any) -> BiasSummary:
    """Stream one partition (a CSV / Parquet file, or ``file.parquet#row_group=N``) into a summary.

    Columns as for :func:`~.check.check_bias`. Other ``gate_inputs`` (report settings) are unused here.

    Raises:
        ConfigurationError: columns not resolvable. InputDataError: bad input (as the single-node check,
        for what one partition can tell: a non-numeric score, too many groups).
    """
    from airflow_aisec.core.gates.bias._columns import resolve_columns
    from airflow_aisec.core.gates.bias._stream import BiasStream

    columns = resolve_columns(section, label=label, prediction=prediction, score=score, sensitive=sensitive)
    partition_id = partition_id or str(partition_uri)
    with partition_batches(partition_uri, columns.all, s3_client=s3_client, fmt=fmt) as (schema, batches, uri, digest):
        stream = BiasStream(section, columns, schema)
        for batch in batches:
            stream.add(batch)
    state = _combine([_State.of_stream(stream)], section.max_groups, columns).to_json()
    return BiasSummary(gate=GATE, partition=partition_id, policy=section_digest(section),
                       columns=_columns_json(columns), max_groups=section.max_groups,
                       coverage=Coverage.single(partition_id, uri, partition_order(partition_uri), stream.rows,
                                                sha256=digest),
                       state=state)


def check_summary(section: BiasPolicy, summary: BiasSummary, *, label: str | None = None,
                  prediction: str | None = None, score: str | None = None,
                  sensitive: Sequence[str] | str | None = None, report: str | None = None,
                  report_meta: Mapping[str, Any] | None = None, report_s3_client: Any = None,
                  data: str | None = None, **gate_inputs: Any) -> CheckOutcome:
    """:func:`~.check.check_bias`'s verdict, findings and metrics on the merged summary.

    Raises:
        ConfigurationError: a summary of another policy section or other columns.
        InputDataError: rows of a partition not scanned, and the single-node check's bad-input errors.
    """
    from airflow_aisec.core.gates.bias._columns import resolve_columns
    from airflow_aisec.core.gates.bias._evaluate import evaluate_stream
    from airflow_aisec.core.result import CheckOutcome, InputRef

    if summary.gate != GATE or summary.policy != section_digest(section):
        raise ConfigurationError("the bias summaries were made under a different bias policy section")
    columns = resolve_columns(section, label=label, prediction=prediction, score=score, sensitive=sensitive)
    if _columns_json(columns) != summary.columns:
        raise ConfigurationError("the bias summaries were made for other label / prediction / score / sensitive "
                                 "columns")
    summary.coverage.offsets()  # every row of every partition seen exactly once
    files = summary.coverage.files()
    state = _State.from_json(summary.state)
    if state.rows == 0:
        raise InputDataError(f"{data or summary.coverage.root()}: the table is empty")
    evaluation = evaluate_stream(section, _to_stream(state, section, columns))
    inputs = [InputRef(uri=u, sha256=d) for u, d in files]
    outcome = CheckOutcome(findings=evaluation.findings, metrics=evaluation.metrics, inputs=inputs)
    outcome.metrics["partitions"] = {"count": len(summary.coverage.parts)}
    if report:
        from airflow_aisec.core.gates.bias._report import render_bias_report
        from airflow_aisec.core.report import write_report

        html_text = render_bias_report(evaluation.metrics, evaluation.findings, inputs=inputs, meta=report_meta or {})
        ref, digest = write_report(html_text, report, name="bias-report", s3_client=report_s3_client)
        outcome.reports.append(ref)
        outcome.metrics["report_sha256"] = digest
    return outcome
