"""Airflow UI plugin for gate results.

Registers (Airflow 3.3 plugin interface):

* a FastAPI app under ``/aisec`` (:mod:`airflow_aisec.plugins.app`) serving pages and JSON,
  every route behind ``requires_access_dag``;
* ``external_views`` opened inside the Airflow UI: a "Security gates" tab on every DAG run
  (destination ``dag_run``) and a "Security gates" page in the navigation (``nav``);
* the ``AisecGateResultLink`` operator extra link (also listed in the provider info).

View ``href`` values are relative (no leading slash): the UI resolves them against its
``<base href>``, which follows ``[api] base_url``, so the views also work when Airflow is
served under a sub-path.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from airflow_aisec.links import OVERVIEW_ROUTE, RUN_TAB_ROUTE, AisecGateResultLink

URL_PREFIX = "/aisec"


def _app():
    # Imported here so that loading the plugin for its extra link (workers, CLI) stays light.
    from airflow_aisec.plugins.app import app

    return app


class AisecPlugin(AirflowPlugin):
    """Gate results in the Airflow UI."""

    name = "aisec"
    operator_extra_links: ClassVar[list[Any]] = [AisecGateResultLink()]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Security gates",
            "href": "aisec/runs/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": RUN_TAB_ROUTE,
        },
        {
            "name": "Security gates",
            "href": "aisec/overview",
            "destination": "nav",
            "url_route": OVERVIEW_ROUTE,
        },
    ]

    @classmethod
    def on_load(cls, *args, **kwargs) -> None:
        # fastapi_apps is read after on_load; building the app only here keeps workers from
        # importing FastAPI/Jinja just to resolve the extra link.
        cls.fastapi_apps = [{"app": _app(), "url_prefix": URL_PREFIX, "name": "airflow-aisec gate results"}]
