"""End to end in a real browser: a real Airflow runs a DAG with a failing gate, headless
Chromium logs in through the UI and opens the run's "Security gates" tab.

Chromium is Debian's ``/usr/bin/chromium`` (no browser download), driven by Playwright.
Screenshots land in ``artifacts/`` (gitignored) for CI to keep.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from ui_airflow import ADMIN_PASSWORD, live_airflow
from ui_dags import (
    LONG_TAIL,
    MIXED_DAG,
    POSTURE_DAG,
    XSS_PAYLOAD,
    mixed_dag_source,
    pick_gate,
    policy_text,
    posture_dag_source,
    posture_policy_text,
    second_gate,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def airflow_with_failed_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui-browser") / "airflow"
    gate = pick_gate()
    policy = home.parent / "policy.yaml"
    policy.write_text(policy_text(gate))
    reports = home / "evidence" / "reports"  # the gates' default report root: served by the plugin
    reports.mkdir(parents=True)
    report = reports / "drift-report.html"
    report.write_text("<html><body><h1>Drift report</h1></body></html>")
    source = mixed_dag_source(gate, str(policy), str(report), str(reports))
    # The posture view's DAG: a second gate type, a long finding, structured metrics.
    other = second_gate(gate)
    posture_policy = home.parent / "posture-policy.yaml"
    posture_policy.write_text(posture_policy_text(gate, other))
    dags = {f"{MIXED_DAG}.py": source, f"{POSTURE_DAG}.py": posture_dag_source(gate, other, str(posture_policy))}
    with live_airflow(home, dags) as live:
        live.wait_for_dag(MIXED_DAG)
        live.wait_for_dag(POSTURE_DAG)
        run_id = live.trigger(MIXED_DAG)
        posture_run = live.trigger(POSTURE_DAG)
        state = live.wait_for_run(MIXED_DAG, run_id)
        assert state == "failed", live.logs()
        assert live.wait_for_run(POSTURE_DAG, posture_run) == "failed", live.logs()
        live.posture = {"run_id": posture_run, "other": other}
        yield live, run_id, gate


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian chromium is missing (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def login(page, base_url: str) -> None:
    page.goto(f"{base_url}/", wait_until="domcontentloaded")
    page.wait_for_url(re.compile(r".*/auth/login.*"), timeout=30_000)
    page.locator("input[name=username]").fill("admin")
    page.locator("input[name=password]").fill(ADMIN_PASSWORD)
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)
    assert any(c["name"] == "_token" for c in page.context.cookies())


def test_security_gates_tab_in_a_real_browser(airflow_with_failed_run, browser):
    from playwright.sync_api import expect

    live, run_id, gate = airflow_with_failed_run
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 1300})
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    try:
        # An anonymous browser gets nothing from the plugin.
        anon = page.request.get(f"{live.base_url}/aisec/runs/{MIXED_DAG}/{quote(run_id, safe=':+')}")
        assert anon.status == 401

        login(page, live.base_url)

        # The extra link stored by the worker is where the user clicks from the task: follow it.
        status, links = live.request(
            "GET",
            f"/api/v2/dags/{MIXED_DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/gate_fail/links",
        )
        assert status == 200, links
        link = links["extra_links"]["Security gate result"]
        assert "/plugin/aisec-gates" in link
        page.goto(
            link if link.startswith("http") else f"{live.base_url}{link}", wait_until="domcontentloaded"
        )

        # The run page shows a "Security gates" tab, and it is the selected one.
        expect(page.get_by_role("link", name="Security gates").first).to_be_visible(timeout=30_000)
        frame = page.frame_locator("iframe[title='Security gates']")
        failing = frame.locator("section[data-task-id='gate_fail']")
        expect(failing).to_be_visible(timeout=30_000)
        expect(failing.locator(".badge")).to_have_text("FAIL")
        expect(failing).to_contain_text(f"{gate}.psi_exceeded")
        expect(failing).to_contain_text("PSI above threshold in column")
        expect(failing).to_contain_text(XSS_PAYLOAD)  # rendered as text, not executed
        expect(failing).to_contain_text("ui-test")
        # Failed gate first.
        first = frame.locator("section.gate").first
        expect(first).to_have_attribute("data-task-id", "gate_fail")
        expect(frame.locator("section[data-task-id='gate_waived']")).to_contain_text("JIRA-42")
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "ui-security-gates-tab.png"), full_page=True)

        # The stylesheet loaded through the authenticated route (a styled badge has a background).
        bg = failing.locator(".badge").evaluate("e => getComputedStyle(e).backgroundColor")
        assert bg not in ("rgba(0, 0, 0, 0)", "transparent"), bg

        # Overview in the navigation: filter by verdict, see the failing gate, no script ran.
        page.goto(f"{live.base_url}/plugin/aisec-overview", wait_until="domcontentloaded")
        overview = page.frame_locator("iframe[title='Security gates']")
        expect(overview.locator("table.overview")).to_be_visible(timeout=30_000)
        overview.locator("select[name=verdict]").select_option("fail")
        overview.locator("button[type=submit]").click()
        rows = overview.locator(f"table.overview tbody tr[data-dag-id='{MIXED_DAG}']")
        expect(rows).to_have_count(1, timeout=15_000)
        expect(rows.first).to_contain_text("gate_fail")
        expect(rows.first).to_contain_text(f"{gate}.psi_exceeded")
        page.screenshot(path=str(ARTIFACTS / "ui-security-gates-overview.png"), full_page=True)
        assert not any("aisec-xss" in e for e in console_errors)
    finally:
        context.close()


def test_verdicts_over_time_chart_in_a_real_browser(airflow_with_failed_run, browser):
    """The overview's SVG chart renders under the page CSP (no violation reported) and reads well."""
    from playwright.sync_api import expect

    live, _run_id, _gate = airflow_with_failed_run
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 1100})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    try:
        login(page, live.base_url)

        # In the Airflow UI: "Security gates" in the navigation, the chart inside the iframe.
        page.goto(f"{live.base_url}/plugin/aisec-overview", wait_until="domcontentloaded")
        frame = page.frame_locator("iframe[title='Security gates']")
        chart = frame.locator("svg.timeline-chart")
        expect(chart).to_be_visible(timeout=30_000)
        expect(frame.locator("svg.timeline-chart rect.seg")).not_to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "ui-security-gates-overview-chart.png"), full_page=True)

        # The page itself, filtered to the DAG (filters in the URL), as the iframe loads it.
        page.goto(f"{live.base_url}/aisec/overview?dag_id={MIXED_DAG}&days=14", wait_until="load")
        chart = page.locator("svg.timeline-chart")
        expect(chart).to_be_visible()
        today = page.locator("svg.timeline-chart g.day").last
        expect(today.locator("rect.seg")).not_to_have_count(0)
        drawn = {
            seg.get_attribute("data-series"): int(seg.get_attribute("data-count"))
            for seg in page.locator("svg.timeline-chart rect.seg").all()
        }
        assert drawn == {"pass": 2, "warn": 1, "fail": 1}, drawn  # one run, one day (the run just ran)
        # Coloured by the stylesheet (classes, not inline styles): a fail segment is not black.
        fill = page.locator("svg.timeline-chart rect.seg.v-fail").evaluate("e => getComputedStyle(e).fill")
        assert fill not in ("rgb(0, 0, 0)", "none"), fill
        box = chart.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 60, box
        # The table alternative opens without a script (<details>).
        page.locator("details.timeline-data summary").click()
        expect(page.locator("table.timeline-table")).to_be_visible()
        page.locator("section.timeline").screenshot(path=str(ARTIFACTS / "ui-verdicts-over-time.png"))

        csp = [m for m in console if "Content Security Policy" in m or "Refused to" in m]
        assert not csp, csp
    finally:
        context.close()


def test_posture_view_in_a_real_browser(airflow_with_failed_run, browser):
    """Coverage matrix, full findings, metrics as tables and charts, filters in the URL; no CSP report."""
    from playwright.sync_api import expect

    live, _run_id, _gate = airflow_with_failed_run
    other, posture_run = live.posture["other"], live.posture["run_id"]
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1440, "height": 1300})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    try:
        login(page, live.base_url)

        # Inside the Airflow UI (navigation "Security gates"): matrix and chart side by side.
        page.goto(f"{live.base_url}/plugin/aisec-overview", wait_until="domcontentloaded")
        frame = page.frame_locator("iframe[title='Security gates']")
        matrix = frame.locator("table.coverage-matrix")
        expect(matrix).to_be_visible(timeout=30_000)
        expect(frame.locator("table.coverage-matrix tbody tr")).to_have_count(2)
        expect(frame.locator(f"tr[data-dag-id='{POSTURE_DAG}'] td[data-gate='{other}']")).to_have_attribute(
            "data-verdict", "fail")
        empty = frame.locator(f"tr[data-dag-id='{MIXED_DAG}'] td[data-gate='{other}']")
        expect(empty).to_have_class(re.compile(r"\bnone\b"))
        expect(empty.locator(".badge")).to_have_count(0)
        expect(frame.locator("svg.timeline-chart")).to_be_visible()
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "ui-posture-overview.png"), full_page=True)

        # The page itself: filters go into the URL, survive a reload, and links keep them.
        page.goto(f"{live.base_url}/aisec/overview", wait_until="load")
        page.locator("select[name=gate]").select_option(other)
        page.locator("select[name=days]").select_option("30")
        page.locator("button[type=submit]").click()
        page.wait_for_url(re.compile(rf".*gate={other}.*"))
        assert "days=30" in page.url
        page.reload(wait_until="load")
        expect(page.locator("select[name=gate]")).to_have_value(other)
        expect(page.locator("select[name=days]")).to_have_value("30")
        expect(page.locator("table.coverage-matrix thead th.gate-col")).to_have_count(1)
        page.locator(f"table.coverage-matrix tr[data-dag-id='{POSTURE_DAG}'] th a").click()
        page.wait_for_url(re.compile(rf".*dag_id={POSTURE_DAG}.*"))
        assert f"gate={other}" in page.url and "days=30" in page.url
        # The top finding reads in full; the others open without a script.
        row = page.locator(f"table.overview tr[data-dag-id='{POSTURE_DAG}']").first
        expect(row).to_contain_text(LONG_TAIL)
        row.locator("details.all-findings summary").click()
        expect(row.locator("details.all-findings li")).to_have_count(2)
        page.locator("section.matrix").screenshot(path=str(ARTIFACTS / "ui-coverage-matrix.png"))
        page.screenshot(path=str(ARTIFACTS / "ui-posture-filtered.png"), full_page=True)

        # The run tab: metrics as a table, bars and a sparkline, not JSON.
        page.goto(f"{live.base_url}/aisec/runs/{POSTURE_DAG}/{quote(posture_run, safe=':+')}", wait_until="load")
        metrics = page.locator("section[data-task-id='metrics_gate'] .metrics-view")
        expect(metrics).to_be_visible()
        expect(metrics.locator("[data-metric='per_group'] table.metric-table tbody tr")).to_have_count(2)
        bars = metrics.locator("[data-metric='psi_per_column'] rect.bar-fill")
        expect(bars).to_have_count(3)
        widths = sorted(float(b.get_attribute("width")) for b in bars.all())
        assert widths[-1] == 120.0 and widths[0] < widths[1] < widths[2], widths
        fill = bars.first.evaluate("e => getComputedStyle(e).fill")
        assert fill not in ("rgb(0, 0, 0)", "none"), fill  # styled by the stylesheet under the CSP
        expect(metrics.locator("[data-metric='psi_history'] polyline")).to_have_count(1)
        metrics.screenshot(path=str(ARTIFACTS / "ui-run-metrics.png"))
        page.screenshot(path=str(ARTIFACTS / "ui-posture-run-tab.png"), full_page=True)

        csp = [m for m in console if "Content Security Policy" in m or "Refused to" in m]
        assert not csp, csp
    finally:
        context.close()
