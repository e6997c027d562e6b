#!/usr/bin/env python
"""Wide tables: a data gate's time must be linear in cells, with a small per-column constant.

Writes two tables with the same number of cells, a *wide* one (default 100,000 columns x 5 rows)
and a *long* one (5 columns x 100,000 rows), as CSV and as Parquet, and times the gates end to end
on each, in this process (the first call of each gate is a warm-up on a small table, so one-time
imports are not timed):

  pii scan       ``check_pii`` with the example entity set (full scan, nine entity types)
  source check   ``check_sources`` with origins, row bounds, duplicate rows over all columns and
                 out-of-range over all numeric columns against a reference (the wide table itself)

Cells are text (word-like tokens, a planted e-mail every ~1,000 cells) in four of five columns and
integers in the fifth, in both shapes. Prints seconds per gate and shape and the wide/long ratio.

Target (issue 12, item 3): wide/long <= 3x for every gate and format.

Usage::

    python bench/bench_wide.py [--columns 100000] [--rows 5] [--formats csv,parquet] [--gates pii,source]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 3.0
WORDS = ["alpha", "beta", "gamma", "delta", "order", "review", "pending", "shipped", "item", "note"]


def make_table(columns: int, rows: int):
    """A ``rows`` x ``columns`` table; column ``i % 5 == 4`` holds integers, the rest text."""
    import pyarrow as pa

    data = {}
    cell = 0
    for c in range(columns):
        if c % 5 == 4:
            data[f"c{c}"] = pa.array([(c * 31 + r * 7) % 1000 for r in range(rows)], pa.int64())
            cell += rows
            continue
        values = []
        for r in range(rows):
            cell += 1
            if cell % 997 == 0:
                values.append(f"user{cell}@example.com")
            else:
                values.append(f"{WORDS[(c + r) % len(WORDS)]} {c % 89}-{r}")
        data[f"c{c}"] = pa.array(values, pa.string())
    return pa.table(data)


def write(table, path: Path, fmt: str) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt == "csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)


def pii_section():
    from airflow_aisec.core.policy.loader import parse_policy

    text = """
version: 1
name: bench-wide-pii
pii:
  entities: [EMAIL_ADDRESS, PHONE_NUMBER, US_SSN, CREDIT_CARD, IBAN_CODE, IP_ADDRESS, US_PASSPORT,
             US_BANK_NUMBER, URL]
  scan: {mode: full}
"""
    return parse_policy(text.encode()).section("pii")


def source_section(data_dir: Path, reference: Path):
    from airflow_aisec.core.policy.loader import parse_policy

    text = f"""
version: 1
name: bench-wide-source
source:
  origins: ["{data_dir}/*"]
  rows: {{min: 1}}
  poisoning:
    reference: {reference}
    duplicates: {{max_rate: 1.0}}
    out_of_range: {{max_rate: 1.0, margin: 0.5}}
"""
    return parse_policy(text.encode()).section("source")


def run_pii(path: Path, data_dir: Path) -> None:
    from airflow_aisec.core.gates.pii import check_pii

    check_pii(pii_section(), str(path), classification="restricted")


def run_source(path: Path, data_dir: Path) -> None:
    from airflow_aisec.core.gates.source import check_sources

    check_sources(source_section(data_dir, path), [str(path)])


GATES = {"pii": run_pii, "source": run_source}


def timed(fn, path: Path, data_dir: Path) -> float:
    gc.collect()
    started = time.perf_counter()
    fn(path, data_dir)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, default=100_000, help="columns of the wide table")
    parser.add_argument("--rows", type=int, default=5, help="rows of the wide table")
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument("--gates", default="pii,source")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    gates = [g for g in args.gates.split(",") if g]

    with tempfile.TemporaryDirectory(prefix="bench-wide-") as tmp:
        data_dir = Path(tmp)
        shapes = {"wide": make_table(args.columns, args.rows), "long": make_table(args.rows, args.columns)}
        small = make_table(5, 5)
        print(f"cells per table: {args.columns * args.rows:,} (wide {args.columns:,} cols x {args.rows} rows, "
              f"long {args.rows} cols x {args.columns:,} rows)")
        print(f"{'gate':8} {'format':8} {'wide s':>9} {'long s':>9} {'ratio':>7}  target <= {TARGET_RATIO:.0f}x")
        worst = 0.0
        for fmt in formats:
            paths = {}
            for name, table in {**shapes, "warm": small}.items():
                paths[name] = data_dir / f"{name}.{fmt}"
                write(table, paths[name], fmt)
            for gate in gates:
                GATES[gate](paths["warm"], data_dir)
                wide = timed(GATES[gate], paths["wide"], data_dir)
                long = timed(GATES[gate], paths["long"], data_dir)
                ratio = wide / long if long > 0 else float("inf")
                worst = max(worst, ratio)
                print(f"{gate:8} {fmt:8} {wide:9.2f} {long:9.2f} {ratio:6.2f}x", flush=True)
        print(f"worst ratio {worst:.2f}x ({'OK' if worst <= TARGET_RATIO else 'ABOVE TARGET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
