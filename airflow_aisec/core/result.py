"""The gate result contract (JSON, versioned).

Every gate, whether it runs as an Airflow operator or from the ``aisec`` CLI,
produces one :class:`GateResult`. It is what goes to XCom (key
:data:`XCOM_KEY`), to the evidence store and to ``aisec ... --json``.

Findings never carry a secret value or a raw PII value: only rule ids, counts,
column names, entity types, row positions and digests.
"""

from __future__ import annotations

import datetime as _dt
import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from airflow_aisec.constants import RESULT_XCOM_KEY
from airflow_aisec.core.policy.base import Enforcement, Severity

#: Version of the result contract. Bump the major on incompatible changes, the minor on additions
#: (1.1: ``baseline``, the platform's policy floor the gate was also evaluated under; 1.2:
#: ``findings_omitted`` and ``metrics_omitted``, what a bounded result does not list, see
#: :mod:`airflow_aisec.core.result_bounds`).
SCHEMA_VERSION = "1.2"
#: XCom key under which operators push the result.
XCOM_KEY = RESULT_XCOM_KEY


class Verdict(str, enum.Enum):
    """Outcome of a gate, ordered from best to worst."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"


def utcnow() -> str:
    """Current UTC time as an ISO-8601 string."""
    return _dt.datetime.now(_dt.UTC).isoformat()


class _ResultModel(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=True)


class Finding(_ResultModel):
    """One violation of one policy rule.

    Attributes:
        rule: Rule id, ``<gate>.<check>`` (e.g. ``pii.entity_not_allowed``).
        severity: How bad the finding is (independent of enforcement).
        message: Human-readable, value-free description.
        count: How many items (cells, rows, files, groups) are affected.
        location: Where: column, file, group, row positions... never values.
        enforcement: Enforcement level resolved from the policy (set by evaluation).
        waived: True when an in-scope, unexpired waiver covers the rule.
    """

    rule: str
    severity: Severity = Severity.HIGH
    message: str
    count: int | None = None
    location: dict[str, Any] = Field(default_factory=dict)
    enforcement: Enforcement | None = None
    waived: bool = False

    @classmethod
    def trusted(cls, rule: str, severity: Severity | str, message: str, location: dict[str, Any],
                count: int | None = None) -> Finding:
        """The finding ``Finding(rule=..., severity=..., message=..., location=..., count=...)`` would be
        (``count`` only set when given), without validation: for a gate's hot loop (a wide table's drift
        check makes 100,000s) whose values already have the field types (``severity`` a :class:`Severity`
        or its value; it is still checked: a misspelt one must not reach the verdict). ~3x cheaper than
        validating."""
        return cls.trusted_many(severity, [(rule, message, location, count)])[0]

    @classmethod
    def trusted_many(cls, severity: Severity | str,
                     items: list[tuple[str, str, dict[str, Any], int | None]]) -> list[Finding]:
        """:meth:`trusted` for each (rule, message, location, count) of ``items``, all of one severity
        (checked once): half the cost per finding, for a wide table's 100,000s."""
        value = Severity(severity).value
        return [_unvalidated({"rule": rule, "severity": value, "message": message, "count": count,
                              "location": location, "enforcement": None, "waived": False},
                             _SET_WITHOUT_COUNT if count is None else _SET_WITH_COUNT)
                for rule, message, location, count in items]

    @staticmethod
    def resolved_many(findings: list[Finding], resolutions: list[tuple[Enforcement | str, bool]]) -> list[Finding]:
        """Each finding with its (enforcement, waived) resolution, as validating it again would give it (enum
        values, every field set), without validation: evaluation resolves 100,000s for a wide table. The
        locations are copied: a result does not share them with the check's outcome."""
        severities = {s.value: s.value for s in Severity} | {s: s.value for s in Severity}
        levels: dict[Any, str] = {}
        out = []
        for finding, (enforcement, waived) in zip(findings, resolutions, strict=True):
            data = finding.__dict__
            level = levels.get(enforcement)
            if level is None:
                level = levels[enforcement] = Enforcement(enforcement).value
            out.append(_unvalidated({"rule": data["rule"], "severity": severities[data["severity"]],
                                     "message": data["message"], "count": data["count"],
                                     "location": dict(data["location"]), "enforcement": level,
                                     "waived": bool(waived)}, _FINDING_FIELDS))
        return out


def _unvalidated(data: dict[str, Any], fields_set: frozenset[str]) -> Finding:
    """A :class:`Finding` holding ``data`` as is (every field, values already of the field types)."""
    obj = Finding.__new__(Finding)
    _set = object.__setattr__
    _set(obj, "__dict__", data)
    _set(obj, "__pydantic_fields_set__", set(fields_set))  # its own set: pydantic adds to it on assignment
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


_FINDING_FIELDS = frozenset(Finding.model_fields)
_SET_WITHOUT_COUNT = frozenset({"rule", "severity", "message", "location"})
_SET_WITH_COUNT = _SET_WITHOUT_COUNT | {"count"}


class InputRef(_ResultModel):
    """An input the gate looked at, with its digest when known."""

    uri: str
    sha256: str | None = None


class ReportRef(_ResultModel):
    """A report (e.g. HTML) written next to the result."""

    name: str
    uri: str
    media_type: str = "text/html"


class PolicyRef(_ResultModel):
    name: str
    sha256: str
    source: str | None = None


class AirflowRef(_ResultModel):
    dag_id: str
    run_id: str
    task_id: str
    try_number: int | None = None
    map_index: int | None = None


class WaiverRef(_ResultModel):
    rule: str
    reason: str
    approved_by: str
    expires: str


class OmittedFindings(_ResultModel):
    """Findings of one rule (and severity, enforcement, waiver) a bounded result counts but does not list."""

    rule: str
    severity: Severity
    enforcement: Enforcement | None = None
    waived: bool = False
    findings: int


class ErrorInfo(_ResultModel):
    """Why a gate ended in ``error``: the exception type and a value-free message."""

    type: str
    message: str
    retryable: bool = False


class GateResult(_ResultModel):
    """The versioned result document of one gate run.

    ``policy`` is the policy the gate was given; ``baseline`` the platform's policy floor
    (``[aisec] baseline_policy``) it was also evaluated under, None when there is none.
    """

    schema_version: str = SCHEMA_VERSION
    gate: str
    verdict: Verdict
    policy: PolicyRef | None = None
    baseline: PolicyRef | None = None
    findings: list[Finding] = Field(default_factory=list)
    findings_omitted: list[OmittedFindings] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    metrics_omitted: dict[str, int] = Field(default_factory=dict)
    inputs: list[InputRef] = Field(default_factory=list)
    reports: list[ReportRef] = Field(default_factory=list)
    waivers_applied: list[WaiverRef] = Field(default_factory=list)
    started_at: str
    finished_at: str
    airflow: AirflowRef | None = None
    error: ErrorInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (what XCom and the evidence store hold)."""
        return self.model_dump(mode="json")

    @property
    def blocking_findings(self) -> list[Finding]:
        """Findings that fail the gate: enforce-level and not waived."""
        return [f for f in self.findings if f.enforcement == Enforcement.ENFORCE.value and not f.waived]

    @property
    def blocking_count(self) -> int:
        """Blocking findings, the listed and the omitted ones (:mod:`~airflow_aisec.core.result_bounds`)."""
        return len(self.blocking_findings) + self._omitted(Enforcement.ENFORCE)

    def _omitted(self, level: Enforcement) -> int:
        """Findings of an enforcement level, not waived, that the result counts but does not list."""
        return sum(o.findings for o in self.findings_omitted if o.enforcement == level.value and not o.waived)

    @property
    def warning_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.enforcement == Enforcement.WARN.value and not f.waived]

    def summary(self, limit: int = 20) -> str:
        """One combined, value-free message listing every blocking (or warning) finding."""
        if self.verdict == Verdict.ERROR.value and self.error:
            return f"{self.gate}: error: {self.error.type}: {self.error.message}"
        blocking = self.blocking_findings
        chosen = blocking or self.warning_findings
        if not chosen:
            return f"{self.gate}: {self.verdict}"
        unlisted = self._omitted(Enforcement.ENFORCE if blocking else Enforcement.WARN)
        lines = [f"{self.gate}: {self.verdict}: {len(chosen) + unlisted} finding(s)"]
        shown = chosen[:limit]
        for f in shown:
            lines.append(f"  [{f.rule}] {f.message}")
        if len(chosen) + unlisted > len(shown):
            lines.append(f"  ... and {len(chosen) + unlisted - len(shown)} more")
        return "\n".join(lines)


class CheckOutcome(BaseModel):
    """What a core check returns before policy evaluation turns it into a :class:`GateResult`.

    Attributes:
        findings: Rule violations found (enforcement not yet resolved).
        metrics: Aggregate, value-free numbers worth showing.
        inputs: What was checked, with digests.
        reports: Reports written by the check.
    """

    model_config = ConfigDict(extra="forbid")

    findings: list[Finding] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    inputs: list[InputRef] = Field(default_factory=list)
    reports: list[ReportRef] = Field(default_factory=list)


def result_json_schema() -> dict[str, Any]:
    """JSON Schema of the result contract."""
    return GateResult.model_json_schema()
