#!/usr/bin/env python
"""Wide tables for the bias and drift gates: time linear in cells, small per-column constant.

Same protocol as ``bench/bench_wide.py`` (which covers pii and source): a *wide* table (default
100,000 columns x 5 rows) and a *long* one (5 columns x 100,000 rows) with the same cells, as CSV
and Parquet, gates timed end to end in this process after a warm-up on a small table.

  drift check   ``check_drift`` with every column as a feature (reference and current tables of
                the same shape): four of five columns are floats, the fifth a category of 4 values
  bias check    ``check_bias`` reading only its three named columns (label, prediction, sensitive)
                out of all of them: it must not pay for the columns it does not read

Prints seconds per gate and shape and the wide/long ratio. Target (issue 12, item 3): wide/long
<= 3x; and the wide drift check "in seconds". A large share of the wide time is pyarrow itself
(opening a 100,000-column file); the gate's own work is vectorized across features
(``core/gates/drift/_block.py``).

Usage::

    python bench/bench_wide_bias_drift.py [--columns 100000] [--rows 5] [--formats csv,parquet]
                                          [--gates drift,bias]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 3.0


def make_table(columns: int, rows: int, seed: int):
    """``rows`` x ``columns``: columns ``y``, ``p``, ``sex`` first (bias), then floats, every fifth a category."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    data = {
        "y": pa.array(rng.integers(0, 2, rows)),
        "p": pa.array(rng.integers(0, 2, rows)),
        "sex": pa.array(np.array(["F", "M"], dtype=object)[np.arange(rows) % 2]),
    }
    floats = rng.normal(size=(max(columns - 3, 0), rows))
    cats = np.array(["north", "south", "east", "west"], dtype=object)
    for c in range(columns - 3):
        data[f"c{c}"] = pa.array(cats[rng.integers(0, 4, rows)]) if c % 5 == 4 else pa.array(floats[c])
    return pa.table(data)


def write(table, path: Path, fmt: str) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)


def run_drift(reference: Path, current: Path) -> None:
    """The drift gate over every column (the function a combined wide bench would call)."""
    from airflow_aisec.core.gates.drift import check_drift
    from airflow_aisec.core.policy.sections.drift import DriftPolicy

    check_drift(DriftPolicy(exclude=["y", "p"], categorical=["sex"], max_unseen_fraction=1.0), str(reference),
                str(current))


def run_bias(reference: Path, current: Path) -> None:
    """The bias gate on three named columns of a wide table."""
    from airflow_aisec.core.gates.bias import check_bias
    from airflow_aisec.core.policy.sections.bias import BiasPolicy

    check_bias(BiasPolicy(label="y", prediction="p", sensitive=["sex"], min_group_size=1,
                          thresholds={"demographic_parity_difference": {"max": 1.0}}), str(current))


GATES = {"drift": run_drift, "bias": run_bias}


def timed(fn, reference: Path, current: Path) -> float:
    gc.collect()
    started = time.perf_counter()
    fn(reference, current)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, default=100_000, help="columns of the wide table")
    parser.add_argument("--rows", type=int, default=5, help="rows of the wide table")
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument("--gates", default="drift,bias")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    gates = [g for g in args.gates.split(",") if g]

    with tempfile.TemporaryDirectory(prefix="bench-wide-bd-") as tmp:
        data_dir = Path(tmp)
        shapes = {
            "wide": (make_table(args.columns, args.rows, 1), make_table(args.columns, args.rows, 2)),
            "long": (make_table(args.rows, args.columns, 1), make_table(args.rows, args.columns, 2)),
            "warm": (make_table(8, 8, 1), make_table(8, 8, 2)),
        }
        print(f"cells per table: {args.columns * args.rows:,} (wide {args.columns:,} cols x {args.rows} rows, "
              f"long {args.rows} cols x {args.columns:,} rows)")
        print(f"{'gate':8} {'format':8} {'wide s':>9} {'long s':>9} {'ratio':>7}  target <= {TARGET_RATIO:.0f}x")
        worst = 0.0
        for fmt in formats:
            paths = {}
            for name, (ref, cur) in shapes.items():
                paths[name] = (data_dir / f"{name}-ref.{fmt}", data_dir / f"{name}-cur.{fmt}")
                write(ref, paths[name][0], fmt)
                write(cur, paths[name][1], fmt)
            for gate in gates:
                GATES[gate](*paths["warm"])
                wide = timed(GATES[gate], *paths["wide"])
                long = timed(GATES[gate], *paths["long"])
                ratio = wide / long if long > 0 else float("inf")
                worst = max(worst, ratio)
                print(f"{gate:8} {fmt:8} {wide:9.2f} {long:9.2f} {ratio:6.2f}x", flush=True)
        print(f"worst ratio {worst:.2f}x ({'OK' if worst <= TARGET_RATIO else 'ABOVE TARGET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
