"""Source gate against a real S3 API (moto server on loopback): pins, metadata, missing / denied / unreachable."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import shutil
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from airflow_aisec.core.gate import run_check
from airflow_aisec.core.gates.source import check_sources, pin_sources, policy_dir
from airflow_aisec.core.io.tabular import local_copy
from airflow_aisec.core.policy import load_policy
from airflow_aisec.exceptions import ConfigurationError, InputDataError, ServiceUnavailableError

pytestmark = pytest.mark.integration


def parquet_bytes(n=200, offset=0) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": list(range(offset, offset + n)), "label": ["a", "b"] * (n // 2)}), buf)
    return buf.getvalue()


def write_policy(directory, section: dict):
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "name": "s3-test", "source": section}, sort_keys=False))
    return load_policy(path)


@pytest.fixture
def s3(s3_server, request):
    """A fresh versioned bucket and an unversioned one, named after the test."""
    client = s3_server.client()
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:6]
    versioned, plain = f"v-{base}", f"p-{base}"
    for bucket in (versioned, plain):
        client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
    return client, versioned, plain


def run(loaded, data, client, **kw):
    return run_check("source", loaded, lambda: check_sources(loaded.section("source"), data, s3_client=client,
                                                             base_dir=policy_dir(loaded.source), **kw))


def test_version_pin_passes_then_catches_an_overwrite(tmp_path, s3):
    client, bucket, _ = s3
    client.put_object(Bucket=bucket, Key="train/data.parquet", Body=parquet_bytes())
    uri = f"s3://{bucket}/train/data.parquet"
    manifest = pin_sources([uri], s3_client=client)
    assert manifest["s3_versions"][uri]["version_id"] and manifest["sha256"][uri]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    loaded = write_policy(tmp_path, {"origins": [f"s3://{bucket}/train/*"],
                                     "pinning": {"required": True, "manifest": "manifest.json"}})
    result = run(loaded, [uri], client).result
    assert result.verdict == "pass", result.error
    assert result.metrics["datasets"][0]["s3_version_id"] == manifest["s3_versions"][uri]["version_id"]

    client.put_object(Bucket=bucket, Key="train/data.parquet", Body=parquet_bytes(offset=7))  # poisoned
    result = run(loaded, [uri], client).result
    assert result.verdict == "fail"
    assert {f.rule for f in result.findings} == {"source.version_mismatch", "source.etag_mismatch",
                                                 "source.digest_mismatch"}


def test_download_reads_the_version_head_described(s3):
    client, bucket, _ = s3
    first = client.put_object(Bucket=bucket, Key="k.parquet", Body=parquet_bytes())
    with local_copy(f"s3://{bucket}/k.parquet", s3_client=client) as copy:
        assert copy.s3_version_id == first["VersionId"]
        assert copy.path.read_bytes() == parquet_bytes()
        assert copy.last_modified is not None and copy.size == len(parquet_bytes())


def test_etag_pin_on_an_unversioned_bucket(tmp_path, s3):
    client, _, bucket = s3
    put = client.put_object(Bucket=bucket, Key="d.parquet", Body=parquet_bytes())
    uri = f"s3://{bucket}/d.parquet"
    loaded = write_policy(tmp_path, {"origins": [f"s3://{bucket}/*"],
                                     "pinning": {"s3_versions": {uri: {"etag": put["ETag"]}}}})
    assert run(loaded, [uri], client).result.verdict == "pass"
    client.put_object(Bucket=bucket, Key="d.parquet", Body=parquet_bytes(offset=1))
    [finding] = run(loaded, [uri], client).result.findings
    assert finding.rule == "source.etag_mismatch"

    pinned_version = write_policy(tmp_path, {"origins": [f"s3://{bucket}/*"],
                                             "pinning": {"s3_versions": {uri: {"version_id": "abc"}}}})
    [finding] = run(pinned_version, [uri], client).result.findings
    assert finding.rule == "source.version_mismatch" and "not versioned" in finding.message


def test_freshness_from_last_modified(tmp_path, s3):
    client, bucket, _ = s3
    client.put_object(Bucket=bucket, Key="d.parquet", Body=parquet_bytes())
    uri = f"s3://{bucket}/d.parquet"
    loaded = write_policy(tmp_path, {"origins": [f"s3://{bucket}/*"], "freshness": {"max_age": "1d"}})
    assert run(loaded, [uri], client).result.verdict == "pass"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    [finding] = run(loaded, [uri], client, now=later).result.findings
    assert finding.rule == "source.stale" and "modification time" in finding.message


def test_reference_and_data_on_s3(tmp_path, s3):
    client, bucket, _ = s3
    client.put_object(Bucket=bucket, Key="ref.parquet", Body=parquet_bytes(1000))
    client.put_object(Bucket=bucket, Key="new.parquet", Body=parquet_bytes(3000))
    loaded = write_policy(tmp_path, {
        "origins": [f"s3://{bucket}/*"],
        "poisoning": {"reference": f"s3://{bucket}/ref.parquet", "volume": {"max_change": 0.5},
                      "label_shift": {"column": "label"}},
    })
    result = run(loaded, [f"s3://{bucket}/new.parquet"], client).result
    assert [f.rule for f in result.findings] == ["source.volume_change"]
    assert result.metrics["reference"]["rows"] == 1000
    assert result.metrics["datasets"][0]["label_shift"]["psi"] == 0.0


def test_suite_is_read_from_s3(tmp_path, s3):
    # The suite is parsed before Great Expectations is imported: a broken suite on S3 proves the read.
    client, bucket, _ = s3
    client.put_object(Bucket=bucket, Key="d.parquet", Body=parquet_bytes())
    client.put_object(Bucket=bucket, Key="suite.json", Body=b'{"expectations": "not a list"}')
    loaded = write_policy(tmp_path, {"origins": [f"s3://{bucket}/*"],
                                     "expectations": {"suite": f"s3://{bucket}/suite.json"}})
    result = run(loaded, [f"s3://{bucket}/d.parquet"], client)
    assert isinstance(result.exception, ConfigurationError)
    assert result.result.error.message == f"s3://{bucket}/suite.json: GX suite has no 'expectations' list"


@pytest.mark.parametrize("key", ["missing.parquet", "nobucket"])
def test_missing_object_or_bucket(tmp_path, s3, key):
    client, bucket, _ = s3
    uri = f"s3://{bucket}/missing.parquet" if key == "missing.parquet" else "s3://no-such-bucket-x/d.parquet"
    loaded = write_policy(tmp_path, {"origins": ["s3://*/*"]})
    result = run(loaded, [uri], client)
    assert result.result.verdict == "error" and isinstance(result.exception, InputDataError)
    assert result.result.error.message == f"S3 object or bucket not found: {uri}"


def test_unreachable_endpoint_is_retryable(tmp_path):
    import boto3
    from botocore.config import Config

    from tests.helpers.net import free_port

    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{free_port()}", aws_access_key_id="x",
                          aws_secret_access_key="y", region_name="us-east-1",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    loaded = write_policy(tmp_path, {"origins": ["s3://*/*"]})
    result = run(loaded, ["s3://b/d.parquet"], client)
    assert isinstance(result.exception, ServiceUnavailableError) and result.retryable
    assert result.result.error.retryable is True


def test_missing_manifest_on_s3_is_a_configuration_error(tmp_path, s3):
    client, bucket, _ = s3
    client.put_object(Bucket=bucket, Key="d.parquet", Body=parquet_bytes())
    loaded = write_policy(tmp_path, {"origins": [f"s3://{bucket}/*"],
                                     "pinning": {"manifest": f"s3://{bucket}/nope.json"}})
    result = run(loaded, [f"s3://{bucket}/d.parquet"], client)
    assert isinstance(result.exception, ConfigurationError) and "pinning manifest" in result.result.error.message


@pytest.fixture(scope="module")
def auth_s3(tmp_path_factory):
    """A second moto server that enforces IAM, with a bucket the 'reader' user may not read."""
    import boto3

    from tests.helpers.net import free_port, wait_for_http

    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    port = free_port()
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{endpoint}/moto-api/", timeout=30)
        kw = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        admin = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        s3 = boto3.client("s3", **kw, **admin)
        s3.create_bucket(Bucket="locked")
        s3.put_object(Bucket="locked", Key="d.parquet", Body=parquet_bytes())
        iam = boto3.client("iam", **kw, **admin)
        iam.create_user(UserName="reader")
        iam.put_user_policy(UserName="reader", PolicyName="list-only", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}],
        }))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        # From now on every request is authenticated and authorised against IAM.
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                                      headers={"Content-Type": "text/plain"}), timeout=10)
        reader = boto3.client("s3", **kw, aws_access_key_id=key["AccessKeyId"],
                              aws_secret_access_key=key["SecretAccessKey"])
        yield reader
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_denied_object_is_a_clear_input_error(tmp_path, auth_s3):
    loaded = write_policy(tmp_path, {"origins": ["s3://locked/*"]})
    result = run(loaded, ["s3://locked/d.parquet"], auth_s3)
    assert result.result.verdict == "error"
    assert isinstance(result.exception, InputDataError), result.exception
    assert result.result.error.message.startswith("access denied to s3://locked/d.parquet")
