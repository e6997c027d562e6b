"""The overview as a posture view, server side: the coverage matrix (DAG x gate type, latest verdict,
empty cell where a DAG has no such gate, only readable DAGs), findings readable in full, metrics as
tables and small charts in the run tab, filters kept in every link. The browser side is in
test_ui_browser.py. Results come from real ``dag.test()`` runs through the real gate base class.
"""

from __future__ import annotations

import json
import os
import re
from urllib.parse import parse_qs, quote, urlparse

import pytest
from ui_dags import (
    LONG_TAIL,
    MIXED_DAG,
    POSTURE_DAG,
    SECRET_DAG,
    SECRET_MARKER,
    posture_dag_source,
    posture_policy_text,
    second_gate,
)

from airflow_aisec.plugins.posture import CoverageMatrix, metric_block, metric_blocks

PASSWORDS = {"admin": "admin-pw-p1", "restricted": "restricted-pw-p2"}


# --- pure display model (no Airflow) -----------------------------------------------------------------
def test_metric_blocks_turn_structures_into_tables_and_charts():
    blocks = metric_blocks({"n": 3, "share": 0.123456789, "ok": True,
                            "by_col": {"a": 2.0, "b": -1.0}, "per_group": {"x": {"rate": 0.5}, "y": {"n": 2}},
                            "series": [1, 4, 2], "rows": [{"k": 1}, {"k": 2, "j": "z"}],
                            "odd": {"a": [{"b": [1]}]}})
    assert [b["name"] for b in blocks["scalars"]] == ["n", "ok", "share"]
    assert {b["name"]: b["text"] for b in blocks["scalars"]} == {"n": "3", "ok": "true", "share": "0.123457"}
    kinds = {b["name"]: b for b in blocks["structured"]}
    assert kinds["by_col"]["kind"] == "mapping"
    assert [(bar["label"], bar["w"], bar["negative"]) for bar in kinds["by_col"]["bars"]] == [
        ("a", 120.0, False), ("b", 60.0, True)]
    assert kinds["per_group"]["kind"] == "table" and kinds["per_group"]["columns"] == ["rate", "n"]
    assert kinds["per_group"]["rows"] == [("x", ["0.5", ""]), ("y", ["", "2"])]
    assert kinds["rows"]["kind"] == "table" and kinds["rows"]["columns"] == ["k", "j"]
    assert kinds["series"]["kind"] == "list" and kinds["series"]["spark"]["n"] == 3
    assert kinds["odd"]["kind"] == "json"  # only what fits no table stays JSON


def test_metric_tables_are_bounded():
    block = metric_block("big", {f"c{i:04d}": i for i in range(1000)})
    assert len(block["rows"]) == 60 and block["more"] == 940


def test_coverage_matrix_keeps_the_latest_verdict_and_leaves_missing_gates_empty():
    m = CoverageMatrix()
    m.add(dag_id="d1", gate="pii", verdict="fail", run_id="r2", task_id="t", timestamp="2026-01-02")
    m.add(dag_id="d1", gate="pii", verdict="pass", run_id="r1", task_id="t", timestamp="2026-01-01")
    m.add(dag_id="d2", gate="drift", verdict="warn", run_id="r1", task_id="t", timestamp="2026-01-01")
    m.add(dag_id="d3", gate=None, verdict="error", run_id="r1", task_id="t", timestamp=None)
    assert m.columns == ["drift", "pii"] and m.dag_ids == ["d1", "d2", "d3"]
    assert m.cell("d1", "pii")["verdict"] == "fail" and m.cell("d1", "pii")["run_id"] == "r2"
    assert m.cell("d1", "drift") is None and m.cell("d3", "pii") is None
    assert m.to_dict()["dags"][1] == {"dag_id": "d2", "cells": {"drift": m.cell("d2", "drift"), "pii": None}}


# --- through Airflow's API server app ------------------------------------------------------------------


@pytest.fixture(scope="module")
def posture(run_dag, gate_runs, session_dir):
    other = second_gate(gate_runs.gate)
    policy = session_dir / "ui-posture-policy.yaml"
    policy.write_text(posture_policy_text(gate_runs.gate, other))
    out = run_dag(posture_dag_source(gate_runs.gate, other, str(policy)), POSTURE_DAG)
    assert out.task_states == {"metrics_gate": "success", "scan_gate": "failed"}, out.task_states
    return {"gate": gate_runs.gate, "other": other, "run_id": out.run_id, "mixed_run_id": gate_runs.mixed_run_id}


@pytest.fixture(scope="module")
def client(posture, session_dir):
    from airflow.api_fastapi import app as api_app
    from fastapi.testclient import TestClient

    pw_file = session_dir / "ui-posture-passwords.json"
    pw_file.write_text(json.dumps(PASSWORDS))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__CORE__AUTH_MANAGER", "ui_auth_manager.RestrictedAuthManager")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,restricted:viewer")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(pw_file))
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", os.urandom(32).hex())
        api_app.purge_cached_app()
        app = api_app.create_app()
        with TestClient(app) as c:
            yield c
        api_app.purge_cached_app()


def _login(client, user: str) -> dict[str, str]:
    resp = client.get("/api/v2/version")  # warm-up: the app is up
    assert resp.status_code in (200, 401)
    resp = client.post("/auth/token", json={"username": user, "password": PASSWORDS[user]})
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def _matrix(client, headers, query: str = "") -> dict:
    resp = client.get(f"/aisec/api/overview?limit=500{query}", headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["matrix"]


@pytest.mark.integration
def test_matrix_has_latest_verdict_per_dag_and_gate_and_empty_cells(client, posture):
    admin = _login(client, "admin")
    m = _matrix(client, admin)
    gate, other = posture["gate"], posture["other"]
    assert {gate, other} <= set(m["gates"])
    rows = {d["dag_id"]: d["cells"] for d in m["dags"]}
    assert {MIXED_DAG, SECRET_DAG, POSTURE_DAG} <= set(rows)
    assert rows[POSTURE_DAG][gate]["verdict"] == "pass" and rows[POSTURE_DAG][gate]["task_id"] == "metrics_gate"
    assert rows[POSTURE_DAG][other]["verdict"] == "fail" and rows[POSTURE_DAG][other]["run_id"] == posture["run_id"]
    assert rows[MIXED_DAG][other] is None and rows[SECRET_DAG][other] is None  # no such gate in those DAGs
    assert rows[MIXED_DAG][gate]["verdict"] in ("pass", "warn", "fail")

    page = client.get("/aisec/overview?limit=500", headers=admin).text
    table = page[page.index('<table class="coverage-matrix">'):]
    table = table[:table.index("</table>")]
    mixed_row = re.search(rf'<tr data-dag-id="{MIXED_DAG}">(.*?)</tr>', table, re.DOTALL).group(1)
    assert f'<td class="cell none" data-gate="{other}" data-verdict=""' in mixed_row
    posture_row = re.search(rf'<tr data-dag-id="{POSTURE_DAG}">(.*?)</tr>', table, re.DOTALL).group(1)
    assert f'data-gate="{other}" data-verdict="fail"' in posture_row
    # a cell opens that run's "Security gates" tab in the Airflow UI
    assert f"/dags/{POSTURE_DAG}/runs/{quote(posture['run_id'], safe=':+@')}/plugin/aisec-gates" in posture_row


@pytest.mark.integration
def test_matrix_shows_only_dags_the_user_can_read(client, posture):
    restricted = _login(client, "restricted")
    m = _matrix(client, restricted)
    dags = {d["dag_id"] for d in m["dags"]}
    assert {MIXED_DAG, POSTURE_DAG} <= dags and SECRET_DAG not in dags
    page = client.get("/aisec/overview?limit=500", headers=restricted).text
    assert SECRET_DAG not in page and SECRET_MARKER not in page
    # asking for the hidden DAG by name is refused outright
    resp = client.get(f"/aisec/api/overview?dag_id={SECRET_DAG}", headers=restricted)
    assert resp.status_code == 403 and SECRET_MARKER not in resp.text


@pytest.mark.integration
def test_overview_shows_findings_in_full(client, posture):
    admin = _login(client, "admin")
    page = client.get(f"/aisec/overview?dag_id={POSTURE_DAG}&limit=500", headers=admin).text
    assert LONG_TAIL in page  # the top finding, whole
    assert "2 more findings" in page and "second issue in model.bin" in page and "third issue in config.json" in page


@pytest.mark.integration
def test_run_tab_shows_metrics_as_tables_and_charts(client, posture):
    admin = _login(client, "admin")
    page = client.get(f"/aisec/runs/{POSTURE_DAG}/{quote(posture['run_id'], safe=':+')}", headers=admin).text
    section = page[page.index('data-task-id="metrics_gate"'):]
    section = section[:section.index("</section>")]
    assert re.search(r'data-metric="psi_per_column" data-kind="mapping"', section)
    assert section.count('<rect class="bar-fill') == 3
    assert re.search(r'data-metric="per_group" data-kind="table"', section)
    assert "selection_rate" in section and "group_b" in section and ">380<" in section
    assert re.search(r'data-metric="psi_history" data-kind="list"', section) and "<polyline" in section
    assert re.search(r'data-metric="odd_shape" data-kind="json"', section)
    # no JSON dump of the structured metrics: their values sit in cells, not in {"...": ...} text
    assert '{"age"' not in section and "{&#34;age" not in section and '"selection_rate"' not in section
    assert "style=" not in page  # no inline style: the CSP stays strict


@pytest.mark.integration
def test_filters_live_in_the_url_and_every_link_keeps_them(client, posture):
    admin = _login(client, "admin")
    gate = posture["gate"]
    query = f"verdict=fail&gate={gate}&dag_id={POSTURE_DAG}&limit=100&days=30"
    resp = client.get(f"/aisec/overview?{query}", headers=admin)
    assert resp.status_code == 200
    assert "script-src" not in resp.headers["content-security-policy"]
    assert resp.headers["content-security-policy"].startswith("default-src 'none'")
    page = resp.text
    for name, value in (("verdict", "fail"), ("gate", gate), ("dag_id", POSTURE_DAG), ("limit", "100"),
                        ("days", "30")):
        assert re.search(rf'<option value="{re.escape(value)}" selected>', page), name
    # links of the matrix, the chart windows and the counts carry the other filters along
    hrefs = [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]*overview\?[^"]*)"', page)]
    assert hrefs
    for href in hrefs:
        params = {k: v[0] for k, v in parse_qs(urlparse(href).query).items()}
        kept = {k for k in ("verdict", "gate", "dag_id", "limit", "days") if k in params}
        assert len(kept) >= 4, href  # each link changes one filter at most and keeps the rest
