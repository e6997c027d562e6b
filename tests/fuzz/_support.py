"""What every fuzz test shares: running the CLI in-process, the contract checks, hypothesis settings."""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[2]
STRICT = REPO / "policies" / "strict.yaml"

#: Exit codes the CLI may return: 0 pass/warn, 1 violation, 2 invalid input, 3 unreachable. 4 is a bug.
ALLOWED_CODES = {0, 1, 2, 3}


def fuzz_settings(max_examples: int) -> settings:
    """Seeded (derandomized), no example database, no per-example deadline (the suite has a timeout)."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )


@dataclass(frozen=True)
class CliRun:
    argv: tuple[str, ...]
    code: int
    out: str
    err: str

    def describe(self) -> str:
        return f"aisec {' '.join(self.argv)} -> {self.code}\nstdout: {self.out[-1500:]}\nstderr: {self.err[-1500:]}"


def run_cli(*argv: str) -> CliRun:
    """Run ``aisec *argv`` in this process, capturing stdout, stderr and log records."""
    from airflow_aisec.cli import main

    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:  # argparse usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        root.removeHandler(handler)
    return CliRun(tuple(argv), code, out.getvalue(), err.getvalue())


def check_contract(run: CliRun, *, violation_planted: bool = False) -> None:
    """The CLI contract for any input: a documented exit code, no traceback, no pass on a violation."""
    assert run.code in ALLOWED_CODES, run.describe()
    assert "Traceback (most recent call last)" not in run.out + run.err, run.describe()
    assert "internal error" not in run.err, run.describe()
    if violation_planted:
        assert run.code != 0, "planted violation passed:\n" + run.describe()

