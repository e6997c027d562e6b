"""The drift gate's HTML report: per-feature metrics and reference vs current histograms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_aisec.core.report import Raw, fmt, histogram, page, status_cell, table
from airflow_aisec.core.result import Finding, InputRef

_BINS_NOTE = ("Numeric bins are cut at quantiles of the reference (bin 1 holds the lowest values); bin edges "
              "are not shown because they are data values. Categories are named only when frequent enough.")


def render_drift_report(
    metrics: Mapping[str, Any],
    findings: Sequence[Finding],
    *,
    inputs: Sequence[InputRef] = (),
    meta: Mapping[str, Any] | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """HTML report of a drift check (the ``metrics`` document of
    :func:`~airflow_aisec.core.gates.drift.evaluate_drift`).

    ``labels`` are the display names of each feature's histogram bins (category names that
    may be shown); without them the anonymous bin names of the metrics are used.
    """
    features: Sequence[Mapping[str, Any]] = metrics.get("features", [])
    head = {
        **(meta or {}),
        "reference rows": fmt(metrics.get("reference_rows")),
        "current rows": fmt(metrics.get("current_rows")),
        "features": len(features),
        "bins": metrics.get("bins"),
    }
    rows = []
    for f in features:
        rows.append((
            f["feature"], f["kind"], Raw(fmt(f.get("psi"))), Raw(fmt(f.get("ks_statistic"))),
            Raw(fmt(f.get("ks_pvalue"))), Raw(fmt(f.get("reference_missing_fraction"))),
            Raw(fmt(f.get("current_missing_fraction"))), Raw(fmt(f.get("unseen_fraction"))),
            status_cell(bool(f.get("violations"))) if "violations" in f else status_cell(None),
        ))
    body = [
        "<h2>Features</h2>",
        table(["feature", "kind", "PSI", "KS statistic", "KS p-value", "missing (ref)", "missing (cur)",
               "unseen categories", "status"], rows,
              numeric=[False, False, True, True, True, True, True, True, False]),
        "<h2>Distributions</h2>",
        f'<p class="muted">{_BINS_NOTE}</p>',
    ]
    charts = []
    for f in features:
        hist = f.get("histogram")
        if not hist:
            continue
        title = f"{f['feature']}: PSI {fmt(f.get('psi'), 3)}"
        if f.get("ks_statistic") is not None:
            title += f", KS {fmt(f.get('ks_statistic'), 3)}"
        bins = list((labels or {}).get(f["feature"]) or hist["bins"])
        charts.append(histogram(title, bins, hist["reference"], hist["current"]))
    body.append('<div class="charts">' + "".join(charts) + "</div>")
    return page("Drift report", head, inputs, findings, body)
