"""Entry point of the secrets gate: :func:`check_secrets`, the one check of the operator and the CLI.

``VaultSecretsGateOperator`` runs it on the paths its task requests (then wraps them for the
downstream tasks); ``aisec secrets check`` runs it on the same paths, or on everything the
policy grants a DAG. Same policy, same paths, same DAG and task: same verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from airflow_aisec.core.gates.secrets._grants import check_database_role, granted
from airflow_aisec.core.gates.secrets._kv import validate_secrets
from airflow_aisec.core.gates.secrets._masking import Mask, no_mask
from airflow_aisec.core.gates.secrets._requests import normalize_requests
from airflow_aisec.core.policy.sections.secrets import SecretsPolicy
from airflow_aisec.core.result import CheckOutcome
from airflow_aisec.exceptions import InputDataError

if TYPE_CHECKING:
    from airflow_aisec.core.io.vault import VaultClient


def check_secrets(
    section: SecretsPolicy,
    paths: Sequence[str] | Mapping[str, Sequence[str]] | str | None,
    *,
    dag_id: str,
    task_id: str | None = None,
    vault: VaultClient,
    mask: Mask = no_mask,
) -> CheckOutcome:
    """Authorize and validate the secrets a DAG's task reads (values are masked, then dropped).

    Every path must be granted to the DAG/task by the policy (else a critical, never-waived
    ``secrets.path_not_allowed``), readable in Vault (else an error: ``secrets.vault_access_denied``
    / ``secrets.path_missing``) and have its required keys; a value too short for Airflow's masker
    is a ``secrets.value_unmaskable`` finding unless the policy exempts its key.

    Args:
        section: The ``secrets`` policy section.
        paths: Secret paths relative to ``section.kv_mount``: a list, or a mapping of path to the
            keys the consumer needs. None: everything the grants give this DAG/task (patterns
            expanded by listing; a pattern matching nothing is a finding), plus its database roles
            (checked with ``sys/capabilities-self``, no credentials are created).
        dag_id: The DAG that reads them.
        task_id: The task that reads them; None: any task of the DAG.
        vault: Vault client.
        mask: Called with every value read (``mask_secret`` in tasks; the CLI prints no value).

    Returns:
        Value-free outcome; ``metrics["versions"]`` maps each path to the KV version validated.

    Raises:
        SecurityViolationError: a path not granted by the policy.
        AccessDeniedError: a path denied by Vault or missing; a database role unreadable.
        InputDataError: malformed paths, a required key missing, or nothing granted at all.
        ServiceUnavailableError: Vault unreachable or sealed (retryable).
    """
    if paths is not None:
        outcome, versions = validate_secrets(vault, section, dag_id=dag_id, task_id=task_id,
                                             requests=normalize_requests(paths), mask=mask)
        outcome.metrics["versions"] = versions
        return outcome
    grants = granted(vault, section, dag_id=dag_id, task_id=task_id)
    if not grants.paths and not grants.database_roles and not grants.findings:
        who = f"DAG '{dag_id}'" + (f" task '{task_id}'" if task_id is not None else "")
        raise InputDataError(f"the policy grants {who} no secret path or database role")
    outcome, versions = validate_secrets(vault, section, dag_id=dag_id, task_id=task_id,
                                         requests=normalize_requests(grants.paths) if grants.paths else [],
                                         mask=mask)
    outcome.findings[:0] = grants.findings
    outcome.inputs.extend(check_database_role(vault, section, role) for role in grants.database_roles)
    outcome.metrics.update(versions=versions, patterns=grants.patterns, database_roles=len(grants.database_roles))
    return outcome
