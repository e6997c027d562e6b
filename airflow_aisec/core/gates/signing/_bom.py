"""CycloneDX 1.6 ML-BOM from a model's provenance statement.

The model is a ``machine-learning-model`` component (its model-signing root digest as the SHA-256
hash, one ``file`` sub-component per model file with its sha256 when the directory is at hand),
each training dataset a ``data`` component (sha256, the audit-trail records of its source and PII
gates as properties), the DAG file an ``application`` component (sha256, git commit). The model
depends on both. The model card (``modelCard``: dataset references, training parameters as
properties) is added to the JSON after rendering, as cyclonedx-python-lib has no model for it yet;
the result validates against the CycloneDX 1.6 JSON schema.

The BOM describes what the statement says: verify the model and its provenance first
(``aisec model verify --require-provenance``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from airflow_aisec.core.gates.signing._provenance import parse_envelope, parse_statement, statement_datasets

#: Largest model file count listed as sub-components (a sharded model stays readable).
MAX_LISTED_FILES = 10_000


def _props(prefix: str, values: dict[str, Any]) -> list[Any]:
    from cyclonedx.model import Property

    out = []
    for key, value in sorted(values.items()):
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        out.append(Property(name=f"{prefix}{key}", value=text[:4000]))
    return out


def _model_files(model_dir: Path) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if not model_dir.is_dir():
        return out
    for root, dirs, files in os.walk(model_dir):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(files):
            path = Path(root, name)
            if path.is_symlink() or not path.is_file():
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
            out.append((path.relative_to(model_dir).as_posix(), digest.hexdigest()))
            if len(out) >= MAX_LISTED_FILES:
                return out
    return out


def build_bom(provenance: bytes, uri: str, *, model_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """A CycloneDX 1.6 ML-BOM (JSON document) from a provenance envelope.

    Raises:
        InputDataError: malformed provenance (one line naming the file and field).
    """
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6

    envelope = parse_envelope(provenance, uri)
    statement = parse_statement(envelope.raw_payload, uri)
    subject = statement["subject"][0]
    build = statement["predicate"]["buildDefinition"]
    params = build.get("externalParameters") if isinstance(build.get("externalParameters"), dict) else {}

    def sha(value: str) -> HashType:
        return HashType(alg=HashAlgorithm.SHA_256, content=value)

    files = [Component(name=rel, type=ComponentType.FILE, bom_ref=f"model-file:{rel}", hashes=[sha(d)])
             for rel, d in (_model_files(Path(model_dir)) if model_dir else [])]
    model = Component(
        name=str(subject.get("name") or "model")[:200], type=ComponentType.MACHINE_LEARNING_MODEL, bom_ref="model",
        hashes=[sha(subject["digest"]["sha256"])], components=files,
        description="hash: model-signing root digest (sha256 over the per-file sha256 digests)",
        properties=_props("aisec:", {"run_id": params.get("run_id"), "task_id": params.get("task_id"),
                                     "provenance_sha256": envelope.sha256, "provenance": uri}),
    )
    bom = Bom()
    bom.metadata.component = model
    deps: list[Component] = []
    dataset_refs: list[str] = []
    for i, dep in enumerate(statement_datasets(statement, uri)):
        annotations = dep.get("annotations") or {}
        ref = f"dataset-{i}"
        props: dict[str, Any] = {"uri": dep.get("uri"), "evidence_location": annotations.get("evidence_location"),
                                 "redacted_from_sha256": annotations.get("redacted_from_sha256")}
        for gate, record in sorted((annotations.get("gate_records") or {}).items()):
            props[f"{gate}_record"] = record
        component = Component(name=str(dep.get("name") or ref)[:200], type=ComponentType.DATA, bom_ref=ref,
                              hashes=[sha(dep["digest"]["sha256"])], properties=_props("aisec:", props))
        bom.components.add(component)
        deps.append(component)
        dataset_refs.append(ref)
    for dep in build["resolvedDependencies"]:
        annotations = dep.get("annotations") or {}
        digest = dep.get("digest") if isinstance(dep.get("digest"), dict) else {}
        if annotations.get("aisec_kind") == "dag" and isinstance(digest.get("sha256"), str):
            dag = Component(name=str(dep.get("name") or "dag")[:200], type=ComponentType.APPLICATION, bom_ref="dag",
                            hashes=[sha(digest["sha256"])],
                            properties=_props("aisec:", {"git_commit": digest.get("gitCommit")}))
            bom.components.add(dag)
            deps.append(dag)
    bom.register_dependency(model, deps)
    doc = json.loads(JsonV1Dot6(bom).output_as_string())
    training = params.get("training_parameters") if isinstance(params.get("training_parameters"), dict) else {}
    card: dict[str, Any] = {
        "bom-ref": "model-card",
        "modelParameters": {"datasets": [{"ref": r} for r in dataset_refs]},
    }
    card_props = [{"name": f"aisec:training:{k}", "value": v if isinstance(v, str) else json.dumps(v, sort_keys=True)}
                  for k, v in sorted(training.items())]
    dag_info = params.get("dag") if isinstance(params.get("dag"), dict) else {}
    if dag_info.get("dag_id"):
        card_props.append({"name": "aisec:dag_id", "value": str(dag_info["dag_id"])})
    if card_props:
        card["properties"] = card_props
    doc["metadata"]["component"]["modelCard"] = card
    return doc


def validate_bom(doc: dict[str, Any]) -> str | None:
    """Validation error against the CycloneDX 1.6 JSON schema, None when valid."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc))
    return None if error is None else str(error)[:500]
