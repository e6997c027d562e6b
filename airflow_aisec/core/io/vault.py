"""Vault (or OpenBao) client plumbing shared by the secrets and signing gates.

The core takes an ``hvac.Client``. Operators get one from Airflow's
``VaultHook(vault_conn_id).get_conn()``; the CLI builds one from the standard
``VAULT_ADDR`` / ``VAULT_TOKEN`` environment. hvac's exceptions are translated
so callers can tell "unreachable or sealed, retry" from "denied or missing, fix it".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from airflow_aisec.exceptions import (
    AccessDeniedError,
    ConfigurationError,
    InputDataError,
    ServiceUnavailableError,
)


def client_from_env(addr: str | None = None, token: str | None = None) -> Any:
    """An ``hvac.Client`` from ``VAULT_ADDR`` / ``VAULT_TOKEN`` (the CLI's configuration).

    Honours ``VAULT_NAMESPACE``, ``VAULT_CACERT`` (CA bundle) and ``VAULT_SKIP_VERIFY``.

    Raises:
        ConfigurationError: no address or token configured.
    """
    import hvac

    addr = addr or os.environ.get("VAULT_ADDR")
    token = token or os.environ.get("VAULT_TOKEN")
    if not addr:
        raise ConfigurationError("VAULT_ADDR is not set")
    if not token:
        raise ConfigurationError("VAULT_TOKEN is not set")
    verify: bool | str = True
    if os.environ.get("VAULT_CACERT"):
        verify = os.environ["VAULT_CACERT"]
    elif os.environ.get("VAULT_SKIP_VERIFY", "").strip().lower() in ("1", "true", "yes"):
        verify = False
    return hvac.Client(
        url=addr, token=token, namespace=os.environ.get("VAULT_NAMESPACE") or None, verify=verify
    )


@contextlib.contextmanager
def translate_vault_errors(what: str, *, gate: str | None = None) -> Iterator[None]:
    """Map hvac / requests errors to project exceptions. ``what`` names the path, never a value.

    Args:
        what: The Vault path or object concerned (shown in messages).
        gate: When given, denied/missing errors carry rule ids ``<gate>.vault_access_denied`` /
            ``<gate>.path_missing`` (otherwise the gate's generic ``security_violation`` rule).

    Raises:
        ServiceUnavailableError: unreachable, sealed, rate-limited or a server error (retryable).
        AccessDeniedError: permission denied or a missing path (not retryable).
        InputDataError: Vault rejected the request as invalid.
    """
    import requests
    from hvac import exceptions as hv

    denied_rule = f"{gate}.vault_access_denied" if gate else None
    missing_rule = f"{gate}.path_missing" if gate else None
    try:
        yield
    except (hv.VaultDown, hv.BadGateway, hv.InternalServerError) as exc:
        raise ServiceUnavailableError(
            f"Vault unavailable or sealed for {what}: {type(exc).__name__}"
        ) from None
    except hv.RateLimitExceeded:
        raise ServiceUnavailableError(f"Vault rate limit for {what}") from None
    except (hv.Forbidden, hv.Unauthorized):
        raise AccessDeniedError(
            f"Vault denied access to {what}", rule=denied_rule, location={"vault": what}
        ) from None
    except hv.InvalidPath:
        raise AccessDeniedError(
            f"Vault path not found: {what}", rule=missing_rule, location={"vault": what}
        ) from None
    except hv.InvalidRequest as exc:
        errors = "; ".join(str(e) for e in (getattr(exc, "errors", None) or [])[:3])
        raise InputDataError(
            f"Vault rejected the request for {what}: {errors or 'invalid request'}"
        ) from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise ServiceUnavailableError(f"Vault unreachable for {what}: {type(exc).__name__}") from None
    except hv.VaultError as exc:
        raise ServiceUnavailableError(f"Vault error for {what}: {type(exc).__name__}") from None
