"""Storage posture gate: the S3 bucket (and prefix) that holds training data or models.

Rules (each its own id):

* ``storage.encryption_missing`` / ``storage.encryption_too_weak`` / ``storage.kms_key_not_allowed``:
  the bucket's default encryption is absent, weaker than the policy's ``encryption``, or SSE-KMS with a
  key outside ``allowed_kms_keys``;
* ``storage.public_access_block``: one of the four public-access-block settings is off (or none set);
* ``storage.tls_policy_missing``: the bucket policy does not deny plain http to everyone (judged from
  the document: :mod:`._policy_doc`);
* ``storage.versioning_disabled``;
* ``storage.public_acl`` / ``storage.public_policy``: an ACL grant to AllUsers / AuthenticatedUsers, an
  unconditional ``Allow`` to everyone;
* ``storage.object_unencrypted`` / ``storage.object_kms_key_not_allowed``: objects under the prefix
  (``HeadObject`` each, at most ``max_objects``) not encrypted as required;
  ``storage.object_limit_reached``: more objects than that (never a silent partial pass).

Findings name the bucket, settings and object keys (locations), never object content, and never the
KMS key ids themselves beyond a count. A denied call is verdict ``error`` (the posture cannot be
judged), an unreachable S3 is retryable. The section is
:class:`~airflow_aisec.core.policy.sections.storage.StoragePolicy`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from airflow_aisec.core.gates.storage._policy_doc import (
    denies_insecure_transport,
    parse_policy_document,
    public_statements,
)
from airflow_aisec.core.io.storage import parse_s3_uri, translate_s3_errors
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.storage import StoragePolicy
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef

GATE = "storage"
PAB_SETTINGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
_PUBLIC_GROUPS = ("http://acs.amazonaws.com/groups/global/AllUsers",
                  "http://acs.amazonaws.com/groups/global/AuthenticatedUsers")
_KMS = ("aws:kms", "aws:kms:dsse")
_MAX_LISTED = 20

__all__ = ["GATE", "PAB_SETTINGS", "check_storage"]


def _finding(check: str, severity: Severity, message: str, count: int = 1, **location: Any) -> Finding:
    return Finding(rule=f"{GATE}.{check}", severity=severity, message=message, count=count, location=location)


def _optional(call: Callable[[], Any], missing: str, uri: str) -> Any:
    """``call()``, or None when S3 answers with the error code ``missing`` (the setting is absent)."""
    from botocore.exceptions import ClientError

    with translate_s3_errors(uri):
        try:
            return call()
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) == missing:
                return None
            raise


def _key_id(value: str) -> str | None:
    """The key id of ``arn:...:kms:...:key/<id>`` or of a bare id; None for an alias."""
    if value.startswith("arn:"):
        resource = value.split(":", 5)[-1]
        return resource[4:] if resource.startswith("key/") else None
    return None if value.startswith("alias/") else value


def key_allowed(key_id: str | None, allowed: list[str]) -> bool:
    """Whether a KMS key (id, ARN or alias) matches the allow-list (``fnmatch`` globs); an empty list
    allows any key. Two ARNs must match whole; otherwise a key id matches the ARN of that key."""
    if not allowed:
        return True
    if not key_id:
        return False  # the AWS-managed aws/s3 key: not one the policy names
    for pattern in allowed:
        if fnmatch.fnmatchcase(key_id, pattern):
            return True
        if key_id.startswith("arn:") and pattern.startswith("arn:"):
            continue
        have, want = _key_id(key_id), _key_id(pattern)
        if have and want and fnmatch.fnmatchcase(have, want):
            return True
    return False


def _meets(algorithm: str | None, required: str) -> bool:
    if not algorithm:
        return False
    if required == "aws:kms":
        return algorithm in _KMS
    return algorithm in ("AES256", *_KMS)  # "AES256" and "any": SSE-S3 or SSE-KMS


def _default_encryption(section: StoragePolicy, client: Any, bucket: str, uri: str) -> list[Finding]:
    config = _optional(lambda: client.get_bucket_encryption(Bucket=bucket),
                       "ServerSideEncryptionConfigurationNotFoundError", uri)
    rules = ((config or {}).get("ServerSideEncryptionConfiguration") or {}).get("Rules") or []
    defaults = [r.get("ApplyServerSideEncryptionByDefault") or {} for r in rules if isinstance(r, dict)]
    if not defaults or not any(d.get("SSEAlgorithm") for d in defaults):
        return [_finding("encryption_missing", Severity.HIGH,
                         f"bucket '{bucket}' has no default server-side encryption", bucket=bucket)]
    rule = defaults[0]
    algorithm = str(rule.get("SSEAlgorithm"))
    if not _meets(algorithm, section.encryption):
        return [_finding("encryption_too_weak", Severity.HIGH,
                         f"bucket '{bucket}' default encryption is {algorithm}; the policy requires {section.encryption}",
                         bucket=bucket, algorithm=algorithm, required=section.encryption)]
    if algorithm in _KMS and not key_allowed(rule.get("KMSMasterKeyID"), section.allowed_kms_keys):
        return [_finding("kms_key_not_allowed", Severity.HIGH,
                         f"bucket '{bucket}' default encryption uses a KMS key the policy does not allow",
                         bucket=bucket)]
    return []


def _public_access_block(client: Any, bucket: str, uri: str) -> list[Finding]:
    resp = _optional(lambda: client.get_public_access_block(Bucket=bucket),
                     "NoSuchPublicAccessBlockConfiguration", uri)
    config = (resp or {}).get("PublicAccessBlockConfiguration") or {}
    off = [s for s in PAB_SETTINGS if config.get(s) is not True]
    if not off:
        return []
    return [_finding("public_access_block", Severity.HIGH,
                     f"bucket '{bucket}' public-access-block setting(s) off: {', '.join(off)}",
                     count=len(off), bucket=bucket, settings_off=off)]


def _versioning(client: Any, bucket: str, uri: str) -> list[Finding]:
    with translate_s3_errors(uri):
        status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    if status == "Enabled":
        return []
    return [_finding("versioning_disabled", Severity.MEDIUM,
                     f"bucket '{bucket}' versioning is {status or 'never enabled'}", bucket=bucket,
                     status=status or "Off")]


def _acl(client: Any, bucket: str, uri: str) -> list[Finding]:
    with translate_s3_errors(uri):
        grants = client.get_bucket_acl(Bucket=bucket).get("Grants") or []
    public = sorted({f"{g['Grantee']['URI'].rsplit('/', 1)[-1]}:{g.get('Permission')}" for g in grants
                     if isinstance(g, dict) and (g.get("Grantee") or {}).get("URI") in _PUBLIC_GROUPS})
    if not public:
        return []
    return [_finding("public_acl", Severity.CRITICAL,
                     f"bucket '{bucket}' ACL grants public access: {', '.join(public)}",
                     count=len(public), bucket=bucket, grants=public)]


def _bucket_policy(section: StoragePolicy, client: Any, bucket: str, uri: str) -> list[Finding]:
    resp = _optional(lambda: client.get_bucket_policy(Bucket=bucket), "NoSuchBucketPolicy", uri)
    doc = parse_policy_document((resp or {}).get("Policy"))
    out = []
    if section.require_tls_policy and not denies_insecure_transport(doc, bucket):
        out.append(_finding("tls_policy_missing", Severity.HIGH,
                            f"bucket '{bucket}' policy does not deny every S3 action to everyone when "
                            "aws:SecureTransport is false", bucket=bucket, has_policy=doc is not None))
    if section.forbid_public_policy:
        public = public_statements(doc)
        if public:
            out.append(_finding("public_policy", Severity.CRITICAL,
                                f"bucket '{bucket}' policy allows everyone without a condition "
                                f"(statement(s) {public})", count=len(public), bucket=bucket, statements=public))
    return out


def _objects(section: StoragePolicy, client: Any, bucket: str, prefix: str, uri: str) -> tuple[list[Finding], dict]:
    keys: list[str] = []
    more = False
    with translate_s3_errors(uri):
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": min(1000, section.max_objects + 1)})
        for page in pages:
            for obj in page.get("Contents", []) or []:
                if len(keys) >= section.max_objects:
                    more = True
                    break
                keys.append(obj["Key"])
            if more:
                break
    unencrypted: list[str] = []
    wrong_key: list[str] = []
    for key in keys:
        with translate_s3_errors(f"s3://{bucket}/{key}"):
            head = client.head_object(Bucket=bucket, Key=key)
        algorithm = head.get("ServerSideEncryption")
        if not _meets(algorithm, section.encryption):
            unencrypted.append(key)
        elif algorithm in _KMS and not key_allowed(head.get("SSEKMSKeyId"), section.allowed_kms_keys):
            wrong_key.append(key)
    out = []
    if unencrypted:
        out.append(_finding("object_unencrypted", Severity.HIGH,
                            f"{len(unencrypted)} object(s) under {uri} not encrypted with {section.encryption}",
                            count=len(unencrypted), bucket=bucket, keys=unencrypted[:_MAX_LISTED]))
    if wrong_key:
        out.append(_finding("object_kms_key_not_allowed", Severity.HIGH,
                            f"{len(wrong_key)} object(s) under {uri} encrypted with a KMS key the policy does not allow",
                            count=len(wrong_key), bucket=bucket, keys=wrong_key[:_MAX_LISTED]))
    if more:
        out.append(_finding("object_limit_reached", Severity.MEDIUM,
                            f"more than {section.max_objects} objects under {uri}: only the first "
                            f"{section.max_objects} were checked (policy max_objects)", bucket=bucket,
                            max_objects=section.max_objects))
    return out, {"objects_checked": len(keys), "objects_unencrypted": len(unencrypted),
                 "objects_wrong_kms_key": len(wrong_key), "objects_more_than_limit": more}


def check_storage(section: StoragePolicy, uri: str, *, s3_client: Any = None) -> CheckOutcome:
    """The storage posture gate's core check.

    Args:
        section: The ``storage`` policy section.
        uri: ``s3://bucket`` or ``s3://bucket/prefix`` (the objects checked are under the prefix).
        s3_client: boto3 S3 client (default: from the AWS environment).

    Raises:
        InputDataError: not an ``s3://`` URI, the bucket does not exist, a malformed bucket policy.
        AccessDeniedError: a posture call was denied (the posture cannot be judged).
        ServiceUnavailableError: S3 unreachable (retryable).
    """
    from airflow_aisec.core.io.storage import make_s3_client

    loc = parse_s3_uri(str(uri))
    client = s3_client or make_s3_client()
    bucket, prefix = loc.bucket, loc.key
    with translate_s3_errors(f"s3://{bucket}"):
        client.head_bucket(Bucket=bucket)
    where = f"s3://{bucket}"
    findings = _default_encryption(section, client, bucket, where)
    if section.require_public_access_block:
        findings += _public_access_block(client, bucket, where)
    findings += _bucket_policy(section, client, bucket, where)
    if section.require_versioning:
        findings += _versioning(client, bucket, where)
    if section.forbid_public_acl:
        findings += _acl(client, bucket, where)
    metrics: dict[str, Any] = {"bucket": bucket, "prefix": prefix}
    if section.check_objects:
        found, counts = _objects(section, client, bucket, prefix, str(uri))
        findings += found
        metrics.update(counts)
    return CheckOutcome(findings=findings, metrics=metrics, inputs=[InputRef(uri=str(uri))])
