"""The UI plugin on a PostgreSQL metadata DB (XCom values in JSONB, JSON filters in SQL).

Airflow binds its metadata DB at import, so this runs in a subprocess with its own
AIRFLOW_HOME and ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` pointing at a fresh database
created for the test (dropped afterwards). The subprocess migrates it, runs the same
real gate DAGs as the SQLite tests with ``dag.test()``, then queries the plugin through
Airflow's API server app and prints what it saw; the assertions are here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from ui_dags import (
    MIXED_DAG,
    MIXED_VERDICTS,
    SECRET_DAG,
    SECRET_MARKER,
    XSS_PAYLOAD,
    mixed_dag_source,
    pick_gate,
    policy_text,
    secret_dag_source,
)

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent

PROBE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from urllib.parse import quote

    from airflow.dag_processing.dagbag import DagBag

    runs = {}
    for dag_id in sys.argv[1:]:
        bag = DagBag(dag_folder=os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], dag_id + ".py"))
        assert not bag.import_errors, bag.import_errors
        runs[dag_id] = bag.get_dag(dag_id).test().run_id

    from fastapi.testclient import TestClient
    from airflow.api_fastapi.app import create_app
    from airflow.settings import engine

    out = {"dialect": engine.dialect.name, "runs": runs}
    with TestClient(create_app()) as c:
        def token(user):
            r = c.post("/auth/token", json={"username": user, "password": user + "-pw"})
            return {"Authorization": "Bearer " + r.json()["access_token"]}
        admin, restricted = token("admin"), token("restricted")
        mixed = "/aisec/runs/%s/%s" % (sys.argv[1], quote(runs[sys.argv[1]], safe=":+"))
        secret = "/aisec/runs/%s/%s" % (sys.argv[2], quote(runs[sys.argv[2]], safe=":+"))
        out["anonymous"] = c.get(mixed).status_code
        out["run_json"] = c.get(mixed.replace("/aisec/runs/", "/aisec/api/runs/"), headers=admin).json()
        page = c.get(mixed, headers=admin)
        out["run_page"] = {"status": page.status_code, "text": page.text}
        out["overview_admin"] = c.get("/aisec/api/overview?limit=500", headers=admin).json()
        out["overview_fail"] = c.get("/aisec/api/overview?verdict=fail&limit=500", headers=admin).json()
        out["overview_restricted"] = c.get("/aisec/api/overview?limit=500", headers=restricted).json()
        out["secret_restricted"] = c.get(secret, headers=restricted).status_code
        out["overview_page"] = c.get("/aisec/overview?limit=500", headers=admin).text
    print("AISEC-PROBE " + json.dumps(out))
    """
)


@pytest.fixture
def pg_database(postgres_dsn):
    import psycopg2

    name = f"aisec_ui_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(postgres_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base = postgres_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_plugin_on_postgres_metadata_db(pg_database, tmp_path):
    home = tmp_path / "airflow"
    dags = tmp_path / "dags"
    dags.mkdir()
    reports = tmp_path / "reports"
    reports.mkdir()
    gate = pick_gate()
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(gate))
    report = reports / "drift.html"
    report.write_text("<p>report</p>")
    (dags / f"{MIXED_DAG}.py").write_text(mixed_dag_source(gate, str(policy), str(report), str(reports)))
    (dags / f"{SECRET_DAG}.py").write_text(secret_dag_source(gate, str(policy)))
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({u: f"{u}-pw" for u in ("admin", "restricted")}))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_database,
        # Airflow derives an asyncpg URL for its async engine, and asyncpg is not in the lock
        # (it comes with apache-airflow[postgres]). The plugin only uses the sync session, so
        # park the async engine on a throw-away SQLite file that nothing here touches.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": f"sqlite+aiosqlite:///{tmp_path / 'unused-async.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__AISEC__EVIDENCE_LOCATION": str(tmp_path / "evidence"),
        "AIRFLOW__AISEC__REPORT_ROOTS": str(reports),
        "AIRFLOW__CORE__AUTH_MANAGER": "ui_auth_manager.RestrictedAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,restricted:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex * 2,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    airflow = Path(sys.executable).parent / "airflow"
    migrate = subprocess.run(
        [str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, MIXED_DAG, SECRET_DAG],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        check=False,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("AISEC-PROBE ")), None)
    assert line, (proc.returncode, proc.stdout[-2000:], proc.stderr[-4000:])
    out = json.loads(line.split(" ", 1)[1])

    assert out["dialect"] == "postgresql"
    assert out["anonymous"] == 401
    verdicts = {g["task_id"]: g["verdict"] for g in out["run_json"]["gates"]}
    assert verdicts == MIXED_VERDICTS
    assert out["run_json"]["gates"][0]["task_id"] == "gate_fail"
    # Filtering on JSONB in SQL; every result checked against the audit trail (none unverified here).
    assert out["overview_admin"]["counts"] == {"pass": 2, "warn": 1, "fail": 2, "error": 0, "unverified": 0}
    assert out["overview_admin"]["gates"] == [gate]
    assert {r["verdict"] for r in out["overview_fail"]["results"]} == {"fail"}
    assert len(out["overview_fail"]["results"]) == 2
    # Per-DAG access holds on PostgreSQL too.
    assert out["secret_restricted"] == 403
    assert {r["dag_id"] for r in out["overview_restricted"]["results"]} == {MIXED_DAG}
    assert out["overview_restricted"]["counts"] == {"pass": 2, "warn": 1, "fail": 1, "error": 0, "unverified": 0}
    assert SECRET_MARKER not in json.dumps(out["overview_restricted"])
    # Escaping does not depend on the database.
    assert out["run_page"]["status"] == 200
    for text in (out["run_page"]["text"], out["overview_page"]):
        assert XSS_PAYLOAD not in text and "<script" not in text.lower()
    assert f"{gate}.psi_exceeded" in out["run_page"]["text"]
