"""``aisec source check`` / ``aisec source pin``: exit codes, one-line errors, JSON, evidence, S3."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_aisec.cli import main

SECRET = "zz-cli-planted-label-9911"


def table(n=1000, *, dup=0, labels=("a", "b")) -> pa.Table:
    ids = np.arange(n)
    if dup:
        ids[-dup:] = ids[:dup]
    return pa.table({"id": ids, "label": [labels[i % len(labels)] for i in ids]})


@pytest.fixture
def files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(table(), data / "clean.parquet")
    pq.write_table(table(dup=100, labels=("a", "b", SECRET)), data / "dirty.parquet")
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""
version: 1
name: cli-source
source:
  origins: ["{data}/*", "s3://cli-*/*"]
  schema: {{columns: {{id: integer, label: string}}}}
  poisoning:
    duplicates: {{max_rate: 0.01}}
""")
    return {"dir": data, "policy": str(policy), "clean": str(data / "clean.parquet"),
            "dirty": str(data / "dirty.parquet")}


def test_pass_and_violation_through_the_console_script(aisec_cli, files, tmp_path):
    ok = aisec_cli("source", "check", files["clean"], "--policy", files["policy"], "--json",
                   "--evidence", str(tmp_path / "ev"))
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert result["verdict"] == "pass" and result["inputs"][0]["sha256"]
    assert "evidence:" in ok.stderr

    bad = aisec_cli("source", "check", files["clean"], files["dirty"], "--policy", files["policy"])
    assert bad.returncode == 1
    assert "[source.duplicate_rate]" in bad.stdout
    assert SECRET not in bad.stdout + bad.stderr


def test_bad_input_through_the_console_script_is_one_line_exit_2(aisec_cli, files, tmp_path):
    truncated = files["dir"] / "cut.parquet"
    truncated.write_bytes(Path(files["clean"]).read_bytes()[:300])
    out = aisec_cli("source", "check", str(truncated), "--policy", files["policy"])
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("aisec: ")
    assert "Traceback" not in out.stdout + out.stderr


def bad_input(kind, files, tmp_path):
    d = files["dir"]
    if kind == "truncated":
        p = d / "t.parquet"
        p.write_bytes(Path(files["clean"]).read_bytes()[:-50])
    elif kind == "wrong_format":
        p = d / "t.parquet"
        p.write_text("id,label\n1,a\n")
    elif kind == "csv_is_parquet":
        p = d / "t.csv"
        p.write_bytes(Path(files["clean"]).read_bytes())
    elif kind == "empty_table":
        p = d / "t.csv"
        p.write_text("id,label\n")
    elif kind == "zero_bytes":
        p = d / "t.csv"
        p.write_bytes(b"")
    elif kind == "missing_column":
        p = d / "t.parquet"
        pq.write_table(pa.table({"id": [1, 2]}), p)
    elif kind == "missing_file":
        p = d / "nope.parquet"
    elif kind == "directory":
        p = d / "dir.parquet"
        p.mkdir()
    elif kind == "origin":
        p = tmp_path / "elsewhere.parquet"
        pq.write_table(table(), p)
    elif kind == "scheme":
        return "https://example.org/data.parquet"
    elif kind == "unknown_extension":
        p = d / "t.json"
        p.write_text("{}")
    return str(p)


EXPECTED = {
    "truncated": "Parquet file is truncated",
    "wrong_format": "not a Parquet file",
    "csv_is_parquet": "Parquet file, not CSV",
    "empty_table": "the table is empty",
    "zero_bytes": "the file is empty",
    "missing_column": "column(s) not in the data: 'label'",
    "missing_file": "file not found",
    "directory": "not a regular file",
    "origin": "origin not on the allow-list",
    "scheme": "unsupported URI scheme 'https'",
    "unknown_extension": "cannot tell the table format",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_every_bad_input_is_exit_2_with_one_clear_line(kind, files, tmp_path, capsys):
    uri = bad_input(kind, files, tmp_path)
    code = main(["source", "check", uri, "--policy", files["policy"]])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aisec: ")
    assert EXPECTED[kind] in lines[0]
    assert "Traceback" not in out + err
    assert "verdict: ERROR" in out


def test_bad_policy_is_exit_2(files, tmp_path, capsys):
    policy = tmp_path / "bad.yaml"
    policy.write_text("version: 1\nname: b\nsource: {origins: ['ftp://x/*']}\n")
    assert main(["source", "check", files["clean"], "--policy", str(policy)]) == 2
    assert "source.origins" in capsys.readouterr().err
    no_section = tmp_path / "none.yaml"
    no_section.write_text("version: 1\nname: n\n")
    assert main(["source", "check", files["clean"], "--policy", str(no_section)]) == 2
    assert "no 'source' section" in capsys.readouterr().err


def test_reference_option(files, tmp_path, capsys):
    policy = tmp_path / "ref.yaml"
    policy.write_text(f"version: 1\nname: r\nsource:\n  origins: ['{files['dir']}/*']\n"
                      "  poisoning: {volume: {max_change: 0.2}}\n")
    big = files["dir"] / "big.parquet"
    pq.write_table(table(2000), big)
    assert main(["source", "check", str(big), "--policy", str(policy), "--reference", files["clean"]]) == 1
    assert "[source.volume_change]" in capsys.readouterr().out
    assert main(["source", "check", str(big), "--policy", str(policy)]) == 2
    assert "need a reference dataset" in capsys.readouterr().err


def test_pin_then_check(files, tmp_path, capsys):
    assert main(["source", "pin", files["clean"]]) == 0
    manifest = json.loads(capsys.readouterr().out)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    policy = tmp_path / "pinned.yaml"
    policy.write_text(f"version: 1\nname: p\nsource:\n  origins: ['{files['dir']}/*']\n"
                      "  pinning: {required: true, manifest: manifest.json}\n")
    assert main(["source", "check", files["clean"], "--policy", str(policy)]) == 0
    capsys.readouterr()
    pq.write_table(table(dup=1), files["clean"])  # changed after approval
    assert main(["source", "check", files["clean"], "--policy", str(policy), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert [f["rule"] for f in result["findings"]] == ["source.digest_mismatch"]


@pytest.mark.integration
def test_s3_through_the_console_script(aisec_cli, files, s3_server):
    client = s3_server.client()
    client.create_bucket(Bucket="cli-data")
    buf = io.BytesIO()
    pq.write_table(table(), buf)
    client.put_object(Bucket="cli-data", Key="train.parquet", Body=buf.getvalue())
    ok = aisec_cli("source", "check", "s3://cli-data/train.parquet", "--policy", files["policy"],
                   "--endpoint-url", s3_server.endpoint)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    missing = aisec_cli("source", "check", "s3://cli-data/missing.parquet", "--policy", files["policy"],
                        "--endpoint-url", s3_server.endpoint)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "aisec: S3 object or bucket not found: s3://cli-data/missing.parquet"


def test_unreachable_s3_is_exit_3(aisec_cli, files):
    from tests.helpers.net import free_port

    out = aisec_cli("source", "check", "s3://cli-data/train.parquet", "--policy", files["policy"],
                    "--endpoint-url", f"http://127.0.0.1:{free_port()}",
                    env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1"})
    assert out.returncode == 3, out.stdout + out.stderr
    assert out.stderr.startswith("aisec: S3 endpoint unreachable")
    assert "Traceback" not in out.stderr


def test_great_expectations_through_the_cli(files, tmp_path, capsys):
    policy = tmp_path / "gx.yaml"
    policy.write_text(f"""
version: 1
name: gx
source:
  origins: ['{files['dir']}/*']
  expectations:
    expect:
      - type: expect_column_values_to_be_in_set
        kwargs: {{column: label, value_set: [a, b]}}
""")
    assert main(["source", "check", files["clean"], "--policy", str(policy)]) == 0
    capsys.readouterr()
    assert main(["source", "check", files["dirty"], "--policy", str(policy), "--json"]) == 1
    out = capsys.readouterr().out
    result = json.loads(out)
    [finding] = result["findings"]
    assert finding["rule"] == "source.expectation" and finding["count"] > 0
    assert SECRET not in out
