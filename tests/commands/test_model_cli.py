"""``aisec model sign|verify|scan`` as a user runs them: real processes, exit codes, --json, --evidence."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers.net import free_port
from tests.helpers.vault import enable_engine

MODEL_SIGNING_CLI = str(Path(sys.executable).parent / "model_signing")


@pytest.fixture(scope="module")
def pem(tmp_path_factory):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from airflow_aisec.core.gates.signing import key_fingerprint

    d = tmp_path_factory.mktemp("clikeys")
    keys = {}
    for name, password in (("a", None), ("b", None), ("enc", b"pw-for-cli-test")):
        key = ec.generate_private_key(ec.SECP256R1())
        enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        (d / f"{name}.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8, enc))
        (d / f"{name}.pub").write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        keys[name] = (d / f"{name}.pem", d / f"{name}.pub", key_fingerprint(key.public_key()))
    return keys


@pytest.fixture
def setup(tmp_path, pem):
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    # A valid safetensors file (the scan checks that the header's offsets cover the data exactly).
    header = b'{"w":{"dtype":"U8","shape":[2048],"data_offsets":[0,2048]}}'
    (model / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(range(256)) * 8)
    (model / "sub" / "config.json").write_text('{"a": 1}')
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nname: cli-test\n"
        "signing:\n  trusted_keys:\n"
        f"    - {{id: a, fingerprint: '{pem['a'][2]}'}}\n"
        f"    - {{id: enc, fingerprint: '{pem['enc'][2]}'}}\n"
        "model_scan: {}\n"
    )
    return model, policy


def as_json(proc) -> dict:
    start = proc.stdout.index("{")
    return json.loads(proc.stdout[start:])


def test_sign_then_verify(aisec_cli, setup, pem, tmp_path):
    model, policy = setup
    out = aisec_cli("model", "sign", str(model), "--key", str(pem["a"][0]))
    assert out.returncode == 0, out.stderr
    assert f"signature: {model}.sig" in out.stdout and pem["a"][2] in out.stdout
    assert "[not in the policy trusted_keys]" in out.stdout  # no --policy: built-in defaults
    out = aisec_cli("model", "verify", str(model), "--policy", str(policy), "--public-key", str(pem["a"][1]))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verdict: PASS" in out.stdout
    out = aisec_cli("model", "verify", str(model), "--policy", str(policy), "--public-key", str(pem["a"][1]),
                    "--json", "--evidence", str(tmp_path / "ev"))
    result = as_json(out)
    assert result["verdict"] == "pass" and result["metrics"]["trusted_key_id"] == "a"
    assert "evidence:" in out.stderr


@pytest.mark.parametrize("attack, rule", [
    ("tamper", "signing.tampered"),
    ("other_key", "signing.untrusted_key"),
    ("garbage", "signing.malformed"),
    ("unsigned", "signing.unsigned"),
])
def test_verification_failures_exit_1(aisec_cli, setup, pem, attack, rule):
    model, policy = setup
    assert aisec_cli("model", "sign", str(model), "--key", str(pem["a"][0]), "--policy", str(policy)).returncode == 0
    sig = Path(f"{model}.sig")
    if attack == "tamper":
        (model / "sub" / "config.json").write_text('{"a": 2}')
    elif attack == "other_key":
        assert aisec_cli("model", "sign", str(model), "--key", str(pem["b"][0])).returncode == 0
    elif attack == "garbage":
        sig.write_text("{not json")
    else:
        sig.unlink()
    out = aisec_cli("model", "verify", str(model), "--policy", str(policy), "--public-key", str(pem["a"][1]),
                    "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    result = as_json(out)
    assert result["verdict"] == "fail" and [f["rule"] for f in result["findings"]] == [rule]


def test_invalid_input_exits_2(aisec_cli, setup, pem, tmp_path):
    model, policy = setup
    cases = [
        ("model", "verify", str(model), "--public-key", str(pem["a"][1])),  # no policy
        ("model", "verify", str(model), "--policy", str(tmp_path / "nope.yaml"), "--public-key", str(pem["a"][1])),
        ("model", "verify", str(model), "--policy", str(policy), "--public-key", "x", "--transit-key", "y"),
        ("model", "sign", str(tmp_path / "missing"), "--key", str(pem["a"][0])),
        ("model", "sign", str(model), "--key", str(tmp_path / "missing.pem")),
        ("model", "sign", str(model), "--key", str(pem["a"][0]), "--signature", str(model / "inside.sig")),
        ("model", "sign", str(model), "--transit-key", "k"),  # no VAULT_ADDR
        ("model", "scan", str(tmp_path / "missing"), "--policy", str(policy)),
    ]
    for args in cases:
        out = aisec_cli(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr.strip(), args


def test_encrypted_key_password_from_the_environment_never_printed(aisec_cli, setup, pem, tmp_path):
    model, policy = setup
    out = aisec_cli("model", "sign", str(model), "--key", str(pem["enc"][0]), "--policy", str(policy))
    assert out.returncode == 2 and "encrypted" in out.stderr
    out = aisec_cli("model", "sign", str(model), "--key", str(pem["enc"][0]), "--policy", str(policy), "--json",
                    "--evidence", str(tmp_path / "ev"), env={"AISEC_SIGNING_KEY_PASSWORD": "pw-for-cli-test"})
    assert out.returncode == 0, out.stderr
    assert as_json(out)["metrics"]["trusted_key_id"] == "enc"
    key_body = [ln for ln in pem["enc"][0].read_text().splitlines() if "-----" not in ln]
    recorded = "".join(p.read_text() for p in (tmp_path / "ev").rglob("*") if p.is_file())
    for text in (out.stdout, out.stderr, recorded):
        assert "pw-for-cli-test" not in text
        assert not [ln for ln in key_body if ln in text]


def test_interop_with_the_stock_cli(aisec_cli, setup, pem, tmp_path):
    model, policy = setup
    assert aisec_cli("model", "sign", str(model), "--key", str(pem["a"][0])).returncode == 0
    stock = subprocess.run([MODEL_SIGNING_CLI, "verify", "key", str(model), "--signature", f"{model}.sig",
                            "--public_key", str(pem["a"][1])], check=False, capture_output=True, text=True,
                           timeout=300)
    assert stock.returncode == 0, stock.stderr
    sig = tmp_path / "stock.sig"
    stock = subprocess.run([MODEL_SIGNING_CLI, "sign", "key", str(model), "--signature", str(sig),
                            "--private_key", str(pem["a"][0])], check=False, capture_output=True, text=True,
                           timeout=300)
    assert stock.returncode == 0, stock.stderr
    out = aisec_cli("model", "verify", str(model), "--policy", str(policy), "--public-key", str(pem["a"][1]),
                    "--signature", str(sig))
    assert out.returncode == 0, out.stdout + out.stderr


def test_scan(aisec_cli, setup):
    model, policy = setup
    out = aisec_cli("model", "scan", str(model), "--policy", str(policy))
    assert out.returncode == 0, out.stdout + out.stderr
    (model / "extra.pkl").write_bytes(b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system"
                                      b"\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.")
    out = aisec_cli("model", "scan", str(model), "--policy", str(policy), "--json")
    assert out.returncode == 1
    (finding,) = as_json(out)["findings"]
    assert finding["rule"] == "model_scan.dangerous_import" and finding["location"]["imports"] == ["posix.system"]
    no_section = model.parent / "nosection.yaml"
    no_section.write_text("version: 1\nname: x\n")
    assert aisec_cli("model", "scan", str(model), "--policy", str(no_section)).returncode == 2


def test_scan_of_a_pandas_fitted_joblib_passes_and_names_the_scanners_that_did_not_scan(aisec_cli, tmp_path):
    """Issue 13: sklearn fitted on a DataFrame, joblib.dump, model-supply-chain.yaml: PASS, never silent."""
    from tests.helpers import model_corpus
    from tests.helpers.env import REPO

    model = model_corpus.build_corpus(tmp_path, tmp_path / "LOADED", ["sk_logreg_pandas_joblib"])[
        "sk_logreg_pandas_joblib"]
    policy = REPO / "policies" / "model-supply-chain.yaml"
    out = aisec_cli("model", "scan", str(model), "--policy", str(policy))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verdict: PASS" in out.stdout and "None.dtype" not in out.stdout
    lines = out.stdout.splitlines()
    assert "  not scanned by picklescan: model.joblib (parse error)" in lines
    assert any(line.startswith("  not scanned by modelscan: model.joblib (") and "SCAN_NOT_SUPPORTED" in line
               for line in lines)
    assert "  scanner errors -> fail_on_scanner_error: false -> no finding; the built-in analysis covered each file" \
        in lines
    metrics = as_json(aisec_cli("model", "scan", str(model), "--policy", str(policy), "--json"))["metrics"]
    assert set(metrics["not_scanned"]) == {"modelscan", "picklescan"}

    strict = tmp_path / "fail-on-error.yaml"
    strict.write_text("version: 1\nname: fail-on-error\nmodel_scan:\n  fail_on_scanner_error: true\n")
    out = aisec_cli("model", "scan", str(model), "--policy", str(strict))
    assert out.returncode == 1
    assert "[model_scan.scanner_error]" in out.stdout and "fail_on_scanner_error is true" in out.stdout
    assert not (tmp_path / "LOADED").exists()


@pytest.mark.integration
def test_transit_through_the_cli_and_unreachable_vault(aisec_cli, setup, bao_server, tmp_path):
    client = bao_server.client()
    enable_engine(client, "transit", "transit")
    name = f"cli-{uuid.uuid4().hex[:8]}"
    client.secrets.transit.create_key(name=name, key_type="ecdsa-p256")
    model, _ = setup
    policy = tmp_path / "transit.yaml"
    policy.write_text(f"version: 1\nname: t\nsigning:\n  trusted_keys:\n"
                      f"    - {{id: t, transit: {{name: {name}, versions: [1]}}}}\n")
    env = {"VAULT_ADDR": bao_server.addr, "VAULT_TOKEN": bao_server.token}
    out = aisec_cli("model", "sign", str(model), "--transit-key", name, "--policy", str(policy), env=env)
    assert out.returncode == 0, out.stderr
    assert f"Transit key {name} v1" in out.stdout
    out = aisec_cli("model", "verify", str(model), "--policy", str(policy), "--transit-key", name, "--json",
                    "--evidence", str(tmp_path / "ev"), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    recorded = "".join(p.read_text() for p in (tmp_path / "ev").rglob("*") if p.is_file())
    for text in (out.stdout, out.stderr, recorded):
        assert bao_server.token not in text

    pub = tmp_path / "t.pub"
    pub.write_text(client.secrets.transit.read_key(name=name)["data"]["keys"]["1"]["public_key"])
    stock = subprocess.run([MODEL_SIGNING_CLI, "verify", "key", str(model), "--signature", f"{model}.sig",
                            "--public_key", str(pub)], check=False, capture_output=True, text=True, timeout=300)
    assert stock.returncode == 0, stock.stderr

    port = free_port()
    down = {"VAULT_ADDR": f"http://127.0.0.1:{port}", "VAULT_TOKEN": "x"}
    out = aisec_cli("model", "sign", str(model), "--transit-key", name, env=down)
    assert out.returncode == 3, out.stdout + out.stderr
    out = aisec_cli("model", "verify", str(model), "--policy", str(policy), "--transit-key", name, env=down)
    assert out.returncode == 3, out.stdout + out.stderr


@pytest.mark.integration
def test_s3_model_through_the_cli(aisec_cli, s3_server, pem, setup):
    _model, policy = setup
    client = s3_server.client()
    bucket = f"cli-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(Bucket=bucket, Key="m/w.safetensors", Body=b"\x02" + b"\x00" * 7 + b"{}")
    out = aisec_cli("model", "sign", f"s3://{bucket}/m/", "--key", str(pem["a"][0]))
    assert out.returncode == 0, out.stderr
    out = aisec_cli("model", "verify", f"s3://{bucket}/m/", "--policy", str(policy), "--public-key", str(pem["a"][1]))
    assert out.returncode == 0, out.stdout + out.stderr
    client.put_object(Bucket=bucket, Key="m/w.safetensors", Body=b"\x02" + b"\x00" * 7 + b"{}")
    out = aisec_cli("model", "verify", f"s3://{bucket}/m/", "--policy", str(policy), "--public-key",
                    str(pem["a"][1]), "--json")
    assert out.returncode == 1
    assert as_json(out)["findings"][0]["location"]["reason"] == "s3_version_changed"


def test_sign_refuses_a_name_verify_would_refuse(aisec_cli, setup, pem, tmp_path):
    model, _policy = setup
    (model / "sub" / "we\\ird.bin").write_bytes(b"w")
    out = aisec_cli("model", "sign", str(model), "--key", str(pem["a"][0]))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "not a plain relative path" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not Path(f"{model}.sig").exists()
