"""Out-of-band detection: ``aisec audit coverage`` against a real Airflow's metadata DB and audit trail.

A DAG author can always make a DAG look compliant to the cluster policy (a "verification gate"
that checks nothing and records its pass somewhere else); an XCom writer can forge a gate's
result. Neither produces a matching record in the central trail, which is what coverage reads.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.env import VENV_BIN
from tests.security.live import FAKE_DEPLOY, PIPELINE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

DEPLOY_RULE = "platform.model-deployment-verified"


def coverage(sa, *args: str) -> tuple[int, dict | str, str]:
    """``aisec audit coverage`` run where Airflow's configuration is (the live Airflow's environment)."""
    out = subprocess.run([str(VENV_BIN / "aisec"), "audit", "coverage", *args], env=sa.live.env,
                         capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL)
    body: dict | str = out.stdout
    if "--json" in args and out.stdout.strip():
        body = json.loads(out.stdout)
    return out.returncode, body, out.stderr


@pytest.fixture(scope="module")
def pipeline_run(security_airflow):
    run_id, state = security_airflow.run_and_wait(PIPELINE, timeout=1200)
    assert state == "success", security_airflow.live.logs()
    return run_id


@pytest.fixture(scope="module")
def fake_deploy_run(security_airflow):
    run_id, state = security_airflow.run_and_wait(FAKE_DEPLOY)
    assert state == "success", security_airflow.live.logs()  # the cluster policy let it load and deploy
    assert security_airflow.task_state(FAKE_DEPLOY, run_id, "deploy") == "success"
    return run_id


def test_the_clean_example_pipeline_has_no_gaps(security_airflow, pipeline_run):
    code, body, err = coverage(security_airflow, "--since", "1d", "--dag-id", PIPELINE, "--json")
    assert code == 0, (body, err)
    assert body["findings"] == []
    assert body["runs_checked"] == 1 and body["deployments_checked"] == 1  # the deploy task
    assert body["results_checked"] >= 8 and body["trail_broken"] is None
    code, text, _ = coverage(security_airflow, "--since", "24h", "--dag-id", PIPELINE)
    assert code == 0 and text.startswith("OK ")


def test_a_deploy_behind_a_gate_that_records_elsewhere_is_found(security_airflow, fake_deploy_run):
    sa = security_airflow
    assert any(sa.private_trail.glob("*.json"))  # the fake gate did record its pass, elsewhere
    code, body, err = coverage(sa, "--since", "7d", "--dag-id", FAKE_DEPLOY, "--json")
    assert code == 1, (body, err)
    kinds = {(f["kind"], f["task_id"]) for f in body["findings"] if f["run_id"] == fake_deploy_run}
    assert ("unverified_deployment", "deploy") in kinds
    assert ("unrecorded_gate_result", "verify_model_signature") in kinds
    deployment = next(f for f in body["findings"] if f["kind"] == "unverified_deployment")
    assert deployment["rule"] == DEPLOY_RULE and "claims a pass" in deployment["message"]
    code, text, _ = coverage(sa, "--dag-id", FAKE_DEPLOY)
    assert code == 1 and f"UNVERIFIED DEPLOYMENT {FAKE_DEPLOY}/{fake_deploy_run}/deploy" in text

    # Even against the author's own trail (where the XCom result does match a record) the deploy stays
    # flagged: the "verification gate" is a class from the DAG file, not an installed verification operator.
    code, body, _ = coverage(sa, "--dag-id", FAKE_DEPLOY, "--evidence", str(sa.private_trail), "--json")
    assert code == 1
    assert [(f["kind"], f["task_id"]) for f in body["findings"]] == [("unverified_deployment", "deploy")]


def test_the_overview_lists_the_unverified_deployment(security_airflow, fake_deploy_run):
    sa = security_airflow
    status, body = sa.as_user("viewer", "GET", "/aisec/api/overview?limit=500")
    assert status == 200
    found = [d for d in body["unverified_deployments"] if d["dag_id"] == FAKE_DEPLOY]
    assert [(d["run_id"], d["task_id"], d["rule"]) for d in found] == [(fake_deploy_run, "deploy", DEPLOY_RULE)]
    assert all(d["dag_id"] != PIPELINE for d in body["unverified_deployments"])
    fake_rows = [r for r in body["results"] if r["dag_id"] == FAKE_DEPLOY]
    assert fake_rows and {r["verdict"] for r in fake_rows} == {"unverified"}
    status, page = sa.as_user("viewer", "GET", "/aisec/overview")
    assert status == 200 and "Unverified deployments" in page
    assert f'data-dag-id="{FAKE_DEPLOY}" data-task-id="deploy"' in page


def test_a_forged_gate_xcom_in_a_clean_run_is_found(security_airflow, pipeline_run):
    sa = security_airflow
    path = sa.xcom_path(PIPELINE, pipeline_run, "verify_model_signature", "aisec_result")
    status, body = sa.live.request("GET", path)
    assert status == 200
    forged = copy.deepcopy(body["value"] if isinstance(body["value"], dict) else json.loads(body["value"]))
    forged["metrics"] = {"forged": 1}
    status, _ = sa.live.request("PATCH", path, {"value": forged})
    assert status == 200
    code, report, err = coverage(sa, "--since", "1d", "--dag-id", PIPELINE, "--json")
    assert code == 1, (report, err)
    assert [(f["kind"], f["task_id"]) for f in report["findings"]] == [
        ("unrecorded_gate_result", "verify_model_signature")
    ]
    assert "digest differs" in report["findings"][0]["message"]


def test_a_tampered_trail_is_reported(security_airflow, pipeline_run, tmp_path):
    sa = security_airflow
    copy_of_trail = tmp_path / "trail"
    shutil.copytree(sa.evidence, copy_of_trail, ignore=shutil.ignore_patterns("reports", ".lock"))
    first = copy_of_trail / "000000000001.json"
    first.chmod(0o644)
    doc = json.loads(first.read_text())
    doc["payload"]["verdict"] = "pass" if doc["payload"].get("verdict") != "pass" else "fail"
    first.write_text(json.dumps(doc))
    code, body, _ = coverage(sa, "--since", "1d", "--dag-id", PIPELINE, "--evidence", str(copy_of_trail), "--json")
    assert code == 1
    assert body["findings"][0]["kind"] == "trail_broken" and "000000000001.json" in body["findings"][0]["message"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "7 days"], "--since must look like"),
        (["--since", "0d"], "between"),
        (["--since", "99999d"], "between"),
        (["--evidence", "/nonexistent/aisec-trail"], "does not exist"),
        (["--policy", "/nonexistent/policy.yaml"], "policy"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(security_airflow, args, message):
    code, out, err = coverage(security_airflow, *args)
    assert code == 2, (out, err)
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_without_a_platform_policy_it_refuses(security_airflow, tmp_path):
    env = {k: v for k, v in security_airflow.live.env.items() if k != "AIRFLOW__AISEC__PLATFORM_POLICY"}
    out = subprocess.run([str(VENV_BIN / "aisec"), "audit", "coverage"], env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 2 and "platform_policy" in out.stderr
    assert Path(security_airflow.evidence).is_dir()


# --- the core, without Airflow: trail index and gap finding ----------------------------------------
def _gate_doc(dag: str, run: str, task: str, verdict: str = "pass", gate: str = "signing", try_number: int = 1):
    return {"schema_version": "1.0", "gate": gate, "verdict": verdict, "started_at": "t0", "finished_at": "t1",
            "airflow": {"dag_id": dag, "run_id": run, "task_id": task, "try_number": try_number}}


def test_the_trail_index_is_incremental_cached_by_head_and_notices_a_rewrite(tmp_path):
    from airflow_aisec.core.evidence import open_evidence_store
    from airflow_aisec.core.trail_index import clear_cache, trail_index

    clear_cache()
    store = open_evidence_store(str(tmp_path / "trail"))
    first = _gate_doc("d", "r1", "verify")
    store.append(first)
    index = trail_index(store)
    assert index.records == 1 and index.confirm(first, dag_id="d", run_id="r1", task_id="verify").verified
    second = _gate_doc("d", "r2", "verify")
    store.append(second)
    again = trail_index(store)
    assert again is index and again.records == 2  # extended in place, not rebuilt
    assert again.confirm(second, dag_id="d", run_id="r2", task_id="verify", try_number=1).verified

    # Rewritten from scratch (same length, other content): the cached index is dropped and rebuilt.
    shutil.rmtree(tmp_path / "trail")
    store = open_evidence_store(str(tmp_path / "trail"))
    store.append(_gate_doc("d", "r1", "verify", verdict="fail"))
    store.append(second)
    rebuilt = trail_index(store)
    assert not rebuilt.confirm(first, dag_id="d", run_id="r1", task_id="verify").verified
    assert rebuilt.records == 2 and rebuilt.broken is None

    # Records cut off the end: HEAD names more than exist.
    (tmp_path / "trail" / "000000000002.json").chmod(0o644)
    (tmp_path / "trail" / "000000000002.json").unlink()
    cut = trail_index(store)
    assert cut.broken and "records removed" in cut.broken


def test_gaps_are_found_from_rows_and_trail_alone(tmp_path):
    from airflow_aisec.core.coverage import ResultRow, RunRows, TaskRow, find_gaps, parse_window
    from airflow_aisec.core.evidence import open_evidence_store
    from airflow_aisec.core.policy import load_policy
    from airflow_aisec.core.trail_index import build_index
    from tests.helpers.env import REPO

    section = load_policy(str(REPO / "policies" / "strict.yaml")).section("platform")
    verify = "airflow_aisec.operators.signing.ModelVerifyGateOperator"
    classes = {"verify_model_signature": (verify,), "deploy": ("airflow.providers.standard.decorators.python.X",)}
    store = open_evidence_store(str(tmp_path / "trail"))
    good = _gate_doc("dep", "good", "verify_model_signature")
    store.append(good)
    forged = _gate_doc("dep", "forged", "verify_model_signature")
    failed = _gate_doc("dep", "failed", "verify_model_signature", verdict="fail")
    store.append(failed)
    index = build_index(store)

    def run(run_id, doc, deploy_state="success"):
        return RunRows(dag_id="dep", run_id=run_id, tags=("model-deployment",), task_classes=classes,
                       tasks=[TaskRow("verify_model_signature", "success", try_number=1),
                              TaskRow("deploy", deploy_state, try_number=1)],
                       results=[ResultRow("verify_model_signature", doc, try_number=1)])

    report = find_gaps(section, [run("good", good), run("forged", forged), run("failed", failed, "upstream_failed"),
                                 run("failed-but-deployed", _gate_doc("dep", "failed-but-deployed", "x"))], index)
    found = sorted((f.kind, f.run_id, f.task_id) for f in report.findings)
    assert found == [
        ("unrecorded_gate_result", "failed-but-deployed", "verify_model_signature"),
        ("unrecorded_gate_result", "forged", "verify_model_signature"),
        ("unverified_deployment", "failed-but-deployed", "deploy"),
        ("unverified_deployment", "forged", "deploy"),
    ]
    assert report.runs == 4 and report.deployments == 3
    # An untagged DAG is not under the deploy rule; its results are still checked.
    untagged = RunRows(dag_id="dep", run_id="good", tasks=[TaskRow("deploy", "success")], task_classes=classes)
    assert find_gaps(section, [untagged], index).findings == []
    assert parse_window("30m").total_seconds() == 1800 and parse_window(" 24h ").days == 1
