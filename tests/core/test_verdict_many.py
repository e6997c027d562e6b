"""core/verdict.py evaluates 100,000s of findings (a wide table's drift check) without per-finding JSON or
validation: the result must be exactly the one the straightforward evaluation gives.

The oracle below is that evaluation as it was written first: a JSON key per finding, every rule resolved
per finding, every finding validated again.
"""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from airflow_aisec.core.policy import parse_policy
from airflow_aisec.core.result import AirflowRef, CheckOutcome, Finding, GateResult, WaiverRef
from airflow_aisec.core.verdict import LayerRun, evaluate_layered, resolve, stricter, verdict_of

DAY = dt.date(2030, 1, 1)
AIRFLOW = AirflowRef(dag_id="legacy_etl", run_id="r", task_id="drift_gate")

OWN = parse_policy(b"""
name: own
enforcement: warn
rules:
  drift.ks_*: audit
  drift.unseen_category: enforce
waivers:
  - {rule: drift.psi, scope: {dag_id: "legacy_*"}, reason: T-1, approved_by: a@example.com, expires: 2030-06-30}
  - {rule: drift.type_changed, reason: T-2, approved_by: b@example.com, expires: 2029-01-01}
drift: {enforcement: warn}
""", source="own")
BASELINE = parse_policy(b"""
name: baseline
enforcement: enforce
rules:
  drift.ks_pvalue: warn
waivers:
  - {rule: drift.ks_statistic, reason: T-3, approved_by: c@example.com, expires: 2031-01-01}
drift: {}
""", source="baseline")

RULES = ["drift.psi", "drift.ks_statistic", "drift.ks_pvalue", "drift.unseen_category", "drift.type_changed"]


def _oracle(gate, runs, policy, baseline):
    """The first evaluation: per-finding JSON keys, resolution and validation."""
    def key(finding):
        return json.dumps(finding.model_dump(mode="json", exclude={"waived"}), sort_keys=True, default=str)

    evaluators = [r.loaded for r in runs]
    if policy is not None and all(e is not policy for e in evaluators):
        evaluators.append(policy)
    merged, by_key = [], {}
    for run in runs:
        for finding in run.outcome.findings:
            k = key(finding)
            match = next((i for i in by_key.get(k, []) if all(r is not run.loaded for r in merged[i][1])), None)
            if match is not None:
                merged[match][1].append(run.loaded)
            else:
                by_key.setdefault(k, []).append(len(merged))
                merged.append((finding, [run.loaded]))
    findings, applied = [], {}
    for finding, raisers in merged:
        level = None
        for loaded in evaluators:
            res = resolve(loaded.policy, loaded.policy.drift, finding.rule, dag_id=AIRFLOW.dag_id,
                          task_id=AIRFLOW.task_id, today=DAY, preset=finding.enforcement, waivable=False)
            level = res.enforcement if level is None else stricter(level, res.enforcement)
        waivers = [resolve(loaded.policy, None, finding.rule, dag_id=AIRFLOW.dag_id, task_id=AIRFLOW.task_id,
                           today=DAY).waiver for loaded in raisers]
        waived = all(w is not None for w in waivers)
        if waived:
            for w in waivers:
                applied[(w.rule, w.approved_by, w.expires)] = WaiverRef(
                    rule=w.rule, reason=w.reason, approved_by=w.approved_by, expires=w.expires.isoformat())
        findings.append(finding.model_copy(update={"enforcement": level, "waived": waived}))
    findings = [Finding.model_validate(f.model_dump()) for f in findings]
    return findings, verdict_of(findings), list(applied.values())


def _findings(rng: random.Random, n: int) -> list[Finding]:
    out = []
    for i in range(n):
        rule = rng.choice(RULES)
        location = {"feature": f"c{rng.randrange(n // 3 + 1)}", "value": rng.choice([0.5, 1, 1.0, True, None,
                                                                                      float("nan"), "x"]),
                    "nested": {"b": [1, 2.0], "a": rng.choice(["p", "q"])}}
        severity = rng.choice(["high", "medium", "critical"])
        count = rng.choice([None, 1, 7])
        preset = rng.choice([None, None, None, "enforce", "audit"])
        if rng.random() < 0.5:
            f = Finding.trusted(rule, severity, f"m{i % 5}", location, count)
            if preset:
                f = f.model_copy(update={"enforcement": preset})
        else:
            f = Finding(rule=rule, severity=severity, message=f"m{i % 5}", location=location, count=count,
                        enforcement=preset)
        out.append(f)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_many_findings_evaluate_exactly_as_the_straightforward_evaluation(seed):
    rng = random.Random(seed)
    base = _findings(rng, 300)
    shapes = {
        "own only": [LayerRun(OWN, CheckOutcome(findings=base))],
        "own and baseline, one outcome": [LayerRun(OWN, CheckOutcome(findings=base)),
                                          LayerRun(BASELINE, CheckOutcome(findings=base))],
        "own and baseline, overlapping": [LayerRun(OWN, CheckOutcome(findings=base[:200] + base[:20])),
                                          LayerRun(BASELINE, CheckOutcome(findings=base[100:]))],
    }
    for name, runs in shapes.items():
        policy = runs[0].loaded
        baseline = BASELINE if len(runs) > 1 else None
        result = evaluate_layered("drift", runs, policy=policy, baseline=baseline, started_at="t", airflow=AIRFLOW,
                                  today=DAY)
        findings, verdict, applied = _oracle("drift", runs, policy, baseline)
        assert [f.model_dump() for f in result.findings] == [f.model_dump() for f in findings], name
        assert [f.model_fields_set for f in result.findings] == [f.model_fields_set for f in findings], name
        assert json.dumps(result.to_dict()["findings"]) == json.dumps(
            [f.model_dump(mode="json") for f in findings]), name
        assert (result.verdict, result.waivers_applied) == (verdict, applied), name
        # The result is a valid contract document and owns its locations.
        GateResult.model_validate(result.to_dict())
        assert all(r.location is not o.location for r, o in zip(result.findings, base))


def test_a_result_finding_does_not_share_its_location_with_the_check():
    finding = Finding(rule="drift.psi", message="m", location={"feature": "a"})
    result = evaluate_layered("drift", [LayerRun(OWN, CheckOutcome(findings=[finding]))], policy=OWN, baseline=None,
                              started_at="t", airflow=AIRFLOW, today=DAY)
    result.findings[0].location["feature"] = "changed"
    assert finding.location == {"feature": "a"}
    assert (result.findings[0].enforcement, result.findings[0].waived) == ("warn", True)  # waived drift.psi


@pytest.mark.parametrize("seed", range(3))
def test_a_bounded_result_lists_what_bounding_the_full_evaluation_gives(seed):
    """Over 1,000 findings only the listed ones are built: they, the counts and the verdict equal bounding
    the straightforward evaluation's full list."""
    from airflow_aisec.core.result_bounds import choose_listed

    rng = random.Random(seed)
    base = _findings(rng, 2500)
    runs = [LayerRun(OWN, CheckOutcome(findings=base)), LayerRun(BASELINE, CheckOutcome(findings=base[500:]))]
    result = evaluate_layered("drift", runs, policy=OWN, baseline=BASELINE, started_at="t", airflow=AIRFLOW, today=DAY)
    findings, verdict, applied = _oracle("drift", runs, OWN, BASELINE)
    positions, omitted = choose_listed([(f.rule, f.severity, f.enforcement, f.waived) for f in findings])
    listed = [findings[i] for i in positions]
    assert len(result.findings) == 1000 and omitted
    assert [f.model_dump() for f in result.findings] == [f.model_dump() for f in listed]
    assert [o.model_dump() for o in result.findings_omitted] == omitted
    assert (result.verdict, result.waivers_applied) == (verdict, applied)
