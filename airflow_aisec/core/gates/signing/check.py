"""Entry points of the signing gate: :func:`sign_model` and :func:`verify_model`.

Signatures are sigstore bundles (v0.3 JSON) holding a DSSE envelope over an in-toto statement of
per-file (or per-shard) digests, produced through the ``model-signing`` library, so the stock
``model_signing verify key`` CLI verifies them and this gate verifies the CLI's signatures.

Verification fails with a distinct exception per cause (all ``SecurityViolationError``: a
critical, never-waived finding):

* :class:`~airflow_aisec.exceptions.ModelTamperedError` (rule ``signing.tampered``): bytes
  changed, files added/removed/renamed, a signature of another model, a symlink leaving the
  model directory, an S3 object overwritten after signing;
* :class:`~airflow_aisec.exceptions.UntrustedKeyError` (``signing.untrusted_key``): signed by
  a key the policy does not trust, or the caller named a key the policy does not trust;
* :class:`~airflow_aisec.exceptions.MalformedSignatureError` (``signing.malformed``): bundle
  unparsable, not self-consistent, altered after signing, a ``../`` path in the manifest,
  hashing parameters other than the policy's, the signature file inside the model directory.

A missing signature is the finding ``signing.unsigned`` unless the policy allows unsigned models.
Vault (Transit keys) is reached only through the injected
:class:`~airflow_aisec.core.io.vault.VaultClient`: an outage is a retryable
:class:`~airflow_aisec.exceptions.ServiceUnavailableError`, as in every gate.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.signing import _model_signing_compat as compat
from airflow_aisec.core.gates.signing._bundle import parse_bundle, validate_statement
from airflow_aisec.core.gates.signing._errors import RULE_UNSIGNED, malformed
from airflow_aisec.core.gates.signing._hashing import build_hashing_config
from airflow_aisec.core.gates.signing._keys import key_fingerprint, load_private_key
from airflow_aisec.core.gates.signing._locations import (
    default_signature_uri,
    file_location,
    model_location,
    read_signature,
    signature_inside_model,
    write_signature,
)
from airflow_aisec.core.gates.signing._provenance import (
    RULE_PROVENANCE_DATASET,
    ProvenanceRequest,
    build_statement,
    dataset_dependencies,
    default_provenance_uri,
    digest_pae_signer,
    missing_finding,
    pem_pae_signer,
    read_provenance,
    sign_statement,
    verify_statement,
)
from airflow_aisec.core.gates.signing._s3 import bucket_versioned, materialized_model, pins_predicate
from airflow_aisec.core.gates.signing._signers import PemKeySigner, Signer, TransitSigner
from airflow_aisec.core.gates.signing._tamper import library_verify
from airflow_aisec.core.gates.signing._tree import check_tree
from airflow_aisec.core.gates.signing._verifiers import (
    PemKeyVerifier,
    TransitVerifier,
    Verifier,
    authenticate,
)
from airflow_aisec.core.io.storage import is_s3_uri, make_s3_client
from airflow_aisec.core.outputs import earlier_output
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.signing import SigningPolicy
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef, utcnow
from airflow_aisec.exceptions import (
    ConfigurationError,
    InputDataError,
    MalformedSignatureError,
    SecurityViolationError,
)

if TYPE_CHECKING:
    from airflow_aisec.core.evidence import EvidenceStore
    from airflow_aisec.core.io.vault import VaultClient


def _signer(
    *,
    private_key: str | os.PathLike[str] | None,
    private_key_password: bytes | None,
    transit_key: str | None,
    transit_mount: str,
    transit_key_version: int | None,
    vault: VaultClient | None,
) -> Signer:
    if private_key:
        return PemKeySigner(private_key, private_key_password)
    if vault is None:
        raise ConfigurationError("signing with a Transit key needs a Vault client")
    return TransitSigner(vault, str(transit_key), mount=transit_mount, version=transit_key_version)


def sign_model(
    section: SigningPolicy | None,
    model: str | os.PathLike[str],
    *,
    signature: str | os.PathLike[str] | None = None,
    private_key: str | os.PathLike[str] | None = None,
    private_key_password: bytes | None = None,
    transit_key: str | None = None,
    transit_mount: str = "transit",
    transit_key_version: int | None = None,
    vault: VaultClient | None = None,
    s3_client: Any = None,
    provenance: ProvenanceRequest | None = None,
) -> CheckOutcome:
    """Sign a model directory (local or ``s3://``) with a local PEM key or a Vault Transit key.

    Args:
        section: The ``signing`` policy section: hashing parameters and S3 rules (None: the
            defaults, sha256 per file, no symlinks).
        model: Model directory or ``s3://bucket/prefix/``.
        signature: Where to write the signature; default ``<model>.sig`` next to the model.
        private_key: Local PEM EC private key (exclusive with ``transit_key``).
        private_key_password: Password of an encrypted private key.
        transit_key: Vault Transit key name (``ecdsa-p256``).
        transit_mount: Transit mount path.
        transit_key_version: Key version to sign with; default the latest.
        vault: Vault client for Transit signing.
        s3_client: boto3 S3 client for ``s3://`` locations (default from the AWS environment).
        provenance: Also write a signed provenance statement (datasets, DAG, run, training
            parameters) next to the signature; see :mod:`._provenance`.

    Returns:
        Outcome with value-free metrics (digest, key fingerprint, files, signature location).

    Raises:
        ConfigurationError: no or two keys, unusable key, signature inside the model.
        InputDataError: model missing or unsignable (escaping symlinks, no files, unversioned bucket).
        SecurityViolationError: ``signing.provenance_dataset``: a dataset is not vetted and
            ``provenance.require_vetted`` (nothing is signed).
        ServiceUnavailableError / AccessDeniedError: Vault or S3.
    """
    started_on = utcnow()
    started = time.perf_counter()
    policy = section or SigningPolicy()
    if bool(private_key) == bool(transit_key):
        raise ConfigurationError("sign with exactly one key: a local private key or a Transit key")
    loc = model_location(model)
    sig = file_location(str(signature) if signature else default_signature_uri(model))
    if signature_inside_model(loc, sig):
        raise ConfigurationError(f"the signature must be stored outside the model directory: {sig.uri}")
    prov = None
    if provenance is not None:
        prov = file_location(provenance.location or default_provenance_uri(sig.uri))
        if signature_inside_model(loc, prov):
            raise ConfigurationError(f"the provenance must be stored outside the model directory: {prov.uri}")
    client = s3_client if s3_client is not None else (
        make_s3_client() if (loc.s3 or sig.s3 or (prov is not None and prov.s3)) else None)
    datasets: list[dict[str, Any]] = []
    if provenance is not None:
        datasets, problems = dataset_dependencies(provenance)
        if problems and provenance.require_vetted:
            raise SecurityViolationError(
                f"refusing to sign: {len(problems)} training dataset(s) without passing source and PII gate records: "
                + "; ".join(problems[:5]), rule=RULE_PROVENANCE_DATASET, location={"datasets": len(problems)})

    signer = _signer(private_key=private_key, private_key_password=private_key_password, transit_key=transit_key,
                     transit_mount=transit_mount, transit_key_version=transit_key_version, vault=vault)
    trusted = signer.trusted_by(policy)
    metrics: dict[str, Any] = signer.metrics()
    metrics["key_fingerprint"] = key_fingerprint(signer.public_key)
    metrics["key_trusted_by_policy"] = trusted is not None
    if trusted is not None:
        metrics["trusted_key_id"] = trusted.id

    if loc.s3 and policy.require_s3_versioning and not bucket_versioned(client, loc.bucket):
        raise InputDataError(
            f"bucket '{loc.bucket}' is not versioned: enable versioning so object versions can be pinned "
            "(or set signing.require_s3_versioning: false)"
        )
    earlier = earlier_output(sig.uri)
    with materialized_model(loc, client, pins=None, check_pins=False) as (model_dir, objects):
        tree = check_tree(model_dir, policy, signing=True)
        if isinstance(earlier, bytes):
            data, root_digest = earlier, _countersigned(earlier, policy)
        else:
            extra = pins_predicate(loc, objects) if loc.s3 else None
            manifest = build_hashing_config(policy).hash(model_dir)
            payload = compat.make_payload(manifest, extra)
            data = signer.sign(payload).encode("utf-8")
            root_digest = payload.statement.pb.subject[0].digest["sha256"]
    sig_version = write_signature(sig, data, client)
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
    inputs = [InputRef(uri=loc.uri, sha256=root_digest), InputRef(uri=sig.uri, sha256=metrics["signature_sha256"])]
    earlier_prov = earlier_output(prov.uri) if prov is not None else None
    if prov is not None and isinstance(earlier_prov, bytes):  # passed on with the signature it names
        write_signature(prov, earlier_prov, client)
        metrics.update({"provenance": prov.uri, "provenance_sha256": hashlib.sha256(earlier_prov).hexdigest(),
                        "provenance_datasets": len(datasets)})
        inputs += [InputRef(uri=d["uri"], sha256=d["digest"]["sha256"]) for d in datasets]
        inputs.append(InputRef(uri=prov.uri, sha256=metrics["provenance_sha256"]))
    elif provenance is not None and prov is not None:
        statement = build_statement(provenance, model_name=loc.name, model_digest=root_digest, model_uri=loc.uri,
                                    signature_sha256=metrics["signature_sha256"], datasets=datasets,
                                    started_on=started_on)
        if private_key:
            sign_pae = pem_pae_signer(load_private_key(private_key, private_key_password))
        else:
            assert isinstance(signer, TransitSigner)
            sign_pae = digest_pae_signer(signer._sign_digest)
        envelope = sign_statement(statement, sign_pae, signer.public_key)
        del sign_pae
        write_signature(prov, envelope, client)
        metrics.update({"provenance": prov.uri, "provenance_sha256": hashlib.sha256(envelope).hexdigest(),
                        "provenance_datasets": len(datasets)})
        inputs += [InputRef(uri=d["uri"], sha256=d["digest"]["sha256"]) for d in datasets]
        inputs.append(InputRef(uri=prov.uri, sha256=metrics["provenance_sha256"]))
    metrics["seconds"] = round(time.perf_counter() - started, 3)
    return CheckOutcome(metrics=metrics, inputs=inputs)


def _countersigned(data: bytes, policy: SigningPolicy) -> str:
    """The root digest of a signature an earlier layer of this run made, which must meet this policy's
    hashing rules too: one signature serves both policies, and a conflict is a configuration error.

    Raises:
        ConfigurationError: the signature does not meet this policy's rules.
    """
    try:
        return validate_statement(parse_bundle(data), policy).root_digest
    except MalformedSignatureError as exc:
        raise ConfigurationError(
            f"the policy and the baseline ask for signatures no one signature can meet: {exc}") from None


def verify_model(
    section: SigningPolicy,
    model: str | os.PathLike[str],
    *,
    signature: str | os.PathLike[str] | None = None,
    public_key: str | os.PathLike[str] | None = None,
    transit_key: str | None = None,
    transit_mount: str | None = None,
    vault: VaultClient | None = None,
    s3_client: Any = None,
    require_provenance: bool = False,
    provenance: str | os.PathLike[str] | None = None,
    evidence: EvidenceStore | None = None,
) -> CheckOutcome:
    """Verify a model (local or ``s3://``) against its signature and the policy's trusted keys.

    Args:
        section: The ``signing`` policy section (trusted keys, hashing, tolerances).
        model: Model directory or ``s3://bucket/prefix/``.
        signature: Signature location; default ``<model>.sig`` next to the model.
        public_key: PEM public key the caller trusts (local path or ``s3://``); exclusive with
            ``transit_key``. The policy must list its fingerprint.
        transit_key: Transit key name the caller trusts; the policy must list it (with versions).
        transit_mount: Transit mount (default: the one the policy names for that key).
        vault: Vault client to read the Transit public keys.
        s3_client: boto3 S3 client for ``s3://`` locations.
        require_provenance: Also require the signed provenance (as ``signing.require_provenance``).
        provenance: Provenance location; default ``<model>.provenance.json`` next to the signature.
        evidence: The audit trail holding the datasets' source and PII records.

    Returns:
        Outcome: no finding when verified (or unsigned and tolerated), a ``signing.unsigned``
        finding when the signature is missing; with provenance required, ``signing.provenance_missing``
        or one ``signing.provenance_dataset`` per unvetted dataset.

    Raises:
        ModelTamperedError / UntrustedKeyError / MalformedSignatureError: verification failed.
        SecurityViolationError: ``signing.provenance_signature`` / ``signing.provenance_digest``.
        ConfigurationError / InputDataError: invalid arguments, model missing, malformed provenance.
        ServiceUnavailableError / AccessDeniedError: Vault or S3.
    """
    started = time.perf_counter()
    policy = section
    if bool(public_key) == bool(transit_key):
        raise ConfigurationError("name exactly one key to verify with: a public key or a Transit key")
    loc = model_location(model)
    sig = file_location(str(signature) if signature else default_signature_uri(model))
    client = s3_client
    if client is None and (loc.s3 or sig.s3 or is_s3_uri(str(public_key or ""))):
        client = make_s3_client()

    if signature_inside_model(loc, sig):
        raise malformed(
            f"the signature file lies inside the model directory ({sig.uri}); signatures must be stored outside "
            "the model they sign",
            "signature_inside_model", signature=sig.uri,
        )
    if not loc.s3:
        assert loc.path is not None
        if not loc.path.is_dir():
            raise InputDataError(f"model directory not found: {loc.uri}")
    data, sig_version = read_signature(sig, client, policy.max_signature_bytes)
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

    verifier: Verifier = (PemKeyVerifier(str(public_key), s3_client=client) if public_key
                          else TransitVerifier(vault, str(transit_key), mount=transit_mount))
    candidates, others = verifier.candidates(policy)
    bundle = parse_bundle(data)
    signer = authenticate(bundle, candidates, others)
    statement = validate_statement(bundle, policy)

    pins = statement.s3_versions
    if loc.s3:
        if pins is None and policy.require_s3_versioning:
            raise malformed("the model is on S3 but its signature pins no object versions; re-sign it from S3",
                            "no_s3_pins", model=loc.uri)
        if policy.require_s3_versioning and not bucket_versioned(client, loc.bucket):
            raise InputDataError(f"bucket '{loc.bucket}' is not versioned; pinned versions cannot be checked")

    with materialized_model(loc, client, pins=pins, check_pins=loc.s3) as (model_dir, objects):
        tree = check_tree(model_dir, policy, signing=False)
        library_verify(model_dir, bundle_bytes=data, public_key=signer.public_key, policy=policy,
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
    inputs = [InputRef(uri=loc.uri, sha256=statement.root_digest), InputRef(uri=sig.uri, sha256=bundle.sha256)]
    findings: list[Finding] = []
    if require_provenance or policy.require_provenance:
        prov = file_location(str(provenance) if provenance else default_provenance_uri(sig.uri))
        prov_data = read_provenance(prov, client, policy.max_provenance_bytes)
        if prov_data is None:
            findings.append(missing_finding(prov.uri))
        else:
            findings, prov_metrics = verify_statement(prov_data, prov.uri, public_key=signer.public_key,
                                                      model_digest=statement.root_digest, evidence=evidence)
            metrics.update(prov_metrics)
            inputs.append(InputRef(uri=prov.uri, sha256=prov_metrics["provenance_sha256"]))
        metrics["provenance_verified"] = not findings
    metrics["seconds"] = round(time.perf_counter() - started, 3)
    return CheckOutcome(findings=findings, metrics=metrics, inputs=inputs)


def model_bom(
    model: str | os.PathLike[str],
    *,
    signature: str | os.PathLike[str] | None = None,
    provenance: str | os.PathLike[str] | None = None,
    max_bytes: int = 16 * 1024 * 1024,
    s3_client: Any = None,
) -> dict[str, Any]:
    """A CycloneDX 1.6 ML-BOM of a model from its provenance statement (see :mod:`._bom`).

    Raises:
        InputDataError: no provenance statement, or a malformed or too large one.
    """
    from airflow_aisec.core.gates.signing._bom import build_bom, validate_bom

    loc = model_location(model)
    sig_uri = str(signature) if signature else default_signature_uri(model)
    prov = file_location(str(provenance) if provenance else default_provenance_uri(sig_uri))
    client = s3_client if s3_client is not None or not prov.s3 else make_s3_client()
    data = read_provenance(prov, client, max_bytes)
    if data is None:
        raise InputDataError(f"{prov.uri}: no provenance statement (sign the model with provenance first)")
    doc = build_bom(data, prov.uri, model_dir=None if loc.s3 else loc.path)
    error = validate_bom(doc)
    if error:
        raise InputDataError(f"{prov.uri}: the ML-BOM built from it is not valid CycloneDX 1.6: {error}")
    return doc
