"""Load: many concurrent DAG runs of a light pipeline with the example pipeline's data gates.

The DAG ``aisec_load`` runs the source gate, the pii gate and the model-scan gate on small local files
(written once by the fixture), plus a no-op task, in parallel; ``RUNS`` runs of it are triggered at once
through the REST API of a real deployment (api-server, scheduler, dag-processor on PostgreSQL; the
Celery variant adds a worker and Redis). The harness is :class:`tests.helpers.cluster.AirflowCluster`.

Asserted for each executor: every run succeeds, no task is left unfinished, every gate task's result
is in XCom, the audit trail holds exactly one record per gate task run (``RUNS`` x 3), each of them
matching its XCom result, and the chain verifies (``aisec audit verify``).

Sizing (2 cores): ``RUNS`` (env ``AISEC_LOAD_RUNS``, default 50) runs x 4 tasks; parallelism 4
(``[core] parallelism``, ``max_active_tasks_per_dag`` 4, ``max_active_runs_per_dag`` = RUNS, Celery
worker concurrency 2). Wall time is printed, never asserted (``bench/bench_load.py`` measures).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers.cluster import REDIS_BASE, AirflowCluster, clear_queue, create_database, drop_database
from tests.helpers.env import VENV_BIN
from tests.helpers.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.load, pytest.mark.timeout(1800)]

RUNS = int(os.environ.get("AISEC_LOAD_RUNS", "50"))
GATE_TASKS = ("validate_source", "classify_pii", "scan_model")
PARALLELISM = int(os.environ.get("AISEC_LOAD_PARALLELISM", "4"))

POLICY = """
version: 1
name: load
source:
  origins: ["{data}/*"]
  rows: {{min: 1}}
  poisoning:
    duplicates: {{max_rate: 1.0}}
pii:
  default_classification: restricted
  levels:
    restricted: {{allowed: ["*"]}}
  scan: {{mode: full}}
model_scan: {{}}
"""

DAG = '''
import pendulum
from airflow.sdk import DAG, task
from airflow_aisec.operators.model_scan import ModelScanGateOperator
from airflow_aisec.operators.pii import PiiGateOperator
from airflow_aisec.operators.source import SourceValidationOperator

DATA = {data!r}
with DAG("aisec_load", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False,
         max_active_runs={runs}, max_active_tasks={parallelism}):
    @task
    def noop():
        return None

    noop()
    SourceValidationOperator(task_id="validate_source", data=DATA + "/customers.csv")
    PiiGateOperator(task_id="classify_pii", data=DATA + "/customers.csv")
    ModelScanGateOperator(task_id="scan_model", model=DATA + "/model")
'''


def write_inputs(data: Path) -> None:
    """A small customer table (with PII) and a pickle-free model directory."""
    data.mkdir(parents=True, exist_ok=True)
    rows = ["customer_id,email,age,label"] + [f"{i},customer{i}@example.com,{20 + i % 50},{i % 2}"
                                              for i in range(1, 201)]
    (data / "customers.csv").write_text("\n".join(rows) + "\n")
    model = data / "model"
    model.mkdir(exist_ok=True)
    (model / "model.json").write_text(json.dumps({"coef": [[0.1, 0.2]], "intercept": [0.0]}))


def start_cluster(root: Path, executor: str, *, runs: int, parallelism: int) -> AirflowCluster:
    """A deployment on loopback with ``executor`` (``LocalExecutor`` or ``CeleryExecutor``), PostgreSQL."""
    suffix = secrets.token_hex(4)
    database = create_database(f"aisec_load_{suffix}")
    sa_url = database.sa_url
    port = free_port()
    data = root / "data"
    write_inputs(data)
    policy = root / "policy.yaml"
    policy.write_text(POLICY.format(data=data))
    dags = root / "dags"
    dags.mkdir()
    (dags / "aisec_load.py").write_text(textwrap.dedent(DAG.format(data=str(data), runs=runs,
                                                                     parallelism=parallelism)))
    users = {"admin": "admin-" + suffix}
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps(users))
    home = root / "home"
    home.mkdir()
    evidence = root / "trail"
    queue = f"aisec-load-{suffix}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": str(runs),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sa_url,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__AISEC__DEFAULT_POLICY": str(policy),
        "AIRFLOW__AISEC__EVIDENCE_LOCATION": str(evidence),
    })
    if executor == "CeleryExecutor":
        env.update({
            "AIRFLOW__CELERY__BROKER_URL": f"{REDIS_BASE}/12",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + sa_url,
            "AIRFLOW__CELERY__DEFAULT_QUEUE": queue,
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        })
    cluster = AirflowCluster(root=root, env=env, api=f"http://127.0.0.1:{port}", queue=queue,
                             evidence=str(evidence), db_dsn=database.dsn, passwords=users)
    cluster.migrate()
    cluster.start_core()
    if executor == "CeleryExecutor":
        cluster.start_celery_worker(f"aisec-load-{suffix}@%h")
    return cluster


def stop_cluster(cluster: AirflowCluster) -> None:
    cluster.stop()
    if cluster.env.get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor":
        clear_queue(12, cluster.queue)
    drop_database(cluster.db_dsn.rsplit("/", 1)[1])


def run_load(cluster: AirflowCluster, runs: int, *, deadline: float = 1500) -> dict:
    """Trigger ``runs`` runs at once, wait for all, check everything; returns timings per task kind."""
    cluster.wait_for_api(timeout=180)
    cluster.wait("DAG parsing", lambda: cluster.request("GET", "/api/v2/dags/aisec_load")[0] == 200, timeout=180)
    started = time.monotonic()
    run_ids = [cluster.trigger("aisec_load") for _ in range(runs)]

    def finished():
        status, body = cluster.request("GET", "/api/v2/dags/aisec_load/dagRuns?limit=1000")
        assert status == 200, body
        states = {r["dag_run_id"]: r["state"] for r in body["dag_runs"] if r["dag_run_id"] in set(run_ids)}
        return states if len(states) == runs and all(s in ("success", "failed") for s in states.values()) else None

    states = cluster.wait(f"{runs} runs to finish", finished, timeout=deadline, interval=3)
    wall = time.monotonic() - started
    assert set(states.values()) == {"success"}, states

    durations: dict[str, list[float]] = {}
    results: dict[tuple[str, str], dict] = {}
    for run_id in run_ids:
        tis = cluster.task_states("aisec_load", run_id)
        assert {t: ti["state"] for t, ti in tis.items()} == dict.fromkeys([*GATE_TASKS, "noop"], "success"), tis
        for task_id, ti in tis.items():
            durations.setdefault(task_id, []).append(float(ti["duration"] or 0.0))
        for task_id in GATE_TASKS:
            result = cluster.xcom("aisec_load", run_id, task_id)
            assert result["verdict"] == "pass", (task_id, result)
            results[(run_id, task_id)] = result

    # The central trail: one record per gate task run, each matching its XCom; the chain verifies.
    verify = subprocess.run([str(VENV_BIN / "aisec"), "audit", "verify", cluster.evidence], check=False,
                            capture_output=True, text=True, timeout=300, env={**os.environ})
    assert verify.returncode == 0, verify.stdout + verify.stderr
    show = subprocess.run([str(VENV_BIN / "aisec"), "audit", "show", cluster.evidence, "--json"],
                          check=False, capture_output=True, text=True, timeout=300, env={**os.environ})
    assert show.returncode == 0, show.stdout + show.stderr
    records = _records(show.stdout)
    assert len(records) == runs * len(GATE_TASKS), (len(records), runs * len(GATE_TASKS))
    assert {r["kind"] for r in records} == {"gate_result"}
    by_task = {(r["payload"]["airflow"]["run_id"], r["payload"]["airflow"]["task_id"]): r["payload"]
               for r in records}
    assert set(by_task) == set(results), set(results) ^ set(by_task)
    for key, result in results.items():
        recorded = by_task[key]
        assert (recorded["gate"], recorded["verdict"], recorded["started_at"]) == \
            (result["gate"], result["verdict"], result["started_at"]), key
    return {"wall_s": wall, "durations": durations, "records": len(records), "runs": runs}


def _records(text: str) -> list[dict]:
    """``aisec audit show --json`` output: a JSON list, or one JSON object per line."""
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("executor", ["LocalExecutor", "CeleryExecutor"])
def test_concurrent_runs(executor, tmp_path, postgres_dsn, redis_url):
    cluster = start_cluster(tmp_path, executor, runs=RUNS, parallelism=PARALLELISM)
    try:
        stats = run_load(cluster, RUNS)
    except BaseException:
        print(cluster.dump_logs(), flush=True)
        raise
    finally:
        stop_cluster(cluster)
    mean = {t: sum(d) / len(d) for t, d in stats["durations"].items()}
    print(f"\n{executor}: {RUNS} runs in {stats['wall_s']:.1f}s, {stats['records']} records; "
          + ", ".join(f"{t} {m:.2f}s" for t, m in sorted(mean.items())))
