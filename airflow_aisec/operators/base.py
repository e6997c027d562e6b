"""Base classes for gate operators and sensors: the thin Airflow layer over the core.

A gate operator loads its policy at run time (never in ``__init__``: parsing a
DAG must not touch files or services), runs one core check, pushes the result
to XCom, appends it to the evidence store and only then fails the task on an
enforce-level violation, so the UI can show why.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_aisec.constants import EVIDENCE_XCOM_KEY, RESULT_XCOM_KEY
from airflow_aisec.exceptions import AisecError, ServiceUnavailableError
from airflow_aisec.operators.links import AisecGateResultLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.evidence import EvidenceRef, EvidenceStore
    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import AirflowRef, CheckOutcome, GateResult

# The core (pydantic models, YAML) is imported inside the methods that run at task time:
# DAG files import operator modules on every parse, and that must stay cheap.


def _conf(key: str, fallback: str = "") -> str:
    from airflow.sdk import conf

    return conf.get("aisec", key, fallback=fallback) or fallback


def default_evidence_location() -> str:
    """``[aisec] evidence_location``, else ``$AIRFLOW_HOME/aisec/evidence``."""
    configured = _conf("evidence_location")
    if configured:
        return configured
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return os.path.join(home, "aisec", "evidence")


def s3_client(aws_conn_id: str | None) -> Any:
    """A boto3 S3 client from an Airflow AWS connection, through ``S3Hook`` (call at run time only)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=aws_conn_id).get_conn()


def s3_client_for(aws_conn_id: str | None, *uris: Any) -> Any:
    """:func:`s3_client` if any of ``uris`` is ``s3://``, else None: local data needs no connection."""
    return s3_client(aws_conn_id) if any(str(u or "").startswith("s3://") for u in uris) else None


def evidence_s3_client(aws_conn_id: str | None) -> Any:
    """S3 client for the audit trail (``aws_conn_id``, else ``[aisec] evidence_aws_conn_id``)."""
    return s3_client(aws_conn_id or _conf("evidence_aws_conn_id", "aws_default"))


def open_evidence(location: str, *, aws_conn_id: str | None = None) -> EvidenceStore:
    """The audit trail at ``location``, a directory or ``s3://bucket/prefix``."""
    from airflow_aisec.core.evidence import open_evidence_store
    from airflow_aisec.core.io.storage import is_s3_uri

    client = evidence_s3_client(aws_conn_id) if is_s3_uri(location) else None
    return open_evidence_store(location, s3_client=client)


def airflow_ref(context: Context) -> AirflowRef:
    from airflow_aisec.core.result import AirflowRef

    ti = context["ti"]
    map_index = getattr(ti, "map_index", None)
    return AirflowRef(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        try_number=getattr(ti, "try_number", None),
        map_index=map_index if isinstance(map_index, int) and map_index >= 0 else None,
    )


class GateMixin:
    """Shared gate execution for operators and sensors.

    Subclasses set :attr:`gate` (also the policy section name) and implement
    :meth:`check`.
    """

    gate: ClassVar[str] = ""
    # Airflow class attributes of every gate task, operator or sensor; subclasses extend template_fields.
    template_fields: Sequence[str] = ("policy", "evidence_location")
    operator_extra_links = (AisecGateResultLink(),)
    ui_color = "#f6d7d7"

    policy: str | None
    evidence_location: str | None
    evidence_aws_conn_id: str | None

    def _init_gate(
        self,
        *,
        policy: str | None = None,
        evidence_location: str | None = None,
        evidence_aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Store the gate arguments (no I/O); the rest go to the next ``__init__`` in the MRO."""
        super().__init__(**kwargs)
        self.policy = policy
        self.evidence_location = evidence_location
        self.evidence_aws_conn_id = evidence_aws_conn_id

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        """Run the core check. Must not swallow errors: raise, and the gate fails closed."""
        raise NotImplementedError

    # --- helpers ---------------------------------------------------------------------------
    def resolve_policy_path(self) -> str:
        return self.policy or _conf("default_policy")

    def _evidence_s3_client(self) -> Any:
        return evidence_s3_client(self.evidence_aws_conn_id)

    def evidence_store(self) -> EvidenceStore:
        """The configured audit trail (``evidence_location``, else ``[aisec] evidence_location``)."""
        location = self.evidence_location or default_evidence_location()
        return open_evidence(location, aws_conn_id=self.evidence_aws_conn_id)

    def record_evidence(self, result: GateResult, *, kind: str = "gate_result") -> EvidenceRef:
        """Append a result to the configured audit trail (retryable failure if unreachable)."""
        return self.evidence_store().append(result.to_dict(), kind=kind)

    def _log_exception(self, exc: BaseException) -> None:
        # Library messages may quote data values: log the type and the frames, not the message.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        self.log.error("gate %s raised %s; traceback (message withheld):\n%s", self.gate, type(exc).__name__, frames)

    def run_gate(self, context: Context, check: Callable[[LoadedPolicy], CheckOutcome]) -> GateResult:
        """Load the policy, run ``check``, publish the result and enforce the verdict."""
        from airflow_aisec.core.gate import run_gate
        from airflow_aisec.core.policy import load_policy

        run = run_gate(self.gate, lambda: load_policy(self.resolve_policy_path()), check,
                       airflow=airflow_ref(context))
        result = run.result
        context["ti"].xcom_push(key=RESULT_XCOM_KEY, value=result.to_dict())
        try:
            evidence = self.record_evidence(result)
        except AisecError as exc:
            raise AirflowException(f"{self.gate}: could not record evidence: {exc}") from None
        context["ti"].xcom_push(key=EVIDENCE_XCOM_KEY, value=evidence.to_dict())
        self.log.info(
            "gate=%s verdict=%s policy=%s sha256=%s findings=%d evidence=%s#%s",
            self.gate,
            result.verdict,
            result.policy.name if result.policy else "-",
            result.policy.sha256 if result.policy else "-",
            len(result.findings),
            evidence.location,
            evidence.seq,
        )
        self.enforce(result, run.exception)
        return result

    def enforce(self, result: GateResult, exc: BaseException | None) -> None:
        """Turn a verdict into the task's outcome."""
        from airflow_aisec.core.result import Verdict

        if result.verdict == Verdict.ERROR.value:
            if exc is not None and not isinstance(exc, AisecError):
                self._log_exception(exc)
            if isinstance(exc, ServiceUnavailableError):
                raise AirflowException(result.summary())  # retryable, never a pass
            raise AirflowFailException(result.summary())
        for finding in result.findings:
            log = self.log.error if finding.enforcement == "enforce" and not finding.waived else self.log.warning
            log(
                "[%s] %s (enforcement=%s%s)",
                finding.rule,
                finding.message,
                finding.enforcement,
                ", waived" if finding.waived else "",
            )
        if result.verdict == Verdict.FAIL.value:
            raise AirflowFailException(result.summary())
        if result.verdict == Verdict.WARN.value:
            self.log.warning("%s", result.summary())


class AisecGateOperator(GateMixin, BaseOperator):
    """Base class of every gate operator.

    Args:
        policy: Path of the policy file (templated). Defaults to ``[aisec] default_policy``;
            with neither, the gate refuses to run.
        evidence_location: Audit trail location (templated): a directory or ``s3://bucket/prefix``.
            Defaults to ``[aisec] evidence_location``.
        evidence_aws_conn_id: Airflow connection for an ``s3://`` evidence location.
    """

    # Airflow's BaseOperatorMeta wraps only an __init__ the class names itself, and reads that
    # signature for default_args and partial()/expand(): so each gate base names the shared one.
    __init__ = GateMixin._init_gate

    def execute(self, context: Context) -> str:
        result = self.run_gate(context, lambda loaded: self.check(loaded, context))
        return str(result.verdict)


class AisecGateSensor(GateMixin, BaseSensorOperator):
    """Base class of gates that wait for something (a signature, a dataset) before checking it.

    Subclasses implement :meth:`is_ready` (cheap, no verdict) and :meth:`check`.
    """

    __init__ = GateMixin._init_gate  # see AisecGateOperator

    def is_ready(self, context: Context) -> bool:
        raise NotImplementedError

    def poke(self, context: Context) -> bool:
        try:
            ready = self.is_ready(context)
        except ServiceUnavailableError as exc:
            self.log.warning("%s: not reachable yet: %s", self.gate, exc)
            return False
        if not ready:
            return False
        self.run_gate(context, lambda loaded: self.check(loaded, context))
        return True
