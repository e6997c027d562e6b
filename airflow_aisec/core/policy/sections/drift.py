"""The `drift` policy section (schema only). TEMPORARY: re-exported from the engine until it moves here."""

from airflow_aisec.core.drift import DriftPolicy

__all__ = ["DriftPolicy"]
