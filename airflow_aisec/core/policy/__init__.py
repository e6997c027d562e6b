"""Policy as code: the document model (:mod:`.document`), each gate's section (:mod:`.sections`) and
the file loader (:mod:`.loader`). Import from here; the submodules are the implementation.

Names resolve on first use, so a gate module can import :mod:`.base` (or a section) without pulling
in the whole document and every other gate's section.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Enforcement": "base",
    "GateSection": "base",
    "Severity": "base",
    "StrictModel": "base",
    "SUPPORTED_VERSIONS": "document",
    "LoadedPolicy": "document",
    "Policy": "document",
    "Waiver": "document",
    "WaiverScope": "document",
    "MAX_POLICY_BYTES": "loader",
    "MAX_POLICY_VALUES": "loader",
    "load_policy": "loader",
    "parse_policy": "loader",
    "policy_json_schema": "loader",
    "confine": "location",
    "load_pinned": "location",
    "load_policy_location": "location",
}

__all__ = [
    "MAX_POLICY_BYTES",
    "MAX_POLICY_VALUES",
    "SUPPORTED_VERSIONS",
    "Enforcement",
    "GateSection",
    "LoadedPolicy",
    "Policy",
    "Severity",
    "StrictModel",
    "Waiver",
    "WaiverScope",
    "confine",
    "load_pinned",
    "load_policy",
    "load_policy_location",
    "parse_policy",
    "policy_json_schema",
]  # the keys of _EXPORTS (a test checks they agree)

if TYPE_CHECKING:
    from airflow_aisec.core.policy.base import Enforcement, GateSection, Severity, StrictModel
    from airflow_aisec.core.policy.document import (
        SUPPORTED_VERSIONS,
        LoadedPolicy,
        Policy,
        Waiver,
        WaiverScope,
    )
    from airflow_aisec.core.policy.loader import (
        MAX_POLICY_BYTES,
        MAX_POLICY_VALUES,
        load_policy,
        parse_policy,
        policy_json_schema,
    )
    from airflow_aisec.core.policy.location import confine, load_pinned, load_policy_location


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
