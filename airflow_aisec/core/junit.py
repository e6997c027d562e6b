"""Audit-trail records as JUnit XML, for CI systems that show test reports (Jenkins, GitLab, Azure, ...).

One ``<testsuite>`` per gate (or per DAG), one ``<testcase>`` per record, in trail order:

* a gate result with verdict ``fail`` -> ``<failure>`` (type: the first blocking rule, message: the
  result's value-free summary); ``error`` -> ``<error>`` (the exception type and its value-free
  message); ``pass`` / ``warn`` -> a passing case; a pass that relied on a waiver -> ``<skipped>``
  (the violation was accepted, not absent), naming the waived rules and their expiry;
* a waiver approval record: ``approved`` passes, ``requested`` is ``<skipped>`` (pending), any other
  decision is a ``<failure>``;
* any other record kind is ``<skipped>`` (nothing to judge).

Each case's ``<system-out>`` names the record (sequence number, sha256), the policy (name, sha256),
the verdict and the findings (rule ids and their value-free messages); each suite's ``<properties>``
hold the trail location, its head digest and the policies seen. Records are read only after the
chain verified, and each record's digest is recomputed as it is read.

The output validates against the JUnit schema Jenkins' xUnit plugin uses (``junit-10.xsd``): no
``<properties>`` inside a ``<testcase>``, times with at most three decimals. Nothing here imports
Airflow.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.evidence import record_name
from airflow_aisec.core.io.json_input import loads_json
from airflow_aisec.exceptions import EvidenceChainError

if TYPE_CHECKING:
    from airflow_aisec.core.evidence import EvidenceStore

GROUP_BY = ("gate", "dag")
#: Characters XML 1.0 cannot carry at all (a record is JSON: any of them could be in a string).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_MAX_FINDINGS_LISTED = 50


@dataclass(frozen=True)
class TrailRecord:
    """One chain-verified record with the sha256 of its bytes (what ``HEAD`` and XCom anchors name)."""

    seq: int
    name: str
    sha256: str
    record: dict[str, Any]


def read_verified_records(store: EvidenceStore) -> tuple[list[TrailRecord], str | None]:
    """Every record of a trail after verifying its chain; also the head digest.

    Raises:
        EvidenceChainError: the chain is broken (also when a record changes between verify and read).
        InputDataError: the location does not exist or holds no record.
    """
    report = store.verify(require_records=True)
    out: list[TrailRecord] = []
    prev = None
    for seq in range(1, report.records + 1):
        name = record_name(seq)
        data = store.read_record(name)
        if data is None:
            raise EvidenceChainError("record disappeared while exporting", record=name)
        digest = hashlib.sha256(data).hexdigest()
        record = loads_json(data)
        if prev is not None and record.get("prev_sha256") != prev:
            raise EvidenceChainError("record changed while exporting", record=name)
        prev = digest
        out.append(TrailRecord(seq=seq, name=name, sha256=digest, record=record))
    if out and report.head_sha256 and out[-1].sha256 != report.head_sha256:
        raise EvidenceChainError("record changed while exporting", record=out[-1].name)
    return out, report.head_sha256


def _text(value: Any) -> str:
    return _XML_INVALID.sub("\ufffd", str(value))


def _seconds(start: Any, end: Any) -> float:
    try:
        a = _dt.datetime.fromisoformat(str(start))
        b = _dt.datetime.fromisoformat(str(end))
    except (TypeError, ValueError):
        return 0.0
    return max((b - a).total_seconds(), 0.0)


def _fmt_time(seconds: float) -> str:
    return f"{seconds:.3f}"


def _is_result(payload: Mapping[str, Any]) -> bool:
    return isinstance(payload.get("gate"), str) and payload.get("verdict") in ("pass", "warn", "fail", "error")


def _airflow(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    air = payload.get("airflow")
    return air if isinstance(air, Mapping) else {}


def _case_name(rec: TrailRecord, payload: Mapping[str, Any]) -> str:
    air = _airflow(payload)
    if air.get("dag_id"):
        where = f"{air.get('dag_id')}/{air.get('task_id')}"
        if air.get("map_index") not in (None, -1):
            where += f"[{air.get('map_index')}]"
        if air.get("run_id"):
            where += f" ({air.get('run_id')}"
            where += f", try {air.get('try_number')})" if air.get("try_number") is not None else ")"
        return f"#{rec.seq} {where}"
    inputs = [i.get("uri") for i in payload.get("inputs") or () if isinstance(i, Mapping) and i.get("uri")]
    target = f" {inputs[0]}" + (f" (+{len(inputs) - 1})" if len(inputs) > 1 else "") if inputs else ""
    return f"#{rec.seq} {payload.get('gate') or rec.record.get('kind')}{target}"


def _findings_lines(payload: Mapping[str, Any]) -> list[str]:
    lines = []
    findings = [f for f in payload.get("findings") or () if isinstance(f, Mapping)]
    for f in findings[:_MAX_FINDINGS_LISTED]:
        flag = " (waived)" if f.get("waived") else ""
        lines.append(f"  {f.get('enforcement') or '-'} {f.get('severity') or '-'} [{f.get('rule')}] "
                     f"{f.get('message')}{flag}")
    more = len(findings) - len(findings[:_MAX_FINDINGS_LISTED]) + sum(
        int(o.get("findings") or 0) for o in _omitted(payload))
    if more:
        lines.append(f"  ... and {more} more")
    return lines


def _omitted(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """What a bounded result (schema 1.2) counts but does not list, per rule."""
    return [o for o in payload.get("findings_omitted") or () if isinstance(o, Mapping)]


def _is_blocking(finding: Any) -> bool:
    return isinstance(finding, Mapping) and finding.get("enforcement") == "enforce" and not finding.get("waived")


def _blocking(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [f for f in payload.get("findings") or () if _is_blocking(f)]


def _summary(payload: Mapping[str, Any]) -> str:
    blocking = _blocking(payload)
    unlisted = [o for o in _omitted(payload) if _is_blocking(o)]  # counted per rule by a bounded result
    count = len(blocking) + sum(int(o.get("findings") or 0) for o in unlisted)
    head = f"{payload.get('gate')}: {payload.get('verdict')}: {count} blocking finding(s)"
    rules = sorted({str(f.get("rule")) for f in [*blocking, *unlisted]})
    return head + (f" [{', '.join(rules[:10])}{', ...' if len(rules) > 10 else ''}]" if rules else "")


def _case(rec: TrailRecord) -> tuple[ET.Element, str]:
    """The ``<testcase>`` of one record and its outcome (pass, failure, error, skipped)."""
    record = rec.record
    payload = record.get("payload") if isinstance(record.get("payload"), Mapping) else {}
    kind = str(record.get("kind") or "-")
    case = ET.Element("testcase")
    out_lines = [f"record: {rec.name} seq={rec.seq} sha256={rec.sha256} kind={kind}",
                 f"recorded_at: {record.get('recorded_at')}"]
    policy = payload.get("policy") if isinstance(payload.get("policy"), Mapping) else None
    if policy:
        out_lines.append(f"policy: {policy.get('name')} sha256={policy.get('sha256')}")
    baseline = payload.get("baseline") if isinstance(payload.get("baseline"), Mapping) else None
    if baseline:
        out_lines.append(f"baseline: {baseline.get('name')} sha256={baseline.get('sha256')}")

    outcome = "pass"
    if _is_result(payload):
        gate, verdict = str(payload["gate"]), str(payload["verdict"])
        case.set("classname", f"aisec.{gate}")
        case.set("name", _case_name(rec, payload))
        case.set("time", _fmt_time(_seconds(payload.get("started_at"), payload.get("finished_at"))))
        out_lines.append(f"verdict: {verdict}")
        out_lines += _findings_lines(payload)
        if verdict == "fail":
            blocking = _blocking(payload)
            ET.SubElement(case, "failure", type=_text(blocking[0].get("rule") if blocking else "fail"),
                          message=_text(_summary(payload))).text = _text("\n".join(_findings_lines(payload)))
            outcome = "failure"
        elif verdict == "error":
            err = payload.get("error") if isinstance(payload.get("error"), Mapping) else {}
            ET.SubElement(case, "error", type=_text(err.get("type") or "error"),
                          message=_text(err.get("message") or "gate error"))
            outcome = "error"
        else:
            waived = [w for w in payload.get("waivers_applied") or () if isinstance(w, Mapping)]
            if waived:
                text = ", ".join(f"{w.get('rule')} (until {w.get('expires')})" for w in waived)
                ET.SubElement(case, "skipped", message=_text(f"passed under waiver(s): {text}"))
                outcome = "skipped"
    elif payload.get("type") == "aisec_waiver":
        decision = str(payload.get("decision") or "-")
        case.set("classname", f"aisec.approval.{payload.get('gate') or '-'}")
        case.set("name", f"#{rec.seq} {decision}: {payload.get('gate_task_id') or '-'} "
                         f"{', '.join(str(r) for r in payload.get('rules') or ())}".rstrip())
        air = _airflow(payload)
        out_lines.append(f"approval: {decision} of {air.get('dag_id')}/{payload.get('gate_task_id')} "
                         f"(run {air.get('run_id')}); gate verdict {payload.get('gate_verdict')}")
        gate_ev = payload.get("gate_evidence") if isinstance(payload.get("gate_evidence"), Mapping) else {}
        if gate_ev:
            out_lines.append(f"gate record: {gate_ev.get('name')} sha256={gate_ev.get('sha256')}")
        if decision == "requested":
            ET.SubElement(case, "skipped", message="approval requested, no decision in this record")
            outcome = "skipped"
        elif decision != "approved":
            ET.SubElement(case, "failure", type=_text(f"approval.{decision}"),
                          message=_text(f"waiver {decision}; the violation stands"))
            outcome = "failure"
    else:
        case.set("classname", f"aisec.{kind}")
        case.set("name", f"#{rec.seq} {kind}")
        ET.SubElement(case, "skipped", message=_text(f"record kind '{kind}' is not a gate result"))
        outcome = "skipped"
    ET.SubElement(case, "system-out").text = _text("\n".join(out_lines) + "\n")
    return case, outcome


def _group(rec: TrailRecord, group_by: str) -> str:
    payload = rec.record.get("payload") if isinstance(rec.record.get("payload"), Mapping) else {}
    if group_by == "dag":
        return str(_airflow(payload).get("dag_id") or "(no DAG: aisec CLI)")
    if _is_result(payload):
        return str(payload["gate"])
    if payload.get("type") == "aisec_waiver":
        return "approval"
    return str(rec.record.get("kind") or "other")


def junit_xml(records: Iterable[TrailRecord], *, location: str, head_sha256: str | None,
              group_by: str = "gate") -> bytes:
    """A ``<testsuites>`` document (UTF-8 bytes with an XML declaration) for the trail's records.

    Args:
        records: Chain-verified records (:func:`read_verified_records`), in trail order.
        location: The trail's location (a suite property).
        head_sha256: The digest of the trail's last record (a suite property).
        group_by: ``gate`` (one suite per gate, plus ``approval`` and other kinds) or ``dag``.
    """
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {GROUP_BY}")
    suites: dict[str, list[TrailRecord]] = {}
    for rec in records:
        suites.setdefault(_group(rec, group_by), []).append(rec)

    root = ET.Element("testsuites", name="airflow-aisec audit trail")
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for name in sorted(suites):
        recs = suites[name]
        suite = ET.SubElement(root, "testsuite", name=_text(name))
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="evidence.location", value=_text(location))
        ET.SubElement(props, "property", name="evidence.head_sha256", value=_text(head_sha256 or ""))
        ET.SubElement(props, "property", name="evidence.records", value=f"{recs[0].seq}..{recs[-1].seq}")
        policies = {}
        for rec in recs:
            payload = rec.record.get("payload") if isinstance(rec.record.get("payload"), Mapping) else {}
            pol = payload.get("policy") if isinstance(payload.get("policy"), Mapping) else None
            if pol and pol.get("sha256"):
                policies[str(pol["sha256"])] = str(pol.get("name"))
        for sha, pname in sorted(policies.items(), key=lambda kv: (kv[1], kv[0])):
            ET.SubElement(props, "property", name=_text(f"policy.{pname}.sha256"), value=_text(sha))
        counts = {"failure": 0, "error": 0, "skipped": 0}
        time = 0.0
        for rec in recs:
            case, outcome = _case(rec)
            suite.append(case)
            time += float(case.get("time") or 0.0)
            if outcome in counts:
                counts[outcome] += 1
        first = recs[0].record.get("recorded_at")
        suite.set("tests", str(len(recs)))
        suite.set("failures", str(counts["failure"]))
        suite.set("errors", str(counts["error"]))
        suite.set("skipped", str(counts["skipped"]))
        suite.set("time", _fmt_time(time))
        if isinstance(first, str) and first:
            suite.set("timestamp", _text(first))
        totals["tests"] += len(recs)
        totals["failures"] += counts["failure"]
        totals["errors"] += counts["error"]
        totals["time"] += time
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", str(totals["errors"]))
    root.set("time", _fmt_time(float(totals["time"])))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
