"""DAG parsing stays cheap: DAGs built with the gate operators import no heavy library at parse time.

The DAG processor parses every file again and again; the gates' libraries (pyarrow, Presidio, ...) load
when a task runs. Compared against a DAG without the operators, parsed the same way, so that what Airflow
itself imports does not count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("pyarrow", "pandas", "numpy", "scipy", "sklearn", "torch", "spacy", "thinc", "presidio_analyzer", "faker",
         "phonenumbers", "regex", "great_expectations", "model_signing", "fairlearn", "modelscan", "picklescan",
         "boto3", "botocore", "hvac", "pyspark")

PLAIN_DAG = """
import pendulum
from airflow.sdk import DAG, task

with DAG("plain", schedule=None, start_date=pendulum.datetime(2025, 1, 1)):
    @task
    def extract():
        return 1

    extract()
"""


def _parse(folder: Path) -> set[str]:
    code = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(folder)!r})\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "assert bag.dag_ids\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
                         env=os.environ.copy(), cwd=REPO, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.timeout(600)
def test_parsing_the_example_dags_imports_no_heavy_library(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "dag.py").write_text(textwrap.dedent(PLAIN_DAG))
    baseline = _parse(plain)
    gated = _parse(REPO / "dags")  # every operator family of the provider, as users write them
    assert "airflow_aisec" in gated
    assert sorted((gated - baseline) & set(HEAVY)) == []
    assert not [m for m in HEAVY if m in gated]  # nor through Airflow itself
