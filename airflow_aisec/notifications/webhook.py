"""A webhook alert for failed gates: gate, verdict, rule ids, DAG / run / task ids, never a data value.

Use it as a task (or DAG default) ``on_failure_callback``::

    from airflow_aisec.notifications.webhook import AisecWebhookNotifier

    alert = AisecWebhookNotifier(conn_id="aisec_alerts")          # or url="https://hooks.example/aisec"
    DriftGateOperator(..., on_failure_callback=alert)

The alert is one JSON ``POST``. It is built from the gate result the task pushed to XCom (key
``aisec_result``): the gate, the verdict, the policy name and digest, and for each finding its rule,
severity, count, enforcement and waiver flag. Finding messages and locations are left out (they
name columns, paths and positions, which an alert channel has no need for), and so is the exception
text of a task that failed before it produced a result (only its type is sent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.notifier import BaseNotifier

from airflow_aisec.constants import RESULT_XCOM_KEY

if TYPE_CHECKING:
    from airflow.sdk import Context

_OMITTED_FIELDS = ("rule", "severity", "enforcement", "waived", "findings")
_FINDING_FIELDS = ("rule", "severity", "count", "enforcement", "waived")


def alert_payload(context: Mapping[str, Any], result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The alert document for a failed task (``result``: the gate result it pushed, if any)."""
    ti = context.get("ti") or context.get("task_instance")
    exc = context.get("exception")
    payload: dict[str, Any] = {
        "source": "airflow-aisec",
        "event": "gate_failed",
        "dag_id": getattr(ti, "dag_id", None),
        "run_id": getattr(ti, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "try_number": getattr(ti, "try_number", None),
        "map_index": getattr(ti, "map_index", None),
        "gate": None,
        "verdict": "error",
        "findings": [],
    }
    task = context.get("task")
    gate = getattr(task, "gate", None)
    if isinstance(gate, str) and gate:
        payload["gate"] = gate
    if isinstance(result, Mapping):
        payload["gate"] = result.get("gate") or payload["gate"]
        payload["verdict"] = result.get("verdict") or "error"
        policy = result.get("policy") or {}
        if isinstance(policy, Mapping):
            payload["policy"] = {"name": policy.get("name"), "sha256": policy.get("sha256")}
        findings = result.get("findings") or []
        payload["findings"] = [{k: f.get(k) for k in _FINDING_FIELDS} for f in findings if isinstance(f, Mapping)]
        payload["rules"] = sorted({str(f["rule"]) for f in payload["findings"] if f.get("rule")})
        # A bounded result (schema 1.2) counts, per rule, the findings it does not list.
        payload["findings_omitted"] = [{k: o.get(k) for k in _OMITTED_FIELDS}
                                       for o in result.get("findings_omitted") or () if isinstance(o, Mapping)]
        error = result.get("error")
        if isinstance(error, Mapping):
            payload["error_type"] = error.get("type")
            payload["retryable"] = bool(error.get("retryable"))
    else:
        payload["rules"] = []
        if exc is not None:
            payload["error_type"] = type(exc).__name__
    return payload


class AisecWebhookNotifier(BaseNotifier):
    """POST a value-free alert about a failed gate task to a webhook.

    Args:
        url: Webhook URL (templated). Either this or ``conn_id``.
        conn_id: Airflow HTTP connection: its host (with scheme, or ``schema`` = ``http``/``https``) and
            port give the URL, ``endpoint`` is appended, and a password is sent as a Bearer token
            (masked when read).
        endpoint: Path appended to the connection's URL (templated).
        timeout: Seconds for the request.
        extra_fields: Constant fields added to every alert (e.g. ``{"team": "ml-platform"}``).
    """

    template_fields: Sequence[str] = ("url", "endpoint")

    def __init__(self, *, url: str | None = None, conn_id: str | None = None, endpoint: str = "",
                 timeout: float = 10.0, extra_fields: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if not url and not conn_id:
            raise ValueError("AisecWebhookNotifier needs url= or conn_id=")
        self.url = url
        self.conn_id = conn_id
        self.endpoint = endpoint
        self.timeout = timeout
        self.extra_fields = dict(extra_fields or {})

    def _target(self) -> tuple[str, dict[str, str]]:
        if self.url:
            return str(self.url), {}
        from airflow.sdk import BaseHook
        from airflow.sdk.log import mask_secret

        conn = BaseHook.get_connection(self.conn_id)
        host = conn.host or ""
        if "://" not in host:
            scheme = conn.schema if conn.schema in ("http", "https") else "https"
            host = f"{scheme}://{host}"
        base = host.rstrip("/") + (f":{conn.port}" if conn.port else "")
        headers = {}
        if conn.password:
            mask_secret(conn.password)
            headers["Authorization"] = f"Bearer {conn.password}"
        path = str(self.endpoint or "")
        return base + ("/" + path.lstrip("/") if path else ""), headers

    def notify(self, context: Context) -> None:
        import httpx

        ti = context.get("ti")
        result = None
        if ti is not None:
            try:
                result = ti.xcom_pull(task_ids=ti.task_id, key=RESULT_XCOM_KEY)
            except Exception:  # noqa: BLE001 - an alert goes out even when XCom cannot be read
                self.log.warning("aisec alert: the gate result could not be read from XCom")
        payload = {**self.extra_fields, **alert_payload(context, result)}
        url, headers = self._target()
        resp = httpx.post(url, json=payload, headers=headers, timeout=self.timeout)
        if resp.status_code >= 300:
            raise RuntimeError(f"aisec alert webhook answered HTTP {resp.status_code}")
        self.log.info("aisec alert sent: gate=%s verdict=%s rules=%s", payload.get("gate"), payload.get("verdict"),
                      payload.get("rules"))
