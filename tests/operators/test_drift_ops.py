"""DriftGateOperator in real Airflow DAG runs: pass, fail, bad input, S3 tables and report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.no_io import forbid_io

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PLANTED = "planted-rare-category-4111111111111111"

DAG = '''
import pendulum
from airflow.sdk import DAG, task
from airflow_aisec.operators.drift import DriftGateOperator

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False) as dag:
{gates}

    @task
    def retrain():
        return "retrained"

    [{upstream}] >> retrain()
'''


def gate(task_id: str, reference: str, current: str, *, policy: str, evidence: str, extra: str = "") -> str:
    return (f'    {task_id} = DriftGateOperator(task_id="{task_id}", reference={reference!r}, current={current!r}, '
            f'policy={policy!r}, evidence_location={evidence!r}{extra})\n')


def frame(n: int = 3000, seed: int = 0, shift: float = 0.0, extra_category: str | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east"], n)
    if extra_category:
        region[:30] = extra_category
    return pd.DataFrame({"age": rng.normal(40 + shift, 10, n), "region": region})


@pytest.fixture
def env(tmp_path):
    paths = {name: tmp_path / f"{name}.csv" for name in ("reference", "same", "drifted", "broken")}
    frame(seed=0).to_csv(paths["reference"], index=False)
    frame(seed=1).to_csv(paths["same"], index=False)
    frame(seed=2, shift=8.0, extra_category=PLANTED).to_csv(paths["drifted"], index=False)
    frame(seed=3).drop(columns=["age"]).to_csv(paths["broken"], index=False)
    return {**{k: str(v) for k, v in paths.items()}, "policy": str(REPO / "policies" / "strict.yaml"),
            "evidence": str(tmp_path / "evidence")}


def test_stable_data_passes_and_drifted_data_fails(run_dag, env, capfd):
    ok = gate("stable", env["reference"], "{{ dag_run.conf['current'] }}", policy=env["policy"],
              evidence=env["evidence"])
    out = run_dag(DAG.format(dag_id="drift_ops_pass", gates=ok, upstream="stable"), "drift_ops_pass",
                  run_conf={"current": env["same"]})
    assert out.state == "success" and out.task_states == {"stable": "success", "retrain": "success"}
    result = out.xcom("stable")
    assert result["verdict"] == "pass" and result["metrics"]["features_checked"] == 2
    assert [i["uri"] for i in result["inputs"]] == [env["reference"], env["same"]]
    html = Path(result["reports"][0]["uri"]).read_text()
    assert "age: PSI" in html and "<svg" in html

    gates = (gate("drifted", env["reference"], env["drifted"], policy=env["policy"], evidence=env["evidence"])
             + gate("broken", env["reference"], env["broken"], policy=env["policy"], evidence=env["evidence"]))
    out = run_dag(DAG.format(dag_id="drift_ops_fail", gates=gates, upstream="drifted, broken"), "drift_ops_fail")
    assert out.state == "failed"
    assert out.task_states == {"drifted": "failed", "broken": "failed", "retrain": "upstream_failed"}
    drifted = out.xcom("drifted")
    assert drifted["verdict"] == "fail"
    assert {f["rule"] for f in drifted["findings"]} == {"drift.psi", "drift.ks_statistic", "drift.unseen_category"}
    broken = out.xcom("broken")
    assert broken["verdict"] == "error" and "column(s) not in the current table: 'age'" in broken["error"]["message"]

    report = Path(drifted["reports"][0]["uri"]).read_text()
    captured = capfd.readouterr()
    for text in (json.dumps(list(out.xcoms.values()), default=str), report, captured.out, captured.err):
        assert PLANTED not in text


def test_s3_tables_and_s3_report(run_dag, env, s3_server):
    client = s3_server.client()
    client.create_bucket(Bucket="drift-data")
    for name in ("reference", "drifted"):
        client.upload_file(env[name], "drift-data", f"tables/{name}.csv")
    gates = gate("s3_drift", "s3://drift-data/tables/reference.csv", "s3://drift-data/tables/drifted.csv",
                 policy=env["policy"], evidence=env["evidence"], extra=', report_location="s3://drift-data/reports"')
    out = run_dag(DAG.format(dag_id="drift_ops_s3", gates=gates, upstream="s3_drift"), "drift_ops_s3")
    assert out.task_states["s3_drift"] == "failed"
    result = out.xcom("s3_drift")
    assert result["verdict"] == "fail"
    uri = result["reports"][0]["uri"]
    assert uri.startswith("s3://drift-data/reports/drift_ops_s3/") and uri.endswith("/drift-report-try1.html")
    body = client.get_object(Bucket="drift-data", Key=uri.removeprefix("s3://drift-data/"))["Body"].read()
    assert b"age: PSI" in body


def test_constructor_does_no_io_and_is_keyword_only():
    from airflow_aisec.operators.drift import DriftGateOperator

    with forbid_io("DriftGateOperator.__init__"):
        op = DriftGateOperator(task_id="t", reference="s3://b/r.csv", current="/c.csv", policy="/nope.yaml")
    assert {"reference", "current", "features", "report_location", "policy"} <= set(op.template_fields)
    assert op.gate == "drift"
    with pytest.raises(TypeError):
        DriftGateOperator("t", "r.csv", "c.csv")


def test_a_wide_table_gives_a_bounded_xcom_and_a_trail_that_verifies(run_dag, tmp_path):
    """1,500 drifting features: the XCom result lists 1,000 findings and counts the rest; the gate's trail
    record is readable by the trail's verifier (an unbounded one was 95 MB at 100,000 columns)."""
    from airflow_aisec.core.evidence import open_evidence_store
    from tests.helpers.wide_tables import write_wide_drift_case

    _, _, policy = write_wide_drift_case(tmp_path)
    evidence = str(tmp_path / "evidence")
    wide = gate("wide", str(tmp_path / "ref.csv"), str(tmp_path / "cur.csv"), policy=str(policy), evidence=evidence)
    out = run_dag(DAG.format(dag_id="drift_ops_wide", gates=wide, upstream="wide"), "drift_ops_wide")
    assert out.task_states == {"wide": "failed", "retrain": "upstream_failed"}
    result = out.xcom("wide")
    assert result["verdict"] == "fail" and len(result["findings"]) == 1000
    assert sum(o["findings"] for o in result["findings_omitted"]) > 1000
    assert result["metrics_omitted"] == {"features": 500} and len(json.dumps(result)) < 2_000_000
    store = open_evidence_store(evidence)
    assert store.verify().records >= 1
    [record] = [r for r in store.read_records() if r["payload"].get("gate") == "drift"]
    assert record["payload"]["findings_omitted"] == result["findings_omitted"]
