"""``aisec model sign --dataset ... --evidence``, ``model verify --require-provenance`` and ``model bom``
as a user runs them (the console script in a subprocess), on datasets gated by the real ``aisec source
check`` / ``aisec pii scan`` into a real audit trail; PEM keys and a real OpenBao Transit key."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest

from tests.helpers.provenance import (
    PLANTED_EMAIL,
    fingerprint,
    sha256_of,
    write_dataset,
    write_keypair,
    write_policy,
)


@pytest.fixture
def ws(tmp_path):
    key, priv, pub = write_keypair(tmp_path, "release")
    policy = write_policy(tmp_path / "policy.yaml", fingerprint=fingerprint(key))
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text('{"coef": [1, 2]}')
    return {"dir": tmp_path, "priv": priv, "pub": pub, "policy": policy, "model": model,
            "evidence": tmp_path / "trail"}


def _gate(aisec_cli, ws, data: Path, *, pii_classification: str | None = None, gates=("source", "pii")) -> None:
    if "source" in gates:
        out = aisec_cli("source", "check", str(data), "--policy", str(ws["policy"]), "--evidence", str(ws["evidence"]))
        assert out.returncode == 0, out.stdout + out.stderr
    if "pii" in gates:
        extra = ["--classification", pii_classification] if pii_classification else []
        aisec_cli("pii", "scan", str(data), "--policy", str(ws["policy"]), "--evidence", str(ws["evidence"]), *extra)


def _sign(aisec_cli, ws, *datasets: Path, extra=()):
    args = ["model", "sign", str(ws["model"]), "--key", str(ws["priv"]), "--policy", str(ws["policy"]),
            "--evidence", str(ws["evidence"])]
    for d in datasets:
        args += ["--dataset", str(d)]
    return aisec_cli(*args, *extra)


def _verify(aisec_cli, ws, *extra: str):
    return aisec_cli("model", "verify", str(ws["model"]), "--policy", str(ws["policy"]), "--public-key",
                     str(ws["pub"]), "--require-provenance", "--evidence", str(ws["evidence"]), "--json", *extra)


def _rules(out) -> set[str]:
    return {f["rule"] for f in json.loads(out.stdout)["findings"]}


def test_sign_with_vetted_dataset_then_verify_and_bom(aisec_cli, ws):
    data = write_dataset(ws["dir"] / "train.csv")
    _gate(aisec_cli, ws, data)
    out = _sign(aisec_cli, ws, data, extra=["--training-param", "max_iter=200", "--training-param", "solver=lbfgs"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "provenance:" in out.stdout and "datasets: 1" in out.stdout
    prov = ws["dir"] / "model.provenance.json"
    statement = json.loads(base64.b64decode(json.loads(prov.read_text())["payload"]))
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["training_parameters"] == {
        "max_iter": 200, "solver": "lbfgs"}

    out = _verify(aisec_cli, ws)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert result["verdict"] == "pass" and result["metrics"]["provenance_verified"] is True

    bom_path = ws["dir"] / "bom.json"
    out = aisec_cli("model", "bom", str(ws["model"]), "--output", str(bom_path))
    assert out.returncode == 0, out.stderr
    bom = json.loads(bom_path.read_text())
    assert bom["specVersion"] == "1.6"
    assert [c["hashes"][0]["content"] for c in bom["components"] if c["type"] == "data"] == [sha256_of(data)]
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(bom_path.read_text()) is None


def test_sign_refuses_a_dataset_that_failed_pii(aisec_cli, ws):
    data = write_dataset(ws["dir"] / "raw.csv", pii=True)
    _gate(aisec_cli, ws, data)  # pii scan as public: fails
    out = _sign(aisec_cli, ws, data)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "signing.provenance_dataset" in out.stdout and "latest pii gate record" in out.stdout
    assert not (ws["dir"] / "model.sig").exists()
    assert PLANTED_EMAIL not in out.stdout + out.stderr


def test_sign_refuses_a_dataset_never_gated(aisec_cli, ws):
    gated = write_dataset(ws["dir"] / "a.csv")
    _gate(aisec_cli, ws, gated)
    never = write_dataset(ws["dir"] / "b.csv", seed=5)
    out = _sign(aisec_cli, ws, gated, never)
    assert out.returncode == 1
    assert "b.csv" in out.stdout and "no source gate record" in out.stdout and "a.csv" not in out.stdout


def test_dataset_without_evidence_is_a_usage_error(aisec_cli, ws):
    data = write_dataset(ws["dir"] / "d.csv")
    out = aisec_cli("model", "sign", str(ws["model"]), "--key", str(ws["priv"]), "--dataset", str(data))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "--evidence" in out.stderr


def test_verify_fails_when_provenance_is_missing_or_data_went_bad(aisec_cli, ws):
    aisec_cli("model", "sign", str(ws["model"]), "--key", str(ws["priv"]), "--policy", str(ws["policy"]))
    out = _verify(aisec_cli, ws)
    assert out.returncode == 1 and _rules(out) == {"signing.provenance_missing"}
    # without the flag (and a policy that does not require it) the signature alone verifies
    out = aisec_cli("model", "verify", str(ws["model"]), "--policy", str(ws["policy"]), "--public-key", str(ws["pub"]))
    assert out.returncode == 0, out.stdout + out.stderr

    data = write_dataset(ws["dir"] / "customers.csv", pii=True)
    _gate(aisec_cli, ws, data, pii_classification="restricted")
    assert _sign(aisec_cli, ws, data).returncode == 0
    assert _verify(aisec_cli, ws).returncode == 0
    _gate(aisec_cli, ws, data, gates=("pii",))  # scanned again as public: the latest record fails
    out = _verify(aisec_cli, ws)
    assert out.returncode == 1 and _rules(out) == {"signing.provenance_dataset"}
    assert PLANTED_EMAIL not in out.stdout


def test_policy_can_require_provenance(aisec_cli, ws):
    strict = write_policy(ws["dir"] / "strict.yaml", fingerprint=fingerprint_from(ws), require_provenance=True)
    aisec_cli("model", "sign", str(ws["model"]), "--key", str(ws["priv"]), "--policy", str(ws["policy"]))
    out = aisec_cli("model", "verify", str(ws["model"]), "--policy", str(strict), "--public-key", str(ws["pub"]),
                    "--json")
    assert out.returncode == 1 and _rules(out) == {"signing.provenance_missing"}


def fingerprint_from(ws) -> str:
    from airflow_aisec.core.gates.signing import key_fingerprint, load_public_key

    return key_fingerprint(load_public_key(ws["pub"].read_bytes()))


def test_tampered_statement_and_digest_mismatch(aisec_cli, ws):
    data = write_dataset(ws["dir"] / "train.csv")
    _gate(aisec_cli, ws, data)
    assert _sign(aisec_cli, ws, data).returncode == 0
    prov = ws["dir"] / "model.provenance.json"
    good = prov.read_bytes()
    envelope = json.loads(good)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["buildDefinition"]["externalParameters"]["run_id"] = "forged"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    prov.write_text(json.dumps(envelope))
    out = _verify(aisec_cli, ws)
    assert out.returncode == 1 and _rules(out) == {"signing.provenance_signature"}

    prov.write_bytes(good)
    (ws["model"] / "model.json").write_text('{"coef": [3, 4]}')  # retrained model, re-signed without provenance
    assert aisec_cli("model", "sign", str(ws["model"]), "--key", str(ws["priv"]), "--policy",
                     str(ws["policy"])).returncode == 0
    prov.write_bytes(good)  # the old statement is left next to the new signature
    out = _verify(aisec_cli, ws)
    assert out.returncode == 1 and _rules(out) == {"signing.provenance_digest"}


@pytest.mark.parametrize("kind", ["not_json", "huge", "fifo"])
def test_hostile_statement_is_one_line_exit_2(aisec_cli, ws, kind):
    import os

    assert _sign(aisec_cli, ws, extra=["--training-param", "epochs=3"]).returncode == 0
    prov = ws["dir"] / "model.provenance.json"
    assert prov.exists()
    if kind == "not_json":
        prov.write_bytes(b"\xff{" * 100)
    elif kind == "huge":
        with open(prov, "wb") as fh:
            fh.truncate(64 * 1024 * 1024)  # sparse, above the 16 MiB default limit
    else:
        prov.unlink()
        os.mkfifo(prov)
    for args in (["model", "verify", str(ws["model"]), "--policy", str(ws["policy"]), "--public-key",
                  str(ws["pub"]), "--require-provenance", "--evidence", str(ws["evidence"])],
                 ["model", "bom", str(ws["model"])]):
        out = aisec_cli(*args, timeout=120)
        assert out.returncode == 2, (kind, args[1], out.stdout, out.stderr)
        # (the result recorded in --evidence is announced on its own "evidence:" line)
        lines = [line for line in out.stderr.splitlines() if line.strip() and not line.startswith("evidence:")]
        assert len(lines) == 1 and "model.provenance.json" in lines[0], (kind, out.stderr)


def test_bom_without_provenance_exit_2(aisec_cli, ws):
    out = aisec_cli("model", "bom", str(ws["model"]))
    assert out.returncode == 2 and "no provenance statement" in out.stderr


@pytest.mark.integration
def test_transit_sign_verify_with_provenance(aisec_cli, ws, bao_server):
    client = bao_server.client()
    if "transit/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("transit", path="transit")
    name = f"prov-cli-{uuid.uuid4().hex[:8]}"
    client.secrets.transit.create_key(name=name, key_type="ecdsa-p256")
    policy = write_policy(ws["dir"] / "transit.yaml", transit=name, require_provenance=True)
    env = {"VAULT_ADDR": bao_server.addr, "VAULT_TOKEN": bao_server.token}
    data = write_dataset(ws["dir"] / "train.csv")
    _gate(aisec_cli, ws, data)
    out = aisec_cli("model", "sign", str(ws["model"]), "--transit-key", name, "--policy", str(policy),
                    "--dataset", str(data), "--evidence", str(ws["evidence"]), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    out = aisec_cli("model", "verify", str(ws["model"]), "--transit-key", name, "--policy", str(policy),
                    "--evidence", str(ws["evidence"]), "--json", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["metrics"]["provenance_verified"] is True
    assert bao_server.token not in out.stdout + out.stderr
    # no trail given: the datasets cannot be checked -> bad input, not a pass
    out = aisec_cli("model", "verify", str(ws["model"]), "--transit-key", name, "--policy", str(policy), env=env)
    assert out.returncode == 2 and "--evidence" in out.stderr
