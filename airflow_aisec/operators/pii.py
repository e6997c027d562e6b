"""PII gate and redaction operators: classify a table's columns, and write a copy without the PII.

* :class:`PiiGateOperator` (gate ``pii``): fails the run when a column of the table carries an
  entity type (e-mail, phone, SSN, card, IBAN, IP, passport, bank account, URL; PERSON / LOCATION
  with a configured NLP model) that the dataset's classification does not allow. A dataset is
  ``public`` unless declared otherwise (``classification=`` or the policy's
  ``pii.default_classification``).
* :class:`PiiRedactOperator` (gate ``pii``): writes a copy with those entities masked, dropped or
  replaced by a keyed HMAC (key from Vault through ``VaultHook``), never touching the input. The
  copy is re-scanned and published only when it passes; the task fails otherwise.

Findings and XCom carry column names, entity types, counts, shares and row positions, never values.

Example::

    scan = PiiGateOperator(task_id="pii_gate", data="s3://raw/customers.parquet",
                           classification="internal", policy="/opt/airflow/policies/strict.yaml")
    redact = PiiRedactOperator(task_id="redact", data="s3://raw/customers.parquet",
                               output_uri="s3://clean/customers.parquet", policy="/opt/airflow/policies/strict.yaml")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.operators.base import AisecGateOperator, s3_client_for

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.policy.sections.pii import PiiPolicy
    from airflow_aisec.core.result import CheckOutcome


class PiiGateOperator(AisecGateOperator):
    """Classify the columns of a CSV / Parquet table (local or ``s3://``) and enforce the ``pii`` policy.

    Args:
        data: Table URI (templated).
        classification: Declared level of the dataset, ``public|internal|confidential|restricted``
            (templated); defaults to the policy's ``pii.default_classification``.
        data_format: ``csv`` or ``parquet`` when the extension does not tell.
        aws_conn_id: Airflow AWS connection used (through ``S3Hook``) for ``s3://`` data.
        policy: Policy file (templated); see :class:`AisecGateOperator`.
        evidence_location: Audit trail location (templated).
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
    """

    gate = "pii"
    template_fields: Sequence[str] = (*AisecGateOperator.template_fields, "data", "classification", "data_format")

    def __init__(
        self,
        *,
        data: str,
        classification: str | None = None,
        data_format: str | None = None,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.classification = classification
        self.data_format = data_format
        self.aws_conn_id = aws_conn_id

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        from airflow_aisec.core.gates.pii import check_pii

        section = loaded.section("pii")
        self.log.info("pii gate: scanning %s (classification: %s)", self.data,
                      self.classification or "policy default")
        client = s3_client_for(self.aws_conn_id, self.data)
        outcome = check_pii(section, self.data, classification=self.classification or None, s3_client=client,
                            fmt=self.data_format or None)
        scan = outcome.metrics.get("scan", {})
        self.log.info("pii gate: %s scan of %s/%s rows, %s cells in %ss; PII columns: %s",
                      scan.get("mode"), scan.get("rows_scanned"), scan.get("rows_total"),
                      outcome.metrics.get("cells_scanned"), outcome.metrics.get("duration_s"),
                      outcome.metrics.get("pii_columns") or "none")
        return outcome


class PiiRedactOperator(AisecGateOperator):
    """Write a redacted copy of a table; the copy must pass the ``pii`` gate or it is not published.

    Cells carrying an entity the output's classification does not allow are masked, dropped or
    replaced by a keyed hash (``pii.redaction.method``). With ``hash`` and
    ``pii.redaction.key.vault_path`` the HMAC key is read from Vault through ``VaultHook`` and
    masked in logs at once.

    Args:
        data: Input table URI (templated); never modified.
        output_uri: Output table URI (templated); must differ from ``data``. (``output`` is taken by
            Airflow: it is every operator's XComArg.)
        classification: Level the output must pass (templated); defaults to
            ``pii.redaction.classification``, then ``pii.default_classification``.
        data_format: Input format when the extension does not tell.
        output_format: Output format when the extension does not tell.
        aws_conn_id: Airflow AWS connection for ``s3://`` input or output.
        vault_conn_id: Airflow Vault connection holding the HMAC key.
        policy: Policy file (templated); see :class:`AisecGateOperator`.
        evidence_location: Audit trail location (templated).
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
    """

    gate = "pii"
    template_fields: Sequence[str] = (
        *AisecGateOperator.template_fields, "data", "output_uri", "classification", "data_format", "output_format",
    )

    def __init__(
        self,
        *,
        data: str,
        output_uri: str,
        classification: str | None = None,
        data_format: str | None = None,
        output_format: str | None = None,
        aws_conn_id: str | None = "aws_default",
        vault_conn_id: str = "vault_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.output_uri = output_uri
        self.classification = classification
        self.data_format = data_format
        self.output_format = output_format
        self.aws_conn_id = aws_conn_id
        self.vault_conn_id = vault_conn_id

    def lineage_outputs(self) -> list[str]:
        return [str(self.output_uri)]  # the redacted copy is written, not checked as an input

    def _key_provider(self, section: PiiPolicy):
        """Reads the HMAC key (Vault through VaultHook, or the environment) and masks it immediately."""
        import os

        from airflow.sdk.log import mask_secret

        from airflow_aisec.exceptions import ConfigurationError

        settings = section.redaction
        if settings.method != "hash" or settings.key is None:
            return None
        key_settings = settings.key

        def provide() -> str:
            if key_settings.vault_path:
                from airflow_aisec.core.gates.pii.redact import read_vault_key
                from airflow_aisec.hooks.vault import get_vault_client

                value = read_vault_key(get_vault_client(self.vault_conn_id), key_settings)
            else:
                value = os.environ.get(key_settings.env or "", "")
                if not value:
                    raise ConfigurationError(f"environment variable {key_settings.env} holding the HMAC key is not set")
            mask_secret(value)
            return value

        return provide

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        from airflow_aisec.core.gates.pii import redact_table

        section = loaded.section("pii")
        self.log.info("pii redaction: %s -> %s", self.data, self.output_uri)
        client = s3_client_for(self.aws_conn_id, self.data, self.output_uri)
        outcome = redact_table(
            section, self.data, self.output_uri, classification=self.classification or None,
            key_provider=self._key_provider(section), s3_client=client,
            src_format=self.data_format or None, dst_format=self.output_format or None,
        )
        red = outcome.metrics.get("redaction", {})
        self.log.info("pii redaction: %s cell(s) %s in %s column(s); output %s", red.get("cells_redacted"),
                      red.get("method"), len(red.get("columns") or {}),
                      "published" if red.get("published") else "NOT published (re-scan found PII)")
        return outcome
