"""Model signing and verification (OpenSSF model-signing format) with local or Vault Transit keys.

Signatures are sigstore bundles (v0.3 JSON) holding a DSSE envelope over an in-toto statement
of per-file (or per-shard) digests, produced through the ``model-signing`` library, so the stock
``model_signing verify key`` CLI verifies them and this module verifies the CLI's signatures.

Two kinds of signing key:

* a local PEM EC private key (P-256/384/521), the library's own signer;
* a Vault/OpenBao Transit ``ecdsa-p256`` key: the private key never leaves Vault. The
  DSSE pre-authentication encoding is hashed locally (sha256) and Vault signs that digest
  (``prehashed=True``, ``hash_algorithm=sha2-256``, ``marshaling_algorithm=asn1``). The bundle
  names the key by model-signing's hint (sha256 of the SPKI PEM), so any holder of the
  Transit public key (``transit/keys/NAME``) can verify it with stock tools.

Trust never comes from the bundle. The caller names a key (a PEM public key, or a Transit key
name) and the policy must trust it: a PEM key by its fingerprint (sha256 of the DER
SubjectPublicKeyInfo, ``sha256:<hex>``), a Transit key by name and explicit versions.

Verification fails with a distinct exception per cause (all ``SecurityViolationError``, so the
gate reports a critical, never-waived finding):

* :class:`~airflow_aisec.exceptions.ModelTamperedError` (rule ``signing.tampered``): bytes
  changed, files added/removed/renamed, a signature of another model, a symlink leaving the
  model directory, an S3 object overwritten after signing;
* :class:`~airflow_aisec.exceptions.UntrustedKeyError` (``signing.untrusted_key``): signed by
  a key the policy does not trust, or the caller named a key the policy does not trust;
* :class:`~airflow_aisec.exceptions.MalformedSignatureError` (``signing.malformed``): bundle
  unparsable, not self-consistent, altered after signing, a ``../`` path in the manifest,
  hashing parameters other than the policy's, the signature file inside the model directory.

A missing signature is the finding ``signing.unsigned`` unless the policy allows unsigned
models. ``location["reason"]`` gives the precise cause in machine-readable form.

Hardening over plain library use: each verification builds a fresh verifying and hashing
configuration (model-signing #650: a reused configuration leaked ignore paths and let a
tampered model pass), always passes the hashing configuration explicitly (auto-detection is
broken for shard and blake2 signatures in 1.1.1), validates every manifest path before the
library sees it (#647), refuses signed ``ignore_paths`` beyond git metadata (one ``.`` entry
would exclude the whole model), and never follows a symlink out of the model (#666).

On S3 (``s3://bucket/prefix/``) the object versions seen at signing are pinned inside the
signed statement (an extra predicate field ``aisec``, ignored by other verifiers); verification
refuses objects added, deleted or overwritten since, and verifies exactly the pinned versions.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from airflow_aisec.core.policy.base import GateSection, Severity, StrictModel
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef
from airflow_aisec.core.io.storage import is_s3_uri, make_s3_client, parse_s3_uri, translate_s3_errors, walk_tree
from airflow_aisec.exceptions import (
    ConfigurationError,
    InputDataError,
    MalformedSignatureError,
    ModelTamperedError,
    SignatureVerificationError,
    UntrustedKeyError,
)

GATE = "signing"
RULE_TAMPERED = "signing.tampered"
RULE_UNTRUSTED = "signing.untrusted_key"
RULE_MALFORMED = "signing.malformed"
RULE_UNSIGNED = "signing.unsigned"
RULE_FAILED = "signing.verification_failed"

#: Signature file suffix used when no signature path is given (next to the model, never inside).
SIGNATURE_SUFFIX = ".sig"
#: Paths model-signing ignores when asked to ignore git metadata (as recorded in manifests).
GIT_PATHS = frozenset({".git", ".gitattributes", ".github", ".gitignore"})
#: Extra predicate field carrying airflow-aisec data (S3 version pins) inside the signed statement.
AISEC_PREDICATE_KEY = "aisec"

_IN_TOTO_STATEMENT = "https://in-toto.io/Statement/v1"
_LEGACY_PREDICATE = "https://model_signing/Digests/v0.1"
#: Policy algorithm name -> the name model-signing records in manifests.
_MANIFEST_HASH_NAME = {"sha256": "sha256", "blake2": "blake2b", "blake3": "blake3"}
_DIGEST_HEX_LEN = {"sha256": 64, "blake2b": 128, "blake3": 64}
_FINGERPRINT_RE = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")
_HEX_RE = re.compile(r"^[0-9a-f]+$")
_MAX_PUBLIC_KEY_BYTES = 64 * 1024
_MAX_LISTED = 5


# ----------------------------------------------------------------------------------------------
# Policy
# ----------------------------------------------------------------------------------------------
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
    """

    trusted_keys: list[TrustedKey] = Field(default_factory=list)
    hashing: HashingPolicy = HashingPolicy()
    allow_unsigned: bool = False
    allow_unsigned_files: bool = False
    allow_symlinks: bool = False
    ignore_git_paths: bool = True
    require_s3_versioning: bool = True
    max_signature_bytes: int = Field(default=16 * 1024 * 1024, gt=0)

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


# ----------------------------------------------------------------------------------------------
# Errors with rule ids and a machine-readable reason
# ----------------------------------------------------------------------------------------------
def _tampered(message: str, reason: str, **location: Any) -> ModelTamperedError:
    return ModelTamperedError(message, rule=RULE_TAMPERED, location={"reason": reason, **location})


def _untrusted(message: str, reason: str, **location: Any) -> UntrustedKeyError:
    return UntrustedKeyError(message, rule=RULE_UNTRUSTED, location={"reason": reason, **location})


def _malformed(message: str, reason: str, **location: Any) -> MalformedSignatureError:
    return MalformedSignatureError(message, rule=RULE_MALFORMED, location={"reason": reason, **location})


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... (+{len(names) - _MAX_LISTED})" if len(names) > _MAX_LISTED else "")


# ----------------------------------------------------------------------------------------------
# Keys
# ----------------------------------------------------------------------------------------------
def _check_ec_key(public_key: Any, what: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ConfigurationError(f"{what} is not an elliptic-curve key (model-signing needs EC P-256/384/521)")
    if public_key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
        raise ConfigurationError(f"{what} uses curve {public_key.curve.name}; only P-256/384/521 are supported")


def key_fingerprint(public_key: Any) -> str:
    """``sha256:<hex>`` over the public key's DER SubjectPublicKeyInfo."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def public_key_pem(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(data: bytes, what: str = "public key") -> Any:
    """Load a PEM public key (EC P-256/384/521 only).

    Raises:
        ConfigurationError: not a PEM public key, or not a supported EC key.
    """
    from cryptography.hazmat.primitives import serialization

    if len(data) > _MAX_PUBLIC_KEY_BYTES:
        raise ConfigurationError(f"{what} is larger than {_MAX_PUBLIC_KEY_BYTES} bytes")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ConfigurationError(f"{what} is not a PEM public key") from None
    except Exception as exc:  # noqa: BLE001 - cryptography raises its own types for odd input
        raise ConfigurationError(f"{what} could not be parsed ({type(exc).__name__})") from None
    _check_ec_key(key, what)
    return key


def load_private_key(path: str | os.PathLike[str], password: bytes | None = None) -> Any:
    """Load a local PEM EC private key (the value never appears in a message).

    Raises:
        ConfigurationError: missing, unreadable, encrypted without a password, wrong password,
            or not an EC P-256/384/521 key.
    """
    from cryptography.hazmat.primitives import serialization

    p = Path(path)
    if is_s3_uri(str(path)):
        raise ConfigurationError("private keys are read from local files only, not from S3")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"private key file not found: {p}") from None
    except IsADirectoryError:
        raise ConfigurationError(f"private key path is a directory: {p}") from None
    except PermissionError:
        raise ConfigurationError(f"private key file not readable (permission denied): {p}") from None
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError:
        raise ConfigurationError(
            f"private key {p} is encrypted and no password was given, or a password was given for an "
            "unencrypted key"
        ) from None
    except ValueError:
        raise ConfigurationError(f"{p} is not a PEM private key, or the password is wrong") from None
    except Exception as exc:  # noqa: BLE001
        raise ConfigurationError(f"private key {p} could not be loaded ({type(exc).__name__})") from None
    finally:
        del data
    _check_ec_key(key.public_key(), f"private key {p}")
    return key


@dataclass(frozen=True)
class TransitKey:
    """A Transit key's public side as read from Vault."""

    name: str
    mount: str
    key_type: str
    latest_version: int
    public_keys: dict[int, Any]


def read_transit_key(client: Any, name: str, mount: str = "transit") -> TransitKey:
    """Read a Transit key's type and public keys (``GET transit/keys/NAME``).

    Raises:
        ServiceUnavailableError: Vault unreachable or sealed.
        AccessDeniedError: denied, or no such key.
        ConfigurationError: not an ``ecdsa-p256`` key.
    """
    from airflow_aisec.core.io.vault import translate_vault_errors

    with translate_vault_errors(f"transit key '{name}' on mount '{mount}'"):
        response = client.secrets.transit.read_key(name=name, mount_point=mount)
    data = (response or {}).get("data") or {}
    key_type = str(data.get("type", ""))
    if key_type != "ecdsa-p256":
        raise ConfigurationError(
            f"Transit key '{name}' has type '{key_type or 'unknown'}'; model signing needs an ecdsa-p256 key"
        )
    public_keys: dict[int, Any] = {}
    for version, info in (data.get("keys") or {}).items():
        pem = (info or {}).get("public_key") if isinstance(info, dict) else None
        if pem:
            public_keys[int(version)] = load_public_key(pem.encode("ascii"), f"Transit key '{name}' v{version}")
    latest = int(data.get("latest_version") or (max(public_keys) if public_keys else 0))
    if not public_keys:
        raise ConfigurationError(f"Transit key '{name}' exposes no public keys")
    return TransitKey(name=name, mount=mount, key_type=key_type, latest_version=latest, public_keys=public_keys)


def transit_sign_digest(client: Any, name: str, mount: str, version: int, digest: bytes) -> bytes:
    """Have Vault sign a sha256 digest with one Transit key version; returns the DER signature.

    Raises:
        ServiceUnavailableError / AccessDeniedError: from Vault.
        InputDataError: Vault answered with a signature for another key version or unparsable.
    """
    from airflow_aisec.core.io.vault import translate_vault_errors

    with translate_vault_errors(f"transit/sign/{name} on mount '{mount}'"):
        response = client.secrets.transit.sign_data(
            name=name,
            hash_input=base64.b64encode(digest).decode("ascii"),
            key_version=version,
            hash_algorithm="sha2-256",
            prehashed=True,
            marshaling_algorithm="asn1",
            mount_point=mount,
        )
    signature = str(((response or {}).get("data") or {}).get("signature", ""))
    prefix = f"vault:v{version}:"
    if not signature.startswith(prefix):
        raise InputDataError(f"Vault Transit returned a signature not made by version {version} of '{name}'")
    try:
        return base64.b64decode(signature[len(prefix):], validate=True)
    except (binascii.Error, ValueError):
        raise InputDataError(f"Vault Transit returned an undecodable signature for '{name}'") from None


# ----------------------------------------------------------------------------------------------
# Locations (local directories and S3 prefixes)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Location:
    uri: str
    s3: bool
    bucket: str = ""
    key: str = ""  # for a model: the prefix, ending in "/" (or empty for a whole bucket)
    path: Path | None = None

    @property
    def name(self) -> str:
        if self.s3:
            stripped = self.key.rstrip("/")
            return stripped.rsplit("/", 1)[-1] if stripped else self.bucket
        assert self.path is not None
        return self.path.name or Path(os.path.abspath(self.path)).name


def _model_location(model: str | os.PathLike[str]) -> _Location:
    uri = str(model)
    if not uri.strip():
        raise ConfigurationError("no model location given")
    if is_s3_uri(uri):
        loc = parse_s3_uri(uri)
        prefix = loc.key
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return _Location(uri=f"s3://{loc.bucket}/{prefix}", s3=True, bucket=loc.bucket, key=prefix)
    return _Location(uri=uri, s3=False, path=Path(uri))


def _file_location(uri: str) -> _Location:
    if is_s3_uri(uri):
        loc = parse_s3_uri(uri)
        if not loc.key or loc.key.endswith("/"):
            raise ConfigurationError(f"signature location must name an object, not a prefix: {uri}")
        return _Location(uri=uri, s3=True, bucket=loc.bucket, key=loc.key)
    return _Location(uri=uri, s3=False, path=Path(uri))


def default_signature_uri(model: str | os.PathLike[str]) -> str:
    """Where a model's signature goes when none is named: next to the model, ``<model>.sig``.

    Raises:
        ConfigurationError: the model is a whole bucket (there is no "next to").
    """
    loc = _model_location(model)
    if loc.s3:
        if not loc.key:
            raise ConfigurationError("a model at the root of a bucket needs an explicit signature location")
        return f"s3://{loc.bucket}/{loc.key.rstrip('/')}{SIGNATURE_SUFFIX}"
    assert loc.path is not None
    return str(Path(os.path.abspath(loc.path)).parent / (loc.name + SIGNATURE_SUFFIX))


def _signature_inside_model(model: _Location, sig: _Location) -> bool:
    if model.s3 != sig.s3:
        return False
    if model.s3:
        return sig.bucket == model.bucket and sig.key.startswith(model.key)
    assert model.path is not None and sig.path is not None
    root = os.path.realpath(model.path)
    target = os.path.realpath(sig.path)
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


# ----------------------------------------------------------------------------------------------
# Model directory checks
# ----------------------------------------------------------------------------------------------
@dataclass
class _TreeInfo:
    files: int = 0
    total_bytes: int = 0
    escaping_symlinks: list[str] = field(default_factory=list)
    symlinks: list[str] = field(default_factory=list)
    special: list[str] = field(default_factory=list)


def _walk_model(root: Path, *, ignore_git_paths: bool) -> _TreeInfo:
    """Inventory a model directory without following symlinks (and without reading file content)."""
    info = _TreeInfo()
    for rel, _full, st, kind in walk_tree(root, skip_top=GIT_PATHS if ignore_git_paths else ()):
        if kind == "escaping_symlink":
            info.escaping_symlinks.append(rel)
        elif kind == "symlink":
            info.symlinks.append(rel)
        elif kind == "file":
            info.files += 1
            info.total_bytes += st.st_size
        elif kind == "special":
            info.special.append(rel)
    return info


def _check_tree(root: Path, policy: SigningPolicy, *, signing: bool) -> _TreeInfo:
    """Refuse a model directory with symlinks leaving it, symlinks the policy does not allow, or
    special files: before signing an input error, at verification tampering (ModelTamperedError)."""
    if not root.exists():
        raise InputDataError(f"model directory not found: {root}")
    if not root.is_dir():
        raise InputDataError(f"model path is not a directory: {root}")
    info = _walk_model(root, ignore_git_paths=policy.ignore_git_paths)
    # (paths, reason, what the verification says, what signing says)
    problems = [
        (info.escaping_symlinks, "symlink_escape", "symlink(s) pointing outside the model directory",
         "symlink(s) point outside the model directory"),
        ([] if policy.allow_symlinks else info.symlinks, "symlink",
         "symlink(s) and the policy does not allow symlinks",
         "the model contains symlink(s) and the policy does not allow them"),
        (info.special, "special_file", "special file(s) (fifo, socket or device)", "special file(s) in the model"),
    ]
    for paths, reason, verify_text, sign_text in problems:
        if not paths:
            continue
        if signing:
            raise InputDataError(f"refusing to sign: {sign_text}: {_listing(paths)}")
        raise _tampered(f"model contains {len(paths)} {verify_text}: {_listing(paths)}", reason, paths=paths[:50])
    if signing and info.files == 0:
        raise InputDataError(f"refusing to sign: the model directory has no files: {root}")
    return info


# ----------------------------------------------------------------------------------------------
# S3
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _S3Object:
    key: str
    version_id: str
    size: int


def _safe_relative(path: str) -> bool:
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def _s3_bucket_versioned(client: Any, bucket: str) -> bool:
    with translate_s3_errors(f"s3://{bucket}"):
        status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    return status == "Enabled"


def _s3_list_latest(client: Any, model: _Location) -> dict[str, _S3Object]:
    """Latest live version of every object under the model prefix, by relative path."""
    objects: dict[str, _S3Object] = {}
    deleted: set[str] = set()
    with translate_s3_errors(model.uri):
        paginator = client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=model.bucket, Prefix=model.key):
            for marker in page.get("DeleteMarkers", []) or []:
                if marker.get("IsLatest"):
                    deleted.add(marker["Key"])
            for version in page.get("Versions", []) or []:
                if not version.get("IsLatest"):
                    continue
                key = version["Key"]
                rel = key[len(model.key):]
                if key.endswith("/") and int(version.get("Size", 0)) == 0:
                    continue  # "folder" placeholder objects carry no model content
                objects[rel] = _S3Object(key=key, version_id=str(version.get("VersionId") or "null"),
                                         size=int(version.get("Size", 0)))
    for key in deleted:
        objects.pop(key[len(model.key):], None)
    return objects


def _s3_download(client: Any, bucket: str, obj: _S3Object, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    extra = {"VersionId": obj.version_id} if obj.version_id != "null" else {}
    with translate_s3_errors(f"s3://{bucket}/{obj.key}"):
        body = client.get_object(Bucket=bucket, Key=obj.key, **extra)["Body"]
        with open(dest, "wb") as fh:
            fh.writelines(body.iter_chunks(chunk_size=8 * 1024 * 1024))


def _read_signature(sig: _Location, client: Any, limit: int) -> tuple[bytes | None, str | None]:
    """Signature bytes (None when missing) and, on S3, the version read."""
    if sig.s3:
        from botocore.exceptions import ClientError

        from airflow_aisec.core.io.storage import s3_error_is_missing

        try:
            head = client.head_object(Bucket=sig.bucket, Key=sig.key)
        except ClientError as exc:
            if s3_error_is_missing(exc):
                return None, None
            # Anything else (a 400, a redirect, a denial) is not "unsigned": it must not pass as one.
            with translate_s3_errors(sig.uri):
                raise
        except Exception:
            with translate_s3_errors(sig.uri):
                raise
        if int(head.get("ContentLength", 0)) > limit:
            raise _malformed(f"signature is larger than {limit} bytes", "too_large", signature=sig.uri)
        version = head.get("VersionId")
        extra = {"VersionId": version} if version and version != "null" else {}
        with translate_s3_errors(sig.uri):
            data = client.get_object(Bucket=sig.bucket, Key=sig.key, **extra)["Body"].read(limit + 1)
        if len(data) > limit:
            raise _malformed(f"signature is larger than {limit} bytes", "too_large", signature=sig.uri)
        return data, version
    assert sig.path is not None
    try:
        st = sig.path.stat()
    except FileNotFoundError:
        return None, None
    if stat.S_ISDIR(st.st_mode):
        raise InputDataError(f"signature path is a directory: {sig.uri}")
    if st.st_size > limit:
        raise _malformed(f"signature is larger than {limit} bytes", "too_large", signature=sig.uri)
    try:
        with open(sig.path, "rb") as fh:
            data = fh.read(limit + 1)
    except PermissionError:
        raise InputDataError(f"signature file not readable (permission denied): {sig.uri}") from None
    if len(data) > limit:
        raise _malformed(f"signature is larger than {limit} bytes", "too_large", signature=sig.uri)
    return data, None


def _write_signature(sig: _Location, data: bytes, client: Any) -> str | None:
    if sig.s3:
        with translate_s3_errors(sig.uri):
            response = client.put_object(Bucket=sig.bucket, Key=sig.key, Body=data,
                                         ContentType="application/json")
        return response.get("VersionId")
    assert sig.path is not None
    parent = Path(os.path.abspath(sig.path)).parent
    if not parent.is_dir():
        raise InputDataError(f"signature directory does not exist: {parent}")
    fd, tmp = tempfile.mkstemp(prefix=".aisec-sig-", dir=parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, sig.path)  # atomic: a reader never sees half a signature
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return None


# ----------------------------------------------------------------------------------------------
# model-signing configuration
# ----------------------------------------------------------------------------------------------
def build_hashing_config(policy: SigningPolicy) -> Any:
    """A new ``model_signing.hashing.Config`` from the policy (never shared between runs)."""
    from airflow_aisec.core import _model_signing_compat as compat

    ms = compat.import_model_signing()
    hp = policy.hashing
    config = ms.hashing.Config()
    if hp.serialization == "files":
        config.use_file_serialization(hashing_algorithm=hp.algorithm, allow_symlinks=policy.allow_symlinks)
    else:
        config.use_shard_serialization(
            hashing_algorithm=hp.algorithm, shard_size=hp.shard_size, allow_symlinks=policy.allow_symlinks
        )
    config.set_ignored_paths(paths=[], ignore_git_paths=policy.ignore_git_paths)
    config.set_allow_symlinks(policy.allow_symlinks)
    return config


# ----------------------------------------------------------------------------------------------
# Bundle parsing and validation (before the library sees anything)
# ----------------------------------------------------------------------------------------------
@dataclass
class ParsedBundle:
    """The parts of a signature bundle verification needs, decoded and checked for form."""

    raw_payload: bytes
    signature: bytes
    hint: str | None
    sha256: str


@dataclass
class SignedStatement:
    """The signed statement, validated against the policy."""

    model_name: str
    root_digest: str
    method: str
    hash_type: str
    shard_size: int | None
    ignore_paths: list[str]
    items: dict[str, str]  # resource name -> hex digest
    s3_versions: dict[str, str] | None


def parse_bundle(data: bytes) -> ParsedBundle:
    """Decode a sigstore bundle enough to authenticate it.

    Raises:
        MalformedSignatureError: anything that is not a single-signature DSSE bundle of model-signing.
    """
    from airflow_aisec.core import _model_signing_compat as compat

    if not data.strip():
        raise _malformed("signature file is empty", "empty")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _malformed("signature is not a JSON sigstore bundle", "not_json") from None
    if not isinstance(doc, dict):
        raise _malformed("signature is not a JSON object", "not_json")
    media = doc.get("mediaType")
    if media != compat.bundle_media_type():
        raise _malformed(f"signature bundle has media type {str(media)[:80]!r}, expected sigstore bundle v0.3",
                         "media_type")
    envelope = doc.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise _malformed("signature bundle has no DSSE envelope", "no_envelope")
    if envelope.get("payloadType") != compat.payload_type():
        raise _malformed("DSSE payload is not an in-toto statement", "payload_type")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise _malformed("DSSE envelope must carry exactly one signature", "signature_count")
    try:
        raw_payload = base64.b64decode(str(envelope.get("payload", "")), validate=True)
        signature = base64.b64decode(str(signatures[0].get("sig", "")), validate=True)
    except (binascii.Error, ValueError):
        raise _malformed("DSSE payload or signature is not valid base64", "base64") from None
    if not raw_payload or not signature:
        raise _malformed("DSSE payload or signature is empty", "empty")
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise _malformed("signature bundle has no verification material", "no_material")
    public_key = material.get("publicKey")
    if not isinstance(public_key, dict):
        raise _malformed("signature bundle is not key-based (no publicKey in the verification material)",
                         "not_key_based")
    hint = public_key.get("hint")
    if hint is not None and (not isinstance(hint, str) or not re.fullmatch(r"[0-9a-f]{64}", hint)):
        raise _malformed("signature bundle has an invalid public-key hint", "hint")
    return ParsedBundle(raw_payload=raw_payload, signature=signature, hint=hint,
                        sha256=hashlib.sha256(data).hexdigest())


def _verify_dsse(public_key: Any, bundle: ParsedBundle) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from airflow_aisec.core import _model_signing_compat as compat

    algorithm = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[public_key.curve.key_size]
    try:
        public_key.verify(bundle.signature, compat.pae(bundle.raw_payload), ec.ECDSA(algorithm))
    except InvalidSignature:
        return False
    return True


def _validate_statement(bundle: ParsedBundle, policy: SigningPolicy) -> SignedStatement:
    """Validate the (already authenticated) statement: shape, paths, consistency, policy match.

    Raises:
        MalformedSignatureError: for every defect, with ``location.reason``.
    """
    from airflow_aisec.core import _model_signing_compat as compat

    try:
        statement = json.loads(bundle.raw_payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _malformed("signed payload is not JSON", "payload_json") from None
    if not isinstance(statement, dict) or statement.get("_type") != _IN_TOTO_STATEMENT:
        raise _malformed("signed payload is not an in-toto v1 statement", "statement_type")
    predicate_type = statement.get("predicateType")
    if predicate_type == _LEGACY_PREDICATE:
        raise _malformed("signature uses the legacy v0.1 model-signing predicate (no root digest, no "
                         "serialization record); re-sign the model", "legacy_predicate")
    if predicate_type != compat.predicate_type():
        raise _malformed(f"unexpected predicate type {str(predicate_type)[:80]!r}", "predicate_type")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise _malformed("statement must have exactly one subject", "subject")
    subject = subjects[0]
    root_digest = (subject.get("digest") or {}).get("sha256") if isinstance(subject.get("digest"), dict) else None
    if not isinstance(root_digest, str) or not re.fullmatch(r"[0-9a-f]{64}", root_digest):
        raise _malformed("statement subject has no sha256 digest", "subject")
    model_name = str(subject.get("name", ""))[:200]
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise _malformed("statement has no predicate", "predicate")
    serialization = predicate.get("serialization")
    resources = predicate.get("resources")
    if not isinstance(serialization, dict) or not isinstance(resources, list):
        raise _malformed("predicate lacks serialization or resources", "predicate")

    method = serialization.get("method")
    hash_type = serialization.get("hash_type")
    shard_size: int | None = None
    if method == "shards":
        raw_size = serialization.get("shard_size")
        # protobuf Struct turns the integer into a float (1e9): accept integral numbers only.
        if not isinstance(raw_size, (int, float)) or isinstance(raw_size, bool) or raw_size <= 0 \
                or float(raw_size) != int(raw_size):
            raise _malformed("shard serialization without a valid shard_size", "serialization")
        shard_size = int(raw_size)
    elif method != "files":
        raise _malformed(f"unknown serialization method {str(method)[:40]!r}", "serialization")
    hp = policy.hashing
    if method != hp.serialization or hash_type != _MANIFEST_HASH_NAME[hp.algorithm] or (
        shard_size is not None and shard_size != hp.shard_size
    ):
        signed = f"{hash_type}/{method}" + (f"/{shard_size}" if shard_size else "")
        wanted = f"{_MANIFEST_HASH_NAME[hp.algorithm]}/{hp.serialization}" + (f"/{hp.shard_size}" if hp.serialization == "shards" else "")
        raise _malformed(f"signature was made with hashing {signed[:80]} but the policy requires {wanted}",
                         "hashing_mismatch", signed=signed[:80], required=wanted)

    ignore_paths = serialization.get("ignore_paths") or []
    if not isinstance(ignore_paths, list) or not all(isinstance(p, str) for p in ignore_paths):
        raise _malformed("serialization ignore_paths is not a list of paths", "ignore_paths")
    allowed_ignores = GIT_PATHS if policy.ignore_git_paths else frozenset()
    bad_ignores = sorted({p for p in ignore_paths if p.rstrip("/") not in allowed_ignores})
    if bad_ignores:
        raise _malformed(
            f"signature excludes {len(bad_ignores)} path(s) from the model that the policy does not allow to be "
            f"excluded: {_listing([p[:100] for p in bad_ignores])}",
            "ignore_paths",
            paths=[p[:200] for p in bad_ignores[:20]],
        )

    if not resources:
        raise _malformed("signature covers no files", "empty_manifest")
    items: dict[str, str] = {}
    digest_len = _DIGEST_HEX_LEN.get(str(hash_type))
    root = hashlib.sha256()
    for resource in resources:
        if not isinstance(resource, dict):
            raise _malformed("manifest entry is not an object", "resource")
        name, algorithm, digest = resource.get("name"), resource.get("algorithm"), resource.get("digest")
        if not isinstance(name, str) or not isinstance(digest, str):
            raise _malformed("manifest entry without name or digest", "resource")
        path = name
        if method == "shards":
            parts = name.rsplit(":", 2)
            if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit() \
                    or int(parts[1]) >= int(parts[2]) or int(parts[2]) - int(parts[1]) > (shard_size or 0):
                raise _malformed(f"manifest shard entry {name[:100]!r} is not 'path:start:end'", "resource")
            path = parts[0]
        if not _safe_relative(path):
            traversal = path.startswith("/") or ".." in path.replace("\\", "/").split("/")
            raise _malformed(
                f"manifest path {path[:100]!r} "
                + ("escapes the model directory" if traversal else "is not a plain relative path"),
                "path_traversal" if traversal else "bad_path",
                path=path[:200],
            )
        expected_algorithm = hash_type if method == "files" else f"{hash_type}-sharded-{shard_size}"
        if algorithm != expected_algorithm:
            raise _malformed(f"manifest entry {name[:100]!r} uses {str(algorithm)[:40]}, not {expected_algorithm}",
                             "resource")
        if not _HEX_RE.match(digest) or (digest_len and len(digest) != digest_len):
            raise _malformed(f"manifest entry {name[:100]!r} has an invalid digest", "resource")
        if name in items:
            raise _malformed(f"manifest lists {name[:100]!r} twice", "duplicate")
        items[name] = digest
        root.update(bytes.fromhex(digest))
    if root.hexdigest() != root_digest:
        raise _malformed("statement is inconsistent: its root digest does not match its file digests",
                         "inconsistent")

    s3_versions: dict[str, str] | None = None
    extension = predicate.get(AISEC_PREDICATE_KEY)
    if extension is not None:
        s3 = extension.get("s3") if isinstance(extension, dict) else None
        versions = s3.get("versions") if isinstance(s3, dict) else None
        if not isinstance(versions, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and _safe_relative(k) for k, v in versions.items()
        ):
            raise _malformed("the aisec S3 version pins in the statement are malformed", "s3_pins")
        s3_versions = dict(versions)
    return SignedStatement(model_name=model_name, root_digest=root_digest, method=str(method),
                           hash_type=str(hash_type), shard_size=shard_size, ignore_paths=list(ignore_paths),
                           items=items, s3_versions=s3_versions)


# ----------------------------------------------------------------------------------------------
# Trust
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Candidate:
    trusted_id: str
    public_key: Any
    fingerprint: str
    hint: str
    description: str
    transit_version: int | None = None


def _trusted_candidates(
    policy: SigningPolicy,
    *,
    public_key: str | None,
    transit_key: str | None,
    transit_mount: str | None,
    vault_client: Any,
    s3_client: Any,
) -> tuple[list[_Candidate], dict[str, str]]:
    """Keys that may have signed: the caller's key, only if the policy trusts it.

    Returns:
        The trusted candidates, and hints of known-but-untrusted versions of the same Transit key
        (hint -> description) for a precise message.
    """
    from airflow_aisec.core import _model_signing_compat as compat

    if public_key:
        from airflow_aisec.core.io.storage import read_bytes

        key = load_public_key(read_bytes(public_key, s3_client=s3_client), "public key")
        fp = key_fingerprint(key)
        trusted = policy.trusted_fingerprint(fp)
        if trusted is None:
            raise _untrusted(f"the public key given ({fp}) is not among the policy's trusted keys",
                             "key_not_in_policy", fingerprint=fp)
        return [_Candidate(trusted.id, key, fp, compat.public_key_hint(key), f"PEM key {fp}")], {}

    assert transit_key
    trusted = policy.trusted_transit(transit_key, transit_mount)
    if trusted is None or trusted.transit is None:
        raise _untrusted(f"Transit key '{transit_key}' is not among the policy's trusted keys",
                         "key_not_in_policy", transit_key=transit_key)
    if vault_client is None:
        raise ConfigurationError("verifying with a Transit key needs a Vault client")
    tk = read_transit_key(vault_client, trusted.transit.name, trusted.transit.mount)
    candidates: list[_Candidate] = []
    others: dict[str, str] = {}
    for version, key in sorted(tk.public_keys.items()):
        desc = f"Transit key '{tk.name}' v{version}"
        hint = compat.public_key_hint(key)
        if version in trusted.transit.versions:
            candidates.append(_Candidate(trusted.id, key, key_fingerprint(key), hint, desc, version))
        else:
            others[hint] = desc
    if not candidates:
        raise _untrusted(
            f"none of the trusted versions {trusted.transit.versions} of Transit key '{tk.name}' exist in Vault",
            "key_not_in_policy", transit_key=tk.name,
        )
    return candidates, others


def _authenticate(bundle: ParsedBundle, candidates: list[_Candidate], others: dict[str, str]) -> _Candidate:
    """Pick the trusted key that signed the bundle, or raise why none did."""
    if bundle.hint is not None:
        chosen = next((c for c in candidates if c.hint == bundle.hint), None)
        if chosen is None:
            if bundle.hint in others:
                raise _untrusted(
                    f"the model was signed with {others[bundle.hint]}, a version the policy does not trust",
                    "version_not_trusted", signer_hint=bundle.hint,
                )
            names = "; ".join(sorted({c.description for c in candidates}))
            raise _untrusted(
                f"the model was signed by another key (key hint {bundle.hint[:16]}...), not by the trusted {names}",
                "other_key", signer_hint=bundle.hint,
            )
        if not _verify_dsse(chosen.public_key, bundle):
            raise _malformed(
                "the bundle names the trusted key but its DSSE signature does not verify: the bundle was altered "
                "after signing or its key hint was forged",
                "bad_signature",
            )
        return chosen
    # Older bundles carry no hint: accept only a key whose signature verifies.
    for candidate in candidates:
        if _verify_dsse(candidate.public_key, bundle):
            return candidate
    raise _untrusted("the signature does not verify with any trusted key (bundle has no key hint)", "other_key")


# ----------------------------------------------------------------------------------------------
# Tamper analysis (only on the failure path)
# ----------------------------------------------------------------------------------------------
def _group_by_file(items: dict[str, str], method: str) -> dict[str, tuple[str, ...]]:
    if method == "files":
        return {name: (digest,) for name, digest in items.items()}
    grouped: dict[str, list[tuple[int, str]]] = {}
    for name, digest in items.items():
        path, start, _end = name.rsplit(":", 2)
        grouped.setdefault(path, []).append((int(start), digest))
    return {path: tuple(d for _, d in sorted(shards)) for path, shards in grouped.items()}


def _describe_tampering(
    model_dir: Path, statement: SignedStatement, policy: SigningPolicy, model_uri: str
) -> ModelTamperedError | None:
    """Re-hash the model and name what differs from the signed manifest (None if nothing does)."""
    config = build_hashing_config(policy)
    if statement.ignore_paths:
        config.add_ignored_paths(model_path=model_dir, paths=statement.ignore_paths)
    actual_manifest = config.hash(model_dir)
    actual = {rd.identifier: rd.digest.digest_hex for rd in actual_manifest.resource_descriptors()}
    expected_files = _group_by_file(statement.items, statement.method)
    actual_files = _group_by_file(actual, statement.method)

    changed = sorted(p for p in expected_files.keys() & actual_files.keys() if expected_files[p] != actual_files[p])
    removed = sorted(expected_files.keys() - actual_files.keys())
    added = sorted(actual_files.keys() - expected_files.keys())
    if policy.allow_unsigned_files:
        added = []
    renamed: list[tuple[str, str]] = []
    for old in list(removed):
        match = next((new for new in added if actual_files[new] == expected_files[old]), None)
        if match is not None:
            renamed.append((old, match))
            removed.remove(old)
            added.remove(match)
    if not (changed or removed or added or renamed):
        return None

    location: dict[str, Any] = {"model": model_uri}
    for key, values in (("changed", changed), ("added", added), ("removed", removed)):
        if values:
            location[key] = values[:50]
    if renamed:
        location["renamed"] = [{"from": a, "to": b} for a, b in renamed[:50]]

    unchanged = (expected_files.keys() & actual_files.keys()) - set(changed)
    if not unchanged and not renamed and len(changed) + len(removed) == len(expected_files):
        return _tampered(
            f"the signature is for a different model: none of its {len(expected_files)} file(s) match this model "
            f"(signed model name {statement.model_name!r})",
            "different_model",
            **location,
        )
    parts = []
    if changed:
        parts.append(f"{len(changed)} file(s) changed [{_listing(changed)}]")
    if added:
        parts.append(f"{len(added)} unsigned file(s) added [{_listing(added)}]")
    if removed:
        parts.append(f"{len(removed)} signed file(s) missing [{_listing(removed)}]")
    if renamed:
        parts.append(f"{len(renamed)} file(s) renamed [{_listing([f'{a} -> {b}' for a, b in renamed])}]")
    kinds = [k for k, v in (("changed", changed), ("added", added), ("removed", removed), ("renamed", renamed)) if v]
    reason = f"file_{kinds[0]}" if len(kinds) == 1 else "files_modified"
    return _tampered("model content does not match its signature: " + "; ".join(parts), reason, **location)


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _materialized_model(
    model: _Location, client: Any, *, pins: dict[str, str] | None, check_pins: bool
) -> Iterator[tuple[Path, dict[str, _S3Object]]]:
    """A local directory with the model: the path itself, or a temp copy of the S3 prefix.

    With ``check_pins`` the S3 objects must be exactly the pinned versions (ModelTamperedError).
    """
    if not model.s3:
        assert model.path is not None
        yield model.path, {}
        return
    objects = _s3_list_latest(client, model)
    if check_pins and pins is not None:
        added = sorted(set(objects) - set(pins))
        removed = sorted(set(pins) - set(objects))
        overwritten = sorted(p for p in set(objects) & set(pins) if objects[p].version_id != pins[p])
        if added or removed or overwritten:
            parts, location = [], {"model": model.uri}
            if overwritten:
                parts.append(f"{len(overwritten)} object(s) overwritten since signing [{_listing(overwritten)}]")
                location["overwritten"] = overwritten[:50]
            if added:
                parts.append(f"{len(added)} object(s) added [{_listing(added)}]")
                location["added"] = added[:50]
            if removed:
                parts.append(f"{len(removed)} pinned object(s) missing [{_listing(removed)}]")
                location["removed"] = removed[:50]
            reason = "s3_version_changed" if overwritten and not (added or removed) else "s3_objects_changed"
            raise _tampered("S3 model differs from the object versions pinned at signing: " + "; ".join(parts),
                            reason, **location)
    unsafe = sorted(rel for rel in objects if not _safe_relative(rel))
    if unsafe:
        raise _tampered(f"S3 model has object keys that are not plain relative paths: {_listing(unsafe)}",
                        "unsafe_object_key", model=model.uri)
    if not objects:
        raise InputDataError(f"no objects under the S3 model prefix: {model.uri}")
    with tempfile.TemporaryDirectory(prefix="aisec-model-") as tmp:
        root = Path(tmp) / (model.name or "model")
        root.mkdir()
        for rel, obj in sorted(objects.items()):
            _s3_download(client, model.bucket, obj, root.joinpath(*rel.split("/")))
        yield root, objects


def sign_model(
    model: str | os.PathLike[str],
    *,
    policy: SigningPolicy | None = None,
    signature: str | os.PathLike[str] | None = None,
    private_key: str | os.PathLike[str] | None = None,
    private_key_password: bytes | None = None,
    transit_key: str | None = None,
    transit_mount: str = "transit",
    transit_key_version: int | None = None,
    vault_client: Any = None,
    s3_client: Any = None,
) -> CheckOutcome:
    """Sign a model directory (local or ``s3://``) with a local PEM key or a Vault Transit key.

    Args:
        model: Model directory or ``s3://bucket/prefix/``.
        policy: Hashing parameters and S3 rules (defaults: sha256, files, no symlinks).
        signature: Where to write the signature; default ``<model>.sig`` next to the model.
        private_key: Local PEM EC private key (exclusive with ``transit_key``).
        private_key_password: Password of an encrypted private key.
        transit_key: Vault Transit key name (``ecdsa-p256``).
        transit_mount: Transit mount path.
        transit_key_version: Key version to sign with; default the latest.
        vault_client: ``hvac.Client`` for Transit signing.
        s3_client: boto3 S3 client for ``s3://`` locations (default from the AWS environment).

    Returns:
        Outcome with value-free metrics (digest, key fingerprint, files, signature location).

    Raises:
        ConfigurationError: no or two keys, unusable key, signature inside the model.
        InputDataError: model missing or unsignable (escaping symlinks, no files, unversioned bucket).
        ServiceUnavailableError / AccessDeniedError: Vault or S3.
    """
    from airflow_aisec.core import _model_signing_compat as compat

    started = time.perf_counter()
    policy = policy or SigningPolicy()
    if bool(private_key) == bool(transit_key):
        raise ConfigurationError("sign with exactly one key: a local private key or a Transit key")
    loc = _model_location(model)
    sig = _file_location(str(signature) if signature else default_signature_uri(model))
    if _signature_inside_model(loc, sig):
        raise ConfigurationError(f"the signature must be stored outside the model directory: {sig.uri}")
    client = s3_client if s3_client is not None else (make_s3_client() if (loc.s3 or sig.s3) else None)

    metrics: dict[str, Any] = {}
    if private_key:
        key = load_private_key(private_key, private_key_password)
        public = key.public_key()
        del key
        signer = compat.make_key_signer(str(private_key), private_key_password)
        trusted = policy.trusted_fingerprint(key_fingerprint(public))
        metrics["key"] = "pem"
    else:
        if vault_client is None:
            raise ConfigurationError("signing with a Transit key needs a Vault client")
        tk = read_transit_key(vault_client, transit_key, transit_mount)  # type: ignore[arg-type]
        version = transit_key_version or tk.latest_version
        if version not in tk.public_keys:
            raise ConfigurationError(f"Transit key '{tk.name}' has no version {version}")
        public = tk.public_keys[version]
        signer = compat.make_digest_signer(
            lambda digest: transit_sign_digest(vault_client, tk.name, tk.mount, version, digest), public
        )
        ref = policy.trusted_transit(tk.name, tk.mount)
        trusted = ref if ref and ref.transit and version in ref.transit.versions else None
        metrics.update({"key": "transit", "transit_key": tk.name, "transit_mount": tk.mount,
                        "transit_key_version": version})
    metrics["key_fingerprint"] = key_fingerprint(public)
    metrics["key_trusted_by_policy"] = trusted is not None
    if trusted is not None:
        metrics["trusted_key_id"] = trusted.id

    extra: dict[str, Any] | None = None
    if loc.s3 and policy.require_s3_versioning and not _s3_bucket_versioned(client, loc.bucket):
        raise InputDataError(
            f"bucket '{loc.bucket}' is not versioned: enable versioning so object versions can be pinned "
            "(or set signing.require_s3_versioning: false)"
        )
    with _materialized_model(loc, client, pins=None, check_pins=False) as (model_dir, objects):
        tree = _check_tree(model_dir, policy, signing=True)
        if loc.s3:
            extra = {AISEC_PREDICATE_KEY: {"s3": {
                "bucket": loc.bucket,
                "prefix": loc.key,
                "versions": {rel: obj.version_id for rel, obj in sorted(objects.items())},
            }}}
        manifest = build_hashing_config(policy).hash(model_dir)
        payload = compat.make_payload(manifest, extra)
        bundle_text = compat.sign_payload(signer, payload)
    data = bundle_text.encode("utf-8")
    sig_version = _write_signature(sig, data, client)
    root_digest = payload.statement.pb.subject[0].digest["sha256"]
    metrics.update({
        "files": tree.files,
        "bytes": tree.total_bytes,
        "hash_algorithm": policy.hashing.algorithm,
        "serialization": policy.hashing.serialization,
        "model_digest": root_digest,
        "signature": sig.uri,
        "signature_sha256": hashlib.sha256(data).hexdigest(),
        "seconds": round(time.perf_counter() - started, 3),
    })
    if loc.s3:
        metrics["s3_versions_pinned"] = len(objects)
    if sig_version:
        metrics["signature_version_id"] = sig_version
    return CheckOutcome(
        metrics=metrics,
        inputs=[InputRef(uri=loc.uri, sha256=root_digest),
                InputRef(uri=sig.uri, sha256=metrics["signature_sha256"])],
    )


def verify_model(
    model: str | os.PathLike[str],
    *,
    policy: SigningPolicy,
    signature: str | os.PathLike[str] | None = None,
    public_key: str | os.PathLike[str] | None = None,
    transit_key: str | None = None,
    transit_mount: str | None = None,
    vault_client: Any = None,
    s3_client: Any = None,
) -> CheckOutcome:
    """Verify a model (local or ``s3://``) against its signature and the policy's trusted keys.

    Args:
        model: Model directory or ``s3://bucket/prefix/``.
        policy: The ``signing`` policy section (trusted keys, hashing, tolerances).
        signature: Signature location; default ``<model>.sig`` next to the model.
        public_key: PEM public key the caller trusts (local path or ``s3://``); exclusive with
            ``transit_key``. The policy must list its fingerprint.
        transit_key: Transit key name the caller trusts; the policy must list it (with versions).
        transit_mount: Transit mount (default: the one the policy names for that key).
        vault_client: ``hvac.Client`` to read the Transit public keys.
        s3_client: boto3 S3 client for ``s3://`` locations.

    Returns:
        Outcome: no finding when verified (or unsigned and tolerated), a ``signing.unsigned``
        finding when the signature is missing.

    Raises:
        ModelTamperedError / UntrustedKeyError / MalformedSignatureError: verification failed.
        ConfigurationError / InputDataError: invalid arguments, model missing.
        ServiceUnavailableError / AccessDeniedError: Vault or S3.
    """
    from airflow_aisec.core import _model_signing_compat as compat

    started = time.perf_counter()
    if bool(public_key) == bool(transit_key):
        raise ConfigurationError("name exactly one key to verify with: a public key or a Transit key")
    loc = _model_location(model)
    sig = _file_location(str(signature) if signature else default_signature_uri(model))
    client = s3_client
    if client is None and (loc.s3 or sig.s3 or is_s3_uri(str(public_key or ""))):
        client = make_s3_client()

    if _signature_inside_model(loc, sig):
        raise _malformed(
            f"the signature file lies inside the model directory ({sig.uri}); signatures must be stored outside "
            "the model they sign",
            "signature_inside_model", signature=sig.uri,
        )
    if not loc.s3:
        assert loc.path is not None
        if not loc.path.is_dir():
            raise InputDataError(f"model directory not found: {loc.uri}")
    data, sig_version = _read_signature(sig, client, policy.max_signature_bytes)
    if data is None:
        metrics = {"signed": False, "signature": sig.uri}
        if policy.allow_unsigned:
            return CheckOutcome(metrics=metrics, inputs=[InputRef(uri=loc.uri)])
        return CheckOutcome(
            findings=[Finding(rule=RULE_UNSIGNED, severity=Severity.CRITICAL, count=1,
                              message=f"model has no signature (looked for {sig.uri})",
                              location={"model": loc.uri, "signature": sig.uri})],
            metrics=metrics,
            inputs=[InputRef(uri=loc.uri)],
        )

    candidates, others = _trusted_candidates(
        policy, public_key=str(public_key) if public_key else None, transit_key=transit_key,
        transit_mount=transit_mount, vault_client=vault_client, s3_client=client,
    )
    bundle = parse_bundle(data)
    signer = _authenticate(bundle, candidates, others)
    statement = _validate_statement(bundle, policy)

    pins = statement.s3_versions
    if loc.s3:
        if pins is None and policy.require_s3_versioning:
            raise _malformed("the model is on S3 but its signature pins no object versions; re-sign it from S3",
                             "no_s3_pins", model=loc.uri)
        if policy.require_s3_versioning and not _s3_bucket_versioned(client, loc.bucket):
            raise InputDataError(f"bucket '{loc.bucket}' is not versioned; pinned versions cannot be checked")

    with _materialized_model(loc, client, pins=pins, check_pins=loc.s3) as (model_dir, objects):
        tree = _check_tree(model_dir, policy, signing=False)
        _library_verify(model_dir, bundle_bytes=data, public_key=signer.public_key, policy=policy,
                        statement=statement, model_uri=loc.uri)

    metrics: dict[str, Any] = {
        "signed": True,
        "verified": True,
        "trusted_key_id": signer.trusted_id,
        "key": signer.description,
        "key_fingerprint": signer.fingerprint,
        "files": tree.files,
        "bytes": tree.total_bytes,
        "signed_entries": len(statement.items),
        "hash_algorithm": policy.hashing.algorithm,
        "serialization": statement.method,
        "model_digest": statement.root_digest,
        "signed_model_name": statement.model_name,
        "signature": sig.uri,
        "signature_sha256": bundle.sha256,
        "library": f"model-signing {compat.library_version()}",
        "seconds": round(time.perf_counter() - started, 3),
    }
    if signer.transit_version is not None:
        metrics["transit_key_version"] = signer.transit_version
    if loc.s3:
        metrics["s3_versions_checked"] = len(objects)
    if sig_version:
        metrics["signature_version_id"] = sig_version
    return CheckOutcome(
        metrics=metrics,
        inputs=[InputRef(uri=loc.uri, sha256=statement.root_digest), InputRef(uri=sig.uri, sha256=bundle.sha256)],
    )


def _library_verify(
    model_dir: Path,
    *,
    bundle_bytes: bytes,
    public_key: Any,
    policy: SigningPolicy,
    statement: SignedStatement,
    model_uri: str,
) -> None:
    """Run model-signing's verification with a fresh configuration on exactly the bytes checked above."""
    from cryptography.exceptions import InvalidSignature

    from airflow_aisec.core import _model_signing_compat as compat

    ms = compat.import_model_signing()
    with tempfile.TemporaryDirectory(prefix="aisec-verify-") as tmp:
        # The library re-reads both files: hand it private copies of what was validated, outside the model.
        sig_path = Path(tmp) / "model.sig"
        key_path = Path(tmp) / "key.pub"
        sig_path.write_bytes(bundle_bytes)
        key_path.write_bytes(public_key_pem(public_key))
        config = (
            ms.verifying.Config()
            .use_elliptic_key_verifier(public_key=key_path)
            .set_hashing_config(build_hashing_config(policy))
            .set_ignore_unsigned_files(policy.allow_unsigned_files)
        )
        try:
            config.verify(model_dir, sig_path)
        except (ValueError, KeyError, TypeError, FileNotFoundError, InvalidSignature) as exc:
            failure = type(exc).__name__
        else:
            return
    tampered = _describe_tampering(model_dir, statement, policy, model_uri)
    if tampered is not None:
        raise tampered
    raise SignatureVerificationError(
        f"model-signing rejected the model ({failure}) although its content matches the signed manifest",
        rule=RULE_FAILED,
        location={"reason": "library_rejected", "model": model_uri},
    )
