"""Maps an Airflow Vault connection to the project's one Vault client.

Airflow's hashicorp ``VaultHook`` authenticates (token, AppRole, JWT, Kubernetes, ... unchanged);
:func:`get_vault_client` wraps the ``hvac.Client`` it returns in
:class:`~airflow_aisec.core.io.vault.VaultClient`, which owns every request the gates make.
``VaultHook`` reads its connection in ``__init__``, so this is only called at run time (inside
``execute`` or a task), never while a DAG is parsed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_aisec.core.io.vault import translate_vault_errors
from airflow_aisec.exceptions import ConfigurationError

if TYPE_CHECKING:
    from airflow_aisec.core.io.vault import VaultClient

DEFAULT_VAULT_CONN_ID = "vault_default"


def get_vault_client(vault_conn_id: str = DEFAULT_VAULT_CONN_ID, **hook_kwargs: Any) -> VaultClient:
    """The :class:`VaultClient` of an Airflow connection, authenticated through ``VaultHook``.

    Args:
        vault_conn_id: Airflow connection of type ``vault`` (or ``http``/``https``).
        hook_kwargs: Passed to ``VaultHook`` (``auth_type``, ``role_id``, ...).

    Raises:
        ConfigurationError: the connection is missing or invalid.
        ServiceUnavailableError: Vault unreachable or sealed (e.g. during an AppRole login): retryable.
        AccessDeniedError: Vault refused a login (AppRole, JWT, ...). A bad token shows up as
            a denial on the first request that uses it.
    """
    from airflow.providers.hashicorp.hooks.vault import VaultHook
    from airflow.sdk.exceptions import AirflowNotFoundException
    from hvac.exceptions import VaultError

    from airflow_aisec.core.io.vault import VaultClient

    try:
        hook = VaultHook(vault_conn_id=vault_conn_id, **hook_kwargs)
    except AirflowNotFoundException:
        raise ConfigurationError(f"Vault connection '{vault_conn_id}' is not defined") from None
    except (VaultError, ValueError, TypeError) as exc:
        # The hook validates the URL scheme and KV version here; its messages name no secret.
        raise ConfigurationError(
            f"Vault connection '{vault_conn_id}' is invalid: {type(exc).__name__}"
        ) from None
    # get_conn() authenticates (AppRole, JWT, ...) and probes the token: both can hit the network.
    with translate_vault_errors(f"Vault connection '{vault_conn_id}'"):
        return VaultClient(hook.get_conn())
