"""Start a real Airflow (api-server + scheduler + dag-processor, LocalExecutor, SQLite) on loopback.

Used by the browser test, and by ``scripts/ui_airflow.sh`` to look at the UI by hand.
Everything lives in one throw-away AIRFLOW_HOME; the admin password is fixed by writing
``simple_auth_manager_passwords.json.generated`` before the API server starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

VENV_BIN = Path(sys.executable).parent
ADMIN_PASSWORD = "aisec-ui-admin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveAirflow:
    home: Path
    base_url: str
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    _token: str | None = None

    # --- REST helpers (stdlib only: what a user's script would do) ---------------------------
    def request(self, method: str, path: str, body: Any = None, *, token: bool | str = True) -> tuple[int, Any]:
        """``token``: True for the admin's, a string for that bearer token, False for none."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token if isinstance(token, str) else self.token()}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def login(self, username: str, password: str) -> str:
        """A bearer token of another user (see ``passwords`` of :func:`live_airflow`)."""
        status, body = self.request("POST", "/auth/token", {"username": username, "password": password},
                                    token=False)
        assert status == 201, (status, body)
        return body["access_token"]

    def token(self) -> str:
        if self._token is None:
            status, body = self.request(
                "POST", "/auth/token", {"username": "admin", "password": ADMIN_PASSWORD}, token=False
            )
            assert status == 201, (status, body)
            self._token = body["access_token"]
        return self._token

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _ = self.request("GET", f"/api/v2/dags/{dag_id}")
            if status == 200:
                return
            self.check_alive()
            time.sleep(1)
        _, errors = self.request("GET", "/api/v2/importErrors")
        raise AssertionError(
            f"DAG {dag_id} was not parsed in {timeout}s; import errors: {errors}\n{self.logs()}"
        )

    def trigger(self, dag_id: str) -> str:
        status, body = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
        assert status == 200, (status, body)
        return body["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 150) -> str:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
            state = body.get("state") if status == 200 else None
            if state in ("success", "failed"):
                return state
            self.check_alive()
            time.sleep(1)
        raise AssertionError(f"run {run_id} still {state} after {timeout}s\n{self.logs()}")

    # --- processes ---------------------------------------------------------------------------
    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise AssertionError(f"airflow {name} exited with {proc.returncode}\n{self.logs()}")

    def logs(self, tail: int = 3000) -> str:
        out = []
        for name in self.processes:
            path = self.home / f"{name}.log"
            if path.exists():
                out.append(f"--- {name} ---\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(out)

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 15)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait(timeout=10)


def airflow_env(home: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    # Start from a clean slate: the test session's own AIRFLOW__* settings must not leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    base = f"http://127.0.0.1:{port}"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(32).hex(),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__AISEC__EVIDENCE_LOCATION": str(home / "evidence"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        }
    )
    env.update(extra or {})
    return env


@contextlib.contextmanager
def live_airflow(
    home: Path,
    dag_files: dict[str, str],
    *,
    extra_env: dict[str, str] | None = None,
    passwords: dict[str, str] | None = None,
    services: tuple[str, ...] = ("scheduler", "dag-processor"),
) -> Iterator[LiveAirflow]:
    """Migrate a fresh SQLite DB, start api-server + ``services`` (scheduler + dag-processor; add
    ``"triggerer"`` for deferred tasks), stop them on exit.

    ``passwords``: more SimpleAuthManager users' passwords (their roles go in ``extra_env``'s
    ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS``).
    """
    home.mkdir(parents=True, exist_ok=True)
    (home / "dags").mkdir(exist_ok=True)
    for name, source in dag_files.items():
        (home / "dags" / name).write_text(source)
    (home / "simple_auth_manager_passwords.json.generated").write_text(
        json.dumps({**(passwords or {}), "admin": ADMIN_PASSWORD})
    )
    port = free_port()
    env = airflow_env(home, port, extra_env)
    airflow = str(VENV_BIN / "airflow")
    migrate = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]

    live = LiveAirflow(home=home, base_url=env["AIRFLOW__API__BASE_URL"], env=env)
    try:
        for name, args in (
            ("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(port)]),
            *((service, [service]) for service in services),
        ):
            log = open(home / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            live.processes[name] = subprocess.Popen(
                [airflow, *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # own process group: stop() ends its workers too
            )
        deadline = time.monotonic() + 90
        while True:
            live.check_alive()
            try:
                with urllib.request.urlopen(f"{live.base_url}/api/v2/monitor/health", timeout=2):
                    break
            except (OSError, urllib.error.HTTPError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"api-server did not come up\n{live.logs()}") from None
                time.sleep(0.5)
        yield live
    finally:
        live.stop()
