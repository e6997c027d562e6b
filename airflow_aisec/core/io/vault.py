"""The one Vault (or OpenBao) client of the project: every request the gates make goes through it.

In the style of Airflow's hashicorp provider (a private ``_VaultClient`` owns every call and the
hook only maps a connection to it): :class:`VaultClient` wraps an authenticated ``hvac.Client``
and has one method per request the gates need (KV read/list/wrap, ``sys/capabilities-self``,
response-wrapping lookup/unwrap, database credentials and lease revocation, Transit read-key and
sign). Each method translates hvac / requests errors in one place (:func:`translate_vault_errors`),
so every gate tells "unreachable or sealed, retry" (:class:`ServiceUnavailableError`, CLI exit 3,
Airflow retry) from "denied or missing, fix it" the same way.

Where the client comes from: operators use ``airflow_aisec.hooks.vault.get_vault_client`` (Airflow's
``VaultHook``, every auth method it supports); the CLI uses :meth:`VaultClient.from_env`
(``VAULT_ADDR`` / ``VAULT_TOKEN``). Gates receive it injected (``vault=``) and never build one.
Messages name paths, never values; ``hvac`` and ``requests`` are imported only when used.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_aisec.exceptions import (
    AccessDeniedError,
    ConfigurationError,
    InputDataError,
    ServiceUnavailableError,
)

#: Vault's answer to a lookup/unwrap of a wrapping token that no longer exists.
_TOKEN_GONE = "wrapping token is not valid or does not exist"


@contextlib.contextmanager
def translate_vault_errors(what: str, *, gate: str | None = None) -> Iterator[None]:
    """Map hvac / requests errors to project exceptions. ``what`` names the path, never a value.

    Args:
        what: The Vault path or object concerned (shown in messages).
        gate: When given, denied/missing errors carry rule ids ``<gate>.vault_access_denied`` /
            ``<gate>.path_missing`` (otherwise no rule id).

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


def vault_uri(mount: str, path: str, version: int | None = None) -> str:
    """``vault://mount/path[?version=N]``: how results and messages name a KV secret."""
    return f"vault://{mount}/{path}" + (f"?version={version}" if version else "")


def kv_api_path(mount: str, path: str, kv_version: int) -> str:
    """Vault API path (without ``/v1/``) of a KV secret: ``secret/data/a/b`` for KV v2."""
    return f"{mount}/data/{path}" if kv_version == 2 else f"{mount}/{path}"


@dataclass(frozen=True, repr=False)
class KvSecret:
    """One KV secret as read: its key/value data and (KV v2) version. ``repr`` shows no value."""

    data: dict[str, Any]
    version: int | None

    def __repr__(self) -> str:
        return f"KvSecret(keys={sorted(self.data)!r}, version={self.version})"


def kv_secret(response: Any, *, kv_version: int, what: str, gate: str | None = None) -> KvSecret:
    """The secret in a KV read response (also an unwrapped one); a deleted or destroyed version is missing.

    Raises:
        AccessDeniedError: no data, or a deleted/destroyed version (rule ``<gate>.path_missing``).
        InputDataError: the data is not a key/value object.
    """
    missing_rule = f"{gate}.path_missing" if gate else None
    body = response.get("data") if isinstance(response, Mapping) else None
    if kv_version == 2:
        data = body.get("data") if isinstance(body, Mapping) else None
        meta = body.get("metadata") if isinstance(body, Mapping) else None
        version = meta.get("version") if isinstance(meta, Mapping) else None
        deleted = isinstance(meta, Mapping) and (meta.get("deletion_time") or meta.get("destroyed"))
        if data is None or deleted:
            raise AccessDeniedError(f"Vault path not found (deleted or destroyed): {what}", rule=missing_rule)
    else:
        data, version = body, None
        if data is None:
            raise AccessDeniedError(f"Vault path not found: {what}", rule=missing_rule)
    if not isinstance(data, Mapping):
        raise InputDataError(f"Vault secret at {what} is not a key/value object")
    return KvSecret(dict(data), int(version) if isinstance(version, int) else None)


def _url(api_path: str) -> str:
    from hvac import utils

    return utils.format_url("/v1/{path}", path=api_path)


def _token_gone(exc: BaseException) -> bool:
    errors = getattr(exc, "errors", None) or [str(exc)]
    return any(_TOKEN_GONE in str(e) for e in errors)


class VaultClient:
    """Every Vault request of the gates, over one authenticated ``hvac.Client``.

    Each method raises :class:`ServiceUnavailableError` (retryable) when Vault is unreachable,
    sealed or failing, :class:`AccessDeniedError` when it denies the request or the path does not
    exist, :class:`InputDataError` when it rejects the request as invalid. ``gate`` arguments set
    the rule ids of denials (``<gate>.vault_access_denied`` / ``<gate>.path_missing``); ``what``
    arguments override how a message names the object (never a value).

    Args:
        client: An authenticated ``hvac.Client`` (from ``VaultHook.get_conn()`` or :meth:`from_env`).
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def from_env(cls, addr: str | None = None, token: str | None = None) -> VaultClient:
        """A client from ``VAULT_ADDR`` / ``VAULT_TOKEN`` (the CLI's configuration).

        Honours ``VAULT_NAMESPACE``, ``VAULT_CACERT`` (CA bundle) and ``VAULT_SKIP_VERIFY``.
        Nothing is sent to Vault yet.

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
        return cls(hvac.Client(
            url=addr, token=token, namespace=os.environ.get("VAULT_NAMESPACE") or None, verify=verify
        ))

    def __repr__(self) -> str:
        return f"VaultClient(url={getattr(getattr(self._client, 'adapter', None), 'base_uri', '?')!r})"

    # --- KV ------------------------------------------------------------------------------------
    def kv_read(
        self,
        mount: str,
        path: str,
        *,
        kv_version: int = 2,
        version: int | None = None,
        gate: str | None = None,
        what: str | None = None,
    ) -> KvSecret:
        """Read one KV secret (a given KV v2 ``version``, default the latest).

        Raises:
            AccessDeniedError: denied, missing, or a deleted/destroyed version.
        """
        what = what or vault_uri(mount, path)
        params = {"version": version} if version is not None and kv_version == 2 else None
        with translate_vault_errors(what, gate=gate):
            response = self._client.adapter.get(_url(kv_api_path(mount, path, kv_version)), params=params)
        return kv_secret(response, kv_version=kv_version, what=what, gate=gate)

    def kv_wrap(
        self,
        mount: str,
        path: str,
        *,
        ttl: int,
        kv_version: int = 2,
        version: int | None = None,
        gate: str | None = None,
        what: str | None = None,
    ) -> Mapping[str, Any]:
        """Have Vault wrap a read of one KV secret (``X-Vault-Wrap-TTL``); returns its ``wrap_info``.

        The wrapping token's ``creation_path`` names the real secret path, and the value never
        reaches this process.

        Raises:
            InputDataError: Vault did not return wrap information.
        """
        what = what or vault_uri(mount, path, version)
        params = {"version": version} if version is not None and kv_version == 2 else None
        with translate_vault_errors(what, gate=gate):
            response = self._client.adapter.get(
                _url(kv_api_path(mount, path, kv_version)), params=params, wrap_ttl=f"{ttl}s"
            )
        info = response.get("wrap_info") if isinstance(response, Mapping) else None
        if not isinstance(info, Mapping) or not info.get("token"):
            raise InputDataError(f"Vault did not wrap the response for {what}")
        return info

    def kv_list(
        self, mount: str, folder: str, *, kv_version: int = 2, gate: str | None = None, what: str | None = None
    ) -> list[str] | None:
        """Keys under a KV folder (``name`` or ``name/`` for sub-folders); None if the folder does not exist."""
        from hvac import exceptions as hv

        api_path = (f"{mount}/metadata/{folder}" if kv_version == 2 else f"{mount}/{folder}").rstrip("/")
        with translate_vault_errors(what or vault_uri(mount, folder) + " (list)", gate=gate):
            try:
                response = self._client.adapter.list(_url(api_path))
            except hv.InvalidPath:
                return None
        keys = ((response or {}).get("data") or {}).get("keys") if isinstance(response, Mapping) else None
        return [str(k) for k in keys or []]

    def capabilities_self(self, api_path: str, *, gate: str | None = None) -> list[str]:
        """The token's capabilities on one API path (``sys/capabilities-self``); nothing is read."""
        with translate_vault_errors(f"vault://{api_path} (capabilities)", gate=gate):
            response = self._client.adapter.post("/v1/sys/capabilities-self", json={"paths": [api_path]})
        response = response if isinstance(response, Mapping) else {}
        caps = (response.get("data") or {}).get(api_path) or response.get(api_path) or []
        return [str(c) for c in caps]

    # --- response wrapping -----------------------------------------------------------------------
    def wrapping_lookup(self, token: str, *, what: str, gate: str | None = None) -> Mapping[str, Any] | None:
        """Wrap information of a wrapping token without consuming it; None if the token no longer exists."""
        from hvac import exceptions as hv

        with translate_vault_errors(f"wrapping token for {what}", gate=gate):
            try:
                info = self._client.adapter.post("/v1/sys/wrapping/lookup", json={"token": token})
            except hv.InvalidRequest as exc:
                if _token_gone(exc):
                    return None
                raise
        data = info.get("data") if isinstance(info, Mapping) else None
        return data if isinstance(data, Mapping) else {}

    def unwrap(self, token: str, *, what: str, gate: str | None = None) -> Any | None:
        """Unwrap (consume) a wrapping token; the wrapped response, or None if the token no longer exists."""
        from hvac import exceptions as hv

        with translate_vault_errors(f"wrapping token for {what}", gate=gate):
            try:
                return self._client.sys.unwrap(token=token)
            except hv.InvalidRequest as exc:
                if _token_gone(exc):
                    return None
                raise

    # --- database secrets engine ---------------------------------------------------------------
    def database_credentials(self, mount: str, role: str, *, gate: str | None = None) -> Mapping[str, Any]:
        """Ask the database secrets engine for credentials: the raw response (data, lease_id, ...)."""
        with translate_vault_errors(f"vault://{mount}/creds/{role}", gate=gate):
            response = self._client.adapter.get(_url(f"{mount}/creds/{role}"))
        return response if isinstance(response, Mapping) else {}

    def revoke_lease(self, lease_id: str, *, gate: str | None = None) -> None:
        """Revoke a lease now (synchronously: a database user is dropped before this returns).

        The lease id goes in the URL first (``sys/leases/revoke/<lease_id>``), so a least-privilege
        Vault policy can allow ``sys/leases/revoke/<mount>/creds/<role>/*`` only; a token that is
        allowed the bare ``sys/leases/revoke`` endpoint instead is served by the body form.
        The caller validates ``lease_id`` (it becomes part of the URL).
        """
        from hvac import exceptions as hv

        with translate_vault_errors(f"lease {lease_id}", gate=gate):
            try:
                self._client.adapter.put(f"/v1/sys/leases/revoke/{lease_id}", json={"sync": True})
            except hv.Forbidden:
                self._client.adapter.put("/v1/sys/leases/revoke", json={"lease_id": lease_id, "sync": True})

    # --- Transit -------------------------------------------------------------------------------
    def transit_read_key(self, name: str, *, mount: str = "transit") -> Mapping[str, Any]:
        """A Transit key's description (``GET transit/keys/NAME``): type, versions, public keys."""
        with translate_vault_errors(f"transit key '{name}' on mount '{mount}'"):
            response = self._client.secrets.transit.read_key(name=name, mount_point=mount)
        data = (response or {}).get("data") if isinstance(response, Mapping) else None
        return data if isinstance(data, Mapping) else {}

    def transit_sign_digest(self, name: str, digest: bytes, *, mount: str, version: int) -> bytes:
        """Have Vault sign a sha256 digest with one Transit key version; returns the DER signature.

        ``prehashed=True``, ``hash_algorithm=sha2-256``, ``marshaling_algorithm=asn1``: the ECDSA
        signature over the digest as stock verifiers expect it.

        Raises:
            InputDataError: Vault answered with a signature of another key version, or an undecodable one.
        """
        with translate_vault_errors(f"transit/sign/{name} on mount '{mount}'"):
            response = self._client.secrets.transit.sign_data(
                name=name,
                hash_input=base64.b64encode(digest).decode("ascii"),
                key_version=version,
                hash_algorithm="sha2-256",
                prehashed=True,
                marshaling_algorithm="asn1",
                mount_point=mount,
            )
        signature = str(((response or {}).get("data") or {}).get("signature", ""))
        prefix = f"vault:v{version}:"
        if not signature.startswith(prefix):
            raise InputDataError(f"Vault Transit returned a signature not made by version {version} of '{name}'")
        try:
            return base64.b64decode(signature[len(prefix):], validate=True)
        except (binascii.Error, ValueError):
            raise InputDataError(f"Vault Transit returned an undecodable signature for '{name}'") from None
