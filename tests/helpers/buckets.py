"""S3 buckets in a compliant and a non-compliant storage posture, made on the test moto server."""

from __future__ import annotations

import json
import uuid

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-2222-3333-4444-555566667777"
OTHER_KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/9999ffff-0000-0000-0000-000000000000"
PLANTED_CONTENT = b"customer,ssn\nPLANTED-ROW-7781,123-45-6789\n"


def tls_only_policy(bucket: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })


def compliant_bucket(client, *, objects: int = 3, name: str | None = None) -> str:
    """SSE-KMS by default with :data:`KMS_KEY`, all four public-access-block settings, TLS-only policy,
    versioning, private ACL; ``objects`` objects under ``training/``, each encrypted with that key."""
    bucket = name or f"compliant-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KMS_KEY},
        "BucketKeyEnabled": True}]})
    client.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for i in range(objects):
        client.put_object(Bucket=bucket, Key=f"training/part-{i}.csv", Body=PLANTED_CONTENT)
    client.put_bucket_policy(Bucket=bucket, Policy=tls_only_policy(bucket))
    return bucket


def non_compliant_bucket(client, *, name: str | None = None) -> str:
    """No default encryption, one public-access-block setting off, a public-read ACL, a public policy
    without the TLS statement, versioning never enabled, one unencrypted and one wrong-key object."""
    bucket = name or f"exposed-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="training/plain.csv", Body=PLANTED_CONTENT)
    client.put_object(Bucket=bucket, Key="training/other-key.csv", Body=PLANTED_CONTENT,
                      ServerSideEncryption="aws:kms", SSEKMSKeyId=OTHER_KMS_KEY)
    client.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": False})
    client.put_bucket_acl(Bucket=bucket, ACL="public-read")
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    return bucket


STORAGE_POLICY = f"""
name: t
storage:
  encryption: aws:kms
  allowed_kms_keys: ["{KMS_KEY}"]
  max_objects: 100
"""
