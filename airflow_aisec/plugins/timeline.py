"""Verdicts per day for the overview: counts, and the geometry of a small server-rendered SVG chart.

The overview counts every gate result in scope (:func:`airflow_aisec.plugins.results.load_overview`);
each one whose XCom timestamp (written by Airflow's DB, not by the task) falls in the window is
also added here, under the verdict the overview shows for it (``unverified`` when the audit
trail does not confirm it). Days are UTC calendar days, oldest first, today last.

The chart is plain SVG markup produced by a Jinja macro (``_timeline.html``) from the numbers
computed here: no script, no inline style (colours come from ``aisec.css`` classes), so the
page's strict CSP is unchanged.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Any

#: The verdicts drawn, bottom of a bar first.
SERIES = ("pass", "warn", "fail", "error", "unverified")
DEFAULT_DAYS = 14
MAX_DAYS = 90

# Chart geometry (SVG user units; the SVG scales to the page width).
WIDTH, HEIGHT = 720, 170
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 10, 24


def _day_of(timestamp: Any) -> _dt.date | None:
    """The UTC day of a datetime or ISO string; None when it cannot be read."""
    if isinstance(timestamp, str):
        try:
            timestamp = _dt.datetime.fromisoformat(timestamp)
        except ValueError:
            return None
    if not isinstance(timestamp, _dt.datetime):
        return None
    if timestamp.tzinfo is not None:
        timestamp = timestamp.astimezone(_dt.UTC)
    return timestamp.date()


@dataclass
class VerdictTimeline:
    """Verdict counts per UTC day over the last ``days`` days (today included)."""

    days: int = DEFAULT_DAYS
    today: _dt.date = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).date())
    counts: dict[_dt.date, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.days = max(1, min(int(self.days), MAX_DAYS))
        self.counts = {self.start + _dt.timedelta(days=i): dict.fromkeys(SERIES, 0) for i in range(self.days)}

    @property
    def start(self) -> _dt.date:
        return self.today - _dt.timedelta(days=self.days - 1)

    def add(self, timestamp: Any, verdict: str) -> None:
        """Count one result; outside the window, or a verdict not drawn (pending): ignored."""
        day = _day_of(timestamp)
        bucket = self.counts.get(day) if day is not None else None
        if bucket is not None and verdict in bucket:
            bucket[verdict] += 1

    @property
    def totals(self) -> dict[str, int]:
        return {v: sum(day[v] for day in self.counts.values()) for v in SERIES}

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    def series(self) -> list[dict[str, Any]]:
        """One entry per day, oldest first: ``{"date": "YYYY-MM-DD", "pass": n, ..., "total": n}``."""
        return [
            {"date": day.isoformat(), **bucket, "total": sum(bucket.values())}
            for day, bucket in sorted(self.counts.items())
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "start": self.start.isoformat(),
            "end": self.today.isoformat(),
            "timezone": "UTC",
            "verdicts": list(SERIES),
            "totals": self.totals,
            "series": self.series(),
        }

    # --- chart geometry -------------------------------------------------------------------------
    def chart(self) -> dict[str, Any]:
        """Numbers the SVG macro draws: bars (stacked rectangles), y ticks, x labels."""
        series = self.series()
        peak = max((d["total"] for d in series), default=0)
        step = _nice_step(peak)
        top = max(step, math.ceil(peak / step) * step) if peak else 1
        plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
        slot = plot_w / len(series)
        bar_w = max(2.0, min(28.0, slot * 0.7))
        label_every = max(1, math.ceil(len(series) / 10))
        bars = []
        for i, day in enumerate(series):
            x = LEFT + i * slot + (slot - bar_w) / 2
            y = TOP + plot_h
            segments = []
            for verdict in SERIES:
                n = day[verdict]
                if not n:
                    continue
                h = plot_h * n / top
                y -= h
                segments.append(
                    {
                        "verdict": verdict,
                        "n": n,
                        "x": round(x, 2),
                        "y": round(y, 2),
                        "w": round(bar_w, 2),
                        "h": round(h, 2),
                    }
                )
            label = None
            if (len(series) - 1 - i) % label_every == 0:  # always label today
                label = {"x": round(LEFT + i * slot + slot / 2, 2), "text": day["date"][5:]}
            bars.append(
                {
                    "date": day["date"],
                    "total": day["total"],
                    "segments": segments,
                    "label": label,
                    "summary": ", ".join(f"{day[v]} {v}" for v in SERIES if day[v]) or "no results",
                    "hit": {"x": round(LEFT + i * slot, 2), "w": round(slot, 2)},
                }
            )
        ticks = (
            [
                {"value": v, "y": round(TOP + plot_h - plot_h * v / top, 2)}
                for v in range(0, int(top) + 1, int(step))
            ]
            if peak
            else [{"value": 0, "y": TOP + plot_h}]
        )
        return {
            "width": WIDTH,
            "height": HEIGHT,
            "left": LEFT,
            "right": WIDTH - RIGHT,
            "top": TOP,
            "bottom": TOP + plot_h,
            "bars": bars,
            "ticks": ticks,
            "peak": peak,
        }


def _nice_step(peak: int) -> int:
    """A tick step giving at most ~4 ticks: 1, 2, 5, 10, 20, 50, ..."""
    if peak <= 4:
        return 1
    raw = peak / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * magnitude >= raw:
            return int(m * magnitude)
    return int(10 * magnitude)
