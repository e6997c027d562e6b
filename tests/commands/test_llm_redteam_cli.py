"""``aisec llm redteam``: a vulnerable local model exits 1, a guarded one 0; the token comes from an
environment variable and never shows up; bad endpoints exit 2, unreachable ones 3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.model_server import running_model_server
from tests.helpers.net import free_port

REPO = Path(__file__).resolve().parents[2]
STRICT = str(REPO / "policies" / "strict.yaml")
TOKEN = "cli-model-token-91c2"


@pytest.mark.parametrize("mode, code, verdict", [("vulnerable", 1, "fail"), ("guarded", 0, "pass")])
def test_redteam_verdicts(aisec_cli, tmp_path, mode, code, verdict):
    record = tmp_path / "seen.txt"
    with running_model_server(mode, record=record, token=TOKEN) as server:
        out = aisec_cli("llm", "redteam", "--endpoint", server.url, "--policy", STRICT, "--model", "cand",
                        "--token-env", "MODEL_TOKEN", "--json", env={"MODEL_TOKEN": TOKEN})
        seen = server.recorded()
    assert out.returncode == code, out.stderr
    result = json.loads(out.stdout)
    assert result["gate"] == "llm_redteam" and result["verdict"] == verdict
    assert seen and not [v for v in [*seen, TOKEN] if v in out.stdout + out.stderr]


def test_token_env_missing_and_wrong_token(aisec_cli):
    out = aisec_cli("llm", "redteam", "--endpoint", "http://127.0.0.1:9", "--policy", STRICT, "--token-env", "NOPE_X",
                    env={"NOPE_X": ""})
    assert out.returncode == 2 and "NOPE_X" in out.stderr
    with running_model_server("guarded", token=TOKEN) as server:
        out = aisec_cli("llm", "redteam", "--endpoint", server.url, "--policy", STRICT, "--token-env", "T",
                        env={"T": "wrong-token-123"})
    # A refused token is an access problem (verdict error, exit 2), never a pass.
    assert out.returncode == 2 and "verdict: ERROR" in out.stdout and "HTTP 401" in out.stderr
    assert "wrong-token-123" not in out.stdout + out.stderr


def test_plain_http_elsewhere_than_loopback_exits_2(aisec_cli):
    out = aisec_cli("llm", "redteam", "--endpoint", "http://models.example.com", "--policy", STRICT)
    assert out.returncode == 2 and "https" in out.stderr


def test_unreachable_exits_3(aisec_cli):
    out = aisec_cli("llm", "redteam", "--endpoint", f"http://127.0.0.1:{free_port()}", "--policy", STRICT)
    assert out.returncode == 3, out.stdout + out.stderr
