"""The `pii` policy section (schema only). TEMPORARY: re-exported from the engine until it moves here."""

from airflow_aisec.core.pii import PiiPolicy

__all__ = ["PiiPolicy"]
