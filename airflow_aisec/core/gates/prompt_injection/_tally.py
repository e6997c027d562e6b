"""Counting hits per rule and column / field / documents, and turning them into findings.

A finding names the rule, where (column, JSONL field path, or the documents), how many cells
(rows / records / documents) hit out of how many were scanned, and the first positions: never
any text.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_aisec.core.gates.prompt_injection._detect import CellHits
from airflow_aisec.core.gates.prompt_injection._sources import Group
from airflow_aisec.core.policy.base import Severity
from airflow_aisec.core.policy.sections.prompt_injection import RULES, PromptInjectionPolicy
from airflow_aisec.core.result import Finding

GATE = "prompt_injection"

#: (default severity, what the rule finds) per rule.
RULE_INFO: dict[str, tuple[Severity, str]] = {
    "instruction_override": (Severity.HIGH, "instruction-override phrasing"),
    "role_reassignment": (Severity.HIGH, "role-reassignment phrasing"),
    "jailbreak_persona": (Severity.HIGH, "jailbreak persona / developer-mode phrasing"),
    "system_prompt_extraction": (Severity.HIGH, "system-prompt extraction requests"),
    "chat_template_marker": (Severity.HIGH, "chat-template role markers"),
    "tool_call_shape": (Severity.MEDIUM, "tool/function-call shapes"),
    "hidden_unicode": (Severity.HIGH, "hidden Unicode characters (tag, zero-width, bidi override)"),
    "homoglyph": (Severity.HIGH, "look-alike letters disguising trigger words"),
    "html_hidden_text": (Severity.HIGH, "instructions in HTML text hidden from readers"),
    "encoded_payload": (Severity.HIGH, "base64 / hex / rot13 blobs that decode to instructions"),
    "exfiltration_url": (Severity.CRITICAL, "links or images sending data to hosts outside the allow-list"),
}
assert set(RULE_INFO) == set(RULES)

_UNIT = {"column": "rows", "field": "records", "documents": "documents"}


@dataclass
class _Hits:
    count: int = 0
    positions: list[Any] = field(default_factory=list)
    last: Any = None
    encodings: Counter = field(default_factory=Counter)


class Tally:
    """Hits per (rule, group) and scanned units per group."""

    def __init__(self, section: PromptInjectionPolicy) -> None:
        self.section = section
        self.units: Counter[Group] = Counter()
        self.hits: dict[tuple[str, Group], _Hits] = {}
        self.allowed: Counter[str] = Counter()
        self.cells_with_hits = 0

    def add_units(self, groups: Sequence[Group], counts: Sequence[int]) -> None:
        units = self.units
        get = units.get
        for group, n in zip(groups, counts, strict=True):
            units[group] = get(group, 0) + n  # Counter's += on a new key goes through __missing__: 4x slower

    def _allowed(self, rule: str, group: Group, document: str | None) -> bool:
        threshold = self.section.threshold(rule)
        if group[0] in ("column", "field") and any(fnmatch.fnmatchcase(group[1], g) for g in threshold.allow_columns):
            return True
        return document is not None and any(fnmatch.fnmatchcase(document, g) for g in threshold.allow_documents)

    def add(self, group: Group, position: Any, document: str | None, hits: CellHits) -> None:
        counted = False
        for rule in hits.rules:
            if self._allowed(rule, group, document):
                self.allowed[rule] += 1
                continue
            counted = True
            entry = self.hits.setdefault((rule, group), _Hits())
            if rule == "encoded_payload":
                entry.encodings.update(hits.encodings)
            if entry.last == position and entry.count:
                continue  # another segment / list item of the same document or record
            entry.last = position
            entry.count += 1
            if len(entry.positions) < self.section.max_positions:
                entry.positions.append(position)
        self.cells_with_hits += counted

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        order = {r: i for i, r in enumerate(RULES)}
        for (rule, group), entry in sorted(self.hits.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
            threshold = self.section.threshold(rule)
            units = max(self.units[group], entry.count)
            rate = entry.count / units if units else 0.0
            over_count = threshold.max_count is not None and entry.count > threshold.max_count
            over_rate = threshold.max_rate is not None and rate > threshold.max_rate
            if not (over_count or over_rate):
                continue
            severity, what = RULE_INFO[rule]
            kind, name = group
            unit = _UNIT[kind]
            where = {"column": f" of column '{name}'", "field": f" in field '{name}'", "documents": ""}[kind]
            limits = ", ".join(p for p in (
                f"max_count {threshold.max_count}" if threshold.max_count is not None else "",
                f"max_rate {threshold.max_rate}" if threshold.max_rate is not None else "") if p)
            location: dict[str, Any] = {"column": name} if kind == "column" else (
                {"field": name} if kind == "field" else {"scope": "documents"})
            location.update(positions=entry.positions, scanned=units, rate=round(rate, 6))
            if entry.encodings:
                location["encodings"] = dict(sorted(entry.encodings.items()))
            out.append(Finding(
                rule=f"{GATE}.{rule}",
                severity=threshold.severity or severity,
                message=f"{entry.count} of {units} {unit}{where} carry {what} ({limits})",
                count=entry.count,
                location=location,
            ))
        return out

    def rule_counts(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (rule, _group), entry in self.hits.items():
            totals[rule] += entry.count
        return {r: totals[r] for r in RULES if totals[r]}
