"""Strict scalars in every policy section: a boolean is not an integer, a string is not a number."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from airflow_aisec.core.policy import load_policy, parse_policy
from airflow_aisec.exceptions import PolicyError

REPO = Path(__file__).resolve().parents[2]


def parse(body: str):
    return parse_policy(f"name: t\n{body}\n".encode()).policy


@pytest.mark.parametrize(
    ("body", "field", "given"),
    [
        ("version: true", "version", "a boolean"),
        ("version: '1'", "version", "a string"),
        ("version: 1.0", "version", "a floating-point number"),
        ("bias: {min_group_size: true}", "bias.min_group_size", "a boolean"),
        ("bias: {min_group_size: '30'}", "bias.min_group_size", "a string"),
        ("bias: {thresholds: {demographic_parity_ratio: {min: true}}}",
         "bias.thresholds.demographic_parity_ratio.min", "a boolean"),
        ("bias: {thresholds: {demographic_parity_ratio: {min: '0.8'}}}",
         "bias.thresholds.demographic_parity_ratio.min", "a string"),
        ("drift: {bins: false}", "drift.bins", "a boolean"),
        ("drift: {thresholds: {psi: {max: '0.2'}}}", "drift.thresholds.psi.max", "a string"),
        ("pii: {min_count: true}", "pii.min_count", "a boolean"),
        ("pii: {min_share: '0.1'}", "pii.min_share", "a string"),
        ("pii: {nlp: {enabled: 1}}", "pii.nlp.enabled", "an integer"),
        ("pii: {nlp: {enabled: 'yes'}}", "pii.nlp.enabled", "a string"),
        ("secrets: {kv_version: true}", "secrets.kv_version", None),
        ("source: {origins: ['*'], rows: {min: true}}", "source.rows.min", "a boolean"),
        ("source: {origins: ['*'], batch_rows: '100'}", "source.batch_rows", "a string"),
        ("source: {origins: ['*'], poisoning: {duplicates: {max_rate: true}}}",
         "source.poisoning.duplicates.max_rate", "a boolean"),
        ("model_scan: {forbid_pickle: 'true'}", "model_scan.forbid_pickle", "a string"),
        ("model_scan: {max_files: true}", "model_scan.max_files", "a boolean"),
        ("signing: {max_signature_bytes: true}", "signing.max_signature_bytes", "a boolean"),
        ("signing: {trusted_keys: [{id: k, transit: {name: n, versions: [true]}}]}",
         "signing.trusted_keys.0.transit.versions.0", "a boolean"),
    ],
)
def test_booleans_and_strings_are_not_numbers(body, field, given):
    with pytest.raises(PolicyError) as info:
        parse(body)
    text = str(info.value)
    assert f"field '{field}'" in text, text
    assert "valid integer" in text or "valid number" in text or "valid boolean" in text
    if given:
        assert text.endswith(f"not {given}"), text
    else:
        assert "not a boolean" in text


def test_what_stays_accepted():
    policy = parse(
        "enforcement: warn\n"                                      # enums from strings
        "rules: {drift.*: audit}\n"
        "waivers:\n"
        "  - {rule: a, reason: r, approved_by: x, expires: 2027-01-31}\n"   # YAML date
        "  - {rule: b, reason: r, approved_by: x, expires: '2027-02-01'}\n"  # ISO date string
        "bias:\n"
        "  min_group_size: 5\n"
        "  thresholds: {demographic_parity_ratio: {min: 1}}\n"      # an integer for a float
        "  intersections: true\n"
        "drift: {bins: 4, thresholds: {psi: {max: 0}}}\n"
        "pii: {min_share: 1, nlp: {enabled: false, min_score: 1}}\n"
        "secrets: {kv_version: 1}\n"
    )
    assert policy.version == 1
    assert policy.waivers[0].expires == dt.date(2027, 1, 31) and policy.waivers[1].expires == dt.date(2027, 2, 1)
    assert policy.bias.thresholds["demographic_parity_ratio"].min == 1.0
    assert isinstance(policy.bias.thresholds["demographic_parity_ratio"].min, float)
    assert policy.bias.intersections is True and policy.secrets.kv_version == 1
    assert policy.enforcement.value == "warn" and policy.rules["drift.*"].value == "audit"


def test_every_shipped_policy_still_validates():
    paths = sorted((REPO / "policies").glob("*.yaml"))
    assert len(paths) >= 8
    for path in paths:
        assert load_policy(path).policy.name
