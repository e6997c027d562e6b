"""The rule catalogue (``core/rules.py``) is complete and has no dead rules.

Completeness is proven two ways:

* statically: every rule id the package can emit is collected from its source: string literals
  ``"<gate>.<name>"``, ``f"{GATE}.<name>"`` f-strings (the gate from the file's ``core/gates/<gate>/``
  folder), the gates' finding helpers called with a literal check name (``finding("stale", ...)``), the
  endpoint's rule-name arguments; each must be in the catalogue. An f-string whose rule name is itself
  a variable (``f"{GATE}.{metric}"``) must be one of the registered families below, so a new
  parametrised emitter fails here until the catalogue has a family for it;
* dynamically: real results of real checks over the existing test corpora (the labelled prompt-injection
  corpus, a drifted table, a table with planted PII) carry only catalogued rule ids.

No dead rules: every fixed catalogue entry is emitted somewhere in the source, and every family's
parametrised emitter exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from airflow_aisec.core import rules as catalogue_mod
from airflow_aisec.core.rules import ANY_GATE, catalogue, families, known, lookup
from tests.helpers.env import REPO

PACKAGE = REPO / "airflow_aisec"
GATES_DIR = PACKAGE / "core" / "gates"
GATES = sorted(p.name for p in GATES_DIR.iterdir() if p.is_dir() and not p.name.startswith("_"))
#: Files that only consume rule ids (the catalogue itself and its readers).
CONSUMERS = {PACKAGE / "core" / "rules.py", PACKAGE / "core" / "sarif.py", PACKAGE / "lineage.py"}
#: Rule id prefixes that are not gate folders.
EXTRA_PREFIXES = ("partitions",)

_PREFIX = "|".join(GATES + list(EXTRA_PREFIXES))
_LITERAL = re.compile(rf"""(?<![\w{{/.-])["']({_PREFIX})\.([a-z][a-z0-9_]*)["']""")
#: f"{GATE}.name" / f"{gate}.name" / f"{self.gate}.name" with a literal name.
_F_FIXED = re.compile(r"""f["']\{(?:GATE|gate|self\.gate)\}\.([a-z][a-z0-9_]*)["']""")
#: f"{GATE}.{name}" / f"{gate}.security_violation": a parametrised emitter.
_F_PARAM = re.compile(r"""f["']\{(?:GATE|gate|self\.gate)\}\.(\{\w+\}|[a-z_]+)["']""")
#: A gate's finding helper called with a literal check name (source, storage, endpoint).
_HELPER = re.compile(r"""\b(?:_?finding|probes\.finding)\(\s*["']([a-z][a-z0-9_]*)["']""")
#: Endpoint: rule names passed as arguments or returned as (name, message) problems.
_ENDPOINT_NAMES = re.compile(r"""(?:rule_none=|rule_bad=|problems\.append\(\()["']([a-z][a-z0-9_]*)["']""")

#: Every parametrised emitter (file relative to the package, rule-name expression) -> its family.
PARAMETRISED = {
    ("core/gates/bias/_evaluate.py", "{metric}"): "bias.<metric>",
    ("core/gates/drift/_judge.py", "{metric}"): "drift.<statistic>",
    ("core/gates/prompt_injection/_tally.py", "{rule}"): "prompt_injection.<rule>",
    ("core/gates/endpoint/_probes.py", "{check}"): "endpoint.<rule>",
    ("core/gates/endpoint/check.py", "{r}"): "endpoint.<rule>",  # the RULES tuple itself
    ("core/gates/source/_context.py", "{rule}"): None,  # finding("<literal>") helper: scanned by _HELPER
    ("core/gates/storage/check.py", "{check}"): None,  # _finding("<literal>") helper: scanned by _HELPER
    ("core/verdict.py", "security_violation"): "<gate>.security_violation",
    ("core/io/vault.py", "vault_access_denied"): "errors",  # AccessDeniedError: verdict error, no finding
    ("core/io/vault.py", "path_missing"): "errors",
}
#: Families whose emitter is not an f-string: the platform pod rules (``RULE_PREFIX`` + POD_RULES key)
#: and the platform's structural rules (``RULE_PREFIX`` + the policy's rule id).
PREFIX_EMITTERS = {"platform.<pod rule>": "core/gates/platform/_pods.py",
                   "platform.<rule id>": "core/policy/sections/platform.py"}


def _gate_of(path: Path) -> str | None:
    rel = path.relative_to(PACKAGE).parts
    if rel[:2] == ("core", "gates") and len(rel) > 3:
        return rel[2]
    return None


def _sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py")) if p not in CONSUMERS]


def static_rule_ids() -> dict[str, set[str]]:
    """Rule id -> files emitting it, from the package source."""
    found: dict[str, set[str]] = {}

    def add(rid: str, path: Path) -> None:
        found.setdefault(rid, set()).add(str(path.relative_to(PACKAGE)))

    for path, text in _sources():
        gate = _gate_of(path)
        for prefix, name in _LITERAL.findall(text):
            add(f"{prefix}.{name}", path)
        for name in _F_FIXED.findall(text):
            if name in ("security_violation", "vault_access_denied", "path_missing"):
                continue  # any-gate families (see PARAMETRISED)
            # Outside a gate folder the gate comes from a GATE imported from it: any gate owning the name.
            owners = [gate] if gate else [g for g in GATES if f"{g}.{name}" in catalogue()]
            assert owners, f"{path}: f-string rule '<gate>.{name}' belongs to no catalogued gate"
            for g in owners:
                add(f"{g}.{name}", path)
        if gate:
            for name in _HELPER.findall(text):
                add(f"{gate}.{name}", path)
        if gate == "endpoint":
            for name in _ENDPOINT_NAMES.findall(text):
                add(f"endpoint.{name}", path)
    return found


def parametrised_emitters() -> set[tuple[str, str]]:
    out = set()
    for path, text in _sources():
        for expr in _F_PARAM.findall(text):
            if expr.startswith("{") or expr in ("security_violation", "vault_access_denied", "path_missing"):
                out.add((str(path.relative_to(PACKAGE)), expr))
    return out


# --------------------------------------------------------------------------------------------
# The catalogue itself
# --------------------------------------------------------------------------------------------
def test_catalogue_entries_are_well_formed():
    cat = catalogue()
    assert len(cat) >= 120
    for rid, rule in cat.items():
        assert rule.id == rid and re.fullmatch(r"[a-z_]+\.[a-z0-9_]+", rid), rid
        assert rule.gate in catalogue_mod.GATE_DESCRIPTIONS, rid
        assert rid.startswith(rule.gate + "."), rid
        assert rule.description and rule.description[0].isupper() and not rule.description.endswith("."), rid
    patterns = [f.pattern for f in families()]
    assert len(patterns) == len(set(patterns))


def test_families_reuse_the_gates_own_tuples():
    from airflow_aisec.core.gates.endpoint import RULES as ENDPOINT_RULES
    from airflow_aisec.core.gates.platform import POD_RULES
    from airflow_aisec.core.policy.sections.bias import DISPARITY_METRICS, GROUP_METRICS
    from airflow_aisec.core.policy.sections.drift import DRIFT_METRICS
    from airflow_aisec.core.policy.sections.prompt_injection import RULES as PI_RULES

    fam = {f.pattern: f for f in families()}
    assert fam["bias.<metric>"].members == GROUP_METRICS + DISPARITY_METRICS
    assert fam["drift.<statistic>"].members == tuple(DRIFT_METRICS)
    assert fam["prompt_injection.<rule>"].members == PI_RULES
    assert tuple(f"endpoint.{m}" for m in fam["endpoint.<rule>"].members) == ENDPOINT_RULES
    assert set(fam["platform.<pod rule>"].members) == set(POD_RULES)
    # Every endpoint rule has its own description, not the generated fallback.
    assert set(catalogue_mod._ENDPOINT) == set(fam["endpoint.<rule>"].members)


def test_lookup_of_family_and_open_ids():
    assert lookup("bias.demographic_parity_ratio").family == "bias.<metric>"
    assert lookup("bias.no_such_metric") is None
    assert lookup("platform.models-need-signing").family == "platform.<rule id>"
    rule = lookup("secrets.security_violation")
    assert rule.gate == "secrets" and rule.family == "<gate>.security_violation"
    assert not known("nogate") and not known("pii.no_such_rule")


def test_lineage_and_sarif_read_the_catalogue():
    from airflow_aisec.core.sarif import sarif_run
    from airflow_aisec.lineage import GATE_RULES

    for gate in catalogue_mod.GATE_DESCRIPTIONS:
        assert GATE_RULES[gate] == tuple(r.id for r in catalogue().values() if r.gate == gate and r.always)
    assert "endpoint.tls_required" in GATE_RULES["endpoint"]
    assert len(GATE_RULES["prompt_injection"]) == 12 and "prompt_injection.unscanned_file" in GATE_RULES["prompt_injection"]
    doc = {"gate": "drift", "verdict": "fail", "findings": [
        {"rule": "drift.psi", "message": "m", "severity": "high", "enforcement": "enforce"},
        {"rule": "drift.unseen_category", "message": "m", "severity": "high", "enforcement": "enforce"}]}
    rules = sarif_run(doc)["tool"]["driver"]["rules"]
    assert [r["shortDescription"]["text"] for r in rules] == [lookup("drift.psi").description,
                                                              lookup("drift.unseen_category").description]


# --------------------------------------------------------------------------------------------
# Completeness and no dead rules: static
# --------------------------------------------------------------------------------------------
def test_every_rule_id_in_the_source_is_catalogued():
    found = static_rule_ids()
    assert len(found) >= 75, sorted(found)
    missing = {rid: sorted(files) for rid, files in found.items() if not known(rid)}
    assert not missing, f"rule ids emitted but not in core/rules.py: {missing}"


def test_every_parametrised_emitter_has_a_family():
    emitters = parametrised_emitters()
    unknown = emitters - set(PARAMETRISED)
    assert not unknown, f"new parametrised rule ids: add a family to core/rules.py and register it here: {unknown}"
    gone = set(PARAMETRISED) - emitters
    assert not gone, f"registered emitters no longer in the source: {gone}"
    patterns = {f.pattern for f in families()}
    for family in set(PARAMETRISED.values()) - {None, "errors"}:
        assert family in patterns, family
    for family, rel in PREFIX_EMITTERS.items():
        assert family in patterns
        assert "RULE_PREFIX" in (PACKAGE / rel).read_text(encoding="utf-8"), rel


def test_no_dead_rules():
    found = static_rule_ids()
    fixed_dead = sorted(rid for rid, r in catalogue().items() if r.family is None and rid not in found)
    assert not fixed_dead, f"catalogued rules no code emits: {fixed_dead}"
    # Endpoint members are emitted by name (helpers, arguments, TLS problems): each must be.
    endpoint = [rid for rid, r in catalogue().items() if r.family == "endpoint.<rule>"]
    assert sorted(rid for rid in endpoint if rid not in found) == []
    emitted_families = {f for f in PARAMETRISED.values() if f} | set(PREFIX_EMITTERS)
    dead_families = [f.pattern for f in families() if f.pattern not in emitted_families]
    assert not dead_families, dead_families
    assert all(f.gate == ANY_GATE or f.gate in GATES for f in families())


# --------------------------------------------------------------------------------------------
# Completeness: dynamic, from real checks over the test corpora
# --------------------------------------------------------------------------------------------
def _ids(outcome) -> set[str]:
    return {f.rule for f in outcome.findings}


def test_prompt_injection_corpus_findings_are_catalogued(tmp_path):
    from airflow_aisec.core.gates.prompt_injection import check_prompt_injection
    from airflow_aisec.core.policy.sections.prompt_injection import PromptInjectionPolicy
    from tests.helpers import prompt_corpus

    prompt_corpus.write_documents(tmp_path / "docs")
    ids = _ids(check_prompt_injection(PromptInjectionPolicy(), str(tmp_path / "docs")))
    assert len(ids) >= 8, ids  # the corpus has an attack family per rule
    assert all(known(r) for r in ids), ids - {r for r in ids if known(r)}


def test_drift_findings_are_catalogued(tmp_path):
    from airflow_aisec.core.gates.drift import check_drift
    from airflow_aisec.core.policy.sections.drift import DriftPolicy

    n = 400
    ref = pd.DataFrame({"age": [20 + i % 30 for i in range(n)], "city": ["a", "b"] * (n // 2),
                        "score": [float(i % 7) for i in range(n)]})
    cur = pd.DataFrame({"age": [70 + i % 30 for i in range(n)], "city": ["c", "d"] * (n // 2),
                        "score": [f"s{i % 7}" for i in range(n)]})
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_csv(tmp_path / "cur.csv", index=False)
    ids = _ids(check_drift(DriftPolicy(), str(tmp_path / "ref.csv"), str(tmp_path / "cur.csv")))
    assert {"drift.unseen_category"} <= ids and any(lookup(r).family == "drift.<statistic>" for r in ids), ids
    assert all(known(r) for r in ids), ids


@pytest.mark.parametrize("classification", ["public"])
def test_pii_findings_are_catalogued(tmp_path, classification):
    from airflow_aisec.core.gates.pii import check_pii
    from airflow_aisec.core.policy.sections.pii import PiiPolicy

    n = 60
    frame = pd.DataFrame({"contact": [f"user{i}@example.org" for i in range(n)],
                          "ip": [f"10.0.{i}.{i + 1}" for i in range(n)], "n": list(range(n))})
    frame.to_csv(tmp_path / "people.csv", index=False)
    ids = _ids(check_pii(PiiPolicy(), str(tmp_path / "people.csv"), classification=classification))
    assert "pii.entity_not_allowed" in ids, ids
    assert all(known(r) for r in ids), ids


def test_docs_page_renders_the_catalogue():
    """The rules page uses the directive, which the docs build loads (the build itself: test_docs_build)."""
    page = (REPO / "docs" / "reference" / "rules.md").read_text(encoding="utf-8")
    assert "```{aisec-rules}" in page
    assert 'setup_extension("aisec_rules")' in (REPO / "docs" / "_ext" / "aisec_settings.py").read_text()


def test_the_scanner_sees_every_way_a_rule_id_is_built():
    """The static scan is not vacuous: each pattern catches the form the gates use, and nothing else."""
    text = '''RULE_X = "pii.new_entity_rule"
    Finding(rule=f"{GATE}.token_leak", ...)
    ctx.findings.append(finding(
        "row_count", "msg"))
    out.append(_finding("public_acl", Severity.HIGH, "m"))
    Finding(rule=f"{GATE}.{entity}")
    url = "https://pii.example/x"; path = "models/pii.joblib"
    '''
    assert _LITERAL.findall(text) == [("pii", "new_entity_rule")]
    assert _F_FIXED.findall(text) == ["token_leak"]
    assert _HELPER.findall(text) == ["row_count", "public_acl"]
    assert "{entity}" in _F_PARAM.findall(text)
    assert not known("pii.new_entity_rule")
