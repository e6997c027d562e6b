"""Secrets from Vault: who may read what, wrapped hand-off between tasks, dynamic database credentials.

The policy section (:class:`SecretsPolicy`) grants KV paths and database roles to DAGs by
``dag_id`` glob (optionally narrowed by ``task_id`` glob). Everything else is refused: a request
outside the grants raises :class:`~airflow_aisec.exceptions.AccessDeniedError`, which the gate
reports as a critical, never-waived violation (enforcement levels cannot turn access control off).

Hand-off between tasks uses Vault response wrapping. The gate:

1. reads each requested secret once to validate it (exists, not deleted, required keys present,
   every value long enough for Airflow's masker), registering each value with the masker first;
2. asks Vault to *wrap* a read of exactly that version (``X-Vault-Wrap-TTL``), so the wrapping
   token's ``creation_path`` names the real secret path (a token minted with ``sys/wrapping/wrap``
   would say ``sys/wrapping/wrap`` and could carry anything);
3. hands out only :class:`SecretHandle` objects (the wrapping token plus value-free metadata).

The consumer looks the token up (``sys/wrapping/lookup``), refuses a token whose creation path is
not the expected one (substituted), unwraps it once (``sys/wrapping/unwrap``) and masks every
value before returning it. A token that no longer exists before its TTL ran out was unwrapped by
someone else: :class:`~airflow_aisec.exceptions.SecurityViolationError`.

This module never imports Airflow. Functions that touch Vault take an ``hvac.Client`` and a
``mask`` callable (``airflow.sdk.log.mask_secret`` in tasks, a no-op in the CLI).
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from airflow_aisec.core.policy.base import GateSection, Severity, StrictModel
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef
from airflow_aisec.core.io.vault import translate_vault_errors
from airflow_aisec.exceptions import (
    AccessDeniedError,
    ConfigurationError,
    InputDataError,
    SecurityViolationError,
)

GATE = "secrets"

#: Airflow's masker ignores shorter strings (``SecretsMasker.min_length_to_mask``), so such a value
#: could be logged in clear: the gate reports it unless the key is exempted by the policy.
MIN_MASKABLE_LENGTH = 5
#: Strings the masker never masks (``SECRETS_TO_SKIP_MASKING``).
UNMASKABLE_WORDS = frozenset({"airflow"})

#: Largest accepted TTLs (Vault's own ceilings are configurable; these keep policies sane).
MAX_WRAP_TTL_SECONDS = 24 * 3600
MAX_LEASE_TTL_SECONDS = 7 * 24 * 3600
#: Upper bound on secrets enumerated for one pattern by ``aisec secrets check``.
MAX_PATTERN_MATCHES = 1000
#: Clock-skew allowance when telling an expired wrapping token from a stolen one.
EXPIRY_GRACE_SECONDS = 5

#: Version of the handle format that crosses XCom.
HANDLE_VERSION = 1

Mask = Callable[[str], None]

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.@=+\-]+$")
_PATTERN_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.@=+\-*]+$")
_MOUNT_RE = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")
_ROLE_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _no_mask(_value: str) -> None:
    """Mask callable for contexts that never print values (the CLI)."""


# --------------------------------------------------------------------------------------------
# Paths and patterns
# --------------------------------------------------------------------------------------------
def parse_duration(value: Any) -> int:
    """Seconds from an int or a Vault-style duration (``"90s"``, ``"5m"``, ``"1h"``, ``"1d"``).

    Raises:
        ValueError: not a positive duration.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError("expected a duration such as 300, '300s', '5m' or '1h'")
    if seconds <= 0:
        raise ValueError("duration must be positive")
    return seconds


#: Seconds; written as an int or a Vault-style duration string (the JSON Schema accepts both).
Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": r"^\s*\d+\s*[smhd]?\s*$"},
            ]
        }
    ),
]


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


def _validate_pattern(pattern: str) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("path pattern must be a non-empty string")
    for segment in pattern.split("/"):
        if segment in ("", ".", "..") or not _PATTERN_SEGMENT_RE.match(segment):
            raise ValueError(
                f"invalid path pattern {pattern!r}: segments of [A-Za-z0-9_.@=+-*] joined by '/'"
            )
        if "**" in segment and segment != "**":
            raise ValueError(f"invalid path pattern {pattern!r}: '**' must be a whole segment")
    return pattern


def _segment_regex(segment: str) -> str:
    return "".join("[^/]*" if ch == "*" else re.escape(ch) for ch in segment)


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path pattern: ``*`` matches within one segment, a ``**`` segment any number of segments."""
    parts = pattern.split("/")
    regex = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _segment_regex(part) + ("" if last else "/")
    return re.compile(rf"\A{regex}\Z")


def path_matches(pattern: str, path: str) -> bool:
    """Whether a concrete path matches a grant pattern (see :func:`pattern_regex`)."""
    return pattern_regex(pattern).match(path) is not None


def is_literal(pattern: str) -> bool:
    return "*" not in pattern


def literal_prefix(pattern: str) -> str:
    """The leading segments of a pattern without wildcards (``a/b/*/c`` -> ``a/b``)."""
    out = []
    for segment in pattern.split("/"):
        if "*" in segment:
            break
        out.append(segment)
    return "/".join(out)


# --------------------------------------------------------------------------------------------
# Policy section
# --------------------------------------------------------------------------------------------
def _valid_mount(value: str) -> str:
    if not _MOUNT_RE.match(value):
        raise ValueError(f"invalid mount {value!r}")
    return value


class SecretGrant(StrictModel):
    """Which secrets the matching DAGs (and tasks) may read.

    Attributes:
        dag_id: ``fnmatch`` glob over DAG ids.
        task_id: ``fnmatch`` glob over the id of the task that reads (the gate task for a wrapped
            hand-off, the task itself for dynamic credentials). Default ``*``.
        paths: KV path patterns relative to ``kv_mount``: ``*`` matches within one segment,
            a ``**`` segment matches any depth.
        database_roles: Database secrets engine roles (literal names) the tasks may get
            credentials for.
        reason: Why the grant exists (ticket, owner).
    """

    dag_id: str = Field(min_length=1)
    task_id: str = Field(default="*", min_length=1)
    paths: list[str] = Field(default_factory=list)
    database_roles: list[str] = Field(default_factory=list)
    reason: str | None = None

    @field_validator("paths")
    @classmethod
    def _check_paths(cls, value: list[str]) -> list[str]:
        return [_validate_pattern(p) for p in value]

    @field_validator("database_roles")
    @classmethod
    def _check_roles(cls, value: list[str]) -> list[str]:
        for role in value:
            if not _ROLE_RE.match(role):
                raise ValueError(f"invalid database role {role!r}: a literal role name, no globs")
        return value

    @model_validator(mode="after")
    def _grants_something(self) -> SecretGrant:
        if not self.paths and not self.database_roles:
            raise ValueError("a grant needs at least one of 'paths' or 'database_roles'")
        return self

    def applies_to(self, dag_id: str, task_id: str) -> bool:
        return fnmatch.fnmatchcase(dag_id, self.dag_id) and fnmatch.fnmatchcase(task_id, self.task_id)


class DatabaseSecretsSettings(StrictModel):
    """Dynamic database credentials (Vault's database secrets engine).

    Attributes:
        mount: Mount point of the database secrets engine.
        max_lease_ttl: Longest lease accepted; a role handing out longer-lived credentials is a
            finding (``secrets.lease_ttl_exceeds_policy``) and the credentials are revoked at once.
    """

    mount: str = "database"
    max_lease_ttl: Duration = 3600

    _check_mount = field_validator("mount")(classmethod(lambda cls, value: _valid_mount(value)))

    @field_validator("max_lease_ttl")
    @classmethod
    def _check_ttl(cls, value: int) -> int:
        if value > MAX_LEASE_TTL_SECONDS:
            raise ValueError(f"max_lease_ttl must be at most {MAX_LEASE_TTL_SECONDS} seconds")
        return value


class SecretsPolicy(GateSection):
    """Policy section ``secrets``.

    Example::

        secrets:
          kv_mount: secret
          kv_version: 2
          wrap_ttl: 5m
          grants:
            - dag_id: "train_*"
              paths: ["ml/training/*"]
              database_roles: [train-readonly]
          database: {mount: database, max_lease_ttl: 1h}

    Attributes:
        kv_mount: Mount point of the KV secrets engine the paths are relative to.
        kv_version: KV engine version (1 or 2).
        wrap_ttl: Lifetime of the single-use wrapping tokens handed to downstream tasks; also the
            longest an operator may ask for.
        grants: Who may read what. Nothing is readable unless a grant allows it.
        unmaskable_keys: Key names (``fnmatch`` globs) whose values may be too short for Airflow's
            masker (e.g. ``port``); any other short value is a ``secrets.value_unmaskable`` finding.
        database: Dynamic database credential settings.
    """

    kv_mount: str = "secret"
    kv_version: Literal[1, 2] = 2
    wrap_ttl: Duration = 300
    grants: list[SecretGrant] = Field(default_factory=list)
    unmaskable_keys: list[str] = Field(default_factory=list)
    database: DatabaseSecretsSettings = DatabaseSecretsSettings()

    _check_mount = field_validator("kv_mount")(classmethod(lambda cls, value: _valid_mount(value)))

    @field_validator("wrap_ttl")
    @classmethod
    def _check_wrap_ttl(cls, value: int) -> int:
        if value > MAX_WRAP_TTL_SECONDS:
            raise ValueError(f"wrap_ttl must be at most {MAX_WRAP_TTL_SECONDS} seconds")
        return value

    # --- queries ---------------------------------------------------------------------------
    def grants_for(self, dag_id: str, task_id: str) -> list[SecretGrant]:
        return [g for g in self.grants if g.applies_to(dag_id, task_id)]

    def path_allowed(self, dag_id: str, task_id: str, path: str) -> bool:
        return any(path_matches(p, path) for g in self.grants_for(dag_id, task_id) for p in g.paths)

    def database_role_allowed(self, dag_id: str, task_id: str, role: str) -> bool:
        return any(role in g.database_roles for g in self.grants_for(dag_id, task_id))

    def key_may_be_unmaskable(self, key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, glob) for glob in self.unmaskable_keys)

    def effective_wrap_ttl(self, requested: Any = None) -> int:
        """The TTL to wrap with: the policy's, or a shorter one the operator asked for.

        Raises:
            ConfigurationError: the request is not a duration or exceeds the policy.
        """
        if requested is None or requested == "":
            return self.wrap_ttl
        try:
            seconds = parse_duration(requested)
        except ValueError as exc:
            raise ConfigurationError(f"wrap_ttl: {exc}") from None
        if seconds > self.wrap_ttl:
            raise ConfigurationError(
                f"wrap_ttl {seconds}s exceeds the policy's secrets.wrap_ttl of {self.wrap_ttl}s"
            )
        return seconds


# --------------------------------------------------------------------------------------------
# Requests and authorization
# --------------------------------------------------------------------------------------------
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


def authorize_paths(section: SecretsPolicy, dag_id: str, task_id: str, paths: Sequence[str]) -> None:
    """Refuse any path no grant gives this DAG/task.

    Raises:
        AccessDeniedError: rule ``secrets.path_not_allowed``, naming the refused paths.
    """
    refused = [p for p in paths if not section.path_allowed(dag_id, task_id, p)]
    if refused:
        raise AccessDeniedError(
            f"policy does not allow DAG '{dag_id}' task '{task_id}' to read {len(refused)} secret path(s): "
            + ", ".join(refused),
            rule=f"{GATE}.path_not_allowed",
            location={"dag_id": dag_id, "task_id": task_id, "paths": list(refused)},
        )


def authorize_database_role(section: SecretsPolicy, dag_id: str, task_id: str, role: str) -> None:
    """Refuse a database role no grant gives this DAG/task.

    Raises:
        InputDataError: malformed role name.
        AccessDeniedError: rule ``secrets.database_role_not_allowed``.
    """
    if not isinstance(role, str) or not _ROLE_RE.match(role):
        raise InputDataError("database role must be a literal role name of [A-Za-z0-9_.-]")
    if not section.database_role_allowed(dag_id, task_id, role):
        raise AccessDeniedError(
            f"policy does not allow DAG '{dag_id}' task '{task_id}' to get credentials "
            f"for database role '{role}'",
            rule=f"{GATE}.database_role_not_allowed",
            location={"dag_id": dag_id, "task_id": task_id, "role": role},
        )


# --------------------------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------------------------
def iter_leaves(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, leaf value) pairs of a secret's data."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from iter_leaves(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            yield from iter_leaves(value, f"{prefix}[{i}]")
    else:
        yield prefix, data


def mask_values(data: Any, mask: Mask) -> list[str]:
    """Register every leaf value of ``data`` with the masker; return the keys that cannot be masked.

    Each value is registered on its own and without a name: ``mask_secret(dict)`` only masks
    values under sensitive-looking key names. Numbers are registered as text; booleans and
    nulls carry no secret.
    """
    unmaskable: list[str] = []
    for key, value in iter_leaves(data):
        if value is None or isinstance(value, bool):
            continue
        text = value if isinstance(value, str) else str(value)
        if not text:
            continue
        mask(text)
        if len(text) < MIN_MASKABLE_LENGTH or text.lower() in UNMASKABLE_WORDS:
            unmaskable.append(key)
    return unmaskable


# --------------------------------------------------------------------------------------------
# KV reads
# --------------------------------------------------------------------------------------------
def kv_api_path(mount: str, path: str, kv_version: int) -> str:
    """Vault API path (without ``/v1/``) of a KV secret: ``secret/data/a/b`` for KV v2."""
    return f"{mount}/data/{path}" if kv_version == 2 else f"{mount}/{path}"


def vault_uri(mount: str, path: str, version: int | None = None) -> str:
    return f"vault://{mount}/{path}" + (f"?version={version}" if version else "")


def _url(api_path: str) -> str:
    from hvac import utils

    return utils.format_url("/v1/{path}", path=api_path)


def _extract_kv(response: Any, *, kv_version: int, what: str) -> tuple[dict[str, Any], int | None]:
    """(data, version) of a KV read response; a deleted or destroyed version counts as missing."""
    body = response.get("data") if isinstance(response, Mapping) else None
    if kv_version == 2:
        data = body.get("data") if isinstance(body, Mapping) else None
        meta = body.get("metadata") if isinstance(body, Mapping) else None
        version = meta.get("version") if isinstance(meta, Mapping) else None
        deleted = isinstance(meta, Mapping) and (meta.get("deletion_time") or meta.get("destroyed"))
        if data is None or deleted:
            raise AccessDeniedError(
                f"Vault path not found (deleted or destroyed): {what}", rule=f"{GATE}.path_missing"
            )
    else:
        data, version = body, None
        if data is None:
            raise AccessDeniedError(f"Vault path not found: {what}", rule=f"{GATE}.path_missing")
    if not isinstance(data, Mapping):
        raise InputDataError(f"Vault secret at {what} is not a key/value object")
    return dict(data), int(version) if isinstance(version, int) else None


def read_kv(
    client: Any,
    mount: str,
    path: str,
    *,
    kv_version: int = 2,
    version: int | None = None,
    mask: Mask = _no_mask,
) -> tuple[dict[str, Any], int | None]:
    """Read one KV secret and register its values with the masker before returning them.

    Returns:
        (the secret's key/value data, its KV v2 version or None).

    Raises:
        ServiceUnavailableError: Vault unreachable or sealed (retryable).
        AccessDeniedError: permission denied, or the path is missing/deleted (not retryable).
    """
    validate_secret_path(path)
    what = vault_uri(mount, path)
    params = {"version": version} if version is not None and kv_version == 2 else None
    with translate_vault_errors(what, gate=GATE):
        response = client.adapter.get(_url(kv_api_path(mount, path, kv_version)), params=params)
    data, found_version = _extract_kv(response, kv_version=kv_version, what=what)
    mask_values(data, mask)
    return data, found_version


# --------------------------------------------------------------------------------------------
# Wrapped hand-off
# --------------------------------------------------------------------------------------------
class SecretHandle(StrictModel):
    """What crosses XCom for one secret: a single-use wrapping token and value-free metadata.

    The token itself is sensitive until used (whoever unwraps it first gets the secret): it is
    masked in every process that sees it and never written to results or the audit trail.
    """

    handle_version: Literal[1] = HANDLE_VERSION
    path: str
    mount: str
    kv_version: Literal[1, 2] = 2
    secret_version: int | None = None
    creation_path: str
    token: str = Field(min_length=1, repr=False)
    accessor: str
    ttl: int
    created_at: str
    expires_at: str

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        try:
            return validate_secret_path(value)
        except InputDataError as exc:
            raise ValueError(str(exc)) from None

    @property
    def expected_creation_path(self) -> str:
        return kv_api_path(self.mount, self.path, self.kv_version)

    def public(self) -> dict[str, Any]:
        """The handle without its token (for results, logs and the audit trail)."""
        return self.model_dump(mode="json", exclude={"token"})


def _parse_time(value: str) -> _dt.datetime | None:
    try:
        parsed = _dt.datetime.fromisoformat(value)  # Python 3.11 reads Vault's "...Z" with nanoseconds
    except (ValueError, AttributeError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.UTC)


def wrap_kv(
    client: Any,
    mount: str,
    path: str,
    *,
    ttl: int,
    kv_version: int = 2,
    version: int | None = None,
    mask: Mask = _no_mask,
) -> SecretHandle:
    """Have Vault wrap a read of one KV secret; the value never reaches this process.

    Raises:
        ServiceUnavailableError: Vault unreachable or sealed.
        AccessDeniedError: denied or missing path.
        InputDataError: Vault did not return wrap information.
    """
    validate_secret_path(path)
    what = vault_uri(mount, path, version)
    params = {"version": version} if version is not None and kv_version == 2 else None
    with translate_vault_errors(what, gate=GATE):
        response = client.adapter.get(
            _url(kv_api_path(mount, path, kv_version)), params=params, wrap_ttl=f"{ttl}s"
        )
    info = response.get("wrap_info") if isinstance(response, Mapping) else None
    if not isinstance(info, Mapping) or not info.get("token"):
        raise InputDataError(f"Vault did not wrap the response for {what}")
    token = str(info["token"])
    mask(token)  # whoever holds it first gets the secret
    created = _parse_time(str(info.get("creation_time", ""))) or _dt.datetime.now(_dt.UTC)
    wrapped_ttl = int(info.get("ttl") or ttl)
    return SecretHandle(
        path=path,
        mount=mount,
        kv_version=kv_version,
        secret_version=version,
        creation_path=str(info.get("creation_path", "")),
        token=token,
        accessor=str(info.get("accessor", "")),
        ttl=wrapped_ttl,
        created_at=created.isoformat(),
        expires_at=(created + _dt.timedelta(seconds=wrapped_ttl)).isoformat(),
    )


def validate_secrets(
    client: Any,
    section: SecretsPolicy,
    *,
    dag_id: str,
    task_id: str,
    requests: Sequence[SecretRequest],
    mask: Mask = _no_mask,
) -> tuple[CheckOutcome, dict[str, int | None]]:
    """Authorize and validate requested secrets (values are masked, then dropped).

    Returns:
        The value-free outcome (findings ``secrets.value_unmaskable``) and each path's version.

    Raises:
        AccessDeniedError: a path is not granted, denied by Vault, or missing.
        InputDataError: a required key is missing.
        ServiceUnavailableError: Vault unreachable or sealed.
    """
    authorize_paths(section, dag_id, task_id, [r.path for r in requests])
    findings: list[Finding] = []
    inputs: list[InputRef] = []
    versions: dict[str, int | None] = {}
    keys_total = 0
    for req in requests:
        data, version = read_kv(client, section.kv_mount, req.path, kv_version=section.kv_version, mask=mask)
        try:
            missing = [k for k in req.required_keys if k not in data]
            if missing:
                raise InputDataError(
                    f"secret {vault_uri(section.kv_mount, req.path)} lacks required key(s): "
                    + ", ".join(missing)
                )
            unmaskable = [k for k in mask_values(data, _no_mask) if not section.key_may_be_unmaskable(k)]
            if unmaskable:
                findings.append(
                    Finding(
                        rule=f"{GATE}.value_unmaskable",
                        severity=Severity.HIGH,
                        message=(
                            f"{len(unmaskable)} value(s) of {vault_uri(section.kv_mount, req.path)} are "
                            f"shorter than {MIN_MASKABLE_LENGTH} characters (or a reserved word), so "
                            "Airflow's masker would not hide them; lengthen them or list the keys under "
                            "secrets.unmaskable_keys"
                        ),
                        count=len(unmaskable),
                        location={"path": req.path, "keys": sorted(unmaskable)},
                    )
                )
            keys_total += len(data)
        finally:
            data.clear()  # the gate only needed to look
        versions[req.path] = version
        inputs.append(InputRef(uri=vault_uri(section.kv_mount, req.path, version)))
    metrics = {"secrets": len(requests), "keys": keys_total, "kv_mount": section.kv_mount}
    return CheckOutcome(findings=findings, metrics=metrics, inputs=inputs), versions


def issue_wrapped_secrets(
    client: Any,
    section: SecretsPolicy,
    *,
    requests: Sequence[SecretRequest],
    versions: Mapping[str, int | None],
    ttl: int,
    mask: Mask = _no_mask,
) -> list[SecretHandle]:
    """Wrap each validated secret (pinned to the validated version) for one downstream unwrap.

    Raises:
        ServiceUnavailableError: Vault unreachable or sealed.
        AccessDeniedError: denied or missing (e.g. deleted since validation).
    """
    handles: list[SecretHandle] = []
    for req in requests:
        handles.append(
            wrap_kv(
                client,
                section.kv_mount,
                req.path,
                ttl=ttl,
                kv_version=section.kv_version,
                version=versions.get(req.path),
                mask=mask,
            )
        )
    return handles


_TOKEN_GONE = "wrapping token is not valid or does not exist"


def _token_gone(exc: BaseException) -> bool:
    errors = getattr(exc, "errors", None) or [str(exc)]
    return any(_TOKEN_GONE in str(e) for e in errors)


class WrappingTokenGone(SecurityViolationError):
    """The wrapping token no longer exists before its TTL ran out: someone unwrapped it first."""


def unwrap_handle(
    client: Any, handle: SecretHandle, *, mask: Mask, now: _dt.datetime | None = None
) -> dict[str, Any]:
    """Look up, check and unwrap one handle; every value is masked before it is returned.

    Raises:
        WrappingTokenGone: the token was already unwrapped (or revoked) before it expired.
        AccessDeniedError: the token expired (rule ``secrets.wrapping_token_expired``).
        SecurityViolationError: the token wraps something other than the expected path.
        ServiceUnavailableError: Vault unreachable or sealed.
    """
    from hvac import exceptions as hv

    mask(handle.token)
    what = vault_uri(handle.mount, handle.path, handle.secret_version)
    location = {"path": handle.path, "accessor": handle.accessor}

    def gone() -> SecurityViolationError:
        current = now or _dt.datetime.now(_dt.UTC)
        expires = _parse_time(handle.expires_at)
        if expires is not None and current > expires + _dt.timedelta(seconds=EXPIRY_GRACE_SECONDS):
            return AccessDeniedError(
                f"wrapping token for {what} expired (TTL {handle.ttl}s) before it was used; "
                "clear the gate task "
                "to issue a new one",
                rule=f"{GATE}.wrapping_token_expired",
                location=location,
            )
        return WrappingTokenGone(
            f"wrapping token for {what} was already unwrapped or revoked before its TTL ran out: "
            "the secret may have been intercepted",
            rule=f"{GATE}.wrapping_token_reused",
            location=location,
        )

    # translate_vault_errors lets the project's own exceptions (raised by gone()) pass through.
    with translate_vault_errors(f"wrapping token for {what}", gate=GATE):
        try:
            info = client.adapter.post("/v1/sys/wrapping/lookup", json={"token": handle.token})
        except hv.InvalidRequest as exc:
            if _token_gone(exc):
                raise gone() from None
            raise
        creation_path = (info.get("data") or {}).get("creation_path") if isinstance(info, Mapping) else None
        # Checked before unwrapping: a substituted token is never consumed, so it stays as evidence.
        if creation_path != handle.expected_creation_path or creation_path != handle.creation_path:
            raise SecurityViolationError(
                f"wrapping token handed over for {what} was created for a different Vault path: "
                "the handle was substituted",
                rule=f"{GATE}.wrapping_token_substituted",
                location={**location, "creation_path": str(creation_path)},
            )
        try:
            response = client.sys.unwrap(token=handle.token)
        except hv.InvalidRequest as exc:
            if _token_gone(exc):
                raise gone() from None
            raise
    data, version = _extract_kv(response, kv_version=handle.kv_version, what=what)
    mask_values(data, mask)
    if handle.secret_version is not None and version != handle.secret_version:
        # Same path, other version (e.g. a rotated-out credential): not what the gate validated.
        data.clear()
        raise SecurityViolationError(
            f"wrapping token handed over for {what} wraps another version of the secret: the handle was substituted",
            rule=f"{GATE}.wrapping_token_substituted",
            location={**location, "version": version},
        )
    return data


# --------------------------------------------------------------------------------------------
# Dynamic database credentials
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class DatabaseCredentials:
    """A short-lived database user from Vault's database secrets engine.

    ``repr`` shows the role and lease only, never the username or password.
    """

    role: str
    username: str
    password: str
    lease_id: str
    lease_duration: int
    renewable: bool

    def __repr__(self) -> str:
        return (
            f"DatabaseCredentials(role={self.role!r}, lease_duration={self.lease_duration}, "
            "username=***, password=***)"
        )

    __str__ = __repr__


def issue_database_credentials(client: Any, mount: str, role: str, *, mask: Mask) -> DatabaseCredentials:
    """Ask the database secrets engine for credentials; username and password are masked first.

    Raises:
        ServiceUnavailableError: Vault unreachable or sealed.
        AccessDeniedError: denied, or no such role.
        InputDataError: the response is not a credential.
    """
    what = f"vault://{mount}/creds/{role}"
    with translate_vault_errors(what, gate=GATE):
        response = client.adapter.get(_url(f"{mount}/creds/{role}"))
    data = response.get("data") if isinstance(response, Mapping) else None
    lease_id = response.get("lease_id") if isinstance(response, Mapping) else None
    if not isinstance(data, Mapping) or not data.get("username") or not data.get("password") or not lease_id:
        if lease_id:
            revoke_lease(client, str(lease_id))
        raise InputDataError(f"Vault returned no database credentials for {what}")
    username, password = str(data["username"]), str(data["password"])
    mask(password)
    mask(username)
    return DatabaseCredentials(
        role=role,
        username=username,
        password=password,
        lease_id=str(lease_id),
        lease_duration=int(response.get("lease_duration") or 0),
        renewable=bool(response.get("renewable")),
    )


_LEASE_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


def revoke_lease(client: Any, lease_id: str) -> None:
    """Revoke a lease now (synchronously: the database user is dropped before this returns).

    The lease id goes in the URL first (``sys/leases/revoke/<lease_id>``), so a least-privilege
    Vault policy can allow ``sys/leases/revoke/<mount>/creds/<role>/*`` only; a token that is
    allowed the bare ``sys/leases/revoke`` endpoint instead is served by the body form.

    Raises:
        InputDataError: malformed lease id.
        ServiceUnavailableError: Vault unreachable or sealed.
        AccessDeniedError: the token may not revoke it.
    """
    from hvac import exceptions as hv

    if not isinstance(lease_id, str) or not _LEASE_ID_RE.match(lease_id) or ".." in lease_id.split("/"):
        raise InputDataError("malformed lease id")
    with translate_vault_errors(f"lease {lease_id}", gate=GATE):
        try:
            client.adapter.put(f"/v1/sys/leases/revoke/{lease_id}", json={"sync": True})
        except hv.Forbidden:
            client.adapter.put("/v1/sys/leases/revoke", json={"lease_id": lease_id, "sync": True})


def lease_findings(section: SecretsPolicy, creds: DatabaseCredentials) -> list[Finding]:
    """A lease longer than the policy allows is a finding."""
    limit = section.database.max_lease_ttl
    if creds.lease_duration <= 0 or creds.lease_duration > limit:
        return [
            Finding(
                rule=f"{GATE}.lease_ttl_exceeds_policy",
                severity=Severity.HIGH,
                message=(
                    f"database role '{creds.role}' issued a lease of {creds.lease_duration}s; "
                    "the policy allows "
                    f"at most {limit}s (set the role's default_ttl/max_ttl lower)"
                ),
                count=1,
                location={"role": creds.role, "lease_duration": creds.lease_duration, "max_lease_ttl": limit},
            )
        ]
    return []


# --------------------------------------------------------------------------------------------
# ``aisec secrets check``: is every granted path readable?
# --------------------------------------------------------------------------------------------
def _list_kv(client: Any, mount: str, prefix: str, kv_version: int) -> list[str] | None:
    """Keys under a KV folder (``name`` or ``name/``); None if the folder does not exist."""
    from hvac import exceptions as hv

    folder = f"{mount}/metadata/{prefix}" if kv_version == 2 else f"{mount}/{prefix}"
    folder = folder.rstrip("/")
    try:
        response = client.adapter.list(_url(folder))
    except hv.InvalidPath:
        return None
    keys = ((response or {}).get("data") or {}).get("keys") if isinstance(response, Mapping) else None
    return [str(k) for k in keys or []]


def _enumerate_pattern(client: Any, section: SecretsPolicy, pattern: str) -> list[str]:
    """Concrete secrets matching a pattern, by listing from its literal prefix (bounded)."""
    regex = pattern_regex(pattern)
    prefix = literal_prefix(pattern)
    depth = None if "**" in pattern else len(pattern.split("/"))
    matches: list[str] = []
    queue = [prefix]
    visited = 0
    while queue:
        folder = queue.pop(0)
        visited += 1
        if visited > MAX_PATTERN_MATCHES:
            break
        with translate_vault_errors(vault_uri(section.kv_mount, folder or "") + " (list)", gate=GATE):
            keys = _list_kv(client, section.kv_mount, folder, section.kv_version)
        for key in keys or []:
            full = f"{folder}/{key}" if folder else key
            if key.endswith("/"):
                sub = full.rstrip("/")
                if depth is None or len(sub.split("/")) < depth:
                    queue.append(sub)
            elif regex.match(full):
                matches.append(full)
                if len(matches) >= MAX_PATTERN_MATCHES:
                    return matches
    return matches


def _readability_finding(exc: AccessDeniedError, *, path: str, dag_glob: str) -> Finding:
    missing = (exc.rule or "").endswith("path_missing")
    return Finding(
        rule=f"{GATE}.path_missing" if missing else f"{GATE}.path_unreadable",
        severity=Severity.HIGH,
        message=str(exc),
        count=1,
        location={"path": path, "dag_id": dag_glob},
    )


def check_granted_paths(client: Any, section: SecretsPolicy, *, dag_id: str | None = None) -> CheckOutcome:
    """Check that every path (and database role) the policy grants is readable with this token.

    Values are read and dropped at once; nothing about them is kept. Patterns are expanded by
    listing the KV engine from their literal prefix (``list`` capability on the metadata path).
    Database roles are checked with ``sys/capabilities-self`` (no credentials are created).

    Args:
        client: Authenticated ``hvac.Client``.
        section: The policy's ``secrets`` section.
        dag_id: Only check grants whose ``dag_id`` glob matches this DAG id.

    Raises:
        ServiceUnavailableError: Vault unreachable or sealed.
    """
    grants = [g for g in section.grants if dag_id is None or fnmatch.fnmatchcase(dag_id, g.dag_id)]
    findings: list[Finding] = []
    inputs: list[InputRef] = []
    checked: set[str] = set()
    checked_roles: set[str] = set()
    readable = 0
    patterns = 0
    for grant in grants:
        for pattern in grant.paths:
            if is_literal(pattern):
                targets = [pattern]
            else:
                patterns += 1
                try:
                    targets = _enumerate_pattern(client, section, pattern)
                except AccessDeniedError as exc:
                    findings.append(
                        Finding(
                            rule=f"{GATE}.path_unreadable",
                            severity=Severity.HIGH,
                            message=f"cannot list secrets for pattern {pattern!r}: {exc}",
                            count=1,
                            location={"path": pattern, "dag_id": grant.dag_id},
                        )
                    )
                    continue
                if not targets:
                    findings.append(
                        Finding(
                            rule=f"{GATE}.pattern_matches_nothing",
                            severity=Severity.MEDIUM,
                            message=f"no secret under {section.kv_mount}/ matches the granted pattern "
                            f"{pattern!r}",
                            count=0,
                            location={"path": pattern, "dag_id": grant.dag_id},
                        )
                    )
            for path in targets:
                if path in checked:
                    continue
                checked.add(path)
                try:
                    data, version = read_kv(client, section.kv_mount, path, kv_version=section.kv_version)
                    data.clear()
                except AccessDeniedError as exc:
                    findings.append(_readability_finding(exc, path=path, dag_glob=grant.dag_id))
                    continue
                readable += 1
                inputs.append(InputRef(uri=vault_uri(section.kv_mount, path, version)))
        for role in grant.database_roles:
            api_path = f"{section.database.mount}/creds/{role}"
            if api_path in checked_roles:
                continue
            checked_roles.add(api_path)
            try:
                with translate_vault_errors(f"vault://{api_path} (capabilities)", gate=GATE):
                    response = client.adapter.post("/v1/sys/capabilities-self", json={"paths": [api_path]})
            except AccessDeniedError:
                response = {}  # the token may not even ask (e.g. it is invalid): not readable
            caps = ((response or {}).get("data") or {}).get(api_path) or (response or {}).get(api_path) or []
            if not ({"read", "root"} & set(caps)):
                findings.append(
                    Finding(
                        rule=f"{GATE}.database_role_unreadable",
                        severity=Severity.HIGH,
                        message=f"the token may not read vault://{api_path} "
                        f"(capabilities: {', '.join(caps) or 'none'})",
                        count=1,
                        location={"role": role, "dag_id": grant.dag_id},
                    )
                )
                continue
            readable += 1
            inputs.append(InputRef(uri=f"vault://{api_path}"))
    metrics = {
        "grants": len(grants),
        "paths_checked": len(checked),
        "database_roles_checked": len(checked_roles),
        "readable": readable,
        "patterns": patterns,
        "kv_mount": section.kv_mount,
    }
    return CheckOutcome(findings=findings, metrics=metrics, inputs=inputs)
