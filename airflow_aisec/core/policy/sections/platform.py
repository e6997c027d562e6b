"""The `platform` policy section (schema only). TEMPORARY: re-exported from the engine until it moves here."""

from airflow_aisec.core.platform import PlatformPolicy

__all__ = ["PlatformPolicy"]
