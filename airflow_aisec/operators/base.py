"""Base classes for gate operators and sensors: the thin Airflow layer over the core.

A gate operator loads its policy at run time (never in ``__init__``: parsing a
DAG must not touch files or services), runs one core check, pushes the result
to XCom, appends it to the evidence store and only then fails the task on an
enforce-level violation, so the UI can show why.

What the platform decides, not the DAG (settings as the process started, :mod:`airflow_aisec.settings`):

* the policy must resolve under ``[aisec] policy_roots``, and a policy chosen at run time (the
  ``policy`` argument was a Jinja template, an ``XComArg``, or changed after the constructor) is
  refused unless ``[aisec] allow_runtime_policy``: verdict ``error`` either way;
* ``[aisec] baseline_policy`` is the floor every gate is also evaluated under (:mod:`airflow_aisec.core.gate`);
* every result goes to the central trail, ``[aisec] evidence_location``; a gate's own
  ``evidence_location`` only receives a second copy (:func:`record_central`).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_aisec import settings
from airflow_aisec.constants import EVIDENCE_XCOM_KEY, RESULT_XCOM_KEY
from airflow_aisec.exceptions import AisecError, ServiceUnavailableError
from airflow_aisec.links import AisecGateResultLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.evidence import EvidenceRef, EvidenceStore
    from airflow_aisec.core.gate import PolicyLayers
    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import AirflowRef, CheckOutcome, GateResult

# The core (pydantic models, YAML) is imported inside the methods that run at task time:
# DAG files import operator modules on every parse, and that must stay cheap.


def s3_client(aws_conn_id: str | None) -> Any:
    """A boto3 S3 client from an Airflow AWS connection, through ``S3Hook`` (call at run time only)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=aws_conn_id).get_conn()


def s3_client_for(aws_conn_id: str | None, *uris: Any) -> Any:
    """:func:`s3_client` if any of ``uris`` is ``s3://``, else None: local data needs no connection."""
    from airflow_aisec.core.io.storage import s3_client_if_needed

    return s3_client_if_needed(*uris, factory=lambda: s3_client(aws_conn_id))


def evidence_s3_client(aws_conn_id: str | None) -> Any:
    """S3 client for the audit trail (``aws_conn_id``, else ``[aisec] evidence_aws_conn_id``)."""
    return s3_client(aws_conn_id or settings.evidence_aws_conn_id())


def policy_s3_client(location: str | None) -> Any:
    """S3 client for an ``s3://`` policy (``[aisec] evidence_aws_conn_id``'s connection), else None."""
    from airflow_aisec.core.io.storage import is_s3_uri

    return s3_client(settings.evidence_aws_conn_id()) if location and is_s3_uri(location) else None


def load_baseline() -> LoadedPolicy | None:
    """The platform's policy floor, ``[aisec] baseline_policy`` (pinned by ``baseline_policy_sha256``).

    Returns:
        None when no baseline is configured.

    Raises:
        PolicyError: configured but unreadable, invalid, or not the pinned file.
    """
    from airflow_aisec.core.policy import load_pinned

    location = settings.baseline_policy()
    if not location:
        return None
    return load_pinned(location, sha256=settings.baseline_policy_sha256(), s3_client=policy_s3_client(location))


def chosen_at_runtime(value: Any) -> bool:
    """Whether a ``policy`` argument is decided at run time: a Jinja template or an ``XComArg`` (any
    object but a plain string or path)."""
    import os

    if value is None or isinstance(value, os.PathLike):
        return False
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    return True


def _same_location(a: str, b: str) -> bool:
    from airflow_aisec.core.io.storage import is_s3_uri

    if is_s3_uri(a) or is_s3_uri(b):
        return a.rstrip("/") == b.rstrip("/")
    import os

    return os.path.realpath(a) == os.path.realpath(b)


def record_central(
    payload: dict[str, Any],
    *,
    kind: str = "gate_result",
    copy_location: str | None = None,
    copy_aws_conn_id: str | None = None,
    log: Any = None,
) -> EvidenceRef:
    """Append a record to the central audit trail, ``[aisec] evidence_location`` (with
    ``[aisec] evidence_aws_conn_id``), whatever the DAG says; ``copy_location`` (a gate's own
    ``evidence_location``) only receives a second copy.

    Returns:
        The central record's reference (what XCom anchors).

    Raises:
        AisecError: the central trail cannot be written (a failed copy is only logged).
    """
    central = settings.evidence_location()
    ref = open_evidence(central).append(payload, kind=kind)
    if copy_location and not _same_location(str(copy_location), central):
        try:
            open_evidence(str(copy_location), aws_conn_id=copy_aws_conn_id).append(payload, kind=kind)
        except AisecError as exc:
            if log is not None:
                log.error("could not write the extra evidence copy to %s: %s (the central record is %s#%s)",
                          copy_location, exc, ref.location, ref.seq)
    return ref


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
        # What the DAG author passed, before any rendering: a template or XComArg is a run-time choice.
        self._aisec_policy_given = policy
        self._aisec_runtime_policy = chosen_at_runtime(policy)

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        """Run the core check. Must not swallow errors: raise, and the gate fails closed."""
        raise NotImplementedError

    def finish(self, result: GateResult, layers: PolicyLayers, context: Context) -> CheckOutcome | None:
        """Work done once after a ``pass``/``warn`` verdict under every policy (e.g. a hand-off).

        Returns extra findings/metrics, evaluated like the check's. Default: nothing.
        """
        return None

    def baseline_sections(self) -> list[Any]:
        """The baseline's section for this gate, once :meth:`run_gate` loaded it ([] without one): for a
        check that must respect the floor before it touches anything (e.g. secrets grants)."""
        loaded = getattr(self, "_aisec_baseline", None)
        section = getattr(loaded.policy, self.gate, None) if loaded is not None else None
        return [section] if section is not None else []

    # --- helpers ---------------------------------------------------------------------------
    def resolve_policy_path(self) -> str:
        return self.policy or settings.default_policy()

    def policy_chosen_at_runtime(self) -> bool:
        """The policy came from a template or an XComArg, or was changed after the constructor."""
        given = getattr(self, "_aisec_policy_given", self.policy)
        return bool(getattr(self, "_aisec_runtime_policy", False)) or self.policy != given

    def load_gate_policy(self) -> LoadedPolicy:
        """The gate's own policy, refused when chosen at run time (unless ``[aisec] allow_runtime_policy``)
        or outside ``[aisec] policy_roots``.

        Raises:
            PolicyError: refused, missing or invalid (verdict ``error``, never a fall-back).
        """
        from airflow_aisec.core.policy import load_policy_location
        from airflow_aisec.exceptions import PolicyError

        if self.policy_chosen_at_runtime() and not settings.allow_runtime_policy():
            raise PolicyError(
                "the policy is chosen at run time (a template or an XComArg); refused unless "
                "[aisec] allow_runtime_policy = True"
            )
        location = self.resolve_policy_path()
        return load_policy_location(location, roots=settings.policy_roots(), s3_client=policy_s3_client(location))

    def _evidence_s3_client(self) -> Any:
        return evidence_s3_client(self.evidence_aws_conn_id)

    def evidence_store(self) -> EvidenceStore:
        """The central audit trail, ``[aisec] evidence_location`` (a gate's own location only gets copies)."""
        return open_evidence(settings.evidence_location())

    def record_evidence(self, result: GateResult, *, kind: str = "gate_result") -> EvidenceRef:
        """Append a result to the central trail (and a copy to ``evidence_location`` if the gate has one)."""
        return record_central(result.to_dict(), kind=kind, copy_location=self.evidence_location,
                              copy_aws_conn_id=self.evidence_aws_conn_id, log=self.log)

    def _log_exception(self, exc: BaseException) -> None:
        # Library messages may quote data values: log the type and the frames, not the message.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        self.log.error("gate %s raised %s; traceback (message withheld):\n%s", self.gate, type(exc).__name__, frames)

    def run_gate(self, context: Context, check: Callable[[LoadedPolicy], CheckOutcome]) -> GateResult:
        """Load the policy, run ``check``, publish the result and enforce the verdict."""
        from airflow_aisec.core.gate import run_gate

        def baseline() -> LoadedPolicy | None:
            self._aisec_baseline = load_baseline()
            return self._aisec_baseline

        self._aisec_result = self._aisec_evidence = None  # nothing from an earlier try in this process
        run = run_gate(self.gate, self.load_gate_policy, check, airflow=airflow_ref(context),
                       baseline=baseline, finish=lambda result, layers: self.finish(result, layers, context))
        result = run.result
        # Kept on the instance for the OpenLineage listener, which asks this task object after execute.
        self._aisec_result, self._aisec_evidence = result, None
        context["ti"].xcom_push(key=RESULT_XCOM_KEY, value=result.to_dict())
        try:
            evidence = self.record_evidence(result)
        except AisecError as exc:
            raise AirflowException(f"{self.gate}: could not record evidence: {exc}") from None
        self._aisec_evidence = evidence
        context["ti"].xcom_push(key=EVIDENCE_XCOM_KEY, value=evidence.to_dict())
        self.log.info(
            "gate=%s verdict=%s policy=%s sha256=%s baseline=%s findings=%d evidence=%s#%s",
            self.gate,
            result.verdict,
            result.policy.name if result.policy else "-",
            result.policy.sha256 if result.policy else "-",
            f"{result.baseline.name}@{result.baseline.sha256[:12]}" if result.baseline else "-",
            len(result.findings),
            evidence.location,
            evidence.seq,
        )
        self.enforce(result, run.exception)
        self.certify_outlets(context, result, evidence)  # only reached on pass / warn
        return result

    # --- lineage and assets (airflow_aisec.lineage) --------------------------------------------
    def lineage_outputs(self) -> list[str]:
        """URIs the gate wrote (OpenLineage output datasets, not inputs); default none."""
        return []

    def certify_outlets(self, context: Context, result: GateResult, evidence: EvidenceRef) -> None:
        """Attach the verdict, policy sha256 and evidence digest to the ``extra`` of every outlet
        ``Asset``'s event (under ``"aisec"``). Called after a pass or warn only: a failed task emits no
        asset event at all. Asset aliases are left alone (their events name their own assets)."""
        from airflow.sdk import Asset

        from airflow_aisec.lineage import asset_extra

        outlets = [o for o in (getattr(self, "outlets", None) or []) if isinstance(o, Asset)]
        if not outlets:
            return
        events = context["outlet_events"]
        extra = asset_extra(result, evidence)
        for asset in outlets:
            events[asset].extra["aisec"] = dict(extra)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage facets of this gate run (None without the OpenLineage provider or a result)."""
        from airflow_aisec.lineage import operator_lineage, rules_checked

        # The listener calls this on the task object that ran (same process, or a fork of it); without
        # a result (the gate never got that far) there is nothing to say.
        result = getattr(self, "_aisec_result", None)
        if result is None:
            return None
        return operator_lineage(result, getattr(self, "_aisec_evidence", None), checked=rules_checked(result),
                                outputs=self.lineage_outputs())

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """As on completion: a failed gate reports the assertions that failed."""
        return self.get_openlineage_facets_on_complete(task_instance)

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
        policy: Path (or ``s3://`` location) of the policy file. Defaults to ``[aisec] default_policy``;
            with neither, the gate refuses to run. It must resolve under ``[aisec] policy_roots``; a
            template or ``XComArg`` is refused unless ``[aisec] allow_runtime_policy``.
        evidence_location: An extra copy of every record (templated): a directory or
            ``s3://bucket/prefix``. The record itself always goes to ``[aisec] evidence_location``.
        evidence_aws_conn_id: Airflow connection for an ``s3://`` extra copy.
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
