"""What the UI plugin may read (reports, evidence records), the extra link's URL, and how
untrusted result documents are shown. S3 cases use the real moto server."""

from __future__ import annotations

import json
import os

import pytest

from airflow_aisec.core.evidence import open_evidence_store
from airflow_aisec.core.result_bounds import MAX_FINDINGS_LISTED, MAX_METRIC_ITEMS
from airflow_aisec.exceptions import ConfigurationError
from airflow_aisec.operators.links import run_tab_url, ui_base
from airflow_aisec.plugins import files
from airflow_aisec.plugins.results import GateView, parse_evidence, parse_result
from tests.helpers.net import free_port

RUN = "manual__2024-01-01T00:00:00+00:00"


# --- extra link URL ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("base_url", "expected_prefix"),
    [
        ("", "/"),
        ("/", "/"),
        ("/airflow", "/airflow/"),
        ("/airflow/", "/airflow/"),
        ("http://localhost:8080", "http://localhost:8080/"),
        ("https://airflow.example.com/sub/", "https://airflow.example.com/sub/"),
    ],
)
def test_run_tab_url_follows_base_url(base_url, expected_prefix):
    assert ui_base(base_url) == expected_prefix
    url = run_tab_url("my_dag", RUN, base_url=base_url)
    assert url == f"{expected_prefix}dags/my_dag/runs/{RUN}/plugin/aisec-gates"


def test_run_tab_url_encodes_what_would_break_the_path():
    url = run_tab_url("d", "weird run/with?#chars", task_id="t 1", base_url="")
    assert url == "/dags/d/runs/weird%20run%2Fwith%3F%23chars/plugin/aisec-gates#task-t%201"


def test_extra_link_reads_base_url_from_airflow_config(monkeypatch):
    from airflow_aisec.operators.links import AisecGateResultLink

    class Key:
        dag_id, run_id, task_id = "d", RUN, "gate"

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.internal:8080/af")
    assert AisecGateResultLink().get_link(None, ti_key=Key()) == (
        f"http://airflow.internal:8080/af/dags/d/runs/{RUN}/plugin/aisec-gates#task-gate"
    )


# --- reports: only under configured roots ---------------------------------------------------------
@pytest.fixture
def aisec_env(monkeypatch):
    """Set ``[aisec]`` environment variables for one test; settings are a snapshot, so take a new one
    (and another after the variables are restored)."""
    from airflow_aisec import settings

    def _set(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(f"AIRFLOW__AISEC__{key.upper()}", value)
        settings.reload()

    yield _set
    monkeypatch.undo()
    settings.reload()


@pytest.fixture
def roots(tmp_path, aisec_env):
    evidence = tmp_path / "evidence"
    extra = tmp_path / "extra-reports"
    (evidence / "reports").mkdir(parents=True)
    extra.mkdir()
    aisec_env(evidence_location=str(evidence), report_roots=f"{extra}, s3://bucket/reports")
    return evidence, extra


def test_local_reports_are_served_only_inside_roots(roots, tmp_path):
    evidence, extra = roots
    inside = evidence / "reports" / "d" / "r" / "t" / "drift-report.html"
    inside.parent.mkdir(parents=True)
    inside.write_text("<p>ok</p>")
    (extra / "bias.html").write_text("<p>bias</p>")
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (extra / "link.html").symlink_to(secret)

    assert files.is_servable(str(inside)) and files.read_report(str(inside)) == b"<p>ok</p>"
    assert files.is_servable(f"file://{extra / 'bias.html'}")
    assert not files.is_servable(str(secret))
    assert not files.is_servable(f"{extra}/../secret.txt")
    assert not files.is_servable(str(extra / "link.html"))  # symlink out of the root
    assert not files.is_servable(str(evidence / "000000000001.json"))  # evidence itself is not a report
    assert not files.is_servable("relative/report.html")
    assert not files.is_servable(f"{extra}-evil/x.html")  # sibling with the root as a name prefix
    with pytest.raises(ConfigurationError):
        files.read_report(str(secret))
    assert files.read_report(str(extra / "missing.html")) is None


def test_s3_report_roots_match_bucket_and_prefix(roots):
    assert files.is_servable("s3://bucket/reports/a/b.html")
    assert not files.is_servable("s3://bucket/reports-evil/b.html")
    assert not files.is_servable("s3://other/reports/b.html")
    assert not files.is_servable("s3://bucket/b.html")


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("https://example.com/r", "external"),
        ("http://example.com/r", "external"),
        ("javascript:alert(1)", "text"),
        ("data:text/html,<script>alert(1)</script>", "text"),
        ("/etc/passwd", "text"),
    ],
)
def test_report_link_kinds(roots, uri, kind):
    assert files.classify_report(uri).kind == kind


# --- evidence records: only what the central trail confirms -------------------------------------
def _doc(verdict: str = "fail", task_id: str = "t", try_number: int = 1) -> dict:
    return {
        "schema_version": "1.0", "gate": "drift", "verdict": verdict,
        "started_at": "2024-01-01T00:00:00+00:00", "finished_at": "2024-01-01T00:00:01+00:00",
        "airflow": {"dag_id": "d", "run_id": "r", "task_id": task_id, "try_number": try_number},
    }


def test_local_evidence_is_served_only_for_a_result_the_trail_confirms(tmp_path, aisec_env):
    from airflow_aisec.core.trail_index import clear_cache
    from airflow_aisec.plugins import trust

    location = tmp_path / "evidence"
    aisec_env(evidence_location=str(location))
    clear_cache()
    doc = _doc()
    open_evidence_store(str(location)).append(doc)
    index, problem = trust.current_index()
    assert problem is None and index.records == 1 and index.broken is None
    ok = index.confirm(doc, dag_id="d", run_id="r", task_id="t", try_number=1)
    assert ok.verified
    served = trust.read_confirmed_record(ok.entry, doc, {"seq": 1, "sha256": ok.entry.sha256})
    assert served["checks"]["verified"] is True and served["checks"]["anchor_matches"] is True
    assert served["record"]["payload"] == doc

    # The XCom says "pass" but the trail recorded "fail"; another task; another try; another DAG.
    assert not index.confirm({**doc, "verdict": "pass"}, dag_id="d", run_id="r", task_id="t", try_number=1).verified
    assert not index.confirm(doc, dag_id="d", run_id="r", task_id="other", try_number=1).verified
    assert not index.confirm(doc, dag_id="d", run_id="r", task_id="t", try_number=2).verified
    assert not index.confirm(doc, dag_id="other", run_id="r", task_id="t", try_number=1).verified

    # The record was edited after the fact: not served, and the trail no longer verifies.
    record = location / "000000000001.json"
    os.chmod(record, 0o644)
    edited = json.loads(record.read_bytes())
    edited["payload"]["verdict"] = "pass"
    record.write_text(json.dumps(edited))
    with pytest.raises(trust.RecordMismatch):
        trust.read_confirmed_record(ok.entry, doc, None)
    index, _ = trust.current_index()
    assert index.broken and not index.confirm(doc, dag_id="d", run_id="r", task_id="t", try_number=1).verified


@pytest.mark.integration
def test_s3_evidence_and_reports_are_read_through_the_airflow_connection(s3_server, aisec_env):
    from airflow_aisec.core.trail_index import clear_cache
    from airflow_aisec.plugins import trust

    client = s3_server.client()
    client.create_bucket(Bucket="ui-audit")
    aisec_env(evidence_location="s3://ui-audit/trail")
    clear_cache()
    doc = _doc("warn")
    open_evidence_store("s3://ui-audit/trail", s3_client=client).append(doc)
    index, problem = trust.current_index()
    assert problem is None
    confirmation = index.confirm(doc, dag_id="d", run_id="r", task_id="t", try_number=1)
    assert trust.read_confirmed_record(confirmation.entry, doc, None)["checks"]["verified"] is True

    client.put_object(Bucket="ui-audit", Key="trail/reports/d/r/t/bias-report.html", Body=b"<p>bias</p>")
    assert files.read_report("s3://ui-audit/trail/reports/d/r/t/bias-report.html") == b"<p>bias</p>"
    assert files.read_report("s3://ui-audit/trail/reports/missing.html") is None
    with pytest.raises(ConfigurationError):
        files.read_report("s3://ui-audit/trail/000000000001.json")


def test_unreachable_s3_trail_shows_every_result_as_unverified(monkeypatch, aisec_env):
    from airflow_aisec.core.result import GateResult
    from airflow_aisec.plugins import trust

    port = free_port()  # a port nothing listens on
    conn = {
        "conn_type": "aws",
        "login": "x",
        "password": "y",
        "extra": {
            "endpoint_url": f"http://127.0.0.1:{port}",
            "region_name": "us-east-1",
            "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_AISEC_DEAD_S3", json.dumps(conn))
    aisec_env(evidence_aws_conn_id="aisec_dead_s3", evidence_location="s3://ui-audit/trail")
    index, problem = trust.current_index()
    assert index is None and "cannot be read" in problem
    doc = _doc("pass")
    view = GateView(dag_id="d", run_id="r", task_id="t", try_number=1, raw=doc,
                    result=GateResult.model_validate(doc))
    view.check_against(index, problem)
    assert view.verdict == "unverified" and "cannot be read" in view.trust


# --- untrusted result documents -----------------------------------------------------------------
def test_unreadable_result_documents_never_show_as_pass():
    for raw in ('{"verdict": "pass"}', "not json", json.dumps(["pass"]), {"verdict": "pass", "gate": 1}):
        result, problem = parse_result(raw, task_id="t")
        assert result is None and problem
        view = GateView(dag_id="d", run_id="r", task_id="t", result=result, problem=problem)
        assert view.verdict == "error"
    assert GateView(dag_id="d", run_id="r", task_id="t").verdict == "pending"


def test_result_naming_another_task_is_flagged():
    doc = {
        "gate": "drift",
        "verdict": "pass",
        "started_at": "2024-01-01T00:00:00+00:00",
        "finished_at": "2024-01-01T00:00:01+00:00",
        "airflow": {"dag_id": "d", "run_id": "r", "task_id": "other"},
    }
    result, problem = parse_result(json.dumps(doc), task_id="t")
    assert result is not None and "different task" in problem


def test_evidence_refs_are_validated():
    assert (
        parse_evidence({"location": "/x", "seq": "3", "name": "000000000003.json", "sha256": "ab"})["seq"]
        == 3
    )
    assert parse_evidence({"location": "/x"}) is None
    assert parse_evidence("garbage") is None


def test_a_bounded_result_shows_what_it_does_not_list():
    """A 1.2 result counts the findings and metrics items it does not list: the run page says so (escaped)."""
    from airflow_aisec.plugins.app import _env

    doc = {
        "schema_version": "1.2", "gate": "drift", "verdict": "fail", "started_at": "s", "finished_at": "f",
        "findings_omitted": [{"rule": "drift.psi", "severity": "high", "enforcement": "enforce", "findings": 98695},
                             {"rule": "drift.<b>x", "severity": "low", "enforcement": "warn", "waived": True,
                              "findings": 2}],
        "metrics_omitted": {"features": 98998},
        "airflow": {"dag_id": "d", "run_id": "r", "task_id": "t"},
    }
    result, problem = parse_result(json.dumps(doc), task_id="t")
    assert result is not None and problem is None
    html = str(_env.get_template("_macros.html").module.omitted_notes(result))
    assert "<code>drift.psi</code> &times; 98695 (enforce)" in html
    assert "drift.&lt;b&gt;x</code> &times; 2 (warn, waived)" in html
    assert "<code>features</code> (98998 more)" in html
    assert f"at most {MAX_FINDINGS_LISTED:,} findings" in html and f"cut to {MAX_METRIC_ITEMS:,} items" in html
    old, _ = parse_result(json.dumps({k: v for k, v in doc.items() if not k.endswith("_omitted")}), task_id="t")
    assert str(_env.get_template("_macros.html").module.omitted_notes(old)).strip() == ""  # a 1.1 document
