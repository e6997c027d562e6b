"""Set-up helpers for the session's OpenBao server (shared by every test module: names must not clash).

Each takes an ``hvac.Client`` (``bao_server.client()``) holding the root token.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

PG_CREATE_ROLE = ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]


def vault_conn_json(addr: str, **fields: Any) -> str:
    """An Airflow ``vault`` connection (JSON, for ``AIRFLOW_CONN_*``) to the server at ``addr``."""
    host, port = addr.removeprefix("http://").rsplit(":", 1)
    return json.dumps({"conn_type": "vault", "host": host, "port": int(port), **fields})


def enable_engine(client, engine: str, path: str) -> None:
    """Mount a secrets engine at ``path`` unless another test module already did."""
    if f"{path}/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine(engine, path=path)


def seed_kv(client, kv: dict[str, dict[str, str]]) -> None:
    """Write KV v2 secrets (path -> data) under ``secret/``."""
    for path, data in kv.items():
        client.secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point="secret")


def limited_token(client, policy_name: str, rules: str, ttl: str) -> str:
    """A token that holds only the ACL policy ``policy_name`` (HCL ``rules``)."""
    client.sys.create_or_update_policy(policy_name, rules)
    return client.auth.token.create(policies=[policy_name], ttl=ttl)["auth"]["client_token"]


def postgres_database_engine(client, mount: str, roles: dict[str, tuple[str, str]]) -> None:
    """Database secrets engine at ``mount`` for local PostgreSQL; ``roles``: name -> (default, max TTL)."""
    enable_engine(client, "database", mount)
    client.secrets.database.configure(
        name="pg",
        plugin_name="postgresql-database-plugin",
        mount_point=mount,
        connection_url="postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
        username="postgres",
        password="trust-auth-ignores-this",
        allowed_roles=list(roles),
    )
    for name, (default_ttl, max_ttl) in roles.items():
        client.secrets.database.create_role(
            name=name,
            db_name="pg",
            creation_statements=PG_CREATE_ROLE,
            default_ttl=default_ttl,
            max_ttl=max_ttl,
            mount_point=mount,
        )


def example_pipeline_vault(client, secret_path: str = "ml/training/feature-store") -> str:
    """What ``docker/openbao/init.sh`` sets up for the example pipeline: the KV secret (a fresh value,
    returned) and the Transit key ``model-signing``."""
    value = "fs-" + secrets.token_urlsafe(18)
    seed_kv(client, {secret_path: {"token": value}})
    enable_engine(client, "transit", "transit")
    try:
        client.secrets.transit.read_key(name="model-signing", mount_point="transit")
    except Exception:  # noqa: BLE001 - not there yet (another test module may have created it)
        client.secrets.transit.create_key(name="model-signing", key_type="ecdsa-p256", mount_point="transit")
    return value


def open_handoff(value: Any, *, dag_id: str, run_id: str, task_id: str = "fetch") -> list[dict[str, Any]]:
    """The handles of a sealed hand-off XCom with their wrapping tokens opened, as a worker opens them
    (with ``[aisec] handoff_key`` of this process)."""
    from airflow_aisec import settings
    from airflow_aisec.core.gates.secrets import open_handles, parse_handoff_keys

    if isinstance(value, str):
        value = json.loads(value)
    keys = parse_handoff_keys(settings.handoff_key())
    return [h.model_dump(mode="json")
            for h in open_handles(value, keys, dag_id=dag_id, run_id=run_id, task_id=task_id)]
