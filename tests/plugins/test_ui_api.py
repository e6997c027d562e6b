"""The UI plugin against a real migrated Airflow DB, through Airflow's own API server app.

The app under test is ``airflow.api_fastapi.app.create_app()``: the plugin is mounted
by Airflow's plugin manager (entry point), tokens come from the real ``POST /auth/token``
of SimpleAuthManager, and gate results are XComs pushed by real ``dag.test()`` runs.
Per-DAG denial uses ``ui_auth_manager.RestrictedAuthManager`` (a SimpleAuthManager
subclass) because SimpleAuthManager alone cannot deny one user one DAG.
"""

from __future__ import annotations

import json
import os
import re
from urllib.parse import quote

import markupsafe
import pytest
from ui_dags import MIXED_DAG, MIXED_VERDICTS, SECRET_DAG, SECRET_MARKER, XSS_PAYLOAD

pytestmark = pytest.mark.integration

PASSWORDS = {"admin": "admin-pw-1", "viewer": "viewer-pw-2", "restricted": "restricted-pw-3"}


@pytest.fixture(scope="module")
def client(gate_runs, session_dir):
    from airflow.api_fastapi import app as api_app
    from fastapi.testclient import TestClient

    pw_file = session_dir / "ui-passwords.json"
    pw_file.write_text(json.dumps(PASSWORDS))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__CORE__AUTH_MANAGER", "ui_auth_manager.RestrictedAuthManager")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,viewer:viewer,restricted:viewer")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(pw_file))
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        # Set explicitly: whether airflow.cfg (with a generated secret) existed when Airflow's
        # config was first loaded depends on which test module imported Airflow first.
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", os.urandom(32).hex())
        app = api_app.create_app()
        with TestClient(app) as c:
            yield c
        api_app.purge_cached_app()


def login(client, user: str) -> dict[str, str]:
    resp = client.post("/auth/token", json={"username": user, "password": PASSWORDS[user]})
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


@pytest.fixture(scope="module")
def admin(client):
    return login(client, "admin")


@pytest.fixture(scope="module")
def restricted(client):
    return login(client, "restricted")


@pytest.fixture(scope="module")
def viewer(client):
    return login(client, "viewer")


def run_path(dag_id: str, run_id: str) -> str:
    return f"/aisec/runs/{dag_id}/{quote(run_id, safe=':+')}"


def all_endpoints(gate_runs) -> list[str]:
    mixed = run_path(MIXED_DAG, gate_runs.mixed_run_id)
    return [
        "/aisec/",
        "/aisec/static/aisec.css",
        "/aisec/overview",
        "/aisec/api/overview",
        mixed,
        mixed.replace("/aisec/runs/", "/aisec/api/runs/"),
        f"{mixed}/tasks/gate_fail/evidence",
        f"{mixed}/tasks/gate_fail/reports/0",
    ]


# --- registration ------------------------------------------------------------------------------
def test_plugin_is_registered_with_views_app_and_link(client, admin):
    resp = client.get("/api/v2/plugins", headers=admin)
    assert resp.status_code == 200
    plugin = next(p for p in resp.json()["plugins"] if p["name"] == "aisec")
    views = {v["destination"]: v for v in plugin["external_views"]}
    assert views["dag_run"]["url_route"] == "aisec-gates"
    assert views["dag_run"]["href"] == "aisec/runs/{DAG_ID}/{RUN_ID}"
    assert views["dag_run"]["name"] == "Security gates"
    assert views["nav"]["url_route"] == "aisec-overview"
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/aisec"]
    assert any("AisecGateResultLink" in link for link in plugin["operator_extra_links"])


def test_the_dag_runs_produced_the_expected_task_states(gate_runs):
    assert gate_runs.mixed_state == "failed"
    assert gate_runs.task_states["gate_fail"] == "failed"
    assert gate_runs.task_states["gate_after_fail"] == "upstream_failed"
    assert gate_runs.task_states["gate_pass"] == "success"


# --- authentication ----------------------------------------------------------------------------
def test_every_endpoint_rejects_anonymous_requests(client, gate_runs):
    for path in all_endpoints(gate_runs):
        resp = client.get(path, follow_redirects=False)
        assert resp.status_code == 401, path
        assert SECRET_MARKER not in resp.text and "psi_exceeded" not in resp.text


def test_every_endpoint_rejects_a_forged_token(client, gate_runs):
    forged = {"Authorization": "Bearer eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.forged"}
    for path in all_endpoints(gate_runs):
        resp = client.get(path, headers=forged, follow_redirects=False)
        assert resp.status_code in (401, 403), path
        assert "psi_exceeded" not in resp.text


def test_every_endpoint_answers_an_authenticated_reader(client, gate_runs, admin):
    for path in all_endpoints(gate_runs):
        resp = client.get(path, headers=admin, follow_redirects=False)
        assert resp.status_code in (200, 307), (path, resp.status_code, resp.text[:200])


def test_the_ui_cookie_authenticates_like_the_ui_does(client, gate_runs):
    token = login(client, "viewer")["Authorization"].split()[1]
    client.cookies.set("_token", token)
    try:
        resp = client.get(run_path(MIXED_DAG, gate_runs.mixed_run_id))
    finally:
        client.cookies.clear()
    assert resp.status_code == 200
    assert "gate_fail" in resp.text


def test_a_user_without_access_to_a_dag_cannot_see_its_gates(client, gate_runs, restricted):
    secret = run_path(SECRET_DAG, gate_runs.secret_run_id)
    for path in (
        secret,
        secret.replace("/aisec/runs/", "/aisec/api/runs/"),
        f"{secret}/tasks/gate_secret/evidence",
        f"{secret}/tasks/gate_secret/reports/0",
        f"/aisec/overview?dag_id={SECRET_DAG}",
        f"/aisec/api/overview?dag_id={SECRET_DAG}",
    ):
        resp = client.get(path, headers=restricted)
        assert resp.status_code == 403, path
        assert SECRET_MARKER not in resp.text

    # The overview silently leaves the DAG out, in rows, counts and filter options alike.
    # (Other tests of the session may have run DAGs in the same DB: only these two DAGs are asserted.)
    data = client.get("/aisec/api/overview?limit=500", headers=restricted).json()
    dag_ids = {r["dag_id"] for r in data["results"]}
    assert MIXED_DAG in dag_ids and SECRET_DAG not in dag_ids
    assert SECRET_DAG not in data["dag_ids"]
    mixed = client.get(f"/aisec/api/overview?limit=500&dag_id={MIXED_DAG}", headers=restricted).json()
    assert mixed["total"] == 4  # the four mixed-DAG gates that pushed a result
    page = client.get("/aisec/overview?limit=500", headers=restricted)
    assert page.status_code == 200
    assert SECRET_MARKER not in page.text and SECRET_DAG not in page.text

    # The DAG the user may read still works for them.
    assert client.get(run_path(MIXED_DAG, gate_runs.mixed_run_id), headers=restricted).status_code == 200


def test_a_reader_of_both_dags_sees_both(client, viewer):
    data = client.get("/aisec/api/overview?limit=500", headers=viewer).json()
    assert {r["dag_id"] for r in data["results"]} >= {MIXED_DAG, SECRET_DAG}
    assert any(SECRET_MARKER in f["message"] for r in data["results"] for f in r["result"]["findings"])


# --- the run tab -------------------------------------------------------------------------------
def test_run_json_lists_every_gate_with_verdicts(client, gate_runs, admin):
    data = client.get(
        run_path(MIXED_DAG, gate_runs.mixed_run_id).replace("/aisec/runs/", "/aisec/api/runs/"), headers=admin
    ).json()
    verdicts = {g["task_id"]: g["verdict"] for g in data["gates"]}
    assert verdicts == MIXED_VERDICTS
    # Failed gates first, passes last.
    assert data["gates"][0]["task_id"] == "gate_fail"
    assert [g["verdict"] for g in data["gates"]][-1] == "pass"
    assert data["counts"] == {"fail": 1, "error": 0, "unverified": 0, "warn": 1, "pending": 1, "pass": 2}
    # Every result the gates pushed is confirmed by the central audit trail.
    assert all(g["verified"] is True for g in data["gates"] if g["result"] is not None)
    failing = data["gates"][0]
    assert failing["ti_state"] == "failed"
    assert failing["result"]["policy"]["sha256"] == gate_runs.policy_sha256
    assert failing["evidence"]["sha256"] and failing["evidence"]["seq"] >= 1
    waived = next(g for g in data["gates"] if g["task_id"] == "gate_waived")["result"]
    assert waived["findings"][0]["waived"] is True
    assert waived["waivers_applied"][0]["approved_by"] == "security@example.com"


def test_run_page_shows_gate_rule_message_policy_waivers_links(client, gate_runs, admin):
    resp = client.get(run_path(MIXED_DAG, gate_runs.mixed_run_id), headers=admin)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    page = resp.text
    order = re.findall(r'data-task-id="([^"]+)" data-verdict="([^"]+)"', page)
    assert order[0] == ("gate_fail", "fail")
    assert [v for _, v in order] == sorted(
        (v for _, v in order), key=["fail", "error", "warn", "pending", "pass"].index
    )
    gate = gate_runs.gate
    assert f"{gate}.psi_exceeded" in page
    assert "PSI above threshold in column" in page
    assert "ui-test" in page and gate_runs.policy_sha256 in page
    assert "JIRA-42: accepted until the retrain" in page and "security@example.com" in page
    assert "psi_max" in page and "0.41" in page
    assert "upstream_failed" in page  # the gate that never ran is listed, not hidden
    # Reports: served one via the plugin, external one direct, javascript: never a link.
    assert "/tasks/gate_fail/reports/0" in page
    assert 'href="https://reports.example.com/run/1"' in page
    assert 'href="javascript:' not in page
    assert "/tasks/gate_fail/evidence" in page
    # Task names link into the Airflow UI, breaking out of the iframe.
    assert f'href="/dags/{MIXED_DAG}/runs/' in page and 'target="_top"' in page


def test_unknown_run_is_404(client, admin):
    resp = client.get(f"/aisec/runs/{MIXED_DAG}/no-such-run", headers=admin)
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("text/html")
    assert client.get(f"/aisec/api/runs/{MIXED_DAG}/no-such-run", headers=admin).status_code == 404


# --- escaping ----------------------------------------------------------------------------------
def test_script_payload_in_column_name_and_message_is_escaped_everywhere(client, gate_runs, admin):
    pages = [
        client.get(run_path(MIXED_DAG, gate_runs.mixed_run_id), headers=admin),
        client.get("/aisec/overview?limit=500", headers=admin),
        client.get(f"/aisec/overview?dag_id={MIXED_DAG}&verdict=fail", headers=admin),
    ]
    for resp in pages:
        assert resp.status_code == 200
        assert XSS_PAYLOAD not in resp.text
        assert "<script" not in resp.text.lower()
        csp = resp.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'self'" in csp
        assert resp.headers["x-content-type-options"] == "nosniff"
    # Shown, as text, in the message and the location column (Jinja/MarkupSafe escaping).
    assert pages[0].text.count(str(markupsafe.escape(XSS_PAYLOAD))) >= 2
    # Filter values echoed back into the form are escaped too.
    resp = client.get('/aisec/overview?gate="><script>alert(1)</script>', headers=admin)
    assert resp.status_code == 200 and "<script>alert(1)</script>" not in resp.text


def test_reports_are_served_sandboxed_and_only_from_report_roots(client, gate_runs, admin):
    base = run_path(MIXED_DAG, gate_runs.mixed_run_id) + "/tasks/gate_fail/reports"
    resp = client.get(f"{base}/0", headers=admin)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.headers["content-security-policy"].startswith("sandbox;")
    assert "script-src" not in resp.headers["content-security-policy"]
    assert client.get(f"{base}/1", headers=admin).status_code == 404  # external URL: linked, never fetched
    assert client.get(f"{base}/2", headers=admin).status_code == 404  # javascript: URI
    resp = client.get(f"{base}/3", headers=admin)  # /etc/passwd pushed as a "report"
    assert resp.status_code == 404 and "root:" not in resp.text
    resp = client.get(f"{base}/4", headers=admin)  # <report root>/../../etc/passwd
    assert resp.status_code == 404 and "root:" not in resp.text
    assert client.get(f"{base}/99", headers=admin).status_code == 404


def test_evidence_record_is_read_and_checked_against_the_xcom(client, gate_runs, admin):
    resp = client.get(
        run_path(MIXED_DAG, gate_runs.mixed_run_id) + "/tasks/gate_fail/evidence", headers=admin
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["checks"] == {
        "found": True,
        "sha256_matches": True,
        "body_digest_valid": True,
        "chain_verified": True,
        "payload_matches_result": True,
        "airflow_ids_match": True,
        "anchor_matches": True,
        "verified": True,
    }
    assert body["record"]["payload"]["verdict"] == "fail"
    assert body["record"]["payload"]["airflow"]["task_id"] == "gate_fail"


# --- overview ----------------------------------------------------------------------------------
def test_overview_counts_and_filters(client, gate_runs, admin):
    data = client.get("/aisec/api/overview?limit=500", headers=admin).json()
    assert data["counts"]["fail"] >= 2 and data["counts"]["warn"] >= 1 and data["counts"]["pass"] >= 2
    assert gate_runs.gate in data["gates"]  # other tests of the session may add gates

    fails = client.get("/aisec/api/overview?verdict=fail&limit=500", headers=admin).json()
    assert fails["results"] and {r["verdict"] for r in fails["results"]} == {"fail"}
    assert len(fails["results"]) == data["counts"]["fail"]

    mixed = client.get(f"/aisec/api/overview?dag_id={MIXED_DAG}", headers=admin).json()
    assert {r["dag_id"] for r in mixed["results"]} == {MIXED_DAG}
    assert mixed["counts"] == {"pass": 2, "warn": 1, "fail": 1, "error": 0, "unverified": 0}

    none = client.get("/aisec/api/overview?gate=no_such_gate", headers=admin).json()
    assert none["results"] == [] and none["total"] == 0

    one = client.get("/aisec/api/overview?limit=1", headers=admin).json()
    assert len(one["results"]) == 1 and one["total"] >= 5

    assert client.get("/aisec/api/overview?verdict=bogus", headers=admin).status_code == 422
    assert client.get("/aisec/api/overview?limit=0", headers=admin).status_code == 422
    assert client.get("/aisec/api/overview?limit=100000", headers=admin).status_code == 422

    page = client.get(f"/aisec/overview?verdict=fail&dag_id={MIXED_DAG}", headers=admin).text
    assert "PSI above threshold" in page and "small shift" not in page
    # Run links open the run's tab in the Airflow UI, not inside the iframe.
    assert f'href="/dags/{MIXED_DAG}/runs/' in page and "/plugin/aisec-gates" in page


def test_index_redirects_to_the_overview(client, admin):
    resp = client.get("/aisec/", headers=admin, follow_redirects=False)
    assert resp.status_code == 307 and resp.headers["location"] == "/aisec/overview"


# --- extra link ---------------------------------------------------------------------------------
def test_extra_link_points_to_the_run_tab(client, gate_runs, admin):
    from airflow_aisec.operators.links import run_tab_url

    expected = run_tab_url(MIXED_DAG, gate_runs.mixed_run_id, task_id="gate_fail")
    assert (
        expected.startswith(f"/dags/{MIXED_DAG}/runs/") and "/plugin/aisec-gates#task-gate_fail" in expected
    )
    resp = client.get(
        f"/api/v2/dags/{MIXED_DAG}/dagRuns/{quote(gate_runs.mixed_run_id, safe='')}/taskInstances/gate_fail/links",
        headers=admin,
    )
    assert resp.status_code == 200
    assert resp.json()["extra_links"] == {"Security gate result": expected}


# --- verdicts over time ---------------------------------------------------------------------------
def _expected_per_day(results: list[dict]) -> dict[str, dict[str, int]]:
    """Per UTC day and verdict, from the results' own XCom timestamps (robust across midnight)."""
    from datetime import UTC, datetime

    out: dict[str, dict[str, int]] = {}
    for r in results:
        day = datetime.fromisoformat(r["timestamp"]).astimezone(UTC).date().isoformat()
        out.setdefault(day, {})
        out[day][r["verdict"]] = out[day].get(r["verdict"], 0) + 1
    return out


def _svg_counts(page: str) -> dict[str, dict[str, int]]:
    """Per day and verdict as drawn: the data-* attributes of the chart's bar segments."""
    from html.parser import HTMLParser

    class Bars(HTMLParser):
        def __init__(self):
            super().__init__()
            self.day: str | None = None
            self.in_svg = False
            self.counts: dict[str, dict[str, int]] = {}

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "svg" and "timeline-chart" in (a.get("class") or ""):
                self.in_svg = True
            elif self.in_svg and tag == "g" and "data-date" in a:
                self.day = a["data-date"]
                self.counts.setdefault(self.day, {})
            elif self.in_svg and tag == "rect" and "data-series" in a:
                self.counts[self.day][a["data-series"]] = int(a["data-count"])

        def handle_endtag(self, tag):
            if tag == "svg":
                self.in_svg = False

    parser = Bars()
    parser.feed(page)
    return parser.counts


def test_verdicts_over_time_per_day_in_json_and_svg(client, gate_runs, admin):
    data = client.get(f"/aisec/api/overview?dag_id={MIXED_DAG}&limit=500", headers=admin).json()
    tl = data["timeline"]
    assert tl["days"] == 14 and tl["timezone"] == "UTC" and len(tl["series"]) == 14
    assert tl["verdicts"] == ["pass", "warn", "fail", "error", "unverified"]
    assert tl["series"][-1]["date"] == tl["end"] and tl["series"][0]["date"] == tl["start"]
    # The mixed DAG's run: two passes (one waived), a warn, a fail; the pending gate pushed nothing.
    assert tl["totals"] == {"pass": 2, "warn": 1, "fail": 1, "error": 0, "unverified": 0}
    assert sum(1 for v in MIXED_VERDICTS.values() if v != "pending") == sum(tl["totals"].values())
    expected = _expected_per_day(data["results"])
    per_day = {d["date"]: {v: d[v] for v in tl["verdicts"] if d[v]} for d in tl["series"] if d["total"]}
    assert per_day == expected

    resp = client.get(f"/aisec/overview?dag_id={MIXED_DAG}", headers=admin)
    assert resp.status_code == 200
    drawn = _svg_counts(resp.text)
    assert len(drawn) == 14
    assert {day: c for day, c in drawn.items() if c} == expected
    # Text alternative: a title and desc the SVG is labelled by, and the same numbers as a table.
    assert 'aria-labelledby="timeline-title timeline-desc"' in resp.text
    assert f"DAG {MIXED_DAG}" in re.search(r'<title id="timeline-title">([^<]*)</title>', resp.text).group(1)
    desc = re.search(r'<desc id="timeline-desc">([^<]*)</desc>', resp.text).group(1)
    assert desc.startswith("4 results: 2 pass, 1 warn, 1 fail, 0 error, 0 unverified.")
    assert 'class="timeline-table"' in resp.text
    # Filters are kept in the URL: window links and verdict links carry them.
    assert f"dag_id={MIXED_DAG}" in re.search(r'href="([^"]*days=30[^"]*)"', resp.text).group(1)

    # The verdict filter narrows the series like it narrows the rows.
    fails = client.get(f"/aisec/api/overview?dag_id={MIXED_DAG}&verdict=fail", headers=admin).json()["timeline"]
    assert fails["totals"] == {"pass": 0, "warn": 0, "fail": 1, "error": 0, "unverified": 0}
    # So does the gate filter.
    other = client.get(f"/aisec/api/overview?dag_id={MIXED_DAG}&gate=no_such_gate", headers=admin).json()
    assert sum(other["timeline"]["totals"].values()) == 0 and len(other["timeline"]["series"]) == 14

    # The window is a bounded parameter.
    week = client.get(f"/aisec/api/overview?dag_id={MIXED_DAG}&days=1", headers=admin).json()["timeline"]
    assert week["days"] == 1 and len(week["series"]) == 1 and week["start"] == week["end"]
    assert client.get(f"/aisec/overview?dag_id={MIXED_DAG}&days=90", headers=admin).status_code == 200
    for bad in ("0", "91", "100000", "x"):
        assert client.get(f"/aisec/api/overview?days={bad}", headers=admin).status_code == 422, bad
        assert client.get(f"/aisec/overview?days={bad}", headers=admin).status_code == 422, bad


def test_verdicts_over_time_count_only_readable_dags(client, gate_runs, restricted, viewer):
    mine = client.get("/aisec/api/overview?limit=500", headers=restricted).json()
    everyone = client.get("/aisec/api/overview?limit=500", headers=viewer).json()
    # The secret DAG's one failing gate is in the viewer's series, never in the restricted user's.
    assert everyone["timeline"]["totals"]["fail"] == mine["timeline"]["totals"]["fail"] + 1
    assert mine["timeline"]["totals"] == mine["counts"]  # every result of the session is in the window
    secret = [r for r in everyone["results"] if r["dag_id"] == SECRET_DAG]
    assert len(secret) == 1
    page = client.get("/aisec/overview?limit=500", headers=restricted)
    drawn = _svg_counts(page.text)
    assert sum(n for day in drawn.values() for n in day.values()) == sum(mine["counts"].values())
    assert SECRET_DAG not in page.text and SECRET_MARKER not in page.text


def test_script_payload_in_dag_id_or_gate_filter_is_escaped_in_the_chart(client, gate_runs, admin):
    for query in (f"gate={quote(XSS_PAYLOAD)}", f"dag_id={quote(XSS_PAYLOAD)}"):
        resp = client.get(f"/aisec/overview?{query}", headers=admin)
        assert resp.status_code == 200, (query, resp.text[:200])
        assert XSS_PAYLOAD not in resp.text and "<script" not in resp.text.lower()
        svg = re.search(r'<svg class="timeline-chart".*?</svg>', resp.text, re.DOTALL).group(0)
        assert str(markupsafe.escape(XSS_PAYLOAD)) in svg  # named in the chart's title, as text
        assert "default-src 'none'" in resp.headers["content-security-policy"]
        assert "script-src" not in resp.headers["content-security-policy"]
