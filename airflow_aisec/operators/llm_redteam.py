"""Red-team gate: a bounded prompt-injection probe suite against a candidate model before it deploys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.operators.base import AisecGateOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import CheckOutcome


class LlmRedTeamGateOperator(AisecGateOperator):
    """Fail the run when a candidate model follows injected instructions or leaks its system prompt.

    Sends the probe suite of the ``llm_redteam`` policy section to an OpenAI-compatible
    ``/v1/chat/completions`` endpoint (or calls a ``module:function`` in the worker), with a fresh
    random canary in the system prompt. Requests, concurrency and time are bounded by the policy;
    replies are judged and dropped, only verdicts per probe reach the result.

    The endpoint token comes from an Airflow connection's password (``conn_id``; the connection's
    host also gives the endpoint when ``endpoint`` is not set) or from a Vault KV secret read through
    the Vault connection (``vault_secret_path``); it is registered with Airflow's secret masker the
    moment it is read.

    Args:
        endpoint: Base URL of the model API, ``.../chat/completions``, or ``module:function`` (templated).
        model: Model name sent with each request (templated; default: the policy's ``model``).
        conn_id: Airflow connection whose password is the token (and whose host/port give the endpoint).
        vault_secret_path: KV path of the token in Vault (read through ``vault_conn_id``).
        vault_mount: KV mount of ``vault_secret_path``.
        vault_key: Key of the token inside that secret.
        vault_conn_id: Airflow Vault connection.
        policy: Policy file (templated); see :class:`AisecGateOperator`.
        evidence_location: Audit trail location (templated).
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
    """

    gate = "llm_redteam"
    template_fields: Sequence[str] = (*AisecGateOperator.template_fields, "endpoint", "model")

    def __init__(self, *, endpoint: str | None = None, model: str | None = None, conn_id: str | None = None,
                 vault_secret_path: str | None = None, vault_mount: str = "secret", vault_key: str = "token",
                 vault_conn_id: str = "vault_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.model = model
        self.conn_id = conn_id
        self.vault_secret_path = vault_secret_path
        self.vault_mount = vault_mount
        self.vault_key = vault_key
        self.vault_conn_id = vault_conn_id

    def _endpoint_and_token(self) -> tuple[str, str | None]:
        from airflow.sdk.log import mask_secret

        from airflow_aisec.exceptions import ConfigurationError

        endpoint, token = self.endpoint, None
        if self.conn_id:
            from airflow.sdk import BaseHook
            from airflow.sdk.exceptions import AirflowNotFoundException

            try:
                conn = BaseHook.get_connection(self.conn_id)
            except AirflowNotFoundException:
                raise ConfigurationError(f"connection '{self.conn_id}' is not defined") from None
            token = conn.password or None
            if token:
                mask_secret(token)
            if not endpoint and conn.host:
                scheme = conn.schema if conn.schema in ("http", "https") else "https"
                endpoint = f"{scheme}://{conn.host}" + (f":{conn.port}" if conn.port else "")
        if self.vault_secret_path:
            from airflow_aisec.hooks.vault import get_vault_client

            secret = get_vault_client(self.vault_conn_id).kv_read(self.vault_mount, self.vault_secret_path,
                                                                  gate=self.gate)
            value = secret.data.get(self.vault_key)
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"Vault secret {self.vault_mount}/{self.vault_secret_path} has no "
                                         f"'{self.vault_key}' key")
            mask_secret(value)
            token = value
        if not endpoint:
            raise ConfigurationError("no model endpoint: set endpoint= or a connection with a host")
        return str(endpoint), token

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        from airflow_aisec.core.gates.llm_redteam import check_llm_redteam

        section = loaded.section(self.gate)
        endpoint, token = self._endpoint_and_token()
        outcome = check_llm_redteam(section, endpoint, model=self.model or None, token=token)  # type: ignore[arg-type]
        metrics = outcome.metrics
        self.log.info("llm_redteam: %s of %s probe(s) answered, success rate %s, canary leaks %s",
                      metrics.get("answered"), metrics.get("probes_selected"), metrics.get("success_rate"),
                      metrics.get("canary_leaks"))
        return outcome
