"""What the UI may trust: the central audit trail (``[aisec] evidence_location``) and nothing else.

* :func:`current_index`: the chain-verified index of the trail, refreshed incrementally and cached
  by HEAD (:mod:`airflow_aisec.core.trail_index`); every result shown is checked against it.
* :func:`read_confirmed_record`: the record that confirms a result, read by its sequence number
  from the configured trail only. What the XCom ``aisec_evidence`` reference names (location,
  number, digest) is never used to choose what to read: a forged reference cannot make the API
  server serve another DAG's record.
* :func:`unverified_deployments`: ``aisec audit coverage``'s deployment check for the overview.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
from typing import TYPE_CHECKING, Any

from airflow_aisec import settings
from airflow_aisec.core.evidence import open_evidence_store, record_name
from airflow_aisec.core.io.json_input import loads_json
from airflow_aisec.core.io.storage import is_s3_uri
from airflow_aisec.exceptions import AisecError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from airflow_aisec.core.evidence import EvidenceStore
    from airflow_aisec.core.trail_index import TrailEntry, TrailIndex

log = logging.getLogger(__name__)

#: How far back the overview looks for unverified deployments.
DEPLOYMENT_WINDOW = _dt.timedelta(days=7)


def open_trail() -> EvidenceStore:
    """The configured central audit trail (S3 through ``[aisec] evidence_aws_conn_id``)."""
    location = settings.evidence_location()
    client = None
    if is_s3_uri(location):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        client = S3Hook(aws_conn_id=settings.evidence_aws_conn_id()).get_conn()
    return open_evidence_store(location, s3_client=client)


def current_index() -> tuple[TrailIndex | None, str | None]:
    """``(index, None)``, or ``(None, why)`` when the trail cannot be read (then nothing is verified)."""
    from airflow_aisec.core.trail_index import trail_index

    try:
        return trail_index(open_trail()), None
    except AisecError as exc:
        log.warning("aisec UI: the audit trail cannot be read: %s", exc)
        return None, f"the audit trail cannot be read ({exc})"
    except Exception as exc:
        log.exception("aisec UI: reading the audit trail failed")
        return None, f"the audit trail cannot be read ({type(exc).__name__})"


def trail_summary(index: TrailIndex | None, unavailable: str | None) -> dict[str, Any]:
    return {
        "location": settings.evidence_location(),
        "records": index.records if index is not None else None,
        "broken": index.broken if index is not None else None,
        "unavailable": unavailable,
    }


class RecordMismatch(Exception):
    """The trail no longer holds the bytes it was indexed with."""


def read_confirmed_record(entry: TrailEntry, doc: Any, evidence_ref: dict[str, Any] | None) -> dict[str, Any]:
    """The record ``entry`` names, re-read from the configured trail and checked again.

    Returns:
        ``{"ref", "record", "checks"}``; ``checks.anchor_matches`` says whether the XCom anchor
        (``aisec_evidence``) names this record (None without one).

    Raises:
        RecordMismatch: the record is gone or its bytes changed since it was indexed.
        ServiceUnavailableError: the trail cannot be read.
    """
    store = open_trail()
    name = record_name(entry.seq)
    data = store.read_record(name)
    if data is None:
        raise RecordMismatch("the confirming record is no longer in the audit trail")
    sha = hashlib.sha256(data).hexdigest()
    if sha != entry.sha256:
        raise RecordMismatch("the confirming record changed since it was verified (digest differs)")
    record = loads_json(data)
    anchor = None
    if evidence_ref is not None:
        anchor = evidence_ref.get("seq") == entry.seq and evidence_ref.get("sha256") == entry.sha256
    payload = record.get("payload") if isinstance(record, dict) else None
    air = payload.get("airflow") if isinstance(payload, dict) else {}
    checks = {
        "found": True,
        "sha256_matches": True,
        "body_digest_valid": True,
        "chain_verified": True,
        "payload_matches_result": payload == doc,
        "airflow_ids_match": (air or {}).get("dag_id") == entry.dag_id and (air or {}).get("task_id") == entry.task_id,
        "anchor_matches": anchor,
    }
    checks["verified"] = bool(checks["payload_matches_result"] and checks["airflow_ids_match"])
    if not checks["verified"]:
        raise RecordMismatch("the confirming record does not match this result")
    ref = {"location": store.location, "seq": entry.seq, "name": name, "sha256": sha}
    return {"ref": ref, "record": record, "checks": checks}


def unverified_deployments(
    session: Session, readable_dag_ids: set[str], index: TrailIndex | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Deployments in the last :data:`DEPLOYMENT_WINDOW` of the readable DAGs the trail does not back.

    Returns:
        ``(findings, note)``; ``note`` says why nothing could be checked (no platform policy, the
        trail unreadable), None otherwise.
    """
    path = settings.platform_policy()
    if not path:
        return [], "[aisec] platform_policy is not set: no deploy rule to check"
    if index is None:
        return [], "the audit trail cannot be read"
    from airflow_aisec.cluster_policy import load_platform_policy
    from airflow_aisec.core.coverage import find_gaps
    from airflow_aisec.coverage_db import load_runs

    try:
        section = load_platform_policy(path).section("platform")
    except AisecError as exc:
        return [], f"the platform policy cannot be used: {exc}"
    runs = load_runs(session, since=DEPLOYMENT_WINDOW, dag_ids=readable_dag_ids)
    report = find_gaps(section, runs, index, results=False)
    return [f.to_dict() for f in report.findings if f.kind == "unverified_deployment"], None
