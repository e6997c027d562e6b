"""source gate core (policy section; implementation lands with its issue)."""

from __future__ import annotations

from airflow_aisec.core.policy_model import GateSection


class SourcePolicy(GateSection):
    """Policy section `source`."""
