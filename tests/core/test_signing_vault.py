"""Signing with a Vault (OpenBao) Transit key: the private key never leaves Vault; stock CLI interop.

Runs against the real OpenBao dev server of the ``bao_server`` fixture, with Transit enabled here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from airflow_aisec.core.gates.signing import _model_signing_compat as compat
from airflow_aisec.core.gates.signing import read_transit_key, sign_model, verify_model
from airflow_aisec.core.io.vault import VaultClient
from airflow_aisec.core.policy.sections.signing import SigningPolicy
from airflow_aisec.exceptions import (
    AccessDeniedError,
    ConfigurationError,
    ModelTamperedError,
    ServiceUnavailableError,
    UntrustedKeyError,
)

pytestmark = pytest.mark.integration
MODEL_SIGNING_CLI = str(Path(sys.executable).parent / "model_signing")


@pytest.fixture(scope="module")
def vault(bao_server):
    client = bao_server.client()
    if "transit/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("transit", path="transit")
    return client


@pytest.fixture
def transit_key(vault):
    name = f"model-signing-{uuid.uuid4().hex[:8]}"
    vault.secrets.transit.create_key(name=name, key_type="ecdsa-p256")  # not exportable
    return name


def policy_for(name: str, versions=(1,), mount: str = "transit") -> SigningPolicy:
    return SigningPolicy(trusted_keys=[{"id": "release", "transit": {"name": name, "mount": mount,
                                                                      "versions": list(versions)}}])


def make_model(root: Path, name: str = "model") -> Path:
    model = root / name
    (model / "nested").mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " + bytes(range(256)) * 64)
    (model / "nested" / "config.json").write_text('{"hidden": 16}')
    return model


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MODEL_SIGNING_CLI, *args], check=False, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def test_transit_sign_and_verify(tmp_path, vault, transit_key):
    model = make_model(tmp_path)
    policy = policy_for(transit_key)
    out = sign_model(policy, model, transit_key=transit_key, vault=VaultClient(vault))
    m = out.metrics
    assert m["key"] == "transit" and m["transit_key"] == transit_key and m["transit_key_version"] == 1
    assert m["key_trusted_by_policy"] is True
    result = verify_model(policy, model, transit_key=transit_key, vault=VaultClient(vault))
    assert result.metrics["verified"] is True and result.metrics["transit_key_version"] == 1
    assert result.metrics["key_fingerprint"] == m["key_fingerprint"]

    (model / "nested" / "config.json").write_text('{"hidden": 17}')
    with pytest.raises(ModelTamperedError, match=r"changed \[nested/config.json\]"):
        verify_model(policy, model, transit_key=transit_key, vault=VaultClient(vault))


def test_private_key_stays_in_vault_and_vault_agrees_with_the_signature(tmp_path, vault, transit_key):
    info = vault.secrets.transit.read_key(name=transit_key)["data"]
    assert info["exportable"] is False and info["type"] == "ecdsa-p256"
    model = make_model(tmp_path)
    sign_model(policy_for(transit_key), model, transit_key=transit_key, vault=VaultClient(vault))
    bundle = json.loads((tmp_path / "model.sig").read_text())
    payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    der = base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"])
    digest = hashlib.sha256(compat.pae(payload)).digest()
    # Vault itself confirms: a prehashed sha2-256 ASN.1 signature over the DSSE PAE digest.
    check = vault.secrets.transit.verify_signed_data(
        name=transit_key, hash_input=base64.b64encode(digest).decode(),
        signature="vault:v1:" + base64.b64encode(der).decode(), hash_algorithm="sha2-256", prehashed=True,
        marshaling_algorithm="asn1",
    )
    assert check["data"]["valid"] is True


def test_stock_cli_verifies_a_transit_signature_with_the_exported_public_key(tmp_path, bao_server, vault,
                                                                             transit_key):
    model = make_model(tmp_path)
    sign_model(policy_for(transit_key), model, transit_key=transit_key, vault=VaultClient(vault))
    # The server's public-key export endpoint (hvac's export_key refuses key_type=public-key).
    exported = vault.adapter.get(f"/v1/transit/export/public-key/{transit_key}")["data"]["keys"]["1"]
    pub = tmp_path / "transit.pub"
    pub.write_text(exported)
    out = _cli("verify", "key", str(model), "--signature", str(tmp_path / "model.sig"), "--public_key", str(pub))
    assert out.returncode == 0, out.stderr
    # ... and with the PEM that read_key returns.
    pub2 = tmp_path / "transit2.pub"
    pub2.write_text(vault.secrets.transit.read_key(name=transit_key)["data"]["keys"]["1"]["public_key"])
    out = _cli("verify", "key", str(model), "--signature", str(tmp_path / "model.sig"), "--public_key", str(pub2))
    assert out.returncode == 0, out.stderr
    (model / "model.safetensors").write_bytes(b"tampered")
    out = _cli("verify", "key", str(model), "--signature", str(tmp_path / "model.sig"), "--public_key", str(pub))
    assert out.returncode != 0


def test_rotation_does_not_extend_trust(tmp_path, vault, transit_key):
    model = make_model(tmp_path)
    vault.secrets.transit.rotate_key(name=transit_key)
    out = sign_model(policy_for(transit_key), model, transit_key=transit_key, vault=VaultClient(vault))
    assert out.metrics["transit_key_version"] == 2 and out.metrics["key_trusted_by_policy"] is False
    with pytest.raises(UntrustedKeyError, match=r"v2, a version the policy does not trust") as info:
        verify_model(policy_for(transit_key, versions=[1]), model, transit_key=transit_key,
                     vault=VaultClient(vault))
    assert info.value.location["reason"] == "version_not_trusted"
    both = policy_for(transit_key, versions=[1, 2])
    assert verify_model(both, model, transit_key=transit_key, vault=VaultClient(vault)).metrics[
        "transit_key_version"] == 2
    # An explicit older version still signs, and verifies under v1 trust.
    sign_model(both, model, transit_key=transit_key, transit_key_version=1, vault=VaultClient(vault))
    assert verify_model(policy_for(transit_key, versions=[1]), model, transit_key=transit_key,
                        vault=VaultClient(vault)).metrics["transit_key_version"] == 1


def test_signature_by_another_transit_key_is_untrusted(tmp_path, vault, transit_key):
    other = f"other-{uuid.uuid4().hex[:8]}"
    vault.secrets.transit.create_key(name=other, key_type="ecdsa-p256")
    model = make_model(tmp_path)
    sign_model(None, model, transit_key=other, vault=VaultClient(vault))
    with pytest.raises(UntrustedKeyError, match=f"signed by another key .* not by the trusted Transit key '{transit_key}'"):
        verify_model(policy_for(transit_key), model, transit_key=transit_key, vault=VaultClient(vault))
    # Naming a key the policy does not list is refused before Vault is even asked.
    with pytest.raises(UntrustedKeyError, match=f"Transit key '{other}' is not among"):
        verify_model(policy_for(transit_key), model, transit_key=other, vault=VaultClient(vault))


def test_local_key_signature_interop_with_transit_public_key_is_not_confused(tmp_path, vault, transit_key):
    """A stock-CLI signature made with a local key does not verify as the Transit key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    priv = tmp_path / "local.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    model = make_model(tmp_path)
    out = _cli("sign", "key", str(model), "--signature", str(tmp_path / "model.sig"), "--private_key", str(priv))
    assert out.returncode == 0, out.stderr
    with pytest.raises(UntrustedKeyError):
        verify_model(policy_for(transit_key), model, transit_key=transit_key, vault=VaultClient(vault))


def test_wrong_key_type_and_missing_key(tmp_path, vault):
    name = f"ed-{uuid.uuid4().hex[:8]}"
    vault.secrets.transit.create_key(name=name, key_type="ed25519")
    model = make_model(tmp_path)
    with pytest.raises(ConfigurationError, match="needs an ecdsa-p256 key"):
        sign_model(None, model, transit_key=name, vault=VaultClient(vault))
    with pytest.raises(AccessDeniedError, match="not found"):
        sign_model(None, model, transit_key="no-such-key", vault=VaultClient(vault))
    good = f"k-{uuid.uuid4().hex[:8]}"
    vault.secrets.transit.create_key(name=good, key_type="ecdsa-p256")
    with pytest.raises(ConfigurationError, match="no version 9"):
        sign_model(None, model, transit_key=good, transit_key_version=9, vault=VaultClient(vault))


def test_denied_token_is_not_retryable(tmp_path, bao_server, vault, transit_key):
    import hvac

    model = make_model(tmp_path)
    # A token whose policy grants nothing on transit.
    vault.sys.create_or_update_policy(name="nothing", policy='path "secret/*" { capabilities = ["read"] }')
    weak = vault.auth.token.create(policies=["nothing"], ttl="5m")["auth"]["client_token"]
    with pytest.raises(AccessDeniedError, match="denied"):
        sign_model(None, model, transit_key=transit_key, vault=VaultClient(hvac.Client(url=bao_server.addr, token=weak)))


def test_unreachable_vault_is_retryable(tmp_path, transit_key):
    import socket

    import hvac

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = hvac.Client(url=f"http://127.0.0.1:{port}", token="irrelevant", timeout=3)
    model = make_model(tmp_path)
    with pytest.raises(ServiceUnavailableError, match="unreachable"):
        sign_model(None, model, transit_key=transit_key, vault=VaultClient(client))
    (tmp_path / "model.sig").write_text("{}")
    with pytest.raises(ServiceUnavailableError):
        verify_model(policy_for(transit_key), model, transit_key=transit_key, vault=VaultClient(client))


def test_transit_key_info(vault, transit_key):
    tk = read_transit_key(VaultClient(vault), transit_key)
    assert tk.key_type == "ecdsa-p256" and tk.latest_version == 1 and set(tk.public_keys) == {1}


def test_least_privilege_token_is_enough(tmp_path, bao_server, vault, transit_key):
    """Signing needs only read on transit/keys/NAME and update on transit/sign/NAME (docker/openbao policy)."""
    import hvac

    vault.sys.create_or_update_policy(name=f"sign-{transit_key}", policy=(
        f'path "transit/sign/{transit_key}" {{ capabilities = ["update"] }}\n'
        f'path "transit/keys/{transit_key}" {{ capabilities = ["read"] }}\n'))
    token = vault.auth.token.create(policies=[f"sign-{transit_key}"], ttl="5m")["auth"]["client_token"]
    client = hvac.Client(url=bao_server.addr, token=token)
    model = make_model(tmp_path)
    sign_model(policy_for(transit_key), model, transit_key=transit_key, vault=VaultClient(client))
    assert verify_model(policy_for(transit_key), model, transit_key=transit_key,
                        vault=VaultClient(client)).metrics["verified"] is True
