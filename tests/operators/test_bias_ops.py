"""BiasGateOperator in real Airflow DAG runs: pass, fail, bad input, S3 data and report, no leaks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.airflow import task_context
from tests.helpers.no_io import forbid_io

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PLANTED = ("planted.victim@example.org", "987-65-4321", "Planted Rare Person")

DAG = '''
import pendulum
from airflow.sdk import DAG, task
from airflow_aisec.operators.bias import BiasGateOperator

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1), catchup=False) as dag:
{gates}

    @task
    def deploy():
        return "deployed"

    [{upstream}] >> deploy()
'''


def gate(task_id: str, data: str, *, policy: str, evidence: str, extra: str = "") -> str:
    return (f'    {task_id} = BiasGateOperator(task_id="{task_id}", data={data!r}, label_column="y", '
            f'prediction_column="p", sensitive_columns="sex", policy={policy!r}, '
            f'evidence_location={evidence!r}{extra})\n')


def frame(n: int = 2000, gap: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)
    df = pd.DataFrame({
        "y": rng.integers(0, 2, n),
        "p": (rng.random(n) < np.where(sex == "F", 0.5 - gap, 0.5)).astype(int),
        "sex": sex,
        "email": [f"user{i}@example.com" for i in range(n)],
    })
    return df


@pytest.fixture
def env(tmp_path):
    fair, biased, bad = tmp_path / "fair.csv", tmp_path / "biased.parquet", tmp_path / "bad.csv"
    frame(gap=0.0).to_csv(fair, index=False)
    b = frame(gap=0.3)
    b.loc[0, "email"] = PLANTED[0]
    b.loc[1, "email"] = PLANTED[1]
    b.loc[2, "sex"] = PLANTED[2]  # a one-row group: reported, its name hidden
    b.to_parquet(biased)
    f = frame(n=100)
    f.loc[0, "y"] = 2
    f.to_csv(bad, index=False)
    return {"fair": str(fair), "biased": str(biased), "bad": str(bad),
            "policy": str(REPO / "policies" / "strict.yaml"), "evidence": str(tmp_path / "evidence"),
            "tmp": tmp_path}


def _evidence(location: str) -> list[dict]:
    from airflow_aisec.core.evidence import open_evidence_store

    store = open_evidence_store(location)
    store.verify()
    return [r["payload"] for r in store.read_records()]


def test_fair_predictions_pass_and_the_report_is_stored_next_to_the_result(run_dag, env):
    # data path templated from the run's conf
    source = DAG.format(
        dag_id="bias_ops_pass",
        gates=gate("bias_gate", "{{ dag_run.conf['data'] }}", policy=env["policy"], evidence=env["evidence"]),
        upstream="bias_gate",
    )
    out = run_dag(source, "bias_ops_pass", run_conf={"data": env["fair"]})
    assert out.state == "success", out.task_states
    assert out.task_states == {"bias_gate": "success", "deploy": "success"}
    result = out.xcom("bias_gate")
    assert result["verdict"] == "pass" and result["gate"] == "bias"
    assert result["inputs"][0]["uri"] == env["fair"] and len(result["inputs"][0]["sha256"]) == 64
    (report,) = result["reports"]
    path = Path(report["uri"])
    assert path.is_relative_to(Path(env["evidence"]) / "reports" / "bias_ops_pass")
    html = path.read_text()
    assert "<svg" in html and "selection_rate by sex" in html and "strict" in html
    assert result["metrics"]["report_sha256"]
    assert _evidence(env["evidence"])[-1]["reports"][0]["uri"] == report["uri"]


def test_biased_predictions_fail_the_run_bad_input_fails_the_task_and_nothing_leaks(run_dag, env, capfd):
    gates = (gate("biased", env["biased"], policy=env["policy"], evidence=env["evidence"])
             + gate("bad_input", env["bad"], policy=env["policy"], evidence=env["evidence"]))
    out = run_dag(DAG.format(dag_id="bias_ops_fail", gates=gates, upstream="biased, bad_input"), "bias_ops_fail")
    assert out.state == "failed"
    assert out.task_states == {"biased": "failed", "bad_input": "failed", "deploy": "upstream_failed"}

    result = out.xcom("biased")
    assert result["verdict"] == "fail"
    found = {f["rule"] for f in result["findings"]}
    assert {"bias.demographic_parity_difference", "bias.demographic_parity_ratio", "bias.group_too_small"} <= found
    small = next(f for f in result["findings"] if f["rule"] == "bias.group_too_small")
    assert small["count"] == 1 and small["location"]["group"] == "<small group 1>"
    assert all(f["enforcement"] == "enforce" for f in result["findings"])
    report = Path(result["reports"][0]["uri"])
    assert report.exists()  # a failing gate still writes (and references) its report

    bad = out.xcom("bad_input")
    assert bad["verdict"] == "error" and bad["error"]["type"] == "InputDataError"
    assert "label column 'y' is not binary" in bad["error"]["message"] and not bad["error"]["retryable"]

    outputs = [json.dumps(list(out.xcoms.values()), default=str), json.dumps(_evidence(env["evidence"])), report.read_text()]
    captured = capfd.readouterr()
    outputs += [captured.out, captured.err]
    for planted in PLANTED:
        assert all(planted not in text for text in outputs), planted


def test_s3_data_and_s3_report(run_dag, env, s3_server):
    client = s3_server.client()
    client.create_bucket(Bucket="ml-data")
    client.upload_file(env["fair"], "ml-data", "preds/fair.csv")
    client.upload_file(env["biased"], "ml-data", "preds/biased.parquet")
    gates = (gate("s3_fair", "s3://ml-data/preds/fair.csv", policy=env["policy"], evidence=env["evidence"],
                  extra=', report_location="s3://ml-data/reports"')
             + gate("s3_biased", "s3://ml-data/preds/biased.parquet", policy=env["policy"],
                    evidence=env["evidence"], extra=', report_location="s3://ml-data/reports/{{ run_id }}/b.html"'))
    out = run_dag(DAG.format(dag_id="bias_ops_s3", gates=gates, upstream="s3_fair, s3_biased"), "bias_ops_s3")
    assert out.task_states["s3_fair"] == "success" and out.task_states["s3_biased"] == "failed"
    fair, biased = out.xcom("s3_fair"), out.xcom("s3_biased")
    assert fair["verdict"] == "pass" and biased["verdict"] == "fail"
    assert fair["inputs"][0]["uri"] == "s3://ml-data/preds/fair.csv"
    assert fair["reports"][0]["uri"].startswith("s3://ml-data/reports/bias_ops_s3/")
    assert biased["reports"][0]["uri"] == f"s3://ml-data/reports/{out.run_id}/b.html"
    for result in (fair, biased):
        key = result["reports"][0]["uri"].removeprefix("s3://ml-data/")
        body = client.get_object(Bucket="ml-data", Key=key)["Body"].read()
        assert b"<svg" in body


def test_missing_s3_object_fails_closed(tmp_path, s3_server):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_aisec.operators.bias import BiasGateOperator

    s3_server.client().create_bucket(Bucket="empty-bucket")
    op = BiasGateOperator(task_id="t", data="s3://empty-bucket/nope.csv", label_column="y",
                          prediction_column="p", sensitive_columns=["sex"],
                          policy=str(REPO / "policies" / "strict.yaml"), evidence_location=str(tmp_path / "ev"))
    ctx = task_context()
    with pytest.raises(AirflowFailException):
        op.execute(ctx)
    pushed = ctx["ti"].xcom_push.call_args_list[0].kwargs["value"]
    assert pushed["verdict"] == "error" and "not found" in pushed["error"]["message"]


def test_constructor_does_no_io_and_is_keyword_only():
    from airflow_aisec.operators.bias import BiasGateOperator

    with forbid_io("BiasGateOperator.__init__"):
        op = BiasGateOperator(task_id="t", data="s3://b/k.csv", sensitive_columns="a,b", policy="/nope.yaml")
    assert {"data", "label_column", "prediction_column", "score_column", "sensitive_columns", "report_location",
            "policy", "evidence_location"} <= set(op.template_fields)
    assert op.gate == "bias"
    with pytest.raises(TypeError):
        BiasGateOperator("t", "data.csv")
