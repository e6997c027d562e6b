"""Source validation gate operator: fail the run when a dataset is not what the policy approved."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.operators.base import AisecGateOperator, s3_client

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import CheckOutcome


class SourceValidationOperator(AisecGateOperator):
    """Validate datasets (CSV / Parquet, local or ``s3://``) against the policy's ``source`` section.

    Checks origin allow-list, pinned content (sha256, S3 VersionId / ETag), freshness, row count,
    schema, Great Expectations expectations and poisoning signals against a reference dataset.
    The task fails on an enforce-level violation and on any error (fail closed); an unreachable S3
    endpoint is a retryable failure.

    Args:
        data: Dataset URI, or a list of them (templated).
        reference: Reference dataset for the poisoning signals (templated); overrides
            ``source.poisoning.reference``.
        aws_conn_id: Airflow AWS connection used (through ``S3Hook``) for ``s3://`` locations.
        policy: Policy file (templated); see :class:`AisecGateOperator`.
        evidence_location: Audit trail location (templated).
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
    """

    gate = "source"
    template_fields: Sequence[str] = (*AisecGateOperator.template_fields, "data", "reference")

    def __init__(
        self,
        *,
        data: str | Sequence[str],
        reference: str | None = None,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.reference = reference
        self.aws_conn_id = aws_conn_id

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        from airflow_aisec.core.gates.source import check_sources, policy_dir

        data = [self.data] if isinstance(self.data, str) else list(self.data or [])
        self.log.info("source gate: %d dataset(s), reference=%s", len(data), "yes" if self.reference else "no")
        # The S3 client is created only if an s3:// location is actually read.
        return check_sources(loaded.section("source"), data, reference=self.reference or None,
                             base_dir=policy_dir(loaded.source),
                             s3_client=functools.partial(s3_client, self.aws_conn_id))
