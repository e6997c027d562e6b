"""Secrets gate and consumer helpers in real Airflow runs against the real OpenBao and PostgreSQL.

DAG runs use the `run_dag` fixture (real ``dag.test()``); fail-closed error mapping (retryable or
not) is checked on ``execute`` directly, since a retryable task would keep ``dag.test()`` waiting.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid

import pytest

from tests.helpers.airflow import assert_retryable_error, task_context
from tests.helpers.env import patched_environ
from tests.helpers.net import free_port
from tests.helpers.no_io import forbid_io
from tests.helpers.services import start_bao
from tests.helpers.vault import (
    limited_token,
    open_handoff,
    postgres_database_engine,
    seed_kv,
    vault_conn_json,
)

pytestmark = pytest.mark.integration

SECRETS = {
    "ops/train/db": {"password": "ops-db-pw-" + uuid.uuid4().hex, "username": "ops-trainer-account"},
    "ops/train/api": {"api_key": "ops-api-key-" + uuid.uuid4().hex},
    "ops/train/short": {"pin": "4321", "password": "ops-short-pw-" + uuid.uuid4().hex},
    "ops/other/secret": {"password": "ops-other-pw-" + uuid.uuid4().hex},
}
PLANTED = [v for data in SECRETS.values() for v in data.values() if len(v) >= 5]

POLICY = """
version: 1
name: secrets-ops
secrets:
  wrap_ttl: 2m
  database: {{mount: dbops, max_lease_ttl: 10m}}
  grants:
    - dag_id: "secrets_ops_*"
      task_id: "fetch*"
      paths: ["ops/train/*"]
    - dag_id: "secrets_ops_main"
      task_id: "db_*"
      database_roles: [ops-ro]
    - dag_id: "secrets_ops_main"
      task_id: "db_long"
      database_roles: [ops-long]
"""


def _pg_roles(names: list[str]) -> dict[str, bool]:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (names,))
            present = {r[0] for r in cur.fetchall()}
    finally:
        conn.close()
    return {n: n in present for n in names}


def _pg_roles_like(pattern: str) -> list[str]:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (pattern,))
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def env(bao_server, tmp_path_factory):
    """Seed OpenBao (KV v2, limited policy, database engine), the Airflow connection and a policy file."""
    root = bao_server.client()
    seed_kv(root, SECRETS)
    token = limited_token(
        root,
        "ops-limited",
        """
        path "secret/data/ops/train/*" { capabilities = ["read"] }
        path "dbops/creds/ops-ro" { capabilities = ["read"] }
        path "dbops/creds/ops-long" { capabilities = ["read"] }
        path "sys/leases/revoke/dbops/creds/*" { capabilities = ["update"] }
        """,
        ttl="2h",
    )
    postgres_database_engine(root, "dbops", {"ops-ro": ("5m", "10m"), "ops-long": ("2h", "3h")})
    tmp = tmp_path_factory.mktemp("secrets-ops")
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY.format())
    with patched_environ({"AIRFLOW_CONN_VAULT_DEFAULT": vault_conn_json(bao_server.addr, password=token)}):
        yield {
            "root": root,
            "token": token,
            "addr": bao_server.addr,
            "policy": str(policy),
            "tmp": tmp,
            "evidence": str(tmp / "evidence"),
        }


def _records(evidence: str) -> list[dict]:
    from airflow_aisec.core.evidence import open_evidence_store

    store = open_evidence_store(evidence)
    store.verify()
    return store.read_records()


def _assert_no_planted_values(*blobs) -> None:
    text = "\n".join(b if isinstance(b, str) else json.dumps(b, default=str) for b in blobs)
    hits = [v for v in PLANTED if v in text]
    assert hits == [], f"{len(hits)} secret value(s) leaked"


HEADER = """
import hashlib, json, pathlib
from datetime import timedelta
import pendulum
from airflow.sdk import DAG, task, get_current_context
from airflow_aisec.operators.secrets import VaultSecretsGateOperator
from airflow_aisec.task_secrets import unwrap_secrets, vault_database_credentials, vault_secrets
POLICY = {policy!r}
EVIDENCE = {evidence!r}
SIDE = pathlib.Path({side!r})
"""


def test_gate_hands_off_and_consumer_unwraps_once_db_leases_are_revoked(env, run_dag):
    side = env["tmp"] / "main"
    side.mkdir()
    expected = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in SECRETS["ops/train/db"].items()}
    expected_api = hashlib.sha256(SECRETS["ops/train/api"]["api_key"].encode()).hexdigest()
    source = (
        HEADER.format(policy=env["policy"], evidence=env["evidence"], side=str(side))
        + f"""
EXPECTED = {expected!r}
EXPECTED_API = {expected_api!r}

with DAG("secrets_ops_main", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False) as dag:
    fetch = VaultSecretsGateOperator(
        task_id="fetch", paths={{"ops/train/db": ["password", "username"], "ops/train/api": None}},
        policy=POLICY, evidence_location=EVIDENCE, wrap_ttl="90s",
    )

    @task
    def consume():
        with vault_secrets("fetch", evidence_location=EVIDENCE) as secrets:
            db = secrets["ops/train/db"]
            assert {{k: hashlib.sha256(v.encode()).hexdigest() for k, v in db.items()}} == EXPECTED
            assert hashlib.sha256(secrets["ops/train/api"]["api_key"].encode()).hexdigest() == EXPECTED_API
            (SIDE / "repr.txt").write_text(repr(secrets) + repr(db))
            kept = secrets
        assert len(kept) == 0  # dropped when the block exits
        return "consumed"

    fetch >> consume()

    fetch_denied = VaultSecretsGateOperator(task_id="fetch_denied", paths=["ops/other/secret"], policy=POLICY,
                                            evidence_location=EVIDENCE)

    @task
    def after_denied():
        return "must not run"

    fetch_denied >> after_denied()

    VaultSecretsGateOperator(task_id="fetch_missing", paths=["ops/train/not-there"], policy=POLICY,
                             evidence_location=EVIDENCE)
    VaultSecretsGateOperator(task_id="fetch_short", paths=["ops/train/short"], policy=POLICY,
                             evidence_location=EVIDENCE)

    @task
    def db_ok():
        import psycopg2
        with vault_database_credentials("ops-ro", policy=POLICY, evidence_location=EVIDENCE) as creds:
            (SIDE / "db_ok.user").write_text(creds.username)
            conn = psycopg2.connect(host="127.0.0.1", user=creds.username, password=creds.password,
                                    dbname="postgres")
            with conn.cursor() as cur:
                cur.execute("SELECT current_user")
                assert cur.fetchone()[0] == creds.username
            conn.close()
        return "db ok"

    @task
    def db_fail():
        with vault_database_credentials("ops-ro", policy=POLICY, evidence_location=EVIDENCE) as creds:
            (SIDE / "db_fail.user").write_text(creds.username)
            raise ValueError("training crashed")

    @task
    def db_denied():
        with vault_database_credentials("ops-long", policy=POLICY, evidence_location=EVIDENCE):
            return "must not get here"

    @task
    def db_long():
        with vault_database_credentials("ops-long", policy=POLICY, evidence_location=EVIDENCE) as creds:
            (SIDE / "db_long.user").write_text(creds.username)
            return "must not get here"

    @task(execution_timeout=timedelta(seconds=3))
    def db_timeout():
        import time
        with vault_database_credentials("ops-ro", policy=POLICY, evidence_location=EVIDENCE) as creds:
            (SIDE / "db_timeout.user").write_text(creds.username)
            time.sleep(60)  # Airflow stops the task: the lease must still be revoked

    db_ok()
    db_fail()
    db_denied()
    db_long()
    db_timeout()
"""
    )
    out = run_dag(source, "secrets_ops_main")
    assert out.task_states == {
        "fetch": "success",
        "consume": "success",
        "fetch_denied": "failed",
        "after_denied": "upstream_failed",
        "fetch_missing": "failed",
        "fetch_short": "failed",
        "db_ok": "success",
        "db_fail": "failed",
        "db_denied": "failed",
        "db_long": "failed",
        "db_timeout": "failed",
    }

    # the hand-off: handles only, each token already spent
    result = out.xcom("fetch")
    assert result["verdict"] == "pass" and result["metrics"]["wrapped"] == 2
    assert result["metrics"]["wrap_ttl_seconds"] == 90
    assert {i["uri"] for i in result["inputs"]} == {
        "vault://secret/ops/train/db?version=1",
        "vault://secret/ops/train/api?version=1",
    }
    sealed = out.xcom("fetch", "aisec_secret_handles")
    assert sealed["sealed"] is True and all(h["token"].startswith("aisec-sealed:") for h in sealed["handles"])
    handles = open_handoff(sealed, dag_id="secrets_ops_main", run_id=out.run_id)
    assert {h["creation_path"] for h in handles} == {"secret/data/ops/train/db", "secret/data/ops/train/api"}
    from hvac import exceptions as hv

    for h in handles:
        with pytest.raises(hv.InvalidRequest):
            env["root"].sys.unwrap(h["token"])
    assert "SecretValues(paths=['ops/train/api', 'ops/train/db'])" in (side / "repr.txt").read_text()

    # refusals: ungranted path (critical, never waived), missing path (an access error), short value;
    # no handle issued
    denied = out.xcom("fetch_denied")
    assert denied["verdict"] == "fail" and denied["findings"][0]["rule"] == "secrets.path_not_allowed"
    assert denied["findings"][0]["severity"] == "critical"
    assert out.xcom("fetch_denied", "aisec_secret_handles") is None
    missing = out.xcom("fetch_missing")
    assert missing["verdict"] == "error" and missing["error"]["type"] == "AccessDeniedError"
    assert "not found" in missing["error"]["message"] and missing["error"]["retryable"] is False
    short = out.xcom("fetch_short")
    assert short["verdict"] == "fail" and short["findings"][0]["rule"] == "secrets.value_unmaskable"
    assert short["findings"][0]["location"] == {"path": "ops/train/short", "keys": ["pin"]}
    assert out.xcom("fetch_short", "aisec_secret_handles") is None

    # dynamic credentials: the PostgreSQL role is gone after success and after failure
    users = [(side / f"{name}.user").read_text() for name in ("db_ok", "db_fail", "db_timeout")]
    assert _pg_roles(users) == {u: False for u in users}
    assert out.xcom("db_ok")["verdict"] == "pass"
    assert out.xcom("db_denied")["findings"][0]["rule"] == "secrets.database_role_not_allowed"
    assert not (side / "db_denied.user").exists()
    # a lease longer than the policy allows: the gate fails and revokes it before the body runs
    too_long = out.xcom("db_long")
    assert too_long["findings"][0]["rule"] == "secrets.lease_ttl_exceeds_policy"
    assert not (side / "db_long.user").exists()
    with pytest.raises(hv.InvalidRequest):
        env["root"].sys.read_lease(too_long["metrics"]["lease_id"])
    assert not _pg_roles_like("%ops-long%")

    # the audit trail: gate results, the unwrap (accessors, no tokens), three revocations
    records = _records(env["evidence"])
    kinds = [r["kind"] for r in records]
    assert kinds.count("secret_unwrapped") == 1 and kinds.count("lease_revoked") == 4
    unwrap = next(r for r in records if r["kind"] == "secret_unwrapped")["payload"]
    assert unwrap["airflow"]["task_id"] == "consume"
    assert {h["accessor"] for h in unwrap["handles"]} == {h["accessor"] for h in handles}
    tokens = [h["token"] for h in handles]
    blob = json.dumps(records)
    assert not any(t in blob for t in tokens)
    _assert_no_planted_values(records, list(out.xcoms.items()))


def test_intercepted_token_fails_the_consumer_with_a_security_event(env, run_dag):
    source = (
        HEADER.format(policy=env["policy"], evidence=env["evidence"], side=str(env["tmp"]))
        + f"""
with DAG("secrets_ops_intercept", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False) as dag:
    fetch = VaultSecretsGateOperator(task_id="fetch", paths=["ops/train/db"], policy=POLICY,
                                     evidence_location=EVIDENCE)

    @task
    def intercept():
        import hvac
        ti = get_current_context()["ti"]
        from airflow_aisec import settings
        from airflow_aisec.core.gates.secrets import open_handles, parse_handoff_keys
        # code running on a worker holds [aisec] handoff_key: it can open the hand-off and steal it
        sealed = ti.xcom_pull(task_ids="fetch", key="aisec_secret_handles")
        handles = open_handles(sealed, parse_handoff_keys(settings.handoff_key()), dag_id=ti.dag_id,
                               run_id=ti.run_id, task_id="fetch")
        hvac.Client(url={env["addr"]!r}, token={env["token"]!r}).sys.unwrap(handles[0].token)

    @task
    def consume():
        with vault_secrets("fetch", evidence_location=EVIDENCE) as secrets:
            return "must not get here"

    fetch >> intercept() >> consume()
"""
    )
    before = len(_records(env["evidence"]))
    out = run_dag(source, "secrets_ops_intercept")
    assert out.task_states == {"fetch": "success", "intercept": "success", "consume": "failed"}
    result = out.xcom("consume")
    assert result["verdict"] == "fail"
    [finding] = result["findings"]
    assert finding["rule"] == "secrets.wrapping_token_reused" and finding["severity"] == "critical"
    assert "intercepted" in finding["message"]
    new = _records(env["evidence"])[before:]
    events = [r for r in new if r["kind"] == "security_event"]
    assert len(events) == 1
    assert events[0]["payload"]["airflow"]["task_id"] == "consume"
    assert events[0]["payload"]["findings"][0]["location"]["path"] == "ops/train/db"
    assert not [r for r in new if r["kind"] == "secret_unwrapped"]
    _assert_no_planted_values(new, list(out.xcoms.items()))


def test_a_retry_after_unwrapping_is_not_mistaken_for_an_attack(env, run_dag):
    side = env["tmp"] / "retry"
    side.mkdir()
    source = (
        HEADER.format(policy=env["policy"], evidence=env["evidence"], side=str(side))
        + """
with DAG("secrets_ops_retry", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False) as dag:
    fetch = VaultSecretsGateOperator(task_id="fetch", paths=["ops/train/api"], policy=POLICY,
                                     evidence_location=EVIDENCE)

    @task(retries=1, retry_delay=timedelta(seconds=0))
    def consume():
        attempt = get_current_context()["ti"].try_number
        try:
            secrets = unwrap_secrets("fetch", evidence_location=EVIDENCE)
        except Exception as exc:
            (SIDE / f"retry_try{attempt}.txt").write_text(f"{type(exc).__name__}: {exc}")
            raise
        if attempt == 1:
            raise RuntimeError("flaky training step")
        return "must not get here"

    fetch >> consume()
"""
    )
    before = len(_records(env["evidence"]))
    out = run_dag(source, "secrets_ops_retry")
    assert out.task_states == {"fetch": "success", "consume": "failed"}
    new = _records(env["evidence"])[before:]
    assert [r["kind"] for r in new if r["kind"] != "gate_result"] == ["secret_unwrapped"]
    assert new[-1]["payload"]["airflow"]["try_number"] == 1
    assert not [r for r in new if r["kind"] == "security_event"]
    assert not (side / "retry_try1.txt").exists()
    message = (side / "retry_try2.txt").read_text()
    assert message.startswith("AirflowFailException") and "unwrapped by try 1 of this task" in message
    assert "clear task 'fetch'" in message


# --------------------------------------------------------------------------------------------
# execute() directly: retryable or not
# --------------------------------------------------------------------------------------------
def _context(dag_id="secrets_ops_direct", task_id="fetch_direct", xcom=None):
    return task_context(dag_id=dag_id, run_id="manual__1", task_id=task_id, xcom=xcom)


def _pushed_handles(ctx):
    return next(
        c.kwargs["value"] for c in ctx["ti"].xcom_push.call_args_list if c.kwargs["key"] == "aisec_secret_handles"
    )


@pytest.fixture
def vault_conn(monkeypatch):
    def _set(addr: str, token: str = "x") -> None:
        monkeypatch.setenv("AIRFLOW_CONN_VAULT_DIRECT", vault_conn_json(addr, password=token))

    return _set


def _gate(env, tmp_path, **kwargs):
    from airflow_aisec.operators.secrets import VaultSecretsGateOperator

    return VaultSecretsGateOperator(
        task_id="fetch_direct",
        paths=["ops/train/db"],
        policy=env["policy"],
        evidence_location=str(tmp_path / "ev"),
        vault_conn_id="vault_direct",
        **kwargs,
    )


def test_unreachable_vault_is_a_retryable_failure(env, tmp_path, vault_conn):
    vault_conn(f"http://127.0.0.1:{free_port()}")
    ctx = _context()
    assert_retryable_error(lambda: _gate(env, tmp_path).execute(ctx), ctx)
    assert "aisec_secret_handles" not in [c.kwargs["key"] for c in ctx["ti"].xcom_push.call_args_list]


def test_sealed_vault_is_retryable_for_gate_and_consumer(env, tmp_path, vault_conn):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from airflow_aisec.task_secrets import unwrap_secrets

    server = start_bao("ops-sealed")
    addr = server.addr
    try:
        client = server.client()
        client.secrets.kv.v2.create_or_update_secret(
            path="ops/train/db", secret=SECRETS["ops/train/db"], mount_point="secret"
        )
        vault_conn(addr, "ops-sealed")
        ctx = _context()
        _gate(env, tmp_path).execute(ctx)  # healthy: handles issued
        handles = _pushed_handles(ctx)
        client.sys.seal()
        with pytest.raises(AirflowException) as info:
            _gate(env, tmp_path).execute(_context())
        assert not isinstance(info.value, AirflowFailException) and "sealed" in str(info.value)
        with pytest.raises(AirflowException) as info:
            unwrap_secrets(
                "fetch_direct",
                vault_conn_id="vault_direct",
                evidence_location=str(tmp_path / "ev"),
                context=_context(task_id="consume", xcom=handles),
            )
        assert not isinstance(info.value, AirflowFailException)
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)


@pytest.mark.parametrize(
    "paths, wrap_ttl, match",
    [
        (["ops/../etc"], None, "invalid secret path"),
        ([], None, "no secret paths"),
        (["ops/train/db"], "1h", "exceeds the policy"),
    ],
)
def test_bad_arguments_fail_without_retry(env, tmp_path, vault_conn, paths, wrap_ttl, match):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_aisec.operators.secrets import VaultSecretsGateOperator

    vault_conn(env["addr"], env["token"])
    op = VaultSecretsGateOperator(
        task_id="fetch_direct",
        paths=paths,
        wrap_ttl=wrap_ttl,
        policy=env["policy"],
        evidence_location=str(tmp_path / "ev"),
        vault_conn_id="vault_direct",
    )
    with pytest.raises(AirflowFailException, match=match):
        op.execute(_context())


def test_missing_connection_and_malformed_handles_fail_without_retry(env, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_aisec.task_secrets import unwrap_secrets

    op = _gate(env, tmp_path)
    op.vault_conn_id = "no_such_conn"
    with pytest.raises(AirflowFailException, match="not defined"):
        op.execute(_context())
    for xcom, match in [
        (None, "run a VaultSecretsGateOperator"),
        ({"handles": [{"token": "s.x"}]}, "malformed"),
        ({"handles": []}, "malformed"),
        ("garbage", "malformed"),
    ]:
        with pytest.raises(AirflowFailException, match=match):
            unwrap_secrets("fetch", evidence_location=str(tmp_path / "ev"), context=_context(xcom=xcom))


def test_constructor_does_no_io_and_templates_paths():
    from airflow_aisec.operators.secrets import VaultSecretsGateOperator

    with forbid_io("VaultSecretsGateOperator.__init__"):
        op = VaultSecretsGateOperator(task_id="t", paths=["a/b"], policy="/nope.yaml")
    assert {"paths", "vault_conn_id", "wrap_ttl", "policy", "evidence_location"} <= set(op.template_fields)
    with pytest.raises(TypeError):
        VaultSecretsGateOperator("t", ["a/b"])  # keyword-only


@pytest.mark.parametrize("auth", ["approle", "jwt"])
def test_hook_auth_methods_work_for_gate_and_consumer(env, tmp_path, monkeypatch, auth):
    """The connection may use any auth method VaultHook supports; AppRole and JWT against real OpenBao."""
    import time

    root = env["root"]
    methods = root.sys.list_auth_methods()["data"]
    if auth == "approle":
        if "approle/" not in methods:
            root.sys.enable_auth_method("approle")
        root.auth.approle.create_or_update_approle(
            "ops-airflow", token_policies=["ops-limited"], token_ttl="10m"
        )
        role_id = root.auth.approle.read_role_id("ops-airflow")["data"]["role_id"]
        secret_id = root.auth.approle.generate_secret_id("ops-airflow")["data"]["secret_id"]
        conn = {"login": role_id, "password": secret_id, "extra": {"auth_type": "approle"}}
    else:
        import jwt as pyjwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        if "jwt-ops/" not in methods:
            root.sys.enable_auth_method("jwt", path="jwt-ops")
        root.auth.jwt.configure(jwt_validation_pubkeys=[pem], path="jwt-ops")
        root.auth.jwt.create_role(
            name="ops-airflow",
            role_type="jwt",
            user_claim="sub",
            bound_audiences=["vault"],
            token_policies=["ops-limited"],
            allowed_redirect_uris=[],
            path="jwt-ops",
        )
        now = int(time.time())
        token = pyjwt.encode(
            {"sub": "airflow-worker", "aud": "vault", "iat": now, "exp": now + 600}, key, algorithm="RS256"
        )
        conn = {
            "extra": {
                "auth_type": "jwt",
                "jwt_role": "ops-airflow",
                "jwt_token": token,
                "auth_mount_point": "jwt-ops",
            }
        }
    monkeypatch.setenv("AIRFLOW_CONN_VAULT_DIRECT", vault_conn_json(env["addr"], **conn))
    from airflow_aisec.task_secrets import unwrap_secrets

    ctx = _context()
    assert _gate(env, tmp_path).execute(ctx) == "pass"
    handles = _pushed_handles(ctx)
    values = unwrap_secrets(
        "fetch_direct",
        vault_conn_id="vault_direct",
        evidence_location=str(tmp_path / "ev"),
        context=_context(task_id="consume", xcom=handles),
    )
    assert dict(values["ops/train/db"]) == SECRETS["ops/train/db"]


def test_warn_level_unmaskable_value_still_hands_off(env, tmp_path, vault_conn):
    from airflow_aisec.operators.secrets import VaultSecretsGateOperator

    policy = tmp_path / "warn.yaml"
    policy.write_text(
        POLICY.format().replace(
            "name: secrets-ops", "name: secrets-ops-warn\nrules:\n  secrets.value_unmaskable: warn"
        )
    )
    vault_conn(env["addr"], env["token"])
    ctx = _context()
    op = VaultSecretsGateOperator(
        task_id="fetch_direct",
        paths=["ops/train/short"],
        policy=str(policy),
        evidence_location=str(tmp_path / "ev"),
        vault_conn_id="vault_direct",
    )
    assert op.execute(ctx) == "warn"
    pushed = {c.kwargs["key"]: c.kwargs["value"] for c in ctx["ti"].xcom_push.call_args_list}
    assert pushed["aisec_result"]["findings"][0]["enforcement"] == "warn"
    assert len(pushed["aisec_secret_handles"]["handles"]) == 1


# --------------------------------------------------------------------------------------------
# ``aisec secrets check`` runs the operator's check: same policy and request, same verdict
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "paths, verdict",
    [
        ({"ops/train/db": ["password"], "ops/train/api": []}, "pass"),
        (["ops/train/short"], "fail"),  # a value the masker cannot hide
        (["ops/other/secret"], "fail"),  # not granted to this DAG/task
        ({"ops/train/db": ["api_key"]}, "error"),  # a required key is missing
        (["ops/train/not-there"], "error"),  # missing in Vault
    ],
)
def test_cli_and_operator_give_the_same_verdict(env, tmp_path, vault_conn, aisec_cli, paths, verdict):
    from airflow_aisec.operators.secrets import VaultSecretsGateOperator

    vault_conn(env["addr"], env["token"])
    ctx = _context(dag_id="secrets_ops_parity", task_id="fetch_parity")
    op = VaultSecretsGateOperator(task_id="fetch_parity", paths=paths, policy=env["policy"],
                                  evidence_location=str(tmp_path / "ev"), vault_conn_id="vault_direct")
    with contextlib.suppress(Exception):  # the verdict is in the pushed result either way
        op.execute(ctx)
    by_operator = next(c.kwargs["value"] for c in ctx["ti"].xcom_push.call_args_list
                       if c.kwargs["key"] == "aisec_result")

    args = [p if isinstance(paths, list) else f"{p}:{','.join(k)}" for p, k in
            (((p, []) for p in paths) if isinstance(paths, list) else paths.items())]
    proc = aisec_cli("secrets", "check", *args, "--policy", env["policy"], "--dag-id", "secrets_ops_parity",
                     "--task-id", "fetch_parity", "--json",
                     env={"VAULT_ADDR": env["addr"], "VAULT_TOKEN": env["token"]})
    by_cli = json.loads(proc.stdout)
    assert by_operator["verdict"] == by_cli["verdict"] == verdict, proc.stderr
    assert [f["rule"] for f in by_operator["findings"]] == [f["rule"] for f in by_cli["findings"]]
    assert (by_operator.get("error") or {}).get("type") == (by_cli.get("error") or {}).get("type")
    assert proc.returncode == {"pass": 0, "fail": 1, "error": 2}[verdict]
    _assert_no_planted_values(by_operator, proc.stdout, proc.stderr)
