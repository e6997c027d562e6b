"""Storage posture gate core: buckets on the real moto server (``s3_server``), compliant and not."""

from __future__ import annotations

import json

import pytest

from airflow_aisec.core.gate import run_check
from airflow_aisec.core.gates.storage import (
    check_storage,
    denies_insecure_transport,
    key_allowed,
    public_statements,
)
from airflow_aisec.core.gates.storage._policy_doc import parse_policy_document
from airflow_aisec.core.io.storage import make_s3_client
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.exceptions import AccessDeniedError, InputDataError, PolicyError, ServiceUnavailableError
from tests.helpers.buckets import (
    KMS_KEY,
    STORAGE_POLICY,
    compliant_bucket,
    non_compliant_bucket,
    tls_only_policy,
)
from tests.helpers.net import free_port


def section(**overrides):
    sec = parse_policy(STORAGE_POLICY.encode()).section("storage")
    return sec.model_copy(update=overrides) if overrides else sec


def rules(outcome) -> set[str]:
    return {f.rule for f in outcome.findings}


# ------------------------------------------------------------------------------------------
# Units: the bucket policy document, KMS keys, the schema
# ------------------------------------------------------------------------------------------
def _doc(**stmt):
    base = {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    base.update(stmt)
    return {"Statement": [{k: v for k, v in base.items() if v is not None}]}


@pytest.mark.parametrize(("doc", "expected"), [
    (json.loads(tls_only_policy("b")), True),
    (_doc(Principal={"AWS": "*"}), True),
    (_doc(Resource="arn:aws:s3:::b*"), True),
    (_doc(Condition={"BoolIfExists": {"AWS:SecureTransport": [False]}}), True),
    (_doc(Resource="arn:aws:s3:::b/*"), False),                      # the bucket itself not covered
    (_doc(Action="s3:GetObject"), False),                            # only one action
    (_doc(Principal={"AWS": "arn:aws:iam::1:root"}), False),         # not everyone
    (_doc(Effect="Allow"), False),
    (_doc(Condition={"Bool": {"aws:SecureTransport": "true"}}), False),
    (_doc(Condition={"Bool": {"aws:SecureTransport": "false"}, "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}), False),
    (_doc(Condition=None), False),
    (_doc(Resource=["arn:aws:s3:::other", "arn:aws:s3:::other/*"]), False),
    (None, False),
])
def test_tls_only_statement_is_judged_from_the_document(doc, expected):
    assert denies_insecure_transport(doc, "b") is expected


def test_public_statements_and_bad_documents():
    doc = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "s3:GetObject"},
                         {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                          "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
                         {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "s3:*"}]}
    assert public_statements(doc) == [0]
    for bad in ("{", "[]", '{"Version": "1"}'):
        with pytest.raises(InputDataError):
            parse_policy_document(bad)


def test_kms_key_allow_list():
    key_id = KMS_KEY.rsplit("/", 1)[-1]
    assert key_allowed(KMS_KEY, [KMS_KEY]) and key_allowed(KMS_KEY, [key_id]) and key_allowed(key_id, [KMS_KEY])
    assert key_allowed(KMS_KEY, ["arn:aws:kms:us-east-1:123456789012:key/1111aaaa-*"])
    assert not key_allowed(KMS_KEY.replace("123456789012", "999999999999"), [KMS_KEY])
    assert not key_allowed(None, [KMS_KEY]) and key_allowed(None, [])
    assert not key_allowed("alias/aws/s3", [key_id])


@pytest.mark.parametrize("body", [
    "storage: {encryption: AES256, allowed_kms_keys: [k]}",
    "storage: {allowed_kms_keys: ['*']}",
    "storage: {max_objects: 0}",
    "storage: {encryption: none}",
    "storage: {require_versioning: 'yes'}",
    "storage: {unknown: true}",
])
def test_invalid_storage_policies_are_refused(body):
    with pytest.raises(PolicyError):
        parse_policy(f"name: t\n{body}\n".encode())


# ------------------------------------------------------------------------------------------
# Real moto buckets
# ------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_compliant_bucket_passes(s3_server):
    client = s3_server.client()
    bucket = compliant_bucket(client)
    out = check_storage(section(), f"s3://{bucket}/training", s3_client=client)
    assert out.findings == [], [f.message for f in out.findings]
    assert out.metrics["objects_checked"] == 3 and out.metrics["objects_more_than_limit"] is False


@pytest.mark.integration
def test_non_compliant_bucket_breaks_every_rule(s3_server):
    client = s3_server.client()
    bucket = non_compliant_bucket(client)
    out = check_storage(section(), f"s3://{bucket}/training/", s3_client=client)
    assert rules(out) == {"storage.encryption_missing", "storage.public_access_block", "storage.tls_policy_missing",
                          "storage.public_policy", "storage.versioning_disabled", "storage.public_acl",
                          "storage.object_unencrypted", "storage.object_kms_key_not_allowed"}
    by_rule = {f.rule: f for f in out.findings}
    assert by_rule["storage.public_access_block"].location["settings_off"] == ["RestrictPublicBuckets"]
    assert by_rule["storage.object_unencrypted"].location["keys"] == ["training/plain.csv"]
    assert by_rule["storage.object_kms_key_not_allowed"].location["keys"] == ["training/other-key.csv"]
    assert "PLANTED-ROW" not in out.model_dump_json()


@pytest.mark.integration
def test_weaker_encryption_and_foreign_default_key(s3_server):
    client = s3_server.client()
    bucket = compliant_bucket(client, objects=0)
    client.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    assert rules(check_storage(section(), f"s3://{bucket}", s3_client=client)) == {"storage.encryption_too_weak"}
    assert check_storage(section(encryption="AES256", allowed_kms_keys=[]), f"s3://{bucket}",
                         s3_client=client).findings == []
    client.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "other-key"}}]})
    assert rules(check_storage(section(), f"s3://{bucket}", s3_client=client)) == {"storage.kms_key_not_allowed"}


@pytest.mark.integration
def test_object_checks_are_bounded(s3_server):
    client = s3_server.client()
    bucket = compliant_bucket(client, objects=5)
    out = check_storage(section(max_objects=2), f"s3://{bucket}/training/", s3_client=client)
    assert rules(out) == {"storage.object_limit_reached"}
    assert out.metrics["objects_checked"] == 2 and out.metrics["objects_more_than_limit"] is True
    assert check_storage(section(max_objects=5), f"s3://{bucket}/training/", s3_client=client).findings == []


@pytest.mark.integration
def test_missing_bucket_bad_uri_and_denied_calls(s3_server):
    client = s3_server.client()
    with pytest.raises(InputDataError, match="not found"):
        check_storage(section(), "s3://no-such-bucket-aisec", s3_client=client)
    with pytest.raises(InputDataError):
        check_storage(section(), "/local/path", s3_client=client)
    bucket = compliant_bucket(client, objects=1)
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}/*"]}]}))
    with pytest.raises(AccessDeniedError):  # HeadObject refused: the posture cannot be judged
        check_storage(section(), f"s3://{bucket}/training/", s3_client=client)


def test_unreachable_s3_is_retryable():
    from botocore.config import Config

    client = make_s3_client(endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1",
                            aws_access_key_id="x", aws_secret_access_key="y",
                            config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    with pytest.raises(ServiceUnavailableError):
        check_storage(section(), "s3://any-bucket", s3_client=client)
    loaded = parse_policy(STORAGE_POLICY.encode())
    run = run_check("storage", loaded, lambda: check_storage(loaded.section("storage"), "s3://b", s3_client=client))
    assert run.result.verdict == "error" and run.retryable
