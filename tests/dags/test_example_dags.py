"""Example DAGs double as system tests: each imports cleanly (also under the platform cluster policy)
and runs end to end with real Airflow, a real OpenBao (KV v2 + Transit) and local storage."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.env import patched_environ
from tests.helpers.vault import example_pipeline_vault, vault_conn_json

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
EXPECTED_DAG_IDS = {
    "secure_ml_training_pipeline",
    "secure_ml_training_pipeline_tampered",
    "secure_ml_training_pipeline_poisoned",
    "secure_ml_training_pipeline_unvetted_data",
    # dags/certified_assets.py (tests/dags/test_certified_assets.py runs them)
    "certify_churn_features",
    "certify_churn_features_leaky",
    "train_on_certified_features",
    "deploy_certified_model",
    "churn_training_plain",
    "churn_training_gated",
    "model_monitoring",
    # dags/partitioned_pii.py (tests/dags/test_partitioned.py runs it)
    "partitioned_pii",
}


def _dagbag_in_subprocess(extra_env: dict[str, str]) -> dict:
    code = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS)!r})\n"
        "print(json.dumps({'ids': sorted(bag.dag_ids), 'errors': {k: str(v) for k, v in bag.import_errors.items()},"
        " 'tags': {d: sorted(dag.tags) for d, dag in bag.dags.items()}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **extra_env}, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_example_dag_imports_without_error():
    bag = _dagbag_in_subprocess({})
    assert bag["errors"] == {}
    assert set(bag["ids"]) == EXPECTED_DAG_IDS
    assert all("aisec-example" in tags for tags in bag["tags"].values())


def test_example_dags_satisfy_the_strict_platform_policy():
    bag = _dagbag_in_subprocess({"AIRFLOW__AISEC__PLATFORM_POLICY": str(REPO / "policies" / "strict.yaml")})
    assert bag["errors"] == {}
    assert set(bag["ids"]) == EXPECTED_DAG_IDS


def test_aisec_lint_accepts_the_example_folder(aisec_cli):
    out = aisec_cli("lint", str(DAGS), "--policy", str(REPO / "policies" / "strict.yaml"))
    assert out.returncode == 0, out.stdout + out.stderr


# ------------------------------------------------------------------------------------------
# End-to-end runs
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def example_env(bao_server, session_dir):
    """Vault set up as docker/openbao/init.sh and scripts/demo.py do; storage under */aisec-example."""
    token_value = example_pipeline_vault(bao_server.client())
    root = session_dir / "example" / "aisec-example"
    root.mkdir(parents=True, exist_ok=True)
    env = {
        "AISEC_EXAMPLE_ROOT": str(root),
        "AISEC_POLICY_DIR": str(REPO / "policies"),
        # As scripts/demo.py and docker/compose.yaml: the platform floor and where policies may come from.
        "AIRFLOW__AISEC__BASELINE_POLICY": str(REPO / "policies" / "baseline.yaml"),
        "AIRFLOW__AISEC__POLICY_ROOTS": str(REPO / "policies"),
        "AIRFLOW_CONN_VAULT_DEFAULT": vault_conn_json(
            bao_server.addr, schema="secret", password=bao_server.token,
            extra={"auth_type": "token", "kv_engine_version": 2},
        ),
    }
    with patched_environ(env):
        yield {"root": root, "secret": token_value}


def _run_example(run_dag, filename: str, dag_id: str):
    return run_dag((DAGS / filename).read_text(), dag_id, filename=filename)


def _xcom_text(outcome) -> str:
    return json.dumps({f"{t}/{k}": v for (t, k), v in outcome.xcoms.items()}, default=str)


def _assert_no_secret(outcome, secret: str):
    assert secret not in _xcom_text(outcome)


@pytest.mark.integration
def test_secure_pipeline_passes_every_gate_and_deploys(run_dag, example_env):
    out = _run_example(run_dag, "secure_ml_training_pipeline.py", "secure_ml_training_pipeline")
    assert out.state == "success", out.task_states
    assert set(out.task_states.values()) == {"success"}
    gates = ["validate_source", "classify_pii", "redact_pii", "fetch_secrets", "check_bias", "scan_model",
             "sign_model", "verify_model_signature"]
    for gate in gates:
        assert out.xcom(gate)["verdict"] in ("pass", "warn"), (gate, out.xcom(gate))
        assert out.xcom(gate)["baseline"]["name"] == "platform-baseline", gate
    pii = out.xcom("classify_pii")
    assert pii["verdict"] == "pass" and pii["findings"] == []
    served = example_env["root"] / "serving" / "secure_ml_training_pipeline"
    assert (served / "model" / "model.json").exists() and (served / "model.sig").exists()
    # signed provenance: the model, the redacted training data vetted in this run, the DAG, the parameters
    verified = out.xcom("verify_model_signature")
    assert verified["metrics"]["provenance_verified"] is True
    assert verified["metrics"]["provenance_datasets_vetted"] == 1
    signed = out.xcom("sign_model", "aisec_signature")
    assert signed["provenance_sha256"] == hashlib.sha256((served / "model.provenance.json").read_bytes()).hexdigest()
    statement = _statement(served / "model.provenance.json")
    assert statement["subject"][0]["digest"]["sha256"] == verified["metrics"]["model_digest"]
    build = statement["predicate"]["buildDefinition"]
    params = build["externalParameters"]
    assert params["run_id"] == out.run_id and params["task_id"] == "sign_model"
    assert params["training_parameters"]["max_iter"] == 1000
    assert params["dag"]["dag_id"] == "secure_ml_training_pipeline" and len(params["dag"]["sha256"]) == 64
    [dataset] = [d for d in build["resolvedDependencies"] if d["annotations"]["aisec_kind"] == "dataset"]
    assert dataset["uri"].endswith("/redacted/customers.csv")
    records = dataset["annotations"]["gate_records"]
    # the redaction's PII record of this run, and the source record of the extract it was made from
    assert records["pii"]["run_id"] == out.run_id and records["pii"]["task_id"] == "redact_pii"
    assert records["source"]["run_id"] == out.run_id and records["source"]["task_id"] == "validate_source"
    assert out.xcom("redact_pii", "aisec_evidence")["sha256"] == records["pii"]["sha256"]
    assert "@example.com" not in json.dumps(statement)
    _assert_no_secret(out, example_env["secret"])
    # raw PII values from the landed extract never reach a result
    assert "@example.com" not in _xcom_text(out)


@pytest.mark.integration
def test_tampered_model_is_stopped_at_verification(run_dag, example_env):
    dag_id = "secure_ml_training_pipeline_tampered"
    out = _run_example(run_dag, "secure_ml_training_pipeline.py", dag_id)
    assert out.state == "failed"
    assert out.task_states["tamper_with_model"] == "success"
    assert out.task_states["verify_model_signature"] == "failed"
    assert out.task_states["deploy"] == "upstream_failed"
    rules = {f["rule"] for f in out.xcom("verify_model_signature")["findings"]}
    assert rules == {"signing.tampered"}
    assert not (example_env["root"] / "serving" / dag_id).exists()


def _statement(path: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(path.read_text())["payload"]))


@pytest.mark.integration
def test_model_trained_on_unvetted_data_is_stopped_at_verification(run_dag, example_env):
    dag_id = "secure_ml_training_pipeline_unvetted_data"
    out = _run_example(run_dag, "secure_ml_training_pipeline.py", dag_id)
    assert out.state == "failed"
    # every gate before deployment passed: the side extract simply never went through them
    for task in ("validate_source", "classify_pii", "redact_pii", "train", "scan_model", "sign_model"):
        assert out.task_states[task] == "success", (task, out.task_states)
    assert out.task_states["verify_model_signature"] == "failed"
    assert out.task_states["deploy"] == "upstream_failed"
    verified = out.xcom("verify_model_signature")
    assert verified["metrics"]["verified"] is True  # the signature itself is fine
    findings = verified["findings"]
    assert {f["rule"] for f in findings} == {"signing.provenance_dataset"}
    assert "side/customers.csv" in findings[0]["message"] and "no pii gate record" in findings[0]["message"]
    assert not (example_env["root"] / "serving" / dag_id).exists()
    assert "@example.com" not in _xcom_text(out)


@pytest.mark.integration
def test_poisoned_data_is_stopped_at_source_validation(run_dag, example_env):
    dag_id = "secure_ml_training_pipeline_poisoned"
    out = _run_example(run_dag, "secure_ml_training_pipeline.py", dag_id)
    assert out.state == "failed"
    assert out.task_states["validate_source"] == "failed"
    assert out.task_states["train"] == "upstream_failed"
    rules = {f["rule"] for f in out.xcom("validate_source")["findings"]}
    assert "source.label_shift" in rules


@pytest.mark.integration
@pytest.mark.parametrize("dag_id", ["churn_training_plain", "churn_training_gated"])
def test_retrofit_example_runs(run_dag, example_env, dag_id):
    out = _run_example(run_dag, "retrofit_existing_dag.py", dag_id)
    assert out.state == "success", out.task_states
    if dag_id == "churn_training_gated":
        assert {out.xcom(t)["verdict"] for t in ("source_gate", "pii_gate", "scan_gate")} == {"pass"}
