"""``dags/model_monitoring.py`` in real DAG runs: drift, PII, prompt injection and the endpoint gate on a batch
of inference logs, with alerts to a webhook sink (a real HTTP server on loopback that records the POST)."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.helpers.env import REPO, patched_environ
from tests.helpers.serving import make_pki, running_serving
from tests.helpers.webhook_sink import running_sink

pytestmark = pytest.mark.integration

DAG_FILE = REPO / "dags" / "model_monitoring.py"
TOKEN = "monitor-token-" + uuid.uuid4().hex
PLANTED = "PLANTED-PROMPT-" + uuid.uuid4().hex[:12]
GATES = ("drift_gate", "pii_scan_inputs", "prompt_injection_scan", "endpoint_gate")


def _table(path, n: int, seed: int, income_shift: float = 0.0) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    prompts = [f"what is my churn risk for plan {i % 7}" for i in range(n)]
    prompts[3] = f"summarise ticket {PLANTED} for me"  # a value that must never reach an alert
    pd.DataFrame({
        "request_id": [f"r{i}" for i in range(n)],
        "age": rng.integers(18, 80, n),
        "income": (rng.normal(52_000, 15_000, n) + income_shift).round(2),
        "tenure_months": rng.integers(0, 120, n),
        "prompt": prompts,
    }).to_csv(path, index=False)


@pytest.fixture(scope="module")
def monitoring(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitoring")
    pki = make_pki(root / "pki")
    _table(root / "training-reference.csv", 2000, seed=1)
    _table(root / "steady.csv", 800, seed=2)
    _table(root / "drifted.csv", 800, seed=3, income_shift=40_000)
    with running_sink() as sink, running_serving("hardened", TOKEN, pki=pki) as server:
        env = {
            "AISEC_POLICY_DIR": str(REPO / "policies"),
            "AISEC_TRAINING_REFERENCE": str(root / "training-reference.csv"),
            "AISEC_SERVING_URL": server.url,
            "AISEC_SERVING_CA": str(pki.ca),
            "AIRFLOW_CONN_MODEL_SERVING": json.dumps({"conn_type": "http", "password": TOKEN}),
            "AIRFLOW_CONN_AISEC_ALERTS": json.dumps({"conn_type": "http", "host": "127.0.0.1",
                                                     "port": sink.port, "schema": "http"}),
        }
        yield {"root": root, "env": env, "sink": sink, "server": server, "pki": pki}


def _run(run_dag, monitoring, log_name: str):
    monitoring["server"].reset(monitoring["pki"].ca)
    monitoring["sink"].requests.clear()
    env = {**monitoring["env"], "AISEC_INFERENCE_LOG": str(monitoring["root"] / log_name)}
    with patched_environ(env):
        return run_dag(DAG_FILE.read_text(), "model_monitoring", filename="model_monitoring.py")


def test_steady_logs_pass_every_gate_and_alert_nobody(run_dag, monitoring):
    out = _run(run_dag, monitoring, "steady.csv")
    assert out.state == "success", {t: (out.task_states[t], out.xcom(t)) for t in GATES}
    assert {out.xcom(t)["verdict"] for t in GATES} <= {"pass", "warn"}
    assert monitoring["sink"].requests == []


def test_drift_fails_the_run_and_alerts_the_sink(run_dag, monitoring):
    out = _run(run_dag, monitoring, "drifted.csv")
    assert out.state == "failed"
    assert out.task_states["drift_gate"] == "failed"
    assert all(out.task_states[t] == "success" for t in GATES if t != "drift_gate"), out.task_states
    (request,) = monitoring["sink"].requests
    assert request["path"] == "/aisec"
    alert = request["json"]
    assert alert["gate"] == "drift" and alert["verdict"] == "fail" and alert["task_id"] == "drift_gate"
    assert alert["dag_id"] == "model_monitoring" and alert["run_id"] == out.run_id
    assert "drift.psi" in alert["rules"]
    assert all(set(f) == {"rule", "severity", "count", "enforcement", "waived"} for f in alert["findings"])
    assert alert["findings_omitted"] == []  # a few findings: all listed
    # no data value: neither a logged prompt nor a number from the logs
    assert PLANTED not in request["raw"] and TOKEN not in request["raw"]
    for line in (monitoring["root"] / "drifted.csv").read_text().splitlines()[1:50]:
        income = line.split(",")[2]
        assert income not in request["raw"]
