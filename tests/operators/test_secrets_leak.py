"""No secret leaks from a real LocalExecutor run.

``dag.test()`` runs tasks in-process and prints values unmasked, so this test runs the DAG through
``dag.test(use_executor=True)`` with Airflow's LocalExecutor: each task runs in a supervised
subprocess that talks to a real ``airflow api-server`` (execution API) and writes its log file,
exactly as under a scheduler. The DAG's tasks deliberately print, log and raise with the secret
values. Then every output is searched for every secret value (KV values, the dynamic database
user's name and password) and for the wrapping tokens:

* task log files, the api-server's own output,
* XComs (gate results, handles, return values), rendered template fields (DB table
  ``rendered_task_instance_fields``), the DAG run's task instances,
* the audit trail (every record), and finally the raw bytes of the whole SQLite metadata DB.

Zero hits are allowed, the wrapping tokens included: the handle XCom holds them sealed with
``[aisec] handoff_key``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.helpers.env import patched_environ
from tests.helpers.net import free_port
from tests.helpers.vault import (
    limited_token,
    open_handoff,
    postgres_database_engine,
    seed_kv,
    vault_conn_json,
)

pytestmark = pytest.mark.integration

SECRETS = {
    "leak/app/db": {
        "password": "leak-db-pw-" + uuid.uuid4().hex,
        "username": "leak-user-" + uuid.uuid4().hex[:8],
    },
    "leak/app/api": {"api_key": "leak-api-key-" + uuid.uuid4().hex, "port": "5432"},
}
PLANTED = [v for data in SECRETS.values() for v in data.values() if len(v) >= 5]
#: Logged on purpose but never masked: proves the search would see a leak.
CANARY = "leak-canary-" + uuid.uuid4().hex

POLICY = """
version: 1
name: secrets-leak
secrets:
  wrap_ttl: 5m
  unmaskable_keys: [port]
  database: {mount: dbleak, max_lease_ttl: 10m}
  grants:
    - dag_id: secrets_leak_dag
      paths: ["leak/app/*"]
      database_roles: [leak-ro]
"""

DAG_SOURCE = """
import hashlib, logging, pathlib
import pendulum
from airflow.sdk import DAG, task
from airflow_aisec.operators.secrets import VaultSecretsGateOperator, vault_secrets, vault_database_credentials

POLICY = {policy!r}
EVIDENCE = {evidence!r}
SIDE = pathlib.Path({side!r})
EXPECTED = {expected!r}
log = logging.getLogger("leak.test")

with DAG("secrets_leak_dag", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False,
         tags=["aisec-leak-test"]) as dag:
    fetch = VaultSecretsGateOperator(task_id="fetch", paths={{"leak/app/db": ["password"], "leak/app/api": None}},
                                     policy=POLICY, evidence_location=EVIDENCE)
    fetch_again = VaultSecretsGateOperator(task_id="fetch_again", paths=["leak/app/db"], policy=POLICY,
                                           evidence_location=EVIDENCE)

    @task
    def consume():
        with vault_secrets("fetch", evidence_location=EVIDENCE) as secrets:
            db, api = secrets["leak/app/db"], secrets["leak/app/api"]
            assert hashlib.sha256(db["password"].encode()).hexdigest() == EXPECTED
            # careless code: every one of these must come out masked
            print("db password is", db["password"], "user", db["username"])
            log.info("api key is %s", api["api_key"])
            log.warning("full secret: %s / %r", dict(db), dict(api))
            logging.getLogger("airflow.task").info("again: %s", db["password"])
            log.info("canary (not a secret, not masked): %s", {canary!r})
        return "trained"

    @task
    def consume_and_crash():
        with vault_secrets("fetch_again", evidence_location=EVIDENCE) as secrets:
            raise ValueError("could not log in with password " + secrets["leak/app/db"]["password"])

    @task
    def use_database():
        import psycopg2
        with vault_database_credentials("leak-ro", policy=POLICY, evidence_location=EVIDENCE) as creds:
            (SIDE / "db_user").write_text(creds.username)
            (SIDE / "db_password").write_text(creds.password)
            print("connecting as", creds.username, "with", creds.password)
            log.info("creds %s %s %r", creds.username, creds.password, creds)
            conn = psycopg2.connect(host="127.0.0.1", user=creds.username, password=creds.password,
                                    dbname="postgres")
            conn.close()
        return "queried"

    fetch >> consume()
    fetch_again >> consume_and_crash()
    use_database()
"""


@pytest.fixture(scope="module")
def vault_for_leak(bao_server):
    root = bao_server.client()
    seed_kv(root, SECRETS)
    token = limited_token(
        root,
        "leak-limited",
        """
        path "secret/data/leak/app/*" { capabilities = ["read"] }
        path "dbleak/creds/leak-ro" { capabilities = ["read"] }
        path "sys/leases/revoke/dbleak/creds/leak-ro/*" { capabilities = ["update"] }
        """,
        ttl="2h",
    )
    postgres_database_engine(root, "dbleak", {"leak-ro": ("5m", "10m")})
    return {"root": root, "conn": vault_conn_json(bao_server.addr, password=token)}


@pytest.fixture(scope="module")
def api_server(airflow_db, vault_for_leak, tmp_path_factory):
    """A real ``airflow api-server`` (execution API) for LocalExecutor workers; environment set for both."""
    port = free_port()
    env_vars = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": "leak-test-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW_CONN_VAULT_DEFAULT": vault_for_leak["conn"],
    }
    with patched_environ(env_vars):
        out_file = tmp_path_factory.mktemp("api-server") / "api-server.out"
        with open(out_file, "wb") as out:
            proc = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "airflow"),
                    "api-server",
                    "--port",
                    str(port),
                    "--host",
                    "127.0.0.1",
                    "--workers",
                    "1",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
            )
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=3):
                        break
                except urllib.error.HTTPError:
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("api-server did not start:\n" + out_file.read_text()[-3000:]) from None
                    time.sleep(0.5)
            yield {"port": port, "output": out_file}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _run_with_local_executor(source: str, dag_id: str):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.executors.executor_loader import ExecutorLoader

    assert ExecutorLoader.get_default_executor().__class__.__name__ == "LocalExecutor"
    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{dag_id}.py"
    path.write_text(source)
    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id).test(use_executor=True)


def _search(haystacks: dict[str, str], needles: list[str]) -> list[tuple[str, int]]:
    """(where, needle index) for each hit; needles are never printed."""
    return [(where, i) for where, text in haystacks.items() for i, n in enumerate(needles) if n in text]


def test_no_secret_reaches_logs_xcom_rendered_fields_results_or_audit_trail(
    api_server, vault_for_leak, tmp_path
):
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    side = tmp_path / "side"
    side.mkdir()
    evidence = tmp_path / "evidence"
    (tmp_path / "policy.yaml").write_text(POLICY)
    expected = hashlib.sha256(SECRETS["leak/app/db"]["password"].encode()).hexdigest()
    source = DAG_SOURCE.format(
        policy=str(tmp_path / "policy.yaml"),
        evidence=str(evidence),
        side=str(side),
        expected=expected,
        canary=CANARY,
    )
    started = time.monotonic()
    dr = _run_with_local_executor(source, "secrets_leak_dag")
    elapsed = time.monotonic() - started

    with create_session() as s:
        tis = s.query(TaskInstance).filter_by(dag_id="secrets_leak_dag", run_id=dr.run_id).all()
        states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in tis}
        hostnames = {ti.hostname for ti in tis}
        ti_rows = json.dumps(
            [{c.name: str(getattr(ti, c.name)) for c in TaskInstance.__table__.columns} for ti in tis]
        )
        xcoms = {
            (r.task_id, r.key): r.value
            for r in s.query(XComModel).filter_by(dag_id="secrets_leak_dag", run_id=dr.run_id).all()
        }
        rtif = json.dumps(
            [
                r.rendered_fields
                for r in s.query(RenderedTaskInstanceFields)
                .filter_by(dag_id="secrets_leak_dag", run_id=dr.run_id)
                .all()
            ],
            default=str,
        )
    assert states == {
        "fetch": "success",
        "fetch_again": "success",
        "consume": "success",
        "consume_and_crash": "failed",
        "use_database": "success",
    }, f"took {elapsed:.0f}s"
    assert rtif != "[]"  # rendered fields were stored (and are searched below)

    logs_root = Path(os.environ["AIRFLOW_HOME"]) / "logs" / "dag_id=secrets_leak_dag" / f"run_id={dr.run_id}"
    log_files = sorted(logs_root.rglob("*.log"))
    assert {p.parent.name for p in log_files} == {f"task_id={t}" for t in states}
    logs = {str(p.relative_to(logs_root)): p.read_text(errors="replace") for p in log_files}
    consume_log = logs["task_id=consume/attempt=1.log"]
    # the careless prints and log calls did run, and came out masked
    assert "db password is ***" in consume_log and "api key is ***" in consume_log
    assert "could not log in with password ***" in logs["task_id=consume_and_crash/attempt=1.log"]
    assert "connecting as *** with ***" in logs["task_id=use_database/attempt=1.log"]

    db_user, db_password = (side / "db_user").read_text(), (side / "db_password").read_text()
    handles = [  # the hand-off is sealed with [aisec] handoff_key: open it as a worker does
        h
        for task_id in ("fetch", "fetch_again")
        for h in open_handoff(xcoms[(task_id, "aisec_secret_handles")], dag_id="secrets_leak_dag",
                              run_id=dr.run_id, task_id=task_id)
    ]
    tokens = [h["token"] for h in handles]
    assert len(tokens) == 3
    values = [*PLANTED, db_user, db_password]

    records = (evidence).glob("*.json")
    audit = {p.name: p.read_text() for p in records}
    assert any('"kind":"secret_unwrapped"' in t for t in audit.values())
    assert any('"kind":"lease_revoked"' in t for t in audit.values())
    results = {f"{t}/{k}": json.dumps(v, default=str) for (t, k), v in xcoms.items()}
    db_file = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    db_bytes = db_file.read_bytes().decode("latin-1")

    haystacks = {
        **{f"log:{k}": v for k, v in logs.items()},
        "api-server output": api_server["output"].read_text(errors="replace"),
        **{f"xcom:{k}": v for k, v in results.items()},
        "rendered_task_instance_fields": rtif,
        "task_instance rows": ti_rows,
        **{f"audit:{k}": v for k, v in audit.items()},
        "sqlite metadata db (raw bytes)": db_bytes,
    }
    # the search does see what is not masked (the canary is also in the DAG source, hence in the DB)
    assert ("log:task_id=consume/attempt=1.log", 0) in _search(haystacks, [CANARY])
    assert _search(haystacks, values) == []
    # wrapping tokens: nowhere, not even in the handle XCom or the DB (XCom holds them sealed)
    assert _search(haystacks, tokens) == []
    # ... and each of them is spent (or, for the crashed consumer, spent as well: it unwrapped first)
    from hvac import exceptions as hv

    for token in tokens:
        with pytest.raises(hv.InvalidRequest):
            vault_for_leak["root"].sys.unwrap(token)
    # the dynamic database user is gone
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (db_user,))
            assert cur.fetchone()[0] == 0
    finally:
        conn.close()
    assert hostnames  # ran on a worker (executor), recorded in the DB
