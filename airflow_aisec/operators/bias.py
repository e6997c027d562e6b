"""Bias gate operator: fairness metrics of a predictions table against the policy's thresholds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec import settings
from airflow_aisec.operators.base import (
    AisecGateOperator,
    airflow_ref,
    s3_client,
    s3_client_for,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import CheckOutcome


class ReportingGateMixin:
    """Where a gate operator stores its HTML report, and the S3 clients it needs (created at run time)."""

    report_location: str | None
    aws_conn_id: str
    evidence_location: str | None
    gate: str

    def report_target(self, loaded: LoadedPolicy, context: Context) -> tuple[str, dict[str, Any], Any]:
        """Report URI, report header fields, and the S3 client for an ``s3://`` report (else None)."""
        from airflow_aisec.core.io.storage import is_s3_uri
        from airflow_aisec.core.report import report_uri

        ref = airflow_ref(context)
        evidence_root = self.evidence_location or settings.evidence_location()
        uri = report_uri(
            self.report_location,
            default_root=evidence_root,
            gate=self.gate,
            dag_id=ref.dag_id,
            run_id=ref.run_id,
            task_id=ref.task_id,
            map_index=ref.map_index,
            try_number=ref.try_number,
        )
        meta = {
            "policy": f"{loaded.name} (sha256 {loaded.sha256})",
            "dag_id": ref.dag_id,
            "run_id": ref.run_id,
            "task_id": ref.task_id,
            "try_number": ref.try_number,
        }
        client = None
        if is_s3_uri(uri):
            # Next to the evidence by default: then it is written with the evidence connection.
            client = self._evidence_s3_client() if not self.report_location else s3_client(self.aws_conn_id)  # type: ignore[attr-defined]
        return uri, meta, client


class BiasGateOperator(ReportingGateMixin, AisecGateOperator):
    """Fail the run when a model's predictions are unfair across sensitive groups.

    Reads a predictions table (CSV or Parquet, local or ``s3://``), computes per-group rates and
    between-group metrics (demographic parity, equalized odds, equal opportunity, accuracy/FPR/FNR
    gaps; equal to fairlearn's) and checks them against the policy's ``bias`` section. Writes a
    self-contained HTML report (per-group bar charts with threshold lines) and references it
    from the gate result.

    Args:
        data: Predictions table (templated): local path or ``s3://bucket/key``.
        label_column: Label column (templated); may come from the policy instead.
        prediction_column: Prediction column (templated); may come from the policy instead.
        score_column: Optional score column (templated), for ROC AUC / score thresholds.
        sensitive_columns: Sensitive columns (templated), list or comma-separated; added to the
            policy's.
        report_location: Where to write the report (templated): a ``.html`` path or ``s3://`` key,
            or a directory / ``s3://`` prefix. Default: ``<evidence location>/reports``.
        aws_conn_id: Airflow AWS connection for ``s3://`` data and an explicit ``s3://`` report location.
        policy: Policy file (see :class:`~airflow_aisec.operators.base.AisecGateOperator`).
        evidence_location: Audit trail location.
        evidence_aws_conn_id: Connection for an ``s3://`` audit trail (and a report stored next to it).
    """

    gate = "bias"
    template_fields: Sequence[str] = (
        *AisecGateOperator.template_fields,
        "data",
        "label_column",
        "prediction_column",
        "score_column",
        "sensitive_columns",
        "report_location",
    )
    ui_color = "#f3e5f5"

    def __init__(
        self,
        *,
        data: str,
        label_column: str | None = None,
        prediction_column: str | None = None,
        score_column: str | None = None,
        sensitive_columns: Sequence[str] | str | None = None,
        report_location: str | None = None,
        aws_conn_id: str = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.label_column = label_column
        self.prediction_column = prediction_column
        self.score_column = score_column
        self.sensitive_columns = sensitive_columns
        self.report_location = report_location
        self.aws_conn_id = aws_conn_id

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        from airflow_aisec.core.gates.bias import check_bias

        section = loaded.section(self.gate)
        report, meta, report_client = self.report_target(loaded, context)
        data_client = s3_client_for(self.aws_conn_id, self.data)
        self.log.info("bias gate: data=%s report=%s", self.data, report)
        return check_bias(
            section,  # type: ignore[arg-type]
            self.data,
            label=self.label_column,
            prediction=self.prediction_column,
            score=self.score_column,
            sensitive=self.sensitive_columns,
            report=report,
            report_meta=meta,
            s3_client=data_client,
            report_s3_client=report_client,
        )
