"""Secrets from Vault for Airflow tasks, without values in XCom, templates or logs.

* :class:`VaultSecretsGateOperator` (gate ``secrets``): checks the policy grants this DAG/task the
  requested KV paths, validates each secret (values masked the moment they are read), and hands
  each one to downstream tasks as a single-use Vault *wrapping token* (TTL from the policy). Only
  the tokens cross XCom (key :data:`SECRET_HANDLES_XCOM_KEY`), and they are masked too.
* :func:`vault_secrets` / :func:`unwrap_secrets`: the consumer side, for ``@task`` code. Unwraps
  each token exactly once and masks every value before returning it. A token someone else
  already unwrapped fails the task with a security violation recorded in the audit trail.
* :func:`vault_database_credentials`: a short-lived PostgreSQL (or other) user from Vault's
  database secrets engine, authorized by the policy; its lease is revoked when the block exits,
  whether the task succeeds or fails.

Example::

    fetch = VaultSecretsGateOperator(
        task_id="fetch_secrets",
        paths={"ml/training/warehouse": ["password"]},
        policy="/opt/airflow/policies/strict.yaml",
    )

    @task
    def train():
        with vault_secrets("fetch_secrets") as secrets:
            password = secrets["ml/training/warehouse"]["password"]
        with vault_database_credentials("train-readonly") as creds:
            connect(user=creds.username, password=creds.password)

    fetch >> train()

Do not pass the handles through an ``XComArg`` (``train(fetch.output)``): rendered arguments are
stored as rendered template fields. Let the helper pull them by task id.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_aisec.constants import RESULT_XCOM_KEY
from airflow_aisec.exceptions import (
    AisecError,
    InputDataError,
    SecurityViolationError,
    ServiceUnavailableError,
)
from airflow_aisec.operators.base import AisecGateOperator, GateMixin, airflow_ref

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import AirflowRef, CheckOutcome
    from airflow_aisec.core.secrets import DatabaseCredentials, SecretHandle

#: XCom key under which the gate pushes the wrapping-token handles.
SECRET_HANDLES_XCOM_KEY = "aisec_secret_handles"
#: Evidence record kinds written by the consumer helpers.
KIND_SECURITY_EVENT = "security_event"
KIND_SECRET_UNWRAPPED = "secret_unwrapped"
KIND_LEASE_REVOKED = "lease_revoked"

DEFAULT_VAULT_CONN_ID = "vault_default"

log = logging.getLogger(__name__)


def _mask(value: str) -> None:
    from airflow.sdk.log import mask_secret

    mask_secret(value)


# --------------------------------------------------------------------------------------------
# Gate
# --------------------------------------------------------------------------------------------
class VaultSecretsGateOperator(AisecGateOperator):
    """Authorize, validate and hand off Vault KV secrets to downstream tasks (gate ``secrets``).

    The task fails (no retry) if the policy does not grant a path to this DAG/task, if Vault
    denies it or it does not exist, or if a required key is missing; it fails with a retry if
    Vault is unreachable or sealed. No handle is issued unless the verdict is ``pass``/``warn``.

    Args:
        paths: Secret paths relative to the policy's ``secrets.kv_mount`` (templated): a list,
            or a mapping of path to the keys the consumer needs (``{"ml/db": ["password"]}``).
        vault_conn_id: Airflow connection for ``VaultHook`` (any auth method it supports).
        wrap_ttl: Lifetime of the wrapping tokens (seconds or ``"5m"``); at most, and by default,
            the policy's ``secrets.wrap_ttl``.
        policy: Policy file (templated); defaults to ``[aisec] default_policy``.
        evidence_location: Audit trail location (templated); defaults to ``[aisec] evidence_location``.
        evidence_aws_conn_id: Connection for an ``s3://`` evidence location.
    """

    template_fields: Sequence[str] = (
        *AisecGateOperator.template_fields,
        "paths",
        "vault_conn_id",
        "wrap_ttl",
    )
    gate = "secrets"

    def __init__(
        self,
        *,
        paths: Sequence[str] | Mapping[str, Sequence[str]] | str,
        vault_conn_id: str = DEFAULT_VAULT_CONN_ID,
        wrap_ttl: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.paths = paths
        self.vault_conn_id = vault_conn_id
        self.wrap_ttl = wrap_ttl

    def check(self, loaded: LoadedPolicy, context: Context) -> CheckOutcome:
        from airflow_aisec.core.gate import evaluate
        from airflow_aisec.core.result import Verdict, utcnow
        from airflow_aisec.core.secrets import (
            authorize_paths,
            issue_wrapped_secrets,
            normalize_requests,
            validate_secrets,
        )
        from airflow_aisec.hooks.vault import get_vault_client

        section = loaded.policy.secrets
        ref = airflow_ref(context)
        requests = normalize_requests(self.paths)
        ttl = section.effective_wrap_ttl(self.wrap_ttl)
        # Refuse ungranted paths before touching Vault at all.
        authorize_paths(section, ref.dag_id, ref.task_id, [r.path for r in requests])
        client = get_vault_client(self.vault_conn_id)
        outcome, versions = validate_secrets(
            client, section, dag_id=ref.dag_id, task_id=ref.task_id, requests=requests, mask=_mask
        )
        # Only hand secrets out if the findings would not fail the gate (same evaluation as the base).
        preview = evaluate(self.gate, loaded, outcome, started_at=utcnow(), airflow=ref)
        if preview.verdict not in (Verdict.PASS.value, Verdict.WARN.value):
            self.log.warning(
                "secrets: %d finding(s) block the hand-off; no wrapping token issued", len(outcome.findings)
            )
            outcome.metrics.update(wrapped=0, wrap_ttl_seconds=ttl)
            return outcome
        handles = issue_wrapped_secrets(
            client, section, requests=requests, versions=versions, ttl=ttl, mask=_mask
        )
        context["ti"].xcom_push(
            key=SECRET_HANDLES_XCOM_KEY,
            value={"handle_version": 1, "handles": [h.model_dump(mode="json") for h in handles]},
        )
        for h in handles:
            self.log.info(
                "secrets: wrapped %s/%s (version %s) for one unwrap within %ss (accessor %s)",
                h.mount,
                h.path,
                h.secret_version if h.secret_version is not None else "-",
                h.ttl,
                h.accessor,
            )
        outcome.metrics.update(wrapped=len(handles), wrap_ttl_seconds=ttl)
        return outcome


# --------------------------------------------------------------------------------------------
# Shared plumbing for the task-side helpers
# --------------------------------------------------------------------------------------------
class _TaskGate(GateMixin):
    """Gate plumbing (policy, evidence, enforcement) for helpers that run inside a task."""

    gate = "secrets"

    def __init__(
        self, *, policy: str | None, evidence_location: str | None, evidence_aws_conn_id: str | None
    ):
        self._init_gate(
            policy=policy, evidence_location=evidence_location, evidence_aws_conn_id=evidence_aws_conn_id
        )
        self.log = log

    def record_event(self, kind: str, ref: AirflowRef, **fields: Any) -> Any:
        """Append a helper's event to the audit trail (paths, accessors, lease ids: never a value)."""
        payload = {"gate": self.gate, "event": kind, "airflow": ref.model_dump(mode="json"), **fields}
        return self.evidence_store().append(payload, kind=kind)

    def fail_security(
        self, context: Context, ref: AirflowRef, exc: SecurityViolationError, started: str
    ) -> None:
        """Record a security event (audit trail + XCom result) and fail the task without retry."""
        from airflow_aisec.core.gate import security_violation_result

        result = security_violation_result(self.gate, exc, loaded=None, started_at=started, airflow=ref)
        with contextlib.suppress(Exception):
            context["ti"].xcom_push(key=RESULT_XCOM_KEY, value=result.to_dict())
        try:
            evidence = self.record_evidence(result, kind=KIND_SECURITY_EVENT)
        except AisecError as rec_exc:
            self.log.error("secrets: could not record the security event in the audit trail: %s", rec_exc)
            raise AirflowFailException(f"{result.summary()}\n(audit trail unavailable: {rec_exc})") from None
        self.log.error(
            "secrets: SECURITY EVENT [%s] %s (evidence %s#%s)", exc.rule, exc, evidence.location, evidence.seq
        )
        raise AirflowFailException(result.summary()) from None


def _raise_for(exc: AisecError) -> None:
    """Map a project error to the task outcome: unreachable services retry, anything else fails."""
    if isinstance(exc, ServiceUnavailableError):
        raise AirflowException(f"secrets: {exc}") from None
    raise AirflowFailException(f"secrets: {type(exc).__name__}: {exc}") from None


def _context(context: Context | None) -> Context:
    if context is not None:
        return context
    from airflow.sdk import get_current_context

    return get_current_context()


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


def _parse_handles(raw: Any, gate_task_id: str) -> list[SecretHandle]:
    from pydantic import ValidationError

    from airflow_aisec.core.secrets import SecretHandle

    if raw is None:
        raise InputDataError(
            f"no secret handles from task '{gate_task_id}' (XCom '{SECRET_HANDLES_XCOM_KEY}'): "
            "run a VaultSecretsGateOperator upstream of this task"
        )
    items = raw.get("handles") if isinstance(raw, Mapping) else None
    if not isinstance(items, list) or not items:
        raise InputDataError(f"secret handles from task '{gate_task_id}' are malformed")
    # Mask every token before anything else can log it (the handle's own repr never shows it).
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("token"), str):
            _mask(item["token"])
    try:
        return [SecretHandle.model_validate(item) for item in items]
    except ValidationError:
        raise InputDataError(f"secret handles from task '{gate_task_id}' are malformed") from None


def _earlier_try(gate: _TaskGate, ref: AirflowRef, accessor: str) -> int | None:
    """Try number of an earlier attempt of this very task that unwrapped ``accessor``, if any."""
    try:
        records = gate.evidence_store().read_records()
    except AisecError:
        return None
    for record in reversed(records):
        if record.get("kind") != KIND_SECRET_UNWRAPPED:
            continue
        payload = record.get("payload") or {}
        who = payload.get("airflow") or {}
        if (who.get("dag_id"), who.get("run_id"), who.get("task_id"), who.get("map_index")) != (
            ref.dag_id,
            ref.run_id,
            ref.task_id,
            ref.map_index,
        ):
            continue
        if any(h.get("accessor") == accessor for h in payload.get("handles") or []):
            return who.get("try_number")
    return None


def unwrap_secrets(
    gate_task_id: str,
    *,
    paths: Iterable[str] | None = None,
    vault_conn_id: str = DEFAULT_VAULT_CONN_ID,
    evidence_location: str | None = None,
    evidence_aws_conn_id: str | None = None,
    context: Context | None = None,
) -> SecretValues:
    """Unwrap the secrets a :class:`VaultSecretsGateOperator` handed to this task (call inside a task).

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
    from airflow_aisec.core.result import utcnow
    from airflow_aisec.core.secrets import WrappingTokenGone, unwrap_handle
    from airflow_aisec.hooks.vault import get_vault_client

    started = utcnow()
    context = _context(context)
    ref = airflow_ref(context)
    gate = _TaskGate(
        policy=None, evidence_location=evidence_location, evidence_aws_conn_id=evidence_aws_conn_id
    )
    values: dict[str, SecretFields] = {}
    unwrapped: list[SecretHandle] = []
    try:
        handles = _parse_handles(
            context["ti"].xcom_pull(task_ids=gate_task_id, key=SECRET_HANDLES_XCOM_KEY), gate_task_id
        )
        if paths is not None:
            wanted = list(paths)
            by_path = {h.path: h for h in handles}
            unknown = [p for p in wanted if p not in by_path]
            if unknown:
                raise InputDataError(f"task '{gate_task_id}' handed over no secret for: {', '.join(unknown)}")
            handles = [by_path[p] for p in wanted]
        client = get_vault_client(vault_conn_id)
        for handle in handles:
            try:
                data = unwrap_handle(client, handle, mask=_mask)
            except WrappingTokenGone as exc:
                earlier = _earlier_try(gate, ref, handle.accessor)
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
        _record_unwrapped(gate, ref, unwrapped, strict=False)
        SecretValues(values).clear()  # drop what was unwrapped before the failure
        if isinstance(exc, SecurityViolationError):
            gate.fail_security(context, ref, exc, started)
        _raise_for(exc)
    _record_unwrapped(gate, ref, unwrapped, strict=True)
    log.info("secrets: unwrapped %d secret(s) from task %s: %s", len(values), gate_task_id, ", ".join(values))
    return SecretValues(values)


def _record_unwrapped(gate: _TaskGate, ref: AirflowRef, handles: list[SecretHandle], *, strict: bool) -> None:
    """Audit who unwrapped which token (accessors and paths only)."""
    if not handles:
        return
    try:
        gate.record_event(KIND_SECRET_UNWRAPPED, ref, handles=[h.public() for h in handles])
    except AisecError as exc:
        log.error("secrets: could not record the unwrap in the audit trail: %s", exc)
        if strict:
            raise AirflowException(
                f"secrets: could not record the unwrap in the audit trail: {exc}"
            ) from None


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
    from airflow_aisec.core.result import CheckOutcome, InputRef
    from airflow_aisec.core.secrets import (
        authorize_database_role,
        issue_database_credentials,
        lease_findings,
    )
    from airflow_aisec.hooks.vault import get_vault_client

    context = _context(context)
    ref = airflow_ref(context)
    gate = _TaskGate(
        policy=policy, evidence_location=evidence_location, evidence_aws_conn_id=evidence_aws_conn_id
    )
    issued: dict[str, Any] = {}

    def check(loaded: LoadedPolicy) -> CheckOutcome:
        section = loaded.policy.secrets
        authorize_database_role(section, ref.dag_id, ref.task_id, role)
        client = get_vault_client(vault_conn_id)
        creds = issue_database_credentials(client, section.database.mount, role, mask=_mask)
        issued.update(creds=creds, client=client)
        return CheckOutcome(
            findings=lease_findings(section, creds),
            metrics={"role": role, "lease_duration": creds.lease_duration, "lease_id": creds.lease_id},
            inputs=[InputRef(uri=f"vault://{section.database.mount}/creds/{role}")],
        )

    body_failed = False
    try:
        gate.run_gate(context, check)
        creds = issued["creds"]
        log.info(
            "secrets: database credentials for role %s, lease %s (%ss)",
            role,
            creds.lease_id,
            creds.lease_duration,
        )
        yield creds
    except BaseException:
        body_failed = True
        raise
    finally:
        if "creds" in issued:
            _revoke(gate, ref, issued["creds"], issued["client"], vault_conn_id, raise_errors=not body_failed)


def _revoke(
    gate: _TaskGate,
    ref: AirflowRef,
    creds: DatabaseCredentials,
    client: Any,
    vault_conn_id: str,
    *,
    raise_errors: bool,
) -> None:
    from airflow_aisec.core.result import utcnow
    from airflow_aisec.core.secrets import revoke_lease
    from airflow_aisec.exceptions import AccessDeniedError
    from airflow_aisec.hooks.vault import get_vault_client

    try:
        try:
            revoke_lease(client, creds.lease_id)
        except AccessDeniedError:
            # The task's token may have expired during a long task: authenticate again once.
            revoke_lease(get_vault_client(vault_conn_id), creds.lease_id)
    except AisecError as exc:
        log.error(
            "secrets: could not revoke lease %s of role %s: %s; the credentials expire after %ss",
            creds.lease_id,
            creds.role,
            exc,
            creds.lease_duration,
        )
        if raise_errors:
            raise AirflowFailException(
                f"secrets: could not revoke the database lease of role '{creds.role}' ({exc}); "
                "it expires after "
                f"{creds.lease_duration}s"
            ) from None
        return
    log.info("secrets: revoked lease %s of role %s", creds.lease_id, creds.role)
    try:
        gate.record_event(
            KIND_LEASE_REVOKED, ref, role=creds.role, lease_id=creds.lease_id, revoked_at=utcnow()
        )
    except AisecError as exc:
        log.error("secrets: could not record the lease revocation in the audit trail: %s", exc)
