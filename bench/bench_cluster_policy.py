"""Cost of platform enforcement (cluster policy) on DAG parsing, and of the rule evaluation on big DAGs.

1. DagBag parse of a folder of DAGs, three ways, each in fresh interpreters (alternating, median):
   baseline = provider installed, no platform policy configured (the hook returns after one setting
   lookup); candidate = ``[aisec] platform_policy`` set to policies/strict.yaml. Printed: ratio
   candidate / baseline and the added milliseconds per DAG.
2. ``check_dag`` alone on synthetic DAGs (chains and wide fan-outs, up to a few thousand tasks):
   milliseconds per DAG, to show evaluation stays linear in the graph size.
3. In one warm process (as a long-running dag-processor): the time spent inside the cluster policy
   as a share of the whole DagBag parse. Fresh-interpreter numbers (1.) are noisy on a loaded
   machine; this one is the marginal cost per DAG.
4. The hook alone, per DAG, in one warm process: with no policy configured (one setting lookup) and
   with policies/strict.yaml (cache hit: one ``stat``). tests/test_cluster_policy.py checks the work
   stays constant per DAG by counting; the time is reported here.

Target: with no policy configured the hook is free (one setting lookup); with one, < 1 ms per typical
DAG once warm.

Usage: python bench/bench_cluster_policy.py [--runs N] [--dags N] [--tasks N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

DAG_FILE = '''
import pendulum
from airflow.sdk import DAG, task
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow_aisec.core.result import CheckOutcome
from airflow_aisec.operators.base import AisecGateOperator


class VerifyGate(AisecGateOperator):
    gate = "signing"

    def check(self, loaded, context):
        return CheckOutcome()


VerifyGate.__module__ = "airflow_aisec.operators.signing"
VerifyGate.__qualname__ = "ModelVerifyGateOperator"


class PiiGate(AisecGateOperator):
    gate = "pii"

    def check(self, loaded, context):
        return CheckOutcome()


PII = PiiGate if {compliant} else EmptyOperator

for i in range({dags}):
    with DAG(f"bench_{{i}}", schedule=None, start_date=pendulum.datetime(2025, 1, 1),
             tags=["model-deployment", "personal-data"]) as dag:
        prev = EmptyOperator(task_id="ingest")
        pii = PII(task_id="pii_check")
        prev >> pii
        prev = pii
        for j in range({tasks}):
            step = EmptyOperator(task_id=f"step_{{j}}")
            prev >> step
            prev = step
        verify = VerifyGate(task_id="verify")
        prev >> verify >> EmptyOperator(task_id="deploy_model")
    globals()[f"dag_{{i}}"] = dag
'''

PARSE = '''
import os, sys, time
t0 = time.perf_counter()
import airflow  # loads the policy plugins (and, when configured, warms the platform policy once)
t_import = time.perf_counter() - t0
from airflow.dag_processing.dagbag import DagBag
t0 = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - t0
print(t_import, elapsed, len(bag.dags), len(bag.import_errors))
'''


def parse_once(folder: Path, policy: str | None) -> tuple[float, int, int]:
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__AISEC__PLATFORM_POLICY"}
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    if policy:
        env["AIRFLOW__AISEC__PLATFORM_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", PARSE, str(folder)], capture_output=True, text=True, env=env,
                         timeout=600, check=True)
    t_import, elapsed, dags, errors = out.stdout.split()[-4:]
    return float(elapsed), int(dags), int(errors), float(t_import)


def bench_parse(runs: int, dags: int, tasks: int) -> None:
    policy = str(REPO / "policies" / "strict.yaml")
    for compliant in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "dags"
            folder.mkdir()
            source = DAG_FILE.format(dags=dags, tasks=tasks, compliant=compliant)
            (folder / "bench_dags.py").write_text(textwrap.dedent(source))
            base, cand, imp_b, imp_c = [], [], [], []
            for _ in range(runs):
                b = parse_once(folder, None)
                c = parse_once(folder, policy)
                base.append(b[0])
                cand.append(c[0])
                imp_b.append(b[3])
                imp_c.append(c[3])
            assert b[1] == dags and b[2] == 0, b
            # Compliant: every DAG loads. Not compliant (no PII gate before deploy_model): every DAG is
            # rejected, so the rules really run on each one (and Airflow logs each rejection).
            assert (c[1], c[2]) == ((dags, 0) if compliant else (0, 1)), c
            mb, mc = statistics.median(base), statistics.median(cand)
            label = "compliant DAGs" if compliant else "rejected DAGs"
            print(f"parse {dags} {label} x {tasks + 5} tasks: no policy {mb * 1000:.0f} ms, strict policy "
                  f"{mc * 1000:.0f} ms; ratio {mc / mb:.2f}; +{(mc - mb) * 1000 / dags:.2f} ms per DAG")
            if compliant:
                ib, ic = statistics.median(imp_b), statistics.median(imp_c)
                print(f"  once per process ('import airflow', policy warmed): {ib * 1000:.0f} ms -> "
                      f"{ic * 1000:.0f} ms (+{(ic - ib) * 1000:.0f} ms)")


def bench_check(sizes: list[int]) -> None:
    sys.path.insert(0, str(REPO))
    from airflow_aisec.core.gates.platform import DagSpec, TaskSpec, check_dag
    from airflow_aisec.core.policy import load_policy

    section = load_policy(REPO / "policies" / "strict.yaml").section("platform")
    verify = ("airflow_aisec.operators.signing.ModelVerifyGateOperator",)
    for n in sizes:
        # chain: ingest -> ... -> verify -> deploy_k (n/10 deploy targets fanning out)
        tasks = [TaskSpec("t0")]
        tasks += [TaskSpec(f"t{i}", upstream=(f"t{i - 1}",)) for i in range(1, n)]
        tasks.append(TaskSpec("verify", classes=verify, gate="signing", upstream=(f"t{n - 1}",)))
        tasks += [TaskSpec(f"deploy_{k}", upstream=("verify",)) for k in range(max(1, n // 10))]
        chain = DagSpec.build("chain", tasks, tags=["model-deployment"])
        # wide: n independent deploy targets, none protected (worst case: every target fails)
        wide = DagSpec.build("wide", [TaskSpec("src")] + [TaskSpec(f"deploy_{k}", upstream=("src",))
                                                          for k in range(n)], tags=["model-deployment"])
        for name, spec in (("chain", chain), ("wide", wide)):
            t0 = time.perf_counter()
            found = check_dag(section, spec).findings
            ms = (time.perf_counter() - t0) * 1000
            print(f"check_dag {name:5} {len(spec.tasks):6d} tasks: {ms:8.1f} ms, {len(found)} violation(s)")


WARM = '''
import os, sys, time
import airflow
from airflow.dag_processing.dagbag import DagBag
import airflow_aisec.cluster_policy as cp

DagBag(dag_folder=sys.argv[1])  # imports and caches warm, as in a long-running dag-processor
inner = cp.check
spent = [0.0]


def timed(dag, path):
    t0 = time.perf_counter()
    try:
        return inner(dag, path)
    finally:
        spent[0] += time.perf_counter() - t0


cp.check = timed
parses, checks = [], []
for _ in range(int(sys.argv[2])):
    spent[0] = 0.0
    t0 = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    parses.append(time.perf_counter() - t0)
    checks.append(spent[0])
    assert len(bag.dags) == int(sys.argv[3]), (len(bag.dags), bag.import_errors)
parses.sort(); checks.sort()
print(parses[len(parses) // 2], checks[len(checks) // 2])
'''


def bench_warm(runs: int, dags: int, tasks: int) -> None:
    """In one warm process: time spent inside the cluster policy vs the whole parse (compliant DAGs)."""
    env = {**os.environ, "AIRFLOW__AISEC__PLATFORM_POLICY": str(REPO / "policies" / "strict.yaml"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "dags"
        folder.mkdir()
        source = DAG_FILE.format(dags=dags, tasks=tasks, compliant=True)
        (folder / "bench_dags.py").write_text(textwrap.dedent(source))
        out = subprocess.run([sys.executable, "-c", WARM, str(folder), str(max(3, runs)), str(dags)],
                             capture_output=True, text=True, env=env, timeout=600, check=True)
        parse, check = (float(x) for x in out.stdout.split()[-2:])
        print(f"warm parse of {dags} compliant DAGs x {tasks + 5} tasks: {parse * 1000:.0f} ms, of which "
              f"the cluster policy {check * 1000:.1f} ms ({check * 1000 / dags:.2f} ms per DAG, "
              f"{100 * check / parse:.0f}% of the parse)")


HOOK = '''
import sys, time
from airflow.sdk import DAG
from airflow_aisec.cluster_policy import dag_policy

with DAG("hook_bench", schedule=None) as dag:  # untagged: rules do not apply, the hook returns
    pass
dag_policy(dag)  # warm: lazy imports, and the configured policy loaded into the cache
n = int(sys.argv[1])
best = float("inf")
for _ in range(5):
    t0 = time.perf_counter()
    for _ in range(n):
        dag_policy(dag)
    best = min(best, (time.perf_counter() - t0) / n)
print(best)
'''


def bench_hook(calls: int = 2000) -> None:
    """Per-DAG cost of the hook in a warm process: no policy configured vs policies/strict.yaml."""
    base = {k: v for k, v in os.environ.items() if k != "AIRFLOW__AISEC__PLATFORM_POLICY"}
    base["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    results = {}
    for label, policy in (("no policy", None), ("strict policy", str(REPO / "policies" / "strict.yaml"))):
        env = dict(base, AIRFLOW__AISEC__PLATFORM_POLICY=policy) if policy else base
        out = subprocess.run([sys.executable, "-c", HOOK, str(calls)], capture_output=True, text=True, env=env,
                             timeout=600, check=True)
        results[label] = float(out.stdout.split()[-1])
    print(f"cluster policy hook per DAG (warm, best of 5 x {calls}): "
          + ", ".join(f"{label} {sec * 1e6:.1f} us" for label, sec in results.items()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dags", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=20)
    args = parser.parse_args()
    bench_check([100, 1000, 5000])
    bench_hook()
    bench_warm(args.runs, args.dags, args.tasks)
    bench_parse(args.runs, args.dags, args.tasks)


if __name__ == "__main__":
    main()
