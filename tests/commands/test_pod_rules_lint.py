"""``aisec lint`` and the cluster policy on DAG files with insecure and hardened training pods."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.pod_dags import HARDENED_DAG, INSECURE_DAG, INSECURE_RULES, POD_POLICY

pytestmark = pytest.mark.integration


@pytest.fixture
def pod_folders(tmp_path):
    insecure, hardened = tmp_path / "insecure", tmp_path / "hardened"
    insecure.mkdir()
    hardened.mkdir()
    (insecure / "insecure_pods.py").write_text(INSECURE_DAG)
    (hardened / "hardened_pods.py").write_text(HARDENED_DAG)
    policy = tmp_path / "pods.yaml"
    policy.write_text(POD_POLICY)
    return insecure, hardened, policy


def test_lint_reports_every_pod_rule_per_task(aisec_cli, pod_folders):
    insecure, _, policy = pod_folders
    out = aisec_cli("lint", str(insecure), "--policy", str(policy), "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    found: dict[str, set[str]] = {}
    for v in doc["violations"]:
        found.setdefault(v["location"]["task_id"], set()).add(v["rule"])
    assert found == INSECURE_RULES


def test_lint_accepts_hardened_pods(aisec_cli, pod_folders):
    _, hardened, policy = pod_folders
    out = aisec_cli("lint", str(hardened), "--policy", str(policy))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 blocking violation(s)" in out.stdout


def test_cluster_policy_rejects_insecure_pods_and_loads_hardened_ones(pod_folders, tmp_path):
    insecure, hardened, policy = pod_folders
    folder = tmp_path / "both"
    folder.mkdir()
    for src in (insecure / "insecure_pods.py", hardened / "hardened_pods.py"):
        (folder / src.name).write_text(src.read_text())
    code = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(folder)!r})\n"
        "print(json.dumps({'ids': sorted(bag.dag_ids), 'errors': {k: str(v) for k, v in bag.import_errors.items()}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "AIRFLOW__AISEC__PLATFORM_POLICY": str(policy)})
    assert out.returncode == 0, out.stderr[-3000:]
    bag = json.loads(out.stdout.strip().splitlines()[-1])
    assert bag["ids"] == ["hardened_training_pods"]
    (error,) = bag["errors"].values()
    for rule in ("platform.pod_privileged", "platform.pod_host_network", "platform.pod_host_pid",
                 "platform.pod_image_digest"):
        assert rule in error
    assert "train_root" in error and "override_dict" in error
