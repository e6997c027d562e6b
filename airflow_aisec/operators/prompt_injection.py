"""Prompt-injection corpus gate: training, RAG and prompt data scanned before a model or an index sees it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.operators.base import AisecGateOperator, s3_client_for

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import CheckOutcome


class PromptInjectionScanOperator(AisecGateOperator):
    """Fail the run when data carries prompt-injection payloads beyond the policy's thresholds.

    Reads CSV / Parquet tables (text columns), JSONL (string fields by path), ``.txt`` / ``.md`` /
    ``.html`` documents, or a directory / ``s3://`` prefix of them, streamed. Rules and thresholds come
    from the ``prompt_injection`` policy section; findings name the rule, the column / field /
    documents and positions, never the text.

    Args:
        data: File, directory or ``s3://`` URI (templated).
        columns: Table columns to scan (templated; default: the policy's ``columns``, else every text column).
        aws_conn_id: Airflow AWS connection used through ``S3Hook`` for ``s3://`` data.
        policy: Policy file (templated); see :class:`AisecGateOperator`.
        evidence_location: Audit trail location (templated).
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
    """

    gate = "prompt_injection"
    template_fields: Sequence[str] = (*AisecGateOperator.template_fields, "data", "columns")

    def __init__(self, *, data: str, columns: Sequence[str] | None = None,
                 aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.columns = columns
        self.aws_conn_id = aws_conn_id

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        from airflow_aisec.core.gates.prompt_injection import check_prompt_injection

        client = s3_client_for(self.aws_conn_id, self.data)
        self.log.info("scanning %s for prompt injection", self.data)
        outcome = check_prompt_injection(
            loaded.section(self.gate), str(self.data),  # type: ignore[arg-type]
            columns=list(self.columns) if self.columns else None, s3_client=client,
        )
        metrics = outcome.metrics
        self.log.info("prompt_injection: %s cell(s), %s byte(s) scanned, %s with hits",
                      metrics.get("cells_scanned"), metrics.get("bytes_scanned"), metrics.get("cells_with_hits"))
        return outcome
