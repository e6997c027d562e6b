#!/usr/bin/env python
"""Load: N concurrent runs of a light gated pipeline; runs/min and gate overhead per task.

Starts the same deployment as ``tests/integration/test_load.py`` (api-server, scheduler, dag-processor on
PostgreSQL; CeleryExecutor adds a worker and Redis), triggers ``--runs`` runs of ``aisec_load`` (source,
pii and model-scan gates and a no-op task, in parallel) at once, waits for all, checks every result is
in XCom and in the audit trail (one record per gate task, chain verified), and prints:

* runs/min (first trigger to last run finished);
* per task: mean duration as Airflow records it, and the gate's overhead over the no-op task of the same
  runs (mean gate duration - mean no-op duration: policy load, the check, the audit append, the XCom).

Needs PostgreSQL on 127.0.0.1:5432 (``AISEC_TEST_POSTGRES_DSN``) and, for Celery, Redis on 6379
(``AISEC_TEST_REDIS_URL``).

Usage::

    python bench/bench_load.py [--runs 50] [--executor LocalExecutor|CeleryExecutor|both] [--parallelism 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    from tests.integration.test_load import run_load, start_cluster, stop_cluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--executor", default="both", choices=["LocalExecutor", "CeleryExecutor", "both"])
    parser.add_argument("--parallelism", type=int, default=4, help="[core] parallelism and max active tasks")
    args = parser.parse_args(argv)
    executors = ["LocalExecutor", "CeleryExecutor"] if args.executor == "both" else [args.executor]
    print(f"{'executor':15} {'runs':>5} {'wall s':>8} {'runs/min':>9}  per-task mean s (overhead vs noop)")
    for executor in executors:
        with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
            cluster = start_cluster(Path(tmp), executor, runs=args.runs, parallelism=args.parallelism)
            try:
                stats = run_load(cluster, args.runs, deadline=max(1500, args.runs * 60))
            except BaseException:
                print(cluster.dump_logs(), file=sys.stderr)
                raise
            finally:
                stop_cluster(cluster)
        mean = {t: sum(d) / len(d) for t, d in stats["durations"].items()}
        noop = mean.get("noop", 0.0)
        per_task = ", ".join(f"{t} {m:.2f}" + ("" if t == "noop" else f" (+{m - noop:.2f})")
                             for t, m in sorted(mean.items()))
        print(f"{executor:15} {args.runs:5d} {stats['wall_s']:8.1f} {args.runs / stats['wall_s'] * 60:9.1f}  "
              f"{per_task}; {stats['records']} trail records", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
