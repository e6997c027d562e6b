"""Bounded result documents: what a gate publishes stays small whatever its input.

A result goes to XCom, to the audit trail (whose records are read back only up to
:data:`~airflow_aisec.core.evidence.MAX_RECORD_BYTES`), to ``--json`` and to the UI. A hostile or merely wide
input would make it grow with the input: a 100,000-column table's drift check raises ~180,000 findings
and one metrics entry per feature, ~100 MB of JSON, a trail record the trail's own verifier refused.

So a result lists at most :data:`MAX_FINDINGS_LISTED` findings and :data:`MAX_METRIC_ITEMS` items of any
metrics list or mapping (top level, and one level down); what is left out is counted, never dropped
silently (``findings_omitted``, ``metrics_omitted``). The verdict is resolved on every finding before
this, and the listed findings keep at least one finding of each (rule, severity, enforcement, waived):
the rules a person is asked to approve (:func:`~airflow_aisec.core.verdict.assess_approval`) are the
same as on the full list. Findings are listed blocking first, then warnings, then the rest, each in the
check's order. A gate's full detail stays in its report (e.g. the drift HTML report).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

#: Findings a result lists at most (the rest are counted per rule in ``findings_omitted``).
MAX_FINDINGS_LISTED = 1000
#: Items a metrics list or mapping keeps at most (the rest are counted in ``metrics_omitted``).
MAX_METRIC_ITEMS = 1000


#: A finding's group: (rule, severity, enforcement, waived).
Group = tuple[str, str, "str | None", bool]


def _priority(group: Group) -> int:
    if group[3]:
        return 3
    return {"enforce": 0, "warn": 1}.get(str(group[2]), 2)


def choose_listed(groups: Sequence[Group], limit: int = MAX_FINDINGS_LISTED) -> tuple[list[int], list[dict[str, Any]]]:
    """Which findings a result lists, from each one's group: their positions (in the check's order),
    and the omitted ones counted per group (``{rule, severity, enforcement, waived, findings}``, by rule).

    Decided on the groups alone, so a caller builds only the listed findings (a wide table's check
    raises 100,000s)."""
    if len(groups) <= limit:
        return list(range(len(groups))), []
    keep: set[int] = set()
    seen: set[Group] = set()
    for i, group in enumerate(groups):  # every group keeps its first finding
        if group not in seen:
            seen.add(group)
            keep.add(i)
    for i in sorted(range(len(groups)), key=lambda i: _priority(groups[i])):  # stable: check order within
        if len(keep) >= limit:
            break
        keep.add(i)
    counts = Counter(group for i, group in enumerate(groups) if i not in keep)
    omitted = [{"rule": rule, "severity": severity, "enforcement": enforcement, "waived": waived, "findings": n}
               for (rule, severity, enforcement, waived), n in sorted(counts.items(), key=lambda kv: (
                   kv[0][0], kv[0][1], str(kv[0][2]), kv[0][3]))]
    return sorted(keep), omitted


def _cut(value: Any, limit: int) -> tuple[Any, int]:
    """A list or mapping cut to ``limit`` items, and how many were left out."""
    if isinstance(value, list) and len(value) > limit:
        return value[:limit], len(value) - limit
    if isinstance(value, dict) and len(value) > limit:
        return dict(list(value.items())[:limit]), len(value) - limit
    return value, 0


def bound_metrics(metrics: dict[str, Any], limit: int = MAX_METRIC_ITEMS) -> tuple[dict[str, Any], dict[str, int]]:
    """Metrics with every list / mapping (top level and one level down) cut to ``limit`` items.

    Returns:
        ``(metrics, omitted)``; ``omitted`` maps a key path (``features``, ``columns.email``) to the
        number of items left out. The metrics are returned unchanged (same object) when nothing is cut.
    """
    out: dict[str, Any] = {}
    omitted: dict[str, int] = {}
    for key, value in metrics.items():
        value, dropped = _cut(value, limit)
        if dropped:
            omitted[str(key)] = dropped
        elif isinstance(value, dict):
            inner = {}
            for sub, item in value.items():
                inner[sub], dropped = _cut(item, limit)
                if dropped:
                    omitted[f"{key}.{sub}"] = dropped
            if any(p.startswith(f"{key}.") for p in omitted):
                value = inner
        out[key] = value
    return (out, omitted) if omitted else (metrics, {})
