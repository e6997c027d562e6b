"""``aisec bias check``: exit codes 0/1/2, --json, --report, --evidence, S3, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_aisec.cli import main

REPO = Path(__file__).resolve().parents[2]
STRICT = str(REPO / "policies" / "strict.yaml")


def frame(n: int = 1000, gap: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)
    return pd.DataFrame({
        "label": rng.integers(0, 2, n),
        "pred": (rng.random(n) < np.where(sex == "F", 0.5 - gap, 0.5)).astype(int),
        "sex": sex,
        "age_band": rng.choice(["<30", "30+"], n),
    })


@pytest.fixture
def files(tmp_path):
    out = {"fair": tmp_path / "fair.csv", "biased": tmp_path / "biased.parquet"}
    frame(n=4000, gap=0.0).to_csv(out["fair"], index=False)
    frame(gap=0.3).to_parquet(out["biased"])
    return out


def args(data, *extra: str) -> list[str]:
    return ["bias", "check", str(data), "--policy", STRICT, "--label", "label", "--prediction", "pred",
            "--sensitive", "sex", *extra]


def test_pass_exits_0_with_json_report_and_evidence(aisec_cli, files, tmp_path):
    report = tmp_path / "out" / "bias.html"
    evidence = tmp_path / "evidence"
    out = aisec_cli(*args(files["fair"], "--sensitive", "age_band", "--json", "--report", str(report),
                          "--evidence", str(evidence)))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["verdict"] == "pass" and result["gate"] == "bias"
    assert [g["name"] for g in result["metrics"]["groupings"]] == ["sex", "age_band"]
    assert result["reports"] == [{"name": "bias-report", "uri": str(report), "media_type": "text/html"}]
    assert "<svg" in report.read_text()
    assert "evidence:" in out.stderr and any(evidence.iterdir())


def test_violation_exits_1_and_lists_the_findings(aisec_cli, files):
    out = aisec_cli(*args(files["biased"]))
    assert out.returncode == 1, out.stderr
    assert "verdict: FAIL" in out.stdout
    assert "[bias.demographic_parity_ratio]" in out.stdout and "must be >= 0.8" in out.stdout


# In-process for the bad-input matrix (fast); the console script is covered above.
@pytest.mark.parametrize(
    ("mutate", "extra", "message"),
    [
        (lambda df: df.assign(label=df["label"] + df["pred"]), [], "label column 'label' is not binary"),
        (lambda df: df.assign(pred=["yes", "no"] * 500), [], "prediction column 'pred' is not binary 0/1"),
        (lambda df: df.drop(columns=["sex"]), [], "column(s) not in the data: 'sex'"),
        (lambda df: df.iloc[0:0], [], "the table is empty"),
        (lambda df: df.assign(sex="F"), [], "need at least two"),
        (lambda df: df, ["--sensitive", "label"], "must be distinct"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, mutate, extra, message):
    path = tmp_path / "in.csv"
    mutate(frame()).to_csv(path, index=False)
    code = main(args(path, *extra))
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_file_and_missing_columns_everywhere_exit_2(tmp_path, capsys):
    assert main(args(tmp_path / "nope.csv")) == 2
    assert "file not found" in capsys.readouterr().err
    path = tmp_path / "in.csv"
    frame().to_csv(path, index=False)
    assert main(["bias", "check", str(path), "--policy", STRICT]) == 2
    assert "no label column" in capsys.readouterr().err


def test_policy_without_bias_section_refuses_to_run(tmp_path, capsys):
    policy = tmp_path / "p.yaml"
    policy.write_text("name: nobias\n")
    path = tmp_path / "in.csv"
    frame().to_csv(path, index=False)
    assert main(["bias", "check", str(path), "--policy", str(policy), "--label", "label", "--prediction", "pred",
                 "--sensitive", "sex"]) == 2
    assert "no 'bias' section" in capsys.readouterr().err


def test_policy_columns_and_comma_separated_sensitive(tmp_path, capsys):
    policy = tmp_path / "p.yaml"
    policy.write_text("name: cols\nbias:\n  label: label\n  prediction: pred\n  min_group_size: 10\n"
                      "  intersections: true\n  thresholds: {equalized_odds_difference: {max: 0.5}}\n")
    path = tmp_path / "in.csv"
    frame().to_csv(path, index=False)
    code = main(["bias", "check", str(path), "--policy", str(policy), "--sensitive", "sex,age_band", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["verdict"] == "pass"
    assert [g["name"] for g in result["metrics"]["groupings"]] == ["sex", "age_band", "sex & age_band"]


@pytest.mark.integration
def test_s3_data_and_report(aisec_cli, files, s3_server):
    client = s3_server.client()
    client.create_bucket(Bucket="cli-bias")
    client.upload_file(str(files["biased"]), "cli-bias", "in/biased.parquet")
    out = aisec_cli(*args("s3://cli-bias/in/biased.parquet", "--report", "s3://cli-bias/reports/b.html"))
    assert out.returncode == 1, out.stderr
    assert "report: s3://cli-bias/reports/b.html" in out.stdout
    assert b"<svg" in client.get_object(Bucket="cli-bias", Key="reports/b.html")["Body"].read()
    missing = aisec_cli(*args("s3://cli-bias/in/missing.csv"))
    assert missing.returncode == 2 and "not found" in missing.stderr
