"""Bias gate: speed against fairlearn 0.15, and peak memory that does not grow with rows.

Part 1 (speed, same data, same run): demographic parity difference/ratio, equalized odds
difference/ratio and equal opportunity difference on ``--rows`` rows x ``--groups`` groups,
computed by

* fairlearn's public functions (on ``--fairlearn-rows`` rows; when fewer than ``--rows``, its time
  is extrapolated linearly and labelled so: fairlearn is linear in rows here),
* the gate's metric kernel (``_metrics``: one ``bincount``), and
* the whole streamed gate evaluation (``evaluate_bias``: batches of 65,536 rows, label mapping,
  per-group counts, all metrics and findings),

asserting the numbers are equal (1e-9) and printing the speed-ups. Target: the streamed gate at
least 100x fairlearn.

Part 2 (memory): writes a Parquet file per ``--rss-rows`` size (label, prediction, score, two
sensitive columns), runs ``check_bias`` on each in a fresh subprocess and prints each child's peak
RSS (``ru_maxrss``) and time side by side. Target: peak RSS at the largest size <= 1.2x the
smallest (the gate streams; it held ~80 bytes/row before).

Usage::

    python bench/bench_bias.py [--rows 1000000] [--groups 10] [--fairlearn-rows 0 (all)]
                               [--rss-rows 1000000,10000000] [--workdir DIR] [--skip-rss]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa

TARGET_RATIO = 100.0
TARGET_RSS_RATIO = 1.2
#: Rows generated at a time: the parent stays small, since Linux carries a process's peak RSS over
#: ``exec`` into the child it spawns (``ru_maxrss`` of a child of a big parent would be the parent's).
CHUNK = 131_072
METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
)


def make_data(rows: int, groups: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, rows)
    y = rng.integers(0, 2, rows)
    # group-dependent selection rates, so the metrics are not trivially 0
    p = (rng.random(rows) < 0.3 + 0.04 * g).astype(np.int64)
    labels = np.array([f"group-{i:02d}" for i in range(groups)], dtype=object)[g]
    return y, p, labels


def kernel(y: np.ndarray, p: np.ndarray, sensitive: pa.Array) -> dict[str, float]:
    """The metric kernel: dictionary-encode the sensitive column, one bincount, all metrics."""
    import pyarrow.compute as pc

    from airflow_aisec.core.gates.bias._metrics import ConfusionCounts, fairness_metrics

    encoded = pc.dictionary_encode(sensitive)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    counts = ConfusionCounts.from_arrays(y, p, codes, len(encoded.dictionary))
    result = fairness_metrics(counts)
    return {m: float(result.disparities[m]) for m in METRICS}


def gate(table: pa.Table) -> dict[str, float]:
    """The whole streamed gate evaluation on the table (what ``check_bias`` does after reading)."""
    from airflow_aisec.core.gates.bias import evaluate_bias, resolve_columns
    from airflow_aisec.core.policy.sections.bias import BiasPolicy

    policy = BiasPolicy(label="y", prediction="p", sensitive=["g"], min_group_size=1,
                        thresholds={m: {"max": 1.0} if "difference" in m else {"min": 0.0} for m in METRICS})
    metrics = evaluate_bias(policy, table, resolve_columns(policy)).metrics
    return {m: float(metrics["groupings"][0]["disparities"][m]) for m in METRICS}


def theirs(y: np.ndarray, p: np.ndarray, sensitive: np.ndarray) -> dict[str, float]:
    import fairlearn.metrics as flm

    return {m: float(getattr(flm, m)(y, p, sensitive_features=sensitive)) for m in METRICS}


def best_of(fn, repeat: int) -> tuple[float, dict[str, float]]:
    times, out = [], {}
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def compare(a: dict[str, float], b: dict[str, float]) -> float:
    worst = 0.0
    for m in METRICS:
        x, y = a[m], b[m]
        worst = max(worst, 0.0 if (np.isnan(x) and np.isnan(y)) else abs(x - y))
    return worst


def speed(args: argparse.Namespace) -> bool:
    y, p, labels = make_data(args.rows, args.groups, args.seed)
    sensitive = pa.array(labels, type=pa.string())
    table = pa.table({"y": y, "p": p, "g": sensitive})
    print(f"data: {args.rows:,} rows x {args.groups} groups; metrics: {', '.join(METRICS)}")
    gate(table.slice(0, 1000))  # warm imports outside the timing
    t_kernel, kernel_values = best_of(lambda: kernel(y, p, sensitive), args.repeat)
    t_gate, gate_values = best_of(lambda: gate(table), args.repeat)

    import fairlearn.metrics  # noqa: F401 - import outside the timing

    fl_rows = min(args.fairlearn_rows or args.rows, args.rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_fl, fl_values = best_of(lambda: theirs(y[:fl_rows], p[:fl_rows], labels[:fl_rows]), 1)
    same_rows = gate(table.slice(0, fl_rows))
    worst = compare(fl_values, same_rows)
    print(f"{'metric':<32} {'fairlearn':>22} {'aisec (streamed)':>22} {'|diff|':>10}  (on {fl_rows:,} rows)")
    for m in METRICS:
        print(f"{m:<32} {fl_values[m]:>22.17f} {same_rows[m]:>22.17f} {abs(fl_values[m] - same_rows[m]):>10.1e}")
    assert worst <= 1e-9, f"numbers differ from fairlearn: max |diff| {worst:.3e}"
    assert compare(kernel_values, gate_values) <= 1e-12, "kernel and streamed gate disagree"

    scale = args.rows / fl_rows
    t_fl_full = t_fl * scale
    label = "" if scale == 1 else f" (measured {t_fl:.2f} s on {fl_rows:,} rows, extrapolated x{scale:g})"
    print(f"fairlearn 0.15:                  {t_fl_full:9.3f} s{label}")
    print(f"aisec metric kernel (bincount):  {t_kernel:9.4f} s  -> {t_fl_full / t_kernel:,.0f}x")
    print(f"aisec streamed evaluate_bias:    {t_gate:9.4f} s  -> {t_fl_full / t_gate:,.0f}x "
          f"(target >= {TARGET_RATIO:.0f}x)")
    ok = t_fl_full / t_gate >= TARGET_RATIO
    print("speed:", "OK" if ok else "BELOW TARGET")
    return ok


def write_file(path: Path, rows: int, seed: int) -> None:
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(path, pa.schema([("y", pa.int8()), ("p", pa.int8()), ("s", pa.float64()),
                                           ("sex", pa.string()), ("region", pa.string())])) as writer:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            g = rng.integers(0, 20, n)
            y = rng.integers(0, 2, n)
            s = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1)
            writer.write_table(pa.table({
                "y": y.astype(np.int8), "p": (s > 0.5).astype(np.int8), "s": s,
                "sex": pa.array(np.array(["F", "M"], dtype=object)[g % 2]),
                "region": pa.array(np.array([f"r{i:02d}" for i in range(20)], dtype=object)[g]),
            }), row_group_size=131_072)


CHILD = """
import json, resource, sys, time
import numpy, pyarrow.csv, pyarrow.parquet  # imported outside the timing
from airflow_aisec.core.gates.bias import check_bias
from airflow_aisec.core.policy.sections.bias import BiasPolicy
policy = BiasPolicy(label="y", prediction="p", score="s", sensitive=["sex", "region"], intersections=True,
                    thresholds={"demographic_parity_difference": {"max": 1.0}, "roc_auc": {"min": 0.0}})
start = time.perf_counter()
out = check_bias(policy, sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "rows": out.metrics["rows"]}))
"""


def memory(args: argparse.Namespace) -> bool:
    sizes = [int(x) for x in args.rss_rows.split(",")]
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        results = []
        for rows in sizes:
            path = Path(tmp) / f"bias-{rows}.parquet"
            write_file(path, rows, args.seed)
            proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True,
                                  check=True)
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            path.unlink()
    print(f"\n{'rows':>12} {'check_bias s':>13} {'peak RSS MB':>12}")
    for rows, r in zip(sizes, results):
        assert r["rows"] == rows
        print(f"{rows:>12,} {r['seconds']:>13.2f} {r['maxrss_kb'] / 1024:>12.0f}")
    ratio = results[-1]["maxrss_kb"] / results[0]["maxrss_kb"]
    ok = ratio <= TARGET_RSS_RATIO
    print(f"peak RSS {sizes[-1]:,} / {sizes[0]:,} rows: {ratio:.2f}x (target <= {TARGET_RSS_RATIO}x) -> "
          f"{'OK' if ok else 'ABOVE TARGET'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--fairlearn-rows", type=int, default=0,
                        help="rows fairlearn runs on (its time is extrapolated to --rows); 0: all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="repeats of the fast paths (best time counts)")
    parser.add_argument("--rss-rows", default="1000000,10000000", help="comma-separated row counts")
    parser.add_argument("--workdir", default=None, help="where the Parquet files are written")
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args(argv)
    # Memory first, while this process is small (see CHUNK).
    ok = memory(args) if not args.skip_rss else True
    ok = speed(args) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
