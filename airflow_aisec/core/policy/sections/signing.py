"""The `signing` policy section (schema only). TEMPORARY: re-exported from the engine until it moves here."""

from airflow_aisec.core.signing import SigningPolicy

__all__ = ["SigningPolicy"]
