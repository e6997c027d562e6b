"""Operator extra link from a gate task to its result in the UI (completed by the UI issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.execution_time.xcom import XComKey  # noqa: F401


class AisecGateResultLink(BaseOperatorLink):
    """Link to the gate result of this task instance."""

    name = "Security gate result"

    def get_link(self, operator: BaseOperator, *, ti_key) -> str:
        return (
            f"/aisec/runs/{quote(ti_key.dag_id, safe='')}/{quote(ti_key.run_id, safe='')}"
            f"#task-{quote(ti_key.task_id, safe='')}"
        )
