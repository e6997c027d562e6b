"""Every file a user names is read through the bounded reader: a FIFO, ``/dev/zero`` (behind a symlink),
a directory or a symlink loop given as a policy, public key, private key, signature, pin manifest or
audit record ends in one clear line and exit 2 (1 for the audit trail: a broken chain), never a hang
(pytest-timeout is the guard), a memory blow-up or a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.signing_keys import write_pem_keypair

KINDS = ("fifo", "dev_zero", "directory", "symlink_loop")


def make_hostile(path: Path, kind: str) -> Path:
    """Put a hostile non-file at ``path`` (replacing whatever is there)."""
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif os.path.lexists(path):
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    else:
        other = path.with_name(path.name + ".loop")
        path.symlink_to(other)
        other.symlink_to(path)
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return write_pem_keypair(tmp_path_factory.mktemp("hostile-keys"))


@pytest.fixture
def model(tmp_path, keys):
    m = tmp_path / "model"
    m.mkdir()
    (m / "config.json").write_text('{"a": 1}')
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"version: 1\nname: hostile\nsigning:\n  trusted_keys:\n    - {{id: a, fingerprint: '{keys[2]}'}}\n")
    return m, policy


def assert_one_line(out, code: int) -> None:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stdout + out.stderr
    # The error is one line on stderr (stdout may carry the verb's one-line "verdict: ERROR" summary).
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert len(out.stdout.splitlines()) <= 1, out.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", KINDS)
def test_policy(aisec_cli, model, keys, kind):
    m, policy = model
    make_hostile(policy, kind)
    out = aisec_cli("model", "verify", str(m), "--policy", str(policy), "--public-key", str(keys[1]))
    assert_one_line(out, 2)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", KINDS)
def test_public_key(aisec_cli, model, keys, kind, tmp_path):
    m, policy = model
    assert aisec_cli("model", "sign", str(m), "--key", str(keys[0])).returncode == 0
    pub = make_hostile(tmp_path / "k.pub", kind)
    out = aisec_cli("model", "verify", str(m), "--policy", str(policy), "--public-key", str(pub))
    assert_one_line(out, 2)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", KINDS)
def test_private_key(aisec_cli, model, kind, tmp_path):
    m, _ = model
    key = make_hostile(tmp_path / "k.pem", kind)
    out = aisec_cli("model", "sign", str(m), "--key", str(key))
    assert_one_line(out, 2)
    assert not os.path.lexists(f"{m}.sig")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", KINDS)
def test_signature(aisec_cli, model, keys, kind, tmp_path):
    m, policy = model
    sig = make_hostile(tmp_path / "model.sig", kind)
    out = aisec_cli("model", "verify", str(m), "--policy", str(policy), "--public-key", str(keys[1]),
                    "--signature", str(sig))
    assert_one_line(out, 2)


def test_missing_signature_still_means_unsigned(aisec_cli, model, keys):
    m, policy = model
    out = aisec_cli("model", "verify", str(m), "--policy", str(policy), "--public-key", str(keys[1]), "--json")
    assert out.returncode == 1 and "signing.unsigned" in out.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", KINDS)
def test_pin_manifest(aisec_cli, tmp_path, kind):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("a,b\n1,2\n")
    make_hostile(tmp_path / "manifest.json", kind)
    policy = tmp_path / "pinned.yaml"
    policy.write_text(f"version: 1\nname: p\nsource:\n  origins: ['{data}/*']\n"
                      "  pinning: {required: true, manifest: manifest.json}\n")
    out = aisec_cli("source", "check", str(data / "train.csv"), "--policy", str(policy))
    assert_one_line(out, 2)


@pytest.fixture
def trail(tmp_path):
    from airflow_aisec.core.evidence import open_evidence_store

    store = open_evidence_store(tmp_path / "ev")
    for i in range(2):
        store.append({"gate": "pii", "verdict": "pass", "i": i})
    return tmp_path / "ev"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["HEAD", "000000000001.json"])
def test_audit_head_and_records(aisec_cli, trail, kind, name):
    make_hostile(trail / name, kind)
    out = aisec_cli("audit", "verify", str(trail))
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stdout + out.stderr
    assert next(line for line in (out.stdout + out.stderr).splitlines() if line.strip()).startswith("BROKEN")
    shown = aisec_cli("audit", "show", str(trail))
    assert shown.returncode in (0, 1), (shown.stdout, shown.stderr)
    assert "Traceback" not in shown.stdout + shown.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["missing", "symlink_loop"])
def test_audit_show_of_no_trail_is_exit_2(aisec_cli, tmp_path, kind):
    location = tmp_path / "ev"
    if kind == "symlink_loop":
        make_hostile(location, kind)
    for verb in ("show", "verify"):
        out = aisec_cli("audit", verb, str(location))
        assert_one_line(out, 2)
