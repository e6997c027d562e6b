"""HTML reports: self-contained, escaped, charts with threshold lines, stored locally or on S3."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from airflow_aisec.core.gates.bias import evaluate_bias, render_bias_report, resolve_columns
from airflow_aisec.core.gates.drift import evaluate_drift, render_drift_report
from airflow_aisec.core.policy.sections.bias import BiasPolicy
from airflow_aisec.core.policy.sections.drift import DriftPolicy
from airflow_aisec.core.report import ThresholdLine, bar_chart, histogram, report_uri, write_report
from airflow_aisec.core.result import Finding, InputRef
from airflow_aisec.exceptions import ConfigurationError

XSS = '<script>alert("x")</script>'


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)


def parse(html: str) -> _Tags:
    p = _Tags()
    p.feed(html)
    return p


def bias_html(sensitive_name: str = "sex", group: str = "F") -> str:
    rng = np.random.default_rng(0)
    n = 400
    groups = rng.choice([group, "M"], n)
    table = pa.table({
        "y": rng.integers(0, 2, n),
        "p": (rng.random(n) < np.where(groups == group, 0.2, 0.5)).astype(int),
        sensitive_name: groups,
    })
    policy = BiasPolicy(label="y", prediction="p", sensitive=[sensitive_name], min_group_size=1,
                        thresholds={"demographic_parity_difference": {"max": 0.1},
                                    "demographic_parity_ratio": {"min": 0.8}, "accuracy": {"min": 0.3}})
    ev = evaluate_bias(policy, table, resolve_columns(policy))
    return render_bias_report(ev.metrics, ev.findings, inputs=[InputRef(uri=f"/data/{XSS}.csv", sha256="ab" * 32)],
                              meta={"policy": "strict", "dag_id": XSS})


def test_bias_report_is_self_contained_and_escaped():
    html = bias_html(sensitive_name=f"col{XSS}", group=f"grp{XSS}")
    tags = parse(html)
    assert "script" not in tags.tags
    assert XSS not in html and "&lt;script&gt;" in html
    # nothing is loaded from elsewhere; scripts are forbidden by the page's own CSP
    assert "default-src 'none'" in html
    for name, value in tags.attrs:
        assert name not in ("src", "href") and not (name.startswith("on")), (name, value)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)


def test_bias_report_has_per_group_bars_with_threshold_lines():
    html = bias_html()
    assert html.count("<svg") >= 5  # selection rate, TPR, FPR, FNR, accuracy
    # the selection-rate chart draws the four-fifths and the 0.1-gap lines; accuracy its own minimum
    assert "0.8\u00d7max" in html and "max\u22120.1" in html and "min 0.3" in html
    assert "VIOLATION" in html and "bias.demographic_parity_ratio" in html
    assert "Aggregates only" in html


def test_bar_chart_marks_bars_past_a_line():
    svg = bar_chart("t", ["a", "b"], [0.2, 0.6], lines=[ThresholdLine(0.5, "min", "below")])
    bars = re.findall(r'<rect [^>]*fill="(#[0-9a-f]+)"', svg)
    assert bars == ["#c0392b", "#2f6fb3"]  # a (0.2) is below the line: red
    assert "stroke-dasharray" in svg
    assert "n/a" in bar_chart("t", ["a"], [None])


def test_histogram_draws_both_series_per_bin():
    svg = histogram("h", ["1", "2", "3"], [0.2, 0.3, 0.5], [0.5, 0.3, 0.2])
    assert svg.count("<rect") == 6 + 2  # 2 bars per bin + 2 legend swatches
    assert "reference" in svg and "current" in svg


def test_drift_report_uses_display_labels_and_escapes_them():
    ref = pa.table({"f": ["a"] * 50 + ["b"] * 50, "x": np.arange(100.0)})
    cur = pa.table({"f": ["a"] * 70 + ["b"] * 30, "x": np.arange(100.0) + 30})
    ev = evaluate_drift(DriftPolicy(), ref, cur)
    labels = {"f": [XSS, "b"], "x": ev.report_labels["x"]}
    html = render_drift_report(ev.metrics, ev.findings, labels=labels, meta={"policy": "p"})
    assert XSS not in html and "&lt;script&gt;" in html
    assert html.count("<svg") == 2 and "x: PSI" in html and "KS" in html


def test_findings_messages_are_escaped():
    findings = [Finding(rule="bias.x", message=f"column {XSS} broke", count=1)]
    html = render_bias_report({"groupings": []}, findings)
    assert XSS not in html and "column &lt;script&gt;" in html


# ------------------------------------------------------------------------------------------------
# Locations and storage
# ------------------------------------------------------------------------------------------------
def test_report_uri_layout():
    kw = {"default_root": "/ev", "gate": "bias", "dag_id": "d", "run_id": "manual__2025-01-01T00:00:00+00:00",
          "task_id": "t", "try_number": 2}
    assert report_uri(None, **kw) == "/ev/reports/d/manual__2025-01-01T00_00_00_00_00/t/bias-report-try2.html"
    assert report_uri("s3://b/reports/", **kw).startswith("s3://b/reports/d/")
    assert report_uri("/out/fixed.html", **kw) == "/out/fixed.html"
    mapped = report_uri("/r", **{**kw, "run_id": "../../etc", "map_index": 3})
    assert mapped == "/r/d/_._.._etc/t.3/bias-report-try2.html"  # no way out of the root


def test_write_report_locally_is_atomic_and_digested(tmp_path):
    target = tmp_path / "a" / "b" / "r.html"
    ref, digest = write_report("<html>x</html>", str(target), name="bias-report")
    assert ref.uri == str(target) and ref.media_type == "text/html"
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".report-")]
    with pytest.raises(ConfigurationError, match="directory"):
        write_report("x", str(tmp_path), name="r")


@pytest.mark.integration
def test_write_report_to_s3(s3_server):
    client = s3_server.client()
    client.create_bucket(Bucket="reports")
    ref, digest = write_report("<html>s3</html>", "s3://reports/runs/1/bias.html", name="bias-report",
                               s3_client=client)
    obj = client.get_object(Bucket="reports", Key="runs/1/bias.html")
    assert obj["Body"].read() == b"<html>s3</html>" and obj["ContentType"].startswith("text/html")
    assert ref.uri == "s3://reports/runs/1/bias.html"
    assert digest == hashlib.sha256(b"<html>s3</html>").hexdigest()
    with pytest.raises(ConfigurationError, match="prefix"):
        write_report("x", "s3://reports/runs/", name="r", s3_client=client)


@pytest.mark.integration
def test_write_report_to_missing_bucket_is_an_error_not_a_pass(s3_server):
    from airflow_aisec.exceptions import AisecError

    with pytest.raises(AisecError):
        write_report("x", "s3://no-such-bucket-aisec/r.html", name="r", s3_client=s3_server.client())


def test_frame_helpers_do_not_leak_values_in_bias_tables():
    # only group names and aggregates appear; the label/prediction values never do
    frame = pd.DataFrame({"y": ["yes-label-value", "no-label-value"] * 100, "p": [1, 0] * 100,
                          "sex": ["F"] * 100 + ["M"] * 100})
    policy = BiasPolicy(label="y", prediction="p", sensitive=["sex"], positive_label="yes-label-value",
                        prediction_positive_label=1, min_group_size=1)
    ev = evaluate_bias(policy, pa.Table.from_pandas(frame), resolve_columns(policy))
    html = render_bias_report(ev.metrics, ev.findings)
    assert "label-value" not in html
