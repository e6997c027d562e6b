"""docker/: the compose file against the compose specification's JSON Schema (no Docker engine here), and
in step with what the test suite runs: versions, env names, connections, policies, and the OpenBao init
script, which runs for real against an OpenBao dev server and PostgreSQL.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
SCHEMA = REPO / "tests" / "data" / "compose-spec.json"
VENV_BIN = Path(sys.executable).parent

AIRFLOW_SERVICES = {
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
    "airflow-init": ["db", "migrate"],
}

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


# ------------------------------------------------------------------------------------------------
# Helpers: compose interpolation (the subset the spec defines: $$, ${V}, ${V:-d}, ${V-d}, ${V:?e}, ${V?e})
# ------------------------------------------------------------------------------------------------
def dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(node, env: dict[str, str], missing: list[str] | None = None):
    if isinstance(node, dict):
        return {k: interpolate(v, env, missing) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env, missing) for v in node]
    if not isinstance(node, str):
        return node

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        value = env.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            if missing is not None:
                missing.append(name)
            return ""
        if op in (":-", "-") and (value is None or (op == ":-" and value == "")):
            return arg or ""
        return value or ""

    return _VAR.sub(sub, node)


def variables(text: str) -> dict[str, str | None]:
    """Variables referenced by the compose file, with their operator (None, ':-', ':?'...)."""
    out: dict[str, str | None] = {}
    for m in _VAR.finditer(text):
        if m.group(0) != "$$":
            out[m.group(1) or m.group(4)] = m.group(2)
    return out


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return dotenv(DOCKER / ".env.example")


@pytest.fixture(scope="module")
def compose(raw, example_env) -> dict:
    missing: list[str] = []
    doc = interpolate(raw, example_env, missing)
    assert missing == [], f"required variables missing from .env.example: {sorted(set(missing))}"
    return doc


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA.read_text())


def env_of(compose: dict, service: str) -> dict[str, str]:
    env = compose["services"][service].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


# ------------------------------------------------------------------------------------------------
# The compose specification
# ------------------------------------------------------------------------------------------------
def test_vendored_schema_is_the_compose_spec(schema):
    assert schema["$schema"].startswith("https://json-schema.org/draft-07")
    assert schema["title"] == "Compose Specification"
    jsonschema.Draft7Validator.check_schema(schema)
    source = (SCHEMA.parent / "compose-spec.SOURCE.md").read_text()
    import hashlib

    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() in source


def test_compose_file_is_valid(compose, raw, schema):
    validator = jsonschema.Draft7Validator(schema)
    for doc in (raw, compose):  # as written, and as Docker sees it after interpolation
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["services"]["airflow-worker"].update(comand=["oops"]),
        lambda d: d["services"]["postgres"].update(healthcheck={"test": 5}),
        lambda d: d["services"]["redis"].update(depends_on={"postgres": {"condition": "sometimes"}}),
        lambda d: d.update(servics={}),
    ],
)
def test_schema_catches_mistakes(compose, schema, breakage):
    broken = copy.deepcopy(compose)
    breakage(broken)
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_every_variable_is_documented_and_secrets_are_never_literal(raw, example_env):
    text = COMPOSE.read_text()
    used = variables(text)
    assert set(used) == set(example_env), (sorted(set(used) ^ set(example_env)))
    # Secrets come only from the env file, and are required (no silent default).
    for name, op in used.items():
        if re.search(r"PASSWORD|SECRET|TOKEN|KEY", name) and name != "AISEC_DEMO_API_KEY":
            assert op == ":?", f"{name} must be required (${{{name}:?...}})"
    assert all(v.startswith("change-me") for k, v in example_env.items()
               if re.search(r"PASSWORD|SECRET|TOKEN|KEY|ROLE_ID", k) and k != "AISEC_DEMO_API_KEY")
    assert ".env" in (DOCKER / ".gitignore").read_text().split()


def test_all_services_are_there(compose):
    services = compose["services"]
    assert set(AIRFLOW_SERVICES) | {"postgres", "redis", "openbao", "openbao-init", "minio", "minio-init"} \
        == set(services)
    for name, command in AIRFLOW_SERVICES.items():
        svc = services[name]
        assert svc["command"] == command, name
        assert svc["image"] == "airflow-aisec:0.1.0" and svc["build"]["dockerfile"] == "docker/Dockerfile"
        if name != "airflow-init":
            assert svc["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
            assert svc["depends_on"]["openbao-init"]["condition"] == "service_completed_successfully"
            assert svc["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
            assert "healthcheck" in svc, name
    envs = [env_of(compose, n) for n in AIRFLOW_SERVICES]
    base = envs[0]
    worker_only = ("DUMB_INIT_SETSID", "AIRFLOW__AISEC__HANDOFF_KEY")
    for env in envs:
        assert {k: v for k, v in env.items() if k not in worker_only} == base
    # The key sealing the secrets hand-off in XCom: on the worker, which runs tasks, and nowhere else.
    assert [n for n in AIRFLOW_SERVICES if "AIRFLOW__AISEC__HANDOFF_KEY" in env_of(compose, n)] == ["airflow-worker"]


# ------------------------------------------------------------------------------------------------
# Same settings as the tests
# ------------------------------------------------------------------------------------------------
def test_image_versions_match_the_tested_environment(compose):
    dockerfile = (DOCKER / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, re.MULTILINE))
    assert args["AIRFLOW_VERSION"] == version("apache-airflow")
    assert f"apache-airflow=={args['AIRFLOW_VERSION']}" in (REPO / "requirements.lock").read_text()
    assert args["PYTHON_VERSION"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python\$\{PYTHON_VERSION\}$", dockerfile, re.MULTILINE)
    # The provider goes in with the lock as constraints, Airflow pinned in the same command.
    assert "--constraint /opt/aisec/src/requirements.lock" in dockerfile
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in dockerfile
    extras = set(args["AISEC_EXTRAS"].split(","))
    assert {"celery", "signing", "pii", "scan", "gx"} <= extras
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for needed in ("!pyproject.toml", "!requirements.lock", "!airflow_aisec/", "!policies/"):
        assert needed in ignore
    # OpenBao: the same release as the `bao` binary the tests run.
    out = subprocess.run([str(VENV_BIN / "bao"), "version"], capture_output=True, text=True, check=True)
    bao_version = re.search(r"OpenBao v(\S+)", out.stdout).group(1)
    for svc in ("openbao", "openbao-init"):
        assert compose["services"][svc]["image"] == f"quay.io/openbao/openbao:{bao_version}"


@pytest.mark.integration
def test_database_and_broker_versions_match_the_test_services(compose, postgres_dsn, redis_url):
    import psycopg2
    import redis

    with psycopg2.connect(postgres_dsn) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version_num")
        pg_major = int(cur.fetchone()[0]) // 10000
    assert compose["services"]["postgres"]["image"] == f"postgres:{pg_major}-alpine"
    redis_version = redis.Redis.from_url(redis_url).info()["redis_version"]
    assert compose["services"]["redis"]["image"] == f"redis:{'.'.join(redis_version.split('.')[:2])}-alpine"


def test_celery_settings_match_the_celery_run(compose):
    env = env_of(compose, "airflow-worker")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # Same drivers as tests/integration/test_celery_run.py (psycopg2 sync; asyncpg comes with the extra).
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    # Workers talk to the api-server's Task Execution API, with the JWT secret every process shares.
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"]
    # Every Airflow/aisec setting the Celery run configures is configured here too (minus test-only knobs).
    celery_test = (REPO / "tests" / "integration" / "test_celery_run.py").read_text()
    used = set(re.findall(r'"(AIRFLOW__[A-Z_]+)"', celery_test))
    test_only = {
        "AIRFLOW__API__HOST", "AIRFLOW__API__PORT", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__UNIT_TEST_MODE",
        "AIRFLOW__CELERY__DEFAULT_QUEUE", "AIRFLOW__OPERATORS__DEFAULT_QUEUE", "AIRFLOW__CELERY__WORKER_CONCURRENCY",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL", "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC", "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
        "AIRFLOW__LOGGING__LOGGING_LEVEL", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    }
    assert used - test_only, "the celery run test no longer names its settings"
    assert sorted(used - test_only - set(env)) == []
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "True"  # the test unpauses; production not


def test_aisec_settings_and_connections(compose, example_env):
    env = env_of(compose, "airflow-scheduler")
    strict = "/opt/airflow/policies/strict.yaml"
    assert env["AIRFLOW__AISEC__DEFAULT_POLICY"] == strict
    assert env["AIRFLOW__AISEC__PLATFORM_POLICY"] == strict  # cluster policy on, fail closed
    # The platform's floor and where policies may come from (issue 11), as scripts/demo.py sets them.
    assert env["AIRFLOW__AISEC__BASELINE_POLICY"] == "/opt/airflow/policies/baseline.yaml"
    baseline = REPO / "policies" / "baseline.yaml"
    assert env["AIRFLOW__AISEC__BASELINE_POLICY_SHA256"] == hashlib.sha256(baseline.read_bytes()).hexdigest()
    assert env["AIRFLOW__AISEC__POLICY_ROOTS"] == "/opt/airflow/policies"
    demo = (REPO / "scripts" / "demo.py").read_text()
    assert all(f'"AIRFLOW__AISEC__{k}"' in demo for k in ("BASELINE_POLICY", "BASELINE_POLICY_SHA256", "POLICY_ROOTS"))
    assert "../policies:/opt/airflow/policies:ro" in compose["services"]["airflow-scheduler"]["volumes"]
    assert (REPO / "policies" / "strict.yaml").exists()
    assert "COPY --chown=airflow:0 policies /opt/airflow/policies" in (DOCKER / "Dockerfile").read_text()

    # S3: the same connection shape as the tests' moto server (helpers.services.S3Server).
    aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws == {"conn_type": "aws", "login": example_env["MINIO_ROOT_USER"],
                   "password": example_env["MINIO_ROOT_PASSWORD"],
                   "extra": {"endpoint_url": "http://minio:9000", "region_name": "us-east-1"}}
    assert env["AIRFLOW__AISEC__EVIDENCE_AWS_CONN_ID"] == "aws_default"
    bucket = env["AIRFLOW__AISEC__EVIDENCE_LOCATION"].removeprefix("s3://").split("/")[0]
    init = " ".join(compose["services"]["minio-init"]["command"])
    assert f"mc mb --ignore-existing --with-lock aisec/{bucket}" in init
    assert "mc version enable aisec/aisec-models" in init  # signing pins S3 object versions

    # Vault: AppRole with the ids openbao-init registers; KV mount = the policy's secrets.kv_mount.
    vault = json.loads(env["AIRFLOW_CONN_VAULT_DEFAULT"])
    init_env = env_of(compose, "openbao-init")
    strict_doc = yaml.safe_load((REPO / "policies" / "strict.yaml").read_text())
    assert vault["conn_type"] == "vault" and vault["host"] == "openbao" and vault["port"] == 8200
    assert vault["extra"] == {"auth_type": "approle", "kv_engine_version": 2}
    assert vault["login"] == init_env["AISEC_VAULT_ROLE_ID"] == example_env["AISEC_VAULT_ROLE_ID"]
    assert vault["password"] == init_env["AISEC_VAULT_SECRET_ID"] == example_env["AISEC_VAULT_SECRET_ID"]
    assert vault["schema"] == strict_doc["secrets"]["kv_mount"]
    assert strict_doc["secrets"]["kv_version"] == 2


def test_openbao_init_matches_the_policy(compose):
    init_env = env_of(compose, "openbao-init")
    script = (DOCKER / "openbao" / "init.sh").read_text()
    required = set(re.findall(r'^: "\$\{(\w+):\?', script, re.MULTILINE))
    assert required == {"BAO_ADDR", "BAO_TOKEN", "AISEC_VAULT_ROLE_ID", "AISEC_VAULT_SECRET_ID",
                        "AISEC_FEATURES_DB_PASSWORD"}
    assert required <= set(init_env)
    svc = compose["services"]["openbao-init"]
    assert svc["entrypoint"] == ["/bin/sh", "/opt/aisec/openbao-init.sh"]
    assert "./openbao/init.sh:/opt/aisec/openbao-init.sh:ro" in svc["volumes"]
    assert init_env["BAO_ADDR"] == "http://openbao:8200"
    assert init_env["BAO_TOKEN"] == env_of(compose, "openbao")["BAO_DEV_ROOT_TOKEN_ID"]

    strict = yaml.safe_load((REPO / "policies" / "strict.yaml").read_text())
    db = strict["secrets"]["database"]
    assert f'DB_MOUNT="${{AISEC_DB_MOUNT:-{db["mount"]}}}"' in script
    roles = {r for g in strict["secrets"]["grants"] for r in g.get("database_roles", [])}
    assert init_env["AISEC_DB_ROLE"] in roles
    # Dynamic DB users live no longer than the policy allows.
    assert f'DB_MAX_TTL="${{AISEC_DB_MAX_TTL:-{db["max_lease_ttl"]}}}"' in script
    # The Transit key created is the one the signing policy trusts.
    transit = [k["transit"] for k in strict.get("signing", {}).get("trusted_keys", []) if k.get("transit")]
    if transit:
        assert init_env["AISEC_TRANSIT_KEY"] in {t["name"] for t in transit}
        assert 'TRANSIT="${AISEC_TRANSIT_MOUNT:-transit}"' in script
        assert {t.get("mount", "transit") for t in transit} == {"transit"}
    # The features DB and its admin are the ones PostgreSQL's first-start hook creates.
    pg_init = (DOCKER / "postgres" / "init-features.sh").read_text()
    assert f"CREATE ROLE {init_env['AISEC_FEATURES_DB_USER']} WITH LOGIN CREATEROLE" in pg_init
    assert f"CREATE DATABASE {init_env['AISEC_DB_NAME']} OWNER {init_env['AISEC_FEATURES_DB_USER']}" in pg_init
    assert "./postgres/init-features.sh:/docker-entrypoint-initdb.d/10-init-features.sh:ro" in \
        compose["services"]["postgres"]["volumes"]
    assert os.access(DOCKER / "postgres" / "init-features.sh", os.X_OK)  # executed, not sourced


def test_approvers_of_the_strict_policy_can_log_in(compose):
    strict = yaml.safe_load((REPO / "policies" / "strict.yaml").read_text())
    approvers = {a for route in strict["platform"].get("approvals", []) for a in route.get("approvers", [])}
    users = {u.split(":")[0] for u in env_of(compose, "airflow-apiserver")[
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")}
    assert approvers and approvers <= users


def test_ports_are_the_standard_ones_the_tests_use(compose):
    s = compose["services"]
    assert s["postgres"]["expose"] == ["5432"] and s["redis"]["expose"] == ["6379"]
    assert s["minio"]["expose"] == ["9000"]
    assert s["airflow-apiserver"]["ports"] == ["127.0.0.1:8080:8080"]
    assert s["openbao"]["ports"] == ["127.0.0.1:8200:8200"]
    assert env_of(compose, "openbao")["BAO_DEV_LISTEN_ADDRESS"] == "0.0.0.0:8200"


# ------------------------------------------------------------------------------------------------
# The OpenBao init script, for real
# ------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bao(tmp_path_factory):
    """A dedicated OpenBao dev server (the script configures mounts and auth; keep it off shared state)."""
    token = "compose-init-root"
    port = _free_port()
    home = tmp_path_factory.mktemp("bao-home")
    proc = subprocess.Popen(
        [shutil.which("bao", path=str(VENV_BIN)), "server", "-dev", f"-dev-root-token-id={token}",
         f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HOME": str(home)},
    )
    addr = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.terminate()
                raise
            time.sleep(0.2)
    yield addr, token
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def features_db(postgres_dsn):
    import secrets as _secrets

    import psycopg2

    name = f"aisec_features_{_secrets.token_hex(4)}"
    conn = psycopg2.connect(postgres_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield name
    with conn.cursor() as cur:
        cur.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%%aisec%%' OR rolname LIKE 'v-approle-%%'")
        for (role,) in cur.fetchall():
            cur.execute(f'DROP ROLE IF EXISTS "{role}"')
    conn.close()


def _script_env(compose, bao, features_db, **override):
    addr, token = bao
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_", "AISEC_"))}
    env.update(env_of(compose, "openbao-init"))
    env.update({
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        "BAO_ADDR": addr,
        "BAO_TOKEN": token,
        # The test PostgreSQL (trust auth) stands in for the compose postgres service.
        "AISEC_FEATURES_DB_HOST": "127.0.0.1",
        "AISEC_FEATURES_DB_USER": "postgres",
        "AISEC_DB_NAME": features_db,
        "AISEC_VAULT_ROLE_ID": "ci-role-7f3a",
        "AISEC_VAULT_SECRET_ID": "ci-secret-9c1e55d0",
        "AISEC_FEATURES_DB_PASSWORD": "ci-db-admin-41b7",
        "AISEC_DEMO_API_KEY": "ci-demo-key-d2e8",
    })
    env.update(override)
    return env


def _run_script(env):
    return subprocess.run(["sh", str(DOCKER / "openbao" / "init.sh")], check=False, env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.mark.integration
def test_init_script_configures_openbao_for_airflow(compose, bao, features_db, tmp_path, monkeypatch):
    import hvac
    import psycopg2
    from hvac.exceptions import Forbidden

    env = _script_env(compose, bao, features_db, HOME=str(tmp_path))
    secrets_planted = [env["AISEC_VAULT_SECRET_ID"], env["AISEC_FEATURES_DB_PASSWORD"], env["AISEC_DEMO_API_KEY"]]
    first = _run_script(env)
    assert first.returncode == 0, first.stdout + first.stderr
    again = _run_script(env)  # idempotent
    assert again.returncode == 0, again.stdout + again.stderr
    assert "login verified" in again.stdout
    for out in (first, again):
        assert not [s for s in secrets_planted if s in out.stdout + out.stderr]

    addr, token = bao
    root = hvac.Client(url=addr, token=token)
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    assert mounts["secret/"]["type"] == "kv" and mounts["secret/"]["options"]["version"] == "2"
    assert mounts["transit/"]["type"] == "transit" and mounts["database/"]["type"] == "database"
    key = root.secrets.transit.read_key("model-signing")["data"]
    assert key["type"] == "ecdsa-p256" and key["exportable"] is False

    # Airflow's own VaultHook, with the connection compose gives Airflow (host/port pointed at the test server).
    conn = json.loads(env_of(compose, "airflow-worker")["AIRFLOW_CONN_VAULT_DEFAULT"])
    conn.update(host="127.0.0.1", port=int(addr.rsplit(":", 1)[1]), login=env["AISEC_VAULT_ROLE_ID"],
                password=env["AISEC_VAULT_SECRET_ID"])
    monkeypatch.setenv("AIRFLOW_CONN_VAULT_DEFAULT", json.dumps(conn))
    from airflow.providers.hashicorp.hooks.vault import VaultHook

    hook = VaultHook(vault_conn_id="vault_default")
    assert hook.get_secret("ml/training/api") == {"api_key": env["AISEC_DEMO_API_KEY"]}
    client = hook.get_conn()
    policies = client.auth.token.lookup_self()["data"]["policies"]
    assert {"aisec-airflow-secrets", "aisec-airflow-signing"} <= set(policies)
    assert "root" not in policies

    # Least privilege: what Airflow needs works, the rest is denied.
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.sha256(b"model").digest()).decode()
    sig = client.secrets.transit.sign_data("model-signing", hash_input=digest, prehashed=True,
                                           hash_algorithm="sha2-256", marshaling_algorithm="asn1")
    assert sig["data"]["signature"].startswith("vault:v1:")
    # The project's own signing and verification with the Transit key, through Airflow's AppRole token,
    # checked against the shipped strict policy's trusted keys.
    from airflow_aisec.core.gates.signing import sign_model, verify_model
    from airflow_aisec.core.io.vault import VaultClient
    from airflow_aisec.core.policy import load_policy

    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.safetensors").write_bytes(b"\x00" * 64)
    strict_signing = load_policy(REPO / "policies" / "strict.yaml").policy.signing
    signed = sign_model(strict_signing, model, transit_key="model-signing", vault=VaultClient(client))
    assert signed.findings == []
    verified = verify_model(strict_signing, model, transit_key="model-signing", vault=VaultClient(client))
    assert verified.findings == []
    root.secrets.kv.v2.create_or_update_secret(path="other/app", secret={"k": "v"}, mount_point="secret")
    with pytest.raises(Forbidden):
        client.secrets.kv.v2.read_secret_version(path="other/app", mount_point="secret", raise_on_deleted_version=True)
    with pytest.raises(Forbidden):
        client.secrets.transit.rotate_key("model-signing")
    with pytest.raises(Forbidden):
        client.sys.list_mounted_secrets_engines()

    # Dynamic database users: a real, short-lived PostgreSQL role, revocable by Airflow.
    creds = client.secrets.database.generate_credentials("ml-training-readonly")
    user, lease = creds["data"]["username"], creds["lease_id"]
    assert creds["lease_duration"] <= 15 * 60
    with psycopg2.connect(f"postgresql://postgres@127.0.0.1:5432/{features_db}") as pg, pg.cursor() as cur:
        cur.execute("SELECT rolcanlogin, rolvaliduntil IS NOT NULL FROM pg_roles WHERE rolname = %s", (user,))
        assert cur.fetchone() == (True, True)
    with pytest.raises(Forbidden):  # the bare endpoint would revoke any lease: not granted
        client.sys.revoke_lease(lease)
    from airflow_aisec.core.gates.secrets import revoke_lease

    revoke_lease(VaultClient(client), lease)  # the gates' own revocation works with this least-privilege policy
    with psycopg2.connect(f"postgresql://postgres@127.0.0.1:5432/{features_db}") as pg, pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (user,))
        assert cur.fetchone() == (0,)


@pytest.mark.integration
@pytest.mark.parametrize("var", ["AISEC_VAULT_SECRET_ID", "BAO_TOKEN", "AISEC_FEATURES_DB_PASSWORD"])
def test_init_script_refuses_missing_settings(compose, bao, features_db, tmp_path, var):
    env = _script_env(compose, bao, features_db, HOME=str(tmp_path))
    env.pop(var)
    out = _run_script(env)
    assert out.returncode != 0
    assert f"{var} is required" in out.stderr


@pytest.mark.integration
def test_init_script_fails_on_unreachable_server(compose, bao, features_db, tmp_path):
    env = _script_env(compose, bao, features_db, HOME=str(tmp_path), BAO_ADDR=f"http://127.0.0.1:{_free_port()}")
    # Bounded wait: the script gives up after 60 one-second checks; speed that up for the test.
    script = (DOCKER / "openbao" / "init.sh").read_text().replace('-ge 60 ]', '-ge 2 ]')
    fast = tmp_path / "init-fast.sh"
    fast.write_text(script)
    out = subprocess.run(["sh", str(fast)], check=False, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "not ready" in out.stdout
