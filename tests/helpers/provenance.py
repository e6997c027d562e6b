"""Signed-provenance test set-up: EC key pairs, small datasets, a policy with source + pii + signing,
and an audit trail filled by the real source and PII gates (``gate_dataset``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from airflow_aisec.core.evidence import open_evidence_store
from airflow_aisec.core.gate import run_check
from airflow_aisec.core.policy import parse_policy

#: A planted PII value: it must never show up in a result, statement or BOM.
PLANTED_EMAIL = "planted.person@example.org"


def write_keypair(directory: Path, name: str, curve: Any = None) -> tuple[Any, Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(curve or ec.SECP256R1())
    priv, pub = directory / f"{name}.pem", directory / f"{name}.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, priv, pub


def fingerprint(key: Any) -> str:
    from airflow_aisec.core.gates.signing import key_fingerprint

    return key_fingerprint(key.public_key())


def policy_text(*, fingerprint: str | None = None, transit: str | None = None, require_provenance: bool = False) -> str:
    key = (f"{{id: release, fingerprint: '{fingerprint}'}}" if fingerprint
           else f"{{id: release, transit: {{name: {transit}, mount: transit, versions: [1]}}}}")
    return f"""version: 1
name: provenance-test
enforcement: enforce
source:
  origins: ["file:///*"]
  rows: {{min: 10, max: 100000}}
  schema:
    columns: {{customer_id: integer, age: integer}}
    allow_extra_columns: true
pii:
  default_classification: public
  levels:
    public: {{forbidden: ["*"]}}
    restricted: {{allowed: ["*"]}}
  min_share: 0.0
  min_count: 1
  scan: {{mode: full}}
  nlp: {{enabled: false}}
  entities: [EMAIL_ADDRESS, PHONE_NUMBER, US_SSN]
signing:
  trusted_keys: [{key}]
  require_provenance: {str(require_provenance).lower()}
"""


def write_policy(path: Path, **kwargs: Any) -> Path:
    path.write_text(policy_text(**kwargs))
    return path


def write_dataset(path: Path, *, pii: bool = False, rows: int = 60, seed: int = 1) -> Path:
    lines = ["customer_id,age,note"]
    for i in range(1, rows + 1):
        note = f"contact {PLANTED_EMAIL}" if pii and i % 7 == 0 else f"ok {seed}"
        lines.append(f"{i},{20 + (i * seed) % 50},{note}")
    path.write_text("\n".join(lines) + "\n")
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def gate_dataset(policy: Path, evidence: Path, dataset: Path, *, gates: tuple[str, ...] = ("source", "pii"),
                 classification: str | None = None) -> dict[str, str]:
    """Run the real source and/or PII gate on ``dataset`` and append each result to the trail; verdicts."""
    from airflow_aisec.core.gates.pii import check_pii
    from airflow_aisec.core.gates.source import check_sources

    loaded = parse_policy(policy.read_bytes(), source=str(policy))
    store = open_evidence_store(evidence)
    verdicts = {}
    for gate in gates:
        if gate == "source":
            run = run_check("source", loaded, lambda: check_sources(loaded.section("source"), [str(dataset)]))
        else:
            run = run_check("pii", loaded, lambda: check_pii(loaded.section("pii"), str(dataset),
                                                             classification=classification))
        store.append(run.result.to_dict())
        verdicts[gate] = run.result.verdict
    return verdicts


def read_statement(envelope_path: Path) -> dict[str, Any]:
    import base64

    envelope = json.loads(envelope_path.read_text())
    return json.loads(base64.b64decode(envelope["payload"]))


def redact_dataset(policy: Path, evidence: Path, src: Path, dst: Path) -> str:
    """Run the real PII redaction (mask) of ``src`` into ``dst`` and record it; the verdict."""
    from airflow_aisec.core.gates.pii import redact_table

    loaded = parse_policy(policy.read_bytes(), source=str(policy))
    run = run_check("pii", loaded, lambda: redact_table(loaded.section("pii"), str(src), str(dst),
                                                        classification="public"))
    open_evidence_store(evidence).append(run.result.to_dict())
    return run.result.verdict
