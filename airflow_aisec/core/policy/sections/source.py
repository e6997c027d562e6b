"""The `source` policy section (schema only). TEMPORARY: re-exported from the engine until it moves here."""

from airflow_aisec.core.source import SourcePolicy

__all__ = ["SourcePolicy"]
