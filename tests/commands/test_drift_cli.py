"""``aisec drift check``: exit codes 0/1/2, --json, --report, --features, S3."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_aisec.cli import main

REPO = Path(__file__).resolve().parents[2]
STRICT = str(REPO / "policies" / "strict.yaml")


def frame(n: int = 2000, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.normal(40 + shift, 10, n), "region": rng.choice(["n", "s", "e"], n),
                         "customer_id": np.arange(n)})


@pytest.fixture
def files(tmp_path):
    out = {"ref": tmp_path / "ref.parquet", "same": tmp_path / "same.csv", "drifted": tmp_path / "drifted.csv"}
    frame(seed=0).to_parquet(out["ref"])
    frame(seed=1).to_csv(out["same"], index=False)
    frame(seed=2, shift=7.0).to_csv(out["drifted"], index=False)
    return out


def test_pass_exits_0_and_drift_exits_1_with_report(aisec_cli, files, tmp_path):
    ok = aisec_cli("drift", "check", str(files["ref"]), str(files["same"]), "--policy", STRICT,
                   "--features", "age,region", "--json")
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert result["verdict"] == "pass" and [f["feature"] for f in result["metrics"]["features"]] == ["age", "region"]

    report = tmp_path / "drift.html"
    bad = aisec_cli("drift", "check", str(files["ref"]), str(files["drifted"]), "--policy", STRICT,
                    "--features", "age", "--report", str(report))
    assert bad.returncode == 1, bad.stderr
    assert "[drift.psi]" in bad.stdout and "[drift.ks_statistic]" in bad.stdout
    assert f"report: {report}" in bad.stdout and "age: PSI" in report.read_text()


@pytest.mark.parametrize(
    ("current", "message"),
    [
        (lambda df: df.drop(columns=["age"]), "column(s) not in the current table: 'age'"),
        (lambda df: df.iloc[0:0], "empty"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, tmp_path, capsys, current, message):
    path = tmp_path / "cur.csv"
    current(frame()).to_csv(path, index=False)
    code = main(["drift", "check", str(files["ref"]), str(path), "--policy", STRICT, "--features", "age"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_policy_excludes_and_per_feature(files, tmp_path, capsys):
    policy = tmp_path / "p.yaml"
    policy.write_text("name: d\ndrift:\n  exclude: [customer_id]\n  per_feature:\n    age: {psi: {max: 5}, "
                      "ks_statistic: {max: 1}}\n")
    code = main(["drift", "check", str(files["ref"]), str(files["drifted"]), "--policy", str(policy), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["verdict"] == "pass"
    assert [f["feature"] for f in result["metrics"]["features"]] == ["age", "region"]
    assert main(["drift", "check", str(files["ref"]), str(tmp_path / "none.csv"), "--policy", str(policy)]) == 2


@pytest.mark.integration
def test_s3_tables_and_report(aisec_cli, files, s3_server):
    client = s3_server.client()
    client.create_bucket(Bucket="cli-drift")
    client.upload_file(str(files["ref"]), "cli-drift", "ref.parquet")
    client.upload_file(str(files["drifted"]), "cli-drift", "cur.csv")
    out = aisec_cli("drift", "check", "s3://cli-drift/ref.parquet", "s3://cli-drift/cur.csv", "--policy", STRICT,
                    "--features", "age", "--report", "s3://cli-drift/r/drift.html", "--json")
    assert out.returncode == 1, out.stderr
    result = json.loads(out.stdout)
    assert [i["uri"] for i in result["inputs"]] == ["s3://cli-drift/ref.parquet", "s3://cli-drift/cur.csv"]
    assert b"<svg" in client.get_object(Bucket="cli-drift", Key="r/drift.html")["Body"].read()


def test_a_wide_drift_result_is_bounded_and_its_trail_record_verifies(aisec_cli, tmp_path):
    """1,500 features x 5 rows, nearly all drifting: ~2,700 findings and 1,500 metrics entries. The printed
    result and the trail record list 1,000 of each and count the rest; `aisec audit verify` reads the record."""
    from tests.helpers.wide_tables import write_wide_drift_case

    _, _, policy = write_wide_drift_case(tmp_path)
    trail = tmp_path / "trail"
    run = aisec_cli("drift", "check", str(tmp_path / "ref.csv"), str(tmp_path / "cur.csv"), "--policy", str(policy),
                    "--json", "--evidence", str(trail))
    assert run.returncode == 1, run.stderr
    result = json.loads(run.stdout)
    assert result["schema_version"] == "1.2" and result["verdict"] == "fail"
    listed = len(result["findings"])
    omitted = sum(o["findings"] for o in result["findings_omitted"])
    drifted = result["metrics"]["features_drifted"]
    assert listed == 1000 and omitted > 0 and drifted > 1000
    # Every finding is counted: one per violated metric of each drifted feature (psi, ks_statistic here).
    assert {o["rule"] for o in result["findings_omitted"]} <= {"drift.psi", "drift.ks_statistic"}
    from airflow_aisec.core.gates.drift import check_drift
    from airflow_aisec.core.policy import load_policy

    full = check_drift(load_policy(str(policy)).section("drift"), str(tmp_path / "ref.csv"), str(tmp_path / "cur.csv"))
    assert listed + omitted == len(full.findings)
    assert len(result["metrics"]["features"]) == 1000 and result["metrics_omitted"] == {"features": 500}
    assert result["metrics"]["features_checked"] == 1500
    record = json.loads(next(trail.glob("0*.json")).read_text())
    assert record["payload"]["findings_omitted"] == result["findings_omitted"]
    verify = aisec_cli("audit", "verify", str(trail))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    text = aisec_cli("drift", "check", str(tmp_path / "ref.csv"), str(tmp_path / "cur.csv"), "--policy", str(policy))
    assert text.returncode == 1 and "more finding(s) not listed" in text.stdout
    sarif = aisec_cli("drift", "check", str(tmp_path / "ref.csv"), str(tmp_path / "cur.csv"), "--policy", str(policy),
                      "--format", "sarif")
    [sarif_run] = json.loads(sarif.stdout)["runs"]
    assert len(sarif_run["results"]) == 1000 and sarif_run["properties"]["findingsOmitted"] == result["findings_omitted"]
