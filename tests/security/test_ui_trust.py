"""The UI shows only what the central audit trail confirms, and serves only what belongs to the URL.

Attacks by a user who may write XCom on one DAG (``writer``, REST API) against a real api-server:
forged ``aisec_result`` / ``aisec_evidence`` entries pointing at another DAG's record or report,
and a failing gate's result PATCHed to ``verdict: pass``. Plus the probes that held (route
authentication, path traversal, escaping in a real browser), kept as regressions.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from tests.security.live import ATTACKER, VICTIM, VICTIM_MARKER, XSS_PAYLOAD, run_url

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def runs(security_airflow):
    """A victim run the writer may not see, an attacker run with forged XComs written by the writer."""
    sa = security_airflow
    victim_run, victim_state = sa.run_and_wait(VICTIM)
    attacker_run, _ = sa.run_and_wait(ATTACKER)
    assert victim_state == "success", sa.live.logs()
    assert sa.task_state(ATTACKER, attacker_run, "gate_fail") == "failed"
    assert sa.task_state(ATTACKER, attacker_run, "gate_ok") == "success"

    # What the attacker copies (an insider may know a record's number and digest; here the admin reads them).
    _, victim_result = sa.live.request("GET", sa.xcom_path(VICTIM, victim_run, "gate_victim", "aisec_result"))
    _, victim_evidence = sa.live.request("GET", sa.xcom_path(VICTIM, victim_run, "gate_victim", "aisec_evidence"))
    victim_result, victim_evidence = victim_result["value"], victim_evidence["value"]
    _, failing = sa.live.request("GET", sa.xcom_path(ATTACKER, attacker_run, "gate_fail", "aisec_result"))
    failing = failing["value"]

    def write(task_id: str, key: str, value, *, patch: bool = False) -> int:
        if patch:
            status, body = sa.as_user("writer", "PATCH", sa.xcom_path(ATTACKER, attacker_run, task_id, key),
                                      {"value": value})
        else:
            status, body = sa.as_user("writer", "POST", sa.xcom_path(ATTACKER, attacker_run, task_id),
                                      {"key": key, "value": value})
        assert status in (200, 201), (status, body)
        return status

    # 1. The victim's result and evidence reference, verbatim, on a plain task of the attacker's DAG.
    write("plain", "aisec_result", victim_result)
    write("plain", "aisec_evidence", victim_evidence)
    # 2. The gate that passed: its result re-pointed at the victim's report, its anchor at the victim's record.
    _, own = sa.live.request("GET", sa.xcom_path(ATTACKER, attacker_run, "gate_ok", "aisec_result"))
    own = own["value"]
    repointed = copy.deepcopy(own)
    repointed["reports"] = [{"name": "victim report", "uri": victim_result["reports"][0]["uri"],
                             "media_type": "text/html"}]
    write("gate_ok", "aisec_result", repointed, patch=True)
    write("gate_ok", "aisec_evidence", victim_evidence, patch=True)
    # 3. The failing gate's result PATCHed to a clean pass, with script in what the page shows.
    forged = copy.deepcopy(failing)
    forged.update(verdict="pass", findings=[], error=None)
    forged["metrics"] = {XSS_PAYLOAD: 1}
    forged["policy"] = {"name": f"strict{XSS_PAYLOAD}", "sha256": "0" * 64, "source": None}
    write("gate_fail", "aisec_result", forged, patch=True)
    return {"victim": victim_run, "attacker": attacker_run, "victim_evidence": victim_evidence,
            "own_result": own}


def _gates(sa, user: str, run_id: str) -> dict[str, dict]:
    status, body = sa.as_user(user, "GET", run_url(ATTACKER, run_id, api=True))
    assert status == 200, body
    return body, {g["task_id"]: g for g in body["gates"]}


# --- forged references to another DAG --------------------------------------------------------------
def test_forged_evidence_pointing_at_another_dags_record_is_refused(security_airflow, runs):
    sa = security_airflow
    base = run_url(ATTACKER, runs["attacker"])
    for task_id in ("plain", "gate_ok"):
        for user in ("writer", "admin"):  # even a reader of both DAGs gets nothing that is not this task's
            status, body = sa.as_user(user, "GET", f"{base}/tasks/{task_id}/evidence")
            assert status in (404, 409), (task_id, user, status, body)
            assert VICTIM_MARKER not in str(body)
            assert not (isinstance(body, dict) and body.get("record"))


def test_forged_report_reference_to_another_dags_report_is_refused(security_airflow, runs):
    sa = security_airflow
    base = run_url(ATTACKER, runs["attacker"])
    for task_id in ("plain", "gate_ok"):
        for user in ("writer", "admin"):
            status, body = sa.as_user(user, "GET", f"{base}/tasks/{task_id}/reports/0")
            assert status in (404, 409), (task_id, user, status)
            assert VICTIM_MARKER not in str(body)


def test_the_victim_dag_stays_closed_to_the_writer(security_airflow, runs):
    sa = security_airflow
    base = run_url(VICTIM, runs["victim"])
    for path in (base, run_url(VICTIM, runs["victim"], api=True), f"{base}/tasks/gate_victim/evidence",
                 f"{base}/tasks/gate_victim/reports/0", f"/aisec/api/overview?dag_id={VICTIM}"):
        status, body = sa.as_user("writer", "GET", path)
        assert status == 403, (path, status)
        assert VICTIM_MARKER not in str(body)
    status, body = sa.as_user("writer", "GET", "/aisec/api/overview?limit=500")
    assert status == 200
    assert VICTIM not in body["dag_ids"] and all(r["dag_id"] != VICTIM for r in body["results"])
    # Nor can the writer change the victim's XComs.
    status, _ = sa.as_user("writer", "POST", sa.xcom_path(VICTIM, runs["victim"], "gate_victim"),
                           {"key": "aisec_result", "value": {}})
    assert status == 403


def test_a_genuine_result_still_serves_its_own_record_and_report(security_airflow, runs):
    sa = security_airflow
    base = run_url(VICTIM, runs["victim"])
    status, body = sa.as_user("viewer", "GET", f"{base}/tasks/gate_victim/evidence")
    assert status == 200, body
    assert body["checks"]["verified"] is True
    assert body["record"]["payload"]["airflow"]["dag_id"] == VICTIM
    status, body = sa.as_user("viewer", "GET", f"{base}/tasks/gate_victim/reports/0")
    assert status == 200 and VICTIM_MARKER in str(body)


# --- a forged pass --------------------------------------------------------------------------------
def test_a_patched_pass_shows_as_unverified_in_the_run_tab(security_airflow, runs):
    sa = security_airflow
    for user in ("viewer", "writer"):
        body, gates = _gates(sa, user, runs["attacker"])
        forged = gates["gate_fail"]
        assert forged["verdict"] == "unverified", forged
        assert forged["verified"] is False and forged["trust"]
        assert forged["result"]["verdict"] == "pass"  # what the XCom claims, shown as a claim
        assert gates["plain"]["verdict"] == "unverified"
        assert gates["gate_ok"]["verdict"] == "unverified"  # its reports were re-pointed
        assert body["counts"]["unverified"] == 3
        assert body["counts"]["pass"] == 0
    html_status, page = sa.as_user("viewer", "GET", run_url(ATTACKER, runs["attacker"]))
    assert html_status == 200
    sections = dict(re.findall(r'data-task-id="([^"]+)" data-verdict="([^"]+)"', page))
    assert sections["gate_fail"] == "unverified" and sections["plain"] == "unverified"
    assert "UNVERIFIED" in page
    assert 'data-verdict="pass"' not in page
    assert XSS_PAYLOAD not in page and "<script" not in page.lower()


def test_a_patched_pass_shows_as_unverified_in_the_overview(security_airflow, runs):
    sa = security_airflow
    status, body = sa.as_user("viewer", "GET", f"/aisec/api/overview?dag_id={ATTACKER}&limit=500")
    assert status == 200
    rows = {r["task_id"]: r for r in body["results"] if r["run_id"] == runs["attacker"]}
    assert rows["gate_fail"]["verdict"] == "unverified"
    assert rows["plain"]["verdict"] == "unverified"
    assert body["counts"]["unverified"] >= 3
    assert body["counts"]["pass"] == 0
    status, passes = sa.as_user("viewer", "GET", f"/aisec/api/overview?dag_id={ATTACKER}&verdict=pass")
    assert status == 200 and passes["results"] == []
    status, page = sa.as_user("viewer", "GET", f"/aisec/overview?dag_id={ATTACKER}&limit=500")
    assert status == 200
    assert re.search(r'data-verdict="unverified"', page) and 'data-verdict="pass"' not in page
    assert XSS_PAYLOAD not in page


def test_genuine_results_are_shown_as_verified(security_airflow, runs):
    sa = security_airflow
    status, body = sa.as_user("viewer", "GET", run_url(VICTIM, runs["victim"], api=True))
    assert status == 200
    [gate] = body["gates"]
    assert gate["verified"] is True and gate["verdict"] == "warn"
    assert body["counts"]["unverified"] == 0


# --- probes that held, kept -------------------------------------------------------------------------
def test_anonymous_and_forged_tokens_get_nothing(security_airflow, runs):
    sa = security_airflow
    base = run_url(VICTIM, runs["victim"])
    for path in ("/aisec/overview", "/aisec/api/overview", base, f"{base}/tasks/gate_victim/evidence",
                 f"{base}/tasks/gate_victim/reports/0"):
        status, body = sa.live.request("GET", path, token=False)
        assert status == 401 and VICTIM_MARKER not in str(body)
        status, body = sa.live.request("GET", path, token="eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.x")
        assert status in (401, 403) and VICTIM_MARKER not in str(body)


def test_report_path_traversal_is_refused_even_for_a_genuine_looking_result(security_airflow, runs):
    sa = security_airflow
    run_id = runs["attacker"]
    doc = copy.deepcopy(runs["own_result"])
    doc["reports"] = [{"name": "passwd", "uri": f"{sa.report_root}/../../../../../../etc/passwd",
                       "media_type": "text/plain"},
                      {"name": "abs", "uri": "/etc/passwd", "media_type": "text/plain"}]
    status, _ = sa.as_user("writer", "POST", sa.xcom_path(ATTACKER, run_id, "plain"),
                           {"key": "traversal_probe", "value": doc})
    assert status == 201
    status, _ = sa.as_user("writer", "PATCH", sa.xcom_path(ATTACKER, run_id, "plain", "aisec_result"),
                           {"value": doc})
    assert status == 200
    for index in (0, 1):
        status, body = sa.as_user("writer", "GET", f"{run_url(ATTACKER, run_id)}/tasks/plain/reports/{index}")
        assert status in (404, 409) and "root:" not in str(body)


def test_forged_content_is_inert_in_a_real_browser(security_airflow, runs):
    """Chromium opens the tab holding the forged result: nothing runs, the payload shows as text."""
    from playwright.sync_api import sync_playwright

    sa = security_airflow
    assert Path(CHROMIUM).exists(), "Debian chromium is missing (apt-get install chromium)"
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            context = browser.new_context()
            context.add_cookies([{"name": "_token", "value": sa.token("writer"), "url": sa.live.base_url}])
            page = context.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(sa.live.base_url + run_url(ATTACKER, runs["attacker"]), wait_until="load")
            section = page.locator("section[data-task-id='gate_fail']")
            assert section.get_attribute("data-verdict") == "unverified"
            assert "UNVERIFIED" in section.locator(".badge").inner_text()
            assert XSS_PAYLOAD in section.inner_text()  # shown as text
            page.wait_for_timeout(300)
        finally:
            browser.close()
    assert dialogs == []
