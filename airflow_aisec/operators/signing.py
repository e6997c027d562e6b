"""Model signing operators: sign after training, verify before deploy.

Both are gates of the ``signing`` policy section: the signing operator takes its hashing
parameters from the policy (so verification uses the same ones) and records what it signed in
the audit trail; the verification gate fails the run on a tampered model, an untrusted key, a
malformed or missing signature. Signing keys are a Vault Transit key (the private key never
leaves Vault) or a local PEM key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_aisec.operators.base import AisecGateOperator, s3_client_for

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import CheckOutcome

#: XCom key where :class:`ModelSignOperator` publishes what it signed (location, digest, key).
SIGNATURE_XCOM_KEY = "aisec_signature"


class ModelSignOperator(AisecGateOperator):
    """Sign a model directory (local or ``s3://bucket/prefix/``) in the OpenSSF model-signing format.

    Hashing parameters come from the policy's ``signing.hashing``. On S3 the object versions are
    pinned in the signed statement. The result (XCom ``aisec_result``) carries the model digest,
    the key fingerprint and the signature location; the same summary goes to XCom
    ``aisec_signature`` for downstream tasks.

    Args:
        model: Model directory or ``s3://bucket/prefix/`` (templated).
        signature: Signature location (templated); default ``<model>.sig`` next to the model.
        transit_key: Vault Transit key name (``ecdsa-p256``) to sign with (templated).
        transit_mount: Transit mount path.
        transit_key_version: Transit key version; default the latest.
        private_key: Local PEM EC private key file instead of Transit (templated; unencrypted).
        vault_conn_id: Airflow Vault connection used through ``VaultHook``.
        aws_conn_id: Airflow AWS connection used through ``S3Hook`` for ``s3://`` locations.
        policy: Policy file (templated); see :class:`AisecGateOperator`.
        evidence_location: Audit trail location (templated).
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
    """

    gate = "signing"
    template_fields: Sequence[str] = (
        *AisecGateOperator.template_fields, "model", "signature", "transit_key", "transit_mount", "private_key",
    )
    ui_color = "#d7e8f6"

    def __init__(
        self,
        *,
        model: str,
        signature: str | None = None,
        transit_key: str | None = None,
        transit_mount: str = "transit",
        transit_key_version: int | None = None,
        private_key: str | None = None,
        vault_conn_id: str = "vault_default",
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (transit_key is None) == (private_key is None):
            raise ValueError("ModelSignOperator needs exactly one of transit_key or private_key")
        self.model = model
        self.signature = signature
        self.transit_key = transit_key
        self.transit_mount = transit_mount
        self.transit_key_version = transit_key_version
        self.private_key = private_key
        self.vault_conn_id = vault_conn_id
        self.aws_conn_id = aws_conn_id

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        from airflow_aisec.core.gates.signing import sign_model
        from airflow_aisec.hooks.vault import get_vault_client

        self.log.info("signing model %s with %s", self.model,
                      f"Transit key {self.transit_key}" if self.transit_key else "a local PEM key")
        outcome = sign_model(
            loaded.section("signing"),
            self.model,
            signature=self.signature or None,
            private_key=self.private_key or None,
            transit_key=self.transit_key or None,
            transit_mount=self.transit_mount,
            transit_key_version=self.transit_key_version,
            vault=get_vault_client(self.vault_conn_id) if self.transit_key else None,
            s3_client=s3_client_for(self.aws_conn_id, self.model, self.signature),
        )
        m = outcome.metrics
        summary = {k: m[k] for k in ("signature", "model_digest", "key_fingerprint", "transit_key",
                                     "transit_key_version", "signature_version_id") if k in m}
        context["ti"].xcom_push(key=SIGNATURE_XCOM_KEY, value=summary)
        self.log.info("signed %s files: digest=%s key=%s signature=%s", m.get("files"), m.get("model_digest"),
                      m.get("key_fingerprint"), m.get("signature"))
        return outcome


class ModelVerifyMixin:
    """Arguments and verification call of :class:`ModelVerifyGateOperator` and the signature sensor."""

    verify_template_fields: ClassVar[tuple[str, ...]] = (
        "model", "signature", "public_key", "transit_key", "transit_mount",
    )

    def _init_verify(
        self,
        *,
        model: str,
        signature: str | None = None,
        public_key: str | None = None,
        transit_key: str | None = None,
        transit_mount: str | None = None,
        vault_conn_id: str = "vault_default",
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (public_key is None) == (transit_key is None):
            raise ValueError(f"{type(self).__name__} needs exactly one of public_key or transit_key")
        self.model = model
        self.signature = signature
        self.public_key = public_key
        self.transit_key = transit_key
        self.transit_mount = transit_mount
        self.vault_conn_id = vault_conn_id
        self.aws_conn_id = aws_conn_id

    def verify(self, loaded: LoadedPolicy, *, signature: str | None = None) -> CheckOutcome:
        """Verify the model against ``signature`` (default: the ``signature`` argument, else <model>.sig)."""
        from airflow_aisec.core.gates.signing import verify_model
        from airflow_aisec.hooks.vault import get_vault_client

        signature = signature or self.signature or None
        return verify_model(
            loaded.section("signing"),
            self.model,
            signature=signature,
            public_key=self.public_key or None,
            transit_key=self.transit_key or None,
            transit_mount=self.transit_mount or None,
            vault=get_vault_client(self.vault_conn_id) if self.transit_key else None,
            s3_client=s3_client_for(self.aws_conn_id, self.model, signature, self.public_key),
        )


class ModelVerifyGateOperator(ModelVerifyMixin, AisecGateOperator):
    """Verification gate: fail the run unless the model matches a signature by a trusted key.

    The caller names the key (``public_key`` or ``transit_key``) and the policy's
    ``signing.trusted_keys`` must trust it. A tampered model (``signing.tampered``), an untrusted
    key (``signing.untrusted_key``), a malformed bundle (``signing.malformed``) and a missing
    signature (``signing.unsigned``, unless ``signing.allow_unsigned``) fail the task.

    Args:
        model: Model directory or ``s3://bucket/prefix/`` (templated).
        signature: Signature location (templated); default ``<model>.sig`` next to the model.
        public_key: PEM public key file or ``s3://`` object (templated).
        transit_key: Vault Transit key name whose public keys verify the signature (templated).
        transit_mount: Transit mount; default the one the policy names for the key.
        vault_conn_id: Airflow Vault connection used through ``VaultHook``.
        aws_conn_id: Airflow AWS connection used through ``S3Hook`` for ``s3://`` locations.
        policy: Policy file (templated); see :class:`AisecGateOperator`.
        evidence_location: Audit trail location (templated).
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
    """

    gate = "signing"
    template_fields: Sequence[str] = (
        *AisecGateOperator.template_fields, *ModelVerifyMixin.verify_template_fields,
    )
    # Named here so that BaseOperatorMeta wraps it (see AisecGateOperator).
    __init__ = ModelVerifyMixin._init_verify

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        self.log.info("verifying model %s against %s", self.model,
                      f"Transit key {self.transit_key}" if self.transit_key else f"public key {self.public_key}")
        return self.verify(loaded)
