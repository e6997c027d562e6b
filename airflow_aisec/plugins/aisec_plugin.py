"""Airflow UI plugin for gate results (filled in by the UI issue)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class AisecPlugin(AirflowPlugin):
    name = "aisec"
