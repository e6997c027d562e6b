"""Every gate verb shares the common options."""

from __future__ import annotations


def test_every_gate_verb_takes_policy_json_evidence(aisec_cli):
    """The common options exist on every gate verb (help text lists them)."""
    verbs = [("source", "check"), ("pii", "scan"), ("pii", "redact"), ("model", "sign"), ("model", "verify"), ("model", "scan"),
             ("secrets", "check"), ("bias", "check"), ("drift", "check")]
    for verb in verbs:
        out = aisec_cli(*verb, "--help")
        assert out.returncode == 0, (verb, out.stderr)
        for option in ("--policy", "--json", "--evidence"):
            assert option in out.stdout, (verb, option)
