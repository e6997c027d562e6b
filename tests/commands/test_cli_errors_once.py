"""Every error of the CLI is one line, printed once, on stderr (README: "one line naming the file")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STRICT = str(REPO / "policies" / "strict.yaml")


def cases(tmp: Path) -> dict[str, list[str]]:
    data = tmp / "d.csv"
    data.write_text("a,b\n1,2\n")
    return {
        "gate_missing_data": ["drift", "check", str(tmp / "nope.csv"), str(data), "--policy", STRICT],
        "gate_missing_policy": ["pii", "scan", str(data), "--policy", str(tmp / "missing.yaml")],
        "gate_policy_without_section": ["bias", "check", str(data), "--policy", str(REPO / "policies/drift-example.yaml"),
                                        "--label", "a", "--prediction", "b", "--sensitive", "a"],
        "gate_fifo_policy": ["source", "check", str(data), "--policy", "/dev/zero"],
        "model_scan_missing_dir": ["model", "scan", str(tmp / "no-model"), "--policy", STRICT],
        "policy_validate_missing": ["policy", "validate", str(tmp / "missing.yaml")],
        "policy_validate_invalid": ["policy", "validate", str(tmp / "bad.yaml")],
        "lint_missing_folder": ["lint", str(tmp / "no-dags"), "--policy", STRICT],
    }


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", ["gate_missing_data", "gate_missing_policy", "gate_policy_without_section",
                                  "gate_fifo_policy", "model_scan_missing_dir", "policy_validate_missing",
                                  "policy_validate_invalid", "lint_missing_folder"])
def test_error_is_one_line_on_stderr_only(aisec_cli, tmp_path, case):
    (tmp_path / "bad.yaml").write_text("version: true\nname: x\n")
    out = aisec_cli(*cases(tmp_path)[case])
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aisec: "), out.stderr
    message = lines[0].removeprefix("aisec: ")
    assert message not in out.stdout  # printed once
    assert "error:" not in out.stdout.lower() and "Traceback" not in out.stdout + out.stderr


@pytest.mark.timeout(120)
def test_json_keeps_the_result_on_stdout_and_one_line_on_stderr(aisec_cli, tmp_path):
    args = cases(tmp_path)["gate_missing_data"]
    out = aisec_cli(*args, "--json")
    assert out.returncode == 2
    result = json.loads(out.stdout)
    assert result["verdict"] == "error"
    lines = out.stderr.strip().splitlines()
    assert lines == [f"aisec: {result['error']['message']}"]
