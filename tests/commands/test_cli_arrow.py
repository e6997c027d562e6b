"""``aisec`` verbs that tell pyarrow there is no pandas (airflow_aisec/cli/_arrow.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = r"""
import sys
from airflow_aisec.cli._arrow import pyarrow_without_pandas
pyarrow_without_pandas()
import pyarrow as pa, pyarrow.compute as pc
values = pa.array(["a", None, "b"], pa.string())
assert pc.fill_null(pc.equal(values, "a"), False).to_numpy(zero_copy_only=False).tolist() == [True, False, False]
assert values.to_pylist() == ["a", None, "b"] and pa.scalar(3).as_py() == 3
assert "pandas" not in sys.modules, "a conversion imported pandas"
import pandas  # still importable by code that wants it
assert pandas.DataFrame({"x": [1]}).shape == (1, 1)
frame = pa.table({"x": [1, 2], "s": ["a", None]}).to_pandas()  # pyarrow still converts when asked
assert frame["x"].tolist() == [1, 2] and frame["s"].tolist()[0] == "a"
print("ok")
"""


@pytest.mark.timeout(120)
def test_conversions_work_without_pandas_and_pandas_stays_importable():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.timeout(120)
def test_a_process_that_already_loaded_pandas_keeps_pyarrows_pandas_conversions():
    code = ("import pandas, pyarrow as pa\nfrom airflow_aisec.cli._arrow import pyarrow_without_pandas\n"
            "pyarrow_without_pandas()\nassert pa.table({'x': [1]}).to_pandas().shape == (1, 1)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr


@pytest.mark.timeout(300)
@pytest.mark.parametrize("verb", ["bias", "drift"])
def test_bias_and_drift_checks_import_no_pandas(verb, tmp_path):
    from tests.commands.test_cli_startup import imported

    data = tmp_path / "scores.csv"
    data.write_text("y,p,g\n1,1,a\n0,1,a\n1,0,b\n0,0,b\n")  # a always predicted positive, b never
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nname: t\nbias:\n  min_group_size: 1\n  thresholds:\n"
                      "    demographic_parity_difference: {max: 0.1}\ndrift:\n  categorical: [g]\n")
    if verb == "bias":
        argv = ["bias", "check", str(data), "--policy", str(policy), "--label", "y", "--prediction", "p",
                "--sensitive", "g"]
    else:
        argv = ["drift", "check", str(data), str(data), "--policy", str(policy)]
    code, modules = imported(*argv)
    assert code == (1 if verb == "bias" else 0)  # a parity gap of 1.0; the same table as reference and current
    assert "pandas" not in modules and "pyarrow" in modules
