"""Error taxonomy across gates: a refused access (S3 403, Vault 403) is an access/configuration error,
an outage is retryable, in every gate alike.

A denied object, bucket or Vault path is verdict ``error``, CLI exit 2, never retried and never a
critical finding (nobody attacked anything: someone has to fix a grant). An unreachable S3 or Vault
is verdict ``error`` too, but retryable (exit 3). Real moto S3 and OpenBao servers from
tests/conftest.py; the outage cases use a closed loopback port.
"""

from __future__ import annotations

import json
import socket
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_aisec.cli.args import EXIT_INVALID, EXIT_UNREACHABLE, exit_code_for
from airflow_aisec.core.gate import GateRun, run_check
from airflow_aisec.core.io.vault import VaultClient
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.exceptions import AccessDeniedError, ConfigurationError, SecurityViolationError
from tests.helpers.vault import enable_engine, limited_token, seed_kv

POLICY = parse_policy(b"""
version: 1
name: access-errors
source: {origins: ["s3://*/*"]}
pii:
  redaction: {method: hash, key: {vault_path: aisec/access-test-hmac}}
signing: {}
secrets:
  grants:
    - {dag_id: access_dag, paths: ["access/db"]}
""", source="access-errors.yaml")
HMAC_KEY = "h" * 32


def table(path) -> str:
    pq.write_table(pa.table({"id": [1, 2, 3], "note": ["a", "b", "c"]}), path)
    return str(path)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_access_error(run: GateRun) -> None:
    """Verdict error, exit 2, not retryable, no finding (so nothing critical, nothing to waive)."""
    assert run.result.verdict == "error", run.result.summary()
    assert isinstance(run.exception, ConfigurationError)
    assert not isinstance(run.exception, SecurityViolationError)
    assert run.exception.exit_code == EXIT_INVALID and exit_code_for(run) == EXIT_INVALID
    assert run.result.error.retryable is False and run.retryable is False
    assert run.result.findings == []


def assert_outage(run: GateRun) -> None:
    assert run.result.verdict == "error", run.result.summary()
    assert run.result.error.type == "ServiceUnavailableError"
    assert run.result.error.retryable is True and run.retryable is True
    assert exit_code_for(run) == EXIT_UNREACHABLE


def test_access_denied_is_a_configuration_error_not_a_violation():
    exc = AccessDeniedError("Vault denied access to secret/x", rule="secrets.vault_access_denied",
                            location={"vault": "secret/x"})
    assert isinstance(exc, ConfigurationError) and not isinstance(exc, SecurityViolationError)
    assert exc.exit_code == 2 and exc.rule == "secrets.vault_access_denied" and exc.location == {"vault": "secret/x"}

    def denied():
        raise exc

    assert_access_error(run_check("secrets", POLICY, denied))


# ------------------------------------------------------------------------------------------------
# S3: a bucket policy that denies every read (moto evaluates bucket policies)
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def locked_bucket(s3_server, tmp_path):
    client = s3_server.client()
    bucket = f"locked-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    client.upload_file(table(tmp_path / "data.parquet"), bucket, "data.parquet")
    client.put_object(Bucket=bucket, Key="model/weights.bin", Body=b"\x00" * 64)
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*",
                       "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket",
                                  "s3:ListBucketVersions"],
                       "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}],
    }))
    return client, bucket


def _s3_checks(client, bucket, tmp_path):
    from airflow_aisec.core.gates.pii import check_pii
    from airflow_aisec.core.gates.signing import sign_model
    from airflow_aisec.core.gates.source import check_sources

    return {
        "source": lambda: check_sources(POLICY.section("source"), f"s3://{bucket}/data.parquet", s3_client=client),
        "pii": lambda: check_pii(POLICY.section("pii"), f"s3://{bucket}/data.parquet", s3_client=client),
        "signing": lambda: sign_model(POLICY.section("signing"), f"s3://{bucket}/model/",
                                      signature=str(tmp_path / "model.sig"), private_key=str(tmp_path / "k.pem"),
                                      s3_client=client),
    }


@pytest.mark.integration
@pytest.mark.parametrize("gate", ["source", "pii", "signing"])
def test_s3_403_is_an_access_error(locked_bucket, tmp_path, gate):
    client, bucket = locked_bucket
    _pem(tmp_path / "k.pem")
    run = run_check(gate, POLICY, _s3_checks(client, bucket, tmp_path)[gate])
    assert_access_error(run)
    assert "denied" in run.result.error.message and not (tmp_path / "model.sig").exists()


@pytest.mark.parametrize("gate", ["source", "pii", "signing"])
def test_unreachable_s3_is_retryable(tmp_path, gate):
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{closed_port()}", aws_access_key_id="x",
                          aws_secret_access_key="y", region_name="us-east-1",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    _pem(tmp_path / "k.pem")
    assert_outage(run_check(gate, POLICY, _s3_checks(client, "any-bucket", tmp_path)[gate]))


def _pem(path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


# ------------------------------------------------------------------------------------------------
# Vault: a token whose ACL policy grants nothing the gate needs
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vault_setup(bao_server):
    root = bao_server.client()
    enable_engine(root, "transit", "transit")
    transit_key = f"access-{uuid.uuid4().hex[:8]}"
    root.secrets.transit.create_key(name=transit_key, key_type="ecdsa-p256")
    seed_kv(root, {"aisec/access-test-hmac": {"key": HMAC_KEY}, "access/db": {"password": "pw-" + "x" * 20}})
    weak = limited_token(root, "access-errors-nothing", 'path "sys/nothing" { capabilities = ["read"] }', "10m")
    return bao_server.addr, weak, transit_key


def _vault_checks(vault: VaultClient, transit_key: str, tmp_path):
    from airflow_aisec.core.gates.pii import redact_table
    from airflow_aisec.core.gates.secrets import check_secrets
    from airflow_aisec.core.gates.signing import sign_model

    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "weights.bin").write_bytes(b"\x01" * 64)
    src = table(tmp_path / "people.parquet")
    return {
        "pii": lambda: redact_table(POLICY.section("pii"), src, str(tmp_path / "out.parquet"), vault=vault),
        "signing": lambda: sign_model(POLICY.section("signing"), str(model), signature=str(tmp_path / "m.sig"),
                                      transit_key=transit_key, vault=vault),
        "secrets": lambda: check_secrets(POLICY.section("secrets"), ["access/db"], dag_id="access_dag",
                                         task_id="t", vault=vault),
    }


@pytest.mark.integration
@pytest.mark.parametrize("gate", ["pii", "signing", "secrets"])
def test_vault_403_is_an_access_error(vault_setup, tmp_path, gate):
    import hvac

    addr, weak, transit_key = vault_setup
    vault = VaultClient(hvac.Client(url=addr, token=weak))
    run = run_check(gate, POLICY, _vault_checks(vault, transit_key, tmp_path)[gate])
    assert_access_error(run)
    assert isinstance(run.exception, AccessDeniedError) and "denied" in run.result.error.message
    assert not (tmp_path / "out.parquet").exists() and not (tmp_path / "m.sig").exists()


@pytest.mark.parametrize("gate", ["pii", "signing", "secrets"])
def test_unreachable_vault_is_retryable(tmp_path, gate):
    import hvac

    vault = VaultClient(hvac.Client(url=f"http://127.0.0.1:{closed_port()}", token="t", timeout=2))
    assert_outage(run_check(gate, POLICY, _vault_checks(vault, "any-key", tmp_path)[gate]))


@pytest.mark.integration
def test_policy_refusal_stays_a_critical_violation(vault_setup):
    """Not an access error: the policy itself refuses an ungranted path (critical, never waived)."""
    import hvac

    from airflow_aisec.core.gates.secrets import check_secrets

    addr, weak, _ = vault_setup
    vault = VaultClient(hvac.Client(url=addr, token=weak))
    run = run_check("secrets", POLICY, lambda: check_secrets(POLICY.section("secrets"), ["other/db"],
                                                             dag_id="access_dag", task_id="t", vault=vault))
    assert run.result.verdict == "fail" and exit_code_for(run) == 1
    [finding] = run.result.findings
    assert finding.rule == "secrets.path_not_allowed" and finding.severity == "critical"
