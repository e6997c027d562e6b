"""``aisec endpoint check`` against real serving processes (HTTPS with a CA made in the test)."""

from __future__ import annotations

import json

import pytest

from tests.helpers.endpoint_setup import write_endpoint_setup
from tests.helpers.net import free_port
from tests.helpers.serving import running_serving

TOKEN = "cli-token-PLANTED-4471-endpoint"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return write_endpoint_setup(tmp_path_factory.mktemp("endpoint-cli"), "cli", extra='  min_tls_version: "1.2"\n')


def _run(aisec_cli, url, policy, pki, *extra, env=None):
    return aisec_cli("endpoint", "check", url, "--policy", str(policy), "--ca-bundle", str(pki.ca),
                     "--token-env", "SERVING_TOKEN_FOR_GATE", *extra,
                     env={"SERVING_TOKEN_FOR_GATE": TOKEN, **(env or {})})


def test_hardened_endpoint_exits_0(aisec_cli, setup):
    pki, policy = setup
    with running_serving("hardened", TOKEN, pki=pki) as server:
        out = _run(aisec_cli, server.url, policy, pki)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verdict: PASS" in out.stdout


def test_insecure_endpoint_exits_1_and_never_prints_the_token(aisec_cli, setup, tmp_path):
    pki, policy = setup
    evidence = tmp_path / "evidence"
    with running_serving("insecure", TOKEN, pki=pki) as server:
        out = _run(aisec_cli, server.url, policy, pki, "--json", "--evidence", str(evidence))
    assert out.returncode == 1, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert {f["rule"] for f in doc["findings"]} >= {"endpoint.unauthenticated_access",
                                                     "endpoint.invalid_token_accepted",
                                                     "endpoint.forbidden_path_served"}
    stored = "".join(p.read_text() for p in evidence.rglob("*") if p.is_file())
    for text in (out.stdout, out.stderr, stored):
        assert TOKEN not in text and "PLANTED" not in text


def test_bad_input_exits_2_with_one_line(aisec_cli, setup):
    pki, policy = setup
    for args, env in ((("https://user:pw@127.0.0.1:1/",), None),
                      (("https://127.0.0.1:1/",), {"SERVING_TOKEN_FOR_GATE": ""})):
        out = _run(aisec_cli, args[0], policy, pki, env=env)
        assert out.returncode == 2, out.stdout + out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
        assert "pw" not in out.stderr


def test_unreachable_endpoint_exits_3(aisec_cli, setup):
    pki, policy = setup
    out = _run(aisec_cli, f"https://127.0.0.1:{free_port()}", policy, pki)
    assert out.returncode == 3, out.stdout + out.stderr
