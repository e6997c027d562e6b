"""Models and signatures on S3 (real moto server, versioned bucket): versions pinned at signing, checked later."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from airflow_aisec.core.gates.signing import sign_model, verify_model
from airflow_aisec.core.policy.sections.signing import SigningPolicy
from airflow_aisec.exceptions import InputDataError, MalformedSignatureError, ModelTamperedError
from tests.helpers.signing_keys import write_pem_keypair

pytestmark = pytest.mark.integration

FILES = {"weights.safetensors": b"\x02\x00\x00\x00\x00\x00\x00\x00{}" + b"\x01" * 4096,
         "config.json": b'{"layers": 4}', "tok/vocab.txt": b"a\nb\nc\n"}


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    return write_pem_keypair(tmp_path_factory.mktemp("s3keys"))


@pytest.fixture
def bucket(s3_server):
    client = s3_server.client()
    name = f"models-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    for rel, body in FILES.items():
        client.put_object(Bucket=name, Key=f"fraud/v3/{rel}", Body=body)
    return client, name


@pytest.fixture
def policy(keypair):
    return SigningPolicy(trusted_keys=[{"id": "ci", "fingerprint": keypair[2]}])


def test_s3_model_signed_with_pinned_versions_and_verified(bucket, keypair, policy):
    client, name = bucket
    model = f"s3://{name}/fraud/v3"
    out = sign_model(policy, model, private_key=keypair[0], s3_client=client)
    assert out.metrics["signature"] == f"s3://{name}/fraud/v3.sig"
    assert out.metrics["s3_versions_pinned"] == 3 and out.metrics["signature_version_id"]
    bundle = json.loads(client.get_object(Bucket=name, Key="fraud/v3.sig")["Body"].read())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    pins = statement["predicate"]["aisec"]["s3"]["versions"]
    head = client.head_object(Bucket=name, Key="fraud/v3/config.json")
    assert pins["config.json"] == head["VersionId"] and set(pins) == set(FILES)

    result = verify_model(policy, model, public_key=keypair[1], s3_client=client)
    assert result.metrics["verified"] is True and result.metrics["s3_versions_checked"] == 3


def test_overwrite_even_with_identical_bytes_is_detected(bucket, keypair, policy):
    client, name = bucket
    model = f"s3://{name}/fraud/v3/"
    sign_model(policy, model, private_key=keypair[0], s3_client=client)
    client.put_object(Bucket=name, Key="fraud/v3/config.json", Body=FILES["config.json"])  # new version
    with pytest.raises(ModelTamperedError, match=r"overwritten since signing \[config.json\]") as info:
        verify_model(policy, model, public_key=keypair[1], s3_client=client)
    assert info.value.location["reason"] == "s3_version_changed"


@pytest.mark.parametrize("change, text", [
    (lambda c, b: c.put_object(Bucket=b, Key="fraud/v3/extra.pkl", Body=b"x"), r"added \[extra.pkl\]"),
    (lambda c, b: c.delete_object(Bucket=b, Key="fraud/v3/tok/vocab.txt"), r"missing \[tok/vocab.txt\]"),
])
def test_added_or_deleted_objects_are_detected(bucket, keypair, policy, change, text):
    client, name = bucket
    model = f"s3://{name}/fraud/v3/"
    sign_model(policy, model, private_key=keypair[0], s3_client=client)
    change(client, name)
    with pytest.raises(ModelTamperedError, match=text):
        verify_model(policy, model, public_key=keypair[1], s3_client=client)


def test_local_signature_of_s3_model_and_local_copy(bucket, keypair, policy, tmp_path):
    client, name = bucket
    model = f"s3://{name}/fraud/v3/"
    sig = tmp_path / "fraud-v3.sig"
    sign_model(policy, model, private_key=keypair[0], s3_client=client, signature=sig)
    assert verify_model(policy, model, public_key=keypair[1], s3_client=client, signature=sig).metrics[
        "verified"]
    # The same signature verifies a local copy (pins only concern S3).
    local = tmp_path / "v3"
    for rel, body in FILES.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(body)
    assert verify_model(policy, local, public_key=keypair[1], signature=sig).metrics["verified"]


def test_signature_from_a_local_copy_lacks_pins_for_s3(bucket, keypair, policy, tmp_path):
    client, name = bucket
    local = tmp_path / "v3"
    for rel, body in FILES.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(body)
    sig = tmp_path / "v3.sig"
    sign_model(policy, local, private_key=keypair[0], signature=sig)
    with pytest.raises(MalformedSignatureError, match="pins no object versions"):
        verify_model(policy, f"s3://{name}/fraud/v3/", public_key=keypair[1], s3_client=client,
                     signature=sig)


def test_unversioned_bucket_and_missing_signature(s3_server, keypair, policy):
    client = s3_server.client()
    name = f"plain-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="m/a.json", Body=b"{}")
    with pytest.raises(InputDataError, match="not versioned"):
        sign_model(policy, f"s3://{name}/m/", private_key=keypair[0], s3_client=client)
    lax = SigningPolicy.model_validate({**policy.model_dump(), "require_s3_versioning": False})
    sign_model(lax, f"s3://{name}/m/", private_key=keypair[0], s3_client=client)
    assert verify_model(lax, f"s3://{name}/m/", public_key=keypair[1], s3_client=client).metrics["verified"]
    outcome = verify_model(policy, f"s3://{name}/other/", public_key=keypair[1], s3_client=client)
    assert [f.rule for f in outcome.findings] == ["signing.unsigned"]


def test_signature_under_the_model_prefix_is_refused(bucket, keypair, policy):
    client, name = bucket
    model = f"s3://{name}/fraud/v3/"
    from airflow_aisec.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="outside the model directory"):
        sign_model(policy, model, private_key=keypair[0], s3_client=client,
                   signature=f"s3://{name}/fraud/v3/model.sig")
    sign_model(policy, model, private_key=keypair[0], s3_client=client)
    client.copy_object(Bucket=name, Key="fraud/v3/model.sig", CopySource={"Bucket": name, "Key": "fraud/v3.sig"})
    with pytest.raises(MalformedSignatureError, match="inside the model directory"):
        verify_model(policy, model, public_key=keypair[1], s3_client=client,
                     signature=f"s3://{name}/fraud/v3/model.sig")


def test_a_signature_that_cannot_be_read_is_not_an_absent_one(bucket, keypair, policy):
    # Only "no such key" means unsigned: any other S3 answer on the signature (a 400, a redirect to
    # another region) is an error, never "unsigned, tolerated".
    from botocore.exceptions import ClientError

    client, name = bucket
    sign_model(policy, f"s3://{name}/fraud/v3", private_key=keypair[0], s3_client=client)
    tolerant = SigningPolicy.model_validate({**policy.model_dump(), "allow_unsigned": True})

    class SignatureHeadFails:
        def __init__(self, real, status, code):
            self._real, self._status, self._code = real, status, code

        def __getattr__(self, attr):
            return getattr(self._real, attr)

        def head_object(self, **kw):
            if kw["Key"].endswith(".sig"):
                raise ClientError({"Error": {"Code": self._code},
                                   "ResponseMetadata": {"HTTPStatusCode": self._status}}, "HeadObject")
            return self._real.head_object(**kw)

    for status, code in ((400, "400"), (301, "301")):
        with pytest.raises(InputDataError):
            verify_model(tolerant, f"s3://{name}/fraud/v3", public_key=keypair[1],
                         s3_client=SignatureHeadFails(client, status, code))
    missing = verify_model(tolerant, f"s3://{name}/fraud/v3", public_key=keypair[1],
                           s3_client=SignatureHeadFails(client, 404, "404"))
    assert missing.metrics["signed"] is False
