"""Signature bundles: decode one enough to authenticate it, then validate its signed statement.

Everything is checked before the library sees it: a single-signature DSSE bundle of
model-signing, every manifest path a plain relative path (model-signing #647), hashing
parameters equal to the policy's (never guessed), no signed ``ignore_paths`` beyond git metadata
(one ``.`` entry would exclude the whole model), a root digest consistent with the file digests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from airflow_aisec.core.gates.signing import _model_signing_compat as compat
from airflow_aisec.core.gates.signing._errors import listing, malformed
from airflow_aisec.core.gates.signing._hashing import MANIFEST_HASH_NAME
from airflow_aisec.core.gates.signing._s3 import AISEC_PREDICATE_KEY
from airflow_aisec.core.gates.signing._tree import GIT_PATHS, manifest_path_ok
from airflow_aisec.core.io.json_input import loads_json
from airflow_aisec.core.io.storage import is_plain_relative_path
from airflow_aisec.core.policy.sections.signing import SigningPolicy

_IN_TOTO_STATEMENT = "https://in-toto.io/Statement/v1"
_LEGACY_PREDICATE = "https://model_signing/Digests/v0.1"
_DIGEST_HEX_LEN = {"sha256": 64, "blake2b": 128, "blake3": 64}
_HEX_RE = re.compile(r"^[0-9a-f]+$")


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
    if not data.strip():
        raise malformed("signature file is empty", "empty")
    try:
        doc = loads_json(data.decode("utf-8"))
    except ValueError:
        raise malformed("signature is not a JSON sigstore bundle", "not_json") from None
    if not isinstance(doc, dict):
        raise malformed("signature is not a JSON object", "not_json")
    media = doc.get("mediaType")
    if media != compat.bundle_media_type():
        raise malformed(f"signature bundle has media type {str(media)[:80]!r}, expected sigstore bundle v0.3",
                        "media_type")
    envelope = doc.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise malformed("signature bundle has no DSSE envelope", "no_envelope")
    if envelope.get("payloadType") != compat.payload_type():
        raise malformed("DSSE payload is not an in-toto statement", "payload_type")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], dict):
        raise malformed("DSSE envelope must carry exactly one signature", "signature_count")
    try:
        raw_payload = base64.b64decode(str(envelope.get("payload", "")), validate=True)
        signature = base64.b64decode(str(signatures[0].get("sig", "")), validate=True)
    except (binascii.Error, ValueError):
        raise malformed("DSSE payload or signature is not valid base64", "base64") from None
    if not raw_payload or not signature:
        raise malformed("DSSE payload or signature is empty", "empty")
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise malformed("signature bundle has no verification material", "no_material")
    public_key = material.get("publicKey")
    if not isinstance(public_key, dict):
        raise malformed("signature bundle is not key-based (no publicKey in the verification material)",
                        "not_key_based")
    hint = public_key.get("hint")
    if hint is not None and (not isinstance(hint, str) or not re.fullmatch(r"[0-9a-f]{64}", hint)):
        raise malformed("signature bundle has an invalid public-key hint", "hint")
    return ParsedBundle(raw_payload=raw_payload, signature=signature, hint=hint,
                        sha256=hashlib.sha256(data).hexdigest())


def validate_statement(bundle: ParsedBundle, policy: SigningPolicy) -> SignedStatement:
    """Validate the (already authenticated) statement: shape, paths, consistency, policy match.

    Raises:
        MalformedSignatureError: for every defect, with ``location.reason``.
    """
    try:
        statement = loads_json(bundle.raw_payload.decode("utf-8"))
    except ValueError:
        raise malformed("signed payload is not JSON", "payload_json") from None
    if not isinstance(statement, dict) or statement.get("_type") != _IN_TOTO_STATEMENT:
        raise malformed("signed payload is not an in-toto v1 statement", "statement_type")
    predicate_type = statement.get("predicateType")
    if predicate_type == _LEGACY_PREDICATE:
        raise malformed("signature uses the legacy v0.1 model-signing predicate (no root digest, no "
                        "serialization record); re-sign the model", "legacy_predicate")
    if predicate_type != compat.predicate_type():
        raise malformed(f"unexpected predicate type {str(predicate_type)[:80]!r}", "predicate_type")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise malformed("statement must have exactly one subject", "subject")
    subject = subjects[0]
    root_digest = (subject.get("digest") or {}).get("sha256") if isinstance(subject.get("digest"), dict) else None
    if not isinstance(root_digest, str) or not re.fullmatch(r"[0-9a-f]{64}", root_digest):
        raise malformed("statement subject has no sha256 digest", "subject")
    model_name = str(subject.get("name", ""))[:200]
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise malformed("statement has no predicate", "predicate")
    serialization = predicate.get("serialization")
    resources = predicate.get("resources")
    if not isinstance(serialization, dict) or not isinstance(resources, list):
        raise malformed("predicate lacks serialization or resources", "predicate")

    method = serialization.get("method")
    hash_type = serialization.get("hash_type")
    shard_size: int | None = None
    if method == "shards":
        raw_size = serialization.get("shard_size")
        # protobuf Struct turns the integer into a float (1e9): accept integral numbers only.
        if not isinstance(raw_size, (int, float)) or isinstance(raw_size, bool) or raw_size <= 0 \
                or float(raw_size) != int(raw_size):
            raise malformed("shard serialization without a valid shard_size", "serialization")
        shard_size = int(raw_size)
    elif method != "files":
        raise malformed(f"unknown serialization method {str(method)[:40]!r}", "serialization")
    hp = policy.hashing
    if method != hp.serialization or hash_type != MANIFEST_HASH_NAME[hp.algorithm] or (
        shard_size is not None and shard_size != hp.shard_size
    ):
        signed = f"{hash_type}/{method}" + (f"/{shard_size}" if shard_size else "")
        wanted = f"{MANIFEST_HASH_NAME[hp.algorithm]}/{hp.serialization}" + (f"/{hp.shard_size}" if hp.serialization == "shards" else "")
        raise malformed(f"signature was made with hashing {signed[:80]} but the policy requires {wanted}",
                        "hashing_mismatch", signed=signed[:80], required=wanted)

    ignore_paths = serialization.get("ignore_paths") or []
    if not isinstance(ignore_paths, list) or not all(isinstance(p, str) for p in ignore_paths):
        raise malformed("serialization ignore_paths is not a list of paths", "ignore_paths")
    allowed_ignores = GIT_PATHS if policy.ignore_git_paths else frozenset()
    bad_ignores = sorted({p for p in ignore_paths if p.rstrip("/") not in allowed_ignores})
    if bad_ignores:
        raise malformed(
            f"signature excludes {len(bad_ignores)} path(s) from the model that the policy does not allow to be "
            f"excluded: {listing([p[:100] for p in bad_ignores])}",
            "ignore_paths",
            paths=[p[:200] for p in bad_ignores[:20]],
        )

    if not resources:
        raise malformed("signature covers no files", "empty_manifest")
    items: dict[str, str] = {}
    digest_len = _DIGEST_HEX_LEN.get(str(hash_type))
    root = hashlib.sha256()
    for resource in resources:
        if not isinstance(resource, dict):
            raise malformed("manifest entry is not an object", "resource")
        name, algorithm, digest = resource.get("name"), resource.get("algorithm"), resource.get("digest")
        if not isinstance(name, str) or not isinstance(digest, str):
            raise malformed("manifest entry without name or digest", "resource")
        path = name
        if method == "shards":
            parts = name.rsplit(":", 2)
            if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit() \
                    or int(parts[1]) >= int(parts[2]) or int(parts[2]) - int(parts[1]) > (shard_size or 0):
                raise malformed(f"manifest shard entry {name[:100]!r} is not 'path:start:end'", "resource")
            path = parts[0]
        if not manifest_path_ok(path, method):
            traversal = path.startswith("/") or ".." in path.replace("\\", "/").split("/")
            raise malformed(
                f"manifest path {path[:100]!r} "
                + ("escapes the model directory" if traversal else "is not a plain relative path"),
                "path_traversal" if traversal else "bad_path",
                path=path[:200],
            )
        expected_algorithm = hash_type if method == "files" else f"{hash_type}-sharded-{shard_size}"
        if algorithm != expected_algorithm:
            raise malformed(f"manifest entry {name[:100]!r} uses {str(algorithm)[:40]}, not {expected_algorithm}",
                            "resource")
        if not _HEX_RE.match(digest) or (digest_len and len(digest) != digest_len):
            raise malformed(f"manifest entry {name[:100]!r} has an invalid digest", "resource")
        if name in items:
            raise malformed(f"manifest lists {name[:100]!r} twice", "duplicate")
        items[name] = digest
        root.update(bytes.fromhex(digest))
    if root.hexdigest() != root_digest:
        raise malformed("statement is inconsistent: its root digest does not match its file digests",
                        "inconsistent")

    s3_versions: dict[str, str] | None = None
    extension = predicate.get(AISEC_PREDICATE_KEY)
    if extension is not None:
        s3 = extension.get("s3") if isinstance(extension, dict) else None
        versions = s3.get("versions") if isinstance(s3, dict) else None
        if not isinstance(versions, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and is_plain_relative_path(k) for k, v in versions.items()
        ):
            raise malformed("the aisec S3 version pins in the statement are malformed", "s3_pins")
        s3_versions = dict(versions)
    return SignedStatement(model_name=model_name, root_digest=root_digest, method=str(method),
                           hash_type=str(hash_type), shard_size=shard_size, ignore_paths=list(ignore_paths),
                           items=items, s3_versions=s3_versions)
