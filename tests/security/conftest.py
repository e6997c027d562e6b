"""Fixtures of the security suite: one real Airflow (api-server, scheduler, dag-processor) for every module."""

from __future__ import annotations

import pytest

from tests.security.live import start_security_airflow


@pytest.fixture(scope="session")
def security_airflow(tmp_path_factory, bao_server):
    """The suite's live Airflow with users ``admin``, ``viewer`` and ``writer`` (see ``live.py``)."""
    yield from start_security_airflow(tmp_path_factory.mktemp("security"), bao_server)
