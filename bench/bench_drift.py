"""Drift gate: peak memory that does not grow with rows, and time next to numpy/scipy on the same data.

For each ``--rows`` size, writes a reference and a current Parquet file (three numeric features:
continuous, heavy-tailed with 5% missing, integer-valued; one categorical feature), runs
``check_drift`` on them in a fresh subprocess and reports the child's time and peak RSS
(``ru_maxrss``). For context, a second child computes the same numeric statistics the obvious way
on all rows in memory (``np.quantile`` edges, bin counts, PSI, ``scipy.stats.ks_2samp``), and the
numbers of both are compared: PSI equal (1e-9), KS statistic within the gate's reported error bound
(exact, bound 0, when a feature has no more distinct values than ``sketch_bins``).

Target (issue 12, item 6): gate peak RSS at the largest size <= 1.2x the smallest.

Usage::

    python bench/bench_drift.py [--rows 1000000,10000000] [--workdir DIR] [--skip-scipy]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

TARGET_RSS_RATIO = 1.2
#: Rows generated at a time: the parent stays small, since Linux carries a process's peak RSS over
#: ``exec`` into the child it spawns (``ru_maxrss`` of a child of a big parent would be the parent's).
CHUNK = 131_072
NUMERIC = ("normal", "heavy", "counts")


def write_pair(directory: Path, rows: int, seed: int) -> tuple[Path, Path]:
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    schema = pa.schema([("normal", pa.float64()), ("heavy", pa.float64()), ("counts", pa.int64()),
                        ("region", pa.string())])
    paths = []
    for which, shift in (("reference", 0.0), ("current", 0.05)):
        path = directory / f"{which}-{rows}.parquet"
        with pq.ParquetWriter(path, schema) as writer:
            for start in range(0, rows, CHUNK):
                n = min(CHUNK, rows - start)
                heavy = rng.standard_t(3, n) * 10 + shift
                heavy[rng.random(n) < 0.05] = np.nan
                writer.write_table(pa.table({
                    "normal": rng.normal(shift, 1.0, n),
                    "heavy": heavy,
                    "counts": rng.poisson(5 + shift * 10, n),
                    "region": pa.array(np.array(["north", "south", "east", "west"], dtype=object)[
                        rng.integers(0, 4, n)]),
                }, schema=schema), row_group_size=131_072)
        paths.append(path)
    return paths[0], paths[1]


GATE_CHILD = """
import json, resource, sys, time
import numpy, pyarrow.csv, pyarrow.parquet, scipy.stats  # imported outside the timing
from airflow_aisec.core.gates.drift import check_drift
from airflow_aisec.core.policy.sections.drift import DriftPolicy
start = time.perf_counter()
out = check_drift(DriftPolicy(), sys.argv[1], sys.argv[2])
seconds = time.perf_counter() - start
features = {f["feature"]: {k: f.get(k) for k in ("psi", "ks_statistic", "ks_statistic_upper", "ks_error_bound")}
            for f in out.metrics["features"]}
print(json.dumps({"seconds": seconds, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "features": features}))
"""

SCIPY_CHILD = """
import json, resource, sys, time
import numpy as np, pyarrow.parquet as pq
from scipy.stats import ks_2samp
from airflow_aisec.core.gates.drift import bin_counts, psi, quantile_edges
ref_t, cur_t = pq.read_table(sys.argv[1]), pq.read_table(sys.argv[2])
start = time.perf_counter()
features = {}
for name in ("normal", "heavy", "counts"):
    ref = ref_t.column(name).to_numpy(zero_copy_only=False).astype(float)
    cur = cur_t.column(name).to_numpy(zero_copy_only=False).astype(float)
    r, c = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    edges = quantile_edges(r, 10)
    rc, cc = bin_counts(r, edges), bin_counts(c, edges)
    if len(r) < len(ref) or len(c) < len(cur):
        rc, cc = np.append(rc, len(ref) - len(r)), np.append(cc, len(cur) - len(c))
    features[name] = {"psi": psi(rc, cc), "ks_statistic": float(ks_2samp(r, c).statistic)}
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "features": features}))
"""


def child(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated row counts per table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="where the Parquet files are written")
    parser.add_argument("--skip-scipy", action="store_true", help="skip the in-memory numpy/scipy child")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.rows.split(",")]
    gate, naive = [], []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for rows in sizes:
            ref, cur = write_pair(Path(tmp), rows, args.seed)
            gate.append(child(GATE_CHILD, str(ref), str(cur)))
            naive.append(None if args.skip_scipy else child(SCIPY_CHILD, str(ref), str(cur)))
            ref.unlink()
            cur.unlink()
    print(f"{'rows/table':>12} {'gate s':>8} {'gate RSS MB':>12} {'numpy+scipy s':>14} {'in-memory RSS MB':>17}")
    for rows, g, s in zip(sizes, gate, naive):
        print(f"{rows:>12,} {g['seconds']:>8.1f} {g['maxrss_kb'] / 1024:>12.0f} "
              f"{(s['seconds'] if s else float('nan')):>14.1f} {(s['maxrss_kb'] / 1024 if s else float('nan')):>17.0f}")
    for rows, g, s in zip(sizes, gate, naive):
        if not s:
            continue
        for name in NUMERIC:
            a, b = g["features"][name], s["features"][name]
            upper = a["ks_statistic_upper"] if a["ks_statistic_upper"] is not None else a["ks_statistic"]
            assert abs(a["psi"] - b["psi"]) <= 1e-9 * max(1.0, abs(b["psi"])), (rows, name, "psi")
            assert a["ks_statistic"] - 1e-15 <= b["ks_statistic"] <= upper + 1e-15, (rows, name, "ks")
            print(f"  {rows:>10,} {name:<7} psi {a['psi']:.6g} (= scipy path {b['psi']:.6g}); KS {b['ks_statistic']:.6f} "
                  f"in [{a['ks_statistic']:.6f}, {upper:.6f}] (bound {a['ks_error_bound']:.2g})")
    ratio = gate[-1]["maxrss_kb"] / gate[0]["maxrss_kb"]
    ok = ratio <= TARGET_RSS_RATIO
    print(f"gate peak RSS {sizes[-1]:,} / {sizes[0]:,} rows: {ratio:.2f}x (target <= {TARGET_RSS_RATIO}x) -> "
          f"{'OK' if ok else 'ABOVE TARGET'}")
    if all(naive):
        print(f"in-memory numpy/scipy peak RSS ratio: {naive[-1]['maxrss_kb'] / naive[0]['maxrss_kb']:.2f}x "
              f"(for context: it holds every row)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
