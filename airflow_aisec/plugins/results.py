"""Read gate results back from Airflow's metadata DB for the UI plugin.

The results are the XComs every gate pushes (key ``aisec_result``, the
:class:`~airflow_aisec.core.result.GateResult` document, and ``aisec_evidence``,
the audit-trail reference), so the UI needs nothing but Airflow itself.

Everything read here is untrusted display data: any task, and any user who may write
XCom on the DAG, can push an XCom with these keys. So documents are validated against
the result contract and shown as "unreadable" (never as a pass) when they do not
match, and each readable result is checked against the central audit trail
(:meth:`GateView.check_against`): a result no chain-verified record of that DAG, run,
task and try matches (same payload digest) is shown as **unverified**, counted apart,
never as pass. Callers are responsible for authorisation; the functions here take the
set of DAG ids the user may read.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import and_, select

from airflow_aisec.constants import EVIDENCE_XCOM_KEY
from airflow_aisec.core.io.json_input import loads_json
from airflow_aisec.core.result import XCOM_KEY, GateResult, Verdict
from airflow_aisec.links import AisecGateResultLink

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from airflow_aisec.core.trail_index import TrailEntry, TrailIndex
    from airflow_aisec.plugins.posture import CoverageMatrix
    from airflow_aisec.plugins.timeline import VerdictTimeline

log = logging.getLogger(__name__)

#: Shown instead of the claimed verdict when the audit trail does not confirm a result.
UNVERIFIED = "unverified"
#: Display order: what blocks a run first, then what needs attention, then the rest.
VERDICT_ORDER = {"fail": 0, "error": 1, UNVERIFIED: 2, "warn": 3, "pending": 4, "pass": 5}
VERDICTS = tuple(v.value for v in Verdict)
#: What the overview counts and filters by: the verdicts, plus results the trail does not confirm.
OVERVIEW_VERDICTS = (*VERDICTS, UNVERIFIED)
#: XCom key of the extra link: present in a serialized task's links only for gate operators.
LINK_XCOM_KEY = AisecGateResultLink().xcom_key
MAX_OVERVIEW_LIMIT = 500


def parse_xcom_value(raw: Any) -> Any:
    """An XCom value as stored: a JSON document, or (older paths) a JSON string of one."""
    if isinstance(raw, (bytes, bytearray)):
        raw = raw.decode("utf-8", errors="replace")
    if isinstance(raw, str):
        try:
            return loads_json(raw)
        except ValueError:
            return raw
    return raw


@dataclass
class GateView:
    """One gate task instance as the UI shows it."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    ti_state: str | None = None
    try_number: int | None = None
    operator: str | None = None
    result: GateResult | None = None
    evidence: dict[str, Any] | None = None
    problem: str | None = None
    timestamp: str | None = None
    #: The document as stored (what the audit-trail digest is computed over).
    raw: Any = None
    #: True when the central audit trail confirms the result; None before it was checked.
    verified: bool | None = None
    #: Why the trail does not confirm it (value-free).
    trust: str | None = None
    #: The confirming record.
    entry: TrailEntry | None = None

    @property
    def verdict(self) -> str:
        if self.result is not None:
            # Only what the trail confirms shows its verdict; everything else is "unverified".
            return str(self.result.verdict) if self.verified else UNVERIFIED
        # An unreadable document never reads as a pass: fail closed in the display too.
        return "error" if self.problem else "pending"

    def check_against(self, index: TrailIndex | None, unavailable: str | None = None) -> None:
        """Confirm the result against the central trail (``index``; None: the trail could not be read)."""
        if self.result is None:
            return
        if index is None:
            self.verified, self.trust = False, unavailable or "the audit trail could not be read"
            return
        confirmation = index.confirm(self.raw, dag_id=self.dag_id, run_id=self.run_id, task_id=self.task_id,
                                     map_index=self.map_index, try_number=self.try_number)
        self.verified, self.entry = confirmation.verified, confirmation.entry
        self.trust = None if confirmation.verified else confirmation.reason

    @property
    def sort_key(self) -> tuple:
        return (VERDICT_ORDER.get(self.verdict, 9), self.task_id, self.map_index)

    @property
    def anchor(self) -> str:
        return f"task-{self.task_id}" + (f"-{self.map_index}" if self.map_index >= 0 else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "map_index": self.map_index,
            "ti_state": self.ti_state,
            "try_number": self.try_number,
            "operator": self.operator,
            "verdict": self.verdict,
            "verified": self.verified,
            "trust": self.trust,
            "result": self.result.to_dict() if self.result is not None else None,
            "evidence": self.evidence,
            "problem": self.problem,
            "timestamp": self.timestamp,
        }


@dataclass
class RunView:
    dag_id: str
    run_id: str
    run_state: str | None
    gates: list[GateView] = field(default_factory=list)
    #: The central audit trail as checked: location, records, why it does not verify.
    trail: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        counter = Counter(g.verdict for g in self.gates)
        return {v: counter.get(v, 0) for v in VERDICT_ORDER}

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "run_state": self.run_state,
            "counts": self.counts,
            "trail": self.trail,
            "gates": [g.to_dict() for g in self.gates],
        }


@dataclass
class OverviewView:
    rows: list[GateView]
    counts: dict[str, int]
    gates: list[str]
    dag_ids: list[str]
    total: int
    #: Runs where a protected task succeeded without a verified passing record of its required gate.
    unverified_deployments: list[dict[str, Any]] = field(default_factory=list)
    #: The central audit trail as checked, and the coverage window.
    trail: dict[str, Any] = field(default_factory=dict)
    #: Verdicts per day of the same filtered results (None when not asked for).
    timeline: VerdictTimeline | None = None
    #: Latest verdict per DAG x gate type (DAG and gate filters apply, the verdict filter does not).
    matrix: CoverageMatrix | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "total": self.total,
            "gates": self.gates,
            "dag_ids": self.dag_ids,
            "results": [r.to_dict() for r in self.rows],
            "unverified_deployments": self.unverified_deployments,
            "trail": self.trail,
            "timeline": self.timeline.to_dict() if self.timeline is not None else None,
            "matrix": self.matrix.to_dict() if self.matrix is not None else None,
        }


def _state(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (str(value) if value is not None else None)


def parse_result(raw: Any, *, task_id: str) -> tuple[GateResult | None, str | None]:
    """Validate a stored result document; returns (result, problem)."""
    doc = parse_xcom_value(raw)
    if not isinstance(doc, dict):
        return None, "the stored result is not a JSON object"
    try:
        result = GateResult.model_validate(doc)
    except ValidationError as exc:
        # Field locations only: the input values may be anything a task pushed.
        fields = sorted({".".join(str(p) for p in e.get("loc", ())) for e in exc.errors(include_input=False)})
        return None, "the stored result does not match the result contract (" + ", ".join(fields[:5]) + ")"
    if result.airflow is not None and result.airflow.task_id != task_id:
        return result, "the result names a different task than the one that pushed it"
    return result, None


def parse_evidence(raw: Any) -> dict[str, Any] | None:
    doc = parse_xcom_value(raw)
    if not isinstance(doc, dict):
        return None
    try:
        return {
            "location": str(doc["location"]),
            "seq": int(doc["seq"]),
            "name": str(doc["name"]),
            "sha256": str(doc["sha256"]),
        }
    except (KeyError, TypeError, ValueError):
        return None


def _gate_task_ids(session: Session, dag_id: str) -> set[str]:
    """Task ids of the DAG's gate operators (they carry the gate result extra link).

    Lets the tab list gates that have no result yet (queued, running, upstream failed).
    Best effort: a DAG that cannot be deserialized just shows the gates that pushed results.
    """
    try:
        from airflow.models.serialized_dag import SerializedDagModel

        sdm = SerializedDagModel.get(dag_id, session=session)
        if sdm is None:
            return set()
        dag = sdm.dag
        return {
            task_id
            for task_id, task in dag.task_dict.items()
            if any(getattr(link, "xcom_key", None) == LINK_XCOM_KEY for link in task.operator_extra_links)
        }
    except Exception:
        log.debug("could not read the serialized DAG of %s", dag_id, exc_info=True)
        return set()


def load_run(
    session: Session,
    dag_id: str,
    run_id: str,
    *,
    index: TrailIndex | None = None,
    unavailable: str | None = None,
) -> RunView | None:
    """Every gate task instance of one DAG run, failed gates first; None when the run does not exist.

    Each result is checked against ``index`` (the central trail; None: unreadable, every result
    is unverified, ``unavailable`` says why).
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel

    run_state = session.execute(
        select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
    ).first()
    if run_state is None:
        return None
    view = RunView(dag_id=dag_id, run_id=run_id, run_state=_state(run_state[0]))

    tis = {
        (row.task_id, row.map_index): row
        for row in session.execute(
            select(TI.task_id, TI.map_index, TI.state, TI.try_number, TI.operator).where(
                TI.dag_id == dag_id, TI.run_id == run_id
            )
        )
    }
    gates: dict[tuple[str, int], GateView] = {}

    def _gate(task_id: str, map_index: int) -> GateView:
        key = (task_id, map_index)
        if key not in gates:
            ti = tis.get(key)
            gates[key] = GateView(
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                map_index=map_index,
                ti_state=_state(ti.state) if ti else None,
                try_number=ti.try_number if ti else None,
                operator=ti.operator if ti else None,
            )
        return gates[key]

    rows = session.execute(
        select(
            XComModel.task_id, XComModel.map_index, XComModel.key, XComModel.value, XComModel.timestamp
        ).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id == run_id,
            XComModel.key.in_([XCOM_KEY, EVIDENCE_XCOM_KEY]),
        )
    )
    for row in rows:
        gate = _gate(row.task_id, row.map_index)
        if row.key == XCOM_KEY:
            gate.raw = parse_xcom_value(row.value)
            gate.result, gate.problem = parse_result(gate.raw, task_id=row.task_id)
            gate.timestamp = _iso(row.timestamp)
        else:
            gate.evidence = parse_evidence(row.value)

    for task_id in _gate_task_ids(session, dag_id):
        for ti_task_id, map_index in tis:
            if ti_task_id == task_id:
                _gate(task_id, map_index)

    for gate in gates.values():
        gate.check_against(index, unavailable)
    view.gates = sorted(gates.values(), key=lambda g: g.sort_key)
    return view


def load_overview(
    session: Session,
    *,
    readable_dag_ids: set[str],
    verdict: str | None = None,
    gate: str | None = None,
    dag_id: str | None = None,
    limit: int = 50,
    index: TrailIndex | None = None,
    unavailable: str | None = None,
    timeline: VerdictTimeline | None = None,
    matrix: CoverageMatrix | None = None,
) -> OverviewView:
    """Recent gate results across the DAGs the user may read, newest first.

    DAG and gate filters run in SQL (SQLite ``json_extract``, PostgreSQL ``->>``). Every result in
    scope is then checked against the central trail (``index``), so counts and the verdict filter
    cover every readable result, and a result the trail does not confirm counts as
    ``unverified``, never under the verdict it claims. The trail index is in memory, so checking
    costs one digest per result. ``timeline``, when given, gets every result that passes all three
    filters (DAG, gate, verdict) under its XCom timestamp and shown verdict. ``matrix``, when given,
    gets every result in scope (newest first, so each cell keeps its latest verdict), whatever the
    verdict filter.
    """
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel

    limit = max(1, min(int(limit), MAX_OVERVIEW_LIMIT))
    gate_col = XComModel.value["gate"].as_string()
    readable = XComModel.dag_id.in_(sorted(readable_dag_ids))

    scope = [XComModel.key == XCOM_KEY, readable]
    if dag_id:
        scope.append(XComModel.dag_id == dag_id)
    if gate:
        scope.append(gate_col == gate)

    gates = sorted(
        g
        for (g,) in session.execute(select(gate_col).where(XComModel.key == XCOM_KEY, readable).distinct())
        if g
    )
    dag_ids = sorted(
        d for (d,) in session.execute(select(XComModel.dag_id).where(XComModel.key == XCOM_KEY, readable).distinct())
    )

    stmt = (
        select(
            XComModel.dag_id,
            XComModel.run_id,
            XComModel.task_id,
            XComModel.map_index,
            XComModel.value,
            XComModel.timestamp,
            TI.state,
            TI.try_number,
            TI.operator,
        )
        .outerjoin(
            TI,
            and_(
                TI.dag_id == XComModel.dag_id,
                TI.run_id == XComModel.run_id,
                TI.task_id == XComModel.task_id,
                TI.map_index == XComModel.map_index,
            ),
        )
        .where(*scope)
        .order_by(XComModel.timestamp.desc(), XComModel.dag_id, XComModel.task_id)
    )
    counts = dict.fromkeys(OVERVIEW_VERDICTS, 0)
    rows = []
    for row in session.execute(stmt.execution_options(yield_per=500)):
        view = GateView(
            dag_id=row.dag_id,
            run_id=row.run_id,
            task_id=row.task_id,
            map_index=row.map_index,
            ti_state=_state(row.state),
            try_number=row.try_number,
            operator=row.operator,
            timestamp=_iso(row.timestamp),
        )
        view.raw = parse_xcom_value(row.value)
        view.result, view.problem = parse_result(view.raw, task_id=row.task_id)
        view.check_against(index, unavailable)
        shown = view.verdict if view.verdict in counts else "error"  # unreadable documents count as errors
        counts[shown] += 1
        if matrix is not None:
            matrix.add(dag_id=row.dag_id, gate=str(view.result.gate) if view.result is not None else None,
                       verdict=shown, run_id=row.run_id, task_id=row.task_id, timestamp=view.timestamp)
        if timeline is not None and (not verdict or shown == verdict):
            timeline.add(row.timestamp, shown)
        if len(rows) < limit and (not verdict or shown == verdict):
            rows.append(view)
    total = sum(counts.values())
    return OverviewView(rows=rows, counts=counts, gates=gates, dag_ids=dag_ids, total=total, timeline=timeline,
                        matrix=matrix)
