"""Example: continuous monitoring of a deployed model, run each time new inference logs land.

Scheduled on the Asset of the serving system's inference log (whatever writes it, a serving sidecar
or an export DAG, declares it as an outlet). Each run checks, in parallel:

* ``drift_gate``: the logged model inputs against the training reference (PSI / KS per feature);
* ``pii_scan_inputs``: no personal data in the logged inputs;
* ``prompt_injection_scan``: no injected instructions in the logged prompts;
* ``endpoint_gate``: the serving endpoint still shows its controls (TLS, auth, exposed paths, limits).

Any failing gate sends one alert through :class:`~airflow_aisec.notifications.webhook.AisecWebhookNotifier`
(gate, verdict, rule ids, DAG / run / task ids; never a data value). Every result is in XCom and the
audit trail, so the UI's "Security gates" view lists the monitoring verdicts run after run.

Settings (read at parse time from the environment, no I/O):

* ``AISEC_EXAMPLE_ROOT``: local storage root (logs and reference under ``<root>/monitoring/``), or
  ``AISEC_INFERENCE_LOG`` / ``AISEC_TRAINING_REFERENCE`` (paths or ``s3://`` URIs) directly;
* ``AISEC_SERVING_URL`` and ``AISEC_SERVING_CA`` (PEM of the CA that signs the endpoint's certificate);
* ``AISEC_POLICY_DIR``: where ``monitoring-example.yaml`` lives (default: ``../policies``);
* connections ``model_serving`` (password: the endpoint token) and ``aisec_alerts`` (HTTP: the webhook).
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Asset

from airflow_aisec.notifications.webhook import AisecWebhookNotifier
from airflow_aisec.operators.drift import DriftGateOperator
from airflow_aisec.operators.endpoint import EndpointSecurityGateOperator
from airflow_aisec.operators.pii import PiiGateOperator
from airflow_aisec.operators.prompt_injection import PromptInjectionScanOperator

ROOT = Path(os.environ.get("AISEC_EXAMPLE_ROOT", "/tmp/aisec-example")) / "monitoring"
INFERENCE_LOG = os.environ.get("AISEC_INFERENCE_LOG", str(ROOT / "inference-log.csv"))
TRAINING_REFERENCE = os.environ.get("AISEC_TRAINING_REFERENCE", str(ROOT / "training-reference.csv"))
SERVING_URL = os.environ.get("AISEC_SERVING_URL", "https://models.internal.example/churn")
SERVING_CA = os.environ.get("AISEC_SERVING_CA") or None
POLICY_DIR = Path(os.environ.get("AISEC_POLICY_DIR", Path(__file__).resolve().parents[1] / "policies"))
POLICY = str(POLICY_DIR / "monitoring-example.yaml")

FEATURES = ["age", "income", "tenure_months"]

# [START howto_monitoring_schedule]
inference_logs = Asset(
    name="inference_logs",
    uri=INFERENCE_LOG if INFERENCE_LOG.startswith("s3://") else Path(INFERENCE_LOG).absolute().as_uri(),
)
alert = AisecWebhookNotifier(conn_id="aisec_alerts", endpoint="/aisec")

with DAG(
    "model_monitoring",
    description="Drift, PII, prompt injection and endpoint controls on every new batch of inference logs",
    schedule=[inference_logs],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["aisec-example", "monitoring"],
    default_args={"retries": 0, "on_failure_callback": alert},
):
    # [END howto_monitoring_schedule]
    # [START howto_drift_gate]
    DriftGateOperator(task_id="drift_gate", reference=TRAINING_REFERENCE, current=INFERENCE_LOG,
                      features=FEATURES, policy=POLICY)
    # [END howto_drift_gate]
    # [START howto_pii_monitoring]
    PiiGateOperator(task_id="pii_scan_inputs", data=INFERENCE_LOG, policy=POLICY)
    # [END howto_pii_monitoring]
    # [START howto_prompt_injection_gate]
    PromptInjectionScanOperator(task_id="prompt_injection_scan", data=INFERENCE_LOG, columns=["prompt"],
                                policy=POLICY)
    # [END howto_prompt_injection_gate]
    # [START howto_endpoint_gate]
    EndpointSecurityGateOperator(task_id="endpoint_gate", url=SERVING_URL, token_conn_id="model_serving",
                                 ca_bundle=SERVING_CA, policy=POLICY)
    # [END howto_endpoint_gate]
