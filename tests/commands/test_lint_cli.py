"""``aisec lint DAG_FOLDER --policy P``: the platform rules in CI, through the real console script.

No scheduler and no metadata database: the tests point Airflow at an unreachable database and a fresh
AIRFLOW_HOME, so any DB access would fail.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

POLICY = """
version: 1
name: lint-test
drift: {}
platform:
  rules:
    - id: deploy-needs-drift-gate
      description: a deployed model must pass the drift gate
      dag_tags: [model-deployment]
      targets: {task_ids: ["deploy*"]}
      require_upstream: [{gate: drift}]
"""

HEADER = '''
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow_aisec.core.result import CheckOutcome
from airflow_aisec.operators.base import AisecGateOperator


class FakeDriftGate(AisecGateOperator):
    gate = "drift"

    def check(self, loaded, context):
        return CheckOutcome()
'''

GOOD = HEADER + '''
with DAG("lint_good", schedule=None, tags=["model-deployment"]):
    FakeDriftGate(task_id="drift_gate") >> EmptyOperator(task_id="deploy")
'''

BAD = HEADER + '''
with DAG("lint_missing", schedule=None, tags=["model-deployment"]):
    EmptyOperator(task_id="train") >> EmptyOperator(task_id="deploy_model")

with DAG("lint_bypass", schedule=None, tags=["model-deployment"]):
    FakeDriftGate(task_id="drift_gate") >> EmptyOperator(task_id="deploy", trigger_rule="all_done")
'''

BROKEN = "from airflow.sdk import DAG\nimport does_not_exist_anywhere\nwith DAG('lint_broken'):\n    pass\n"


@pytest.fixture
def env(tmp_path):
    """A fresh Airflow home and an unreachable metadata DB: lint must need neither."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "AIRFLOW_HOME": str(home),
        # A database file in a directory that does not exist: any connection attempt fails.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/no/such/dir/airflow.db",
        "AIRFLOW__AISEC__PLATFORM_POLICY": "",
    }


@pytest.fixture
def policy(tmp_path) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY)
    return p


def folder(tmp_path: Path, **files: str) -> Path:
    d = tmp_path / "dags"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / f"{name}.py").write_text(textwrap.dedent(text))
    return d


def test_clean_folder_passes(aisec_cli, tmp_path, policy, env):
    out = aisec_cli("lint", str(folder(tmp_path, good=GOOD)), "--policy", str(policy), env=env)
    assert out.returncode == 0, out.stderr
    assert "1 DAG(s), 0 blocking violation(s)" in out.stdout
    assert "'lint-test'" in out.stdout


def test_violations_exit_1_and_are_listed(aisec_cli, tmp_path, policy, env):
    out = aisec_cli("lint", str(folder(tmp_path, good=GOOD, bad=BAD)), "--policy", str(policy), env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = [ln for ln in out.stdout.splitlines() if "[platform." in ln]
    assert len(lines) == 2
    assert any(ln.startswith("lint_missing: deploy_model: [platform.deploy-needs-drift-gate] enforce:")
               for ln in lines)
    assert any(ln.startswith("lint_bypass: deploy: [platform.deploy-needs-drift-gate]") and "all_done" in ln
               for ln in lines)
    assert "3 DAG(s), 2 blocking violation(s)" in out.stdout


def test_json_output(aisec_cli, tmp_path, policy, env):
    out = aisec_cli("lint", str(folder(tmp_path, good=GOOD, bad=BAD)), "--policy", str(policy), "--json",
                    env=env)
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["policy"]["name"] == "lint-test" and len(doc["policy"]["sha256"]) == 64
    assert doc["dags"] == ["lint_bypass", "lint_good", "lint_missing"]
    assert {(v["location"]["dag_id"], v["location"]["task_id"]) for v in doc["violations"]} == {
        ("lint_missing", "deploy_model"), ("lint_bypass", "deploy")}
    assert all(v["rule"] == "platform.deploy-needs-drift-gate" and v["enforcement"] == "enforce"
               for v in doc["violations"])
    assert doc["metrics"] == {"dags_checked": 3, "violations": 2}


def test_warn_level_is_listed_but_passes(aisec_cli, tmp_path, env):
    p = tmp_path / "warn.yaml"
    p.write_text(POLICY + "rules:\n  platform.*: warn\n")
    out = aisec_cli("lint", str(folder(tmp_path, bad=BAD)), "--policy", str(p), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("] warn:") == 2
    assert "0 blocking violation(s), 2 non-blocking" in out.stdout


def test_single_file(aisec_cli, tmp_path, policy, env):
    d = folder(tmp_path, good=GOOD, bad=BAD)
    out = aisec_cli("lint", str(d / "good.py"), "--policy", str(policy), env=env)
    assert out.returncode == 0, out.stdout + out.stderr


def test_import_error_is_invalid_input(aisec_cli, tmp_path, policy, env):
    out = aisec_cli("lint", str(folder(tmp_path, good=GOOD, broken=BROKEN)), "--policy", str(policy), env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "broken.py:2: import error: ModuleNotFoundError" in out.stdout and "does_not_exist_anywhere" in out.stdout
    assert "could not be imported" in out.stderr
    # One line per error, with its line: not Airflow's logged traceback of it.
    assert "Traceback" not in out.stdout + out.stderr and "Failed to import" not in out.stdout + out.stderr


def test_an_unparsable_dag_file_is_one_line_with_its_line(aisec_cli, tmp_path, policy, env):
    d = folder(tmp_path, good=GOOD, syntax="from airflow.sdk import DAG\nwith DAG('x'):\n    y = (\n")
    out = aisec_cli("lint", str(d), "--policy", str(policy), "--json", env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    errors = json.loads(out.stdout)["import_errors"]
    assert [(Path(e["file"]).name, e["line"], e["error"]) for e in errors] == [
        ("syntax.py", 3, "SyntaxError: '(' was never closed")]
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing_folder", "DAG folder or file not found"),
        ("missing_policy", "policy file not found"),
        ("no_platform", "has no 'platform' section"),
        ("invalid_policy", "platform.rules"),
        ("empty_folder", "no DAG found"),
    ],
)
def test_bad_input_exits_2(aisec_cli, tmp_path, policy, env, case, needle):
    d = folder(tmp_path, good=GOOD)
    args = [str(d), "--policy", str(policy)]
    if case == "missing_folder":
        args[0] = str(tmp_path / "nope")
    elif case == "missing_policy":
        args[2] = str(tmp_path / "nope.yaml")
    elif case == "no_platform":
        policy.write_text("version: 1\nname: x\ndrift: {}\n")
    elif case == "invalid_policy":
        policy.write_text("version: 1\nname: x\nplatform:\n  rules: 3\n")
    elif case == "empty_folder":
        empty = tmp_path / "empty"
        empty.mkdir()
        args[0] = str(empty)
    out = aisec_cli("lint", *args, env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    assert needle in out.stderr
    if case in ("no_platform", "invalid_policy", "missing_policy"):
        assert str(policy) in out.stderr or "nope.yaml" in out.stderr


def test_lint_uses_its_own_policy_not_the_installed_cluster_policy(aisec_cli, tmp_path, policy, env):
    """A (broken) platform policy configured for the cluster does not interfere with lint."""
    env = {**env, "AIRFLOW__AISEC__PLATFORM_POLICY": str(tmp_path / "missing-cluster-policy.yaml")}
    out = aisec_cli("lint", str(folder(tmp_path, good=GOOD, bad=BAD)), "--policy", str(policy), env=env)
    assert out.returncode == 1
    assert "3 DAG(s), 2 blocking violation(s), 0 non-blocking, 0 import error(s)" in out.stdout


def test_lint_and_cluster_policy_agree(aisec_cli, tmp_path, policy, env, monkeypatch):
    """Same rules: the DAGs lint flags are exactly the DAGs the cluster policy keeps from loading."""
    d = folder(tmp_path, good=GOOD, bad=BAD)
    out = aisec_cli("lint", str(d), "--policy", str(policy), "--json", env=env)
    flagged = {v["location"]["dag_id"] for v in json.loads(out.stdout)["violations"]}

    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__AISEC__PLATFORM_POLICY", str(policy))
    bag = DagBag(dag_folder=str(d))
    rejected = {"lint_good", "lint_missing", "lint_bypass"} - set(bag.dags)
    assert flagged == rejected == {"lint_missing", "lint_bypass"}


def test_strict_policy_lints(aisec_cli, tmp_path, env):
    """The shipped strict policy's platform rules through lint."""
    strict = Path(__file__).resolve().parents[2] / "policies" / "strict.yaml"
    d = folder(tmp_path, bad=HEADER + '''
with DAG("strict_lint", schedule=None, tags=["model-deployment", "personal-data"]):
    FakeDriftGate(task_id="drift_gate") >> EmptyOperator(task_id="deploy")
''')
    out = aisec_cli("lint", str(d), "--policy", str(strict), "--json", env=env)
    assert out.returncode == 1, out.stderr
    rules = sorted(v["rule"] for v in json.loads(out.stdout)["violations"])
    assert rules == ["platform.model-deployment-verified", "platform.personal-data-pii-gate"]
