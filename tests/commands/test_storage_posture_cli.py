"""``aisec storage check`` against buckets on the real moto server."""

from __future__ import annotations

import json

import pytest

from tests.helpers.buckets import STORAGE_POLICY, compliant_bucket, non_compliant_bucket
from tests.helpers.net import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    path = tmp_path_factory.mktemp("storage-cli") / "storage.yaml"
    path.write_text(STORAGE_POLICY)
    return path


def test_compliant_bucket_exits_0(aisec_cli, s3_server, policy):
    bucket = compliant_bucket(s3_server.client())
    out = aisec_cli("storage", "check", f"s3://{bucket}/training", "--policy", str(policy),
                    "--endpoint-url", s3_server.endpoint)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verdict: PASS" in out.stdout


def test_non_compliant_bucket_exits_1(aisec_cli, s3_server, policy):
    bucket = non_compliant_bucket(s3_server.client())
    out = aisec_cli("storage", "check", f"s3://{bucket}/training", "--policy", str(policy),
                    "--endpoint-url", s3_server.endpoint, "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    rules = {f["rule"] for f in json.loads(out.stdout)["findings"]}
    assert {"storage.tls_policy_missing", "storage.public_acl", "storage.object_unencrypted"} <= rules
    assert "PLANTED-ROW" not in out.stdout + out.stderr


def test_bad_uri_exits_2_and_unreachable_exits_3(aisec_cli, s3_server, policy):
    out = aisec_cli("storage", "check", "/not/s3", "--policy", str(policy))
    assert out.returncode == 2 and "s3://" in out.stderr and "Traceback" not in out.stderr
    out = aisec_cli("storage", "check", "s3://no-such-bucket-cli", "--policy", str(policy),
                    "--endpoint-url", s3_server.endpoint)
    assert out.returncode == 2, out.stdout + out.stderr
    out = aisec_cli("storage", "check", "s3://any", "--policy", str(policy),
                    "--endpoint-url", f"http://127.0.0.1:{free_port()}")
    assert out.returncode == 3, out.stdout + out.stderr
