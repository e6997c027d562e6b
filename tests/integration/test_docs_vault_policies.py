"""The Vault policies the documentation gives per gate (docs/operations/vault/*.hcl) are exactly enough.

Each HCL file is loaded as written into a real OpenBao server; a token holding only that policy (no
default policy) makes the calls the gate makes through ``VaultClient``, and they succeed, while a
neighbouring path stays denied. Every public ``VaultClient`` request method belongs to one of the
policies (``EXERCISED``), so a new kind of Vault call cannot go undocumented.
"""

from __future__ import annotations

import inspect
import secrets
from pathlib import Path

import pytest
from hvac import exceptions as hvac_exceptions

from tests.helpers.env import REPO
from tests.helpers.vault import example_pipeline_vault, postgres_database_engine, seed_kv

pytestmark = pytest.mark.integration

HCL = REPO / "docs" / "operations" / "vault"
DB_MOUNT, DB_ROLE = "database", "ml-training-readonly"  # the names the documented HCL uses
# The VaultClient requests each documented policy is tested with (each test checks its own row).
EXERCISED = {
    "secrets": {"kv_list", "capabilities_self", "kv_wrap", "wrapping_lookup", "unwrap", "kv_read",
                "database_credentials", "revoke_lease", "transit_read_key"},
    "signing": {"transit_read_key", "transit_sign_digest", "kv_read"},
    "single": {"kv_read", "kv_list"},
}


class Recording:
    """A VaultClient whose request methods are recorded by name (allowed or denied alike)."""

    def __init__(self, client, called: set[str]) -> None:
        from airflow_aisec.core.io.vault import VaultClient

        self._vault = VaultClient(client)
        self._called = called

    def __getattr__(self, name):
        self._called.add(name)
        return getattr(self._vault, name)


@pytest.fixture(scope="module")
def root(bao_server, postgres_dsn):
    client = bao_server.client()
    example_pipeline_vault(client, secret_path="ml/training/docs-vault-check")
    postgres_database_engine(client, DB_MOUNT, {DB_ROLE: ("5m", "10m"), "docs-other-role": ("5m", "10m")})
    return client


def token_client(bao_server, root, name: str):
    """An hvac client whose token holds only the documented policy ``name`` (no default policy)."""
    import hvac

    rules = (HCL / f"{name}.hcl").read_text()
    root.sys.create_or_update_policy(f"docs-{name}", rules)
    token = root.auth.token.create(policies=[f"docs-{name}"], no_default_policy=True, ttl="10m")["auth"]
    assert token["policies"] == [f"docs-{name}"]
    return hvac.Client(url=bao_server.addr, token=token["client_token"])


def denied(call) -> None:
    from airflow_aisec.exceptions import AccessDeniedError

    with pytest.raises(AccessDeniedError):
        call()


def test_secrets_policy(bao_server, root):
    value = "docs-" + secrets.token_urlsafe(12)
    seed_kv(root, {"ml/training/docs-vault-check": {"token": value}, "ml/other/docs-vault-check": {"token": "x"}})
    called: set[str] = set()
    vault = Recording(token_client(bao_server, root, "secrets"), called)

    # the gate: expand a folder grant, check a database grant, wrap the granted read
    assert "docs-vault-check" in vault.kv_list("secret", "ml/training")
    assert "read" in vault.capabilities_self(f"{DB_MOUNT}/creds/{DB_ROLE}")
    assert "deny" in vault.capabilities_self(f"{DB_MOUNT}/creds/docs-other-role")
    info = vault.kv_wrap("secret", "ml/training/docs-vault-check", ttl=60)
    # the consumer: look the hand-off up, open it once, read directly, get and revoke a database user
    lookup = vault.wrapping_lookup(info["token"], what="docs")
    assert lookup["creation_path"] == "secret/data/ml/training/docs-vault-check"
    assert vault.unwrap(info["token"], what="docs")["data"]["data"] == {"token": value}
    assert vault.kv_read("secret", "ml/training/docs-vault-check").data == {"token": value}
    creds = vault.database_credentials(DB_MOUNT, DB_ROLE)
    assert creds["data"]["username"] and creds["lease_id"].startswith(f"{DB_MOUNT}/creds/{DB_ROLE}/")
    root.sys.read_lease(creds["lease_id"])  # exists
    vault.revoke_lease(creds["lease_id"])
    with pytest.raises(hvac_exceptions.InvalidRequest):  # revoked through the narrow URL form
        root.sys.read_lease(creds["lease_id"])

    denied(lambda: vault.kv_read("secret", "ml/other/docs-vault-check"))
    denied(lambda: vault.database_credentials(DB_MOUNT, "docs-other-role"))
    denied(lambda: vault.transit_read_key("model-signing"))
    assert called == EXERCISED["secrets"]


def test_signing_policies(bao_server, root, tmp_path: Path):
    from airflow_aisec.core.gates.signing import sign_model, verify_model
    from airflow_aisec.core.policy import load_policy

    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text('{"coef": [[0.5]]}')
    strict = load_policy(REPO / "policies" / "strict.yaml").policy.signing

    called: set[str] = set()
    signer = Recording(token_client(bao_server, root, "signing-sign"), called)
    assert sign_model(strict, model, transit_key="model-signing", vault=signer).findings == []
    verifier = Recording(token_client(bao_server, root, "signing-verify"), called)
    assert verify_model(strict, model, transit_key="model-signing", vault=verifier).findings == []
    assert {"transit_read_key", "transit_sign_digest"} <= called
    denied(lambda: verifier.transit_sign_digest("model-signing", b"\0" * 32, mount="transit", version=1))
    denied(lambda: signer.kv_read("secret", "ml/training/docs-vault-check"))
    assert called == EXERCISED["signing"]


@pytest.mark.parametrize(("name", "path"), [("pii-redact", "ml/pii/hmac-key"),
                                            ("endpoint-token", "ml/serving/candidate-token")])
def test_single_secret_policies(bao_server, root, name, path):
    value = "docs-" + secrets.token_urlsafe(12)
    seed_kv(root, {path: {"key": value}, f"{path}-neighbour": {"key": "x"}})
    called: set[str] = set()
    vault = Recording(token_client(bao_server, root, name), called)
    assert vault.kv_read("secret", path).data == {"key": value}
    denied(lambda: vault.kv_read("secret", f"{path}-neighbour"))
    denied(lambda: vault.kv_list("secret", str(Path(path).parent)))
    assert called == EXERCISED["single"]


def test_every_vault_request_is_covered_by_a_documented_policy():
    """Each VaultClient request method is tested under a documented policy (the tests above)."""
    from airflow_aisec.core.io.vault import VaultClient

    requests = {name for name, member in inspect.getmembers(VaultClient, inspect.isfunction)
                if not name.startswith("_")}
    assert len(requests) >= 10
    covered = set().union(*EXERCISED.values())
    assert requests == covered, "document the Vault permission of a new call in docs/operations/vault"
