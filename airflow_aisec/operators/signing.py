"""Model signing operators: sign after training, verify before deploy.

Both are gates of the ``signing`` policy section: the signing operator takes its hashing
parameters from the policy (so verification uses the same ones) and records what it signed in
the audit trail; the verification gate fails the run on a tampered model, an untrusted key, a
malformed or missing signature. Signing keys are a Vault Transit key (the private key never
leaves Vault) or a local PEM key.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
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
        datasets: Local files the model was trained on (templated); recorded in the provenance with
            their latest source and PII records in the central audit trail.
        training_params: Training parameters (JSON object, templated) recorded in the provenance.
            They are signed and kept: never put a secret here.
        write_provenance: Write the signed provenance statement (in-toto, SLSA provenance v1 in a
            DSSE envelope, same key) next to the signature: model digest, datasets, DAG file sha256
            and git commit, run id, training parameters.
        provenance: Where to write it (templated); default ``<model>.provenance.json`` next to the signature.
        require_vetted_datasets: Refuse to sign (``signing.provenance_dataset``) when a dataset's latest
            source or PII record is missing or not passing. Default: record it and let the deploy
            gate (``require_provenance``) decide.
        vault_conn_id: Airflow Vault connection used through ``VaultHook``.
        aws_conn_id: Airflow AWS connection used through ``S3Hook`` for ``s3://`` locations.
        policy: Policy file (templated); see :class:`AisecGateOperator`.
        evidence_location: Audit trail location (templated).
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
    """

    gate = "signing"
    template_fields: Sequence[str] = (
        *AisecGateOperator.template_fields, "model", "signature", "transit_key", "transit_mount", "private_key",
        "datasets", "training_params", "provenance",
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
        datasets: Sequence[str] | None = None,
        training_params: dict[str, Any] | None = None,
        write_provenance: bool = True,
        provenance: str | None = None,
        require_vetted_datasets: bool = False,
        vault_conn_id: str = "vault_default",
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (transit_key is None) == (private_key is None):
            raise ValueError("ModelSignOperator needs exactly one of transit_key or private_key")
        if (datasets or training_params) and not write_provenance:
            raise ValueError("datasets and training_params are recorded in the provenance: keep write_provenance")
        self.datasets = list(datasets or [])
        self.training_params = training_params or {}
        self.write_provenance = write_provenance
        self.provenance = provenance
        self.require_vetted_datasets = require_vetted_datasets
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
            provenance=self._provenance_request(context) if self.write_provenance else None,
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
                                     "transit_key_version", "signature_version_id", "provenance",
                                     "provenance_sha256") if k in m}
        context["ti"].xcom_push(key=SIGNATURE_XCOM_KEY, value=summary)
        self.log.info("signed %s files: digest=%s key=%s signature=%s", m.get("files"), m.get("model_digest"),
                      m.get("key_fingerprint"), m.get("signature"))
        return outcome

    def _provenance_request(self, context: Context) -> Any:
        from airflow_aisec.core.gates.signing import (
            ProvenanceRequest,
            check_training_parameters,
            dag_file_info,
            dataset_ref,
        )

        dag = context.get("dag")
        datasets = [self.datasets] if isinstance(self.datasets, str) else list(self.datasets)
        return ProvenanceRequest(
            datasets=[dataset_ref(d) for d in datasets],
            evidence=self.evidence_store() if datasets else None,
            require_vetted=self.require_vetted_datasets,
            dag=dag_file_info(self.dag_id, getattr(dag, "fileloc", None)),
            run_id=context.get("run_id"),
            task_id=self.task_id,
            training_parameters=check_training_parameters(self.training_params),
            location=self.provenance or None,
        )


class ModelVerifyMixin:
    """Arguments and verification call of :class:`ModelVerifyGateOperator` and the signature sensor."""

    verify_template_fields: ClassVar[tuple[str, ...]] = (
        "model", "signature", "public_key", "transit_key", "transit_mount", "provenance",
    )

    def _init_verify(
        self,
        *,
        model: str,
        signature: str | None = None,
        public_key: str | None = None,
        transit_key: str | None = None,
        transit_mount: str | None = None,
        require_provenance: bool = False,
        provenance: str | None = None,
        vault_conn_id: str = "vault_default",
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.require_provenance = require_provenance
        self.provenance = provenance
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
        required = self.require_provenance or loaded.section("signing").require_provenance
        return verify_model(
            loaded.section("signing"),
            self.model,
            require_provenance=self.require_provenance,
            provenance=self.provenance or None,
            evidence=self._central_trail() if required else None,
            signature=signature,
            public_key=self.public_key or None,
            transit_key=self.transit_key or None,
            transit_mount=self.transit_mount or None,
            vault=get_vault_client(self.vault_conn_id) if self.transit_key else None,
            s3_client=s3_client_for(self.aws_conn_id, self.model, signature, self.public_key),
        )

    def _central_trail(self) -> Any:
        from airflow_aisec import settings
        from airflow_aisec.operators.base import open_evidence

        return open_evidence(settings.evidence_location())


def with_verify_arguments(init: Callable[..., None]) -> Callable[..., None]:
    """Show ``init(self, *, <its own arguments>, **kwargs)``, which hands ``kwargs`` to
    :meth:`ModelVerifyMixin._init_verify`, with the verify arguments in its signature: Airflow reads the
    signature for ``default_args``, required arguments and ``partial()`` (the arguments are listed once)."""
    own = inspect.signature(init).parameters
    verify = inspect.signature(ModelVerifyMixin._init_verify).parameters
    params = [own["self"], *(p for n, p in verify.items() if n not in ("self", "kwargs") and n not in own),
              *(p for n, p in own.items() if n not in ("self", "kwargs")), verify["kwargs"]]
    init.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    return init


class ModelVerifyGateOperator(ModelVerifyMixin, AisecGateOperator):
    """Verification gate: fail the run unless the model matches a signature by a trusted key.

    The caller names the key (``public_key`` or ``transit_key``) and the policy's
    ``signing.trusted_keys`` must trust it. A tampered model (``signing.tampered``), an untrusted
    key (``signing.untrusted_key``), a malformed bundle (``signing.malformed``) and a missing
    signature (``signing.unsigned``, unless ``signing.allow_unsigned``) fail the task. With
    ``require_provenance`` (or ``signing.require_provenance``) the signed provenance must be there
    (``signing.provenance_missing``), signed by the model's key (``signing.provenance_signature``),
    about this model (``signing.provenance_digest``), and every dataset it names must have passing
    latest source and PII records in the central audit trail (``signing.provenance_dataset``).

    Args:
        model: Model directory or ``s3://bucket/prefix/`` (templated).
        signature: Signature location (templated); default ``<model>.sig`` next to the model.
        public_key: PEM public key file or ``s3://`` object (templated).
        transit_key: Vault Transit key name whose public keys verify the signature (templated).
        transit_mount: Transit mount; default the one the policy names for the key.
        require_provenance: Also require the signed provenance (see above).
        provenance: Provenance location (templated); default ``<model>.provenance.json`` next to the signature.
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
