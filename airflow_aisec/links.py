"""Where gate results show up in the Airflow UI: the plugin's routes, their URLs, and the extra link.

Shared by the operators (the extra link on every gate task) and the UI plugin (which registers
the views and the link), so neither imports the other. The "Security gates" tab is the plugin's
``external_views`` entry with destination ``dag_run``; Airflow 3.3's UI serves such a view at
``dags/<dag_id>/runs/<run_id>/plugin/<url_route>`` (relative to ``[api] base_url``) and opens the
view's ``href`` in an iframe there. The worker computes the link when the task finishes (also
when it failed) and stores it in XCom; the UI renders a same-origin link as a normal in-app link.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey  # noqa: F401

#: ``url_route`` of the plugin's dag_run tab (unique across plugins; no leading slash).
RUN_TAB_ROUTE = "aisec-gates"
#: ``url_route`` of the plugin's overview page in the navigation.
OVERVIEW_ROUTE = "aisec-overview"


def _base_url() -> str:
    from airflow.sdk import conf

    return conf.get("api", "base_url", fallback="") or ""


def ui_base(base_url: str | None = None) -> str:
    """Prefix of UI links: ``[api] base_url`` with a trailing slash, or ``/`` when unset.

    An absolute base URL stays absolute; a bare path (or nothing) gives a path, so
    links work behind a reverse proxy that serves Airflow under a sub-path.
    """
    base = _base_url() if base_url is None else base_url
    if not base:
        return "/"
    parts = urlsplit(base)
    if parts.scheme and parts.netloc:
        return base.rstrip("/") + "/"
    return "/" + parts.path.strip("/") + ("/" if parts.path.strip("/") else "")


def run_tab_url(dag_id: str, run_id: str, *, task_id: str | None = None, base_url: str | None = None) -> str:
    """URL of a run's "Security gates" tab in the Airflow UI.

    ``:`` and ``+`` stay literal like in the UI's own run links; everything else
    that is not path-safe (``/``, ``#``, ``?``, spaces) is percent-encoded.
    """
    url = (
        f"{ui_base(base_url)}dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe=':+')}"
        f"/plugin/{RUN_TAB_ROUTE}"
    )
    if task_id:
        url += f"#task-{quote(task_id, safe='')}"
    return url


class AisecGateResultLink(BaseOperatorLink):
    """Link from a gate task instance to its result in the run's "Security gates" tab.

    Public path: :mod:`airflow_aisec.operators.links` (provider info ``extra-links``). Airflow
    serializes extra links by name and XCom key, not by class path.
    """

    name = "Security gate result"

    def get_link(self, operator: BaseOperator, *, ti_key) -> str:
        return run_tab_url(ti_key.dag_id, ti_key.run_id, task_id=ti_key.task_id)
