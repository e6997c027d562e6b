"""Fuzzed model directories through ``model scan`` (any names, nesting, links, pickles of every
protocol behind any extension), and fuzzed signatures and models through ``model verify``."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz._support import STRICT, check_contract, fuzz_settings, run_cli
from tests.helpers.signing_keys import write_pem_keypair

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(300)]


class _Payload:
    """Pickles to a call of os.system: serialising it runs nothing; loading it would."""

    def __reduce__(self):
        return (os.system, ("echo aisec-fuzz-payload",))


def malicious_pickle(protocol: int) -> bytes:
    if protocol == 0:
        return b"cos\nsystem\n(S'echo aisec-fuzz-payload'\ntR."
    return pickle.dumps(_Payload(), protocol=protocol)


def zipped(name: str, payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, payload)
    return buf.getvalue()


extensions = st.sampled_from(["", ".json", ".safetensors", ".onnx", ".pkl", ".pt", ".pth", ".bin", ".npy", ".npz",
                              ".joblib", ".txt", ".md", ".gguf", ".zip", ".gz", ".h5", ".yaml", ".PKL", ".json.bak"])
stems = st.text(alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
                min_size=1, max_size=16).filter(lambda s: s not in (".", ".."))
contents = st.one_of(
    st.binary(max_size=256),
    st.sampled_from([b"", b"{}", b'{"a": 1}', b"\x80\x04N.", b"PK\x03\x04", b"\x93NUMPY\x01\x00v\x00{'descr': '|O'",
                     b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":{}}"]),
    st.builds(lambda obj, p: pickle.dumps(obj, protocol=p),
              st.recursive(st.none() | st.integers() | st.text(max_size=8), lambda c: st.lists(c, max_size=3),
                           max_leaves=5),
              st.integers(0, 5)),
)


@st.composite
def model_trees(draw, planted: bool = False) -> list[tuple[str, str, bytes]]:
    """``[(kind, relative path, content)]``; kinds: file, dir, symlink, fifo."""
    entries: list[tuple[str, str, bytes]] = []
    dirs = [""]
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["file", "file", "file", "dir", "symlink", "fifo"]))
        parent = draw(st.sampled_from(dirs))
        rel = os.path.join(parent, draw(stems) + draw(extensions))
        if any(rel == e[1] for e in entries):
            continue
        if kind == "dir":
            dirs.append(rel)
            entries.append(("dir", rel, b""))
        elif kind == "symlink":
            target = draw(st.sampled_from(["../outside", "/etc/passwd", ".", rel, "missing", "../../.."]))
            entries.append(("symlink", rel, target.encode()))
        else:
            entries.append((kind, rel, draw(contents) if kind == "file" else b""))
    if planted:
        protocol = draw(st.integers(0, 5), label="protocol")
        payload = malicious_pickle(protocol)
        wrap = draw(st.sampled_from(["plain", "zip"]), label="wrap")
        rel = os.path.join(draw(st.sampled_from(dirs)), draw(stems) + draw(extensions))
        while any(rel == e[1] for e in entries):
            rel += "_"
        content = zipped("archive/data.pkl", payload) if wrap == "zip" else payload
        entries.append(("file", rel, content))
        event(f"planted protocol {protocol} {wrap}")
    return entries


def build(root: Path, entries: list[tuple[str, str, bytes]]) -> None:
    """Create the tree. Files are created new (O_EXCL) without following links: a fuzzed symlink
    (to /etc/passwd, to ..) is never written through, and a FIFO is never opened."""
    root.mkdir()
    for kind, rel, content in entries:
        path = root / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "dir":
                path.mkdir(exist_ok=True)
            elif kind == "symlink":
                path.symlink_to(content.decode())
            elif kind == "fifo":
                os.mkfifo(path)
            else:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(content)
        except (OSError, ValueError):
            continue  # a name too long for the file system, a clash with a link: not the point here


@fuzz_settings(max_examples=60)
@given(entries=model_trees())
def test_fuzzed_model_scan(entries):
    with tempfile.TemporaryDirectory(prefix="aisec-fuzz-") as tmp:
        model = Path(tmp) / "model"
        build(model, entries)
        run = run_cli("model", "scan", str(model), "--policy", str(STRICT))
        event(f"scan exit {run.code}")
        check_contract(run)


@fuzz_settings(max_examples=40)
@given(entries=model_trees(planted=True))
def test_planted_pickle_never_passes(entries):
    """A pickle that calls os.system, of any protocol, plain or zipped, behind any name: never a pass."""
    with tempfile.TemporaryDirectory(prefix="aisec-fuzz-") as tmp:
        model = Path(tmp) / "model"
        build(model, entries)
        run = run_cli("model", "scan", str(model), "--policy", str(STRICT))
        event(f"scan exit {run.code}")
        check_contract(run, violation_planted=True)


# -- model verify ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A model signed with a PEM key, its public key and a policy trusting that key."""
    d = tmp_path_factory.mktemp("fuzz-signed")
    write_pem_keypair(d, stem="key")
    model = d / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.safetensors").write_bytes(b"\x02" + b"\x00" * 7 + b"{}" + bytes(range(256)) * 4)
    (model / "sub" / "config.json").write_text('{"layers": 2}')
    run = run_cli("model", "sign", str(model), "--key", str(d / "key.pem"), "--signature", str(d / "model.sig"),
                  "--json")
    assert run.code == 0, run.describe()
    fingerprint = json.loads(run.out[run.out.index("{"):])["metrics"]["key_fingerprint"]
    policy = d / "policy.yaml"
    policy.write_text(f"version: 1\nname: fuzz-signing\nsigning:\n  trusted_keys:\n"
                      f"    - {{id: k, fingerprint: '{fingerprint}'}}\n")
    assert run_cli("model", "verify", str(model), "--policy", str(policy), "--public-key", str(d / "key.pub"),
                   "--signature", str(d / "model.sig")).code == 0
    return {"dir": d, "model": model, "sig": (d / "model.sig").read_bytes(), "policy": policy,
            "pub": d / "key.pub"}


def mutate_json(node, data: st.DataObject):
    if isinstance(node, dict) and node:
        key = data.draw(st.sampled_from(sorted(node)), label="key")
        op = data.draw(st.sampled_from(["recurse", "delete", "replace"]), label="op")
        if op == "recurse":
            node[key] = mutate_json(node[key], data)
        elif op == "delete":
            del node[key]
        else:
            node[key] = data.draw(st.none() | st.integers() | st.text(max_size=20) | st.just([]) | st.just({}))
        return node
    if isinstance(node, list) and node:
        i = data.draw(st.integers(0, len(node) - 1), label="index")
        node[i] = mutate_json(node[i], data)
        return node
    if isinstance(node, str):
        return data.draw(st.sampled_from([node[::-1], node + "A", "", "../../etc/passwd", "a\\b", node.upper()]))
    return data.draw(st.none() | st.integers() | st.text(max_size=10))


@fuzz_settings(max_examples=50)
@given(target=st.sampled_from(["signature_json", "signature_bytes", "model"]), data=st.data())
def test_fuzzed_verify(signed, target, data):
    with tempfile.TemporaryDirectory(prefix="aisec-fuzz-") as tmp:
        model = Path(tmp) / "model"
        shutil.copytree(signed["model"], model)
        sig = Path(tmp) / "model.sig"
        raw = signed["sig"]
        tampered = False
        if target == "signature_json":
            raw = json.dumps(mutate_json(json.loads(raw), data)).encode()
        elif target == "signature_bytes":
            buf = bytearray(raw)
            for _ in range(data.draw(st.integers(1, 3), label="edits")):
                at = data.draw(st.integers(0, max(len(buf) - 1, 0)), label="at")
                op = data.draw(st.sampled_from(["flip", "cut", "insert"]), label="op")
                if op == "flip" and buf:
                    buf[at] ^= data.draw(st.integers(1, 255))
                elif op == "cut":
                    del buf[at:]
                else:
                    buf[at:at] = data.draw(st.binary(min_size=1, max_size=8))
            raw = bytes(buf)
        else:
            op = data.draw(st.sampled_from(["modify", "add", "delete", "rename"]), label="model_op")
            victim = model / data.draw(st.sampled_from(["weights.safetensors", "sub/config.json"]), label="file")
            if op == "modify":
                content = victim.read_bytes()
                at = data.draw(st.integers(0, len(content) - 1))
                victim.write_bytes(content[:at] + bytes([content[at] ^ 1]) + content[at + 1:])
            elif op == "add":
                (model / (data.draw(stems) + data.draw(extensions))).write_bytes(data.draw(contents))
            elif op == "delete":
                victim.unlink()
            else:
                victim.rename(victim.with_name(victim.name + ".old"))
            tampered = True
            event(f"model {op}")
        sig.write_bytes(raw)
        run = run_cli("model", "verify", str(model), "--policy", str(signed["policy"]), "--public-key",
                      str(signed["pub"]), "--signature", str(sig))
        event(f"{target} exit {run.code}")
        check_contract(run, violation_planted=tampered)
        if target == "signature_bytes" and raw != signed["sig"]:
            # A changed signature never verifies unless the change is JSON-insignificant (whitespace).
            try:
                same = json.loads(raw) == json.loads(signed["sig"])
            except (ValueError, UnicodeDecodeError):
                same = False
            assert run.code != 0 or same, run.describe()


@fuzz_settings(max_examples=30)
@given(entries=model_trees())
def test_what_sign_accepts_verify_accepts(signed, entries):
    """Sign a fuzzed tree: either sign refuses it (exit 1 or 2) or the untouched model verifies (exit 0)."""
    with tempfile.TemporaryDirectory(prefix="aisec-fuzz-") as tmp:
        model = Path(tmp) / "model"
        build(model, [e for e in entries if e[0] in ("file", "dir")])
        sig = Path(tmp) / "model.sig"
        run = run_cli("model", "sign", str(model), "--key", str(signed["dir"] / "key.pem"), "--signature", str(sig))
        event(f"sign exit {run.code}")
        check_contract(run)
        if run.code != 0:
            return
        verify = run_cli("model", "verify", str(model), "--policy", str(signed["policy"]), "--public-key",
                         str(signed["pub"]), "--signature", str(sig))
        event(f"verify exit {verify.code}")
        check_contract(verify)
        assert verify.code == 0, "signed model does not verify:\n" + run.describe() + "\n" + verify.describe()
