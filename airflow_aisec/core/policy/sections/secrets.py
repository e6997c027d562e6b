"""The `secrets` policy section (schema only). TEMPORARY: re-exported from the engine until it moves here."""

from airflow_aisec.core.secrets import SecretsPolicy

__all__ = ["SecretsPolicy"]
