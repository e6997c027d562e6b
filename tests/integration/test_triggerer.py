"""The deferrable signature sensor under a real triggerer.

Real processes (api-server, scheduler, dag-processor, triggerer; LocalExecutor, SQLite): a
``ModelSignatureSensor(deferrable=True)`` task starts, finds no signature and defers; only then does
the test write the signature. The triggerer's :class:`ModelSignatureTrigger` sees it, the task
resumes on a worker and verifies there: a good signature lets the run succeed, a signature of a model
changed after signing fails it (``signing.tampered``), so the trigger's event never decides the verdict.
A third sensor waits for a signature object in S3 (the moto server, through the ``aws_default``
connection the triggerer and the worker both read).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.plugins.ui_airflow import live_airflow

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

POLICY = """
version: 1
name: deferred-signing
signing:
  trusted_keys:
    - id: ci-pem
      fingerprint: "{fingerprint}"
"""

DAG = '''
import pendulum
from airflow.sdk import DAG, task
from airflow_aisec.sensors.signing import ModelSignatureSensor

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False):
    @task
    def deploy():
        return "deployed"

    ModelSignatureSensor(task_id="wait_signature", model={model!r}, public_key={public_key!r},
                         signature={signature!r}, policy={policy!r}, deferrable=True, poke_interval=1,
                         timeout=300) >> deploy()
'''

DAGS = ("deferred_good", "deferred_tampered", "deferred_s3")
BUCKET = "deferred-signatures"
S3_KEY = "sigs/deferred_s3.sig"


def _write_model(path: Path) -> None:
    (path / "sub").mkdir(parents=True, exist_ok=True)
    (path / "weights.bin").write_bytes(b"\x01" * 4096)
    (path / "sub" / "config.json").write_text('{"layers": 2}')


def _sign(model: Path, signature: Path, private_key: Path) -> None:
    from airflow_aisec.core.gates.signing import sign_model

    sign_model(None, str(model), signature=str(signature), private_key=str(private_key))


def _ti(live, dag_id: str, run_id: str, task_id: str) -> dict:
    status, body = live.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
                                       f"/taskInstances/{task_id}")
    assert status == 200, body
    return body


def _wait_for_task_state(live, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout  # a hang guard, not an assertion on duration
    seen = None
    while time.monotonic() < deadline:
        ti = _ti(live, dag_id, run_id, task_id)
        seen = ti["state"]
        if seen == state:
            return ti
        assert seen not in ("success", "failed", "upstream_failed"), (dag_id, seen, live.logs())
        live.check_alive()
        time.sleep(1)
    raise AssertionError(f"{dag_id}.{task_id} still {seen}, never {state}\n{live.logs()}")


def _wait_for_defer_exits(live, dag_ids, timeout: float = 120) -> None:
    """Until the scheduler has taken in each sensor's defer exit (the executor reports it as a success).

    Airflow 3.3.2 fails a resumed deferred task when that stale success is processed only after the
    resumed try is queued or running (apache/airflow#72716; its fix covers a scheduled try only). The
    signatures are written after this, so no trigger can fire before the stale events are gone.
    """
    deadline = time.monotonic() + timeout  # a hang guard, not an assertion on duration
    log = live.home / "scheduler.log"
    pending = set(dag_ids)
    while pending and time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        pending = {dag_id for dag_id in pending
                   if not any("Received executor event with state success" in line
                              and f"dag_id='{dag_id}', task_id='wait_signature'" in line
                              for line in text.splitlines())}
        if pending:
            live.check_alive()
            time.sleep(1)
    assert not pending, f"the scheduler never took in the defer exits of {sorted(pending)}\n{live.logs()}"


def _result(live, dag_id: str, run_id: str) -> dict:
    status, body = live.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
                                       "/taskInstances/wait_signature/xcomEntries/aisec_result")
    assert status == 200, body
    value = body["value"]
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def deferred_runs(tmp_path_factory, s3_server):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from airflow_aisec.core.gates.signing import key_fingerprint

    root = tmp_path_factory.mktemp("triggerer")
    key = ec.generate_private_key(ec.SECP256R1())
    private_key, public_key = root / "k.pem", root / "k.pub"
    private_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    public_key.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    policy = root / "policy.yaml"
    policy.write_text(POLICY.format(fingerprint=key_fingerprint(key.public_key())))
    models = {dag_id: root / "models" / dag_id for dag_id in DAGS}
    for model in models.values():
        _write_model(model)
    signatures = {dag_id: None for dag_id in DAGS} | {"deferred_s3": f"s3://{BUCKET}/{S3_KEY}"}
    dags = {f"{dag_id}.py": DAG.format(dag_id=dag_id, model=str(model), public_key=str(public_key),
                                       signature=signatures[dag_id], policy=str(policy))
            for dag_id, model in models.items()}
    s3 = s3_server.client()
    s3.create_bucket(Bucket=BUCKET)
    aws_env = {"AIRFLOW_CONN_AWS_DEFAULT": s3_server.airflow_conn_uri(), "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

    with live_airflow(root / "airflow", dags, services=("scheduler", "dag-processor", "triggerer"),
                      extra_env=aws_env) as live:
        runs = {}
        for dag_id in DAGS:
            live.wait_for_dag(dag_id)
            runs[dag_id] = live.trigger(dag_id)
        # Both sensors wait in the triggerer before any signature exists.
        deferred = {dag_id: _wait_for_task_state(live, dag_id, run_id, "wait_signature", "deferred")
                    for dag_id, run_id in runs.items()}
        assert not any(Path(f"{m}.sig").exists() for m in models.values())
        _wait_for_defer_exits(live, DAGS)

        _sign(models["deferred_good"], Path(f"{models['deferred_good']}.sig"), private_key)
        # Tampered: signed, then changed; the signature is moved into place only afterwards.
        staged = root / "staged.sig"
        _sign(models["deferred_tampered"], staged, private_key)
        (models["deferred_tampered"] / "weights.bin").write_bytes(b"\x02" * 4096)
        os.replace(staged, f"{models['deferred_tampered']}.sig")
        s3_staged = root / "s3-staged.sig"
        _sign(models["deferred_s3"], s3_staged, private_key)
        s3.put_object(Bucket=BUCKET, Key=S3_KEY, Body=s3_staged.read_bytes())

        states = {dag_id: live.wait_for_run(dag_id, run_id, timeout=240) for dag_id, run_id in runs.items()}
        yield live, runs, states, deferred


def test_deferred_sensor_resumes_and_succeeds_when_the_signature_appears(deferred_runs):
    live, runs, states, deferred = deferred_runs
    run_id = runs["deferred_good"]
    assert states["deferred_good"] == "success", live.logs()
    ti = _ti(live, "deferred_good", run_id, "wait_signature")
    assert ti["state"] == "success"
    assert ti["try_number"] == 1  # resumed from the trigger, not retried
    assert _ti(live, "deferred_good", run_id, "deploy")["state"] == "success"
    result = _result(live, "deferred_good", run_id)
    assert result["verdict"] == "pass" and result["gate"] == "signing", result
    assert result["findings"] == []
    # While deferred, the triggerer (not a worker slot) held the wait, with the provider's trigger.
    trigger = deferred["deferred_good"]["trigger"]
    assert trigger["classpath"] == "airflow_aisec.triggers.signing.ModelSignatureTrigger", trigger
    task_logs = live.home / "logs" / "dag_id=deferred_good"
    trigger_logs = "".join(p.read_text(errors="replace") for p in task_logs.rglob("*.trigger.*.log"))
    assert ".sig found" in trigger_logs and "Trigger fired event" in trigger_logs
    # The worker verified after the resume (its own log, not the trigger's).
    worker_log = "".join(p.read_text(errors="replace") for p in task_logs.rglob("task_id=wait_signature/*.log")
                         if ".trigger." not in p.name)
    assert "verdict=pass" in worker_log and "verdict=pass" not in trigger_logs


def test_deferred_sensor_fails_when_the_signature_is_invalid(deferred_runs):
    live, runs, states, _ = deferred_runs
    run_id = runs["deferred_tampered"]
    assert states["deferred_tampered"] == "failed", live.logs()
    assert _ti(live, "deferred_tampered", run_id, "wait_signature")["state"] == "failed"
    assert _ti(live, "deferred_tampered", run_id, "deploy")["state"] == "upstream_failed"
    result = _result(live, "deferred_tampered", run_id)
    assert result["verdict"] == "fail", result
    assert [f["rule"] for f in result["findings"]] == ["signing.tampered"]


def test_deferred_sensor_waits_for_an_s3_signature(deferred_runs):
    live, runs, states, deferred = deferred_runs
    run_id = runs["deferred_s3"]
    assert states["deferred_s3"] == "success", live.logs()
    assert deferred["deferred_s3"]["trigger"]["classpath"].endswith("ModelSignatureTrigger")
    result = _result(live, "deferred_s3", run_id)
    assert result["verdict"] == "pass", result
    assert result["metrics"]["signature"] == f"s3://{BUCKET}/{S3_KEY}"
    assert _ti(live, "deferred_s3", run_id, "deploy")["state"] == "success"
