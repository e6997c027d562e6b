"""``aisec pii scan`` / ``aisec pii redact``: exit codes, JSON, evidence, S3, Vault, and no leaked values."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
STRICT = str(REPO / "policies" / "strict.yaml")
SSN = "372-81-4409"
EMAIL = "zq.cli-planted@example.com"
KEY = "cli-hmac-key-0123456789abcdef"
PLANTED = [SSN, EMAIL, "372814409", KEY]


@pytest.fixture
def data(tmp_path):
    dirty = tmp_path / "dirty.csv"
    pacsv.write_csv(pa.table({
        "id": list(range(20)),
        "email": [EMAIL if i % 2 else "" for i in range(20)],
        "notes": [f"ssn {SSN} on file" if i == 3 else "fine" for i in range(20)],
    }), dirty)
    clean = tmp_path / "clean.parquet"
    pq.write_table(pa.table({"id": list(range(20)), "txt": ["hello world"] * 20}), clean)
    return dirty, clean


def no_leak(*texts: str) -> None:
    for text in texts:
        for value in PLANTED:
            assert value not in text


def test_scan_exit_codes_and_json(aisec_cli, data, tmp_path):
    dirty, clean = data
    ok = aisec_cli("pii", "scan", str(clean), "--policy", STRICT)
    assert ok.returncode == 0, ok.stderr
    assert "verdict: PASS" in ok.stdout

    bad = aisec_cli("pii", "scan", str(dirty), "--policy", STRICT, "--json")
    assert bad.returncode == 1, bad.stderr
    result = json.loads(bad.stdout)
    assert result["gate"] == "pii" and result["verdict"] == "fail"
    assert {(f["location"]["column"], f["location"]["entity"]) for f in result["findings"]} == {
        ("email", "EMAIL_ADDRESS"), ("notes", "US_SSN")}
    assert result["metrics"]["classification"] == "public"
    assert result["metrics"]["scan"]["mode"] == "full"
    assert bad.stderr.strip() == ""  # no traceback, no tldextract download attempt, no library noise
    no_leak(bad.stdout, bad.stderr)

    # declared level: e-mail allowed internally, the SSN is not
    internal = aisec_cli("pii", "scan", str(dirty), "--policy", STRICT, "--classification", "internal", "--json")
    assert internal.returncode == 1
    assert [f["location"]["entity"] for f in json.loads(internal.stdout)["findings"]] == ["US_SSN"]
    restricted = aisec_cli("pii", "scan", str(dirty), "--policy", STRICT, "--classification", "restricted")
    assert restricted.returncode == 0


def test_scan_records_evidence(aisec_cli, data, tmp_path):
    dirty, _ = data
    evidence = tmp_path / "evidence"
    out = aisec_cli("pii", "scan", str(dirty), "--policy", STRICT, "--evidence", str(evidence))
    assert out.returncode == 1
    assert "evidence:" in out.stderr
    stored = "".join(p.read_text() for p in evidence.rglob("*") if p.is_file())
    assert '"gate": "pii"' in stored or '"gate":"pii"' in stored
    no_leak(stored, out.stdout, out.stderr)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda d: d / "missing.csv", "file not found"),
        (lambda d: (d / "empty.csv").write_text("id,email\n") and d / "empty.csv", "empty"),
        (lambda d: (d / "cut.parquet").write_bytes(b"PAR1" + b"\x00" * 50) and d / "cut.parquet", "Parquet"),
        (lambda d: (d / "t.json").write_text("{}") and d / "t.json", "format"),
    ],
)
def test_bad_input_exit_2_one_line(aisec_cli, tmp_path, make, fragment):
    path = make(tmp_path)
    out = aisec_cli("pii", "scan", str(path), "--policy", STRICT)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aisec: ") and fragment.lower() in lines[0].lower()
    assert "Traceback" not in out.stderr + out.stdout


def test_bad_classification_and_missing_policy_column(aisec_cli, data, tmp_path):
    dirty, _ = data
    out = aisec_cli("pii", "scan", str(dirty), "--policy", STRICT, "--classification", "topsecret")
    assert out.returncode == 2 and "unknown classification 'topsecret'" in out.stderr
    policy = tmp_path / "cols.yaml"
    policy.write_text("version: 1\nname: cols\npii:\n  columns: [notes, ssn]\n")
    out = aisec_cli("pii", "scan", str(dirty), "--policy", str(policy))
    assert out.returncode == 2 and "'ssn'" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_unreachable_s3_exit_3(aisec_cli, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = aisec_cli("pii", "scan", "s3://b/k.parquet", "--policy", STRICT, "--endpoint-url",
                    f"http://127.0.0.1:{port}",
                    env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1",
                         "AWS_MAX_ATTEMPTS": "1"}, timeout=120)
    assert out.returncode == 3, out.stderr
    assert "unreachable" in out.stderr


@pytest.mark.integration
def test_s3_scan_and_missing_object(aisec_cli, s3_server, data):
    dirty, clean = data
    client = s3_server.client()
    client.create_bucket(Bucket="cli-pii")
    client.upload_file(str(dirty), "cli-pii", "dirty.csv")
    client.upload_file(str(clean), "cli-pii", "clean.parquet")
    assert aisec_cli("pii", "scan", "s3://cli-pii/clean.parquet", "--policy", STRICT).returncode == 0
    bad = aisec_cli("pii", "scan", "s3://cli-pii/dirty.csv", "--policy", STRICT)
    assert bad.returncode == 1
    missing = aisec_cli("pii", "scan", "s3://cli-pii/nope.csv", "--policy", STRICT)
    assert missing.returncode == 2 and "not found" in missing.stderr
    no_leak(bad.stdout, bad.stderr)


def test_redact_cli_mask(aisec_cli, data, tmp_path):
    dirty, _ = data
    before = dirty.read_bytes()
    out_path = tmp_path / "clean.csv"
    out = aisec_cli("pii", "redact", str(dirty), str(out_path), "--policy", STRICT, "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["verdict"] == "pass" and result["metrics"]["redaction"]["published"] is True
    assert dirty.read_bytes() == before
    text = out_path.read_text()
    assert "<EMAIL_ADDRESS>" in text and "<US_SSN>" in text
    no_leak(text, out.stdout, out.stderr)
    # the redacted copy passes the gate
    assert aisec_cli("pii", "scan", str(out_path), "--policy", STRICT).returncode == 0
    # never over the input
    same = aisec_cli("pii", "redact", str(dirty), str(dirty), "--policy", STRICT)
    assert same.returncode == 2 and "must not overwrite its input" in same.stderr


@pytest.mark.integration
def test_redact_cli_hash_with_vault_key(aisec_cli, bao_server, data, tmp_path):
    dirty, _ = data
    bao_server.client().secrets.kv.v2.create_or_update_secret(path="aisec/cli-hmac", secret={"key": KEY})
    policy = tmp_path / "hash.yaml"
    policy.write_text("version: 1\nname: hash\npii:\n  levels: {public: {forbidden: ['*']}}\n"
                      "  redaction: {method: hash, key: {vault_path: aisec/cli-hmac}}\n")
    out_path = tmp_path / "hashed.parquet"
    env = {"VAULT_ADDR": bao_server.addr, "VAULT_TOKEN": bao_server.token}
    out = aisec_cli("pii", "redact", str(dirty), str(out_path), "--policy", str(policy), "--json", env=env)
    assert out.returncode == 0, out.stderr
    emails = pq.read_table(out_path).column("email").to_pylist()
    assert emails[1].startswith("EMAIL_ADDRESS_") and emails[1] == emails[3]
    no_leak(out.stdout, out.stderr, json.dumps(pq.read_table(out_path).to_pylist()))
    # no Vault configured: a clear configuration error, nothing written
    out_path2 = tmp_path / "nokey.parquet"
    out = aisec_cli("pii", "redact", str(dirty), str(out_path2), "--policy", str(policy),
                    env={"VAULT_ADDR": "", "VAULT_TOKEN": ""})
    assert out.returncode == 2 and "VAULT_ADDR" in out.stderr and not out_path2.exists()
