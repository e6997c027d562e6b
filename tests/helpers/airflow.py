"""Airflow-side helpers: a migrated metadata DB, running DAG files with real ``dag.test()``, and calling an
operator's ``execute`` directly with a mock TaskInstance.

(Absolute imports: ``import airflow`` here is the real Airflow, not this module.)
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.helpers.env import VENV_BIN


def migrate_airflow_db() -> Path:
    """``airflow db migrate`` for the current ``AIRFLOW_HOME`` (a SQLite metadata DB); returns the home."""
    subprocess.run(
        [str(VENV_BIN / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
        timeout=300,
    )
    return Path(os.environ["AIRFLOW_HOME"])


@dataclass
class DagRunOutcome:
    state: str
    run_id: str
    task_states: dict[str, str]
    xcoms: dict[tuple[str, str], Any] = field(default_factory=dict)

    def xcom(self, task_id: str, key: str = "aisec_result") -> Any:
        return self.xcoms.get((task_id, key))


def run_dag_file(
    source: str,
    dag_id: str,
    *,
    dags_folder: Path,
    filename: str | None = None,
    run_conf: dict | None = None,
) -> DagRunOutcome:
    """Write ``source`` into ``dags_folder``, run ``dag_id`` with real Airflow ``dag.test()``, return states
    and XComs. Needs a migrated DB (the ``run_dag`` fixture provides one)."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    path = dags_folder / (filename or f"{dag_id}.py")
    path.write_text(textwrap.dedent(source))
    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(dag_id)
    assert dag is not None, f"{dag_id} not found in {path}"
    dr = dag.test(run_conf=run_conf)
    states = {ti.task_id: str(ti.state.value if hasattr(ti.state, "value") else ti.state)
              for ti in dr.get_task_instances()}
    xcoms = {}
    with create_session() as s:
        for row in s.query(XComModel).filter_by(dag_id=dag_id, run_id=dr.run_id).all():
            value = row.value
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            xcoms[(row.task_id, row.key)] = value
    state = dr.state.value if hasattr(dr.state, "value") else str(dr.state)
    return DagRunOutcome(state=state, run_id=dr.run_id, task_states=states, xcoms=xcoms)


def task_context(
    *, dag_id: str = "d", run_id: str = "r", task_id: str = "t", xcom: Any = None
) -> dict[str, Any]:
    """Context for calling ``execute`` directly: a mock TaskInstance whose XCom pulls give ``xcom``."""
    ti = mock.MagicMock()
    ti.dag_id, ti.run_id, ti.task_id, ti.try_number, ti.map_index = dag_id, run_id, task_id, 1, -1
    ti.xcom_pull.return_value = xcom
    return {"ti": ti}


def assert_retryable_error(execute: Callable[[], Any], context: dict[str, Any]) -> dict[str, Any]:
    """``execute()`` fails retryably (never as a pass), after pushing an ``error`` result marked retryable.

    Returns:
        That result (the first XCom push, key ``aisec_result``).
    """
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    with pytest.raises(AirflowException) as info:
        execute()
    assert not isinstance(info.value, AirflowFailException)
    first = context["ti"].xcom_push.call_args_list[0].kwargs
    assert first["key"] == "aisec_result"
    pushed = first["value"]
    assert pushed["verdict"] == "error" and pushed["error"]["retryable"] is True
    return pushed
