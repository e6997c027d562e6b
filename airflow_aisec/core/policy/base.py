"""Building blocks of the policy schema shared by every gate section.

Kept separate from :mod:`airflow_aisec.core.policy` so that each concern module
(``core/pii.py``, ``core/bias.py``, ...) can define its own policy section
without a circular import.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict


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


class StrictModel(BaseModel):
    """Base for every policy model: unknown keys are errors, so a typo cannot switch a check off."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class GateSection(StrictModel):
    """Base of a gate's policy section.

    Attributes:
        enforcement: Default level for this gate's rules; falls back to the policy's default.
    """

    enforcement: Enforcement | None = None
