"""``aisec secrets check``: exit codes, JSON, evidence, and no secret value in any output."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.helpers.net import free_port
from tests.helpers.vault import limited_token, seed_kv

pytestmark = pytest.mark.integration

SECRETS = {
    "cli/app/db": {"password": "cli-db-pw-" + uuid.uuid4().hex},
    "cli/app/nested/api": {"api_key": "cli-api-" + uuid.uuid4().hex},
    "cli/other/x": {"password": "cli-other-" + uuid.uuid4().hex},
}
VALUES = [v for d in SECRETS.values() for v in d.values()]

GOOD = """
name: cli-secrets
secrets:
  database: {mount: dbcli}
  grants:
    - dag_id: "train_*"
      paths: ["cli/app/db", "cli/app/**"]
      database_roles: [cli-ro]
"""
BAD = (
    GOOD
    + """
    - dag_id: "deploy"
      paths: ["cli/other/x", "cli/app/missing"]
"""
)


@pytest.fixture(scope="module")
def cli_vault(bao_server):
    root = bao_server.client()
    seed_kv(root, SECRETS)
    token = limited_token(
        root,
        "cli-limited",
        """
        path "secret/data/cli/app/*" { capabilities = ["read"] }
        path "secret/metadata/cli/*" { capabilities = ["list"] }
        path "dbcli/creds/cli-ro" { capabilities = ["read"] }
        """,
        ttl="1h",
    )
    return {"VAULT_ADDR": bao_server.addr, "VAULT_TOKEN": token}


@pytest.fixture
def policies(tmp_path):
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    (tmp_path / "nosection.yaml").write_text("name: empty\n")
    return tmp_path


def _no_values(proc) -> None:
    assert not [v for v in VALUES if v in proc.stdout or v in proc.stderr]


def test_everything_granted_to_a_dag_is_readable_exits_0(aisec_cli, cli_vault, policies):
    proc = aisec_cli("secrets", "check", "--policy", str(policies / "good.yaml"), "--dag-id", "train_daily",
                     "--json", env=cli_vault)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["gate"] == "secrets" and result["verdict"] == "pass"
    # db, nested/api (db deduplicated), the database role
    assert result["metrics"]["secrets"] == 2 and result["metrics"]["database_roles"] == 1
    assert result["metrics"]["versions"] == {"cli/app/db": 1, "cli/app/nested/api": 1}
    assert {i["uri"] for i in result["inputs"]} == {
        "vault://secret/cli/app/db?version=1",
        "vault://secret/cli/app/nested/api?version=1",
        "vault://dbcli/creds/cli-ro",
    }
    _no_values(proc)


def test_requested_paths_are_checked_like_the_operator_does(aisec_cli, cli_vault, policies):
    base = ("secrets", "check", "--policy", str(policies / "bad.yaml"))
    ok = aisec_cli(*base, "cli/app/db:password", "--dag-id", "train_daily", "--task-id", "fetch", env=cli_vault)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    not_granted = aisec_cli(*base, "cli/other/x", "--dag-id", "train_daily", env=cli_vault)
    assert not_granted.returncode == 1 and "[secrets.path_not_allowed]" in not_granted.stdout
    no_key = aisec_cli(*base, "cli/app/db:password,api_key", "--dag-id", "train_daily", env=cli_vault)
    assert no_key.returncode == 2 and "lacks required key(s): api_key" in no_key.stderr
    for proc in (ok, not_granted, no_key):
        _no_values(proc)


def test_unreadable_or_missing_paths_exit_2_and_dag_filter(aisec_cli, cli_vault, policies, tmp_path):
    evidence = tmp_path / "ev"
    proc = aisec_cli(
        "secrets", "check", "--policy", str(policies / "bad.yaml"), "--dag-id", "deploy",
        "--evidence", str(evidence), env=cli_vault,
    )
    assert proc.returncode == 2
    assert "Vault denied access to vault://secret/cli/other/x" in proc.stderr
    _no_values(proc)
    from airflow_aisec.core.evidence import open_evidence_store

    [record] = open_evidence_store(evidence).read_records()
    assert record["payload"]["verdict"] == "error"
    assert not [v for v in VALUES if v in json.dumps(record)]
    missing = aisec_cli("secrets", "check", "--policy", str(policies / "bad.yaml"), "--dag-id", "deploy",
                        "cli/app/missing", env=cli_vault)
    assert missing.returncode == 2 and "Vault path not found: vault://secret/cli/app/missing" in missing.stderr
    only_train = aisec_cli(
        "secrets", "check", "--policy", str(policies / "bad.yaml"), "--dag-id", "train_daily", env=cli_vault
    )
    assert only_train.returncode == 0, only_train.stdout


def test_vault_unreachable_exits_3(aisec_cli, policies):
    port = free_port()
    proc = aisec_cli(
        "secrets",
        "check",
        "--policy",
        str(policies / "good.yaml"),
        "--dag-id",
        "train_daily",
        env={"VAULT_ADDR": f"http://127.0.0.1:{port}", "VAULT_TOKEN": "t"},
    )
    assert proc.returncode == 3
    assert "unreachable" in proc.stderr


@pytest.mark.parametrize(
    "policy, env, args, message",
    [
        ("good.yaml", {"VAULT_ADDR": "", "VAULT_TOKEN": "t"}, (), "VAULT_ADDR is not set"),
        ("good.yaml", {"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": ""}, (), "VAULT_TOKEN is not set"),
        ("nosection.yaml", {}, (), "no 'secrets' section"),
        ("missing.yaml", {}, (), "policy file not found"),
        ("good.yaml", {"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "t"}, ("--dag-id", "nobody"),
         "grants DAG 'nobody' no secret path"),
        ("good.yaml", {"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "t"}, ("cli/../x",),
         "invalid secret path"),
    ],
)
def test_bad_configuration_exits_2(aisec_cli, policies, policy, env, args, message):
    proc = aisec_cli("secrets", "check", "--policy", str(policies / policy),
                     *(args if "--dag-id" in args else ("--dag-id", "train_daily", *args)), env=env)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_the_dag_id_is_required(aisec_cli, policies):
    proc = aisec_cli("secrets", "check", "--policy", str(policies / "good.yaml"))
    assert proc.returncode == 2 and "--dag-id" in proc.stderr


def test_a_rejected_token_is_an_access_error(aisec_cli, cli_vault, policies):
    proc = aisec_cli(
        "secrets",
        "check",
        "--policy",
        str(policies / "good.yaml"),
        "--dag-id",
        "train_daily",
        "--json",
        env={**cli_vault, "VAULT_TOKEN": "not-a-valid-token"},
    )
    assert proc.returncode == 2
    result = json.loads(proc.stdout)
    assert result["verdict"] == "error" and result["error"]["type"] == "AccessDeniedError"
    assert "not-a-valid-token" not in proc.stdout + proc.stderr
