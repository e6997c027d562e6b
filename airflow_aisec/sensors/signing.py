"""Sensor that waits for a model's signature to appear, then verifies it as a gate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow_aisec.operators.base import AisecGateSensor, s3_client
from airflow_aisec.operators.signing import ModelVerifyMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import CheckOutcome


class ModelSignatureSensor(ModelVerifyMixin, AisecGateSensor):
    """Wait until a model's signature exists (local file or S3 object), then verify the model.

    Poking only checks that the signature exists; verification runs once, when it does, with the
    same rules as :class:`~airflow_aisec.operators.signing.ModelVerifyGateOperator` (a failed
    verification fails the task, it does not keep waiting). An unreachable S3 endpoint counts as
    "not there yet". Use ``mode="reschedule"`` for long waits.

    Args:
        model: Model directory or ``s3://bucket/prefix/`` (templated).
        signature: Signature location to wait for (templated); default ``<model>.sig``.
        public_key: PEM public key file or ``s3://`` object (templated).
        transit_key: Vault Transit key name (templated).
        transit_mount: Transit mount; default the one the policy names for the key.
        vault_conn_id: Airflow Vault connection used through ``VaultHook``.
        aws_conn_id: Airflow AWS connection used through ``S3Hook`` for ``s3://`` locations.
        policy: Policy file (templated).
        evidence_location: Audit trail location (templated).
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
        **kwargs: ``BaseSensorOperator`` arguments (``poke_interval``, ``timeout``, ``mode``...).
    """

    gate = "signing"
    template_fields: Sequence[str] = (
        *AisecGateSensor.template_fields, *ModelVerifyMixin.verify_template_fields,
    )
    __init__ = ModelVerifyMixin._init_verify  # see AisecGateOperator

    def _signature_uri(self) -> str:
        from airflow_aisec.core.gates.signing import default_signature_uri

        return self.signature or default_signature_uri(self.model)

    def is_ready(self, context: Context) -> bool:
        import os

        from airflow_aisec.core.io.storage import is_s3_uri, parse_s3_uri, translate_s3_errors
        from airflow_aisec.exceptions import InputDataError

        uri = self._signature_uri()
        if not is_s3_uri(uri):
            ready = os.path.isfile(uri)
        else:
            loc = parse_s3_uri(uri)
            try:
                with translate_s3_errors(uri):
                    s3_client(self.aws_conn_id).head_object(Bucket=loc.bucket, Key=loc.key)
                ready = True
            except InputDataError:  # not found (yet)
                ready = False
        self.log.info("signature %s %s", uri, "found" if ready else "not found yet")
        return ready

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        return self.verify(loaded, signature=self._signature_uri())
