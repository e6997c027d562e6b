"""Docs example: the release gates the example DAGs in dags/ do not show.

A candidate model is promoted only when the bucket that holds it has the required posture
(storage gate) and the model resists the red-team probe suite (llm_redteam gate); a fairness breach
may ship only with a recorded human approval (AisecWaiverApprovalOperator). Parsed by
tests/test_docs_build.py; the how-to pages include it by its ``[START howto_...]`` markers.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

from airflow_aisec.operators.approval import AisecWaiverApprovalOperator
from airflow_aisec.operators.bias import BiasGateOperator
from airflow_aisec.operators.llm_redteam import LlmRedTeamGateOperator
from airflow_aisec.operators.storage import StoragePostureGateOperator

POLICY_DIR = Path(os.environ.get("AISEC_POLICY_DIR", Path(__file__).resolve().parents[2] / "policies"))
STRICT = str(POLICY_DIR / "strict.yaml")
MODEL_BUCKET = "s3://ml-models/churn/candidates"
CANDIDATE_API = "https://candidate.models.internal.example/v1"

with DAG("model_release_gates", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         catchup=False, tags=["aisec-example"]):
    # [START howto_storage_gate]
    model_bucket = StoragePostureGateOperator(
        task_id="model_bucket_posture",
        uri=MODEL_BUCKET,
        aws_conn_id="aws_default",
        policy=str(POLICY_DIR / "storage-example.yaml"),
    )
    # [END howto_storage_gate]

    # [START howto_llm_redteam_gate]
    redteam = LlmRedTeamGateOperator(
        task_id="redteam_candidate",
        endpoint=CANDIDATE_API,
        model="churn-assistant-candidate",
        vault_secret_path="ml/serving/candidate-token",  # or conn_id="candidate_model"
        policy=STRICT,
    )
    # [END howto_llm_redteam_gate]

    # [START howto_waiver_approval]
    bias_gate = BiasGateOperator(
        task_id="bias_gate",
        data="s3://ml-models/churn/candidates/predictions.parquet",
        label_column="label",
        prediction_column="prediction",
        sensitive_columns=["group"],
        policy=STRICT,
    )
    # Runs whatever the gate's outcome; asks a person only for rules under platform.approvals.
    bias_waiver = AisecWaiverApprovalOperator(task_id="bias_waiver", gate_task_id="bias_gate")

    @task
    def promote() -> None:
        """Promote the candidate (after every gate, and after an approved waiver)."""

    bias_gate >> bias_waiver
    [model_bucket, redteam, bias_waiver] >> promote()
    # [END howto_waiver_approval]
