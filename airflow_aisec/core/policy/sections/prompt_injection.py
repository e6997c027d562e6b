"""The ``prompt_injection`` policy section (schema only): a corpus gate over training / RAG / prompt data.

Example::

    prompt_injection:
      columns: [text]                 # table columns to scan (default: every text column)
      fields: ["messages[].content"]  # JSONL field paths, globs (default: every string field)
      allow_columns: [system_template]       # never scanned (columns and JSONL field paths, globs)
      allow_documents: ["security-kb/*"]     # never scanned (paths relative to DATA, globs)
      allowed_hosts: ["*.example.com"]       # links/images may carry data to these hosts
      default_threshold: {max_count: 0}      # any hit fails
      thresholds:
        chat_template_marker: {max_rate: 0.001, max_count: null, allow_columns: [prompt]}
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from airflow_aisec.core.policy.base import GateSection, Severity, StrictModel

#: Rule names of the gate (rule ids are ``prompt_injection.<name>``), in report order.
RULES: tuple[str, ...] = (
    "instruction_override",
    "role_reassignment",
    "jailbreak_persona",
    "system_prompt_extraction",
    "chat_template_marker",
    "tool_call_shape",
    "hidden_unicode",
    "homoglyph",
    "html_hidden_text",
    "encoded_payload",
    "exfiltration_url",
)
#: Languages of the phrase rules (override, role reassignment, extraction).
LANGUAGES: tuple[str, ...] = ("en", "es", "fr", "de")
#: Document extensions scanned in a directory (and accepted as a single file).
DOCUMENT_EXTENSIONS: tuple[str, ...] = (".txt", ".md", ".markdown", ".html", ".htm", ".jsonl", ".ndjson")

Language = Literal["en", "es", "fr", "de"]


class RuleThreshold(StrictModel):
    """When hits of one rule become a violation, per column / JSONL field / set of documents.

    A rule is violated where its hits exceed ``max_count`` or their share of the scanned cells
    (rows, records or documents) exceeds ``max_rate``; either may be null (not checked), not both.

    Attributes:
        enabled: False switches the rule off (it is not even counted).
        max_count: Most hits tolerated (0: any hit fails).
        max_rate: Largest tolerated share of hits (0..1).
        severity: Severity of the finding (default: the rule's own).
        allow_columns: Column names / JSONL field paths (globs) where this rule is not counted.
        allow_documents: Document paths relative to DATA (globs) where this rule is not counted.
    """

    enabled: bool = True
    max_count: int | None = Field(default=0, ge=0)
    max_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    severity: Severity | None = None
    allow_columns: list[str] = Field(default_factory=list)
    allow_documents: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_limit(self) -> RuleThreshold:
        if self.enabled and self.max_count is None and self.max_rate is None:
            raise ValueError("an enabled rule needs max_count or max_rate (set enabled: false to switch it off)")
        return self


class DecodeSettings(StrictModel):
    """Encoded payloads: blobs decoded and checked for instruction phrasing.

    Attributes:
        base64_min_chars: Shortest base64 run decoded.
        hex_min_bytes: Shortest hex run decoded (in bytes).
        rot13: Also read the text in rot13.
        max_decoded_bytes: Longest prefix of one blob that is decoded.
        max_blobs: Most blobs decoded per cell (the rest are counted as decoded-not-checked).
    """

    base64_min_chars: int = Field(default=20, ge=20, le=1000)
    hex_min_bytes: int = Field(default=10, ge=10, le=1000)
    rot13: bool = True
    max_decoded_bytes: int = Field(default=65536, ge=64, le=16 * 1024 * 1024)
    max_blobs: int = Field(default=64, ge=1, le=100_000)


class PromptInjectionPolicy(GateSection):
    """Policy section of the prompt-injection corpus gate.

    Attributes:
        columns: Table columns to scan; empty means every text column. The operator's
            ``columns=`` / the CLI's ``--column`` take precedence.
        fields: JSONL field paths to scan, as globs over paths such as ``messages[].content``.
        allow_columns: Columns / JSONL field paths (globs) never scanned.
        allow_documents: Documents (paths relative to DATA, globs) never scanned.
        languages: Languages of the phrase rules.
        allowed_hosts: Hosts (globs, lower case) that links and images may carry data to.
        default_threshold: Threshold of every rule not listed in ``thresholds``.
        thresholds: Per-rule thresholds, by rule name (see :data:`RULES`).
        decode: Encoded payload settings.
        extensions: Document extensions read in a directory.
        max_positions: Most row / record / document positions listed in one finding.
        batch_rows: Rows (or JSONL records) per streamed batch: memory follows this.
        segment_chars: Text documents are read in segments of this many characters (overlapping).
        max_html_bytes: Largest HTML document parsed (HTML is parsed whole).
    """

    columns: list[str] = Field(default_factory=list)
    fields: list[str] = Field(default_factory=lambda: ["*"])
    allow_columns: list[str] = Field(default_factory=list)
    allow_documents: list[str] = Field(default_factory=list)
    languages: list[Language] = Field(default_factory=lambda: list(LANGUAGES), min_length=1)
    allowed_hosts: list[str] = Field(default_factory=list)
    default_threshold: RuleThreshold = RuleThreshold()
    thresholds: dict[str, RuleThreshold] = Field(default_factory=dict)
    decode: DecodeSettings = DecodeSettings()
    extensions: list[str] = Field(default_factory=lambda: list(DOCUMENT_EXTENSIONS), min_length=1)
    max_positions: int = Field(default=20, ge=0, le=10_000)
    batch_rows: int = Field(default=65_536, ge=1, le=10_000_000)
    segment_chars: int = Field(default=1_000_000, ge=10_000, le=100_000_000)
    max_html_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)

    @field_validator("thresholds")
    @classmethod
    def _known_rules(cls, value: dict[str, RuleThreshold]) -> dict[str, RuleThreshold]:
        unknown = sorted(set(value) - set(RULES))
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; known: {list(RULES)}")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _lower_hosts(cls, value: list[str]) -> list[str]:
        return [h.strip().lower() for h in value if h.strip()]

    @field_validator("extensions")
    @classmethod
    def _extensions(cls, value: list[str]) -> list[str]:
        out = []
        for ext in value:
            ext = ext.strip().lower()
            if not ext.startswith(".") or len(ext) < 2:
                raise ValueError(f"extension {ext!r} must start with '.'")
            out.append(ext)
        return out

    def threshold(self, rule: str) -> RuleThreshold:
        """The threshold of ``rule`` (a name from :data:`RULES`)."""
        return self.thresholds.get(rule, self.default_threshold)

    def enabled_rules(self) -> tuple[str, ...]:
        return tuple(r for r in RULES if self.threshold(r).enabled)


__all__ = ["DOCUMENT_EXTENSIONS", "LANGUAGES", "RULES", "DecodeSettings", "PromptInjectionPolicy", "RuleThreshold"]
