"""Rows for ``aisec audit coverage`` from Airflow's metadata database (the thin Airflow side).

Reads, for the DAG runs of a time window: the DAGs' tags, every task instance (id, map index,
state, try), every XCom ``aisec_result``, and each task's operator class from the serialized DAG.
:mod:`airflow_aisec.core.coverage` decides what is a gap. Used by the CLI (with Airflow's own
``create_session``: the configured ``[database] sql_alchemy_conn``) and by the UI plugin's
"Unverified deployments" (with the request's session, limited to the DAGs the user may read).

Operator classes: the serialized DAG names each task's class (module and name). Base classes are
resolved by importing the module only for installed code (``airflow_aisec.*`` and
``airflow.*``); a class defined in a DAG file is never imported here (that would run the DAG
author's code in this process), so it is known by its own name only.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib
import logging
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from airflow_aisec.constants import RESULT_XCOM_KEY
from airflow_aisec.core.coverage import ResultRow, RunRows, TaskRow
from airflow_aisec.core.io.json_input import loads_json

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: Modules whose classes may be imported to learn their base classes (installed code, not DAG files).
IMPORTABLE_PREFIXES = ("airflow_aisec.", "airflow.")


def _state(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _json(value: Any) -> Any:

    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            return loads_json(value)
        except ValueError:
            return value
    return value


@functools.lru_cache(maxsize=4096)
def operator_classes(module: str | None, name: str | None) -> tuple[str, ...]:
    """Qualified names of a task's operator class and its bases (bases only for installed modules)."""
    if not module or not name:
        return ()
    qualified = f"{module}.{name}"
    if not module.startswith(IMPORTABLE_PREFIXES):
        return (qualified,)
    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - not importable here: known by its name
        return (qualified,)
    if not isinstance(cls, type):
        return (qualified,)
    return tuple(f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__ if c is not object)


def _task_classes(session: Session, dag_id: str) -> dict[str, tuple[str, ...]]:
    from airflow.models.serialized_dag import SerializedDagModel

    try:
        sdm = SerializedDagModel.get(dag_id, session=session)
        data = sdm.data if sdm is not None else None
    except Exception:
        log.debug("could not read the serialized DAG of %s", dag_id, exc_info=True)
        return {}
    tasks = ((data or {}).get("dag") or {}).get("tasks") or []
    out: dict[str, tuple[str, ...]] = {}
    for item in tasks:
        var = item.get("__var", item) if isinstance(item, dict) else {}
        task_id = var.get("task_id") if isinstance(var, dict) else None
        if isinstance(task_id, str):
            out[task_id] = operator_classes(var.get("_task_module"), var.get("task_type"))
    return out


def load_runs(
    session: Session,
    *,
    since: _dt.timedelta,
    dag_ids: Collection[str] | None = None,
    dag_filter: Callable[[str], bool] | None = None,
    now: _dt.datetime | None = None,
) -> list[RunRows]:
    """Every DAG run that started (or was due) within ``since``, with its tasks and gate results.

    Args:
        session: SQLAlchemy session on the metadata database.
        since: The window, back from ``now``.
        dag_ids: Only these DAGs (e.g. the ones a UI user may read); None: all.
        dag_filter: Further selection by DAG id (e.g. ``--dag-id`` globs).
    """
    from airflow.models.dag import DagTag
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel
    from sqlalchemy import and_, func, select

    cutoff = (now or _dt.datetime.now(_dt.UTC)) - since
    in_window = [func.coalesce(DagRun.start_date, DagRun.run_after) >= cutoff]
    if dag_ids is not None:
        in_window.append(DagRun.dag_id.in_(sorted(dag_ids)))

    runs: dict[tuple[str, str], RunRows] = {}
    for dag_id, run_id in session.execute(select(DagRun.dag_id, DagRun.run_id).where(*in_window)):
        if dag_filter is None or dag_filter(dag_id):
            runs[(dag_id, run_id)] = RunRows(dag_id=dag_id, run_id=run_id)
    if not runs:
        return []
    wanted = sorted({d for d, _ in runs})

    tags: dict[str, list[str]] = {}
    for dag_id, name in session.execute(select(DagTag.dag_id, DagTag.name).where(DagTag.dag_id.in_(wanted))):
        tags.setdefault(dag_id, []).append(str(name))

    tries: dict[tuple[str, str, str, int], int | None] = {}
    ti_rows = session.execute(
        select(TI.dag_id, TI.run_id, TI.task_id, TI.map_index, TI.state, TI.try_number)
        .join(DagRun, and_(DagRun.dag_id == TI.dag_id, DagRun.run_id == TI.run_id))
        .where(*in_window)
    )
    for row in ti_rows:
        run = runs.get((row.dag_id, row.run_id))
        if run is None:
            continue
        run.tasks.append(TaskRow(task_id=row.task_id, state=_state(row.state), map_index=row.map_index,
                                 try_number=row.try_number))
        tries[(row.dag_id, row.run_id, row.task_id, row.map_index)] = row.try_number

    xcom_rows = session.execute(
        select(XComModel.dag_id, XComModel.run_id, XComModel.task_id, XComModel.map_index, XComModel.value)
        .join(DagRun, and_(DagRun.dag_id == XComModel.dag_id, DagRun.run_id == XComModel.run_id))
        .where(XComModel.key == RESULT_XCOM_KEY, *in_window)
    )
    for row in xcom_rows:
        run = runs.get((row.dag_id, row.run_id))
        if run is None:
            continue
        run.results.append(ResultRow(
            task_id=row.task_id, doc=_json(row.value), map_index=row.map_index,
            try_number=tries.get((row.dag_id, row.run_id, row.task_id, row.map_index)),
        ))

    classes = {dag_id: _task_classes(session, dag_id) for dag_id in wanted}
    for run in runs.values():
        run.tags = tuple(sorted(tags.get(run.dag_id, ())))
        run.task_classes = classes.get(run.dag_id, {})
    return sorted(runs.values(), key=lambda r: (r.dag_id, r.run_id))
