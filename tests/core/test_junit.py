"""Audit-trail records as JUnit XML (core/junit.py): well-formed, valid against junit-10.xsd, one case per
record with the right outcome, record and policy digests carried, and only after the chain verified."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest

from airflow_aisec.core.evidence import open_evidence_store, record_name
from airflow_aisec.core.junit import junit_xml, read_verified_records
from airflow_aisec.exceptions import EvidenceChainError, InputDataError
from tests.helpers.sarif import junit_errors

POLICY = {"name": "strict", "sha256": "f" * 64, "source": "policies/strict.yaml"}


def result(gate: str, verdict: str, *, dag: str | None = None, findings=(), waivers=(), error=None) -> dict:
    return {
        "schema_version": "1.1", "gate": gate, "verdict": verdict, "policy": POLICY, "baseline": None,
        "findings": list(findings), "metrics": {}, "inputs": [{"uri": "data/x.csv", "sha256": "1" * 64}],
        "reports": [], "waivers_applied": list(waivers),
        "started_at": "2026-03-01T10:00:00+00:00", "finished_at": "2026-03-01T10:00:02.250000+00:00",
        "airflow": {"dag_id": dag, "run_id": "manual__1", "task_id": f"{gate}_gate", "try_number": 1} if dag else None,
        "error": error,
    }


def finding(rule: str, enforcement: str = "enforce", waived: bool = False, message: str = "column 'c' carries X") -> dict:
    return {"rule": rule, "severity": "high", "message": message, "count": 3, "location": {"column": "c"},
            "enforcement": enforcement, "waived": waived}


@pytest.fixture
def trail(tmp_path):
    store = open_evidence_store(tmp_path / "ev")
    store.append(result("pii", "fail", dag="train", findings=[finding("pii.entity_not_allowed")]))
    store.append(result("pii", "pass", dag="train"))
    store.append(result("drift", "warn", dag="monitor", findings=[finding("drift.psi", "warn")]))
    store.append(result("drift", "error", error={"type": "InputDataError", "message": "x.csv: data file not found",
                                                 "retryable": False}))
    store.append(result("bias", "pass", dag="train", findings=[finding("bias.demographic_parity_ratio", waived=True)],
                        waivers=[{"rule": "bias.demographic_parity_ratio", "reason": "SEC-9", "approved_by": "a@b",
                                  "expires": "2999-01-01"}]))
    for decision in ("requested", "approved", "rejected"):
        store.append({"type": "aisec_waiver", "decision": decision, "gate": "bias", "gate_task_id": "bias_gate",
                      "gate_verdict": "fail", "gate_evidence": {"name": record_name(5), "sha256": "2" * 64},
                      "rules": ["bias.demographic_parity_ratio"], "policy": POLICY,
                      "airflow": {"dag_id": "train", "run_id": "manual__1", "task_id": "approve"}},
                     kind="approval" if decision != "requested" else "approval_request")
    # a control character in a message (JSON allows it, XML 1.0 cannot carry it)
    store.append(result("prompt_injection", "fail", dag="train",
                        findings=[finding("prompt_injection.override", message="bad \x00\x1b byte")]), kind="gate_result")
    store.append({"note": "something else"}, kind="custom_event")
    return store


def test_export_is_valid_junit_with_one_case_per_record(trail):
    records, head = read_verified_records(trail)
    assert len(records) == 10 and head == records[-1].sha256
    # each digest is the sha256 of the record's bytes, as HEAD and XCom anchors name it
    assert records[0].sha256 == hashlib.sha256(trail.read_record(record_name(1))).hexdigest()
    data = junit_xml(records, location=trail.location, head_sha256=head)
    assert junit_errors(data) == []
    root = ET.fromstring(data)
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"approval", "bias", "custom_event", "drift", "pii", "prompt_injection"}
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("10", "3", "1")

    pii = suites["pii"]
    assert (pii.get("tests"), pii.get("failures"), pii.get("errors"), pii.get("skipped")) == ("2", "1", "0", "0")
    failed, passed = pii.findall("testcase")
    assert failed.get("name") == "#1 train/pii_gate (manual__1, try 1)" and failed.get("classname") == "aisec.pii"
    assert failed.get("time") == "2.250"
    assert failed.find("failure").get("type") == "pii.entity_not_allowed"
    out = failed.find("system-out").text
    assert f"sha256={records[0].sha256}" in out and f"policy: strict sha256={'f' * 64}" in out
    assert passed.find("failure") is None and passed.find("skipped") is None
    props = {p.get("name"): p.get("value") for p in pii.find("properties")}
    assert props == {"evidence.location": trail.location, "evidence.head_sha256": head, "evidence.records": "1..2",
                     "policy.strict.sha256": "f" * 64}

    warn, error = suites["drift"].findall("testcase")
    assert warn.find("failure") is None and "[drift.psi]" in warn.find("system-out").text
    assert error.find("error").get("type") == "InputDataError" and error.get("name") == "#4 drift data/x.csv"
    (waived,) = suites["bias"].findall("testcase")
    assert "bias.demographic_parity_ratio (until 2999-01-01)" in waived.find("skipped").get("message")
    requested, approved, rejected = suites["approval"].findall("testcase")
    assert requested.find("skipped") is not None and approved.find("failure") is None
    assert rejected.find("failure").get("type") == "approval.rejected"
    assert suites["custom_event"].find("testcase/skipped") is not None
    (pi,) = suites["prompt_injection"].findall("testcase")
    assert "bad \ufffd\ufffd byte" in pi.find("failure").text


def test_group_by_dag(trail):
    records, head = read_verified_records(trail)
    root = ET.fromstring(junit_xml(records, location=trail.location, head_sha256=head, group_by="dag"))
    assert junit_errors(ET.tostring(root)) == []
    counts = {s.get("name"): int(s.get("tests")) for s in root.findall("testsuite")}
    assert counts == {"train": 7, "monitor": 1, "(no DAG: aisec CLI)": 2}


def test_broken_or_missing_trail_is_never_exported(trail, tmp_path):
    path = tmp_path / "ev" / record_name(2)
    path.write_bytes(path.read_bytes().replace(b'"pass"', b'"fail"'))
    with pytest.raises(EvidenceChainError, match=record_name(2)):
        read_verified_records(trail)
    with pytest.raises(InputDataError):
        read_verified_records(open_evidence_store(tmp_path / "nothing"))


def test_a_bounded_result_counts_what_it_does_not_list(tmp_path):
    """A 1.2 result lists 1,000 findings and counts the rest: the failure's summary and text count them too."""
    store = open_evidence_store(tmp_path / "ev")
    doc = result("drift", "fail", dag="monitor", findings=[finding("drift.psi"), finding("drift.ks_statistic", "warn")])
    doc.update(schema_version="1.2", findings_omitted=[
        {"rule": "drift.psi", "severity": "high", "enforcement": "enforce", "waived": False, "findings": 98694},
        {"rule": "drift.unseen_category", "severity": "high", "enforcement": "enforce", "waived": False,
         "findings": 5},
        {"rule": "drift.ks_statistic", "severity": "high", "enforcement": "warn", "waived": False, "findings": 7}])
    store.append(doc)
    records, head = read_verified_records(store)
    root = ET.fromstring(junit_xml(records, location=str(tmp_path / "ev"), head_sha256=head))
    [failure] = root.iter("failure")
    assert failure.get("message") == ("drift: fail: 98700 blocking finding(s) "
                                      "[drift.psi, drift.unseen_category]")
    assert failure.text.splitlines()[-1] == "  ... and 98706 more"
    assert not junit_errors(ET.tostring(root))
