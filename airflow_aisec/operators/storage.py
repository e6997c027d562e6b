"""Storage posture gate: the S3 bucket (and prefix) that holds training data or models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.operators.base import AisecGateOperator, s3_client

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import CheckOutcome


class StoragePostureGateOperator(AisecGateOperator):
    """Fail the run when the bucket's posture falls short of the ``storage`` policy.

    Default encryption (SSE-KMS with an allowed key when the policy says so), all four
    public-access-block settings, a bucket policy denying ``aws:SecureTransport = false`` (judged from the
    document), versioning, no public ACL grant or public policy statement, and every object under the
    prefix encrypted (``HeadObject`` each, at most ``max_objects`` per run).

    Args:
        uri: ``s3://bucket`` or ``s3://bucket/prefix`` (templated).
        aws_conn_id: Airflow AWS connection, used through ``S3Hook``.
        policy: Policy file (templated); see :class:`AisecGateOperator`.
        evidence_location: Audit trail location (templated).
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
    """

    gate = "storage"
    template_fields: Sequence[str] = (*AisecGateOperator.template_fields, "uri")
    ui_color = "#e8f5e9"

    def __init__(self, *, uri: str, aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.uri = uri
        self.aws_conn_id = aws_conn_id

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        from airflow_aisec.core.gates.storage import check_storage

        self.log.info("storage posture gate: %s", self.uri)
        outcome = check_storage(loaded.section(self.gate), str(self.uri),  # type: ignore[arg-type]
                                s3_client=s3_client(self.aws_conn_id))
        self.log.info("storage posture gate: %s object(s) checked", outcome.metrics.get("objects_checked", 0))
        return outcome
