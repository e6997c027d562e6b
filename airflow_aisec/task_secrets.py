"""Secrets for task code: unwrap what a secrets gate handed over, and short-lived database users.

* :func:`vault_secrets` / :func:`unwrap_secrets`: the consumer side of
  :class:`~airflow_aisec.operators.secrets.VaultSecretsGateOperator`, for ``@task`` code. Opens the
  hand-off sealed with ``[aisec] handoff_key`` (only for this DAG run and that gate task), unwraps
  each wrapping token exactly once and masks every value before returning it. A token someone
  else already unwrapped, or a sealed hand-off that was altered or copied from elsewhere, fails
  the task with a security violation recorded in the audit trail.
* :func:`vault_database_credentials`: a short-lived PostgreSQL (or other) user from Vault's
  database secrets engine, authorized by the policy (a ``secrets`` gate result of its own); the
  lease is revoked when the block exits, whether the task succeeds or fails.

Example::

    @task
    def train():
        with vault_secrets("fetch_secrets") as secrets:
            password = secrets["ml/training/warehouse"]["password"]
        with vault_database_credentials("train-readonly") as creds:
            connect(user=creds.username, password=creds.password)

Do not pass the handles through an ``XComArg`` (``train(fetch.output)``): rendered arguments are
stored as rendered template fields. Let the helper pull them by task id.

These helpers run inside a task but are not operators: :class:`_TaskAudit` gives them the gate
plumbing they need (policy, result in XCom, audit trail, enforcement) without the operator
classes. Every Vault request goes through :class:`~airflow_aisec.core.io.vault.VaultClient`.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_aisec import settings
from airflow_aisec.constants import EVIDENCE_XCOM_KEY, RESULT_XCOM_KEY, SECRET_HANDLES_XCOM_KEY
from airflow_aisec.exceptions import (
    AisecError,
    InputDataError,
    SecurityViolationError,
    ServiceUnavailableError,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.evidence import EvidenceStore
    from airflow_aisec.core.gate import Finish, PolicyLayers
    from airflow_aisec.core.gates.secrets import DatabaseCredentials, SecretHandle
    from airflow_aisec.core.io.vault import VaultClient
    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import AirflowRef, CheckOutcome, GateResult

__all__ = [
    "KIND_LEASE_REVOKED",
    "KIND_SECRET_UNWRAPPED",
    "KIND_SECURITY_EVENT",
    "SecretFields",
    "SecretValues",
    "unwrap_secrets",
    "vault_database_credentials",
    "vault_secrets",
]

GATE = "secrets"
#: Evidence record kinds written by these helpers.
KIND_SECURITY_EVENT = "security_event"
KIND_SECRET_UNWRAPPED = "secret_unwrapped"
KIND_LEASE_REVOKED = "lease_revoked"

DEFAULT_VAULT_CONN_ID = "vault_default"

log = logging.getLogger(__name__)


def _mask(value: str) -> None:
    from airflow.sdk.log import mask_secret

    mask_secret(value)


def _vault(vault_conn_id: str) -> VaultClient:
    from airflow_aisec.hooks.vault import get_vault_client

    return get_vault_client(vault_conn_id)


def _context(context: Context | None) -> Context:
    if context is not None:
        return context
    from airflow.sdk import get_current_context

    return get_current_context()


def _raise_for(exc: AisecError) -> None:
    """Map a project error to the task outcome: unreachable services retry, anything else fails."""
    if isinstance(exc, ServiceUnavailableError):
        raise AirflowException(f"secrets: {exc}") from None
    raise AirflowFailException(f"secrets: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------------------------
# Gate plumbing inside a task: policy, result, audit trail, enforcement
# --------------------------------------------------------------------------------------------
class _TaskAudit:
    """What a helper records, and how its outcome becomes the task's, like a ``secrets`` gate."""

    def __init__(self, *, policy: str | None, evidence_location: str | None,
                 evidence_aws_conn_id: str | None) -> None:
        self.policy = policy
        self.evidence_location = evidence_location
        self.evidence_aws_conn_id = evidence_aws_conn_id

    def evidence_store(self) -> EvidenceStore:
        """The central audit trail, ``[aisec] evidence_location`` (the helper's own location gets copies)."""
        from airflow_aisec.operators.base import open_evidence

        return open_evidence(settings.evidence_location())

    def append(self, payload: dict[str, Any], kind: str) -> Any:
        """Append to the central trail (and a copy to the helper's ``evidence_location``, if any)."""
        from airflow_aisec.operators.base import record_central

        return record_central(payload, kind=kind, copy_location=self.evidence_location,
                              copy_aws_conn_id=self.evidence_aws_conn_id, log=log)

    def record_event(self, kind: str, ref: AirflowRef, **fields: Any) -> Any:
        """Append a helper's event to the audit trail (paths, accessors, lease ids: never a value)."""
        payload = {"gate": GATE, "event": kind, "airflow": ref.model_dump(mode="json"), **fields}
        return self.append(payload, kind=kind)

    def fail_security(self, context: Context, ref: AirflowRef, exc: SecurityViolationError, started: str) -> None:
        """Record a security event (audit trail + XCom result) and fail the task without retry."""
        from airflow_aisec.core.verdict import security_violation_result

        result = security_violation_result(GATE, exc, loaded=None, started_at=started, airflow=ref)
        with contextlib.suppress(Exception):
            context["ti"].xcom_push(key=RESULT_XCOM_KEY, value=result.to_dict())
        try:
            evidence = self.append(result.to_dict(), kind=KIND_SECURITY_EVENT)
        except AisecError as rec_exc:
            log.error("secrets: could not record the security event in the audit trail: %s", rec_exc)
            raise AirflowFailException(f"{result.summary()}\n(audit trail unavailable: {rec_exc})") from None
        log.error("secrets: SECURITY EVENT [%s] %s (evidence %s#%s)", exc.rule, exc, evidence.location, evidence.seq)
        raise AirflowFailException(result.summary()) from None

    def run_gate(self, context: Context, check: Callable[[LoadedPolicy], CheckOutcome],
                 finish: Finish | None = None) -> GateResult:
        """Load the policy (within ``[aisec] policy_roots``) and the baseline, run ``check`` under both,
        ``finish`` after a passing verdict, publish the result (XCom, central trail), enforce the verdict."""
        from airflow_aisec.core.gate import run_gate
        from airflow_aisec.core.policy import load_policy_location
        from airflow_aisec.operators.base import airflow_ref, load_baseline, policy_s3_client

        def load() -> LoadedPolicy:
            location = self.policy or settings.default_policy()
            return load_policy_location(location, roots=settings.policy_roots(),
                                        s3_client=policy_s3_client(location))

        run = run_gate(GATE, load, check, airflow=airflow_ref(context), baseline=load_baseline, finish=finish)
        result = run.result
        context["ti"].xcom_push(key=RESULT_XCOM_KEY, value=result.to_dict())
        try:
            evidence = self.append(result.to_dict(), kind="gate_result")
        except AisecError as exc:
            raise AirflowException(f"{GATE}: could not record evidence: {exc}") from None
        context["ti"].xcom_push(key=EVIDENCE_XCOM_KEY, value=evidence.to_dict())
        log.info("gate=%s verdict=%s policy=%s sha256=%s findings=%d evidence=%s#%s", GATE, result.verdict,
                 result.policy.name if result.policy else "-", result.policy.sha256 if result.policy else "-",
                 len(result.findings), evidence.location, evidence.seq)
        _enforce(result, run.exception)
        return result


def _enforce(result: GateResult, exc: BaseException | None) -> None:
    """The task's outcome: ``error`` fails (retryably for an unreachable service), ``fail`` fails."""
    from airflow_aisec.core.result import Verdict

    if result.verdict == Verdict.ERROR.value:
        if exc is not None and not isinstance(exc, AisecError):
            # Library messages may quote data values: log the type and the frames, not the message.
            log.error("gate %s raised %s; traceback (message withheld):\n%s", GATE, type(exc).__name__,
                      "".join(traceback.format_tb(exc.__traceback__)))
        if isinstance(exc, ServiceUnavailableError):
            raise AirflowException(result.summary())  # retryable, never a pass
        raise AirflowFailException(result.summary())
    for finding in result.findings:
        blocking = finding.enforcement == "enforce" and not finding.waived
        (log.error if blocking else log.warning)(
            "[%s] %s (enforcement=%s%s)", finding.rule, finding.message, finding.enforcement,
            ", waived" if finding.waived else "",
        )
    if result.verdict == Verdict.FAIL.value:
        raise AirflowFailException(result.summary())
    if result.verdict == Verdict.WARN.value:
        log.warning("%s", result.summary())


# --------------------------------------------------------------------------------------------
# Consumer: unwrap once
# --------------------------------------------------------------------------------------------
_V = TypeVar("_V")


class _ReadOnlyDict(Mapping[str, _V]):
    """Read-only view of a dict; subclasses define a ``repr`` (also ``str``) that shows no value."""

    def __init__(self, data: dict[str, _V]):
        self._data = data

    def __getitem__(self, key: str) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __str__(self) -> str:
        return repr(self)


class SecretFields(_ReadOnlyDict[Any]):
    """One secret's key/value data; ``repr`` never shows the values."""

    def __init__(self, path: str, data: dict[str, Any]):
        super().__init__(data)
        self._path = path

    def __repr__(self) -> str:
        return f"SecretFields({self._path!r}, keys={sorted(self._data)!r})"

    def _clear(self) -> None:
        self._data.clear()


class SecretValues(_ReadOnlyDict[SecretFields]):
    """Unwrapped secrets by path; ``repr`` lists paths and keys only."""

    def __repr__(self) -> str:
        return f"SecretValues(paths={sorted(self._data)!r})"

    def clear(self) -> None:
        """Drop the values (best effort: Python cannot wipe strings from memory)."""
        for fields in self._data.values():
            fields._clear()
        self._data.clear()


def _parse_handles(raw: Any, gate_task_id: str, ref: AirflowRef) -> list[SecretHandle]:
    """Open the sealed hand-off of ``gate_task_id`` in this DAG run; every token is masked at once."""
    from airflow_aisec.core.gates.secrets import open_handles, parse_handoff_keys

    if raw is None:
        raise InputDataError(
            f"no secret handles from task '{gate_task_id}' (XCom '{SECRET_HANDLES_XCOM_KEY}'): "
            "run a VaultSecretsGateOperator upstream of this task"
        )
    if not isinstance(raw, Mapping) or not isinstance(raw.get("handles"), list) or not raw["handles"]:
        raise InputDataError(f"secret handles from task '{gate_task_id}' are malformed")
    keys = parse_handoff_keys(settings.handoff_key())
    handles = open_handles(raw, keys, dag_id=ref.dag_id, run_id=ref.run_id, task_id=gate_task_id)
    for handle in handles:
        _mask(handle.token)  # a credential until used (the handle's own repr never shows it)
    return handles


def _earlier_try(audit: _TaskAudit, ref: AirflowRef, accessor: str) -> int | None:
    """Try number of an earlier attempt of this very task that unwrapped ``accessor``, if any."""
    try:
        records = audit.evidence_store().read_records()
    except AisecError:
        return None
    for record in reversed(records):
        if record.get("kind") != KIND_SECRET_UNWRAPPED:
            continue
        payload = record.get("payload") or {}
        who = payload.get("airflow") or {}
        if (who.get("dag_id"), who.get("run_id"), who.get("task_id"), who.get("map_index")) != (
            ref.dag_id, ref.run_id, ref.task_id, ref.map_index,
        ):
            continue
        if any(h.get("accessor") == accessor for h in payload.get("handles") or []):
            return who.get("try_number")
    return None


def _record_unwrapped(audit: _TaskAudit, ref: AirflowRef, handles: list[SecretHandle], *, strict: bool) -> None:
    """Audit who unwrapped which token (accessors and paths only)."""
    if not handles:
        return
    try:
        audit.record_event(KIND_SECRET_UNWRAPPED, ref, handles=[h.public() for h in handles])
    except AisecError as exc:
        log.error("secrets: could not record the unwrap in the audit trail: %s", exc)
        if strict:
            raise AirflowException(f"secrets: could not record the unwrap in the audit trail: {exc}") from None


def unwrap_secrets(
    gate_task_id: str,
    *,
    paths: Iterable[str] | None = None,
    vault_conn_id: str = DEFAULT_VAULT_CONN_ID,
    evidence_location: str | None = None,
    evidence_aws_conn_id: str | None = None,
    context: Context | None = None,
) -> SecretValues:
    """Unwrap the secrets a ``VaultSecretsGateOperator`` handed to this task (call inside a task).

    Each wrapping token is looked up, checked against the secret path it must wrap, unwrapped
    once, and every value is registered with Airflow's masker before it is returned. The
    unwrap is recorded in the audit trail (paths and token accessors, never values).

    Args:
        gate_task_id: Task id of the upstream gate.
        paths: Only unwrap these paths (default: all handed over). The others stay wrapped
            until their TTL runs out.
        vault_conn_id: Airflow connection for ``VaultHook``.
        evidence_location: Audit trail location (default ``[aisec] evidence_location``).
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
        context: Task context (default: the current one).

    Returns:
        Secret data by path.

    Raises:
        AirflowFailException: a token was already unwrapped by someone else or substituted
            (recorded as a ``security_event``), expired, missing or malformed.
        AirflowException: Vault unreachable or sealed (retryable).
    """
    from airflow_aisec.core.gates.secrets import WrappingTokenGone, unwrap_handle
    from airflow_aisec.core.result import utcnow
    from airflow_aisec.operators.base import airflow_ref

    started = utcnow()
    context = _context(context)
    ref = airflow_ref(context)
    audit = _TaskAudit(policy=None, evidence_location=evidence_location, evidence_aws_conn_id=evidence_aws_conn_id)
    values: dict[str, SecretFields] = {}
    unwrapped: list[SecretHandle] = []
    try:
        handles = _parse_handles(
            context["ti"].xcom_pull(task_ids=gate_task_id, key=SECRET_HANDLES_XCOM_KEY), gate_task_id, ref
        )
        if paths is not None:
            wanted = list(paths)
            by_path = {h.path: h for h in handles}
            unknown = [p for p in wanted if p not in by_path]
            if unknown:
                raise InputDataError(f"task '{gate_task_id}' handed over no secret for: {', '.join(unknown)}")
            handles = [by_path[p] for p in wanted]
        vault = _vault(vault_conn_id)
        for handle in handles:
            try:
                data = unwrap_handle(vault, handle, mask=_mask)
            except WrappingTokenGone as exc:
                earlier = _earlier_try(audit, ref, handle.accessor)
                if earlier is not None:
                    # Our own earlier attempt consumed it: not an attack, but a retry cannot succeed.
                    raise InputDataError(
                        f"the wrapping token for {handle.mount}/{handle.path} was unwrapped by try "
                        f"{earlier} of this "
                        f"task; clear task '{gate_task_id}' too so that it issues a new one"
                    ) from None
                raise exc from None
            unwrapped.append(handle)
            values[handle.path] = SecretFields(handle.path, data)
    except AisecError as exc:
        _record_unwrapped(audit, ref, unwrapped, strict=False)
        SecretValues(values).clear()  # drop what was unwrapped before the failure
        if isinstance(exc, SecurityViolationError):
            audit.fail_security(context, ref, exc, started)
        _raise_for(exc)
    _record_unwrapped(audit, ref, unwrapped, strict=True)
    log.info("secrets: unwrapped %d secret(s) from task %s: %s", len(values), gate_task_id, ", ".join(values))
    return SecretValues(values)


@contextlib.contextmanager
def vault_secrets(
    gate_task_id: str,
    *,
    paths: Iterable[str] | None = None,
    vault_conn_id: str = DEFAULT_VAULT_CONN_ID,
    evidence_location: str | None = None,
    evidence_aws_conn_id: str | None = None,
    context: Context | None = None,
) -> Iterator[SecretValues]:
    """Context manager form of :func:`unwrap_secrets`; the values are dropped when the block exits.

    Example::

        @task
        def train():
            with vault_secrets("fetch_secrets") as secrets:
                password = secrets["ml/training/warehouse"]["password"]
    """
    values = unwrap_secrets(
        gate_task_id,
        paths=paths,
        vault_conn_id=vault_conn_id,
        evidence_location=evidence_location,
        evidence_aws_conn_id=evidence_aws_conn_id,
        context=context,
    )
    try:
        yield values
    finally:
        values.clear()


# --------------------------------------------------------------------------------------------
# Dynamic database credentials
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def vault_database_credentials(
    role: str,
    *,
    policy: str | None = None,
    vault_conn_id: str = DEFAULT_VAULT_CONN_ID,
    evidence_location: str | None = None,
    evidence_aws_conn_id: str | None = None,
    context: Context | None = None,
) -> Iterator[DatabaseCredentials]:
    """Short-lived database credentials for the block; the lease is revoked when it exits.

    The policy must grant ``role`` to this DAG/task (``secrets.grants[].database_roles``); the
    decision is a ``secrets`` gate result (XCom ``aisec_result`` of this task and the audit
    trail). Username and password are masked before they are returned. The lease is revoked
    synchronously (the database user is dropped) on success, on an exception and on Airflow
    stopping the task; if Vault cannot revoke it the task fails, and the credentials still expire
    after their lease (``secrets.database.max_lease_ttl`` bounds it).

    Args:
        role: Database secrets engine role.
        policy: Policy file; defaults to ``[aisec] default_policy``.
        vault_conn_id: Airflow connection for ``VaultHook``.
        evidence_location: Audit trail location.
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
        context: Task context (default: the current one).

    Yields:
        The credentials (``username``, ``password``, ``lease_id``, ``lease_duration``).

    Raises:
        AirflowFailException: role not granted, denied by Vault, or lease too long (no retry).
        AirflowException: Vault unreachable or sealed (retryable).
    """
    from airflow_aisec.core.gates.secrets import (
        authorize_database_role,
        issue_database_credentials,
        lease_findings,
    )
    from airflow_aisec.core.result import CheckOutcome, InputRef
    from airflow_aisec.operators.base import airflow_ref

    context = _context(context)
    ref = airflow_ref(context)
    audit = _TaskAudit(policy=policy, evidence_location=evidence_location, evidence_aws_conn_id=evidence_aws_conn_id)
    issued: dict[str, Any] = {}

    def check(loaded: LoadedPolicy) -> CheckOutcome:
        # Run under every policy that configures the gate (own and baseline): authorization only.
        section = loaded.section(GATE)
        authorize_database_role(section, ref.dag_id, ref.task_id, role)
        return CheckOutcome(metrics={"role": role},
                            inputs=[InputRef(uri=f"vault://{section.database.mount}/creds/{role}")])

    def finish(result: GateResult, layers: PolicyLayers) -> CheckOutcome:
        # Once, after every policy granted the role: issue, then hold the lease to each one's limit.
        sections = layers.sections(GATE)
        mounts = {s.database.mount for s in sections}
        if len(mounts) > 1:
            raise SecurityViolationError(
                "the policy and the baseline name different database mounts: credentials refused",
                rule=f"{GATE}.database_role_not_allowed", location={"role": role, "mounts": sorted(mounts)},
            )
        for section in sections:
            authorize_database_role(section, ref.dag_id, ref.task_id, role)
        vault = _vault(vault_conn_id)
        creds = issue_database_credentials(vault, sections[0].database.mount, role, mask=_mask)
        issued.update(creds=creds, vault=vault)
        findings = {}
        for section in sections:
            for f in lease_findings(section, creds):
                findings.setdefault((f.rule, f.message), f)
        return CheckOutcome(findings=list(findings.values()),
                            metrics={"lease_duration": creds.lease_duration, "lease_id": creds.lease_id})

    body_failed = False
    try:
        audit.run_gate(context, check, finish)
        creds = issued["creds"]
        log.info("secrets: database credentials for role %s, lease %s (%ss)", role, creds.lease_id,
                 creds.lease_duration)
        yield creds
    except BaseException:
        body_failed = True
        raise
    finally:
        if "creds" in issued:
            _revoke(audit, ref, issued["creds"], issued["vault"], vault_conn_id, raise_errors=not body_failed)


def _revoke(
    audit: _TaskAudit,
    ref: AirflowRef,
    creds: DatabaseCredentials,
    vault: VaultClient,
    vault_conn_id: str,
    *,
    raise_errors: bool,
) -> None:
    """Revoke the lease now; record it in the audit trail. A failure fails the task only when asked."""
    from airflow_aisec.core.gates.secrets import revoke_lease
    from airflow_aisec.core.result import utcnow
    from airflow_aisec.exceptions import AccessDeniedError

    try:
        try:
            revoke_lease(vault, creds.lease_id)
        except AccessDeniedError:
            # The task's token may have expired during a long task: authenticate again once.
            revoke_lease(_vault(vault_conn_id), creds.lease_id)
    except AisecError as exc:
        log.error("secrets: could not revoke lease %s of role %s: %s; the credentials expire after %ss",
                  creds.lease_id, creds.role, exc, creds.lease_duration)
        if raise_errors:
            raise AirflowFailException(
                f"secrets: could not revoke the database lease of role '{creds.role}' ({exc}); "
                f"it expires after {creds.lease_duration}s"
            ) from None
        return
    log.info("secrets: revoked lease %s of role %s", creds.lease_id, creds.role)
    try:
        audit.record_event(KIND_LEASE_REVOKED, ref, role=creds.role, lease_id=creds.lease_id, revoked_at=utcnow())
    except AisecError as exc:
        log.error("secrets: could not record the lease revocation in the audit trail: %s", exc)
