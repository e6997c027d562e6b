"""The secrets gate operator: authorize, validate and hand off Vault KV secrets to downstream tasks.

:class:`VaultSecretsGateOperator` (gate ``secrets``) checks the policy grants this DAG/task the
requested KV paths, validates each secret (values masked the moment they are read), and hands
each one to downstream tasks as a single-use Vault *wrapping token* (TTL from the policy). The
tokens cross XCom (key :data:`SECRET_HANDLES_XCOM_KEY`) only sealed with ``[aisec] handoff_key``
(AES-256-GCM, bound to this DAG run and gate task), a key only the workers hold: a user who can
read XCom cannot unwrap anything. Without the key the gate hands nothing off (verdict ``error``).
The check is :func:`airflow_aisec.core.gates.secrets.check_secrets`, the same as
``aisec secrets check``.

The consumer side for task code lives in :mod:`airflow_aisec.task_secrets`
(:func:`vault_secrets`, :func:`vault_database_credentials`, :func:`unwrap_secrets`); the names
are re-exported here so that ``from airflow_aisec.operators.secrets import vault_secrets`` works.

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

    fetch >> train()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_aisec import settings
from airflow_aisec.constants import SECRET_HANDLES_XCOM_KEY
from airflow_aisec.operators.base import AisecGateOperator, airflow_ref
from airflow_aisec.task_secrets import (
    DEFAULT_VAULT_CONN_ID,
    SecretFields,
    SecretValues,
    unwrap_secrets,
    vault_database_credentials,
    vault_secrets,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_aisec.core.gate import PolicyLayers
    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import CheckOutcome, GateResult

__all__ = [
    "SECRET_HANDLES_XCOM_KEY",
    "SecretFields",
    "SecretValues",
    "VaultSecretsGateOperator",
    "unwrap_secrets",
    "vault_database_credentials",
    "vault_secrets",
]


def _mask(value: str) -> None:
    from airflow.sdk.log import mask_secret

    mask_secret(value)


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
        from airflow_aisec.core.gates.secrets import (
            authorize_paths,
            check_secrets,
            normalize_requests,
            parse_handoff_keys,
        )
        from airflow_aisec.hooks.vault import get_vault_client

        section = loaded.section(self.gate)
        ref = airflow_ref(context)
        requests = normalize_requests(self.paths)
        ttl = section.effective_wrap_ttl(self.wrap_ttl)
        # Refuse ungranted paths before touching Vault at all: this policy's grants and the baseline's.
        for granting in (section, *self.baseline_sections()):
            authorize_paths(granting, ref.dag_id, ref.task_id, [r.path for r in requests])
        # No key, no hand-off: refuse before anything is read or wrapped (never a plain token in XCom).
        parse_handoff_keys(settings.handoff_key())
        vault = get_vault_client(self.vault_conn_id)
        outcome = check_secrets(section, self.paths, dag_id=ref.dag_id, task_id=ref.task_id, vault=vault,
                                mask=_mask)
        # The hand-off happens in finish(), once, after the verdict under every policy (own and baseline).
        outcome.metrics.update(wrapped=0, wrap_ttl_seconds=ttl)
        return outcome

    def finish(self, result: GateResult, layers: PolicyLayers, context: Context) -> CheckOutcome | None:
        """Hand the secrets off (wrap, seal, push to XCom) once the verdict lets the run go on.

        Every policy that configures the gate must allow it: each one's grants (checked again), the
        same KV mount and version (a baseline's grants are relative to its mount), and a TTL within
        each one's ``wrap_ttl``. A DAG's own policy cannot widen what the baseline grants.
        """
        from airflow_aisec.core.gates.secrets import (
            authorize_paths,
            issue_wrapped_secrets,
            normalize_requests,
            parse_handoff_keys,
            seal_handles,
        )
        from airflow_aisec.core.result import CheckOutcome
        from airflow_aisec.exceptions import SecurityViolationError
        from airflow_aisec.hooks.vault import get_vault_client

        sections = layers.sections(self.gate)
        section = sections[0]
        ref = airflow_ref(context)
        requests = normalize_requests(self.paths)
        ttl = min(s.effective_wrap_ttl(self.wrap_ttl) for s in sections)
        for other in sections:
            authorize_paths(other, ref.dag_id, ref.task_id, [r.path for r in requests])
            if (other.kv_mount, other.kv_version) != (section.kv_mount, section.kv_version):
                raise SecurityViolationError(
                    f"the gate's policy reads KV mount '{section.kv_mount}' (v{section.kv_version}) but the "
                    f"baseline grants paths of '{other.kv_mount}' (v{other.kv_version}): hand-off refused",
                    rule=f"{self.gate}.path_not_allowed",
                    location={"dag_id": ref.dag_id, "task_id": ref.task_id, "kv_mount": section.kv_mount},
                )
        keys = parse_handoff_keys(settings.handoff_key())
        vault = get_vault_client(self.vault_conn_id)
        handles = issue_wrapped_secrets(
            vault, section, requests=requests, versions=result.metrics["versions"], ttl=ttl, mask=_mask
        )
        context["ti"].xcom_push(
            key=SECRET_HANDLES_XCOM_KEY,
            value=seal_handles(handles, keys, dag_id=ref.dag_id, run_id=ref.run_id, task_id=ref.task_id),
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
        return CheckOutcome(metrics={"wrapped": len(handles), "wrap_ttl_seconds": ttl})
