"""Sensor that waits for a model's signature to appear, then verifies it as a gate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_aisec.exceptions import ServiceUnavailableError
from airflow_aisec.operators.base import AisecGateSensor, s3_client
from airflow_aisec.operators.signing import ModelVerifyMixin, with_verify_arguments

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import CheckOutcome


class ModelSignatureSensor(ModelVerifyMixin, AisecGateSensor):
    """Wait until a model's signature exists (local file or S3 object), then verify the model.

    Poking only checks that the signature exists; verification runs once, when it does, with the
    same rules as :class:`~airflow_aisec.operators.signing.ModelVerifyGateOperator` (a failed
    verification fails the task, it does not keep waiting). An unreachable S3 endpoint counts as
    "not there yet". For long waits use ``deferrable=True`` (no worker slot is held: the triggerer
    polls with :class:`~airflow_aisec.triggers.signing.ModelSignatureTrigger`) or ``mode="reschedule"``.

    Deferred, the trigger only waits. When it fires, :meth:`execute_complete` checks again on the
    worker that the signature exists and verifies it there: the trigger's event never decides a verdict.

    Args:
        model: Model directory or ``s3://bucket/prefix/`` (templated).
        signature: Signature location to wait for (templated); default ``<model>.sig``.
        public_key: PEM public key file or ``s3://`` object (templated).
        transit_key: Vault Transit key name (templated).
        transit_mount: Transit mount; default the one the policy names for the key.
        require_provenance: Also require the signed provenance (as the verification operator).
        provenance: Provenance location (templated); default ``<model>.provenance.json`` next to the signature.
        vault_conn_id: Airflow Vault connection used through ``VaultHook``.
        aws_conn_id: Airflow AWS connection used through ``S3Hook`` for ``s3://`` locations.
        policy: Policy file (templated).
        evidence_location: Audit trail location (templated).
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
        deferrable: Wait in the triggerer instead of a worker slot; default
            ``[operators] default_deferrable``.
        **kwargs: ``BaseSensorOperator`` arguments (``poke_interval``, ``timeout``, ``mode``...).
    """

    gate = "signing"
    template_fields: Sequence[str] = (
        *AisecGateSensor.template_fields, *ModelVerifyMixin.verify_template_fields,
    )

    # Named here so that BaseOperatorMeta wraps it (see AisecGateOperator); the verify arguments are
    # ModelVerifyMixin's, shown in the signature Airflow reads.
    @with_verify_arguments
    def __init__(self, *, deferrable: bool | None = None, **kwargs: Any) -> None:
        self._init_verify(**kwargs)
        if deferrable is None:  # read when the DAG is parsed, like Airflow's own deferrable sensors
            deferrable = conf.getboolean("operators", "default_deferrable", fallback=False)
        self.deferrable = bool(deferrable)

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

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # One synchronous poke first: a signature already there is verified without deferring.
        if self.poke(context):
            return None
        from datetime import timedelta

        from airflow_aisec.triggers.signing import ModelSignatureTrigger

        self.defer(
            trigger=ModelSignatureTrigger(signature=self._signature_uri(), aws_conn_id=self.aws_conn_id,
                                          poke_interval=self.poke_interval),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        """Resume after the trigger fired: check again and verify here, whatever the event says."""
        status = (event or {}).get("status")
        if status != "found":
            message = (event or {}).get("message") or "no event"
            raise AirflowFailException(f"signing: waiting for the signature stopped: {message}")
        try:
            ready = self.is_ready(context)
        except ServiceUnavailableError as exc:
            raise AirflowException(f"signing: {exc}") from None  # retryable: the task defers again
        if not ready:
            raise AirflowFailException(
                f"signing: the trigger reported {self._signature_uri()} but it is not there on the worker"
            )
        self.run_gate(context, lambda loaded: self.check(loaded, context))
