"""Start-up cost of the ``aisec`` process, per verb, against bare Python in the same venv.

Each run is a fresh process (start-up is what is measured); the commands alternate so that
machine noise hits all alike. Wall time and CPU time (user + system, from ``wait4``) are
medians over ``--runs`` runs, after one warm-up run of each (OS file cache).

Baseline: ``python -c pass`` with the venv's interpreter. Candidates:

  aisec --version                                   the CLI package alone
  aisec policy validate policies/strict.yaml        the policy loader and every section's schema
  aisec pii scan ONE_ROW.csv --policy strict.yaml   a whole gate run on a 1-row table
  python -c 'import pyarrow'                        for reference: the floor every data gate stands on
  python -c 'pyarrow.array([1])'                    for reference: pyarrow's first conversion imports pandas

Target (issue 12, item 7): ``policy validate`` and ``pii scan`` at most 0.4 s (wall) over bare Python.
CPU time is printed too: on a shared machine wall time mostly measures the other processes.

Bytecode: an installed package has its ``.pyc`` files (pip compiles them at install), so the processes run
with a bytecode cache in a temporary ``PYTHONPYCACHEPREFIX`` that the warm-up run fills, even where the
environment sets ``PYTHONDONTWRITEBYTECODE`` (then every import would compile its source: seconds for
pyarrow and pydantic, not ours). ``--no-bytecode-cache`` measures that case.

Usage: python bench/bench_cli_startup.py [--runs N] [--no-bytecode-cache]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.4
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def child_env(pycache: str | None) -> dict[str, str]:
    """The environment of the measured processes: with a bytecode cache in ``pycache`` unless None."""
    env = dict(os.environ)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process; refuses a failing command."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            cwd=REPO, env=env)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="compile every imported module from source, as with PYTHONDONTWRITEBYTECODE")
    args = parser.parse_args()
    aisec = str(BIN / "aisec")
    strict = str(REPO / "policies" / "strict.yaml")
    with tempfile.TemporaryDirectory(prefix="aisec-bench-") as tmp:
        env = child_env(None if args.no_bytecode_cache else str(Path(tmp) / "pycache"))
        data = Path(tmp) / "one_row.csv"
        data.write_text("id,amount,city\n1,9.5,Lyon\n")
        commands = {
            "python -c pass (baseline)": [sys.executable, "-c", "pass"],
            "aisec --version": [aisec, "--version"],
            "aisec policy validate strict.yaml": [aisec, "policy", "validate", strict],
            "aisec pii scan 1-row.csv": [aisec, "pii", "scan", str(data), "--policy", strict],
            # Not targets: the floors under a data gate. pyarrow itself, and pyarrow once a Python value
            # crosses into Arrow (its pandas shim imports pandas; `aisec pii` tells it not to: cli/_arrow.py).
            "python -c 'import pyarrow'": [sys.executable, "-c", "import pyarrow"],
            "python -c 'pyarrow.array([1])'": [sys.executable, "-c", "import pyarrow; pyarrow.array([1])"],
        }
        for argv in commands.values():
            run_once(argv, env)  # warm-up: OS file cache, and the bytecode cache
        wall: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                w, c = run_once(argv, env)
                wall[name].append(w)
                cpu[name].append(c)
    base_name = next(iter(commands))
    base_wall = statistics.median(wall[base_name])
    base_cpu = statistics.median(cpu[base_name])
    cache = "none (every module compiled from source)" if args.no_bytecode_cache else "warm (as installed)"
    print(f"median of {args.runs} runs each (fresh process per run), baseline = {base_name}; bytecode cache: {cache}")
    print(f"{'command':<36} {'wall s':>8} {'cpu s':>8} {'wall over':>10} {'cpu over':>9} {'ratio':>7}")
    ok = True
    for name in commands:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        over = w - base_wall
        print(f"{name:<36} {w:8.3f} {c:8.3f} {over:+10.3f} {c - base_cpu:+9.3f} {w / base_wall:6.1f}x")
        if name.startswith(("aisec policy", "aisec pii")):
            ok &= over <= TARGET_S
    print(f"target: policy validate and pii scan <= {TARGET_S} s (wall) over bare Python; on a loaded machine "
          f"read the cpu column (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print("RESULT:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
