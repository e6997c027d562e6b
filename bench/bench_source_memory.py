#!/usr/bin/env python
"""Source validation gate: peak memory must not grow with file size.

Writes a Parquet file at 1x and 5x a base row count (many times the gate's batch size), runs the
full source gate on each in a *fresh subprocess* (schema, row bounds, row-level Great
Expectations, label shift, duplicate rows, out-of-range, volume against a reference), and reports
each child's peak RSS (``ru_maxrss``) next to a naive "load the whole table into pandas" baseline
measured the same way. Prints the 5x/1x ratios side by side.

Usage::

    python bench/bench_source_memory.py [--rows 1000000] [--batch-rows 65536] [--workdir DIR]

Expected: gate ratio close to 1.0 (memory bounded by batch size); naive ratio close to 5.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LABELS = ["cat", "dog", "bird", "fish"]


def write_dataset(path: Path, rows: int, *, seed: int, chunk: int = 262_144, row_group: int = 131_072) -> None:
    """Write ``rows`` rows in chunks (the generator itself stays in bounded memory)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer = None
    try:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            columns = {"id": np.arange(start, start + n, dtype=np.int64)}
            for i in range(6):
                columns[f"f{i}"] = rng.normal(loc=i, scale=1.0 + i, size=n)
            columns["label"] = pa.array(rng.choice(LABELS, size=n, p=[0.4, 0.3, 0.2, 0.1]))
            columns["code"] = pa.array(np.char.add("C", rng.integers(1000, 9999, size=n).astype(str)))
            table = pa.table(columns)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=row_group)
    finally:
        if writer is not None:
            writer.close()


def write_policy(path: Path, data_dir: Path, batch_rows: int, reference: Path) -> None:
    path.write_text(f"""
version: 1
name: bench-source
source:
  origins: ["{data_dir}/*"]
  batch_rows: {batch_rows}
  schema:
    columns: {{id: int64, f0: double, f1: double, f2: double, f3: double, f4: double, f5: double,
               label: string, code: string}}
  rows: {{min: 1}}
  expectations:
    expect:
      - {{type: expect_column_values_to_not_be_null, kwargs: {{column: id}}}}
      - {{type: expect_column_values_to_be_between, kwargs: {{column: f0, min_value: -50, max_value: 50}}}}
      - {{type: expect_column_values_to_be_in_set, kwargs: {{column: label, value_set: {LABELS}}}}}
      - {{type: expect_column_values_to_match_regex, kwargs: {{column: code, regex: "^C[0-9]{{4}}$"}}}}
  poisoning:
    reference: {reference}
    label_shift: {{column: label, max_psi: 0.1}}
    duplicates: {{max_rate: 0.01}}
    out_of_range: {{max_rate: 0.05, margin: 0.5, columns: [f0, f1, f2, f3, f4, f5]}}
    volume: {{max_change: 100}}
""")


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def child(mode: str, policy: str, data: str) -> None:
    """Runs in a fresh interpreter: import everything first, then measure the work."""
    import great_expectations  # noqa: F401 - imported up front so its ~200 MB is in the baseline
    import pandas  # noqa: F401
    import pyarrow.parquet as pq

    from airflow_aisec.core.gate import run_check
    from airflow_aisec.core.gates.source import check_sources, policy_dir
    from airflow_aisec.core.policy import load_policy

    baseline = _rss_mb()
    started = time.perf_counter()
    if mode == "gate":
        loaded = load_policy(policy)
        run = run_check("source", loaded, lambda: check_sources(loaded.section("source"), [data],
                                                              base_dir=policy_dir(loaded.source)))
        result = run.result
        verdict = result.verdict
        rows = result.metrics.get("rows")
        detail = {"findings": [f.rule for f in result.findings],
                  "error": result.error.message if result.error else None,
                  "batches": result.metrics["datasets"][0].get("batches") if result.metrics.get("datasets") else None}
    else:  # naive: what a load-everything validator does
        frame = pq.read_table(data).to_pandas()
        duplicates = int(frame.duplicated().sum())
        rows = len(frame)
        verdict = "n/a"
        detail = {"duplicates": duplicates}
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"mode": mode, "rows": rows, "verdict": verdict, "baseline_mb": round(baseline, 1),
                      "peak_mb": round(peak, 1), "seconds": round(elapsed, 2), **detail}))


def measure(mode: str, policy: Path, data: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(policy), str(data)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the 1x file")
    parser.add_argument("--batch-rows", type=int, default=65_536)
    parser.add_argument("--workdir", help="where to write the files (default: a temp dir, removed afterwards)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "POLICY", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="aisec-bench-source-"))
    data_dir = work / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        reference = data_dir / "reference.parquet"
        write_dataset(reference, max(args.rows // 5, 1000), seed=1)
        policy = work / "policy.yaml"
        write_policy(policy, data_dir, args.batch_rows, reference)
        rows_by_size = {"1x": args.rows, "5x": 5 * args.rows}
        results = {}
        for size, rows in rows_by_size.items():
            path = data_dir / f"data_{size}.parquet"
            t0 = time.perf_counter()
            write_dataset(path, rows, seed=2)
            mb = path.stat().st_size / 2**20
            print(f"wrote {path.name}: {rows:,} rows, {mb:,.1f} MiB ({rows / args.batch_rows:,.0f} batches of "
                  f"{args.batch_rows:,} rows) in {time.perf_counter() - t0:.1f}s", flush=True)
            results[size] = {"file_mb": mb, "gate": measure("gate", policy, path), "naive": measure("naive", policy, path)}
            gate = results[size]["gate"]
            if gate["error"] or gate["verdict"] != "pass":
                raise SystemExit(f"gate did not pass on clean data: {gate}")

        print()
        print(f"{'size':<5} {'rows':>11} {'file MiB':>9} | {'gate peak':>10} {'(+ over imports)':>17} {'s':>6} "
              f"| {'naive peak':>11} {'(+ over imports)':>17} {'s':>6}")
        for size, r in results.items():
            g, n = r["gate"], r["naive"]
            print(f"{size:<5} {g['rows']:>11,} {r['file_mb']:>9.1f} | {g['peak_mb']:>8.1f}MB "
                  f"{g['peak_mb'] - g['baseline_mb']:>15.1f}MB {g['seconds']:>6.1f} | {n['peak_mb']:>9.1f}MB "
                  f"{n['peak_mb'] - n['baseline_mb']:>15.1f}MB {n['seconds']:>6.1f}")
        g1, g5 = results["1x"]["gate"], results["5x"]["gate"]
        n1, n5 = results["1x"]["naive"], results["5x"]["naive"]
        print()
        print(f"file size ratio 5x/1x:            {results['5x']['file_mb'] / results['1x']['file_mb']:.2f}")
        print(f"gate  peak RSS ratio 5x/1x:       {g5['peak_mb'] / g1['peak_mb']:.2f}   "
              f"(working set over imports: {(g5['peak_mb'] - g5['baseline_mb']) / max(g1['peak_mb'] - g1['baseline_mb'], 1):.2f})")
        print(f"naive peak RSS ratio 5x/1x:       {n5['peak_mb'] / n1['peak_mb']:.2f}   "
              f"(working set over imports: {(n5['peak_mb'] - n5['baseline_mb']) / max(n1['peak_mb'] - n1['baseline_mb'], 1):.2f})")
        print(f"gate throughput 5x:               {g5['rows'] / g5['seconds']:,.0f} rows/s "
              f"({g5['batches']} batches)")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
