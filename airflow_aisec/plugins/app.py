"""FastAPI app of the UI plugin, mounted by Airflow's API server under ``/aisec``.

Pages (server-rendered HTML, no JavaScript, opened by the Airflow UI in an iframe):

* ``GET /aisec/runs/{dag_id}/{run_id}``: the run's "Security gates" tab.
* ``GET /aisec/overview``: the posture view: a coverage matrix (DAG x gate type, latest verdict per
  cell, an empty cell where the DAG has no such gate), "Verdicts over time" (verdicts per day over
  ``days``, an inline SVG chart) and the recent gate results, all for the same filters (verdict,
  gate, DAG, limit, days), which live in the URL (a GET form; every link keeps them).

JSON:

* ``GET /aisec/api/runs/{dag_id}/{run_id}``, ``GET /aisec/api/overview``: the same data.
* ``GET /aisec/runs/{dag_id}/{run_id}/tasks/{task_id}/evidence``: the audit-trail record that
  confirms that task's result.
* ``GET /aisec/runs/{dag_id}/{run_id}/tasks/{task_id}/reports/{index}``: a report the confirmed
  result names.

Only the central audit trail is trusted (:mod:`airflow_aisec.plugins.trust`): a result no
chain-verified record of that DAG, run, task and try matches is shown as "unverified", and its
evidence and reports are refused (409), whatever its XComs point at.

Airflow does not authenticate plugin apps: every route here depends on
``requires_access_dag`` (JWT from the ``Authorization`` header or the UI's cookie,
then the auth manager's per-DAG decision), and the overview only queries DAGs the
user may read. Templates autoescape everything and responses carry a CSP that
forbids scripts, because messages and column names come from user data.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag, requires_authenticated
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_aisec.core.result_bounds import MAX_FINDINGS_LISTED, MAX_METRIC_ITEMS
from airflow_aisec.exceptions import ConfigurationError, InputDataError, ServiceUnavailableError
from airflow_aisec.links import run_tab_url, ui_base
from airflow_aisec.plugins import files, trust
from airflow_aisec.plugins.posture import CoverageMatrix, metric_blocks
from airflow_aisec.plugins.results import (
    MAX_OVERVIEW_LIMIT,
    OVERVIEW_VERDICTS,
    VERDICT_ORDER,
    GateView,
    load_overview,
    load_run,
)
from airflow_aisec.plugins.timeline import DEFAULT_DAYS, MAX_DAYS, VerdictTimeline

HERE = Path(__file__).parent
#: Pages never run scripts; styles come from our own stylesheet; only the Airflow UI may frame them.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'self'; base-uri 'none'"
)
#: Reports are third-party HTML: sandboxed (opaque origin, no scripts), inline styles and data images only.
REPORT_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
REPORT_MEDIA_TYPES = {"text/html", "text/plain", "text/csv", "application/json", "image/png", "image/svg+xml"}

# Reading gate results is reading that DAG's XComs: the same permission the REST API's XCom routes ask for.
Limit = Annotated[int, Query(ge=1, le=MAX_OVERVIEW_LIMIT)]
MapIndex = Annotated[int, Query(ge=-1)]
Days = Annotated[int, Query(ge=1, le=MAX_DAYS, description="Window of the verdicts-per-day chart")]
ReadGateResults = Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.XCOM))

_env = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=True,  # every template, whatever its name: all content is untrusted
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# The bounds a result document is cut to (named in the run page's notes on what was not listed).
_env.globals.update(max_findings_listed=MAX_FINDINGS_LISTED, max_metric_items=MAX_METRIC_ITEMS)


def _q(value: Any) -> str:
    return quote(str(value), safe=":+@")


class Urls:
    """URLs for one request, relative to where Airflow mounted this app (works under a base_url path)."""

    def __init__(self, request: Request):
        self.root = str(request.scope.get("root_path", "")).rstrip("/")
        self.ui = ui_base()

    def css(self) -> str:
        return f"{self.root}/static/aisec.css"

    def run(self, dag_id: str, run_id: str) -> str:
        return f"{self.root}/runs/{_q(dag_id)}/{_q(run_id)}"

    def overview(self, **params: Any) -> str:
        clean = {k: v for k, v in params.items() if v not in (None, "")}
        return f"{self.root}/overview" + (f"?{urlencode(clean)}" if clean else "")

    def _task_suffix(self, gate: GateView) -> str:
        return f"?map_index={gate.map_index}" if gate.map_index >= 0 else ""

    def evidence(self, gate: GateView) -> str:
        return (
            f"{self.run(gate.dag_id, gate.run_id)}/tasks/{_q(gate.task_id)}/evidence{self._task_suffix(gate)}"
        )

    def report(self, gate: GateView, index: int) -> str:
        return (
            f"{self.run(gate.dag_id, gate.run_id)}/tasks/{_q(gate.task_id)}/reports/{index}"
            f"{self._task_suffix(gate)}"
        )

    def ui_run_tab(self, dag_id: str, run_id: str) -> str:
        return run_tab_url(dag_id, run_id)

    def ui_task(self, gate: GateView) -> str:
        url = f"{self.ui}dags/{_q(gate.dag_id)}/runs/{_q(gate.run_id)}/tasks/{_q(gate.task_id)}"
        return url + (f"/mapped/{gate.map_index}" if gate.map_index >= 0 else "")


def _finding_order(finding: Any) -> tuple:
    if finding.waived:
        rank = 3
    else:
        rank = {"enforce": 0, "warn": 1}.get(str(finding.enforcement), 2)
    return (rank, str(finding.rule))


def _location(location: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(k), v if isinstance(v, str) else _compact(v)) for k, v in sorted(location.items())]


def _compact(value: Any) -> str:
    import json

    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def _reports(gate: GateView) -> list[dict[str, Any]]:
    out = []
    if gate.result is None:
        return out
    for index, report in enumerate(gate.result.reports):
        link = files.classify_report(report.uri)
        out.append(
            {"index": index, "name": report.name, "uri": report.uri, "kind": link.kind, "note": link.note}
        )
    return out


def _baseline(result: Any) -> Any:
    """The baseline policy reference of a result (field ``baseline``), when the result has one."""
    base = getattr(result, "baseline", None)
    if isinstance(base, dict) or getattr(base, "name", None) is not None:
        return base
    return None


_env.globals.update(
    baseline_of=_baseline,
    verdict_order=list(VERDICT_ORDER),
    sorted_findings=lambda findings: sorted(findings, key=_finding_order),
    location_pairs=_location,
    compact=_compact,
    reports_of=_reports,
    metric_blocks=metric_blocks,
)


def _render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(urls=Urls(request), **context)
    return HTMLResponse(html, status_code=status_code)


def _wants_json(request: Request) -> bool:
    path = request.scope.get("path", "")
    return "/api/" in path or "/evidence" in path or "application/json" in request.headers.get("accept", "")


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    messages = {
        401: "You are not logged in to Airflow (or your session expired).",
        403: "You do not have access to this DAG's gate results.",
        404: "Not found.",
    }
    return _render(
        request,
        "error.html",
        status_code=exc.status_code,
        code=exc.status_code,
        message=messages.get(exc.status_code, str(exc.detail)),
    )


def create_app() -> FastAPI:
    """Build the plugin's FastAPI app (Airflow mounts it; tests can mount it too)."""
    app = FastAPI(
        title="airflow-aisec gate results",
        description="Security gate results of Airflow runs. Every route requires per-DAG read access.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/", dependencies=[Depends(requires_authenticated())], include_in_schema=False)
    def index(request: Request) -> RedirectResponse:
        return RedirectResponse(Urls(request).overview(), status_code=status.HTTP_307_TEMPORARY_REDIRECT)

    @app.get("/static/aisec.css", dependencies=[Depends(requires_authenticated())], include_in_schema=False)
    def stylesheet() -> Response:
        return Response((HERE / "static" / "aisec.css").read_bytes(), media_type="text/css")

    # --- one run -----------------------------------------------------------------------------
    def _run_or_404(session, dag_id: str, run_id: str):
        index, unavailable = trust.current_index()
        view = load_run(session, dag_id, run_id, index=index, unavailable=unavailable)
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "DAG run not found")
        view.trail = trust.trail_summary(index, unavailable)
        return view

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=[ReadGateResults])
    def run_page(request: Request, dag_id: str, run_id: str, session: SessionDep) -> HTMLResponse:
        view = _run_or_404(session, dag_id, run_id)
        return _render(
            request,
            "run.html",
            run=view,
            evidence_location=files.evidence_location(),
        )

    @app.get("/api/runs/{dag_id}/{run_id}", dependencies=[ReadGateResults])
    def run_json(dag_id: str, run_id: str, session: SessionDep) -> dict[str, Any]:
        return _run_or_404(session, dag_id, run_id).to_dict()

    def _gate(session, dag_id: str, run_id: str, task_id: str, map_index: int) -> GateView:
        view = _run_or_404(session, dag_id, run_id)
        for gate in view.gates:
            if gate.task_id == task_id and gate.map_index == map_index:
                return gate
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No gate result for this task")

    def _confirmed(gate: GateView) -> GateView:
        """The gate, if the central trail confirms its result; else 404 (no result) or 409."""
        if gate.result is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No gate result for this task")
        if not gate.verified or gate.entry is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"the result of this task is not confirmed by the audit trail: {gate.trust}; nothing is served",
            )
        return gate

    @app.get("/runs/{dag_id}/{run_id}/tasks/{task_id}/evidence", dependencies=[ReadGateResults])
    def evidence(
        dag_id: str,
        run_id: str,
        task_id: str,
        session: SessionDep,
        map_index: MapIndex = -1,
    ) -> dict[str, Any]:
        gate = _confirmed(_gate(session, dag_id, run_id, task_id, map_index))
        try:
            return trust.read_confirmed_record(gate.entry, gate.raw, gate.evidence)
        except trust.RecordMismatch as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except ServiceUnavailableError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        except (ConfigurationError, InputDataError) as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None

    @app.get("/runs/{dag_id}/{run_id}/tasks/{task_id}/reports/{index}", dependencies=[ReadGateResults])
    def report(
        dag_id: str,
        run_id: str,
        task_id: str,
        index: int,
        session: SessionDep,
        map_index: MapIndex = -1,
    ) -> Response:
        # Only a report the confirmed result (identical to its trail record) names.
        gate = _confirmed(_gate(session, dag_id, run_id, task_id, map_index))
        reports = gate.result.reports if gate.result is not None else []
        if not 0 <= index < len(reports):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such report")
        ref = reports[index]
        try:
            data = files.read_report(ref.uri)
        except ServiceUnavailableError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        except (ConfigurationError, InputDataError) as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        if data is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "Report file not found")
        media_type = (ref.media_type or "").split(";")[0].strip().lower()
        if media_type not in REPORT_MEDIA_TYPES:
            media_type = mimetypes.guess_type(ref.uri)[0] or "application/octet-stream"
            if media_type not in REPORT_MEDIA_TYPES:
                media_type = "application/octet-stream"
        disposition = "inline" if media_type != "application/octet-stream" else "attachment"
        return Response(
            data,
            media_type=media_type,
            headers={
                "Content-Security-Policy": REPORT_CSP,
                "Content-Disposition": f"{disposition}; filename=report",
            },
        )

    # --- overview ----------------------------------------------------------------------------
    def _overview(
        user,
        session,
        verdict: str | None,
        gate: str | None,
        dag_id: str | None,
        limit: int,
        days: int = DEFAULT_DAYS,
    ):
        if verdict and verdict not in OVERVIEW_VERDICTS:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"verdict must be one of {', '.join(OVERVIEW_VERDICTS)}"
            )
        readable = get_auth_manager().get_authorized_dag_ids(user=user, method="GET", session=session)
        index, unavailable = trust.current_index()
        dag_id = dag_id if dag_id and dag_id != "~" else None
        view = load_overview(
            session,
            readable_dag_ids=readable,
            verdict=verdict or None,
            gate=gate or None,
            dag_id=dag_id,
            limit=limit,
            index=index,
            unavailable=unavailable,
            timeline=VerdictTimeline(days=days),
            matrix=CoverageMatrix(),
        )
        scope = {dag_id} & set(readable) if dag_id else set(readable)
        deployments, note = trust.unverified_deployments(session, scope, index)
        view.unverified_deployments = deployments
        view.trail = {**trust.trail_summary(index, unavailable), "deployment_note": note,
                      "deployment_window_days": trust.DEPLOYMENT_WINDOW.days}
        return view

    @app.get("/overview", response_class=HTMLResponse, dependencies=[ReadGateResults])
    def overview_page(
        request: Request,
        user: GetUserDep,
        session: SessionDep,
        verdict: str | None = None,
        gate: str | None = None,
        dag_id: str | None = None,
        limit: Limit = 50,
        days: Days = DEFAULT_DAYS,
    ) -> HTMLResponse:
        view = _overview(user, session, verdict, gate, dag_id, limit, days)
        return _render(
            request,
            "overview.html",
            view=view,
            verdicts=OVERVIEW_VERDICTS,
            selected={"verdict": verdict or "", "gate": gate or "", "dag_id": dag_id or "", "limit": limit,
                      "days": days},
            default_days=DEFAULT_DAYS,
            evidence_location=files.evidence_location(),
        )

    @app.get("/api/overview", dependencies=[ReadGateResults])
    def overview_json(
        user: GetUserDep,
        session: SessionDep,
        verdict: str | None = None,
        gate: str | None = None,
        dag_id: str | None = None,
        limit: Limit = 50,
        days: Days = DEFAULT_DAYS,
    ) -> dict[str, Any]:
        return _overview(user, session, verdict, gate, dag_id, limit, days).to_dict()

    return app


app = create_app()
