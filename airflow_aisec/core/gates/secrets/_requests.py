"""What a task asks for (secret paths, required keys) and whether the policy grants it.

A request outside the grants raises :class:`~airflow_aisec.exceptions.SecurityViolationError`,
which the gate reports as a critical, never-waived violation (enforcement levels cannot turn access
control off). A path Vault itself refuses is an access error instead (``AccessDeniedError``: verdict
``error``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_aisec.core.gates.secrets._masking import GATE
from airflow_aisec.core.policy.sections.secrets import ROLE_RE, SecretsPolicy
from airflow_aisec.exceptions import InputDataError, SecurityViolationError

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.@=+\-]+$")


def validate_secret_path(path: Any) -> str:
    """Check a concrete KV path (relative to the mount): ``team/app/db``.

    Segments use letters, digits and ``_ . @ = + -``; no ``.``/``..`` segments, no leading or
    trailing ``/``, no ``?``/``#``/``%`` (they would change the request URL).

    Raises:
        InputDataError: the path is malformed.
    """
    if not isinstance(path, str) or not path:
        raise InputDataError("secret path must be a non-empty string")
    if len(path) > 512:
        raise InputDataError("secret path is longer than 512 characters")
    for segment in path.split("/"):
        if segment in ("", ".", "..") or not _SEGMENT_RE.match(segment):
            raise InputDataError(
                f"invalid secret path {path!r}: use segments of [A-Za-z0-9_.@=+-] joined by '/'"
            )
    return path


@dataclass(frozen=True)
class SecretRequest:
    """One secret a task asks for, with the keys it needs (empty: any)."""

    path: str
    required_keys: tuple[str, ...] = ()


def normalize_requests(paths: Any) -> list[SecretRequest]:
    """Accept ``["a/b", ...]`` or ``{"a/b": ["key", ...], ...}`` (or a single path string).

    Raises:
        InputDataError: nothing requested, a malformed path, or a duplicate.
    """
    if isinstance(paths, str):
        paths = [paths]
    items: list[tuple[Any, Any]]
    if isinstance(paths, Mapping):
        items = list(paths.items())
    elif isinstance(paths, Iterable):
        items = [(p, ()) for p in paths]
    else:
        raise InputDataError("paths must be a list of secret paths or a mapping of path to required keys")
    if not items:
        raise InputDataError("no secret paths requested")
    out: list[SecretRequest] = []
    seen: set[str] = set()
    for path, keys in items:
        validate_secret_path(path)
        if path in seen:
            raise InputDataError(f"secret path {path!r} requested twice")
        seen.add(path)
        if keys is None:
            keys = ()
        if isinstance(keys, str) or not isinstance(keys, Iterable):
            raise InputDataError(f"required keys for {path!r} must be a list of key names")
        keys = tuple(keys)
        if not all(isinstance(k, str) and k for k in keys):
            raise InputDataError(f"required keys for {path!r} must be non-empty strings")
        out.append(SecretRequest(path=path, required_keys=keys))
    return out


def _who(dag_id: str, task_id: str | None) -> str:
    return f"DAG '{dag_id}' task '{task_id}'" if task_id is not None else f"DAG '{dag_id}'"


def authorize_paths(section: SecretsPolicy, dag_id: str, task_id: str | None, paths: Sequence[str]) -> None:
    """Refuse any path no grant gives this DAG/task (``task_id`` None: any task of the DAG).

    Raises:
        SecurityViolationError: rule ``secrets.path_not_allowed``, naming the refused paths.
    """
    refused = [p for p in paths if not section.path_allowed(dag_id, task_id, p)]
    if refused:
        raise SecurityViolationError(
            f"policy does not allow {_who(dag_id, task_id)} to read {len(refused)} secret path(s): "
            + ", ".join(refused),
            rule=f"{GATE}.path_not_allowed",
            location={"dag_id": dag_id, "task_id": task_id, "paths": list(refused)},
        )


def authorize_database_role(section: SecretsPolicy, dag_id: str, task_id: str | None, role: str) -> None:
    """Refuse a database role no grant gives this DAG/task.

    Raises:
        InputDataError: malformed role name.
        SecurityViolationError: rule ``secrets.database_role_not_allowed``.
    """
    if not isinstance(role, str) or not ROLE_RE.match(role):
        raise InputDataError("database role must be a literal role name of [A-Za-z0-9_.-]")
    if not section.database_role_allowed(dag_id, task_id, role):
        raise SecurityViolationError(
            f"policy does not allow {_who(dag_id, task_id)} to get credentials "
            f"for database role '{role}'",
            rule=f"{GATE}.database_role_not_allowed",
            location={"dag_id": dag_id, "task_id": task_id, "role": role},
        )
