"""Drift gate operator: compare current data with a reference, feature by feature."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.operators.base import AisecGateOperator, s3_client_for
from airflow_aisec.operators.bias import ReportingGateMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import CheckOutcome


class DriftGateOperator(ReportingGateMixin, AisecGateOperator):
    """Fail the run when current data drifted from the reference beyond the policy's thresholds.

    Per feature: PSI (numeric features binned on reference quantiles; categorical features by
    category) and the two-sample KS test for numeric features; categories the reference never
    had are findings. Writes a self-contained HTML report (reference vs current histograms) and
    references it from the gate result.

    Args:
        reference: Reference table (templated): local path or ``s3://bucket/key``.
        current: Current table (templated).
        features: Features to compare (templated), list or comma-separated; added to the policy's
            (default: every reference column not excluded by the policy).
        report_location: Where to write the report (templated): a ``.html`` path or ``s3://`` key,
            or a directory / ``s3://`` prefix. Default: ``<evidence location>/reports``.
        aws_conn_id: Airflow AWS connection for ``s3://`` tables and an explicit ``s3://`` report location.
        policy: Policy file (see :class:`~airflow_aisec.operators.base.AisecGateOperator`).
        evidence_location: Audit trail location.
        evidence_aws_conn_id: Connection for an ``s3://`` audit trail (and a report stored next to it).
    """

    gate = "drift"
    template_fields: Sequence[str] = (
        *AisecGateOperator.template_fields,
        "reference",
        "current",
        "features",
        "report_location",
    )
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        reference: str,
        current: str,
        features: Sequence[str] | str | None = None,
        report_location: str | None = None,
        aws_conn_id: str = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reference = reference
        self.current = current
        self.features = features
        self.report_location = report_location
        self.aws_conn_id = aws_conn_id

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        from airflow_aisec.core.gates.drift import check_drift

        section = loaded.section(self.gate)
        report, meta, report_client = self.report_target(loaded, context)
        data_client = s3_client_for(self.aws_conn_id, self.reference, self.current)
        self.log.info("drift gate: reference=%s current=%s report=%s", self.reference, self.current, report)
        return check_drift(
            section,  # type: ignore[arg-type]
            self.reference,
            self.current,
            features=self.features,
            report=report,
            report_meta=meta,
            s3_client=data_client,
            report_s3_client=report_client,
        )
