"""DAG parse overhead of airflow-aisec's operators.

Baseline: a DAG file using only ``airflow.sdk``. Candidate: the same DAG with
every airflow-aisec operator and sensor module imported and gates in it. Each
parse runs in a fresh interpreter (imports are cached per process), alternating
baseline and candidate, and is timed with Airflow's own ``DagBag`` after
``airflow.sdk`` and the DagBag machinery are imported (both pay those alike).

Target (issue "Foundation"): median overhead <= 50 ms.

Bytecode: as in ``bench_cli_startup.py``, the interpreters use a bytecode cache (a temporary
``PYTHONPYCACHEPREFIX`` filled by the warm-up parses), as an installed package and a DAG processor do,
even where the environment sets ``PYTHONDONTWRITEBYTECODE``; ``--no-bytecode-cache`` measures without it.

Usage: python bench/bench_parse_overhead.py [--runs N] [--no-bytecode-cache]
"""

from __future__ import annotations

import argparse
import os
import pkgutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TARGET_MS = 50.0

BASELINE = '''
import pendulum
from airflow.sdk import DAG, task

with DAG("bench_dag", schedule=None, start_date=pendulum.datetime(2025, 1, 1)) as dag:
    @task
    def extract():
        return 1

    @task
    def train(x):
        return x

    train(extract())
'''

CANDIDATE_HEAD = '''
import pendulum
from airflow.sdk import DAG, task
{imports}
from airflow_aisec.operators.base import AisecGateOperator


class _Gate(AisecGateOperator):
    gate = "drift"


with DAG("bench_dag", schedule=None, start_date=pendulum.datetime(2025, 1, 1)) as dag:
    @task
    def extract():
        return 1

    @task
    def train(x):
        return x

    x = extract()
    x >> _Gate(task_id="gate", policy="/nonexistent/policy.yaml") >> train(x)
'''

PROBE = '''
import gc, sys, time
from airflow.sdk import DAG  # noqa: F401  (paid by both)
from airflow.dag_processing.dagbag import DagBag
gc.collect()  # else a full collection of the imports above falls inside the timing, or not, by chance
t0, c0 = time.perf_counter(), time.process_time()
bag = DagBag(dag_folder=sys.argv[1])
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
assert not bag.import_errors, bag.import_errors
assert "bench_dag" in bag.dag_ids
print(elapsed, cpu)
'''


def operator_modules() -> list[str]:
    import airflow_aisec.operators
    import airflow_aisec.sensors

    mods = []
    for pkg in (airflow_aisec.operators, airflow_aisec.sensors):
        mods += [m.name for m in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + ".")]
    return sorted(mods)


def parse_seconds(path: Path, env: dict) -> tuple[float, float]:
    """(wall, CPU) seconds of one DagBag parse in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=env, check=False,
                         timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"parse failed for {path}:\n{out.stderr[-3000:]}")
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="compile every imported module from source, as with PYTHONDONTWRITEBYTECODE")
    args = parser.parse_args()
    mods = operator_modules()
    with tempfile.TemporaryDirectory(prefix="aisec-bench-") as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "AIRFLOW_HOME": str(tmp / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        if not args.no_bytecode_cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        base = tmp / "baseline" / "dag.py"
        cand = tmp / "candidate" / "dag.py"
        base.parent.mkdir()
        cand.parent.mkdir()
        base.write_text(textwrap.dedent(BASELINE))
        cand.write_text(textwrap.dedent(CANDIDATE_HEAD.format(imports="\n".join(f"import {m}" for m in mods))))
        parse_seconds(base, env)  # warm the OS file cache (and the bytecode cache) for both
        parse_seconds(cand, env)
        b, c = [], []
        for _ in range(args.runs):
            b.append(parse_seconds(base, env))
            c.append(parse_seconds(cand, env))
    mb, mc = (statistics.median(w for w, _ in runs) * 1000 for runs in (b, c))
    cb, cc = (statistics.median(u for _, u in runs) * 1000 for runs in (b, c))
    overhead = mc - mb
    print(f"operator modules imported: {len(mods)} ({', '.join(m.rsplit('.', 1)[-1] for m in mods)})")
    print(f"bytecode cache: {'none (every module compiled from source)' if args.no_bytecode_cache else 'warm'}")
    print(f"baseline (airflow.sdk only) median parse: {mb:8.1f} ms wall {cb:8.1f} ms cpu over {args.runs} runs")
    print(f"with airflow-aisec gates     median parse: {mc:8.1f} ms wall {cc:8.1f} ms cpu")
    print(f"overhead: {overhead:+.1f} ms wall, {cc - cb:+.1f} ms cpu (target <= {TARGET_MS:.0f} ms); ratio "
          f"candidate/baseline: {mc / mb:.2f}x wall, {cc / cb:.2f}x cpu; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores (on a loaded machine read the cpu figures)")
    print("RESULT:", "PASS" if overhead <= TARGET_MS else "FAIL")
    return 0 if overhead <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
