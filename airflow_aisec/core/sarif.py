"""Gate results as a SARIF 2.1.0 log (OASIS Static Analysis Results Interchange Format).

One ``run`` per gate result, so a log loads into code-scanning dashboards (GitHub code scanning,
Azure DevOps, VS Code's SARIF viewer, DefectDojo):

* ``tool.driver``: ``airflow-aisec``, its version, one ``rules`` entry per rule id that occurs (short
  description, help text, default level from the resolved enforcement, security severity);
* ``results``: one per finding, level ``error`` (enforce) / ``warning`` (warn) / ``note`` (audit);
  a waived finding carries an accepted external ``suppression``. The message is the finding's own,
  value-free message; ``locations`` name the file / directory / ``s3://`` URI the gate checked
  (``physicalLocation``) and the column, field, key, feature, group or task where the finding has
  one (``logicalLocations``). ``partialFingerprints`` hold digests of the finding;
* ``invocations``: ``executionSuccessful`` false when the gate ended in ``error`` (its value-free
  error as a notification) and one notification per scanner that failed on some file;
* ``properties``: verdict, policy and baseline sha256, evidence record digest.

Input is a result document (``GateResult.to_dict()`` or an audit-trail payload), so the CLI and
``aisec audit export`` share it. Nothing here imports Airflow.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_aisec import __version__
from airflow_aisec.core.rules import GATE_DESCRIPTIONS, describe, lookup

SARIF_VERSION = "2.1.0"
#: The OASIS Standard's schema (2.1.0 errata 01), what ``$schema`` names.
SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
TOOL_NAME = "airflow-aisec"
#: partialFingerprints keys: the whole finding (changes with counts) and its identity (rule + where).
FINGERPRINT_FINDING = "aisecFindingDigest/v1"
FINGERPRINT_LOCATION = "aisecLocationDigest/v1"

_LEVEL_OF_ENFORCEMENT = {"enforce": "error", "warn": "warning", "audit": "note"}
#: GitHub code scanning's ``security-severity`` (0-10) per finding severity.
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}

#: What each gate checks, and the short description of every rule: the rule catalogue (core/rules.py).
_GATES = GATE_DESCRIPTIONS
#: Location keys naming a logical place inside the checked artefact, with the SARIF kind used for them.
_LOGICAL_KEYS = (
    ("column", "member"), ("field", "member"), ("feature", "member"), ("key", "object"),
    ("group", "object"), ("metric", "object"), ("entity", "object"), ("probe", "object"),
    ("dag_id", "module"), ("task_id", "function"), ("bucket", "resource"), ("prefix", "resource"),
)
#: Location keys that say where a finding is (its identity across runs), not how much.
_IDENTITY_KEYS = frozenset(
    {"uri", "file", "path", "column", "field", "feature", "key", "group", "metric", "entity", "probe", "dag_id",
     "task_id", "bucket", "prefix", "method", "extension", "detected", "reason", "vault", "role"}
)
_MAX_DOCUMENT_LOCATIONS = 10
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _digest(obj: Any) -> str:
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def finding_digest(finding: Mapping[str, Any]) -> str:
    """sha256 of a finding's canonical JSON without its policy resolution (enforcement, waived)."""
    return _digest({k: v for k, v in finding.items() if k not in ("enforcement", "waived")})


def artifact_uri(location: str) -> str:
    """A SARIF ``uri-reference`` for a location: URLs as they are (``s3://``, ``https://``), an absolute
    local path as a ``file://`` URI, a relative path as a percent-encoded relative reference."""
    if _SCHEME_RE.match(location):
        return location
    if location.startswith("/"):
        return "file://" + quote(location, safe="/")
    return quote(location.replace("\\", "/"), safe="/")


def _join(base: str, rel: str) -> str:
    if _SCHEME_RE.match(rel) or rel.startswith("/"):
        return rel
    return posixpath.join(base.rstrip("/"), rel) if base else rel


def _physical(uri: str) -> dict[str, Any]:
    return {"physicalLocation": {"artifactLocation": {"uri": artifact_uri(uri)}}}


def _logical(location: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, kind in _LOGICAL_KEYS:
        value = location.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            out.append({"name": str(value), "kind": kind, "properties": {"aisecLocationKey": key}})
    return out


def _locations(finding: Mapping[str, Any], checked: list[str]) -> list[dict[str, Any]]:
    """Where a finding is: the artefact(s) it is in, plus its logical place in them.

    ``checked`` are the artefacts the gate checked (its inputs, the first being the main one). A finding
    that names none of its own is located in all of them (drift: reference and current; signing: model
    and signature), never nowhere.
    """
    loc = finding.get("location") or {}
    base = checked[0] if checked else None
    uris: list[str] = []
    if isinstance(loc.get("uri"), str) and loc["uri"]:
        uris.append(loc["uri"])
    elif isinstance(loc.get("file"), str) and loc["file"]:
        uris.append(_join(base or "", loc["file"]))
    elif isinstance(loc.get("model"), str) and loc["model"]:
        uris.append(loc["model"])
    # Lists of files in the checked directory (a tampered model's changed / added files), or of objects
    # in the checked bucket: the first few.
    root = loc["model"] if isinstance(loc.get("model"), str) and loc["model"] else (base or "")
    for key in ("files", "documents", "changed", "added"):
        names = loc.get(key)
        if isinstance(names, list):
            uris.extend(_join(root, d) for d in names[:_MAX_DOCUMENT_LOCATIONS] if isinstance(d, str) and d)
    keys, bucket = loc.get("keys"), loc.get("bucket")
    if isinstance(bucket, str) and bucket and isinstance(keys, list):
        uris.extend(f"s3://{bucket}/{k}" for k in keys[:_MAX_DOCUMENT_LOCATIONS] if isinstance(k, str) and k)
    if not uris:
        uris.extend(checked[:_MAX_DOCUMENT_LOCATIONS])
    logical = _logical(loc)
    # A Vault or URL path is a place inside the checked service, not a file.
    if isinstance(loc.get("path"), str) and loc["path"]:
        logical.append({"name": loc["path"], "kind": "resource", "properties": {"aisecLocationKey": "path"}})
    locations = [_physical(u) for u in dict.fromkeys(uris)] or [{}]
    if logical:
        locations[0]["logicalLocations"] = logical
    return [x for x in locations if x]


def _rule(rule_id: str, gate: str, finding: Mapping[str, Any]) -> dict[str, Any]:
    gate_of_rule = rule_id.split(".", 1)[0]
    gate_text = _GATES.get(gate_of_rule) or _GATES.get(gate) or f"the {gate} gate"
    short = describe(rule_id) or f"{rule_id.split('.', 1)[-1].replace('_', ' ').capitalize()} ({gate_of_rule} gate)"
    help_text = (
        f"Rule {rule_id} of the airflow-aisec '{gate_of_rule}' gate: {gate_text}. A finding names counts, "
        "columns, files, positions and digests, never values. The policy sets its level (rules: "
        f"{{{rule_id}: enforce | warn | audit}}) and may waive it in scope until a date (waivers)."
    )
    entry = lookup(rule_id)
    if entry is not None and entry.family:
        help_text += f" One rule of the family {entry.family} (docs: reference/rules)."
    severity = str(finding.get("severity") or "high")
    return {
        "id": rule_id,
        "name": "".join(p.capitalize() for p in re.split(r"[._]", rule_id) if p),
        "shortDescription": {"text": short},
        "fullDescription": {"text": f"{short}. Checked by the {gate_of_rule} gate: {gate_text}."},
        "help": {"text": help_text},
        "defaultConfiguration": {"level": _LEVEL_OF_ENFORCEMENT.get(str(finding.get("enforcement")), "error")},
        "properties": {"tags": ["security", gate_of_rule], "security-severity": _SECURITY_SEVERITY.get(severity, "8.0"),
                       "precision": "high"},
    }


def _result(finding: Mapping[str, Any], rule_index: int, checked: list[str],
            waivers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    loc = finding.get("location") or {}
    identity = {"rule": finding.get("rule"), "checked": checked[:1],
                **{k: v for k, v in loc.items() if k in _IDENTITY_KEYS}}
    out: dict[str, Any] = {
        "ruleId": str(finding["rule"]),
        "ruleIndex": rule_index,
        "kind": "fail",
        "level": _LEVEL_OF_ENFORCEMENT.get(str(finding.get("enforcement")), "error"),
        "message": {"text": str(finding.get("message") or finding["rule"])},
        "partialFingerprints": {FINGERPRINT_FINDING: finding_digest(finding),
                                FINGERPRINT_LOCATION: _digest(identity)},
        "properties": {k: finding.get(k) for k in ("severity", "count", "enforcement", "waived")
                       if finding.get(k) is not None},
    }
    locations = _locations(finding, checked)
    if locations:
        out["locations"] = locations
    if finding.get("waived"):
        waiver = waivers.get(str(finding["rule"])) or {}
        suppression: dict[str, Any] = {"kind": "external", "status": "accepted"}
        if waiver:
            suppression["justification"] = f"waiver until {waiver.get('expires')}: {waiver.get('reason')}"
        out["suppressions"] = [suppression]
    return out


def _utc(ts: Any) -> str | None:
    if not isinstance(ts, str) or not ts:
        return None
    return ts[:-6] + "Z" if ts.endswith("+00:00") else ts


def _notifications(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    error = result.get("error")
    if result.get("verdict") == "error" and isinstance(error, Mapping):
        out.append({"level": "error", "message": {"text": str(error.get("message") or "gate error")},
                    "descriptor": {"id": str(error.get("type") or "error")},
                    "properties": {"retryable": bool(error.get("retryable"))}})
    metrics = result.get("metrics") or {}
    scanner_errors = metrics.get("scanner_errors") if isinstance(metrics, Mapping) else None
    if isinstance(scanner_errors, Mapping):
        for scanner, count in sorted(scanner_errors.items()):
            if isinstance(count, int) and count > 0:
                out.append({"level": "warning", "descriptor": {"id": "scanner_error"},
                            "message": {"text": f"scanner {scanner} did not scan {count} file(s)"},
                            "properties": {"scanner": str(scanner), "files": count}})
    for f in result.get("findings") or ():
        if str(f.get("rule", "")).endswith(".scanner_error"):
            loc = f.get("location") or {}
            scanners = ", ".join(str(s) for s in loc.get("scanners") or ()) or "a scanner"
            where = f" on '{loc['file']}'" if isinstance(loc.get("file"), str) else ""
            out.append({"level": "warning", "descriptor": {"id": "scanner_error"},
                        "message": {"text": f"{scanners} failed{where}"}})
    return out


def sarif_run(result: Mapping[str, Any], *, evidence: Mapping[str, Any] | None = None,
              exit_code: int | None = None, target: str | None = None) -> dict[str, Any]:
    """One SARIF ``run`` for one gate result document.

    Args:
        result: A result document (``GateResult.to_dict()`` or an audit-trail payload).
        evidence: The audit-trail record the result was appended to (``location``, ``seq``, ``sha256``).
        exit_code: The CLI's exit code, when there is one.
        target: What the gate was asked to check, used as the artifact when the result names none
            (e.g. a gate that ended in ``error`` before it read its input).
    """
    gate = str(result.get("gate") or "unknown")
    inputs = [i for i in result.get("inputs") or () if isinstance(i, Mapping) and i.get("uri")]
    checked = [str(i["uri"]) for i in inputs] or ([target] if target else [])
    findings = [f for f in result.get("findings") or () if isinstance(f, Mapping) and f.get("rule")]
    waivers = {str(w.get("rule")): w for w in result.get("waivers_applied") or () if isinstance(w, Mapping)}

    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results = []
    for f in findings:
        rid = str(f["rule"])
        if rid not in index:
            index[rid] = len(rules)
            rules.append(_rule(rid, gate, f))
        results.append(_result(f, index[rid], checked, waivers))

    verdict = str(result.get("verdict") or "error")
    invocation: dict[str, Any] = {"executionSuccessful": verdict != "error"}
    if exit_code is not None:
        invocation["exitCode"] = int(exit_code)
    for key, value in (("startTimeUtc", _utc(result.get("started_at"))), ("endTimeUtc", _utc(result.get("finished_at")))):
        if value:
            invocation[key] = value
    notes = _notifications(result)
    if notes:
        invocation["toolExecutionNotifications"] = notes

    properties: dict[str, Any] = {"gate": gate, "verdict": verdict,
                                  "resultSchemaVersion": result.get("schema_version")}
    for key in ("policy", "baseline"):
        ref = result.get(key)
        if isinstance(ref, Mapping):
            properties[key] = {"name": ref.get("name"), "sha256": ref.get("sha256")}
    if evidence:
        properties["evidence"] = {k: evidence.get(k) for k in ("location", "seq", "name", "sha256") if k in evidence}
    omitted = result.get("findings_omitted")
    if isinstance(omitted, list) and omitted:  # a bounded result: findings counted, not listed (core/result_bounds.py)
        properties["findingsOmitted"] = [dict(o) for o in omitted if isinstance(o, Mapping)]
    airflow = result.get("airflow")
    automation = f"{TOOL_NAME}/{gate}/"
    if isinstance(airflow, Mapping):
        properties["airflow"] = dict(airflow)
        automation = f"{TOOL_NAME}/{gate}/{airflow.get('dag_id')}/{airflow.get('task_id')}/"

    run: dict[str, Any] = {
        "tool": {"driver": {"name": TOOL_NAME, "version": __version__, "semanticVersion": __version__,
                            "rules": rules}},
        "automationDetails": {"id": automation},
        "invocations": [invocation],
        "results": results,
        "properties": properties,
    }
    artifacts = []
    for i in inputs:
        art: dict[str, Any] = {"location": {"uri": artifact_uri(str(i["uri"]))}, "roles": ["analysisTarget"]}
        if i.get("sha256"):
            art["hashes"] = {"sha-256": str(i["sha256"])}
        artifacts.append(art)
    if not artifacts and target:
        artifacts.append({"location": {"uri": artifact_uri(target)}, "roles": ["analysisTarget"]})
    if artifacts:
        run["artifacts"] = artifacts
    return run


def sarif_log(runs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A SARIF log holding ``runs`` (each from :func:`sarif_run`)."""
    return {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": list(runs)}


def to_sarif(result: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    """A SARIF log with one run for one result document (see :func:`sarif_run` for ``kwargs``)."""
    return sarif_log([sarif_run(result, **kwargs)])


def target_of(location: str | None) -> str | None:
    """A CLI argument as an artifact location (None for an empty one); URLs keep only scheme, host, path."""
    if not location:
        return None
    if _SCHEME_RE.match(location):
        parts = urlsplit(location)  # never a query string or user info: they may hold a token
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
    return location
