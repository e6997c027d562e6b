"""The ``secrets`` gate: who may read which Vault secret, wrapped hand-off, dynamic database credentials.

:func:`check_secrets` is the entry point (:mod:`.check`), shared by ``VaultSecretsGateOperator``
and ``aisec secrets check``. The building blocks the operator and the task-side helpers
(:mod:`airflow_aisec.task_secrets`) use: requests and authorization (``_requests``), masking
(``_masking``), KV reads and validation (``_kv``), response-wrapping hand-off (``_wrapping``),
sealed for XCom with ``[aisec] handoff_key`` (``_handoff``), dynamic database credentials (``_database``) and grant enumeration (``_grants``). Every Vault
request goes through the injected :class:`~airflow_aisec.core.io.vault.VaultClient`; this
package never imports Airflow, and ``hvac`` only when a request is made.
"""

from airflow_aisec.core.gates.secrets._database import (
    DatabaseCredentials,
    issue_database_credentials,
    lease_findings,
    revoke_lease,
)
from airflow_aisec.core.gates.secrets._handoff import (
    new_handoff_key,
    open_handles,
    parse_handoff_keys,
    seal_handles,
)
from airflow_aisec.core.gates.secrets._kv import read_kv, validate_secrets
from airflow_aisec.core.gates.secrets._masking import (
    GATE,
    MIN_MASKABLE_LENGTH,
    Mask,
    iter_leaves,
    mask_values,
    no_mask,
)
from airflow_aisec.core.gates.secrets._requests import (
    SecretRequest,
    authorize_database_role,
    authorize_paths,
    normalize_requests,
    validate_secret_path,
)
from airflow_aisec.core.gates.secrets._wrapping import (
    SecretHandle,
    WrappingTokenGone,
    issue_wrapped_secrets,
    unwrap_handle,
    wrap_kv,
)
from airflow_aisec.core.gates.secrets.check import check_secrets

__all__ = [
    "GATE",
    "MIN_MASKABLE_LENGTH",
    "DatabaseCredentials",
    "Mask",
    "SecretHandle",
    "SecretRequest",
    "WrappingTokenGone",
    "authorize_database_role",
    "authorize_paths",
    "check_secrets",
    "issue_database_credentials",
    "issue_wrapped_secrets",
    "iter_leaves",
    "lease_findings",
    "mask_values",
    "new_handoff_key",
    "no_mask",
    "normalize_requests",
    "open_handles",
    "parse_handoff_keys",
    "read_kv",
    "revoke_lease",
    "seal_handles",
    "unwrap_handle",
    "validate_secret_path",
    "validate_secrets",
    "wrap_kv",
]
