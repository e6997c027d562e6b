"""Shared fixtures: a real migrated Airflow home, a real OpenBao dev server, a real S3 API (moto server),
all on loopback. Nothing here skips when a service is missing: a missing service is a failure.

The fixtures are thin wrappers; the code lives in ``tests/helpers/`` (test modules import helpers from
there, never from this file).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers.airflow import migrate_airflow_db, run_dag_file
from tests.helpers.cli import run_aisec
from tests.helpers.env import prepare_session_environment, reload_settings, settings_aware
from tests.helpers.net import require_listening
from tests.helpers.services import POSTGRES_DSN, REDIS_URL, running_bao, running_moto

# Airflow reads its configuration at import: point it at a throw-away home before anything imports it
# (none of the helpers above imports Airflow at module level).
_SESSION_DIR = prepare_session_environment()
reload_settings()  # the [aisec] snapshot of this process: the session environment, not the exec-time one


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# [aisec] settings: a process keeps the values it started with (airflow_aisec.settings); tests change
# their environment on purpose and take a new snapshot through the test-only settings.reload().
# --------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _aisec_settings_snapshot():
    """Each test starts from a snapshot of the session's environment, and leaves none behind."""
    reload_settings()
    yield
    reload_settings()


@pytest.fixture
def monkeypatch(monkeypatch):
    """pytest's ``monkeypatch``, whose ``setenv``/``delenv`` of ``AIRFLOW*`` variables also reload the
    ``[aisec]`` settings snapshot (and undoing them does too, through the autouse fixture above)."""
    return settings_aware(monkeypatch)


# --------------------------------------------------------------------------------------------
# Airflow
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the session's AIRFLOW_HOME."""
    return migrate_airflow_db()


@pytest.fixture(scope="session")
def run_dag(airflow_db):  # the fixture needs the migrated DB
    """Write a DAG file into the DAGs folder, run it with real ``dag.test()``, return states and XComs.

    Usage: ``outcome = run_dag(source_code, "dag_id")`` (see ``tests.helpers.airflow.run_dag_file``).
    """
    dags_folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])

    def _run(source: str, dag_id: str, *, filename: str | None = None, run_conf: dict | None = None):
        return run_dag_file(source, dag_id, dags_folder=dags_folder, filename=filename, run_conf=run_conf)

    return _run


# --------------------------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def bao_server():
    """A real OpenBao dev server on loopback (KV v2 mounted at ``secret/``)."""
    with running_bao() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API server (moto_server) on loopback; sets the standard AWS environment for it."""
    with running_moto() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    require_listening("127.0.0.1", 5432)
    return POSTGRES_DSN


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_listening("127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def aisec_cli():
    """Run the ``aisec`` console script in a subprocess; returns CompletedProcess (text)."""
    return run_aisec
