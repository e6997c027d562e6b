"""Unsafe-model-file gate in real Airflow runs: a clean model deploys, a booby-trapped one does not."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DAG = '''
import os, pickle, struct
import pendulum
from pathlib import Path
from airflow.sdk import DAG, task
from airflow_aisec.operators.model_scan import ModelScanGateOperator

MODEL = Path({model!r})


class Hook:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False) as dag:
    @task
    def train():
        MODEL.mkdir(parents=True, exist_ok=True)
        header = b'{{"w":{{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}}}'
        (MODEL / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
        (MODEL / "config.json").write_text("{{}}")
        {extra}

    @task
    def deploy():
        return "deployed"

    scan = ModelScanGateOperator(task_id="scan", model=str(MODEL), policy={policy!r}, evidence_location={evidence!r})
    train() >> scan >> deploy()
'''


@pytest.fixture
def make(tmp_path):
    def _make(dag_id: str, extra: str = "pass", policy: str = "model_scan: {}") -> str:
        path = tmp_path / "policy.yaml"
        path.write_text(f"version: 1\nname: scan-test\n{policy}\n")
        return DAG.format(model=str(tmp_path / "model"), dag_id=dag_id, extra=extra, policy=str(path),
                          evidence=str(tmp_path / "evidence"))

    return _make


def test_clean_model_passes(run_dag, make):
    out = run_dag(make("scan_clean"), "scan_clean")
    assert out.state == "success", out.task_states
    result = out.xcom("scan")
    assert result["verdict"] == "pass" and result["metrics"]["files"] == 2
    assert result["metrics"]["scanners"] == ["aisec", "modelscan", "picklescan"]


def test_pickle_payload_fails_the_run(run_dag, make):
    out = run_dag(make("scan_evil", extra="(MODEL / 'extra.pkl').write_bytes(pickle.dumps(Hook()))"), "scan_evil")
    assert out.state == "failed"
    assert out.task_states == {"train": "success", "scan": "failed", "deploy": "upstream_failed"}
    (finding,) = out.xcom("scan")["findings"]
    assert finding["rule"] == "model_scan.dangerous_import" and finding["location"]["file"] == "extra.pkl"
    assert finding["location"]["imports"] == ["posix.system"]


def test_strict_policy_forbids_even_a_harmless_pickle(run_dag, make):
    strict = (Path(__file__).resolve().parents[2] / "policies" / "strict.yaml").read_text()
    section = strict[strict.index("\nmodel_scan:\n") + 1:]
    section = section[: section.index("\nbias:")]
    out = run_dag(make("scan_strict", extra="(MODEL / 'scaler.pkl').write_bytes(pickle.dumps({'mean': 0.5}))",
                       policy=section), "scan_strict")
    assert out.task_states["scan"] == "failed"
    rules = {f["rule"] for f in out.xcom("scan")["findings"]}
    assert rules == {"model_scan.pickle_format", "model_scan.extension_not_allowed"}
