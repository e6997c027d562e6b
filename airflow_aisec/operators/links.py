"""Operator extra link from a gate task to its result in the run's "Security gates" tab.

Public import path of :class:`AisecGateResultLink` (named in the provider info). The link, the
plugin's routes and the URL helpers live in :mod:`airflow_aisec.links`, which the UI plugin
shares without importing the operators.
"""

from __future__ import annotations

from airflow_aisec.links import OVERVIEW_ROUTE, RUN_TAB_ROUTE, AisecGateResultLink, run_tab_url, ui_base

__all__ = ["OVERVIEW_ROUTE", "RUN_TAB_ROUTE", "AisecGateResultLink", "run_tab_url", "ui_base"]
