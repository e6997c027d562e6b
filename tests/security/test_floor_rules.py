"""The policy floor in the core runner (``core.gate.run_gate`` with a baseline): the stricter outcome
wins rule by rule, whatever the gate's own policy says. Real policies, a real check function; the
same runner the operators and the CLI use (``aisec ... --baseline`` is checked at the end)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_aisec.core.gate import run_gate
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.core.result import AirflowRef, CheckOutcome, Finding
from airflow_aisec.exceptions import PolicyError

REF = AirflowRef(dag_id="team_dag", run_id="r1", task_id="gate", try_number=1)

BASELINE = parse_policy(b"""
version: 1
name: platform-baseline
enforcement: enforce
rules: {drift.note: warn}
waivers:
  - rule: drift.legacy
    scope: {dag_id: "team_*"}
    reason: PLAT-9 accepted by the platform
    approved_by: security@example.com
    expires: 2099-12-31
drift:
  thresholds: {psi: {max: 0.2}}
""", source="baseline.yaml")

#: A DAG author's policy: the same name as the production one, everything switched off.
PERMISSIVE = parse_policy(b"""
version: 1
name: strict
enforcement: audit
rules: {"*": audit, "drift.*": audit}
waivers:
  - rule: "*"
    reason: SEC-1 approved exception
    approved_by: security@example.com
    expires: 2099-12-31
drift:
  enforcement: audit
  thresholds: {psi: {max: 0.9}}
""", source="own.yaml")


def psi_check(value: float):
    """A check whose findings depend on the section: psi above the section's threshold."""

    def check(loaded):
        limit = loaded.section("drift").thresholds.psi.max
        findings = [Finding(rule="drift.psi", message=f"psi {value} > {limit}", count=1)] if value > limit else []
        return CheckOutcome(findings=findings, metrics={"psi": value, "limit": limit})

    return check


def fixed(*rules: str):
    return lambda loaded: CheckOutcome(findings=[Finding(rule=r, message=f"{r} violated", count=1) for r in rules])


def run(own, check, baseline=BASELINE):
    return run_gate("drift", lambda: own, check, airflow=REF, baseline=lambda: baseline).result


def test_without_a_floor_the_permissive_policy_lets_everything_pass():
    """The attack of issue 11: the DAG author's policy decides alone."""
    result = run_gate("drift", lambda: PERMISSIVE, psi_check(0.5), airflow=REF).result
    assert result.verdict == "pass" and result.baseline is None


def test_a_finding_under_the_baseline_counts_and_its_level_cannot_be_lowered():
    result = run(PERMISSIVE, psi_check(0.5))
    assert result.verdict == "fail"
    (finding,) = result.findings
    assert finding.rule == "drift.psi" and finding.enforcement == "enforce" and not finding.waived
    assert "> 0.2" in finding.message  # raised under the baseline's threshold, not the own 0.9
    assert result.policy.name == "strict" and result.policy.sha256 == PERMISSIVE.sha256
    assert result.baseline.name == "platform-baseline" and result.baseline.sha256 == BASELINE.sha256
    assert result.metrics == {"psi": 0.5, "limit": 0.9}  # the own policy's run is the primary one


def test_the_own_blanket_waiver_does_not_waive_what_the_baseline_raises():
    result = run(PERMISSIVE, fixed("drift.psi"))
    assert result.verdict == "fail" and result.waivers_applied == []


def test_a_waiver_the_baseline_holds_applies_when_both_policies_hold_one():
    result = run(PERMISSIVE, fixed("drift.legacy"))
    assert result.verdict == "pass" and result.findings[0].waived
    assert {w.reason for w in result.waivers_applied} == {"PLAT-9 accepted by the platform",
                                                          "SEC-1 approved exception"}


def test_the_stricter_level_wins_rule_by_rule_and_the_own_policy_may_tighten():
    # baseline says warn for drift.note; a permissive own policy cannot lower it to audit
    assert run(PERMISSIVE, fixed("drift.note")).verdict == "warn"
    tighter = parse_policy(b"version: 1\nname: team\nrules: {drift.note: enforce}\ndrift: {thresholds: {psi: {max: 0.1}}}\n",
                           source="team.yaml")
    assert run(tighter, fixed("drift.note")).verdict == "fail"
    # a lower own threshold adds a finding the baseline alone would not raise
    result = run(tighter, psi_check(0.15))
    assert result.verdict == "fail" and "> 0.1" in result.findings[0].message


def test_findings_raised_under_both_policies_are_one_finding():
    result = run(PERMISSIVE, fixed("drift.psi", "drift.other"))
    assert sorted(f.rule for f in result.findings) == ["drift.other", "drift.psi"]


def test_a_gate_the_own_policy_does_not_configure_still_runs_under_the_baseline():
    no_section = parse_policy(b"version: 1\nname: strict\nenforcement: audit\npii: {}\n", source="own.yaml")
    result = run(no_section, psi_check(0.5))
    assert result.verdict == "fail" and result.findings[0].enforcement == "enforce"
    # neither configures the gate: refused as before
    result = run(no_section, psi_check(0.5), baseline=parse_policy(b"version: 1\nname: b\npii: {}\n"))
    assert result.verdict == "error" and "no 'drift' section" in result.error.message


def test_an_unusable_or_mismatching_baseline_is_an_error_never_a_pass(tmp_path):
    from airflow_aisec.core.policy import load_pinned

    path = tmp_path / "baseline.yaml"
    path.write_text("version: 1\nname: b\ndrift: {}\n")

    def pinned(sha):
        return lambda: load_pinned(str(path), sha256=sha)

    ok = run_gate("drift", lambda: PERMISSIVE, fixed(), baseline=pinned("")).result
    assert ok.verdict == "pass" and ok.baseline.name == "b"
    bad = run_gate("drift", lambda: PERMISSIVE, fixed(), baseline=pinned("ab" * 32)).result
    assert bad.verdict == "error" and "does not match the pinned" in bad.error.message
    missing = run_gate("drift", lambda: PERMISSIVE, fixed(),
                       baseline=lambda: load_pinned(str(tmp_path / "gone.yaml"))).result
    assert missing.verdict == "error" and missing.error.type == "PolicyError"


def test_identical_sections_run_the_check_once():
    calls = []

    def check(loaded):
        calls.append(loaded.name)
        return CheckOutcome()

    same = parse_policy(b"version: 1\nname: team\ndrift:\n  thresholds: {psi: {max: 0.2}}\n", source="own.yaml")
    assert run(same, check).verdict == "pass"
    assert calls == ["team"]


def test_the_cli_takes_baseline_and_its_environment_variable(aisec_cli, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("id,email\n1,zq.one@example.com\n2,zq.two@example.com\n")
    own = tmp_path / "own.yaml"
    own.write_text("version: 1\nname: strict\nenforcement: audit\npii:\n  default_classification: public\n"
                   "  levels: {public: {allowed: ['*']}}\n")
    baseline = Path(__file__).resolve().parents[2] / "policies" / "baseline.yaml"
    assert aisec_cli("pii", "scan", str(data), "--policy", str(own)).returncode == 0  # the attack
    out = aisec_cli("pii", "scan", str(data), "--policy", str(own), "--baseline", str(baseline), "--json")
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    assert doc["baseline"]["name"] == "platform-baseline" and doc["verdict"] == "fail"
    import os

    out = aisec_cli("pii", "scan", str(data), "--policy", str(own),
                    env={**os.environ, "AISEC_BASELINE_POLICY": str(baseline)})
    assert out.returncode == 1 and "baseline: platform-baseline" in out.stdout


@pytest.mark.parametrize("location", ["../outside.yaml", "link.yaml", "/etc/passwd"])
def test_policy_roots_confine_local_policies(tmp_path, location):
    from airflow_aisec.core.policy import confine, load_policy_location

    roots = tmp_path / "roots"
    roots.mkdir()
    (roots / "ok.yaml").write_text("version: 1\nname: ok\ndrift: {}\n")
    (tmp_path / "outside.yaml").write_text("version: 1\nname: out\ndrift: {}\n")
    (roots / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    assert load_policy_location(str(roots / "ok.yaml"), roots=[str(roots)]).name == "ok"
    target = location if location.startswith("/") else str(roots / location)
    with pytest.raises(PolicyError, match="outside \\[aisec\\] policy_roots"):
        confine(target, [str(roots)])


def test_policy_roots_confine_s3_policies():
    from airflow_aisec.core.policy import confine

    roots = ["s3://platform/policies/"]
    assert confine("s3://platform/policies/strict.yaml", roots) == "s3://platform/policies/strict.yaml"
    for bad in ("s3://platform/policies-evil/x.yaml", "s3://platform/policies/../x.yaml",
                "s3://other/policies/x.yaml", "s3://platform/policies//x.yaml", "/local/x.yaml"):
        with pytest.raises(PolicyError):
            confine(bad, roots)
