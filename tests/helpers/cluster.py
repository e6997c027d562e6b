"""A real Airflow deployment on loopback for the integration tests (``test_celery_run``, ``test_load``).

The test writes the configuration (``env``); :class:`AirflowCluster` runs ``airflow db migrate``, starts
``api-server``, ``scheduler``, ``dag-processor`` and optionally a ``celery worker`` as their own process
groups, talks to the REST API, and stops everything. :func:`create_database` / :func:`drop_database`
give each deployment its own PostgreSQL database, :func:`clear_queue` removes its Celery queue key.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from tests.helpers.env import VENV_BIN

PG_ADMIN_DSN = os.environ.get("AISEC_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("AISEC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]


def psql(dsn: str, *statements: str) -> None:
    """Run SQL statements in autocommit mode (``CREATE DATABASE`` cannot run in a transaction)."""
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


class Database(NamedTuple):
    """A database created for one deployment: its name, its DSN and its SQLAlchemy URL (psycopg2)."""

    name: str
    dsn: str
    sa_url: str


def create_database(name: str) -> Database:
    psql(PG_ADMIN_DSN, f'CREATE DATABASE "{name}"')
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    return Database(name, dsn, dsn.replace("postgresql://", "postgresql+psycopg2://", 1))


def drop_database(name: str) -> None:
    psql(PG_ADMIN_DSN,
         f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
         "AND pid <> pg_backend_pid()",
         f'DROP DATABASE IF EXISTS "{name}"')


def clear_queue(redis_db: int, queue: str) -> None:
    """Delete the Celery queue key ``queue`` in Redis database ``redis_db`` (best effort)."""
    try:
        import redis

        redis.Redis.from_url(f"{REDIS_BASE}/{redis_db}").delete(queue)
    except Exception:  # noqa: BLE001, S110 - best-effort cleanup of our own queue key
        pass


@dataclass
class AirflowCluster:
    """One deployment: its working directory ``root`` (process logs land there), the environment of its
    processes, the api-server's base URL, its Celery queue, the audit trail location and its database."""

    root: Path
    env: dict[str, str]
    api: str
    queue: str
    evidence: str
    db_dsn: str = ""
    #: Simple auth manager users -> passwords (what ``SIMPLE_AUTH_MANAGER_PASSWORDS_FILE`` holds).
    passwords: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    # --- processes -----------------------------------------------------------------------------
    def migrate(self) -> None:
        migrate = subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], check=False, env=self.env,
                                 cwd=self.root, capture_output=True, text=True, timeout=240)
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]

    def start_core(self) -> None:
        """api-server, scheduler and dag-processor."""
        self.start("api-server", ["api-server", "--workers", "1"])
        self.start("scheduler", ["scheduler"])
        self.start("dag-processor", ["dag-processor"])

    def start_celery_worker(self, hostname: str, *, env: dict | None = None, cwd: Path | None = None) -> None:
        """A worker (concurrency 2) consuming only this cluster's queue; ``hostname``: its Celery node name."""
        self.start("celery-worker", ["celery", "worker", "--queues", self.queue, "--concurrency", "2",
                                     "--celery-hostname", hostname, "--skip-serve-logs",
                                     "--without-gossip", "--without-mingle"],
                   env=env, cwd=cwd)

    def start(self, name: str, args: list[str], *, env: dict | None = None, cwd: Path | None = None) -> None:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [str(VENV_BIN / "airflow"), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env or self.env, cwd=str(cwd or self.root), start_new_session=True,
        )

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise AssertionError(f"process(es) exited early: {dead}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)  # the group this test started (start_new_session)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)

    def dump_logs(self, limit: int = 4000) -> str:
        out = []
        for path in sorted(self.root.rglob("*.log")):
            text = path.read_text(errors="replace")
            out.append(f"===== {path.relative_to(self.root)} (last {limit} chars) =====\n{text[-limit:]}")
        return "\n".join(out)

    # --- REST ----------------------------------------------------------------------------------
    def wait_for_api(self, timeout: float) -> None:
        def api_up():
            try:
                with urllib.request.urlopen(self.api + "/api/v2/monitor/health", timeout=3):
                    return True
            except (OSError, urllib.error.HTTPError):
                return False

        self.wait("the api-server", api_up, timeout=timeout)

    def token(self, user: str) -> str:
        if user not in self.tokens:
            status, body = self.request("POST", "/auth/token",
                                        {"username": user, "password": self.passwords[user]}, auth=None)
            assert status == 201, (status, body)
            self.tokens[user] = body["access_token"]
        return self.tokens[user]

    def request(self, method: str, path: str, payload=None, *, auth: str | None = "admin"):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token(auth)}"
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.api + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return exc.code, json.loads(body)
            except ValueError:
                return exc.code, body.decode(errors="replace")

    def get_raw(self, path: str, *, auth: str = "admin") -> tuple[int, str, bytes]:
        """GET without decoding: status, content type, body."""
        req = urllib.request.Request(self.api + path, headers={"Authorization": f"Bearer {self.token(auth)}"})
        try:
            with urllib.request.urlopen(req, timeout=20) as resp:
                return resp.status, resp.headers.get("Content-Type", ""), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read()

    def wait(self, what: str, predicate, timeout: float, interval: float = 1.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, dict]:
        status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        assert status == 200, body
        return {ti["task_id"]: ti for ti in body["task_instances"]}

    def trigger(self, dag_id: str) -> str:
        status, body = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
        assert status == 200, body
        return body["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        assert status == 200, body
        return body["state"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "aisec_result"):
        status, body = self.request(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        assert status == 200, (dag_id, task_id, key, body)
        value = body["value"]
        if isinstance(value, str):  # JSON-encoded, unless it is a plain string return value
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value
