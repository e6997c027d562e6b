"""Human-approved waivers: route a gate's violation to a person, never to a silent pass.

Wiring (the only one accepted)::

    gate = BiasGateOperator(task_id="bias_gate", ...)
    waiver = AisecWaiverApprovalOperator(task_id="bias_waiver", gate_task_id="bias_gate")
    deploy = ...
    gate >> waiver >> deploy

The gate keeps its meaning: on a violation it fails, its ``fail`` result is in XCom and in
the evidence store, and the task shows *failed*. The waiver task runs after the gate
whatever its outcome (``trigger_rule="all_done"``, fixed) and decides:

* gate ``pass``/``warn``: nothing to approve, the task succeeds without asking anyone;
* gate ``error``, no recorded result, a result that does not match its evidence record,
  a critical finding, or any blocking finding whose rule is not listed under
  ``platform.approvals`` of the policy the gate used: the task fails at once (which findings
  a person may approve, and who, is decided by :mod:`airflow_aisec.core.verdict`);
* otherwise it asks a person through Airflow's human-in-the-loop approval (standard
  provider ``ApprovalOperator``, ``fail_on_reject=True``, no default answer, assigned
  to the approvers the policy names). ``Approve`` by a permitted user lets the downstream
  tasks run; ``Reject``, a timeout, or an answer from anyone else fails the task.

Every decision (request, approval, rejection, refusal, timeout) is appended to the same
audit trail as the gate's result, with the gate's evidence record digest, the rules, the
approver and the time. If that record cannot be written the task fails: an approval that
is not in the audit trail does not count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_aisec.constants import EVIDENCE_XCOM_KEY, RESULT_XCOM_KEY
from airflow_aisec.core.io.json_input import loads_json

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.evidence import EvidenceRef
    from airflow_aisec.core.result import GateResult

#: XCom key of the approval decision this task recorded.
APPROVAL_XCOM_KEY = "aisec_approval"
#: Fixed trigger rule: run after the gate whatever its outcome. ``core.gates.platform`` requires exactly
#: this value on a waiver task (kept literal here: DAG parsing must not import the core).
APPROVAL_TRIGGER_RULE = "all_done"
#: Evidence record kinds written by this operator.
KIND_REQUEST = "approval_request"
KIND_DECISION = "approval"


@dataclass
class _Assessment:
    """What the gate left behind and whether a person may waive it."""

    result: GateResult | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)
    approvers: list[str] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)

    @property
    def nothing_to_approve(self) -> bool:
        from airflow_aisec.core.verdict import nothing_to_approve

        return self.result is not None and nothing_to_approve(self.result)


class _WaiverApproval:
    """Ask a person to approve (waive) a failed gate's violations; fails closed otherwise.

    Which rules may be approved, and by whom, comes only from the ``platform.approvals``
    section of the policy the gate ran with (the file is re-read and must still have the
    digest recorded in the gate's result) and, when the gate ran under a baseline, of the
    baseline as well (both must route every rule; the approvers are those both allow). The
    gate's record and the decision live in the central trail, ``[aisec] evidence_location``.

    Args:
        gate_task_id: Task id of the gate whose result is to be approved. It must be this
            task's only upstream task.
        subject: Headline shown to the approver (templated). Defaults to one naming the gate.
        body: Extra Markdown shown above the list of findings (templated).
        response_timeout: How long to wait for an answer; no answer fails the task.
        evidence_location: An extra copy of the decision records (the central trail always has them).
        evidence_aws_conn_id: Airflow connection for an ``s3://`` extra copy.
        **kwargs: Other ``BaseOperator`` arguments. ``fail_on_reject``, ``defaults``,
            ``assigned_users``, ``trigger_rule`` and ``options`` are fixed and refused.

    Raises:
        ValueError: a fixed argument was passed.
    """

    #: Marks the waiver route for the platform rules (:mod:`airflow_aisec.core.gates.platform`).
    aisec_approval_route: ClassVar[bool] = True
    template_fields: Sequence[str] = ("subject", "body")
    ui_color = "#fbe3b5"

    _FIXED = ("fail_on_reject", "defaults", "assigned_users", "trigger_rule", "options", "multiple",
              "ignore_downstream_trigger_rules")

    def __init__(
        self,
        *,
        gate_task_id: str,
        subject: str | None = None,
        body: str | None = None,
        evidence_location: str | None = None,
        evidence_aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        for name in self._FIXED:
            if name in kwargs:
                raise ValueError(f"{type(self).__name__}: '{name}' is fixed and cannot be passed")
        if not gate_task_id:
            raise ValueError(f"{type(self).__name__}: gate_task_id is required")
        super(_operator_class(), self).__init__(
            subject=subject or f"aisec waiver: approve the violations of gate task '{gate_task_id}'?",
            body=body,
            fail_on_reject=True,
            trigger_rule=APPROVAL_TRIGGER_RULE,
            **kwargs,
        )
        self.gate_task_id = gate_task_id
        self.evidence_location = evidence_location
        self.evidence_aws_conn_id = evidence_aws_conn_id

    # --- assessment ---------------------------------------------------------------------------
    def _fail(self, message: str) -> AirflowFailException:
        self.log.error("waiver refused: %s", message)
        return AirflowFailException(f"aisec waiver for gate task '{self.gate_task_id}': {message}")

    def _store(self, location: str):
        from airflow_aisec.operators.base import open_evidence

        return open_evidence(location)

    def _verified_result(self, context: Context) -> tuple[GateResult, dict[str, Any]]:
        """The gate's result from XCom, checked against its record in the audit trail."""
        from pydantic import ValidationError

        from airflow_aisec.core.result import GateResult
        from airflow_aisec.exceptions import AisecError

        if set(self.upstream_task_ids) != {self.gate_task_id}:
            raise self._fail(
                f"must have exactly one upstream task, the gate (has {sorted(self.upstream_task_ids)})"
            )
        ti = context["ti"]
        raw = ti.xcom_pull(task_ids=self.gate_task_id, key=RESULT_XCOM_KEY)
        ref = ti.xcom_pull(task_ids=self.gate_task_id, key=EVIDENCE_XCOM_KEY)
        if not isinstance(raw, dict) or not isinstance(ref, dict):
            raise self._fail("the gate left no recorded result (it did not run, or failed before recording)")
        try:
            result = GateResult.model_validate(raw)
        except ValidationError:
            raise self._fail("the gate's result is not a valid result document") from None
        expected = self._trusted_evidence_location(context)
        if str(ref.get("location")) != expected:
            # The reference sits in XCom, which tasks can write: never follow it to another trail.
            raise self._fail("the gate's evidence reference points outside the configured audit trail")
        try:
            store = self._store(expected)
            # One record by name; the store's chain methods read every record.
            data = store.read_record(str(ref["name"]))
        except (KeyError, TypeError):
            raise self._fail("the gate's evidence reference is malformed") from None
        except AisecError as exc:
            raise AirflowException(f"aisec waiver: cannot read the gate's evidence record: {exc}") from None
        if data is None or hashlib.sha256(data).hexdigest() != ref.get("sha256"):
            raise self._fail("the gate's evidence record is missing or does not match its digest")
        try:
            payload = loads_json(data).get("payload")
        except (ValueError, AttributeError):
            raise self._fail("the gate's evidence record is not valid JSON") from None
        if payload != raw:
            raise self._fail("the gate's result in XCom differs from its evidence record")
        recorded = payload.get("airflow") or {}
        if (recorded.get("dag_id"), recorded.get("run_id"), recorded.get("task_id")) != (
            ti.dag_id, ti.run_id, self.gate_task_id
        ):
            raise self._fail("the gate's evidence record belongs to another task or run")
        return result, dict(ref)

    def _trusted_evidence_location(self, context: Context) -> str:
        """The audit trail this waiver trusts: the central one, ``[aisec] evidence_location`` (where every
        gate records, whatever its own ``evidence_location``; that only receives copies)."""
        from airflow_aisec import settings

        return settings.evidence_location()

    def _assess(self, context: Context) -> _Assessment:
        from airflow_aisec import settings
        from airflow_aisec.core.policy import load_policy_location
        from airflow_aisec.core.verdict import approval_refusal, assess_approval
        from airflow_aisec.exceptions import PolicyError
        from airflow_aisec.operators.base import load_baseline, policy_s3_client

        result, ref = self._verified_result(context)
        assessment = _Assessment(result=result, evidence=ref)
        if assessment.nothing_to_approve:
            return assessment
        refusal = approval_refusal(result)
        if refusal:
            raise self._fail(refusal)
        if result.policy is None or not result.policy.source:
            raise self._fail("the gate's result names no policy file")
        try:
            loaded = load_policy_location(result.policy.source, roots=settings.policy_roots(),
                                          s3_client=policy_s3_client(result.policy.source))
            section = loaded.section("platform")
        except PolicyError as exc:
            raise self._fail(f"cannot read the approval routes: {exc}") from None
        if loaded.sha256 != result.policy.sha256:
            raise self._fail("the policy file changed since the gate ran; re-run the gate")
        assessment.policy = {"name": loaded.name, "sha256": loaded.sha256, "source": loaded.source}

        approval = assess_approval(result.blocking_findings, section.approvals,
                                   dag_id=context["ti"].dag_id, gate_task_id=self.gate_task_id)
        if approval.refusal:
            raise self._fail(approval.refusal)
        approvers = set(approval.approvers)
        if result.baseline is not None:
            # The floor's routes decide too: the DAG's own policy cannot open an approval the baseline
            # does not route, nor widen who may answer.
            try:
                base = load_baseline()
            except PolicyError as exc:
                raise self._fail(f"cannot read the baseline's approval routes: {exc}") from None
            if base is None or base.sha256 != result.baseline.sha256:
                raise self._fail("the baseline policy changed since the gate ran; re-run the gate")
            if base.policy.platform is None:
                raise self._fail("not approvable: the baseline policy routes no approvals")
            floor = assess_approval(result.blocking_findings, base.policy.platform.approvals,
                                    dag_id=context["ti"].dag_id, gate_task_id=self.gate_task_id)
            if floor.refusal:
                raise self._fail(f"baseline: {floor.refusal}")
            if approvers and floor.approvers:
                approvers &= set(floor.approvers)
                if not approvers:
                    raise self._fail("no single approver is allowed by both the policy and the baseline")
            else:
                approvers = approvers or set(floor.approvers)
        assessment.rules = list(approval.rules)
        assessment.approvers = sorted(approvers)
        return assessment

    # --- audit trail ---------------------------------------------------------------------------
    def _record(self, context: Context, assessment: _Assessment, *, kind: str, decision: str,
                approver: dict[str, Any] | None = None, responded_at: str | None = None) -> EvidenceRef:
        from airflow_aisec.core.result import utcnow
        from airflow_aisec.exceptions import AisecError
        from airflow_aisec.operators.base import airflow_ref, record_central

        result = assessment.result
        payload = {
            "type": "aisec_waiver",
            "decision": decision,
            "gate": result.gate if result else None,
            "gate_task_id": self.gate_task_id,
            "gate_verdict": result.verdict if result else None,
            "gate_evidence": {k: assessment.evidence.get(k) for k in ("location", "seq", "name", "sha256")},
            "rules": assessment.rules,
            "approvers": assessment.approvers,
            "approver": {"id": str(approver.get("id")), "name": str(approver.get("name"))} if approver else None,
            "responded_at": responded_at,
            "policy": assessment.policy or None,
            "airflow": airflow_ref(context).model_dump(mode="json"),
            "recorded_at": utcnow(),
        }
        try:
            return record_central(payload, kind=kind, copy_location=self.evidence_location,
                                  copy_aws_conn_id=self.evidence_aws_conn_id, log=self.log)
        except AisecError as exc:
            raise AirflowException(f"aisec waiver: could not record the {decision} decision: {exc}") from None
        except OSError as exc:
            raise AirflowException(
                f"aisec waiver: could not record the {decision} decision: {type(exc).__name__}"
            ) from None

    def _body(self, assessment: _Assessment, intro: str | None) -> str:
        result = assessment.result
        lines = []
        if intro:
            lines += [str(intro), ""]
        lines.append(
            f"Gate **{result.gate}** (task `{self.gate_task_id}`) failed under policy "
            f"`{assessment.policy.get('name')}` (sha256 `{assessment.policy.get('sha256', '')[:12]}`). "
            f"Evidence record `{assessment.evidence.get('name')}` sha256 `{str(assessment.evidence.get('sha256'))[:12]}`."
        )
        lines.append("")
        lines.append("Approving lets the downstream tasks run despite these findings:")
        for f in result.blocking_findings[:50]:
            count = f" (count {f.count})" if f.count is not None else ""
            lines.append(f"- `{f.rule}`{count}: {f.message}")
        lines.append("")
        lines.append("Your decision, your user id and the time are recorded in the audit trail.")
        return "\n".join(lines)

    # --- execution ---------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        try:
            assessment = self._assess(context)
        except AirflowFailException as exc:
            # Value-free reason, kept in XCom so the UI and tests can tell why nobody was asked.
            context["ti"].xcom_push(key=APPROVAL_XCOM_KEY, value={"decision": "refused", "reason": str(exc)})
            raise
        if assessment.nothing_to_approve:
            self.log.info("gate task %s verdict=%s: nothing to approve", self.gate_task_id,
                          assessment.result.verdict)
            context["ti"].xcom_push(key=APPROVAL_XCOM_KEY, value={"decision": "not_needed"})
            return None
        self.body = self._body(assessment, self.body)
        self.assigned_users = [{"id": u, "name": u} for u in assessment.approvers] or None
        ref = self._record(context, assessment, kind=KIND_REQUEST, decision="requested")
        self.log.info("approval requested for rules %s (evidence %s#%s)", assessment.rules, ref.location, ref.seq)
        context["ti"].xcom_push(key=APPROVAL_XCOM_KEY, value={"decision": "requested",
                                                              "gate_evidence_sha256": assessment.evidence["sha256"]})
        return super(_operator_class(), self).execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        assessment = self._assess(context)  # re-checked: the gate's record must be unchanged
        if assessment.nothing_to_approve:
            raise self._fail("the gate's result changed while waiting for the decision")
        if "error" in event:
            decision = "timeout" if event.get("error_type") == "timeout" else "error"
            self._record(context, assessment, kind=KIND_DECISION, decision=decision)
            self.hitl_summary_extra["error_type"] = event.get("error_type")
            raise self._fail(f"no decision ({decision}); the violation stands")

        chosen = list(event.get("chosen_options") or [])
        responder = event.get("responded_by_user")
        responded_at = event.get("responded_at")
        responded_at_s = responded_at.isoformat() if hasattr(responded_at, "isoformat") else (
            str(responded_at) if responded_at else None)
        self.hitl_summary_extra.update({"chosen_options": chosen, "responded_at": responded_at_s,
                                        "responded_by_user": responder})
        if chosen == [self.APPROVE]:
            if not responder or not responder.get("id"):
                self._record(context, assessment, kind=KIND_DECISION, decision="refused",
                             responded_at=responded_at_s)
                raise self._fail("an approval without a responding user (e.g. a default answer) does not count")
            if assessment.approvers and str(responder.get("id")) not in assessment.approvers:
                self._record(context, assessment, kind=KIND_DECISION, decision="refused", approver=responder,
                             responded_at=responded_at_s)
                raise self._fail(f"user '{responder.get('id')}' is not an approver for these rules")
            ref = self._record(context, assessment, kind=KIND_DECISION, decision="approved", approver=responder,
                               responded_at=responded_at_s)
            self.hitl_summary_extra["approved"] = True
            decision = {"decision": "approved", "approver": str(responder.get("id")), "responded_at": responded_at_s,
                        "rules": assessment.rules, "evidence": ref.to_dict()}
            context["ti"].xcom_push(key=APPROVAL_XCOM_KEY, value=decision)
            self.log.warning("violations of gate task %s waived by %s: %s", self.gate_task_id,
                             responder.get("id"), assessment.rules)
            return decision
        decision = "rejected" if chosen == [self.REJECT] else "invalid"
        self._record(context, assessment, kind=KIND_DECISION, decision=decision, approver=responder,
                     responded_at=responded_at_s)
        self.hitl_summary_extra["approved"] = False
        raise self._fail(f"{decision} by '{(responder or {}).get('id', '?')}'; the violation stands")


def _operator_class() -> type:
    """Build :class:`AisecWaiverApprovalOperator` on first use.

    The standard provider's HITL module costs ~25 ms to import, paid by every DAG file that imports
    any airflow-aisec operator module; only DAGs that use the waiver route need it. The class is
    built from :class:`_WaiverApproval`'s namespace (so Airflow's operator metaclass sees
    ``__init__`` and ``execute`` as the class's own) and cached as a module attribute.
    """
    cls = globals().get("AisecWaiverApprovalOperator")
    if cls is None:
        from airflow.providers.standard.operators.hitl import ApprovalOperator

        namespace = {k: v for k, v in vars(_WaiverApproval).items() if k not in ("__dict__", "__weakref__")}
        namespace["__qualname__"] = "AisecWaiverApprovalOperator"
        cls = type(ApprovalOperator)("AisecWaiverApprovalOperator", (ApprovalOperator,), namespace)
        globals()["AisecWaiverApprovalOperator"] = cls
    return cls


def __getattr__(name: str) -> Any:
    if name == "AisecWaiverApprovalOperator":
        return _operator_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "AisecWaiverApprovalOperator"})


if TYPE_CHECKING:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    class AisecWaiverApprovalOperator(_WaiverApproval, ApprovalOperator):  # what __getattr__ builds
        ...
