"""What the UI plugin may read (reports, evidence records), the extra link's URL, and how
untrusted result documents are shown. S3 cases use the real moto server."""

from __future__ import annotations

import json
import os

import pytest

from airflow_aisec.core.evidence import open_evidence_store
from airflow_aisec.exceptions import ConfigurationError, ServiceUnavailableError
from airflow_aisec.operators.links import run_tab_url, ui_base
from airflow_aisec.plugins import files
from airflow_aisec.plugins.results import GateView, parse_evidence, parse_result
from tests.conftest import free_port

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
def roots(tmp_path, monkeypatch):
    evidence = tmp_path / "evidence"
    extra = tmp_path / "extra-reports"
    (evidence / "reports").mkdir(parents=True)
    extra.mkdir()
    monkeypatch.setenv("AIRFLOW__AISEC__EVIDENCE_LOCATION", str(evidence))
    monkeypatch.setenv("AIRFLOW__AISEC__REPORT_ROOTS", f"{extra}, s3://bucket/reports")
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


# --- evidence records ---------------------------------------------------------------------------
def test_local_evidence_is_checked_against_the_xcom(tmp_path, monkeypatch):
    location = tmp_path / "evidence"
    monkeypatch.setenv("AIRFLOW__AISEC__EVIDENCE_LOCATION", str(location))
    payload = {"gate": "drift", "verdict": "fail"}
    ref = open_evidence_store(str(location)).append(payload).to_dict()

    ok = files.read_evidence(ref, payload)
    assert ok["checks"]["verified"] is True and ok["record"]["payload"] == payload

    # The XCom says "pass" but the audit trail recorded "fail": shown as not verified.
    forged = files.read_evidence(ref, {"gate": "drift", "verdict": "pass"})
    assert forged["checks"]["payload_matches_result"] is False and forged["checks"]["verified"] is False

    # The record was edited after the fact.
    record = location / ref["name"]
    os.chmod(record, 0o644)
    doc = json.loads(record.read_bytes())
    doc["payload"]["verdict"] = "pass"
    record.write_text(json.dumps(doc))
    edited = files.read_evidence(ref, payload)
    assert edited["checks"]["sha256_matches"] is False and edited["checks"]["verified"] is False

    # A reference to a location other than the configured trail is never read.
    with pytest.raises(ConfigurationError):
        files.read_evidence({**ref, "location": str(tmp_path)}, payload)
    assert files.read_evidence({**ref, "seq": 99, "name": "000000000099.json"}, payload)["checks"] == {
        "found": False
    }


@pytest.mark.integration
def test_s3_evidence_and_reports_are_read_through_the_airflow_connection(s3_server, monkeypatch):
    client = s3_server.client()
    client.create_bucket(Bucket="ui-audit")
    monkeypatch.setenv("AIRFLOW__AISEC__EVIDENCE_LOCATION", "s3://ui-audit/trail")
    payload = {"gate": "bias", "verdict": "warn"}
    ref = open_evidence_store("s3://ui-audit/trail", s3_client=client).append(payload).to_dict()
    assert files.read_evidence(ref, payload)["checks"]["verified"] is True

    client.put_object(Bucket="ui-audit", Key="trail/reports/d/r/t/bias-report.html", Body=b"<p>bias</p>")
    assert files.read_report("s3://ui-audit/trail/reports/d/r/t/bias-report.html") == b"<p>bias</p>"
    assert files.read_report("s3://ui-audit/trail/reports/missing.html") is None
    with pytest.raises(ConfigurationError):
        files.read_report("s3://ui-audit/trail/000000000001.json")


def test_unreachable_s3_is_service_unavailable(monkeypatch):
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
    monkeypatch.setenv("AIRFLOW__AISEC__EVIDENCE_AWS_CONN_ID", "aisec_dead_s3")
    monkeypatch.setenv("AIRFLOW__AISEC__EVIDENCE_LOCATION", "s3://ui-audit/trail")
    ref = {"location": "s3://ui-audit/trail", "seq": 1, "name": "000000000001.json", "sha256": "0" * 64}
    with pytest.raises(ServiceUnavailableError):
        files.read_evidence(ref, {})


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
