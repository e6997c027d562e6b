"""The test session's process environment: a throw-away Airflow home, and scoped environment changes."""

from __future__ import annotations

import base64
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

_session_dir: Path | None = None


def prepare_session_environment() -> Path:
    """Point Airflow (and anything that reads ``VAULT_*``/``AWS_PROFILE``) at a throw-away session directory.

    Airflow reads its configuration at import, so ``tests/conftest.py`` calls this before anything imports
    it. Idempotent: the second call returns the same directory.
    """
    global _session_dir  # one directory per pytest process
    if _session_dir is not None:
        return _session_dir
    _session_dir = Path(tempfile.mkdtemp(prefix="aisec-tests-"))
    os.environ["AIRFLOW_HOME"] = str(_session_dir / "airflow")
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_session_dir / "dags")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    os.environ["AIRFLOW__AISEC__EVIDENCE_LOCATION"] = str(_session_dir / "evidence")
    # The key that seals the secrets hand-off in XCom (workers hold it; here: the whole session).
    os.environ["AIRFLOW__AISEC__HANDOFF_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
    (_session_dir / "dags").mkdir(parents=True, exist_ok=True)
    # Lock Airflow's connection lookups away from anything real.
    for var in ("VAULT_ADDR", "VAULT_TOKEN", "AWS_PROFILE"):
        os.environ.pop(var, None)
    return _session_dir


def session_dir() -> Path:
    """The directory made by :func:`prepare_session_environment` (removed when the session ends)."""
    if _session_dir is None:
        raise RuntimeError("prepare_session_environment() has not run (tests/conftest.py calls it)")
    return _session_dir


def reload_settings() -> None:
    """Take a new snapshot of ``[aisec]`` settings from the current environment (test-only path).

    ``airflow_aisec.settings`` keeps the values the process started with (a DAG file cannot change
    them); the test process changes its environment on purpose, and says so by calling this.
    """
    from airflow_aisec import settings

    settings.reload()


def settings_aware(monkeypatch: Any) -> Any:
    """Make ``monkeypatch.setenv``/``delenv`` of Airflow settings take a new settings snapshot."""
    setenv, delenv = monkeypatch.setenv, monkeypatch.delenv

    def _setenv(name: str, value: str, prepend: str | None = None) -> None:
        setenv(name, value, prepend)
        if name.startswith("AIRFLOW"):
            reload_settings()

    def _delenv(name: str, raising: bool = True) -> None:
        delenv(name, raising=raising)
        if name.startswith("AIRFLOW"):
            reload_settings()

    monkeypatch.setenv, monkeypatch.delenv = _setenv, _delenv
    return monkeypatch


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then restore them (``monkeypatch`` for wider scopes);
    ``[aisec]`` settings follow (:func:`reload_settings`)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    reload_settings()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reload_settings()
