"""The `model_scan` policy section (schema only). TEMPORARY: re-exported from the engine until it moves here."""

from airflow_aisec.core.model_scan import ModelScanPolicy

__all__ = ["ModelScanPolicy"]
