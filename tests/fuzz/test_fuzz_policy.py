"""Fuzzed policies: every shipped policy, mutated structurally (any section, any field) and byte-wise,
through ``aisec policy validate`` and the gate verb of the mutated section."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from tests.fuzz._support import REPO, check_contract, fuzz_settings, run_cli

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(300)]

POLICIES = sorted((REPO / "policies").glob("*.yaml"))
DOCUMENTS = {p.name: yaml.safe_load(p.read_text()) for p in POLICIES}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["*", "**", "", "enforce", "warn", "audit", "0.5", "1", "true", "1d", "-1", "../x", "s3://b/k",
                     "public", "EMAIL_ADDRESS", "sha256", "files", "psi", "min", "max"]),
    st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2200, 1, 1)),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=12) | st.sampled_from(["min", "max", "enabled", "columns", "allowed", "forbidden"]), inner,
    max_size=4), max_leaves=12)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


def tweaked(value: Any) -> st.SearchStrategy:
    """A value of the same kind (so that the policy often stays valid and the gate itself runs)."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(min_value=-2, max_value=max(2 * abs(value), 10))
    if isinstance(value, float):
        return st.floats(min_value=-1.0, max_value=max(2 * abs(value), 2.0))
    if isinstance(value, str):
        return st.sampled_from([value, value.upper(), value + "*", "*", "", value[::-1]]) | st.text(max_size=12)
    if isinstance(value, list):
        return st.lists(st.sampled_from(value), max_size=len(value) + 1) if value else st.just([])
    return st.just(value)


def mutate(doc: Any, data: st.DataObject) -> Any:
    """Apply 1-3 random edits (replace, delete, add an unknown key, wrap in a list) at random places."""
    import copy

    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        all_paths = paths(doc)
        path = data.draw(st.sampled_from(all_paths), label="path")
        op = data.draw(st.sampled_from(["tweak", "tweak", "tweak", "replace", "delete", "add", "wrap"]), label="op")
        if not path:
            if op == "replace":
                doc = data.draw(values, label="root")
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if op == "tweak":
            parent[last] = data.draw(tweaked(parent[last]), label="tweaked")
        elif op == "replace":
            parent[last] = data.draw(values, label="value")
        elif op == "delete":
            del parent[last]
        elif op == "add" and isinstance(parent[last], dict):
            parent[last][data.draw(st.text(min_size=1, max_size=10), label="key")] = data.draw(values)
        elif op == "wrap":
            parent[last] = [parent[last]]
    return doc


def gate_argv(section: str, policy: Path, inputs: dict[str, Path]) -> list[str] | None:
    """A gate verb that reads only local inputs for that section (secrets / platform need services)."""
    p = str(policy)
    if section == "pii":
        return ["pii", "scan", str(inputs["table"]), "--policy", p]
    if section == "source":
        return ["source", "check", str(inputs["table"]), "--policy", p]
    if section == "bias":
        return ["bias", "check", str(inputs["table"]), "--policy", p, "--label", "label", "--prediction", "pred",
                "--sensitive", "group"]
    if section == "drift":
        return ["drift", "check", str(inputs["table"]), str(inputs["table"]), "--policy", p]
    if section == "model_scan":
        return ["model", "scan", str(inputs["model"]), "--policy", p]
    return None


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz-policy")
    table = d / "table.csv"
    table.write_text("label,pred,group,amount\n" + "".join(
        f"{i % 2},{(i // 3) % 2},{'ab'[i % 2]},{i * 1.5}\n" for i in range(200)))
    model = d / "model"
    model.mkdir()
    (model / "config.json").write_text('{"layers": 2}')
    return {"table": table, "model": model}


@fuzz_settings(max_examples=120)
@given(name=st.sampled_from(sorted(DOCUMENTS)), data=st.data())
def test_mutated_policy_validate_and_gate(inputs, name, data):
    doc = mutate(DOCUMENTS[name], data)
    with tempfile.TemporaryDirectory(prefix="aisec-fuzz-") as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
        run = run_cli("policy", "validate", str(policy))
        check_contract(run)
        assert run.code in (0, 2), run.describe()
        event(f"validate exit {run.code}")
        if run.code != 0 or not isinstance(doc, dict):
            return
        sections = [s for s in ("pii", "source", "bias", "drift", "model_scan") if doc.get(s) is not None]
        if not sections:
            return
        section = data.draw(st.sampled_from(sections), label="gate")
        gate = run_cli(*gate_argv(section, policy, inputs))
        event(f"{section} exit {gate.code}")
        check_contract(gate)


yaml_noise = st.sampled_from([
    b"&a [*a]", b"!!python/object:os.system", b"!!binary AAAA", b"<<: *x", b"\t", b"\x00", b"\xff\xfe", b"? ",
    b"- ", b": ", b"{", b"]", b"'", b'"', b"\n", b"%YAML 1.1\n", b"--- ", b"...\n", b"#", b"\xef\xbb\xbf",
    b"version: 1\n", b"name: x\n", b"1e999", b".nan", b"0x1F", b"0o17", b"2027-13-45", b"~",
])


@fuzz_settings(max_examples=60)
@given(name=st.sampled_from(sorted(DOCUMENTS)), data=st.data())
def test_byte_mutated_policy(name, data):
    raw = bytearray((REPO / "policies" / name).read_bytes())
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.integers(0, len(raw)), label="at")
        op = data.draw(st.sampled_from(["insert", "delete", "flip", "truncate"]), label="op")
        if op == "insert":
            raw[at:at] = data.draw(yaml_noise | st.binary(max_size=8), label="bytes")
        elif op == "delete":
            del raw[at:at + data.draw(st.integers(1, 64))]
        elif op == "flip" and at < len(raw):
            raw[at] ^= data.draw(st.integers(1, 255))
        else:
            del raw[at:]
    with tempfile.TemporaryDirectory(prefix="aisec-fuzz-") as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_bytes(bytes(raw))
        run = run_cli("policy", "validate", str(policy))
        check_contract(run)
        assert run.code in (0, 2), run.describe()
