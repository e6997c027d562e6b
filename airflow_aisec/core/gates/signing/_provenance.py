"""Signed provenance: an in-toto statement binding a signed model to the vetted data and code behind it.

The statement (in-toto Statement v1, SLSA provenance v1 predicate) names the model by its
model-signing root digest and records, as ``resolvedDependencies``, every training dataset
(sha256 of its bytes, with the audit-trail records of its latest source and PII gate results)
and the DAG file (sha256, git commit when the file lies in a git work tree). External parameters
hold the DAG and task ids, the run id and the training parameters given to the operator.

It is a DSSE envelope (``application/vnd.in-toto+json``, PAE as in model-signing bundles) signed
by the key that signs the model (PEM or Vault Transit), and lives next to the model signature:
``<model>.provenance.json`` for ``<model>.sig``. Verification (:func:`verify_provenance`) checks
the signature with the key that verified the model, the subject digest against the verified
model, and each dataset against the trail as it is now (a later failing record counts).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.signing import _model_signing_compat as compat
from airflow_aisec.core.io.json_input import loads_json
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.result import Finding, utcnow
from airflow_aisec.exceptions import ConfigurationError, InputDataError, SecurityViolationError

if TYPE_CHECKING:
    from airflow_aisec.core.evidence import EvidenceStore

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
#: Our build type: a model trained and signed by an airflow-aisec pipeline (fields documented above).
BUILD_TYPE = "urn:airflow-aisec:model-training:v1"
BUILDER_ID = "urn:airflow-aisec:signing-gate"
PROVENANCE_SUFFIX = ".provenance.json"

RULE_PROVENANCE_MISSING = "signing.provenance_missing"
RULE_PROVENANCE_SIGNATURE = "signing.provenance_signature"
RULE_PROVENANCE_DIGEST = "signing.provenance_digest"
RULE_PROVENANCE_DATASET = "signing.provenance_dataset"

MAX_TRAINING_PARAMETER_BYTES = 64 * 1024
_MAX_GIT_BYTES = 64 * 1024
_MAX_DATASETS = 1000


@dataclass(frozen=True)
class DatasetRef:
    """A training dataset: where it was read and the sha256 of its bytes."""

    uri: str
    sha256: str


@dataclass
class ProvenanceRequest:
    """What a signing run records about the model it signs.

    Attributes:
        datasets: Training datasets (each must have passing source and PII records when
            ``require_vetted``).
        evidence: The audit trail holding the datasets' gate records (None: none recorded).
        require_vetted: Refuse (``signing.provenance_dataset``) a dataset that is not vetted.
        dag: ``{"dag_id", "file", "sha256", "git_commit"}`` of the DAG (None outside a DAG).
        run_id / task_id: The Airflow run and task that signed.
        training_parameters: JSON parameters given to the operator (no secrets: they are signed and kept).
        location: Where to write the statement (default next to the signature).
    """

    datasets: list[DatasetRef] = field(default_factory=list)
    evidence: EvidenceStore | None = None
    require_vetted: bool = False
    dag: dict[str, Any] | None = None
    run_id: str | None = None
    task_id: str | None = None
    training_parameters: dict[str, Any] = field(default_factory=dict)
    location: str | None = None


def default_provenance_uri(signature_uri: str) -> str:
    """``<model>.provenance.json`` next to ``<model>.sig`` (else the signature name plus the suffix)."""
    base = signature_uri.removesuffix(".sig")
    return base + PROVENANCE_SUFFIX


def dataset_ref(path: str | os.PathLike[str]) -> DatasetRef:
    """A local dataset file and its sha256 (what the source and PII gates record).

    Raises:
        InputDataError: not a readable regular file.
    """
    from airflow_aisec.core.io.files import open_user_file

    digest = hashlib.sha256()
    with open_user_file(path, "dataset") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return DatasetRef(uri=str(path), sha256=digest.hexdigest())


def git_commit(path: str | os.PathLike[str]) -> str | None:
    """The commit checked out in the git work tree holding ``path`` (read from ``.git``, no process)."""
    from airflow_aisec.core.io.files import read_user_file

    def read(p: Path) -> str | None:
        try:
            return read_user_file(p, limit=_MAX_GIT_BYTES, what="git metadata").decode("utf-8", "replace").strip()
        except (InputDataError, OSError):
            return None

    for parent in Path(os.path.abspath(path)).parents:
        git = parent / ".git"
        if not git.is_dir():
            continue
        head = read(git / "HEAD")
        if head is None:
            return None
        if not head.startswith("ref: "):
            return head if _is_commit(head) else None
        ref = head[5:].strip()
        if ".." in ref.split("/"):
            return None
        direct = read(git / ref)
        if direct and _is_commit(direct):
            return direct
        for line in (read(git / "packed-refs") or "").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref and _is_commit(parts[0]):
                return parts[0]
        return None
    return None


def _is_commit(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


def dag_file_info(dag_id: str, fileloc: str | None) -> dict[str, Any]:
    """DAG id, file name, sha256 and git commit (when known) of the DAG file."""
    info: dict[str, Any] = {"dag_id": dag_id}
    if fileloc:
        from airflow_aisec.core.io.files import read_user_file

        info["file"] = os.path.basename(fileloc)
        try:
            info["sha256"] = hashlib.sha256(read_user_file(fileloc, limit=16 * 1024 * 1024,
                                                           what="DAG file")).hexdigest()
        except InputDataError:
            info["sha256"] = None
        commit = git_commit(fileloc)
        if commit:
            info["git_commit"] = commit
    return info


def check_training_parameters(params: Any) -> dict[str, Any]:
    """Training parameters as a JSON object of bounded size.

    Raises:
        ConfigurationError: not a JSON object, or too large.
    """
    from airflow_aisec.core.evidence import canonical_json

    if params is None:
        return {}
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise ConfigurationError("training parameters must be a JSON object with string keys")
    try:
        size = len(canonical_json(params))
    except (TypeError, ValueError):
        raise ConfigurationError("training parameters are not JSON (numbers, strings, lists, objects only)") from None
    if size > MAX_TRAINING_PARAMETER_BYTES:
        raise ConfigurationError(f"training parameters are larger than {MAX_TRAINING_PARAMETER_BYTES} bytes")
    return params


def dataset_dependencies(request: ProvenanceRequest) -> tuple[list[dict[str, Any]], list[str]]:
    """``resolvedDependencies`` entries of the datasets, and what is wrong with unvetted ones.

    Raises:
        ConfigurationError: datasets named without an audit trail to check them in.
        EvidenceChainError / ServiceUnavailableError: from the trail.
    """
    from airflow_aisec.core.gates.signing._datasets import dataset_evidence

    if len(request.datasets) > _MAX_DATASETS:
        raise ConfigurationError(f"more than {_MAX_DATASETS} datasets")
    if request.datasets and request.evidence is None:
        raise ConfigurationError("datasets are recorded with their gate records: name the audit trail (--evidence)")
    evidence = dataset_evidence(request.evidence, [d.sha256 for d in request.datasets]) if request.datasets else {}
    deps: list[dict[str, Any]] = []
    problems: list[str] = []
    for ds in request.datasets:
        ev = evidence[ds.sha256]
        annotations: dict[str, Any] = {
            "aisec_kind": "dataset",
            "evidence_location": request.evidence.location if request.evidence else None,
            "gate_records": {g: r.to_dict() for g, r in sorted(ev.records.items())},
        }
        if ev.derived_from:
            annotations["redacted_from_sha256"] = ev.derived_from
        deps.append({"name": f"dataset:{os.path.basename(ds.uri.rstrip('/')) or ds.uri}", "uri": ds.uri,
                     "digest": {"sha256": ds.sha256}, "annotations": annotations})
        problems += [f"dataset {ds.uri} (sha256 {ds.sha256[:12]}...): {p}" for p in ev.problems]
    return deps, problems


def build_statement(
    request: ProvenanceRequest,
    *,
    model_name: str,
    model_digest: str,
    model_uri: str,
    signature_sha256: str,
    datasets: list[dict[str, Any]],
    started_on: str,
) -> dict[str, Any]:
    """The in-toto statement (SLSA provenance v1 predicate) for one signed model."""
    deps = list(datasets)
    dag = request.dag or {}
    if dag.get("sha256"):
        digest = {"sha256": dag["sha256"]}
        if dag.get("git_commit"):
            digest["gitCommit"] = dag["git_commit"]
        deps.append({"name": f"dag:{dag.get('file') or dag.get('dag_id')}", "digest": digest,
                     "annotations": {"aisec_kind": "dag"}})
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": model_digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "model": model_uri,
                    "dag": dag or None,
                    "run_id": request.run_id,
                    "task_id": request.task_id,
                    "training_parameters": request.training_parameters,
                },
                "internalParameters": {"model_signature_sha256": signature_sha256},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID},
                "metadata": {"invocationId": request.run_id or "", "startedOn": started_on, "finishedOn": utcnow()},
            },
        },
    }


def _hash_for(public_key: Any) -> Any:
    from cryptography.hazmat.primitives import hashes

    return {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[public_key.curve.key_size]


def pem_pae_signer(private_key: Any) -> Callable[[bytes], bytes]:
    """Sign a PAE with a loaded EC private key (the curve's hash, as model-signing does)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    algorithm = _hash_for(private_key.public_key())
    return lambda pae: private_key.sign(pae, ec.ECDSA(algorithm))


def digest_pae_signer(sign_digest: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """Sign a PAE through a remote P-256 signer of sha256 digests (Vault Transit)."""
    return lambda pae: sign_digest(hashlib.sha256(pae).digest())


def _verifies(public_key: Any, pae: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        public_key.verify(signature, pae, ec.ECDSA(_hash_for(public_key)))
    except InvalidSignature:
        return False
    return True


def sign_statement(statement: dict[str, Any], sign_pae: Callable[[bytes], bytes], public_key: Any) -> bytes:
    """The DSSE envelope (JSON bytes) over the statement; checked against ``public_key`` before it ships."""
    raw = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode("utf-8")
    signature = sign_pae(compat.pae(raw))
    if not _verifies(public_key, compat.pae(raw), signature):
        raise InputDataError("the signer returned a provenance signature that does not verify with its public key")
    envelope = {
        "payloadType": compat.payload_type(),
        "payload": base64.b64encode(raw).decode("ascii"),
        "signatures": [{"keyid": compat.public_key_hint(public_key), "sig": base64.b64encode(signature).decode()}],
    }
    return json.dumps(envelope, indent=2).encode("utf-8") + b"\n"


@dataclass(frozen=True)
class Envelope:
    raw_payload: bytes
    signature: bytes
    keyid: str
    sha256: str


def parse_envelope(data: bytes, uri: str) -> Envelope:
    """Decode a DSSE envelope.

    Raises:
        InputDataError: not a single-signature in-toto DSSE envelope (one line naming the file and field).
    """
    def bad(what: str) -> InputDataError:
        return InputDataError(f"{uri}: provenance {what}")

    try:
        doc = loads_json(data.decode("utf-8"))
    except ValueError:
        raise bad("is not JSON") from None
    if not isinstance(doc, dict):
        raise bad("is not a JSON object")
    if doc.get("payloadType") != compat.payload_type():
        raise bad("field 'payloadType' is not an in-toto payload")
    sigs = doc.get("signatures")
    if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict):
        raise bad("field 'signatures' must hold exactly one signature")
    try:
        raw = base64.b64decode(str(doc.get("payload", "")), validate=True)
        sig = base64.b64decode(str(sigs[0].get("sig", "")), validate=True)
    except (binascii.Error, ValueError):
        raise bad("field 'payload' or 'signatures[0].sig' is not base64") from None
    if not raw or not sig:
        raise bad("field 'payload' or 'signatures[0].sig' is empty")
    return Envelope(raw, sig, str(sigs[0].get("keyid", ""))[:128], hashlib.sha256(data).hexdigest())


def parse_statement(raw: bytes, uri: str) -> dict[str, Any]:
    """The statement inside an envelope, checked for the fields verification reads.

    Raises:
        InputDataError: malformed (one line naming the file and field).
    """
    try:
        statement = loads_json(raw.decode("utf-8"))
    except ValueError:
        raise InputDataError(f"{uri}: provenance field 'payload' is not a JSON statement") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise InputDataError(f"{uri}: provenance field '_type' is not an in-toto v1 statement")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise InputDataError(f"{uri}: provenance field 'predicateType' is not SLSA provenance v1")
    subjects = statement.get("subject")
    if not (isinstance(subjects, list) and len(subjects) == 1 and isinstance(subjects[0], dict)
            and isinstance(subjects[0].get("digest"), dict)
            and isinstance(subjects[0]["digest"].get("sha256"), str)):
        raise InputDataError(f"{uri}: provenance field 'subject' must be one subject with a sha256 digest")
    build = (statement.get("predicate") or {}).get("buildDefinition") if isinstance(
        statement.get("predicate"), dict) else None
    deps = build.get("resolvedDependencies") if isinstance(build, dict) else None
    if not isinstance(deps, list) or not all(isinstance(d, dict) for d in deps):
        raise InputDataError(f"{uri}: provenance field 'predicate.buildDefinition.resolvedDependencies' "
                             "is not a list of objects")
    return statement


def statement_datasets(statement: dict[str, Any], uri: str) -> list[dict[str, Any]]:
    """The dataset entries of a parsed statement (each with a sha256 digest).

    Raises:
        InputDataError: a dataset entry without a sha256 digest.
    """
    out = []
    for dep in statement["predicate"]["buildDefinition"]["resolvedDependencies"]:
        annotations = dep.get("annotations")
        if not isinstance(annotations, dict) or annotations.get("aisec_kind") != "dataset":
            continue
        digest = dep.get("digest")
        sha = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise InputDataError(f"{uri}: provenance dataset entry has no valid 'digest.sha256'")
        out.append(dep)
    return out


def verify_statement(
    data: bytes,
    uri: str,
    *,
    public_key: Any,
    model_digest: str,
    evidence: EvidenceStore | None,
) -> tuple[list[Finding], dict[str, Any]]:
    """Verify a provenance envelope against the verified model and the audit trail.

    Returns:
        ``signing.provenance_dataset`` findings (one per unvetted dataset) and value-free metrics.

    Raises:
        SecurityViolationError: ``signing.provenance_signature`` (not signed by the model's key) or
            ``signing.provenance_digest`` (about another model).
        InputDataError: malformed envelope or statement.
        ConfigurationError: no audit trail to check the datasets in.
    """
    from airflow_aisec.core.gates.signing._datasets import dataset_evidence

    envelope = parse_envelope(data, uri)
    if not _verifies(public_key, compat.pae(envelope.raw_payload), envelope.signature):
        raise SecurityViolationError(
            "the provenance statement is not signed by the key that signed the model (altered or replaced)",
            rule=RULE_PROVENANCE_SIGNATURE, location={"provenance": uri})
    statement = parse_statement(envelope.raw_payload, uri)
    signed_digest = statement["subject"][0]["digest"]["sha256"]
    if signed_digest != model_digest:
        raise SecurityViolationError(
            f"the provenance statement is about another model (digest {signed_digest[:16]}..., the verified "
            f"model is {model_digest[:16]}...)",
            rule=RULE_PROVENANCE_DIGEST, location={"provenance": uri, "model_digest": model_digest})
    datasets = statement_datasets(statement, uri)
    metrics: dict[str, Any] = {"provenance": uri, "provenance_sha256": envelope.sha256,
                               "provenance_datasets": len(datasets)}
    findings: list[Finding] = []
    if not datasets:
        findings.append(Finding(rule=RULE_PROVENANCE_DATASET, severity=Severity.CRITICAL, count=1,
                                message="the provenance statement names no training dataset",
                                location={"provenance": uri}))
        return findings, metrics
    if evidence is None:
        raise ConfigurationError("checking provenance needs the audit trail that holds the dataset gate records "
                                 "(--evidence)")
    found = dataset_evidence(evidence, [d["digest"]["sha256"] for d in datasets])
    vetted = 0
    for dep in datasets:
        sha = dep["digest"]["sha256"]
        name = str(dep.get("uri") or dep.get("name") or sha)[:300]
        problems = found[sha].problems
        if problems:
            findings.append(Finding(
                rule=RULE_PROVENANCE_DATASET, severity=Severity.CRITICAL, count=1,
                message=f"training dataset {name} (sha256 {sha[:12]}...) is not vetted: " + "; ".join(problems),
                location={"dataset": name, "sha256": sha, "evidence": evidence.location}))
        else:
            vetted += 1
    metrics["provenance_datasets_vetted"] = vetted
    return findings, metrics


def missing_finding(uri: str) -> Finding:
    return Finding(rule=RULE_PROVENANCE_MISSING, severity=Severity.CRITICAL, count=1,
                   message=f"the model has no provenance statement (looked for {uri})", location={"provenance": uri})


def read_provenance(loc: Any, client: Any, limit: int) -> bytes | None:
    """Statement bytes at a :class:`~._locations.Location` (None when absent); too large is bad input (exit 2).

    Raises:
        InputDataError: larger than ``limit``, or not a regular file.
    """
    from airflow_aisec.core.gates.signing._locations import read_signature
    from airflow_aisec.core.io.files import read_user_file
    from airflow_aisec.exceptions import MalformedSignatureError

    if loc.s3:
        try:
            return read_signature(loc, client, limit)[0]
        except MalformedSignatureError:
            raise InputDataError(f"{loc.uri}: provenance statement is larger than {limit} bytes") from None
    if not os.path.lexists(loc.path):
        return None
    return read_user_file(loc.path, limit=limit, what="provenance statement")
