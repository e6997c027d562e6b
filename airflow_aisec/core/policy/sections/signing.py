"""The ``signing`` policy section (schema only; the engine is :mod:`airflow_aisec.core.gates.signing`)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from airflow_aisec.core.policy.base import GateSection, StrictModel

_FINGERPRINT_RE = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")


class TransitKeyRef(StrictModel):
    """A Vault Transit key the policy trusts.

    Attributes:
        name: Transit key name.
        mount: Transit mount path.
        versions: Key versions trusted (explicit: a rotation does not extend trust by itself).
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    mount: str = Field(default="transit", min_length=1, pattern=r"^[A-Za-z0-9._/-]+$")
    versions: list[int] = Field(min_length=1)

    @field_validator("versions")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(v < 1 for v in value):
            raise ValueError("Transit key versions start at 1")
        return sorted(set(value))


class TrustedKey(StrictModel):
    """One trusted signing key: either a Transit key or a PEM key's fingerprint.

    Attributes:
        id: Label shown in results (e.g. ``release-2026``).
        transit: The Transit key (name, mount, versions).
        fingerprint: ``sha256:<hex>`` of the public key's DER SubjectPublicKeyInfo
            (``openssl pkey -pubin -in key.pub -outform DER | sha256sum``).
    """

    id: str = Field(min_length=1)
    transit: TransitKeyRef | None = None
    fingerprint: str | None = None

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _FINGERPRINT_RE.match(value.strip())
        if not match:
            raise ValueError("fingerprint must be 'sha256:' followed by 64 hex digits")
        return "sha256:" + match.group(1).lower()

    @model_validator(mode="after")
    def _exactly_one(self) -> TrustedKey:
        if (self.transit is None) == (self.fingerprint is None):
            raise ValueError("a trusted key needs exactly one of 'transit' or 'fingerprint'")
        return self


class HashingPolicy(StrictModel):
    """How models are hashed; signing and verification must agree (it is never guessed).

    Attributes:
        algorithm: ``sha256`` (default), ``blake2`` or ``blake3``.
        serialization: ``files`` (one digest per file) or ``shards`` (per fixed-size shard).
        shard_size: Shard size in bytes for ``shards``.
    """

    algorithm: Literal["sha256", "blake2", "blake3"] = "sha256"
    serialization: Literal["files", "shards"] = "files"
    shard_size: int = Field(default=1_000_000_000, gt=0)

    @model_validator(mode="after")
    def _blake3_is_file_based(self) -> HashingPolicy:
        if self.algorithm == "blake3" and self.serialization == "shards":
            # model-signing silently switches blake3 to file serialization.
            raise ValueError("blake3 hashing is file-based; use serialization: files")
        return self


class SigningPolicy(GateSection):
    """Policy section ``signing``.

    Attributes:
        trusted_keys: Keys whose signatures are accepted. Empty means nothing verifies.
        hashing: Hashing parameters for signing and verification.
        allow_unsigned: Tolerate a model with no signature at all (default: no, ``signing.unsigned``).
        allow_unsigned_files: Tolerate files in the model that the signature does not cover
            (default: no, an added file is tampering). Requires ``files`` serialization.
        allow_symlinks: Hash symlinks whose target stays inside the model directory. A symlink
            leaving the model directory always fails.
        ignore_git_paths: Leave git metadata (``.git``, ``.gitignore``...) out of the signature,
            like the stock CLI; signed ignore lists may then contain only those paths.
        require_s3_versioning: Refuse S3 models in unversioned buckets (versions cannot be pinned).
        max_signature_bytes: Largest signature file read.
        require_provenance: Verification also requires the signed provenance statement next to the
            signature (``signing.provenance_*``): signed by the model's key, about this model, and
            naming training datasets whose latest source and PII records in the audit trail pass.
        max_provenance_bytes: Largest provenance statement read.
    """

    trusted_keys: list[TrustedKey] = Field(default_factory=list)
    hashing: HashingPolicy = HashingPolicy()
    allow_unsigned: bool = False
    allow_unsigned_files: bool = False
    allow_symlinks: bool = False
    ignore_git_paths: bool = True
    require_s3_versioning: bool = True
    max_signature_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    require_provenance: bool = False
    max_provenance_bytes: int = Field(default=16 * 1024 * 1024, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> SigningPolicy:
        ids = [k.id for k in self.trusted_keys]
        if len(ids) != len(set(ids)):
            raise ValueError("trusted key ids must be unique")
        if self.allow_unsigned_files and self.hashing.serialization != "files":
            raise ValueError("allow_unsigned_files requires hashing.serialization: files")
        return self

    def trusted_fingerprint(self, fingerprint: str) -> TrustedKey | None:
        return next((k for k in self.trusted_keys if k.fingerprint == fingerprint), None)

    def trusted_transit(self, name: str, mount: str | None = None) -> TrustedKey | None:
        for key in self.trusted_keys:
            if key.transit and key.transit.name == name and (mount is None or key.transit.mount == mount):
                return key
        return None


__all__ = ["HashingPolicy", "SigningPolicy", "TransitKeyRef", "TrustedKey"]
