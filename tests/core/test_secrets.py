"""Secrets core: policy section, path grants, masking, wrapped hand-off and dynamic DB credentials.

Unit tests check the policy model and the pure helpers; integration tests run every Vault call
against the real OpenBao dev server (`bao_server`) and PostgreSQL at 127.0.0.1:5432.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_aisec.core.gates.secrets import (
    SecretHandle,
    SecretRequest,
    WrappingTokenGone,
    authorize_database_role,
    authorize_paths,
    check_secrets,
    issue_database_credentials,
    issue_wrapped_secrets,
    lease_findings,
    mask_values,
    normalize_requests,
    read_kv,
    revoke_lease,
    unwrap_handle,
    validate_secret_path,
    validate_secrets,
    wrap_kv,
)
from airflow_aisec.core.io.vault import VaultClient
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.core.policy.sections.secrets import SecretsPolicy, parse_duration, path_matches
from airflow_aisec.exceptions import (
    AccessDeniedError,
    ConfigurationError,
    InputDataError,
    PolicyError,
    SecurityViolationError,
    ServiceUnavailableError,
)
from tests.helpers.vault import limited_token, postgres_database_engine, seed_kv

POLICY_YAML = """
version: 1
name: secrets-core
secrets:
  kv_mount: secret
  wrap_ttl: 2m
  unmaskable_keys: ["port"]
  database: {mount: dbcore, max_lease_ttl: 10m}
  grants:
    - dag_id: "train_*"
      paths: ["core/train/*", "core/shared/**"]
      database_roles: [core-ro]
    - dag_id: "deploy"
      task_id: "fetch_*"
      paths: ["core/deploy/registry"]
"""


def section(text: str = POLICY_YAML) -> SecretsPolicy:
    return parse_policy(text.encode(), source="inline").policy.secrets


# --------------------------------------------------------------------------------------------
# Policy section (unit)
# --------------------------------------------------------------------------------------------
def test_policy_section_parses_durations_and_defaults():
    s = section()
    assert s.wrap_ttl == 120 and s.database.max_lease_ttl == 600 and s.kv_version == 2
    minimal = section("name: m\nsecrets: {grants: [{dag_id: x, paths: [a/b]}]}\n")
    assert minimal.wrap_ttl == 300 and minimal.database.mount == "database" and minimal.kv_mount == "secret"


@pytest.mark.parametrize(
    "body, field",
    [
        ("{grants: [{dag_id: x}]}", "secrets.grants.0"),  # grants nothing
        ("{grants: [{dag_id: x, paths: ['../etc']}]}", "secrets.grants.0.paths"),
        ("{grants: [{dag_id: x, paths: ['/abs']}]}", "secrets.grants.0.paths"),
        ("{grants: [{dag_id: x, paths: ['a/**b']}]}", "secrets.grants.0.paths"),
        ("{grants: [{dag_id: x, paths: ['a?b']}]}", "secrets.grants.0.paths"),
        ("{grants: [{dag_id: x, database_roles: ['ro*']}]}", "secrets.grants.0.database_roles"),
        ("{grants: [{dag_id: x, paths: [a], extra: 1}]}", "secrets.grants.0.extra"),
        ("{wrap_ttl: 0}", "secrets.wrap_ttl"),
        ("{wrap_ttl: 2d}", "secrets.wrap_ttl"),
        ("{wrap_ttl: soon}", "secrets.wrap_ttl"),
        ("{kv_version: 3}", "secrets.kv_version"),
        ("{kv_mount: 'a b'}", "secrets.kv_mount"),
        ("{database: {max_lease_ttl: 30d}}", "secrets.database.max_lease_ttl"),
        ("{wrap_tll: 5m}", "secrets.wrap_tll"),
    ],
)
def test_bad_policy_sections_are_rejected_with_the_field(body, field):
    with pytest.raises(PolicyError) as info:
        parse_policy(f"name: bad\nsecrets: {body}\n".encode(), source="p.yaml")
    assert info.value.field == field


@pytest.mark.parametrize(
    "value, seconds", [(30, 30), ("45", 45), ("90s", 90), ("5m", 300), ("2h", 7200), ("1d", 86400)]
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [0, -1, True, "5 minutes", "", None, 1.5])
def test_bad_durations(value):
    with pytest.raises(ValueError):
        parse_duration(value)


def test_effective_wrap_ttl_never_exceeds_the_policy():
    s = section()
    assert s.effective_wrap_ttl(None) == 120
    assert s.effective_wrap_ttl("30s") == 30
    with pytest.raises(ConfigurationError, match="exceeds"):
        s.effective_wrap_ttl("5m")
    with pytest.raises(ConfigurationError):
        s.effective_wrap_ttl("whenever")


@pytest.mark.parametrize(
    "pattern, path, expected",
    [
        ("a/*", "a/b", True),
        ("a/*", "a/b/c", False),  # '*' stays within one segment
        ("a/**", "a/b/c", True),
        ("a/**", "a", False),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("a/b*", "a/bcd", True),
        ("a/b*", "a/xb", False),
        ("a/b", "a/b", True),
        ("a/b", "a/bb", False),
        ("a.b/*", "axb/c", False),  # '.' is literal
    ],
)
def test_path_patterns(pattern, path, expected):
    assert path_matches(pattern, path) is expected


@given(
    st.lists(
        st.text(alphabet="abc-_.", min_size=1, max_size=4).filter(lambda s: s not in (".", "..")),
        min_size=1,
        max_size=5,
    )
)
def test_single_star_never_crosses_a_segment(segments):
    path = "/".join(segments)
    assert path_matches("/".join("*" for _ in segments), path)
    if len(segments) > 1:
        assert not path_matches("*", path)
    assert path_matches("**", path)


def test_grants_by_dag_and_task_glob():
    s = section()
    authorize_paths(s, "train_daily", "gate", ["core/train/db", "core/shared/x/y"])
    authorize_paths(s, "deploy", "fetch_model", ["core/deploy/registry"])
    with pytest.raises(SecurityViolationError) as info:
        authorize_paths(s, "deploy", "other_task", ["core/deploy/registry"])
    assert info.value.rule == "secrets.path_not_allowed"
    with pytest.raises(SecurityViolationError) as info:
        authorize_paths(s, "train_daily", "gate", ["core/train/db", "core/train/deep/db", "core/other"])
    assert info.value.location["paths"] == ["core/train/deep/db", "core/other"]
    assert isinstance(info.value, SecurityViolationError)  # never waivable
    authorize_database_role(s, "train_x", "t", "core-ro")
    with pytest.raises(SecurityViolationError) as info:
        authorize_database_role(s, "deploy", "fetch_x", "core-ro")
    assert info.value.rule == "secrets.database_role_not_allowed"
    with pytest.raises(InputDataError):
        authorize_database_role(s, "train_x", "t", "core-ro/../admin")


def test_empty_grants_allow_nothing():
    s = section("name: m\nsecrets: {}\n")
    with pytest.raises(SecurityViolationError):
        authorize_paths(s, "any", "task", ["a"])


@pytest.mark.parametrize(
    "paths",
    [
        [],
        "",
        ["a/../b"],
        ["a//b"],
        ["/a"],
        ["a/b?version=1"],
        ["a#b"],
        ["a%2fb"],
        [3],
        {"a": "password"},
        ["a", "a"],
        42,
        {"a": [""]},
    ],
)
def test_bad_requests_are_input_errors(paths):
    with pytest.raises(InputDataError):
        normalize_requests(paths)


def test_requests_forms():
    assert normalize_requests("a/b") == [SecretRequest("a/b")]
    assert normalize_requests({"a/b": ["password"], "c": None}) == [
        SecretRequest("a/b", ("password",)),
        SecretRequest("c"),
    ]


def test_mask_values_registers_each_leaf_without_a_name_and_reports_short_ones():
    seen: list[str] = []
    data = {
        "password": "long-enough-secret",
        "user": "bob",
        "port": 5432,
        "nested": {"api": "abcdefgh"},
        "list": ["xyzxyzxyz"],
        "flag": True,
        "none": None,
        "word": "airflow",
    }
    short = mask_values(data, seen.append)
    assert set(seen) == {"long-enough-secret", "bob", "5432", "abcdefgh", "xyzxyzxyz", "airflow"}
    assert sorted(short) == ["port", "user", "word"]


def test_handle_public_view_has_no_token():
    h = SecretHandle(
        path="a/b",
        mount="secret",
        creation_path="secret/data/a/b",
        token="s.TOKEN-VALUE-123",
        accessor="acc",
        ttl=60,
        created_at="2026-01-01T00:00:00+00:00",
        expires_at="2026-01-01T00:01:00+00:00",
    )
    assert "token" not in h.public() and "s.TOKEN-VALUE-123" not in repr(h)
    with pytest.raises(ValueError):
        SecretHandle.model_validate({**h.model_dump(), "path": "../x"})


@pytest.mark.parametrize("path", ["a", "team/app-1/db_2", "x/y.z@v=1+2"])
def test_valid_paths(path):
    assert validate_secret_path(path) == path


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_bao(home):
    """A second, private OpenBao dev server (this one gets sealed)."""
    import shutil
    import subprocess
    import sys
    import time
    import types
    import urllib.request
    from pathlib import Path

    bao = shutil.which("bao", path=str(Path(sys.executable).parent)) or shutil.which("bao")
    port = _free_port()
    proc = subprocess.Popen(
        [bao, "server", "-dev", "-dev-root-token-id=sealed-root", f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
    )
    addr = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)
    return types.SimpleNamespace(addr=addr, process=proc)


# --------------------------------------------------------------------------------------------
# Against the real OpenBao
# --------------------------------------------------------------------------------------------
VALUES = {
    "core/train/db": {"password": "core-pw-" + uuid.uuid4().hex, "username": "trainer-account"},
    "core/train/short": {"password": "core-pw2-" + uuid.uuid4().hex, "pin": "1234", "port": "5432"},
    "core/shared/a/b": {"token": "core-tok-" + uuid.uuid4().hex},
    "core/deploy/registry": {"password": "core-reg-" + uuid.uuid4().hex},
    "core/other/secret": {"password": "core-other-" + uuid.uuid4().hex},
}


@pytest.fixture(scope="module")
def vault(bao_server):
    """Seed KV v2 secrets, a limited policy/token and a database engine against local PostgreSQL."""
    root = bao_server.client()
    seed_kv(root, VALUES)
    limited = limited_token(
        root,
        "core-limited",
        """
        path "secret/data/core/train/*" { capabilities = ["read"] }
        path "secret/data/core/shared/*" { capabilities = ["read"] }
        path "secret/metadata/core/*" { capabilities = ["list"] }
        path "secret/data/core/deploy/*" { capabilities = ["read"] }
        path "dbcore/creds/core-ro" { capabilities = ["read"] }
        path "sys/leases/revoke" { capabilities = ["update"] }
        """,
        ttl="1h",
    )
    postgres_database_engine(root, "dbcore", {"core-ro": ("5m", "10m"), "core-long": ("2h", "3h")})
    import hvac

    return {
        "root": root,  # hvac, for set-up
        "admin": VaultClient(root),
        "limited": VaultClient(hvac.Client(url=bao_server.addr, token=limited)),
        "addr": bao_server.addr,
    }


def _pg_role_exists(name: str) -> bool:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (name,))
            return cur.fetchone()[0] == 1
    finally:
        conn.close()


@pytest.mark.integration
def test_read_masks_every_value_before_returning(vault):
    masked: list[str] = []
    data, version = read_kv(vault["limited"], "secret", "core/train/db", mask=masked.append)
    assert data == VALUES["core/train/db"] and version == 1
    assert set(masked) == set(VALUES["core/train/db"].values())


@pytest.mark.integration
def test_denied_and_missing_paths_are_non_retryable(vault):
    with pytest.raises(AccessDeniedError) as info:
        read_kv(vault["limited"], "secret", "core/other/secret")
    assert info.value.rule == "secrets.vault_access_denied"
    assert VALUES["core/other/secret"]["password"] not in str(info.value)
    with pytest.raises(AccessDeniedError) as info:
        read_kv(vault["limited"], "secret", "core/train/nothing-here")
    assert info.value.rule == "secrets.path_missing"


@pytest.mark.integration
def test_deleted_version_counts_as_missing(vault):
    root = vault["root"]
    root.secrets.kv.v2.create_or_update_secret(
        path="core/train/deleted", secret={"k": "v" * 10}, mount_point="secret"
    )
    root.secrets.kv.v2.delete_latest_version_of_secret(path="core/train/deleted", mount_point="secret")
    with pytest.raises(AccessDeniedError, match="deleted"):
        read_kv(vault["limited"], "secret", "core/train/deleted")


@pytest.mark.integration
def test_validate_reports_unmaskable_values_and_missing_keys(vault):
    s = section()
    outcome, versions = validate_secrets(
        vault["limited"],
        s,
        dag_id="train_x",
        task_id="gate",
        requests=[SecretRequest("core/train/db", ("password",)), SecretRequest("core/train/short")],
    )
    assert versions == {"core/train/db": 1, "core/train/short": 1}
    [finding] = outcome.findings
    assert finding.rule == "secrets.value_unmaskable"
    assert finding.location == {"path": "core/train/short", "keys": ["pin"]}  # 'port' is exempted by policy
    dumped = outcome.model_dump_json()
    assert not any(v in dumped for d in VALUES.values() for v in d.values())
    with pytest.raises(InputDataError, match="lacks required key"):
        validate_secrets(
            vault["limited"],
            s,
            dag_id="train_x",
            task_id="gate",
            requests=[SecretRequest("core/train/db", ("api_key",))],
        )
    with pytest.raises(SecurityViolationError, match="policy does not allow"):
        validate_secrets(
            vault["limited"], s, dag_id="other", task_id="gate", requests=[SecretRequest("core/train/db")]
        )


@pytest.mark.integration
def test_wrap_then_unwrap_once(vault):
    masked: list[str] = []
    handle = wrap_kv(vault["limited"], "secret", "core/train/db", ttl=60, version=1, mask=masked.append)
    assert handle.token in masked  # the wrapping token itself is masked
    assert handle.creation_path == "secret/data/core/train/db" and handle.ttl == 60
    got = unwrap_handle(vault["limited"], handle, mask=masked.append)
    assert got == VALUES["core/train/db"]
    assert set(VALUES["core/train/db"].values()) <= set(masked)
    with pytest.raises(WrappingTokenGone) as info:
        unwrap_handle(vault["limited"], handle, mask=masked.append)
    assert info.value.rule == "secrets.wrapping_token_reused"
    assert handle.token not in str(info.value)


@pytest.mark.integration
def test_intercepted_token_fails_the_consumer(vault):
    [handle] = issue_wrapped_secrets(
        vault["limited"],
        section(),
        requests=[SecretRequest("core/deploy/registry")],
        versions={"core/deploy/registry": 1},
        ttl=60,
    )
    vault["root"].sys.unwrap(handle.token)  # an attacker got there first
    with pytest.raises(SecurityViolationError, match="intercepted"):
        unwrap_handle(vault["limited"], handle, mask=lambda v: None)


@pytest.mark.integration
def test_substituted_token_is_refused_and_not_consumed(vault):
    real = wrap_kv(vault["limited"], "secret", "core/train/db", ttl=60)
    other = wrap_kv(vault["admin"], "secret", "core/other/secret", ttl=60)
    forged = real.model_copy(update={"token": other.token})
    with pytest.raises(SecurityViolationError) as info:
        unwrap_handle(vault["limited"], forged, mask=lambda v: None)
    assert info.value.rule == "secrets.wrapping_token_substituted"
    assert info.value.location["creation_path"] == "secret/data/core/other/secret"
    # a token minted with sys/wrapping/wrap carries arbitrary data: refused as well
    wrapped = vault["root"].sys.wrap(payload={"password": "attacker-chosen-value"}, ttl="60s")
    with pytest.raises(SecurityViolationError, match="different Vault path"):
        unwrap_handle(
            vault["limited"],
            real.model_copy(update={"token": wrapped["wrap_info"]["token"]}),
            mask=lambda v: None,
        )
    assert unwrap_handle(vault["limited"], real, mask=lambda v: None) == VALUES["core/train/db"]


@pytest.mark.integration
def test_expired_token_is_told_apart_from_a_stolen_one(vault):
    handle = wrap_kv(vault["limited"], "secret", "core/train/db", ttl=1)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    import time

    time.sleep(1.5)
    with pytest.raises(AccessDeniedError) as info:
        unwrap_handle(vault["limited"], handle, mask=lambda v: None, now=later)
    assert info.value.rule == "secrets.wrapping_token_expired"
    assert not isinstance(info.value, WrappingTokenGone)


@pytest.mark.integration
def test_unwrap_pins_the_validated_version(vault):
    root = vault["root"]
    root.secrets.kv.v2.create_or_update_secret(
        path="core/train/rotating", secret={"k": "version-one-value"}, mount_point="secret"
    )
    handle = wrap_kv(vault["limited"], "secret", "core/train/rotating", ttl=60, version=1)
    root.secrets.kv.v2.create_or_update_secret(
        path="core/train/rotating", secret={"k": "version-two-value"}, mount_point="secret"
    )
    assert unwrap_handle(vault["limited"], handle, mask=lambda v: None) == {"k": "version-one-value"}


@pytest.mark.integration
def test_token_of_another_version_of_the_same_path_is_substitution(vault):
    # Same creation path, other version: a rotated-out credential must not be passed off as the
    # validated one.
    root = vault["root"]
    root.secrets.kv.v2.create_or_update_secret(path="core/train/rot2", secret={"k": "old-credential-1"},
                                               mount_point="secret")
    root.secrets.kv.v2.create_or_update_secret(path="core/train/rot2", secret={"k": "new-credential-2"},
                                               mount_point="secret")
    handle = wrap_kv(vault["limited"], "secret", "core/train/rot2", ttl=60, version=2)
    stale = wrap_kv(vault["limited"], "secret", "core/train/rot2", ttl=60, version=1)
    with pytest.raises(SecurityViolationError) as info:
        unwrap_handle(vault["limited"], handle.model_copy(update={"token": stale.token}), mask=lambda v: None)
    assert info.value.rule == "secrets.wrapping_token_substituted"
    assert "old-credential-1" not in str(info.value)
    assert unwrap_handle(vault["limited"], handle, mask=lambda v: None) == {"k": "new-credential-2"}


@pytest.mark.integration
def test_dynamic_database_credentials_and_revocation(vault):
    import psycopg2

    masked: list[str] = []
    creds = issue_database_credentials(vault["limited"], "dbcore", "core-ro", mask=masked.append)
    try:
        assert {creds.username, creds.password} <= set(masked)
        assert creds.password not in repr(creds) and creds.username not in str(creds)
        assert 0 < creds.lease_duration <= 300
        assert lease_findings(section(), creds) == []
        assert _pg_role_exists(creds.username)
        with (
            psycopg2.connect(
                host="127.0.0.1", user=creds.username, password=creds.password, dbname="postgres"
            ) as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT current_user")
            assert cur.fetchone()[0] == creds.username
    finally:
        revoke_lease(vault["limited"], creds.lease_id)
    assert not _pg_role_exists(creds.username)


@pytest.mark.integration
def test_long_lease_is_a_finding(vault):
    creds = issue_database_credentials(vault["admin"], "dbcore", "core-long", mask=lambda v: None)
    try:
        [finding] = lease_findings(section(), creds)
        assert finding.rule == "secrets.lease_ttl_exceeds_policy" and finding.location["max_lease_ttl"] == 600
    finally:
        revoke_lease(vault["admin"], creds.lease_id)


@pytest.mark.integration
def test_database_role_denied_or_unknown(vault):
    with pytest.raises(AccessDeniedError):
        issue_database_credentials(vault["limited"], "dbcore", "core-long", mask=lambda v: None)
    with pytest.raises(InputDataError, match="unknown role"):  # Vault answers 400: still not retryable
        issue_database_credentials(vault["admin"], "dbcore", "no-such-role", mask=lambda v: None)


CHECK_POLICY = """
name: chk
secrets:
  database: {mount: dbcore}
  grants:
    - dag_id: "train_*"
      paths: ["core/train/db", "core/shared/**", "core/empty/*"]
      database_roles: [core-ro]
    - dag_id: "deploy"
      paths: ["core/other/secret"]
    - dag_id: "gone"
      paths: ["core/train/nope"]
    - dag_id: "long_lease"
      database_roles: [core-long]
"""


@pytest.mark.integration
def test_check_secrets_on_everything_a_dag_is_granted(vault):
    s = section(CHECK_POLICY)
    outcome = check_secrets(s, None, dag_id="train_daily", vault=vault["limited"])
    assert [(f.rule, f.location["path"]) for f in outcome.findings] == [
        ("secrets.pattern_matches_nothing", "core/empty/*")
    ]
    uris = {i.uri for i in outcome.inputs}
    assert uris == {"vault://secret/core/train/db?version=1", "vault://secret/core/shared/a/b?version=1",
                    "vault://dbcore/creds/core-ro"}
    assert outcome.metrics["versions"] == {"core/train/db": 1, "core/shared/a/b": 1}
    assert outcome.metrics["patterns"] == 2 and outcome.metrics["database_roles"] == 1
    dumped = outcome.model_dump_json()
    assert not any(v in dumped for d in VALUES.values() for v in d.values())
    # Denied, missing and unreadable database roles stop the check like they stop the operator.
    for dag_id, rule in (("deploy", "secrets.vault_access_denied"), ("gone", "secrets.path_missing"),
                         ("long_lease", "secrets.database_role_unreadable")):
        with pytest.raises(AccessDeniedError) as info:
            check_secrets(s, None, dag_id=dag_id, vault=vault["limited"])
        assert info.value.rule == rule, dag_id
        assert not any(v in str(info.value) for d in VALUES.values() for v in d.values())
    with pytest.raises(InputDataError, match="grants DAG 'nobody' no secret path"):
        check_secrets(s, None, dag_id="nobody", vault=vault["limited"])


@pytest.mark.integration
def test_check_secrets_on_requested_paths_is_the_operator_check(vault):
    s = section()
    outcome = check_secrets(s, {"core/train/db": ["password"], "core/train/short": []}, dag_id="train_x",
                            task_id="gate", vault=vault["limited"])
    assert outcome.metrics["versions"] == {"core/train/db": 1, "core/train/short": 1}
    assert [f.rule for f in outcome.findings] == ["secrets.value_unmaskable"]
    with pytest.raises(SecurityViolationError) as info:
        check_secrets(s, ["core/deploy/registry"], dag_id="deploy", task_id="other", vault=vault["limited"])
    assert info.value.rule == "secrets.path_not_allowed"
    # Without a task id, any task of the DAG counts (the CLI's default).
    assert check_secrets(s, ["core/deploy/registry"], dag_id="deploy", vault=vault["limited"]).findings == []
    with pytest.raises(InputDataError, match="lacks required key"):
        check_secrets(s, {"core/train/db": ["api_key"]}, dag_id="train_x", task_id="gate", vault=vault["limited"])


@pytest.mark.integration
def test_unreachable_and_sealed_vault_are_retryable(tmp_path):
    import hvac

    down = VaultClient(hvac.Client(url=f"http://127.0.0.1:{_free_port()}", token="x"))
    with pytest.raises(ServiceUnavailableError):
        read_kv(down, "secret", "core/train/db")
    server = _start_bao(tmp_path)
    try:
        raw = hvac.Client(url=server.addr, token="sealed-root")
        raw.secrets.kv.v2.create_or_update_secret(path="a", secret={"k": "v" * 8}, mount_point="secret")
        client = VaultClient(raw)
        handle = wrap_kv(client, "secret", "a", ttl=60)
        raw.sys.seal()
        with pytest.raises(ServiceUnavailableError, match="sealed"):
            read_kv(client, "secret", "a")
        with pytest.raises(ServiceUnavailableError):
            unwrap_handle(client, handle, mask=lambda v: None)
        with pytest.raises(ServiceUnavailableError):
            issue_database_credentials(client, "database", "r", mask=lambda v: None)
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)


@pytest.mark.integration
def test_kv_version_1_mount(vault):
    root = vault["root"]
    if "kv1core/" not in root.sys.list_mounted_secrets_engines()["data"]:
        root.sys.enable_secrets_engine("kv", path="kv1core", options={"version": "1"})
    value = {"password": "kv1-pw-" + uuid.uuid4().hex}
    root.secrets.kv.v1.create_or_update_secret(path="app/db", secret=value, mount_point="kv1core")
    data, version = read_kv(VaultClient(root), "kv1core", "app/db", kv_version=1)
    assert data == value and version is None
    handle = wrap_kv(VaultClient(root), "kv1core", "app/db", ttl=60, kv_version=1)
    assert handle.creation_path == "kv1core/app/db"
    assert unwrap_handle(VaultClient(root), handle, mask=lambda v: None) == value
    with pytest.raises(AccessDeniedError):
        read_kv(VaultClient(root), "kv1core", "app/missing", kv_version=1)


@pytest.mark.parametrize("name", ["strict.yaml", "secrets-example.yaml"])
def test_shipped_policies_match_the_json_schema(name):
    from pathlib import Path

    import jsonschema
    import yaml

    from airflow_aisec.core.policy import load_policy, policy_json_schema

    path = Path(__file__).resolve().parents[2] / "policies" / name
    assert load_policy(path).policy.secrets is not None
    section_only = {"name": "x", "secrets": yaml.safe_load(path.read_text())["secrets"]}
    jsonschema.validate(section_only, policy_json_schema())  # "5m" durations included


@pytest.mark.integration
def test_revocation_works_with_a_least_privilege_policy(vault):
    """``sys/leases/revoke/<mount>/creds/<role>/*`` is enough; other leases stay out of reach."""
    import hvac

    root = vault["root"]
    root.sys.create_or_update_policy(
        "core-narrow-revoke",
        """
        path "dbcore/creds/core-ro" { capabilities = ["read"] }
        path "sys/leases/revoke/dbcore/creds/core-ro/*" { capabilities = ["update"] }
        """,
    )
    token = root.auth.token.create(policies=["core-narrow-revoke"], ttl="10m")["auth"]["client_token"]
    narrow = VaultClient(hvac.Client(url=vault["addr"], token=token))
    creds = issue_database_credentials(narrow, "dbcore", "core-ro", mask=lambda v: None)
    assert _pg_role_exists(creds.username)
    revoke_lease(narrow, creds.lease_id)
    assert not _pg_role_exists(creds.username)
    other = issue_database_credentials(vault["admin"], "dbcore", "core-long", mask=lambda v: None)
    try:
        with pytest.raises(AccessDeniedError):
            revoke_lease(narrow, other.lease_id)
        with pytest.raises(InputDataError):
            revoke_lease(narrow, "dbcore/creds/../../sys/x")
    finally:
        revoke_lease(vault["admin"], other.lease_id)
    assert not _pg_role_exists(other.username)
