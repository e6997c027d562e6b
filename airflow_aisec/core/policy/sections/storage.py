"""The ``storage`` policy section (schema only; the engine is :mod:`airflow_aisec.core.gates.storage`).

The posture of the S3 bucket that holds training data or models: default encryption (SSE-KMS with an
allowed key when required), the four public-access-block settings, a bucket policy that denies plain
http (``aws:SecureTransport = false``), versioning, no public ACL grant or public policy statement,
and every object under the prefix encrypted.

Example::

    storage:
      encryption: aws:kms                      # aws:kms | AES256 | any
      allowed_kms_keys: ["arn:aws:kms:eu-west-1:111122223333:key/1234abcd-*"]
      require_public_access_block: true
      require_tls_policy: true
      require_versioning: true
      forbid_public_acl: true
      forbid_public_policy: true
      check_objects: true
      max_objects: 1000
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from airflow_aisec.core.policy.base import GateSection


class StoragePolicy(GateSection):
    """Policy section ``storage``.

    Attributes:
        encryption: Required default (and object) encryption: ``aws:kms`` (SSE-KMS, incl. ``aws:kms:dsse``),
            ``AES256`` or stronger (SSE-S3 or SSE-KMS), or ``any`` (some server-side encryption).
        allowed_kms_keys: With SSE-KMS: the key ids / ARNs / aliases allowed (``fnmatch`` globs); a key
            given as an id matches an ARN ending in ``key/<id>``. Empty: any KMS key.
        require_public_access_block: All four bucket public-access-block settings must be on.
        require_tls_policy: The bucket policy must deny every S3 action on the bucket and its objects
            to everyone when ``aws:SecureTransport`` is false (judged from the policy document).
        require_versioning: Versioning must be ``Enabled``.
        forbid_public_acl: No ACL grant to AllUsers or AuthenticatedUsers.
        forbid_public_policy: No bucket policy statement allowing everyone without a condition.
        check_objects: Every object under the prefix must be encrypted as ``encryption`` says
            (one ``HeadObject`` each).
        max_objects: Most objects checked per run; more under the prefix is a finding
            (``storage.object_limit_reached``), never a silent partial pass.
    """

    encryption: Literal["aws:kms", "AES256", "any"] = "aws:kms"
    allowed_kms_keys: list[str] = Field(default_factory=list, max_length=1000)
    require_public_access_block: bool = True
    require_tls_policy: bool = True
    require_versioning: bool = True
    forbid_public_acl: bool = True
    forbid_public_policy: bool = True
    check_objects: bool = True
    max_objects: int = Field(default=1000, ge=1, le=1_000_000)

    @field_validator("allowed_kms_keys")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if any(not k.strip() or k.strip() == "*" for k in value):
            raise ValueError("empty or '*' key id (leave the list empty to allow any KMS key)")
        return value

    @model_validator(mode="after")
    def _keys_need_kms(self) -> StoragePolicy:
        if self.allowed_kms_keys and self.encryption != "aws:kms":
            raise ValueError("allowed_kms_keys needs encryption: aws:kms")
        return self


__all__ = ["StoragePolicy"]
