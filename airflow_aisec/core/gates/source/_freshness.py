"""Freshness: the age of the data, by its modification time or the newest value of a timestamp column."""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.source._context import Context, finding, utc

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.gates.source._origin import Target

#: Clock skew tolerated between the data's clock and this host's before a timestamp counts as "in the future".
FUTURE_SKEW_SECONDS = 300


def _fmt_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _newest_timestamp(arr: pa.Array) -> _dt.datetime | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = arr.type
    if pa.types.is_timestamp(t):
        arr = pc.cast(arr, pa.timestamp("us", tz=t.tz), safe=False)
    elif pa.types.is_date(t):
        arr = pc.cast(arr, pa.timestamp("us"))
    newest = pc.max(arr).as_py()
    return utc(newest) if newest is not None else None


class NewestTimestamp:
    """Streaming maximum of a timestamp/date column (UTC)."""

    def __init__(self, column: str):
        self.column = column
        self.value: _dt.datetime | None = None

    def update(self, batch: pa.RecordBatch) -> None:
        newest = _newest_timestamp(batch.column(batch.schema.get_field_index(self.column)))
        if newest is not None and (self.value is None or newest > self.value):
            self.value = newest


def freshness_findings(ctx: Context, target: Target, newest: NewestTimestamp | None,
                       last_modified: _dt.datetime | None, metrics: dict[str, Any]) -> None:
    """Append a ``stale`` finding when the data is older than ``max_age`` (or its age cannot be judged)."""
    freshness = ctx.section.freshness
    if freshness is None:
        return
    if freshness.column:
        stamp = newest.value if newest is not None else None
        basis = f"newest '{freshness.column}' value"
    else:
        stamp = utc(last_modified) if last_modified else None
        basis = "modification time"
    limit = freshness.max_age.total_seconds()
    if stamp is None:
        ctx.findings.append(finding(
            "stale", f"{target.uri}: no {basis} to judge freshness by", count=1, uri=target.uri,
            max_age_seconds=limit,
        ))
        return
    age = (ctx.now - stamp).total_seconds()
    if age < -FUTURE_SKEW_SECONDS:
        # A date ahead of now proves nothing about freshness (one forged row would make any data "new").
        ctx.findings.append(finding(
            "stale", f"{target.uri}: its {basis} is {_fmt_age(-age)} in the future; freshness cannot be judged",
            count=1, uri=target.uri, age_seconds=round(age, 3), max_age_seconds=limit,
        ))
        return
    age = max(age, 0.0)
    metrics["age_seconds"] = round(age, 3)
    if age > limit:
        ctx.findings.append(finding(
            "stale", f"{target.uri}: data is {_fmt_age(age)} old by its {basis} (max {_fmt_age(limit)})",
            count=1, uri=target.uri, age_seconds=round(age, 3), max_age_seconds=limit,
        ))
