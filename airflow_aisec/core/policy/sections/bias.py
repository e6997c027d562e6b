"""The `bias` policy section (schema only). TEMPORARY: re-exported from the engine until it moves here."""

from airflow_aisec.core.bias import BiasPolicy

__all__ = ["BiasPolicy"]
