"""Building blocks of the policy schema shared by every gate section (and ``Bound``, the metric
range that the bias and drift sections share).

Kept separate from :mod:`airflow_aisec.core.policy` so that each gate's section
(``core/policy/sections/<gate>.py``) can import it without a circular import.
"""

from __future__ import annotations

import enum
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, model_validator
from pydantic_core import PydanticCustomError, core_schema


class Enforcement(str, enum.Enum):
    """What a rule violation does.

    ``enforce`` fails the run, ``warn`` lets the task succeed with verdict
    ``warn``, ``audit`` only records the finding.
    """

    ENFORCE = "enforce"
    WARN = "warn"
    AUDIT = "audit"


class Severity(str, enum.Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


def _refuse_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer, not a boolean")
    return value


def _strict_numbers(schema: Any, seen: set[int]) -> None:
    """Make every integer, number and boolean in a core schema strict, in place.

    Strict ``int`` refuses ``true`` and ``"1"`` (lax mode takes both as 1), strict ``float`` refuses
    booleans and numeric strings but still takes integers, strict ``bool`` refuses ``1`` and
    ``"yes"``. Everything else (enums from strings, dates from YAML or ISO strings, nested models
    from mappings) keeps pydantic's normal rules, which ``ConfigDict(strict=True)`` would not.
    """
    if isinstance(schema, list):
        for item in schema:
            _strict_numbers(item, seen)
        return
    if not isinstance(schema, dict) or id(schema) in seen:
        return
    seen.add(id(schema))
    kind = schema.get("type")
    if kind in ("int", "float", "bool"):
        schema["strict"] = True
    elif kind == "literal":
        # Literal[1, 2] matches True == 1: refuse booleans unless the literal lists one.
        expected = schema.get("expected", [])
        if any(type(v) is int for v in expected) and not any(isinstance(v, bool) for v in expected):
            inner = dict(schema)
            schema.clear()
            schema.update(core_schema.no_info_before_validator_function(_refuse_bool, inner))
        return
    for value in schema.values():
        _strict_numbers(value, seen)


class StrictModel(BaseModel):
    """Base for every policy model: unknown keys are errors, so a typo cannot switch a check off;
    integers, numbers and booleans are strict, so ``version: true`` or ``min_group_size: "30"`` is an
    error rather than 1 or 30 (see :func:`_strict_numbers`)."""

    # defer_build: a model's validator is built on first use, not at import; the policy document's covers the
    # nested sections, so `aisec` start-up skips building one for each of them (same schema, same checks).
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, defer_build=True)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: type[BaseModel], handler: GetCoreSchemaHandler) -> Any:
        schema = handler(source)
        _strict_numbers(schema, set())
        return schema


class GateSection(StrictModel):
    """Base of a gate's policy section.

    Attributes:
        enforcement: Default level for this gate's rules; falls back to the policy's default.
    """

    enforcement: Enforcement | None = None


class Bound(StrictModel):
    """An allowed range for a metric (bias and drift thresholds): ``min`` and/or ``max`` (inclusive).

    NaN never satisfies it.
    """

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _check(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("a threshold needs 'min' and/or 'max'")
        for v in (self.min, self.max):
            if v is not None and not math.isfinite(v):
                raise ValueError("threshold bounds must be finite numbers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("threshold 'min' is larger than 'max'")
        return self

    def violated(self, value: float | None) -> bool:
        """True when ``value`` is outside the range, or undefined (None/NaN)."""
        if value is None or not math.isfinite(value):
            return True
        return (self.max is not None and value > self.max) or (self.min is not None and value < self.min)

    def interval_violated(self, low: float | None, high: float | None) -> bool:
        """True when the whole confidence interval lies past the bound (or is undefined)."""
        if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
            return True
        return (self.max is not None and low > self.max) or (self.min is not None and high < self.min)

    def fails(self, value: float | None, ci: tuple[float | None, float | None] | None, *, interval: bool) -> bool:
        """The verdict on a metric: its whole interval past the bound (``interval`` mode, when there is
        one), else its point estimate; an undefined estimate always fails."""
        if interval and ci is not None:
            return value is None or self.interval_violated(*ci)
        return self.violated(value)

    def limits(self) -> dict[str, float]:
        """``{"min": ..., "max": ...}`` with the bounds that are set (for finding locations)."""
        return {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"within [{self.min:g}, {self.max:g}]"
        if self.max is not None:
            return f"<= {self.max:g}"
        return f">= {self.min:g}"
