"""Self-contained HTML reports (the bias and drift gates' reports), with inline SVG charts.

A report is one HTML file: no script, no external stylesheet, font or image
(a Content-Security-Policy ``default-src 'none'`` makes sure of it), so it can
be stored next to the gate result (locally or on S3), attached to a ticket and
opened anywhere. It shows aggregates only (counts, rates, metric values, bin
proportions) and every piece of text that comes from data or configuration
(column names, group names, messages, URIs) is HTML-escaped.

This module holds what every report shares: escaping and number formatting, the charts
(per-group horizontal bars with threshold lines, reference vs current histograms), tables, the
page, and where a report is stored (:func:`report_uri`, :func:`write_report`). Each gate renders
its own content (``core/gates/bias/_report.py``, ``core/gates/drift/_report.py``).
"""

from __future__ import annotations

import hashlib
import html
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_aisec.core.io.storage import is_s3_uri, make_s3_client, parse_s3_uri, translate_s3_errors
from airflow_aisec.core.result import Finding, InputRef, ReportRef, utcnow
from airflow_aisec.exceptions import ConfigurationError

MEDIA_TYPE = "text/html"
_OK = "#2f6fb3"
_BAD = "#c0392b"
_REF = "#7f8c9a"
_CUR = "#e08e0b"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2733;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d5dbe1}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #d5dbe1;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f1f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#c0392b;font-weight:600}.ok{color:#23804a}.muted{color:#66717d;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:12px}svg{background:#fbfcfd;border:1px solid #e3e7eb}
"""


_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_NOTE = ("Aggregates only: counts, rates and metric values; no row-level value appears in this report. "
         "Findings are listed before enforcement levels and waivers are applied; the gate result holds "
         "the verdict.")


def esc(value: Any) -> str:
    """HTML-escape anything (quotes too: safe in text and in attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """A number for display; ``n/a`` for None/NaN."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    try:
        f = float(value)
    except (TypeError, ValueError):
        return esc(value)
    if not math.isfinite(f):
        return "n/a"
    return f"{f:.{digits}g}"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# ------------------------------------------------------------------------------------------------
# SVG charts
# ------------------------------------------------------------------------------------------------
def _svg_open(width: int, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">'
            f"<title>{esc(title)}</title>"
            f'<text x="8" y="18" font-size="13" font-weight="600">{esc(_short(title, 70))}</text>')


@dataclass(frozen=True)
class ThresholdLine:
    """A vertical line on a bar chart; bars on the ``bad_side`` (``below``/``above``) are violations."""

    value: float
    label: str
    bad_side: str = "below"


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    lines: Sequence[ThresholdLine] = (),
    vmax: float = 1.0,
    width: int = 520,
) -> str:
    """Horizontal bars, one per group, with threshold lines. None values are drawn as 'n/a'."""
    label_w, value_w, row_h, top, bottom = 150, 60, 22, 50, 26
    plot_w = width - label_w - value_w
    finite = [v for v in values if v is not None and math.isfinite(v)]
    line_vals = [ln.value for ln in lines if math.isfinite(ln.value)]
    vmax = max([vmax, *finite, *line_vals]) or 1.0
    height = top + row_h * len(labels) + bottom

    def x(v: float) -> float:
        return label_w + plot_w * max(0.0, min(v, vmax)) / vmax

    out = [_svg_open(width, height, title)]
    for i, (label, value) in enumerate(zip(labels, values)):
        y = top + i * row_h
        bad = value is not None and any(
            (ln.bad_side == "below" and value < ln.value) or (ln.bad_side == "above" and value > ln.value)
            for ln in lines if math.isfinite(ln.value)
        )
        out.append(f'<text x="{label_w - 6}" y="{y + 15}" font-size="12" text-anchor="end">'
                   f"<title>{esc(label)}</title>{esc(_short(label, 22))}</text>")
        if value is None or not math.isfinite(value):
            out.append(f'<text x="{label_w + 4}" y="{y + 15}" font-size="12" fill="{_BAD}">n/a</text>')
            continue
        w = x(value) - label_w
        out.append(f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
                   f'fill="{_BAD if bad else _OK}"><title>{esc(label)}: {fmt(value)}</title></rect>')
        out.append(f'<text x="{width - value_w + 6}" y="{y + 15}" font-size="12">{fmt(value, 3)}</text>')
    axis_y = top + row_h * len(labels)
    out.append(f'<line x1="{label_w}" y1="{top}" x2="{label_w}" y2="{axis_y}" stroke="#333"/>')
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        v = vmax * t
        out.append(f'<text x="{x(v):.1f}" y="{axis_y + 16}" font-size="10" text-anchor="middle" '
                   f'fill="#66717d">{fmt(v, 2)}</text>')
    for k, ln in enumerate(lines):
        if not math.isfinite(ln.value):
            continue
        lx = x(ln.value)
        out.append(f'<line x1="{lx:.1f}" y1="{top - 4}" x2="{lx:.1f}" y2="{axis_y}" stroke="{_BAD}" '
                   f'stroke-width="1.5" stroke-dasharray="5,3"><title>{esc(ln.label)}: {fmt(ln.value)}'
                   f"</title></line>")
        out.append(f'<text x="{lx:.1f}" y="{top - 6 - (k % 2) * 11}" font-size="10" fill="{_BAD}" '
                   f'text-anchor="middle">{esc(_short(ln.label, 24))}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(
    title: str,
    bins: Sequence[str],
    reference: Sequence[float],
    current: Sequence[float],
    *,
    width: int = 520,
    height: int = 220,
) -> str:
    """Reference vs current proportions per bin (grouped vertical bars)."""
    left, right, top, bottom = 44, 10, 34, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(bins), 1)
    slot = plot_w / n
    bw = max(1.0, slot * 0.38)
    ymax = max([*reference, *current, 0.01])
    out = [
        _svg_open(width, height, title),
        (f'<rect x="{width - 170}" y="8" width="10" height="10" fill="{_REF}"/>'
         f'<text x="{width - 156}" y="17" font-size="11">reference</text>'
         f'<rect x="{width - 90}" y="8" width="10" height="10" fill="{_CUR}"/>'
         f'<text x="{width - 76}" y="17" font-size="11">current</text>'),
    ]
    base = top + plot_h
    for i, label in enumerate(bins):
        x0 = left + i * slot + slot * 0.1
        for j, (series, color, name) in enumerate(((reference, _REF, "reference"), (current, _CUR, "current"))):
            v = float(series[i]) if i < len(series) else 0.0
            h = plot_h * v / ymax
            out.append(f'<rect x="{x0 + j * bw:.1f}" y="{base - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                       f'fill="{color}"><title>{esc(label)} {name}: {fmt(v, 3)}</title></rect>')
        if n <= 24 or i % math.ceil(n / 24) == 0:
            out.append(f'<text x="{x0 + bw:.1f}" y="{base + 14}" font-size="10" text-anchor="middle">'
                       f"<title>{esc(label)}</title>{esc(_short(label, 10))}</text>")
    out.append(f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="#333"/>')
    for t in (0.0, 0.5, 1.0):
        y = base - plot_h * t
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" fill="#66717d">'
                   f"{fmt(ymax * t, 2)}</text>")
    out.append("</svg>")
    return "".join(out)


# ------------------------------------------------------------------------------------------------
# Page
# ------------------------------------------------------------------------------------------------
def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Sequence[bool] | None = None) -> str:
    """An HTML table; cells are escaped unless passed as :class:`Raw`."""
    numeric = numeric or [False] * len(headers)
    out = ["<table><thead><tr>", *(f"<th>{esc(h)}</th>" for h in headers), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>")
        for cell, is_num in zip(row, numeric):
            text = cell.html if isinstance(cell, Raw) else esc(cell)
            out.append(f'<td class="num">{text}</td>' if is_num else f"<td>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


@dataclass(frozen=True)
class Raw:
    """Already-safe HTML built by this module (never data)."""

    html: str


def status_cell(bad: bool | None) -> Raw:
    """A status table cell: violation, ok, or no threshold (None)."""
    if bad is None:
        return Raw('<span class="muted">no threshold</span>')
    return Raw('<span class="bad">VIOLATION</span>' if bad else '<span class="ok">ok</span>')


def page(title: str, meta: Mapping[str, Any], inputs: Sequence[InputRef], findings: Sequence[Finding],
         body: Sequence[str]) -> str:
    """The full HTML document."""
    meta_rows = [(k, v) for k, v in meta.items() if v not in (None, "")]
    meta_rows.append(("generated at", utcnow()))
    finding_rows = [(f.rule, f.severity, "" if f.count is None else f.count, f.message) for f in findings]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # No script, no remote resource: even a missed escape could not run or call home.
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="muted">{_NOTE}</p>',
        table(["field", "value"], meta_rows),
        "<h2>Inputs</h2>",
        table(["uri", "sha256"], [(i.uri, i.sha256 or "") for i in inputs]),
        f"<h2>Findings ({len(findings)})</h2>",
        table(["rule", "severity", "count", "message"], finding_rows, numeric=[False, False, True, False])
        if finding_rows else '<p class="ok">No findings.</p>',
        *body,
        "</body></html>",
    ]
    return "\n".join(parts)



# ------------------------------------------------------------------------------------------------
# Storage
# ------------------------------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")


def report_uri(
    location: str | None,
    *,
    default_root: str,
    gate: str,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int | None = None,
    try_number: int | None = None,
) -> str:
    """Where a gate task stores its report.

    ``location`` ending in ``.html`` is used as is; any other ``location`` (or, without one,
    ``<default_root>/reports``) is a directory or ``s3://`` prefix under which the report gets
    ``<dag_id>/<run_id>/<task_id>[.<map_index>]/<gate>-report[-try<N>].html``, so reruns and
    retries never overwrite an earlier report.
    """
    if location and location.lower().endswith((".html", ".htm")):
        return location
    root = (location or f"{default_root.rstrip('/')}/reports").rstrip("/")
    task = task_id + (f".{map_index}" if map_index is not None and map_index >= 0 else "")
    name = f"{gate}-report" + (f"-try{try_number}" if try_number else "") + ".html"
    # No "/", no leading "." (".." would climb out of the report root).
    segments = ["_" + seg[1:] if seg.startswith(".") else seg
                for seg in (_UNSAFE.sub("_", str(s)) or "_" for s in (dag_id, run_id, task))]
    return "/".join([root, *segments, name])


def write_report(html_text: str, uri: str, *, name: str, s3_client: Any = None) -> tuple[ReportRef, str]:
    """Store a report at a local path or ``s3://`` URI.

    Args:
        html_text: The document.
        uri: Destination file (local path or ``s3://bucket/key``).
        name: Report name recorded in the result (e.g. ``bias-report``).
        s3_client: boto3 client for S3 destinations (default: from the AWS environment).

    Returns:
        The reference for ``CheckOutcome.reports`` and the sha256 of the bytes written.

    Raises:
        ConfigurationError: local destination not writable.
        AccessDeniedError / ServiceUnavailableError / InputDataError: S3 problems.
    """
    from airflow_aisec.core.outputs import deliver, earlier_output

    uri = str(uri)
    # Under a policy floor the own policy's report (the first layer's, which the result's metrics
    # describe) is the one written, once.
    earlier = earlier_output(uri)
    data = earlier if isinstance(earlier, bytes) else html_text.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    if is_s3_uri(uri):
        loc = parse_s3_uri(uri)
        if not loc.key or loc.key.endswith("/"):
            raise ConfigurationError(f"report location must name an object, not a prefix: {uri}")
        client = s3_client or make_s3_client()

        def upload() -> None:
            with translate_s3_errors(uri):
                client.put_object(Bucket=loc.bucket, Key=loc.key, Body=data,
                                  ContentType="text/html; charset=utf-8")

        deliver(uri, data, upload, on_failure=True)
        return ReportRef(name=name, uri=uri, media_type=MEDIA_TYPE), digest
    path = Path(uri).expanduser().resolve()
    if path.is_dir():
        raise ConfigurationError(f"report location is a directory, expected a file: {path}")
    deliver(uri, data, lambda: _write_local(path, data), on_failure=True)
    return ReportRef(name=name, uri=str(path), media_type=MEDIA_TYPE), digest


def _write_local(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".report-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)  # readers never see a half-written report
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigurationError(f"cannot write report {path}: {exc.strerror}") from None
