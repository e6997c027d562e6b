"""Signed provenance (in-toto / SLSA v1 in DSSE) binding a signed model to datasets vetted by the real
source and PII gates in a real audit trail; verification failures; hostile statements; the ML-BOM.

PEM keys are generated per test; the Transit tests run against the real OpenBao of ``bao_server``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from pathlib import Path

import pytest

from airflow_aisec.core.evidence import open_evidence_store
from airflow_aisec.core.gate import run_check
from airflow_aisec.core.gates.signing import (
    PREDICATE_TYPE,
    ProvenanceRequest,
    dag_file_info,
    dataset_ref,
    default_provenance_uri,
    model_bom,
    sign_model,
    verify_model,
)
from airflow_aisec.core.gates.signing._provenance import git_commit
from airflow_aisec.core.io.vault import VaultClient
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.exceptions import ConfigurationError, InputDataError, SecurityViolationError
from tests.helpers.provenance import (
    PLANTED_EMAIL,
    fingerprint,
    gate_dataset,
    read_statement,
    redact_dataset,
    sha256_of,
    write_dataset,
    write_keypair,
    write_policy,
)


@pytest.fixture
def env(tmp_path):
    key, priv, pub = write_keypair(tmp_path, "a")
    _, other_priv, _ = write_keypair(tmp_path, "b")
    policy = write_policy(tmp_path / "policy.yaml", fingerprint=fingerprint(key))
    loaded = parse_policy(policy.read_bytes(), source=str(policy))
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text(json.dumps({"coef": [0.1, 0.2]}))
    (model / "README.md").write_text("a model\n")
    evidence = tmp_path / "evidence"
    return {"dir": tmp_path, "priv": priv, "pub": pub, "other_priv": other_priv, "policy": policy,
            "section": loaded.section("signing"), "loaded": loaded, "model": model, "evidence": evidence}


def _request(env, *datasets: Path, **kwargs) -> ProvenanceRequest:
    return ProvenanceRequest(datasets=[dataset_ref(d) for d in datasets],
                             evidence=open_evidence_store(env["evidence"]), **kwargs)


def _sign(env, *datasets: Path, model: Path | None = None, **kwargs):
    return sign_model(env["section"], model or env["model"], private_key=env["priv"],
                      provenance=_request(env, *datasets, **kwargs))


def _verify(env, model: Path | None = None, **kwargs):
    kwargs.setdefault("require_provenance", True)
    return verify_model(env["section"], model or env["model"], public_key=env["pub"],
                        evidence=open_evidence_store(env["evidence"]), **kwargs)


def _vetted(env, name: str = "train.csv", seed: int = 1) -> Path:
    data = write_dataset(env["dir"] / name, seed=seed)
    assert gate_dataset(env["policy"], env["evidence"], data) == {"source": "pass", "pii": "pass"}
    return data


def test_sign_writes_a_signed_slsa_statement_next_to_the_signature(env):
    data = _vetted(env)
    dag_file = env["dir"] / "pipeline.py"
    dag_file.write_text("# a dag\n")
    out = _sign(env, data, dag=dag_file_info("train_dag", str(dag_file)), run_id="manual__1", task_id="sign",
                training_parameters={"max_iter": 1000, "features": ["age"]})
    prov = env["dir"] / "model.provenance.json"
    assert out.metrics["provenance"] == str(prov) == default_provenance_uri(str(env["dir"] / "model.sig"))
    assert out.metrics["provenance_datasets"] == 1
    envelope = json.loads(prov.read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json" and len(envelope["signatures"]) == 1
    statement = read_statement(prov)
    assert statement["_type"] == "https://in-toto.io/Statement/v1" and statement["predicateType"] == PREDICATE_TYPE
    assert statement["subject"][0]["digest"]["sha256"] == out.metrics["model_digest"]
    build = statement["predicate"]["buildDefinition"]
    assert build["externalParameters"]["run_id"] == "manual__1"
    assert build["externalParameters"]["training_parameters"] == {"max_iter": 1000, "features": ["age"]}
    assert build["externalParameters"]["dag"]["sha256"] == sha256_of(dag_file)
    deps = {d["annotations"]["aisec_kind"]: d for d in build["resolvedDependencies"]}
    assert deps["dag"]["digest"]["sha256"] == sha256_of(dag_file)
    ds = deps["dataset"]
    assert ds["digest"]["sha256"] == sha256_of(data)
    records = ds["annotations"]["gate_records"]
    assert {g: r["verdict"] for g, r in records.items()} == {"source": "pass", "pii": "pass"}
    # each cited record is the trail's record (its bytes' sha256)
    for record in records.values():
        raw = (env["evidence"] / record["record"]).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == record["sha256"]
    # the DSSE signature verifies with the model key over the PAE
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    payload = base64.b64decode(envelope["payload"])
    pae = b"DSSEv1 %d %s %d %s" % (len(envelope["payloadType"]), envelope["payloadType"].encode(), len(payload),
                                   payload)
    load_pem_public_key(env["pub"].read_bytes()).verify(base64.b64decode(envelope["signatures"][0]["sig"]), pae,
                                                        ec.ECDSA(hashes.SHA256()))

    result = _verify(env)
    assert result.findings == []
    assert result.metrics["provenance_verified"] is True and result.metrics["provenance_datasets_vetted"] == 1


def test_policy_switch_requires_provenance(env, tmp_path):
    sign_model(env["section"], env["model"], private_key=env["priv"])  # signed, no provenance
    assert verify_model(env["section"], env["model"], public_key=env["pub"]).findings == []
    strict = write_policy(tmp_path / "strict.yaml", fingerprint=fingerprint_of(env), require_provenance=True)
    loaded = parse_policy(strict.read_bytes(), source=str(strict))
    run = run_check("signing", loaded, lambda: verify_model(loaded.section("signing"), env["model"],
                                                            public_key=env["pub"]))
    assert run.result.verdict == "fail"
    assert [f.rule for f in run.result.findings] == ["signing.provenance_missing"]


def fingerprint_of(env) -> str:
    from airflow_aisec.core.gates.signing import key_fingerprint, load_public_key

    return key_fingerprint(load_public_key(env["pub"].read_bytes()))


def test_dataset_that_failed_pii_is_refused_at_signing_when_required(env):
    bad = write_dataset(env["dir"] / "raw.csv", pii=True)
    assert gate_dataset(env["policy"], env["evidence"], bad) == {"source": "pass", "pii": "fail"}
    with pytest.raises(SecurityViolationError, match="latest pii gate record") as info:
        _sign(env, bad, require_vetted=True)
    assert info.value.rule == "signing.provenance_dataset"
    assert not (env["dir"] / "model.sig").exists() and not (env["dir"] / "model.provenance.json").exists()
    assert PLANTED_EMAIL not in str(info.value)


def test_unvetted_dataset_fails_verification(env):
    good = _vetted(env)
    never_scanned = write_dataset(env["dir"] / "raw.csv", pii=True, seed=3)
    gate_dataset(env["policy"], env["evidence"], never_scanned, gates=("source",))
    _sign(env, good, never_scanned)  # recorded, not refused: the deploy gate decides
    run = run_check("signing", env["loaded"], lambda: _verify(env))
    assert run.result.verdict == "fail"
    findings = run.result.findings
    assert [f.rule for f in findings] == ["signing.provenance_dataset"]
    assert "no pii gate record" in findings[0].message and findings[0].location["sha256"] == sha256_of(never_scanned)
    assert PLANTED_EMAIL not in json.dumps(run.result.to_dict())


def test_a_later_failing_record_revokes_a_vetted_dataset(env):
    data = write_dataset(env["dir"] / "customers.csv", pii=True)
    # declared restricted: PII allowed, so both gates pass
    assert gate_dataset(env["policy"], env["evidence"], data, classification="restricted") == {
        "source": "pass", "pii": "pass"}
    _sign(env, data)
    assert _verify(env).findings == []
    # the same bytes are later scanned as public and fail: the latest record counts
    assert gate_dataset(env["policy"], env["evidence"], data, gates=("pii",)) == {"pii": "fail"}
    findings = _verify(env).findings
    assert [f.rule for f in findings] == ["signing.provenance_dataset"]
    assert "latest pii gate record" in findings[0].message and "'fail'" in findings[0].message


def test_redacted_copy_inherits_the_source_record_of_its_extract(env):
    raw = write_dataset(env["dir"] / "raw.csv", pii=True)
    assert gate_dataset(env["policy"], env["evidence"], raw, classification="restricted") == {
        "source": "pass", "pii": "pass"}
    redacted = env["dir"] / "redacted.csv"
    assert redact_dataset(env["policy"], env["evidence"], raw, redacted) == "pass"
    _sign(env, redacted, require_vetted=True)
    statement = read_statement(env["dir"] / "model.provenance.json")
    ds = statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]
    assert ds["annotations"]["redacted_from_sha256"] == sha256_of(raw)
    assert _verify(env).findings == []


def test_provenance_without_datasets_fails(env):
    _sign(env)
    assert [f.rule for f in _verify(env).findings] == ["signing.provenance_dataset"]


def test_altered_statement_fails_its_signature(env):
    data = _vetted(env)
    _sign(env, data)
    prov = env["dir"] / "model.provenance.json"
    envelope = json.loads(prov.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["sha256"] = "0" * 64
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    prov.write_text(json.dumps(envelope))
    with pytest.raises(SecurityViolationError) as info:
        _verify(env)
    assert info.value.rule == "signing.provenance_signature"


def test_statement_signed_by_another_key_fails(env):
    data = _vetted(env)
    _sign(env, data)
    good = env["dir"] / "model.provenance.json"
    other_sig = env["dir"] / "other.sig"
    sign_model(env["section"], env["model"], private_key=env["other_priv"], signature=other_sig,
               provenance=_request(env, data))
    (env["dir"] / "other.provenance.json").replace(good)
    with pytest.raises(SecurityViolationError) as info:
        _verify(env)
    assert info.value.rule == "signing.provenance_signature"


def test_statement_of_another_model_fails_the_digest(env):
    data = _vetted(env)
    _sign(env, data)
    second = env["dir"] / "second"
    second.mkdir()
    (second / "model.json").write_text('{"coef": [9]}')
    _sign(env, data, model=second)
    (env["dir"] / "second.provenance.json").replace(env["dir"] / "model.provenance.json")
    with pytest.raises(SecurityViolationError) as info:
        _verify(env)
    assert info.value.rule == "signing.provenance_digest"


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"payloadType": "x", "payload": "", "signatures": []}',
                                     json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": "!!",
                                                 "signatures": [{"sig": "AA=="}]}).encode()])
def test_malformed_envelope_is_bad_input(env, content):
    data = _vetted(env)
    _sign(env, data)
    (env["dir"] / "model.provenance.json").write_bytes(content)
    with pytest.raises(InputDataError) as info:
        _verify(env)
    assert "model.provenance.json: provenance" in str(info.value) and "\n" not in str(info.value)


def test_huge_statement_is_refused_before_reading(env):
    _sign(env, _vetted(env))
    prov = env["dir"] / "model.provenance.json"
    with open(prov, "wb") as fh:
        fh.truncate(env["section"].max_provenance_bytes + 1)  # sparse: nothing near that size is read
    with pytest.raises(InputDataError, match="larger than"):
        _verify(env)


def test_datasets_need_an_audit_trail(env):
    data = write_dataset(env["dir"] / "d.csv")
    with pytest.raises(ConfigurationError, match="audit trail"):
        sign_model(env["section"], env["model"], private_key=env["priv"],
                   provenance=ProvenanceRequest(datasets=[dataset_ref(data)]))


def test_git_commit_is_read_without_a_process(tmp_path):
    commit = "a1b2c3d4" * 5
    (tmp_path / ".git" / "refs" / "heads").mkdir(parents=True)
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / ".git" / "refs" / "heads" / "main").write_text(commit + "\n")
    (tmp_path / "dags").mkdir()
    dag = tmp_path / "dags" / "d.py"
    dag.write_text("x = 1\n")
    assert git_commit(dag) == commit
    assert dag_file_info("d", str(dag))["git_commit"] == commit
    (tmp_path / ".git" / "refs" / "heads" / "main").unlink()
    (tmp_path / ".git" / "packed-refs").write_text(f"# pack-refs\n{commit} refs/heads/main\n")
    assert git_commit(dag) == commit


def test_ml_bom_is_valid_cyclonedx_with_model_card(env):
    data = _vetted(env)
    _sign(env, data, training_parameters={"max_iter": 1000}, run_id="r1")
    doc = model_bom(env["model"])
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    model = doc["metadata"]["component"]
    assert model["type"] == "machine-learning-model"
    statement = read_statement(env["dir"] / "model.provenance.json")
    assert model["hashes"] == [{"alg": "SHA-256", "content": statement["subject"][0]["digest"]["sha256"]}]
    files = {c["name"]: c["hashes"][0]["content"] for c in model["components"]}
    assert files == {"README.md": sha256_of(env["model"] / "README.md"),
                     "model.json": sha256_of(env["model"] / "model.json")}
    datasets = [c for c in doc["components"] if c["type"] == "data"]
    assert [c["hashes"][0]["content"] for c in datasets] == [sha256_of(data)]
    assert model["modelCard"]["modelParameters"]["datasets"] == [{"ref": datasets[0]["bom-ref"]}]
    assert {"name": "aisec:training:max_iter", "value": "1000"} in model["modelCard"]["properties"]
    assert any(d["ref"] == "model" and d.get("dependsOn") == [datasets[0]["bom-ref"]] for d in doc["dependencies"])
    assert PLANTED_EMAIL not in json.dumps(doc)


def test_ml_bom_without_provenance_is_bad_input(env):
    with pytest.raises(InputDataError, match="no provenance statement"):
        model_bom(env["model"])


# ----------------------------------------------------------------------------------------------
# Vault Transit (real OpenBao)
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def transit(bao_server):
    client = bao_server.client()
    if "transit/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("transit", path="transit")
    name = f"prov-{uuid.uuid4().hex[:8]}"
    client.secrets.transit.create_key(name=name, key_type="ecdsa-p256")
    return VaultClient(client), name


@pytest.mark.integration
def test_transit_signed_provenance_round_trip(env, transit, tmp_path):
    vault, name = transit
    policy = write_policy(tmp_path / "transit.yaml", transit=name, require_provenance=True)
    loaded = parse_policy(policy.read_bytes(), source=str(policy))
    data = _vetted(env)
    out = sign_model(loaded.section("signing"), env["model"], transit_key=name, vault=vault,
                     provenance=_request(env, data, require_vetted=True))
    envelope = json.loads((env["dir"] / "model.provenance.json").read_text())
    from airflow_aisec.core.gates.signing import read_transit_key
    from airflow_aisec.core.gates.signing._model_signing_compat import public_key_hint

    assert envelope["signatures"][0]["keyid"] == public_key_hint(read_transit_key(vault, name, "transit")
                                                                 .public_keys[1])
    run = run_check("signing", loaded, lambda: verify_model(
        loaded.section("signing"), env["model"], transit_key=name, vault=vault,
        evidence=open_evidence_store(env["evidence"])))
    assert run.result.verdict == "pass", run.result.findings
    assert run.result.metrics["provenance_verified"] is True
    assert run.result.metrics["model_digest"] == out.metrics["model_digest"]

    # a PEM-signed statement next to a Transit-signed model does not verify
    stray = tmp_path / "stray.sig"
    sign_model(env["section"], env["model"], private_key=env["priv"], signature=stray,
               provenance=_request(env, data))
    (tmp_path / "stray.provenance.json").replace(env["dir"] / "model.provenance.json")
    run = run_check("signing", loaded, lambda: verify_model(
        loaded.section("signing"), env["model"], transit_key=name, vault=vault,
        evidence=open_evidence_store(env["evidence"])))
    assert run.result.verdict == "fail"
    assert [f.rule for f in run.result.findings] == ["signing.provenance_signature"]


# ----------------------------------------------------------------------------------------------
# S3 (real moto server, versioned bucket): the statement lives next to the S3 signature
# ----------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_s3_model_provenance_next_to_the_signature(env, s3_server):
    client = s3_server.client()
    name = f"models-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=name, Key="churn/v1/model.json", Body=b'{"coef": [1]}')
    model = f"s3://{name}/churn/v1"
    data = _vetted(env)
    out = sign_model(env["section"], model, private_key=env["priv"], s3_client=client,
                     provenance=_request(env, data, require_vetted=True))
    assert out.metrics["provenance"] == f"s3://{name}/churn/v1.provenance.json"
    result = verify_model(env["section"], model, public_key=env["pub"], s3_client=client, require_provenance=True,
                          evidence=open_evidence_store(env["evidence"]))
    assert result.findings == [] and result.metrics["provenance_verified"] is True
    assert model_bom(model, s3_client=client)["metadata"]["component"]["type"] == "machine-learning-model"
    client.delete_object(Bucket=name, Key="churn/v1.provenance.json")
    result = verify_model(env["section"], model, public_key=env["pub"], s3_client=client, require_provenance=True,
                          evidence=open_evidence_store(env["evidence"]))
    assert [f.rule for f in result.findings] == ["signing.provenance_missing"]


def test_training_parameters_are_bounded_json():
    from airflow_aisec.core.gates.signing import check_training_parameters

    assert check_training_parameters({"lr": 0.1, "layers": [64, 32]}) == {"lr": 0.1, "layers": [64, 32]}
    with pytest.raises(ConfigurationError, match="larger than"):
        check_training_parameters({"blob": "x" * (64 * 1024)})
    with pytest.raises(ConfigurationError, match="not JSON"):
        check_training_parameters({"lr": float("nan")})
    with pytest.raises(ConfigurationError, match="JSON object"):
        check_training_parameters(["lr", 0.1])
