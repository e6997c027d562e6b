#!/usr/bin/env python
"""Wide tables: a data gate's time must be linear in cells, with a small per-column constant.

Writes tables with the same number of cells in two shapes, a *wide* one (default 100,000 columns x
5 rows) and a *long* one (5 columns x 100,000 rows), as CSV and as Parquet, and times the gates end
to end on each, in this process (the first call of each gate is a warm-up on a small table, so
one-time imports are not timed):

  pii      ``check_pii`` with the example entity set (full scan, nine entity types)
  source   ``check_sources`` with origins, row bounds, duplicate rows over all columns and
           out-of-range over all numeric columns against a reference (the table itself)
  bias     ``check_bias`` reading only its three named columns (label, prediction, sensitive) out
           of all of them: it must not pay for the columns it does not read
  drift    ``check_drift`` with every column as a feature (reference and current tables of the
           same shape)
  prompt   ``check_prompt_injection`` with the default rules over every text column
  redact   ``redact_table`` masking the example entities (the planted e-mails) into a new CSV file,
           then its re-scan

pii, source, prompt and redact read a *text* table: word-like tokens (a planted e-mail in the first cell and every ~1,000) in four
of five columns, integers in the fifth. bias and drift read a *numeric* table: columns ``y``, ``p``,
``sex`` first, then floats, every fifth column a category of 4 values.

Prints seconds per gate, format and shape and the wide/long ratio. Target (issue 12, item 3):
wide/long <= 3x for every gate and format, and the wide table "in seconds". Each time is the least
of ``--repeat`` runs, each on fresh copies of the files (no reader cache survives from one run to
the next).

The *floor* column is what reading the wide input alone costs, before any gate logic, divided by the
same gate's whole long run. Parquet: pyarrow parsing the footer (every reader parses it before the
first value; polars' parse was ~0.7x of pyarrow's), then decoding the columns the gate reads, the
cheapest way found (64 columns per call, no threads: ~6.5 us per column chunk), and for redact
writing the same table back as Parquet (pyarrow's defaults, as the gate writes it). CSV: the fastest
reader at hand, this package's wide reader (pyarrow's takes seconds per file: the ``(pyarrow read)``
row), opening the file and reading the gate's columns as text or typed. A floor above 3x means the
target cannot be met with the readers at hand. For reference the same ratio is printed for pyarrow
alone reading each whole table, and for the Parquet footer alone.

With ``--result`` each gate is timed through what every run does after its check too: the verdict
over its findings and the result document as JSON (bounded: core/result_bounds.py).

Usage::

    python bench/bench_wide.py [--columns 100000] [--rows 5] [--formats csv,parquet]
                               [--gates pii,source,bias,drift] [--result] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_RATIO = 3.0
WORDS = ["alpha", "beta", "gamma", "delta", "order", "review", "pending", "shipped", "item", "note"]


def text_table(columns: int, rows: int, seed: int = 0):
    """``rows`` x ``columns``: column ``i % 5 == 4`` holds integers, the rest text (pii, source)."""
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
            if cell % 997 == 0 or cell == 1:  # cell 1: the warm-up table has one too (e-mail validation set up)
                values.append(f"user{cell}@example.com")
            else:
                values.append(f"{WORDS[(c + r) % len(WORDS)]} {c % 89}-{r}")
        data[f"c{c}"] = pa.array(values, pa.string())
    return pa.table(data)


def numeric_table(columns: int, rows: int, seed: int):
    """``rows`` x ``columns``: ``y``, ``p``, ``sex`` first (bias), then floats, every fifth a category (drift)."""
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


def run_pii(reference: Path, current: Path):
    from airflow_aisec.core.gates.pii import check_pii

    return check_pii(pii_section(), str(current), classification="restricted")


def run_source(reference: Path, current: Path):
    from airflow_aisec.core.gates.source import check_sources

    return check_sources(source_section(current.parent, current), [str(current)])


def run_bias(reference: Path, current: Path):
    from airflow_aisec.core.gates.bias import check_bias
    from airflow_aisec.core.policy.sections.bias import BiasPolicy

    return check_bias(BiasPolicy(label="y", prediction="p", sensitive=["sex"], min_group_size=1,
                                 thresholds={"demographic_parity_difference": {"max": 1.0}}), str(current))


def run_drift(reference: Path, current: Path):
    from airflow_aisec.core.gates.drift import check_drift
    from airflow_aisec.core.policy.sections.drift import DriftPolicy

    return check_drift(DriftPolicy(exclude=["y", "p"], categorical=["sex"], max_unseen_fraction=1.0),
                       str(reference), str(current))


def with_result(gate: str, fn: Callable[[Path, Path], Any]) -> Callable[[Path, Path], None]:
    """``fn`` and what every gate run does after its check: the verdict over its findings and the
    result document as XCom and the audit trail receive it (JSON text)."""
    def run(reference: Path, current: Path) -> None:
        from airflow_aisec.core.policy.loader import parse_policy
        from airflow_aisec.core.verdict import evaluate

        outcome = fn(reference, current)
        evaluate(gate, parse_policy(b"version: 1\nname: bench-result\n"), outcome, started_at="-").model_dump_json()

    return run


def run_prompt(reference: Path, current: Path):
    from airflow_aisec.core.gates.prompt_injection import check_prompt_injection
    from airflow_aisec.core.policy.sections.prompt_injection import PromptInjectionPolicy

    return check_prompt_injection(PromptInjectionPolicy(), str(current))


def run_redact(reference: Path, current: Path):
    from airflow_aisec.core.gates.pii.redact import redact_table

    out = current.parent / "redacted.csv"
    out.unlink(missing_ok=True)
    return redact_table(pii_section(), str(current), str(out), classification="restricted")


#: gate -> (runner, table kind)
GATES: dict[str, tuple[Callable[[Path, Path], Any], str]] = {
    "pii": (run_pii, "text"),
    "source": (run_source, "text"),
    "bias": (run_bias, "numeric"),
    "drift": (run_drift, "numeric"),
    "prompt": (run_prompt, "text"),
    "redact": (run_redact, "text"),
}


def pyarrow_read(reference: Path, current: Path) -> None:
    """The floor under every gate: pyarrow reading the whole current table, nothing else."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if current.suffix == ".csv":
        # A block must hold a whole row: pyarrow's default (1 MiB) is too small for a wide row.
        pacsv.read_csv(current, read_options=pacsv.ReadOptions(block_size=max(1 << 20, 8 * current.stat().st_size)))
    else:
        pq.read_table(current)


def parquet_footer(reference: Path, current: Path) -> None:
    """What reading even one column of a Parquet file costs first: its footer, every column's metadata
    (parsed by pyarrow's reader alone: ``pq.read_metadata`` also builds a per-column table in Python)."""
    from pyarrow._parquet import ParquetReader

    reader = ParquetReader()
    reader.open(str(current), pre_buffer=False)
    reader.close()


#: Not targets: what pyarrow alone costs on the same files (a gate cannot be cheaper than reading them).
FLOORS: dict[str, tuple[Callable[[Path, Path], None], tuple[str, ...]]] = {
    "(pyarrow read)": (pyarrow_read, ("csv", "parquet")),
    "(parquet footer)": (parquet_footer, ("parquet",)),
}


#: Gates that read the reference table too (the others read only the current one).
READS_REFERENCE = {"drift"}


def floor_columns(gate: str, width: int) -> list[int]:
    """Positions of the columns ``gate`` reads of a bench table ``width`` columns wide (its layout:
    :func:`text_table`, :func:`numeric_table`)."""
    if gate in ("pii", "prompt"):
        return [c for c in range(width) if c % 5 != 4]  # the text columns
    if gate == "bias":
        return [0, 1, 2]  # y, p, sex
    if gate == "drift":
        return list(range(2, width))  # every feature: all but y and p
    return list(range(width))  # source and redact: all of them


#: Gates that read their columns as text (no types inferred or converted).
READS_TEXT = {"pii", "prompt", "redact"}


def csv_floor(gate: str) -> Callable[[Path, Path], None]:
    """What the fastest CSV reader at hand pays for what ``gate`` reads of the wide CSV files: this
    package's wide reader (pyarrow's own takes the ``(pyarrow read)`` row's time), opening each file
    (its header, types inferred from its rows unless read as text) and reading the gate's columns,
    as text cells or converted to their types. Nothing else: no digest, no statistics, no output."""
    def read(reference: Path, current: Path) -> None:
        from airflow_aisec.core.io import wide_csv
        from airflow_aisec.core.io.tabular import DEFAULT_BATCH_ROWS, open_dataset

        for path in dict.fromkeys((reference, current) if gate in READS_REFERENCE else (current,)):
            text = gate in READS_TEXT
            dataset = open_dataset(path, "csv", uri=str(path), csv_text=text,
                                   csv_columns=["y", "p", "sex"] if gate == "bias" else None)
            names = dataset.names
            chosen = [names[i] for i in floor_columns(gate, len(names))]
            if text:
                for _ in wide_csv.iter_wide_csv_text(path, names, chosen, DEFAULT_BATCH_ROWS, uri=str(path)):
                    pass
            else:
                for _ in wide_csv.iter_wide_csv_groups(dataset, chosen, DEFAULT_BATCH_ROWS, uri=str(path)):
                    pass

    return read


def read_floor(gate: str, fmt: str = "parquet") -> Callable[[Path, Path], None]:
    """What pyarrow alone pays for what ``gate`` reads (and writes) of the wide Parquet files: each
    file's footer, then its columns decoded 64 at a time without threads; redact also writes the table.
    For CSV: :func:`csv_floor`."""
    if fmt == "csv":
        return csv_floor(gate)

    def read(reference: Path, current: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        from pyarrow._parquet import ParquetReader

        for path in dict.fromkeys((reference, current) if gate in READS_REFERENCE else (current,)):
            reader = ParquetReader()
            reader.open(str(path), pre_buffer=False)
            try:
                chosen = floor_columns(gate, reader.metadata.num_columns)
                blocks = [reader.read_all(column_indices=chosen[lo:lo + 64], use_threads=False)
                          for lo in range(0, len(chosen), 64)]
            finally:
                reader.close()
            if gate == "redact":
                columns = [column for block in blocks for column in block.columns]
                names = [name for block in blocks for name in block.column_names]
                pq.write_table(pa.Table.from_arrays(columns, names=names), path.parent / "floor-out.parquet")

    return read


def fresh_copies(reference: Path, current: Path, into: Path) -> tuple[Path, Path]:
    """Copies of the inputs (new inodes: no reader cache knows them), the same file staying one file."""
    into.mkdir(parents=True)
    copies = {path: into / path.name for path in dict.fromkeys((reference, current))}
    for path, copy in copies.items():
        shutil.copyfile(path, copy)
    return copies[reference], copies[current]


_RUNS = itertools.count()


def timed(fn: Callable[[Path, Path], Any], reference: Path, current: Path, repeat: int,
          scratch: Path) -> tuple[float, float]:
    """The least wall and CPU seconds of ``repeat`` runs, each on fresh copies (on a shared, loaded
    machine the CPU ratio is the steadier one)."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        ref, cur = fresh_copies(reference, current, scratch / f"run{next(_RUNS)}")
        gc.collect()
        started, cpu = time.perf_counter(), time.process_time()
        fn(ref, cur)
        best_wall = min(best_wall, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        shutil.rmtree(ref.parent)
    return best_wall, best_cpu


def _tables(kind: str, columns: int, rows: int) -> dict[str, tuple]:
    """shape -> (reference, current) tables of one kind."""
    if kind == "text":
        shapes = {"wide": (columns, rows), "long": (rows, columns), "warm": (5, 5)}
        return {name: (text_table(c, r),) * 2 for name, (c, r) in shapes.items()}
    shapes = {"wide": (columns, rows), "long": (rows, columns), "warm": (8, 8)}
    return {name: (numeric_table(c, r, 1), numeric_table(c, r, 2)) for name, (c, r) in shapes.items()}


def measure(gate: str, fmt: str, kind: str, data_dir: Path, repeat: int, result: bool) -> dict[str, float]:
    """One row, in this (fresh) process: a warm-up, then the wide and long runs and the read floor."""
    paths = {}
    for name in ("warm", "wide", "long"):
        folder = data_dir / f"{kind}-{name}-{fmt}"
        # pii and source read one file (source: as its own reference).
        reference = folder / f"current.{fmt}" if kind == "text" else folder / f"reference.{fmt}"
        paths[name] = (reference, folder / f"current.{fmt}")
    fn = GATES[gate][0] if gate in GATES else FLOORS[gate][0]
    if result and gate in GATES:
        fn = with_result(gate, fn)
    with tempfile.TemporaryDirectory(prefix="runs-", dir=data_dir) as tmp:
        scratch = Path(tmp)
        fn(*fresh_copies(*paths["warm"], scratch / "warm"))
        wide, wide_cpu = timed(fn, *paths["wide"], repeat, scratch)
        long, long_cpu = timed(fn, *paths["long"], repeat, scratch)
        read_cpu = timed(read_floor(gate, fmt), *paths["wide"], repeat, scratch)[1] if gate in GATES else 0.0
    return {"wide": wide, "wide_cpu": wide_cpu, "long": long, "long_cpu": long_cpu, "read_cpu": read_cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, default=100_000, help="columns of the wide table")
    parser.add_argument("--rows", type=int, default=5, help="rows of the wide table")
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument("--gates", default=",".join(GATES), help=f"comma-separated, of {', '.join(GATES)}")
    parser.add_argument("--result", action="store_true",
                        help="time each gate through its verdict and result document (JSON), not the check alone")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing; the least is printed")
    parser.add_argument("--measure", nargs=3, metavar=("GATE", "FORMAT", "KIND"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    gates = [g for g in args.gates.split(",") if g]
    unknown = sorted(set(gates) - set(GATES))
    if unknown:
        parser.error(f"unknown gate(s) {unknown}; choose from {', '.join(GATES)}")

    if args.measure:
        print(json.dumps(measure(*args.measure, Path(args.data), args.repeat, args.result)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-wide-") as tmp:
        data_dir = Path(tmp)
        print(f"cells per table: {args.columns * args.rows:,} (wide {args.columns:,} cols x {args.rows} rows, "
              f"long {args.rows} cols x {args.columns:,} rows); least of {args.repeat} runs, one process per row")
        print(f"{'gate':16} {'format':8} {'wide s':>9} {'long s':>9} {'ratio':>7}  {'cpu wide':>9} {'cpu long':>9} "
              f"{'ratio':>7}  {'floor':>7}  target <= {TARGET_RATIO:.0f}x")
        worst, reachable = 0.0, 0.0
        for kind in dict.fromkeys(GATES[g][1] for g in gates):
            tables = _tables(kind, args.columns, args.rows)
            for fmt in formats:
                for name, (ref, cur) in tables.items():
                    folder = data_dir / f"{kind}-{name}-{fmt}"
                    folder.mkdir()
                    write(ref, folder / f"reference.{fmt}", fmt)
                    write(cur, folder / f"current.{fmt}", fmt)
                rows = [g for g in gates if GATES[g][1] == kind] + [n for n, (_, fmts) in FLOORS.items() if fmt in fmts]
                for gate in rows:
                    # A process per row: one gate's leftovers (caches, a fragmented heap) do not slow the next.
                    out = subprocess.run([sys.executable, __file__, "--measure", gate, fmt, kind, "--data", tmp,
                                          "--repeat", str(args.repeat), *(["--result"] if args.result else [])],
                                         check=True, capture_output=True, text=True).stdout
                    m = json.loads(out.splitlines()[-1])
                    ratio = m["wide"] / m["long"] if m["long"] > 0 else float("inf")
                    cpu_ratio = m["wide_cpu"] / m["long_cpu"] if m["long_cpu"] > 0 else float("inf")
                    floor, floor_ratio = "", 0.0
                    if gate in GATES:
                        floor_ratio = m["read_cpu"] / m["long_cpu"] if m["long_cpu"] > 0 else float("inf")
                        floor = f"{floor_ratio:6.2f}x"
                    if gate in GATES:
                        worst = max(worst, cpu_ratio)
                        if floor_ratio <= TARGET_RATIO:
                            reachable = max(reachable, cpu_ratio)
                    print(f"{gate:16} {fmt:8} {m['wide']:9.2f} {m['long']:9.2f} {ratio:6.2f}x  {m['wide_cpu']:9.2f} "
                          f"{m['long_cpu']:9.2f} {cpu_ratio:6.2f}x  {floor:>7}", flush=True)
        print(f"worst cpu ratio {worst:.2f}x ({'OK' if worst <= TARGET_RATIO else 'ABOVE TARGET'}); "
              f"worst where the floor allows it: {reachable:.2f}x "
              f"({'OK' if reachable <= TARGET_RATIO else 'ABOVE TARGET'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
