"""Unsafe-model-file gate: picklescan, modelscan and a built-in static analysis over a model directory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.operators.base import AisecGateOperator, s3_client_for

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import CheckOutcome


class ModelScanGateOperator(AisecGateOperator):
    """Fail the run when a model directory holds unsafe files, without loading any of them.

    Runs picklescan and modelscan on every file that could carry a pickle and the built-in
    analysis on every file (``.pkl``, ``.pt``/``.pth`` zips, ``.joblib`` incl. compressed,
    ``.npy``/``.npz``, pickles behind other extensions). The ``model_scan`` policy section can
    forbid pickle-based formats outright and restrict extensions.

    Args:
        model: Model directory or ``s3://bucket/prefix/`` (templated).
        aws_conn_id: Airflow AWS connection used through ``S3Hook`` for ``s3://`` models.
        policy: Policy file (templated); see :class:`AisecGateOperator`.
        evidence_location: Audit trail location (templated).
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
    """

    gate = "model_scan"
    template_fields: Sequence[str] = (*AisecGateOperator.template_fields, "model")

    def __init__(self, *, model: str, aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.aws_conn_id = aws_conn_id

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        from airflow_aisec.core.gates.model_scan import scan_model

        client = s3_client_for(self.aws_conn_id, self.model)
        self.log.info("scanning model %s", self.model)
        return scan_model(loaded.section(self.gate), self.model, s3_client=client)  # type: ignore[arg-type]
