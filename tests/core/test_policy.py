"""Policy loading: every bad input is a PolicyError naming the file and field; nothing else escapes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_aisec.core.policy import Policy, load_policy, parse_policy, policy_json_schema
from airflow_aisec.core.policy.base import Enforcement
from airflow_aisec.exceptions import PolicyError

REPO = Path(__file__).resolve().parents[2]

MINIMAL = b"version: 1\nname: test\n"


def write(tmp_path: Path, text: str | bytes, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_minimal_policy_loads_with_digest(tmp_path):
    loaded = load_policy(write(tmp_path, MINIMAL))
    assert loaded.name == "test"
    assert loaded.policy.enforcement == Enforcement.ENFORCE
    import hashlib

    assert loaded.sha256 == hashlib.sha256(MINIMAL).hexdigest()
    assert loaded.source.endswith("policy.yaml")


@pytest.mark.parametrize("path", sorted((REPO / "policies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_policies_are_valid(path):
    assert load_policy(path).name


def test_strict_policy_is_named_strict():
    assert load_policy(REPO / "policies" / "strict.yaml").name == "strict"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("name: [unclosed\n", "line 2, column 1: malformed YAML"),
        ("name: x\n  bad: indent: here\n", "line 2"),
        ("- a\n- b\n", "YAML list"),
        ("just a string\n", "YAML str"),
        ("name: x\nversion: one\n", "field 'version'"),
        ("name: x\nenforcment: warn\n", "field 'enforcment': unknown key"),
        ("name: x\nenforcement: block\n", "field 'enforcement'"),
        ("name: x\nrules: {pii.x: sometimes}\n", "field 'rules.pii.x'"),
        ("name: x\npii: {enforcement: enforce, bogus_key: 1}\n", "field 'pii.bogus_key'"),
        (
            "name: x\nwaivers:\n  - {rule: a, reason: r, approved_by: me}\n",
            "field 'waivers.0.expires'",
        ),
        (
            "name: x\nwaivers:\n  - {rule: a, reason: r, approved_by: me, expires: soon}\n",
            "field 'waivers.0.expires'",
        ),
        ("name: x\nwaivers:\n  - {rule: a, reason: '', approved_by: me, expires: 2030-01-01}\n", "reason"),
        ("name: x\nname: y\n", "duplicate key 'name'"),
        ("version: 2\nname: x\n", "unsupported policy version"),
        ("version: 1\n", "field 'name'"),
        ("", "policy is empty"),
        ("   \n\n", "policy is empty"),
        ("---\n...\n", "empty document"),
    ],
)
def test_bad_policies_name_file_and_field(tmp_path, content, fragment):
    path = write(tmp_path, content)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_binary_file_is_rejected(tmp_path):
    path = write(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR")
    with pytest.raises(PolicyError, match="binary"):
        load_policy(path)


def test_non_utf8_is_rejected(tmp_path):
    with pytest.raises(PolicyError, match="UTF-8"):
        load_policy(write(tmp_path, "name: caf\xe9\n".encode("latin-1")))


def test_missing_file_and_directory_and_none(tmp_path):
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "nope.yaml")
    with pytest.raises(PolicyError, match="directory"):
        load_policy(tmp_path)
    with pytest.raises(PolicyError, match="no policy given"):
        load_policy("")


def test_enforcement_resolution_order():
    policy = parse_policy(
        b"name: x\nenforcement: audit\nrules:\n  drift.*: warn\n  drift.psi: enforce\n"
        b"drift: {enforcement: enforce}\nbias: {enforcement: warn}\n"
    ).policy
    assert policy.enforcement_for("drift.psi", policy.drift) == Enforcement.ENFORCE  # exact id
    assert policy.enforcement_for("drift.ks", policy.drift) == Enforcement.WARN  # glob beats section
    assert policy.enforcement_for("bias.dp", policy.bias) == Enforcement.WARN  # section default
    assert policy.enforcement_for("source.x", None) == Enforcement.AUDIT  # policy default


def test_missing_section_refuses():
    policy = parse_policy(MINIMAL).policy
    with pytest.raises(PolicyError, match="no 'pii' section"):
        policy.section("pii")


def test_waiver_scope_and_expiry():
    policy = parse_policy(
        b"name: x\nwaivers:\n"
        b"  - {rule: 'pii.*', scope: {dag_id: 'legacy_*'}, reason: r, approved_by: a, expires: 2030-01-31}\n"
    ).policy
    waiver = policy.waivers[0]
    day = dt.date(2030, 1, 31)
    assert waiver.applies("pii.entity_not_allowed", dag_id="legacy_etl", task_id="t", today=day)
    assert not waiver.applies("pii.entity_not_allowed", dag_id="legacy_etl", task_id="t", today=day + dt.timedelta(1))
    assert not waiver.applies("pii.entity_not_allowed", dag_id="new_etl", task_id="t", today=day)
    assert not waiver.applies("bias.dp", dag_id="legacy_etl", task_id="t", today=day)


def test_policy_is_immutable():
    policy = parse_policy(MINIMAL).policy
    with pytest.raises(pydantic.ValidationError):
        policy.name = "other"  # type: ignore[misc]


def test_json_schema_is_valid_and_forbids_extra_keys():
    import jsonschema

    schema = policy_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    jsonschema.validate({"name": "x", "version": 1}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "typo": 1}, schema)


# ------------------------------------------------------------------------------------------
# Property-based: any input either loads to a valid policy or raises PolicyError, nothing else.
# ------------------------------------------------------------------------------------------
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
    st.dates().map(str), st.sampled_from(["enforce", "warn", "audit", "block", "pii", "name", "*"]),
)
_keys = st.one_of(
    st.sampled_from(
        ["version", "name", "description", "enforcement", "rules", "waivers", "pii", "bias", "drift", "source",
         "signing", "model_scan", "secrets", "platform", "rule", "scope", "reason", "approved_by", "expires",
         "dag_id", "task_id"]
    ),
    st.text(max_size=10),
)
_documents = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=5)),
    max_leaves=25,
)


def _dump(doc) -> bytes:
    import yaml

    return yaml.safe_dump(doc, allow_unicode=True).encode()


def _check(data: bytes) -> None:
    try:
        loaded = parse_policy(data, source="<hypothesis>")
    except PolicyError:
        return
    assert isinstance(loaded.policy, Policy)
    assert len(loaded.sha256) == 64


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents)
def test_any_yaml_document_loads_or_raises_policy_error(doc):
    _check(_dump(doc))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_load_or_raise_policy_error(data):
    _check(data)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_loads_or_raises_policy_error(text):
    _check(text.encode("utf-8", "replace"))


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["version", "name", "enforcement", "rules", "waivers"]), _scalars, max_size=5)
)
def test_near_valid_documents(doc):
    _check(_dump({"name": "p", **doc}))


@pytest.mark.timeout(120)  # a hang guard, not a speed target: the walk stops at MAX_POLICY_VALUES
def test_yaml_aliases_cannot_expand_a_small_policy_into_a_huge_one():
    # 100 KB of YAML: one 20,000-item list referenced 10,000 times was 2 x 10^8 values for pydantic
    # (~1.6 GB, seconds); at the 1 MiB size limit that is out of memory for whoever loads the policy.
    doc = ("name: bomb\nbias:\n  sensitive: &s [" + ", ".join(["a"] * 20_000) + "]\n"
           "  intersections: [" + ", ".join(["*s"] * 10_000) + "]\n")
    with pytest.raises(PolicyError, match="aliases"):
        parse_policy(doc.encode())
    recursive = "name: loop\nrules: &r {a: *r}\n"
    with pytest.raises(PolicyError):
        parse_policy(recursive.encode())
    # anchors used the ordinary way still work
    shared = ("name: ok\ndrift:\n  thresholds: &t {psi: {max: 0.2}}\n"
              "  per_feature: {age: *t, income: *t}\n")
    assert parse_policy(shared.encode()).policy.drift.per_feature["age"].psi.max == 0.2


def test_package_exports_resolve_and_match_the_lazy_table():
    import airflow_aisec.core.policy as package

    assert sorted(package.__all__) == sorted(package._EXPORTS)
    for name in package.__all__:
        assert getattr(package, name) is not None


def test_libyaml_and_python_parsers_read_every_shipped_policy_alike():
    import yaml

    from airflow_aisec.core.policy import loader

    if loader._FastUniqueKeyLoader is None:
        pytest.fail("PyYAML without libyaml: the lock file's wheel has it")
    for path in sorted((Path(__file__).resolve().parents[2] / "policies").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert yaml.load(text, Loader=loader._FastUniqueKeyLoader) == yaml.load(text, Loader=loader._UniqueKeyLoader)
    # A duplicate key is refused by both; the message is always the Python parser's (line and column).
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.load("a: 1\na: 2\n", Loader=loader._FastUniqueKeyLoader)
    with pytest.raises(PolicyError, match="line 3, column 1: malformed YAML: duplicate key 'name'"):
        parse_policy(b"version: 1\nname: a\nname: b\n")
