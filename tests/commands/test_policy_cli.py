"""``aisec policy`` verbs and the CLI's exit-code contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_validate_strict_policy(aisec_cli):
    out = aisec_cli("policy", "validate", str(REPO / "policies" / "strict.yaml"))
    assert out.returncode == 0, out.stderr
    assert "valid policy 'strict'" in out.stdout and "sha256=" in out.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name: x\ntypo_key: 1\n", "field 'typo_key': unknown key"),
        ("- a\n", "must be a YAML mapping"),
        ("name: [x\n", "malformed YAML"),
        ("name: x\nenforcement: maybe\n", "field 'enforcement'"),
        ("name: x\nwaivers: [{rule: a, reason: b, approved_by: c}]\n", "field 'waivers.0.expires'"),
        ("", "policy is empty"),
    ],
)
def test_validate_bad_policy_exits_2_with_one_line(aisec_cli, tmp_path, content, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    out = aisec_cli("policy", "validate", str(path))
    assert out.returncode == 2
    assert expected in out.stderr and str(path) in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_validate_missing_and_binary_exit_2(aisec_cli, tmp_path):
    assert aisec_cli("policy", "validate", str(tmp_path / "nope.yaml")).returncode == 2
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\x00\x01\x02")
    out = aisec_cli("policy", "validate", str(binary))
    assert out.returncode == 2 and "binary" in out.stderr


def test_schema_is_json_schema(aisec_cli):
    out = aisec_cli("policy", "schema")
    assert out.returncode == 0
    schema = json.loads(out.stdout)
    assert schema["title"] == "Policy" and schema["additionalProperties"] is False
    for section in ("source", "pii", "secrets", "signing", "model_scan", "bias", "drift", "platform"):
        assert section in schema["properties"]


def test_usage_error_exits_2(aisec_cli):
    out = aisec_cli("policy", "frobnicate")
    assert out.returncode == 2

