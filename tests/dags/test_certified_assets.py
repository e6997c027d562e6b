"""dags/certified_assets.py as a system test: real ``dag.test()`` runs, asset events read back from the
metadata DB. A passing gate's outlet gets an event whose ``extra["aisec"]`` names the verdict, the policy
sha256 and the audit-trail record digest; a failing gate's outlet gets no event."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.env import patched_environ

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
FILENAME = "certified_assets.py"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def example_root(session_dir):
    root = session_dir / "certified" / "aisec-example"
    root.mkdir(parents=True, exist_ok=True)
    with patched_environ({"AISEC_EXAMPLE_ROOT": str(root), "AISEC_POLICY_DIR": str(REPO / "policies"),
                          "AIRFLOW__AISEC__POLICY_ROOTS": str(REPO / "policies")}):
        yield root


def _events(name: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as s:
        rows = (s.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.name == name).order_by(AssetEvent.id).all())
        return [{"extra": dict(r.extra or {}), "dag_id": r.source_dag_id, "task_id": r.source_task_id,
                 "run_id": r.source_run_id} for r in rows]


def _run(run_dag, dag_id: str):
    return run_dag((DAGS / FILENAME).read_text(), dag_id, filename=FILENAME)


def test_passing_gate_certifies_the_dataset_and_model(run_dag, example_root):
    before = len(_events("certified_churn_features"))
    out = _run(run_dag, "certify_churn_features")
    assert out.state == "success", out.task_states
    events = _events("certified_churn_features")
    assert len(events) == before + 1
    event = events[-1]
    assert (event["dag_id"], event["task_id"], event["run_id"]) == ("certify_churn_features", "certify_features",
                                                                   out.run_id)
    cert = event["extra"]["aisec"]
    result = out.xcom("certify_features")
    evidence = out.xcom("certify_features", "aisec_evidence")
    assert cert["gate"] == "pii" and cert["verdict"] == "pass" == result["verdict"]
    assert cert["policy_sha256"] == result["policy"]["sha256"] and len(cert["policy_sha256"]) == 64
    assert cert["evidence_sha256"] == evidence["sha256"] and cert["evidence_seq"] == evidence["seq"]

    # the training DAG the event schedules certifies its model the same way
    model_before = len(_events("certified_churn_model"))
    trained = _run(run_dag, "train_on_certified_features")
    assert trained.state == "success", trained.task_states
    model_events = _events("certified_churn_model")
    assert len(model_events) == model_before + 1
    model_cert = model_events[-1]["extra"]["aisec"]
    assert model_cert["gate"] == "model_scan" and model_cert["verdict"] == "pass"
    assert model_cert["evidence_sha256"] == trained.xcom("certify_model", "aisec_evidence")["sha256"]


def test_failing_gate_emits_no_asset_event(run_dag, example_root):
    before = _events("certified_churn_features")
    out = _run(run_dag, "certify_churn_features_leaky")
    assert out.state == "failed"
    assert out.task_states["certify_features"] == "failed"
    result = out.xcom("certify_features")
    assert result["verdict"] == "fail"
    assert any(f["rule"] == "pii.entity_not_allowed" and f["location"]["column"] == "contact"
               for f in result["findings"])
    assert _events("certified_churn_features") == before
    assert not any(e["run_id"] == out.run_id for e in _events("certified_churn_features"))


def test_deploy_refuses_without_a_certified_model_event(run_dag, example_root):
    out = _run(run_dag, "deploy_certified_model")  # a manual run: no triggering asset event
    assert out.state == "failed" and out.task_states["deploy"] == "failed"


def test_schedules_follow_the_certified_assets():
    import subprocess
    import sys

    code = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS / FILENAME)!r})\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "out = {}\n"
        "for d in ('train_on_certified_features', 'deploy_certified_model'):\n"
        "    out[d] = sorted(a.name for a in bag.get_dag(d).timetable.asset_condition.objects)\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    schedules = json.loads(proc.stdout.strip().splitlines()[-1])
    assert schedules == {"train_on_certified_features": ["certified_churn_features"],
                         "deploy_certified_model": ["certified_churn_model"]}
