"""Endpoint security gate: probe a model serving endpoint before it is promoted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec.operators.base import AisecGateOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import CheckOutcome


class EndpointSecurityGateOperator(AisecGateOperator):
    """Fail the run when a serving endpoint does not show the controls the ``endpoint`` policy asks for.

    TLS (version, chain against the CA bundle, host name), 401/403 without credentials and with a wrong
    token on every listed path and every OpenAPI operation declaring security, the health path with the
    valid token, no artefact / internal path served, no wildcard CORS with credentials, a 429 within a
    burst, 413 for an oversized body. A bounded number of requests, to that host only.

    The valid token comes from an Airflow connection's password (``token_conn_id``) or a Vault KV secret
    (``vault_secret_path``, read through ``vault_conn_id``); it is registered with Airflow's secret masker
    the moment it is read, sent only in the policy's auth header, and never reaches a finding or XCom.

    Args:
        url: The endpoint's base URL (templated), e.g. ``https://models.internal/churn``.
        token_conn_id: Airflow connection whose password is the token.
        vault_secret_path: KV path of the token in Vault.
        vault_mount: KV mount of ``vault_secret_path``.
        vault_key: Key of the token inside that secret.
        vault_kv_version: KV engine version of the mount.
        vault_conn_id: Airflow Vault connection.
        ca_bundle: PEM file of the CAs trusted for the endpoint (templated; overrides the policy's).
        policy: Policy file (templated); see :class:`AisecGateOperator`.
        evidence_location: Audit trail location (templated).
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
    """

    gate = "endpoint"
    template_fields: Sequence[str] = (*AisecGateOperator.template_fields, "url", "ca_bundle")
    ui_color = "#fff3e0"

    def __init__(self, *, url: str, token_conn_id: str | None = None, vault_secret_path: str | None = None,
                 vault_mount: str = "secret", vault_key: str = "token", vault_kv_version: int = 2,
                 vault_conn_id: str = "vault_default", ca_bundle: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = url
        self.token_conn_id = token_conn_id
        self.vault_secret_path = vault_secret_path
        self.vault_mount = vault_mount
        self.vault_key = vault_key
        self.vault_kv_version = vault_kv_version
        self.vault_conn_id = vault_conn_id
        self.ca_bundle = ca_bundle

    def read_token(self) -> str | None:
        """The valid token (masked as soon as it is read), or None when no source is configured."""
        from airflow.sdk.log import mask_secret

        from airflow_aisec.exceptions import ConfigurationError

        if self.token_conn_id and self.vault_secret_path:
            raise ConfigurationError("give the endpoint token through token_conn_id or vault_secret_path, not both")
        if self.token_conn_id:
            from airflow.sdk import BaseHook
            from airflow.sdk.exceptions import AirflowNotFoundException

            try:
                conn = BaseHook.get_connection(self.token_conn_id)
            except AirflowNotFoundException:
                raise ConfigurationError(f"connection '{self.token_conn_id}' is not defined") from None
            if not conn.password:
                raise ConfigurationError(f"connection '{self.token_conn_id}' has no password (the endpoint token)")
            mask_secret(conn.password)
            return conn.password
        if self.vault_secret_path:
            from airflow_aisec.hooks.vault import get_vault_client

            secret = get_vault_client(self.vault_conn_id).kv_read(
                self.vault_mount, self.vault_secret_path, kv_version=self.vault_kv_version, gate=self.gate)
            value = secret.data.get(self.vault_key)
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"Vault secret {self.vault_mount}/{self.vault_secret_path} has no "
                                         f"'{self.vault_key}' key")
            mask_secret(value)
            return value
        return None

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        from airflow_aisec.core.gates.endpoint import check_endpoint, policy_base_dir

        token = self.read_token()
        self.log.info("endpoint gate: %s (token: %s)", self.url, "given" if token else "none")
        outcome = check_endpoint(loaded.section(self.gate), str(self.url), token=token,  # type: ignore[arg-type]
                                 ca_bundle=self.ca_bundle or None, base_dir=policy_base_dir(loaded.source))
        self.log.info("endpoint gate: %s request(s) sent, TLS %s", outcome.metrics.get("requests_sent"),
                      outcome.metrics.get("tls_version") or "-")
        return outcome
