"""The posture view's building blocks: the coverage matrix (DAG x gate type) and metrics as tables
and small charts instead of JSON.

Both produce plain numbers and strings for the Jinja macros (``_posture.html``): charts are SVG
rectangles sized here, no script and no inline style, so the page CSP stays strict. Every value
shown is still autoescaped by the templates (metrics and names come from task output).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: Largest nested table / chart drawn; the rest is counted, not shown.
MAX_ROWS = 60
MAX_COLUMNS = 12
BAR_WIDTH = 120  # SVG user units of the longest bar
SPARK_W, SPARK_H = 160, 28


@dataclass
class CoverageMatrix:
    """Latest shown verdict per (DAG, gate type) among the results it is given (newest first)."""

    cells: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    gates: set[str] = field(default_factory=set)

    def add(self, *, dag_id: str, gate: str | None, verdict: str, run_id: str, task_id: str,
            timestamp: str | None) -> None:
        """Record one result; the first one seen per cell is kept (callers feed newest first)."""
        row = self.cells.setdefault(dag_id, {})
        if not gate:
            return  # an unreadable document names no gate: the DAG still gets its row
        self.gates.add(gate)
        row.setdefault(gate, {"verdict": verdict, "run_id": run_id, "task_id": task_id, "timestamp": timestamp})

    @property
    def dag_ids(self) -> list[str]:
        return sorted(self.cells)

    @property
    def columns(self) -> list[str]:
        return sorted(self.gates)

    def cell(self, dag_id: str, gate: str) -> dict[str, Any] | None:
        """The latest result of that gate type in that DAG; None: the DAG has no such gate."""
        return self.cells.get(dag_id, {}).get(gate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gates": self.columns,
            "dags": [{"dag_id": d, "cells": {g: self.cell(d, g) for g in self.columns}} for d in self.dag_ids],
        }


# --- metrics -----------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def fmt(value: Any) -> str:
    """One scalar as text: floats to 6 significant digits, everything else as is."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _bars(pairs: list[tuple[str, Any]]) -> list[dict[str, Any]] | None:
    """Bar widths for numeric values (None when any value is not a number or all are zero)."""
    if not pairs or not all(_is_number(v) for _, v in pairs):
        return None
    peak = max(abs(v) for _, v in pairs)
    if not peak:
        return None
    return [{"label": k, "text": fmt(v), "w": round(BAR_WIDTH * abs(v) / peak, 2), "negative": v < 0}
            for k, v in pairs]


def _sparkline(values: list[Any]) -> dict[str, Any] | None:
    numbers = [v for v in values if _is_number(v)]
    if len(numbers) != len(values) or len(numbers) < 2:
        return None
    lo, hi = min(numbers), max(numbers)
    span = (hi - lo) or 1.0
    step = SPARK_W / (len(numbers) - 1)
    points = " ".join(f"{round(i * step, 2)},{round(SPARK_H - 2 - (v - lo) / span * (SPARK_H - 4), 2)}"
                      for i, v in enumerate(numbers))
    return {"points": points, "w": SPARK_W, "h": SPARK_H, "min": fmt(lo), "max": fmt(hi), "n": len(numbers)}


def metric_block(name: str, value: Any) -> dict[str, Any]:
    """How one metric is shown: ``scalar``, ``list`` (sparkline and values), ``mapping`` (key/value
    table with bars when numeric), ``table`` (rows x columns) or ``json`` (anything else)."""
    if _is_scalar(value):
        return {"kind": "scalar", "name": name, "text": fmt(value)}
    if isinstance(value, list) and all(_is_scalar(v) for v in value):
        return {"kind": "list", "name": name, "entries": [fmt(v) for v in value[:MAX_ROWS]],
                "more": max(0, len(value) - MAX_ROWS), "spark": _sparkline(value)}
    if isinstance(value, dict) and all(_is_scalar(v) for v in value.values()):
        pairs = sorted(value.items(), key=lambda kv: str(kv[0]))[:MAX_ROWS]
        return {"kind": "mapping", "name": name, "rows": [(str(k), fmt(v)) for k, v in pairs],
                "bars": _bars([(str(k), v) for k, v in pairs]), "more": max(0, len(value) - MAX_ROWS)}
    rows = _table_rows(value)
    if rows is not None:
        columns: list[str] = []
        for _, cells in rows:
            columns.extend(c for c in cells if c not in columns)
        columns = columns[:MAX_COLUMNS]
        total = len(value)
        return {"kind": "table", "name": name, "columns": columns,
                "rows": [(label, [fmt(cells.get(c)) if c in cells else "" for c in columns])
                         for label, cells in rows[:MAX_ROWS]],
                "more": max(0, total - MAX_ROWS)}
    return {"kind": "json", "name": name, "text": _json(value), "more": 0}


def _table_rows(value: Any) -> list[tuple[str, dict[str, Any]]] | None:
    """A mapping of mappings, or a list of mappings, whose cells are scalars: (row label, cells)."""
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        items = [(str(k), v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))]
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        items = [(str(i + 1), v) for i, v in enumerate(value)]
    else:
        return None
    if not all(_is_scalar(c) for _, cells in items for c in cells.values()):
        return None
    return [(label, {str(k): v for k, v in cells.items()}) for label, cells in items]


def _json(value: Any) -> str:
    import json

    try:
        return json.dumps(value, sort_keys=True, indent=1, default=str)
    except (TypeError, ValueError):
        return str(value)


def metric_blocks(metrics: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Metrics split for display: ``scalars`` in one table, then one block per structured metric."""
    scalars, structured = [], []
    for name, value in sorted((metrics or {}).items()):
        block = metric_block(str(name), value)
        (scalars if block["kind"] == "scalar" else structured).append(block)
    return {"scalars": scalars, "structured": structured}
