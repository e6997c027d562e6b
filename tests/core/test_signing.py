"""Model signing with local PEM keys: round trip, every tamper case, malformed bundles, stock CLI interop.

Keys are generated per test session in temp directories; no key is committed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_aisec.core.gate import run_check
from airflow_aisec.core.gates.signing import _model_signing_compat as compat
from airflow_aisec.core.gates.signing import (
    default_signature_uri,
    key_fingerprint,
    load_public_key,
    sign_model,
    verify_model,
)
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.core.policy.sections.signing import SigningPolicy
from airflow_aisec.exceptions import (
    ConfigurationError,
    InputDataError,
    MalformedSignatureError,
    ModelTamperedError,
    SignatureVerificationError,
    UntrustedKeyError,
)

MODEL_SIGNING_CLI = str(Path(sys.executable).parent / "model_signing")


# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------
def _write_keypair(directory: Path, name: str, curve=None, password: bytes | None = None):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(curve or ec.SECP256R1())
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    priv = directory / f"{name}.pem"
    pub = directory / f"{name}.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, priv, pub


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    a, a_priv, a_pub = _write_keypair(d, "a")
    b, b_priv, b_pub = _write_keypair(d, "b")
    return {"a": (a, a_priv, a_pub), "b": (b, b_priv, b_pub), "dir": d}


@pytest.fixture
def policy(keys) -> SigningPolicy:
    return SigningPolicy(trusted_keys=[{"id": "release-a", "fingerprint": key_fingerprint(keys["a"][0].public_key())}])


def make_model(root: Path, name: str = "model", seed: bytes = b"x") -> Path:
    model = root / name
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"layers": 2, "seed": seed.decode()}))
    (model / "weights.bin").write_bytes(hashlib.sha256(seed).digest() * 512)
    (model / "sub" / "tokenizer.txt").write_text("a b c " + seed.decode())
    return model


@pytest.fixture
def signed(tmp_path, keys, policy):
    model = make_model(tmp_path)
    outcome = sign_model(policy, model, private_key=keys["a"][1])
    return model, Path(outcome.metrics["signature"]), outcome


def verify(model, policy, keys, key="a", **kw):
    return verify_model(policy, model, public_key=keys[key][2], **kw)


def forge(statement: dict, private_key) -> bytes:
    """A bundle that is correctly signed by ``private_key`` over an arbitrary statement."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    raw = json.dumps(statement).encode()
    sig = private_key.sign(compat.pae(raw), ec.ECDSA(hashes.SHA256()))
    return json.dumps({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": compat.public_key_hint(private_key.public_key())},
                                 "tlogEntries": []},
        "dsseEnvelope": {"payload": base64.b64encode(raw).decode(), "payloadType": "application/vnd.in-toto+json",
                         "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}]},
    }).encode()


def statement_of(sig_path: Path) -> dict:
    bundle = json.loads(sig_path.read_text())
    return json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))


def root_digest(resources: list[dict]) -> str:
    h = hashlib.sha256()
    for r in resources:
        h.update(bytes.fromhex(r["digest"]))
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# round trip
# ----------------------------------------------------------------------------------------------
def test_sign_then_verify_round_trip(signed, keys, policy):
    model, sig, outcome = signed
    assert sig == Path(default_signature_uri(model)) and sig.parent == model.parent  # next to, not inside
    m = outcome.metrics
    assert m["files"] == 3 and m["key"] == "pem" and m["key_trusted_by_policy"] is True
    assert m["key_fingerprint"] == key_fingerprint(keys["a"][0].public_key())
    bundle = json.loads(sig.read_text())
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    st = statement_of(sig)
    assert st["predicateType"] == "https://model_signing/signature/v1.0"
    assert sorted(r["name"] for r in st["predicate"]["resources"]) == ["config.json", "sub/tokenizer.txt",
                                                                      "weights.bin"]
    assert "aisec" not in st["predicate"]  # local models: byte-for-byte the library's statement

    result = verify(model, policy, keys)
    assert result.findings == []
    assert result.metrics["verified"] is True and result.metrics["trusted_key_id"] == "release-a"
    assert result.metrics["model_digest"] == m["model_digest"] == st["subject"][0]["digest"]["sha256"]
    assert {i.uri for i in result.inputs} == {str(model), str(sig)}


def test_signing_does_not_import_sigstore_keyless_machinery():
    code = ("import sys; from airflow_aisec.core.gates.signing import _model_signing_compat as c; ms = c.import_model_signing();"
            "import model_signing.hashing, model_signing.verifying;"
            "print('sigstore' in sys.modules, 'tuf' in sys.modules);"
            "from model_signing._signing import sign_sigstore; print(sign_sigstore.Signer.__name__)")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # Lazy until used, and still usable when something does use it.
    assert out.stdout.split() == ["False", "False", "Signer"]


# ----------------------------------------------------------------------------------------------
# every tamper case fails, with a distinct exception and message
# ----------------------------------------------------------------------------------------------
def _flip_byte(model: Path, sig: Path, ctx) -> None:
    p = model / "weights.bin"
    data = bytearray(p.read_bytes())
    data[100] ^= 0x01
    p.write_bytes(bytes(data))


def _add_file(model: Path, sig: Path, ctx) -> None:
    (model / "backdoor.py").write_text("print('hi')")


def _remove_file(model: Path, sig: Path, ctx) -> None:
    (model / "sub" / "tokenizer.txt").unlink()


def _rename_file(model: Path, sig: Path, ctx) -> None:
    (model / "config.json").rename(model / "config.json.bak")


def _other_key(model: Path, sig: Path, ctx) -> None:
    sign_model(ctx["policy"], model, private_key=ctx["keys"]["b"][1], signature=sig)


def _other_model(model: Path, sig: Path, ctx) -> None:
    other = make_model(model.parent, "other-model", seed=b"y")
    sign_model(ctx["policy"], other, private_key=ctx["keys"]["a"][1], signature=sig)


def _symlink_outside(model: Path, sig: Path, ctx) -> None:
    outside = model.parent / "outside-secret.txt"
    outside.write_text("not part of the model")
    (model / "config.json").unlink()
    (model / "config.json").symlink_to(outside)


def _dotdot_in_manifest(model: Path, sig: Path, ctx) -> None:
    st = statement_of(sig)
    st["predicate"]["resources"].append({"name": "../outside-secret.txt", "algorithm": "sha256",
                                         "digest": hashlib.sha256(b"z").hexdigest()})
    st["predicate"]["resources"].sort(key=lambda r: r["name"])
    st["subject"][0]["digest"]["sha256"] = root_digest(st["predicate"]["resources"])
    sig.write_bytes(forge(st, ctx["keys"]["a"][0]))  # validly signed by the trusted key


def _signature_inside(model: Path, sig: Path, ctx) -> Path:
    inside = model / "model.sig"
    shutil.copy(sig, inside)
    return inside


TAMPER_CASES = {
    "byte_flipped": (_flip_byte, ModelTamperedError, "file_changed", "1 file(s) changed [weights.bin]"),
    "file_added": (_add_file, ModelTamperedError, "file_added", "unsigned file(s) added [backdoor.py]"),
    "file_removed": (_remove_file, ModelTamperedError, "file_removed", "signed file(s) missing [sub/tokenizer.txt]"),
    "file_renamed": (_rename_file, ModelTamperedError, "file_renamed", "renamed [config.json -> config.json.bak]"),
    "other_key": (_other_key, UntrustedKeyError, "other_key", "signed by another key"),
    "other_model": (_other_model, ModelTamperedError, "different_model", "signature is for a different model"),
    "symlink_outside": (_symlink_outside, ModelTamperedError, "symlink_escape", "pointing outside the model"),
    "dotdot_in_manifest": (_dotdot_in_manifest, MalformedSignatureError, "path_traversal",
                           "escapes the model directory"),
    "signature_inside_model": (_signature_inside, MalformedSignatureError, "signature_inside_model",
                               "inside the model directory"),
}


@pytest.mark.parametrize("case", sorted(TAMPER_CASES))
def test_each_tamper_case_fails_distinctly(case, signed, keys, policy):
    model, sig, _ = signed
    tamper, exc_type, reason, text = TAMPER_CASES[case]
    moved = tamper(model, sig, {"keys": keys, "policy": policy})
    with pytest.raises(SignatureVerificationError) as info:
        verify(model, policy, keys, signature=moved or sig)
    exc = info.value
    assert type(exc) is exc_type, (case, type(exc), str(exc))
    assert exc.location["reason"] == reason
    assert text in str(exc)
    expected_rule = {ModelTamperedError: "signing.tampered", UntrustedKeyError: "signing.untrusted_key",
                     MalformedSignatureError: "signing.malformed"}[exc_type]
    assert exc.rule == expected_rule


def test_tamper_messages_tell_the_causes_apart(tmp_path, keys, policy):
    messages = {}
    for case, (tamper, _exc, _reason, _text) in sorted(TAMPER_CASES.items()):
        model = make_model(tmp_path / case)
        sig = Path(sign_model(policy, model, private_key=keys["a"][1]).metrics["signature"])
        moved = tamper(model, sig, {"keys": keys, "policy": policy})
        with pytest.raises(SignatureVerificationError) as info:
            verify(model, policy, keys, signature=moved or sig)
        messages[case] = (type(info.value).__name__, info.value.location["reason"], str(info.value))
    assert len({m[2] for m in messages.values()}) == len(messages)  # nine different messages
    assert len({m[1] for m in messages.values()}) == len(messages)  # nine different reasons
    assert {m[0] for m in messages.values()} == {"ModelTamperedError", "UntrustedKeyError",
                                                 "MalformedSignatureError"}


def test_second_verification_after_a_failed_one_still_fails(tmp_path, keys, policy):
    """model-signing #650: a reused verifying config let a tampered model pass the second time."""
    import model_signing.verifying as msv

    configs = []
    original = msv.Config.__init__

    def spy(self, *a, **k):
        configs.append(self)
        original(self, *a, **k)

    good = make_model(tmp_path / "good")
    bad1 = make_model(tmp_path / "bad1")
    bad2 = make_model(tmp_path / "bad2")
    for m in (good, bad1, bad2):
        sign_model(policy, m, private_key=keys["a"][1])
    (bad1 / ".gitignore").write_text("ignored by git metadata rules\n")  # tolerated: git metadata
    (bad1 / "weights.bin").write_bytes(b"tampered")
    (bad2 / "extra.pkl").write_bytes(b"payload")

    msv.Config.__init__ = spy
    try:
        for _ in range(2):
            with pytest.raises(ModelTamperedError, match="changed"):
                verify(bad1, policy, keys)
            with pytest.raises(ModelTamperedError, match="added"):
                verify(bad2, policy, keys)
            assert verify(good, policy, keys).metrics["verified"] is True
    finally:
        msv.Config.__init__ = original
    assert len(configs) == 6 and len({id(c) for c in configs}) == 6  # a fresh Config per verification
    hashing = {id(c._hashing_config) for c in configs}
    assert len(hashing) == 6  # and a fresh hashing config, always set explicitly


# ----------------------------------------------------------------------------------------------
# malformed bundles
# ----------------------------------------------------------------------------------------------
def _set(sig: Path, data: bytes | str) -> None:
    sig.write_bytes(data if isinstance(data, bytes) else data.encode())


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda b, st, k: b"", "empty"),
        (lambda b, st, k: b"\x80\x04not json", "not_json"),
        (lambda b, st, k: json.dumps([1, 2]).encode(), "not_json"),
        (lambda b, st, k: json.dumps({**b, "mediaType": "application/json"}).encode(), "media_type"),
        (lambda b, st, k: json.dumps({**b, "dsseEnvelope": None}).encode(), "no_envelope"),
        (lambda b, st, k: json.dumps({**b, "dsseEnvelope": {**b["dsseEnvelope"], "signatures": []}}).encode(),
         "signature_count"),
        (lambda b, st, k: json.dumps({**b, "dsseEnvelope": {**b["dsseEnvelope"], "payload": "%%%"}}).encode(),
         "base64"),
        (lambda b, st, k: json.dumps({**b, "verificationMaterial": {"certificate": {}}}).encode(), "not_key_based"),
        # payload edited after signing: the signature no longer covers it
        (lambda b, st, k: json.dumps({**b, "dsseEnvelope": {**b["dsseEnvelope"], "payload": base64.b64encode(
            json.dumps({**st, "subject": [{"name": "x", "digest": {"sha256": "0" * 64}}]}).encode()).decode()}}
        ).encode(), "bad_signature"),
        (lambda b, st, k: forge({**st, "predicateType": "https://model_signing/Digests/v0.1"}, k), "legacy_predicate"),
        (lambda b, st, k: forge({**st, "_type": "https://in-toto.io/Statement/v0.1"}, k), "statement_type"),
        (lambda b, st, k: forge({**st, "subject": [{"name": "m", "digest": {"sha256": "0" * 64}}]}, k),
         "inconsistent"),
        (lambda b, st, k: forge({**st, "predicate": {**st["predicate"], "resources": []}}, k), "empty_manifest"),
        (lambda b, st, k: forge({**st, "predicate": {**st["predicate"], "serialization": {
            **st["predicate"]["serialization"], "ignore_paths": ["."]}}}, k), "ignore_paths"),
        (lambda b, st, k: forge({**st, "predicate": {**st["predicate"], "resources": [
            {**st["predicate"]["resources"][0], "name": "/etc/passwd"}]}}, k), "path_traversal"),
    ],
    ids=["empty", "binary", "json-array", "media-type", "no-envelope", "no-signature", "bad-base64",
         "certificate-bundle", "payload-altered", "legacy-predicate", "statement-type", "inconsistent-root",
         "empty-manifest", "ignore-everything", "absolute-path"],
)
def test_malformed_bundles(signed, keys, policy, mutate, reason):
    model, sig, _ = signed
    bundle = json.loads(sig.read_text())
    _set(sig, mutate(bundle, statement_of(sig), keys["a"][0]))
    with pytest.raises(MalformedSignatureError) as info:
        verify(model, policy, keys)
    assert info.value.location["reason"] == reason
    assert info.value.rule == "signing.malformed"


def test_hashing_parameters_come_from_the_policy_never_from_the_bundle(tmp_path, keys, policy):
    model = make_model(tmp_path)
    blake = SigningPolicy.model_validate({**policy.model_dump(), "hashing": {
        "algorithm": "blake2", "serialization": "shards", "shard_size": 1000}})
    sign_model(blake, model, private_key=keys["a"][1])
    assert verify(model, blake, keys).metrics["hash_algorithm"] == "blake2"  # shards + blake2 round trip
    with pytest.raises(MalformedSignatureError, match="policy requires sha256/files") as info:
        verify(model, policy, keys)
    assert info.value.location["reason"] == "hashing_mismatch"
    (model / "weights.bin").write_bytes(b"\x00" * 5000)
    with pytest.raises(ModelTamperedError, match=r"changed \[weights.bin\]"):
        verify(model, blake, keys)


def test_oversized_signature_is_rejected_before_parsing(signed, keys, policy):
    model, sig, _ = signed
    sig.write_bytes(b" " * 2048 + sig.read_bytes())
    small = SigningPolicy.model_validate({**policy.model_dump(), "max_signature_bytes": 1024})
    with pytest.raises(MalformedSignatureError, match="larger than 1024 bytes"):
        verify(model, small, keys)


# ----------------------------------------------------------------------------------------------
# trust
# ----------------------------------------------------------------------------------------------
def test_key_named_by_caller_must_be_trusted_by_policy(signed, keys):
    model, _sig, _ = signed
    nobody = SigningPolicy(trusted_keys=[{"id": "b", "fingerprint": key_fingerprint(keys["b"][0].public_key())}])
    with pytest.raises(UntrustedKeyError, match="not among the policy's trusted keys") as info:
        verify(model, nobody, keys, key="a")
    assert info.value.location["reason"] == "key_not_in_policy"
    with pytest.raises(UntrustedKeyError, match="not among the policy's trusted keys"):
        verify_model(SigningPolicy(), model, public_key=keys["a"][2])  # empty trust list: nothing verifies


def test_bundle_without_key_hint_verifies_only_with_the_right_key(signed, keys, policy):
    model, sig, _ = signed
    bundle = json.loads(sig.read_text())
    bundle["verificationMaterial"]["publicKey"] = {}
    sig.write_text(json.dumps(bundle))
    assert verify(model, policy, keys).metrics["verified"] is True
    both = SigningPolicy(trusted_keys=[{"id": "b", "fingerprint": key_fingerprint(keys["b"][0].public_key())}])
    with pytest.raises(UntrustedKeyError, match="does not verify with any trusted key"):
        verify(model, both, keys, key="b")


def test_exactly_one_key_must_be_named(signed, keys, policy):
    model, _sig, _ = signed
    with pytest.raises(ConfigurationError):
        verify_model(policy, model)
    with pytest.raises(ConfigurationError):
        verify_model(policy, model, public_key=keys["a"][2], transit_key="x")
    with pytest.raises(ConfigurationError):
        sign_model(policy, model)


def test_public_key_must_be_an_ec_pem(tmp_path, signed, policy):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    model, _sig, _ = signed
    ed = tmp_path / "ed.pub"
    ed.write_bytes(ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    junk = tmp_path / "junk.pub"
    junk.write_text("hello")
    for bad, text in ((ed, "not an elliptic-curve key"), (junk, "not a PEM public key")):
        with pytest.raises(ConfigurationError, match=text):
            verify_model(policy, model, public_key=bad)


# ----------------------------------------------------------------------------------------------
# unsigned models and files, symlinks
# ----------------------------------------------------------------------------------------------
def test_unsigned_model_is_a_finding_unless_tolerated(tmp_path, keys, policy):
    model = make_model(tmp_path)
    outcome = verify(model, policy, keys)
    assert [f.rule for f in outcome.findings] == ["signing.unsigned"]
    assert outcome.findings[0].severity == "critical"
    run = run_check("signing", parse_policy(b"version: 1\nname: t\nsigning: {}\n"), lambda: outcome)
    assert run.result.verdict == "fail"
    tolerant = SigningPolicy.model_validate({**policy.model_dump(), "allow_unsigned": True})
    outcome = verify(model, tolerant, keys)
    assert outcome.findings == [] and outcome.metrics["signed"] is False


def test_unsigned_files_tolerated_only_when_policy_says_so(signed, keys, policy):
    model, _sig, _ = signed
    (model / "README.md").write_text("added after signing")
    with pytest.raises(ModelTamperedError, match="added"):
        verify(model, policy, keys)
    tolerant = SigningPolicy.model_validate({**policy.model_dump(), "allow_unsigned_files": True})
    assert verify(model, tolerant, keys).metrics["verified"] is True
    (model / "weights.bin").unlink()
    with pytest.raises(ModelTamperedError, match=r"missing \[weights.bin\]"):
        verify(model, tolerant, keys)


def test_symlinks_inside_the_model_need_policy_consent(tmp_path, keys, policy):
    model = make_model(tmp_path)
    (model / "alias.json").symlink_to(model / "config.json")
    with pytest.raises(InputDataError, match="does not allow them"):
        sign_model(policy, model, private_key=keys["a"][1])
    allowing = SigningPolicy.model_validate({**policy.model_dump(), "allow_symlinks": True})
    sign_model(allowing, model, private_key=keys["a"][1])
    assert verify(model, allowing, keys).metrics["verified"] is True
    with pytest.raises(ModelTamperedError, match="does not allow symlinks"):
        verify(model, policy, keys)


def test_refuses_to_sign_what_it_could_not_verify(tmp_path, keys, policy):
    model = make_model(tmp_path)
    with pytest.raises(ConfigurationError, match="outside the model directory"):
        sign_model(policy, model, private_key=keys["a"][1], signature=model / "model.sig")
    outside = tmp_path / "secret"
    outside.write_text("x")
    (model / "link").symlink_to(outside)
    with pytest.raises(InputDataError, match="point outside the model directory"):
        sign_model(policy, model, private_key=keys["a"][1])
    with pytest.raises(InputDataError, match="not found"):
        sign_model(policy, tmp_path / "missing", private_key=keys["a"][1])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputDataError, match="no files"):
        sign_model(policy, empty, private_key=keys["a"][1])


# ----------------------------------------------------------------------------------------------
# private keys: formats, passwords, nothing leaks
# ----------------------------------------------------------------------------------------------
def test_private_key_handling_never_leaks_key_material(tmp_path, keys, policy):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    model = make_model(tmp_path)
    _k, enc_priv, enc_pub = _write_keypair(tmp_path, "enc", curve=ec.SECP384R1(), password=b"s3cret-pass")
    with pytest.raises(ConfigurationError, match="encrypted and no password") as info:
        sign_model(policy, model, private_key=enc_priv)
    assert "BEGIN" not in str(info.value)
    with pytest.raises(ConfigurationError, match="password is wrong"):
        sign_model(policy, model, private_key=enc_priv, private_key_password=b"nope")
    out = sign_model(policy, model, private_key=enc_priv, private_key_password=b"s3cret-pass")
    assert out.metrics["key_trusted_by_policy"] is False  # signing works; trust is the verifier's decision
    p384 = SigningPolicy(trusted_keys=[{"id": "p384", "fingerprint": out.metrics["key_fingerprint"]}])
    assert verify_model(p384, model, public_key=enc_pub).metrics["verified"] is True

    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ConfigurationError, match="not an elliptic-curve key"):
        sign_model(policy, model, private_key=rsa_key)

    secret_lines = [line for line in keys["a"][1].read_text().splitlines() if "-----" not in line]
    text = json.dumps(out.model_dump(mode="json")) + json.dumps(
        sign_model(policy, model, private_key=keys["a"][1]).model_dump(mode="json"))
    text += (model.parent / "model.sig").read_text()
    assert not [line for line in secret_lines if line in text]
    assert "s3cret-pass" not in text


# ----------------------------------------------------------------------------------------------
# interop with the stock model_signing CLI (local keys, both ways)
# ----------------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MODEL_SIGNING_CLI, *args], check=False, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def test_stock_cli_verifies_our_signature(signed, keys):
    model, sig, _ = signed
    out = _cli("verify", "key", str(model), "--signature", str(sig), "--public_key", str(keys["a"][2]))
    assert out.returncode == 0, out.stderr
    assert "Verification succeeded" in out.stdout
    (model / "weights.bin").write_bytes(b"tampered")
    out = _cli("verify", "key", str(model), "--signature", str(sig), "--public_key", str(keys["a"][2]))
    assert out.returncode != 0


def test_we_verify_a_stock_cli_signature(tmp_path, keys, policy):
    model = make_model(tmp_path)
    sig = tmp_path / "stock.sig"
    out = _cli("sign", "key", str(model), "--signature", str(sig), "--private_key", str(keys["a"][1]))
    assert out.returncode == 0, out.stderr
    result = verify(model, policy, keys, signature=sig)
    assert result.metrics["verified"] is True
    (model / "weights.bin").write_bytes(b"tampered")
    with pytest.raises(ModelTamperedError, match="changed"):
        verify(model, policy, keys, signature=sig)


def test_stock_cli_signature_inside_the_model_is_refused(tmp_path, keys, policy):
    """The stock CLI signs with the signature inside the model and ignores it; we refuse that layout."""
    model = make_model(tmp_path)
    sig = model / "model.sig"
    out = _cli("sign", "key", str(model), "--signature", str(sig), "--private_key", str(keys["a"][1]))
    assert out.returncode == 0, out.stderr
    with pytest.raises(MalformedSignatureError, match="inside the model directory"):
        verify(model, policy, keys, signature=sig)
    # Moved out of the model, its signed ignore list (which names model.sig) is still refused.
    moved = tmp_path / "moved.sig"
    sig.rename(moved)
    with pytest.raises(MalformedSignatureError, match="does not allow to be excluded") as info:
        verify(model, policy, keys, signature=moved)
    assert info.value.location["paths"] == ["model.sig"]


# ----------------------------------------------------------------------------------------------
# policy schema
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "section, field",
    [
        ({"trusted_keys": [{"id": "x"}]}, "trusted_keys.0"),
        ({"trusted_keys": [{"id": "x", "fingerprint": "sha256:abc"}]}, "trusted_keys.0.fingerprint"),
        ({"trusted_keys": [{"id": "x", "transit": {"name": "k", "versions": []}}]}, "trusted_keys.0.transit.versions"),
        ({"trusted_keys": [{"id": "x", "transit": {"name": "k", "versions": [1]},
                            "fingerprint": "sha256:" + "a" * 64}]}, "trusted_keys.0"),
        ({"hashing": {"algorithm": "md5"}}, "hashing.algorithm"),
        ({"hashing": {"algorithm": "blake3", "serialization": "shards"}}, "hashing"),
        ({"allow_unsigned_files": True, "hashing": {"serialization": "shards"}}, "signing"),
        ({"trusted_keys": [{"id": "x", "fingerprint": "sha256:" + "a" * 64},
                           {"id": "x", "fingerprint": "sha256:" + "b" * 64}]}, "signing"),
        ({"allow_unsigned": "maybe"}, "allow_unsigned"),
        ({"trusted": []}, "trusted"),
    ],
)
def test_policy_schema_rejects_bad_sections(section, field):
    from airflow_aisec.exceptions import PolicyError

    doc = json.dumps({"version": 1, "name": "t", "signing": section}).encode()
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    assert info.value.field == ("signing" if field == "signing" else f"signing.{field}")


def test_fingerprints_are_normalised(keys):
    fp = key_fingerprint(keys["a"][0].public_key())
    pol = SigningPolicy(trusted_keys=[{"id": "a", "fingerprint": fp[len("sha256:"):].upper()}])
    assert pol.trusted_keys[0].fingerprint == fp
    der = load_public_key(keys["a"][2].read_bytes())
    assert key_fingerprint(der) == fp
    # the documented openssl one-liner gives the same fingerprint
    if shutil.which("openssl"):
        der_bytes = subprocess.run(["openssl", "pkey", "-pubin", "-in", str(keys["a"][2]), "-outform", "DER"],
                                   capture_output=True, check=True).stdout
        assert "sha256:" + hashlib.sha256(der_bytes).hexdigest() == fp


def test_strict_policy_signing_section_is_strict():
    from airflow_aisec.core.policy import load_policy

    strict = load_policy(Path(__file__).resolve().parents[2] / "policies" / "strict.yaml").policy.signing
    assert strict is not None
    assert strict.allow_unsigned is False and strict.allow_unsigned_files is False
    assert strict.allow_symlinks is False and strict.trusted_keys


# ----------------------------------------------------------------------------------------------
# golden bundle (made once with the stock model_signing 1.1.1 CLI; only the public key is kept)
# ----------------------------------------------------------------------------------------------
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "signing"


def _normalised_statement(sig: Path) -> dict:
    st = statement_of(sig)
    st["predicate"]["serialization"]["ignore_paths"] = sorted(st["predicate"]["serialization"]["ignore_paths"])
    return st


def test_golden_stock_bundle_still_verifies_and_our_statement_matches_it(tmp_path, keys):
    model = tmp_path / "model"
    shutil.copytree(GOLDEN / "model", model)
    golden_key = load_public_key((GOLDEN / "key.pub").read_bytes())
    policy = SigningPolicy(trusted_keys=[{"id": "golden", "fingerprint": key_fingerprint(golden_key)}])
    result = verify_model(policy, model, public_key=GOLDEN / "key.pub", signature=GOLDEN / "model.sig")
    assert result.metrics["model_digest"] == "c6873e72891f2db9d2976ecfca235bfbe7101cb0365bec905d006b7c18091729"

    # Our signer produces the very same in-toto statement for the same model.
    ours = tmp_path / "ours.sig"
    sign_model(SigningPolicy(), model, private_key=keys["a"][1], signature=ours)
    assert _normalised_statement(ours) == _normalised_statement(GOLDEN / "model.sig")

    (model / "sub" / "weights.bin").write_bytes(b"\x00" + (model / "sub" / "weights.bin").read_bytes()[1:])
    with pytest.raises(ModelTamperedError, match=r"changed \[sub/weights.bin\]"):
        verify_model(policy, model, public_key=GOLDEN / "key.pub", signature=GOLDEN / "model.sig")


def test_remote_signer_with_the_wrong_key_never_produces_a_bundle(tmp_path, keys):
    """A Transit-style signer that answers with another key's signature is caught before writing."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    wrong = keys["b"][0]
    signer = compat.make_digest_signer(
        lambda digest: wrong.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))), keys["a"][0].public_key())
    ms = compat.import_model_signing()
    manifest = ms.hashing.Config().hash(make_model(tmp_path))
    with pytest.raises(InputDataError, match="does not verify with the expected public key"):
        compat.sign_payload(signer, compat.make_payload(manifest))
    good = compat.make_digest_signer(
        lambda digest: keys["a"][0].sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))),
        keys["a"][0].public_key())
    bundle = json.loads(compat.sign_payload(good, compat.make_payload(manifest)))
    assert bundle["verificationMaterial"]["publicKey"]["hint"] == compat.public_key_hint(keys["a"][0].public_key())


# ----------------------------------------------------------------------------------------------
# sign refuses what verify refuses: an untouched signed model always verifies
# ----------------------------------------------------------------------------------------------
AWKWARD_NAMES = ["back\\slash.bin", "dir\\in\\name/w.bin", "space name.bin", "ünïcode.bin", "colon:1:2.bin",
                 "-dash.bin", "new\nline.bin", "%41.bin", "#hash.bin", ".hidden", "tab\tname", "q'uote\".bin",
                 "a" * 200 + ".bin", "sub/..dots..bin", "x.sig"]


@pytest.mark.parametrize("serialization", ["files", "shards"])
@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_sign_then_verify_of_an_untouched_model_always_agree(tmp_path, keys, policy, name, serialization):
    policy = policy.model_copy(update={"hashing": policy.hashing.model_copy(update={"serialization": serialization})})
    model = make_model(tmp_path)
    target = model / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"weights")
    try:
        sign_model(policy, model, private_key=keys["a"][1])
    except InputDataError as exc:
        # Refused up front, with the reason, and no signature was left behind.
        assert ("\\" in name or (":" in name and serialization == "shards")) and "not a plain relative path" in str(exc)
        assert not (tmp_path / "model.sig").exists()
        return
    assert "\\" not in name and not (":" in name and serialization == "shards")
    verify_model(policy, model, public_key=keys["a"][2])  # raises on any disagreement
