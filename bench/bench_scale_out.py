#!/usr/bin/env python
"""Scale-out: the pii gate over 16 partitions with 1, 2, ... parallel workers vs the single-task scan.

Writes one Parquet table of ``--cells`` cells (5 short text columns, default 100M cells) in
``--partitions`` row groups (default 16), with planted PII in some rows of every partition, then times:

* **single**: ``check_pii`` on the whole file in one process (what ``PiiGateOperator`` runs);
* **mapped N**: what the mapped DAG runs (``dags/partitioned_pii.py``): each partition summarized by
  ``GatePartitionScanOperator``'s core (``summarize_partition`` -> signed JSON) in a pool of N worker
  processes, as LocalExecutor with ``parallelism = N`` runs mapped task instances; then the merge task's
  core (digests verified, merged, judged once). Airflow's own per-task cost (scheduling, process start,
  XCom, the audit append: ``bench/bench_load.py`` measures it) comes on top, once per partition;
* **spark N**: ``check_pii_spark`` on ``local[N]`` (``--engine spark``); the SparkSession start-up is
  timed separately and not included.

Every mode's verdict, findings and counts are checked equal to the single scan's (``identical``).
Prints wall time, cells/s, the speed-up over the single scan, and the summary bytes per partition.

Usage::

    python bench/bench_scale_out.py [--cells 100000000] [--partitions 16] [--workers 1,2] [--no-spark]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COLUMNS = 5
SECTION = {"levels": {"public": {"forbidden": ["*"]}}, "min_count": 1, "scan": {"mode": "full"}}


def _section():
    from airflow_aisec.core.policy.sections.pii import PiiPolicy

    return PiiPolicy.model_validate(SECTION)


def write_table(path: Path, cells: int, partitions: int) -> int:
    """``cells`` cells in ``partitions`` row groups, written chunk by chunk (bounded memory)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rows = max(partitions, cells // COLUMNS)
    per = rows // partitions
    writer = None
    for p in range(partitions):
        n = per if p < partitions - 1 else rows - per * (partitions - 1)
        ids = pa.array(range(p * per, p * per + n), pa.int64())
        text = pc.cast(ids, pa.string())
        email = pc.if_else(pc.equal(pc.bit_wise_and(ids, 4095), 7), "zq.planted@example.com", "")
        table = pa.table({
            "order": pc.binary_join_element_wise("order ", text, ""),
            "email": email,
            "notes": pc.binary_join_element_wise("shipped on day ", pc.cast(pc.bit_wise_and(ids, 31), pa.string()), ""),
            "reference": pc.binary_join_element_wise("REF-", text, ""),
            "comment": pc.binary_join_element_wise("v1.", pc.cast(pc.bit_wise_and(ids, 255), pa.string()), ".0", ""),
        })
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=n)
    writer.close()
    return rows * COLUMNS


def _scan_partition(partition: str) -> dict:
    """One mapped task's work: the partition's signed summary (what goes to XCom)."""
    from airflow_aisec.core.gates.pii.summary import summarize_partition

    return summarize_partition(_section(), partition, partition_id=partition).signed_json()


def _comparable(outcome) -> dict:
    d = outcome.model_dump(mode="json")
    for key in ("duration_s", "cells_per_s", "partitions"):
        d["metrics"].pop(key, None)
    return d


def run_mapped(path: Path, workers: int) -> tuple[float, object, list[int]]:
    from airflow_aisec.core.gates.pii.summary import check_summary
    from airflow_aisec.core.partitions import list_partitions, load_summary, merge_all

    started = time.perf_counter()
    parts = list_partitions(str(path), by="row_group")
    with ProcessPoolExecutor(max_workers=workers) as pool:
        signed = list(pool.map(_scan_partition, parts))
    sizes = [len(json.dumps(s)) for s in signed]
    outcome = check_summary(_section(), merge_all([load_summary("pii", s) for s in signed]))
    return time.perf_counter() - started, outcome, sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--workers", default=",".join(str(n) for n in sorted({1, 2, os.cpu_count() or 1})),
                        help="comma-separated worker counts (default: 1, 2 and the machine's cores)")
    parser.add_argument("--no-spark", action="store_true", help="skip the Spark runs")
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",") if w]

    from airflow_aisec.core.gates.pii import check_pii

    with tempfile.TemporaryDirectory(prefix="bench-scale-out-") as tmp:
        path = Path(tmp) / "table.parquet"
        t0 = time.perf_counter()
        cells = write_table(path, args.cells, args.partitions)
        print(f"{cells:,} cells in {args.partitions} row groups ({path.stat().st_size / 1e6:.0f} MB) written in "
              f"{time.perf_counter() - t0:.1f} s; {os.cpu_count()} core(s) on this machine", flush=True)
        started = time.perf_counter()
        single = check_pii(_section(), str(path))
        base = time.perf_counter() - started
        reference = _comparable(single)
        print(f"{'mode':10} {'workers':>7} {'wall s':>8} {'cells/s':>12} {'speed-up':>9}  identical")
        print(f"{'single':10} {1:7d} {base:8.1f} {cells / base:12,.0f} {1.0:9.2f}  -  verdict {single.findings and 'fail'}",
              flush=True)
        sizes: list[int] = []
        for n in workers:
            wall, outcome, sizes = run_mapped(path, n)
            print(f"{'mapped':10} {n:7d} {wall:8.1f} {cells / wall:12,.0f} {base / wall:9.2f}  "
                  f"{_comparable(outcome) == reference}", flush=True)
        if not args.no_spark:
            from airflow_aisec.core.engines.spark import check_pii_spark, spark_session

            for n in workers:
                t0 = time.perf_counter()
                spark = spark_session(f"local[{n}]", app_name="aisec-bench")
                start_up = time.perf_counter() - t0
                t0 = time.perf_counter()
                outcome = check_pii_spark(_section(), str(path), spark=spark)
                wall = time.perf_counter() - t0
                spark.stop()
                print(f"{'spark':10} {n:7d} {wall:8.1f} {cells / wall:12,.0f} {base / wall:9.2f}  "
                      f"{_comparable(outcome) == reference}  (session start-up {start_up:.1f} s, not included)",
                      flush=True)
        print(f"summary bytes per partition (signed JSON): mean {sum(sizes) / len(sizes):,.0f}, max {max(sizes):,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
