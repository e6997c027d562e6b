"""Judging a scan against the policy: a finding per column carrying an entity its level does not allow.

Findings name the column, entity, count, share and a few row positions, never a value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef

if TYPE_CHECKING:
    from airflow_aisec.core.gates.pii._scan import ScanReport
    from airflow_aisec.core.policy.sections.pii import Classification, PiiPolicy

RULE_NOT_ALLOWED = "pii.entity_not_allowed"
RULE_NAME = "pii.entity_in_column_name"

#: How bad it is to find an entity where it is not allowed.
ENTITY_SEVERITY: dict[str, Severity] = {
    "US_SSN": Severity.CRITICAL,
    "CREDIT_CARD": Severity.CRITICAL,
    "US_PASSPORT": Severity.CRITICAL,
    "US_BANK_NUMBER": Severity.CRITICAL,
    "IBAN_CODE": Severity.CRITICAL,
    "EMAIL_ADDRESS": Severity.HIGH,
    "PHONE_NUMBER": Severity.HIGH,
    "PERSON": Severity.HIGH,
    "LOCATION": Severity.MEDIUM,
    "IP_ADDRESS": Severity.MEDIUM,
    "URL": Severity.LOW,
}


def _share(count: int, rows: int) -> float:
    return round(count / rows, 6) if rows else 0.0


#: Entities found in prose (names, addresses): a column carries them only from ``pii.text.min_share`` on.
TEXT_ENTITIES = frozenset({"PERSON", "LOCATION"})


def is_classified(section: PiiPolicy, entity: str, count: int, rows: int) -> bool:
    """Whether a column with ``count`` of ``rows`` cells holding ``entity`` is classified as carrying it."""
    share = _share(count, rows)
    if count < section.min_count or share < section.min_share:
        return False
    return entity not in TEXT_ENTITIES or share >= section.text.min_share


def classify(section: PiiPolicy, report: ScanReport, classification: Classification, *,
             rule: str = RULE_NOT_ALLOWED, subject: str = "") -> CheckOutcome:
    """Turn a scan into findings: one per column carrying an entity its classification does not allow."""
    from airflow_aisec.core.gates.pii._scan import NOTHING_FOUND

    level = section.level_rule(classification)
    findings: list[Finding] = []
    columns: dict[str, Any] = {}
    pii_columns: dict[str, list[str]] = {}
    coincidences: dict[str, Any] = {}
    for label, entities in sorted(report.names_with_pii.items()):
        for entity in entities:
            if not level.allows(entity):
                findings.append(Finding(
                    rule=RULE_NAME,
                    severity=ENTITY_SEVERITY.get(entity, Severity.HIGH),
                    message=(f"{subject}the name of column {label} holds {entity} (a CSV without a header "
                             f"row?); not allowed in a '{classification.value}' dataset"),
                    count=1,
                    location={"uri": report.uri, "column": label, "entity": entity,
                              "classification": classification.value},
                ))
    labels = report.labels
    # Every column first, in scan order (most columns of a wide table find nothing), then the others filled in.
    columns = {labels.get(c, c): {"entities": {}} for c in report.columns} if labels else \
        {c: {"entities": {}} for c in report.columns}
    found = [(n, c) for n, c in report.columns.items() if c is not NOTHING_FOUND and (c.entities or c.coincidental)]
    for real_name, col in found:
        name = labels.get(real_name, real_name)
        entry: dict[str, Any] = {}
        for entity, st in sorted(col.carried().items()):
            share = _share(st.count, report.rows_scanned)
            is_pii = is_classified(section, entity, st.count, report.rows_scanned)
            allowed = level.allows(entity)
            entry[entity] = {"count": st.count, "share": share, "rows": list(st.rows), "pii": is_pii,
                             "allowed": allowed}
            if is_pii:
                pii_columns.setdefault(name, []).append(entity)
            if is_pii and not allowed:
                findings.append(Finding(
                    rule=rule,
                    severity=ENTITY_SEVERITY.get(entity, Severity.HIGH),
                    message=(f"{subject}column '{name}' carries {entity} in {st.count} of {report.rows_scanned} "
                             f"scanned rows ({share:.2%}); not allowed in a '{classification.value}' dataset"),
                    count=st.count,
                    location={"uri": report.uri, "column": name, "entity": entity, "share": share,
                              "rows": list(st.rows), "classification": classification.value},
                ))
        columns[name] = {"entities": entry}
        if col.coincidental:
            coincidences[name] = {e: {"candidates": col.checksum_candidates.get(e, 0),
                                      "valid": col.checksum_valid.get(e, 0)} for e in sorted(col.coincidental)}
    duration = round(report.duration_s, 3)
    metrics: dict[str, Any] = {
        "classification": classification.value,
        "scan": report.scan_metrics(),
        "cells_scanned": report.cells_scanned,
        "columns_scanned": [labels.get(c, c) for c in report.columns] if labels else list(report.columns),
        "columns_skipped": {report.label(c): why for c, why in report.skipped.items()},
        "entities_checked": list(report.entities),
        "thresholds": {"min_share": section.min_share, "min_count": section.min_count,
                       "text_min_share": section.text.min_share},
        "columns": columns,
        "pii_columns": pii_columns,
        "coincidental_checksums": coincidences,
        "nlp": report.nlp,
        "duration_s": duration,
        "cells_per_s": int(report.cells_scanned / report.duration_s) if report.duration_s > 0 else None,
    }
    return CheckOutcome(findings=findings, metrics=metrics, inputs=[InputRef(uri=report.uri, sha256=report.sha256)])
