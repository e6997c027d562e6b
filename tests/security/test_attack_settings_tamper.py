"""Attack 2 of issue 11: switching the platform off from a DAG file. The DAG file empties
``AIRFLOW__AISEC__PLATFORM_POLICY`` (and the floor and roots) in ``os.environ``, ``conf.set``s the
same, and rebinds the cluster-policy and settings modules' functions at import; its ``model-deployment``
DAG without a verification gate must still be rejected. Parsed by a real ``DagBag`` in a subprocess
started with the settings in its environment (as the dag-processor is), plus settings-level checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STRICT = REPO / "policies" / "strict.yaml"

TAMPERING_DAG = textwrap.dedent('''
    import os
    import threading

    os.environ["AIRFLOW__AISEC__PLATFORM_POLICY"] = ""
    os.environ["AIRFLOW__AISEC__BASELINE_POLICY"] = ""
    os.environ["AIRFLOW__AISEC__POLICY_ROOTS"] = ""
    from airflow.configuration import conf
    conf.set("aisec", "platform_policy", "")

    import airflow_aisec.cluster_policy as cp
    from airflow_aisec import settings
    cp.configured_policy_path = lambda: ""
    cp.check = lambda *args, **kwargs: None
    cp.load_platform_policy = lambda path: None
    cp._suspended = threading.local()          # the switch issue 11 found: gone, and flipping it does nothing
    cp._suspended.on = True
    settings.platform_policy = lambda: ""
    settings.baseline_policy = lambda: ""

    from airflow.sdk import DAG
    from airflow.providers.standard.operators.empty import EmptyOperator

    with DAG("tamper_unverified_deploy", schedule=None, tags=["model-deployment"]):
        EmptyOperator(task_id="train") >> EmptyOperator(task_id="deploy_model")
''')

PARSE = textwrap.dedent('''
    import json, sys
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    print(json.dumps({"dags": sorted(bag.dag_ids), "errors": {k: str(v) for k, v in bag.import_errors.items()}}))
''')


def _parse(folder: Path, platform_policy: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__AISEC__")}
    if platform_policy is not None:
        env["AIRFLOW__AISEC__PLATFORM_POLICY"] = platform_policy
    out = subprocess.run([sys.executable, "-c", PARSE, str(folder)], capture_output=True, text=True, env=env,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_a_dag_file_cannot_switch_the_cluster_policy_off(tmp_path):
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "tamper.py").write_text(TAMPERING_DAG)
    # Without a platform policy the DAG loads: the file itself is fine, only the platform rule rejects it.
    assert _parse(folder, None)["dags"] == ["tamper_unverified_deploy"]

    got = _parse(folder, str(STRICT))
    assert got["dags"] == []
    (error,) = got["errors"].values()
    assert "AirflowClusterPolicyViolation" in error and "platform.model-deployment-verified" in error
    assert "deploy_model" in error


def test_settings_are_the_exec_time_environment_not_os_environ(tmp_path):
    """A process keeps the [aisec] values it was started with; os.environ and conf.set after that do not
    count. settings.reload() (the test-only path) does take the current environment."""
    code = textwrap.dedent('''
        import json, os
        os.environ["AIRFLOW__AISEC__PLATFORM_POLICY"] = ""
        os.environ["AIRFLOW__AISEC__EVIDENCE_LOCATION"] = "/tmp/attacker-trail"
        os.environ["AIRFLOW__AISEC__ALLOW_RUNTIME_POLICY"] = "True"
        import airflow  # Airflow loads the cluster policy: the snapshot is taken here
        from airflow.configuration import conf
        conf.set("aisec", "policy_roots", "/")
        from airflow_aisec import settings
        got = [settings.platform_policy(), settings.evidence_location(), settings.allow_runtime_policy(),
               settings.policy_roots()]
        settings.reload()
        got.append(settings.platform_policy())
        print(json.dumps(got))
    ''')
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__AISEC__")}
    env.update({"AIRFLOW__AISEC__PLATFORM_POLICY": str(STRICT),
                "AIRFLOW__AISEC__EVIDENCE_LOCATION": str(tmp_path / "central"),
                "AIRFLOW__AISEC__POLICY_ROOTS": str(REPO / "policies")})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    platform, evidence, runtime, roots, after_reload = json.loads(out.stdout.strip().splitlines()[-1])
    assert platform == str(STRICT) and evidence == str(tmp_path / "central") and runtime is False
    assert roots == [str(REPO / "policies")]
    assert after_reload == ""  # the documented test-only path re-reads the current environment
