"""What a gate tells the rest of the platform: OpenLineage facets and Asset-event extras.

* **OpenLineage** (:func:`operator_lineage`): the gate's inputs become input datasets named per the
  OpenLineage naming conventions (local path -> namespace ``file``, ``s3://bucket/key`` -> namespace
  ``s3://bucket``, name ``key``), each carrying a ``DataQualityAssertionsDatasetFacet`` with one
  assertion per rule the gate checked, plus the run facet ``aisecGate`` (verdict, policy sha256,
  evidence record digest; JSON Schema: :data:`RUN_FACET_JSON_SCHEMA`). The ``openlineage`` packages are
  imported only here, at call time: without the provider the gate methods return None and nothing
  else changes.
* **Assets** (:func:`asset_extra`): what a passing gate attaches to its outlet asset events.

Nothing here carries a value from the data: rule ids, column names, counts, digests and URIs stripped
of credentials and query strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow_aisec.core.evidence import EvidenceRef
    from airflow_aisec.core.result import GateResult

#: Run facet key and its schema (ours: OpenLineage custom facets name their own JSON Schema).
RUN_FACET_KEY = "aisecGate"
RUN_FACET_SCHEMA_URL = (
    "https://github.com/airflow-aisec/airflow-aisec/blob/main/docs/reference/AisecGateRunFacet.json"
)
RUN_FACET_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": RUN_FACET_SCHEMA_URL,
    "title": "AisecGateRunFacet",
    "description": "The outcome of one airflow-aisec security gate run (value-free).",
    "type": "object",
    "allOf": [{"$ref": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunFacet"}],
    "properties": {
        "gate": {"type": "string", "description": "Policy section / gate name, e.g. pii."},
        "verdict": {"enum": ["pass", "warn", "fail", "error"]},
        "policySha256": {"type": ["string", "null"], "description": "sha256 of the gate's policy file."},
        "policyName": {"type": ["string", "null"]},
        "baselineSha256": {"type": ["string", "null"], "description": "sha256 of the platform floor."},
        "evidenceSha256": {"type": ["string", "null"],
                           "description": "Digest of the audit-trail record holding the full result."},
        "evidenceLocation": {"type": ["string", "null"]},
        "evidenceSeq": {"type": ["integer", "null"]},
        "findings": {"type": "integer", "description": "Number of findings (any enforcement)."},
        "blockingFindings": {"type": "integer"},
        "resultSchemaVersion": {"type": "string"},
    },
    "required": ["gate", "verdict", "policySha256", "evidenceSha256"],
}

class _GateRules(Mapping[str, tuple[str, ...]]):
    """Gate -> the rule ids it always evaluates, read from the rule catalogue on first use."""

    def _data(self) -> dict[str, tuple[str, ...]]:
        from airflow_aisec.core.rules import GATE_DESCRIPTIONS, always_evaluated

        return {g: always_evaluated(g) for g in GATE_DESCRIPTIONS}

    def __getitem__(self, gate: str) -> tuple[str, ...]:
        return self._data()[gate]

    def __iter__(self):
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


#: Rules a gate always evaluates (a rule not listed still shows up when it has a finding): the rule
#: catalogue's ``always`` entries (core/rules.py).
GATE_RULES: Mapping[str, tuple[str, ...]] = _GateRules()

#: Finding ``location`` keys naming a column (drift calls it a feature).
_COLUMN_KEYS = ("column", "feature")


# --------------------------------------------------------------------------------------------
# Which rules, which datasets (pure Python: no OpenLineage import)
# --------------------------------------------------------------------------------------------
def _gate_rules(gate: str) -> list[str]:
    from airflow_aisec.core.rules import always_evaluated

    return list(always_evaluated(gate))


def rules_checked(result: GateResult) -> list[tuple[str, str | None]]:
    """``(rule, column)`` pairs the gate evaluated: the gate's rules, per column where the result's
    metrics name the columns (PII per scanned column, bias per threshold and sensitive column, drift
    per threshold and feature)."""
    gate, metrics = result.gate, result.metrics or {}
    pairs: list[tuple[str, str | None]] = [(r, None) for r in _gate_rules(gate)]
    if gate == "pii" and result.verdict != "error":
        pairs.extend(("pii.entity_not_allowed", str(c)) for c in metrics.get("columns_scanned") or [])
        if "redaction" in metrics:
            pairs.append(("pii.redaction_residual", None))
    elif gate == "bias":
        sensitive = (metrics.get("columns") or {}).get("sensitive") or []
        for metric in metrics.get("thresholds") or {}:
            pairs.extend((f"bias.{metric}", str(c)) for c in sensitive)
    elif gate == "drift":
        for entry in metrics.get("features") or []:
            feature = entry.get("feature")
            if feature is None:
                continue
            pairs.append(("drift.type_changed", str(feature)))
            pairs.extend((f"drift.{m}", str(feature)) for m in entry.get("thresholds") or {})
            if entry.get("kind") == "categorical":
                pairs.append(("drift.unseen_category", str(feature)))
    return list(dict.fromkeys(pairs))


def _finding_column(location: Mapping[str, Any]) -> str | None:
    for key in _COLUMN_KEYS:
        value = location.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def assertions(result: GateResult, checked: Iterable[tuple[str, str | None]] | None = None) -> list[dict[str, Any]]:
    """One assertion per ``(rule, column)`` checked: ``success`` is False when a finding of that rule
    (on that column, or anywhere for a dataset-level rule) was raised and not waived. Rules with a
    finding are always present, so a failure is never hidden by a missing catalogue entry.

    Returns:
        Plain dicts (``assertion``, ``success``, ``column``, ``severity``, ``actual``): value-free.
    """
    pairs = list(checked if checked is not None else rules_checked(result))
    failed: dict[tuple[str, str | None], dict[str, Any]] = {}
    for finding in result.findings:
        if finding.waived:
            continue
        key = (finding.rule, _finding_column(finding.location or {}))
        entry = failed.setdefault(key, {"count": 0, "enforce": False})
        entry["count"] += finding.count or 1
        entry["enforce"] = entry["enforce"] or finding.enforcement in (None, "enforce")
    failed_rules = {rule for rule, _ in failed}
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str | None]] = set()
    for rule, column in pairs:
        bad = failed.get((rule, column)) if column is not None else None
        if column is None and rule in failed_rules:
            bad = {"count": sum(v["count"] for (r, _), v in failed.items() if r == rule),
                   "enforce": any(v["enforce"] for (r, _), v in failed.items() if r == rule)}
        out.append(_assertion(rule, column, bad))
        seen.add((rule, column))
        if column is None:
            seen.update(k for k in failed if k[0] == rule)
    for key, bad in failed.items():
        if key not in seen:
            out.append(_assertion(key[0], key[1], bad))
    return out


def _assertion(rule: str, column: str | None, bad: Mapping[str, Any] | None) -> dict[str, Any]:
    if bad is None:
        return {"assertion": rule, "success": True, "column": column, "severity": None, "actual": None}
    return {"assertion": rule, "success": False, "column": column,
            "severity": "error" if bad["enforce"] else "warn", "actual": str(bad["count"])}


def dataset_id(uri: str) -> tuple[str, str] | None:
    """OpenLineage ``(namespace, name)`` of a URI: local path -> ``("file", absolute path)``,
    ``s3://bucket/key`` -> ``("s3://bucket", key)``, ``scheme://host/path`` -> ``("scheme://host", path)``.
    Credentials, query strings and fragments are dropped; None for an empty URI."""
    import os

    text = str(uri or "").strip()
    if not text:
        return None
    parts = urlsplit(text)
    if not parts.scheme or len(parts.scheme) == 1:  # a path (a one-letter scheme is a drive letter)
        return "file", os.path.abspath(text)
    if parts.scheme == "file":
        return ("file://" + parts.hostname, parts.path) if parts.hostname else ("file", parts.path)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.scheme in ("s3", "s3a", "gs", "vault"):
        return f"{parts.scheme}://{host}", parts.path.lstrip("/") or "/"
    return f"{parts.scheme}://{host}", parts.path or "/"


def run_facet_fields(result: GateResult, evidence: EvidenceRef | Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``aisecGate`` run facet's fields (see :data:`RUN_FACET_JSON_SCHEMA`)."""
    ev = evidence.to_dict() if evidence is not None and hasattr(evidence, "to_dict") else dict(evidence or {})
    return {
        "gate": result.gate,
        "verdict": str(result.verdict),
        "policySha256": result.policy.sha256 if result.policy else None,
        "policyName": result.policy.name if result.policy else None,
        "baselineSha256": result.baseline.sha256 if result.baseline else None,
        "evidenceSha256": ev.get("sha256"),
        "evidenceLocation": ev.get("location"),
        "evidenceSeq": ev.get("seq"),
        "findings": len(result.findings),
        "blockingFindings": result.blocking_count,
        "resultSchemaVersion": result.schema_version,
    }


def asset_extra(result: GateResult, evidence: EvidenceRef | Mapping[str, Any] | None) -> dict[str, Any]:
    """What a passing gate attaches to its outlet asset events (``extra["aisec"]``, one entry per gate
    so several gates may certify the same asset in one task)."""
    fields = run_facet_fields(result, evidence)
    return {"gate": fields["gate"], "verdict": fields["verdict"], "policy_sha256": fields["policySha256"],
            "baseline_sha256": fields["baselineSha256"], "evidence_sha256": fields["evidenceSha256"],
            "evidence_seq": fields["evidenceSeq"]}


# --------------------------------------------------------------------------------------------
# OpenLineage objects (lazy imports)
# --------------------------------------------------------------------------------------------
def openlineage_available() -> bool:
    """Whether the OpenLineage provider and client can be imported (not whether a transport is set)."""
    try:
        import airflow.providers.openlineage.extractors  # noqa: F401
        import openlineage.client.facet_v2  # noqa: F401
    except ImportError:
        return False
    return True


def _run_facet_class() -> type:
    """``AisecGateRunFacet``, defined on first use (it subclasses the client's ``RunFacet``)."""
    global _RUN_FACET_CLASS
    if _RUN_FACET_CLASS is None:
        import attr
        from openlineage.client.facet_v2 import RunFacet

        @attr.define
        class AisecGateRunFacet(RunFacet):  # camelCase fields: OpenLineage facet convention
            gate: str
            verdict: str
            policySha256: str | None = None
            policyName: str | None = None
            baselineSha256: str | None = None
            evidenceSha256: str | None = None
            evidenceLocation: str | None = None
            evidenceSeq: int | None = None
            findings: int = 0
            blockingFindings: int = 0
            resultSchemaVersion: str = ""

            @staticmethod
            def _get_schema() -> str:
                return RUN_FACET_SCHEMA_URL

        _RUN_FACET_CLASS = AisecGateRunFacet
    return _RUN_FACET_CLASS


_RUN_FACET_CLASS: type | None = None


def operator_lineage(
    result: GateResult | None,
    evidence: EvidenceRef | Mapping[str, Any] | None,
    *,
    checked: Sequence[tuple[str, str | None]] | None = None,
    outputs: Sequence[str] = (),
) -> Any:
    """``OperatorLineage`` of a gate run, or None without a result or without the OpenLineage provider.

    Args:
        result: The gate's result (None when it never got one: nothing to say).
        evidence: Its audit-trail record reference (None when recording failed).
        checked: ``(rule, column)`` pairs evaluated; default :func:`rules_checked`.
        outputs: URIs the gate wrote (e.g. a redacted copy): output datasets, not inputs.
    """
    if result is None:
        return None
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import InputDataset, OutputDataset
        from openlineage.client.facet_v2 import data_quality_assertions_dataset as dqa
    except ImportError:
        return None

    # An errored gate checked nothing to the end: it asserts nothing (the run facet says error).
    found = [] if result.verdict == "error" else [
        dqa.Assertion(assertion=a["assertion"], success=a["success"], column=a["column"],
                      severity=a["severity"], actual=a["actual"])
        for a in assertions(result, checked)]
    written = {dataset_id(u) for u in outputs} - {None}
    inputs, seen = [], set()
    for ref in result.inputs:
        ident = dataset_id(ref.uri)
        if ident is None or ident in written or ident in seen:
            continue
        seen.add(ident)
        facets = {"dataQualityAssertions": dqa.DataQualityAssertionsDatasetFacet(assertions=list(found))}
        inputs.append(InputDataset(namespace=ident[0], name=ident[1], inputFacets=facets if found else {}))
    outs = [OutputDataset(namespace=i[0], name=i[1]) for i in dict.fromkeys(dataset_id(u) for u in outputs) if i]
    facet = _run_facet_class()(**run_facet_fields(result, evidence))
    return OperatorLineage(inputs=inputs, outputs=outs, run_facets={RUN_FACET_KEY: facet})


__all__ = [
    "GATE_RULES",
    "RUN_FACET_JSON_SCHEMA",
    "RUN_FACET_KEY",
    "RUN_FACET_SCHEMA_URL",
    "assertions",
    "asset_extra",
    "dataset_id",
    "openlineage_available",
    "operator_lineage",
    "rules_checked",
    "run_facet_fields",
]
