"""The ``aisec`` command line: the same core as the operators, without Airflow.

``build_parser`` collects the verbs of every module in :mod:`airflow_aisec.cli.commands`; exit codes
are listed in :mod:`airflow_aisec.cli.args`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from airflow_aisec import __version__
from airflow_aisec.cli.args import EXIT_INTERNAL, EXIT_UNREACHABLE, CliError
from airflow_aisec.exceptions import AisecError, ServiceUnavailableError

#: Modules under ``airflow_aisec.cli.commands`` that each add verbs through ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "policy",
    "audit",
    "source",
    "pii",
    "model",
    "secrets",
    "bias",
    "drift",
    "lint",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aisec", description="Security gates for AI/ML pipelines.")
    parser.add_argument("--version", action="version", version=f"aisec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"airflow_aisec.cli.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aisec`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], Any] = args.handler
    try:
        return int(handler(args) or 0)
    except CliError as exc:
        print(f"aisec: {exc}", file=sys.stderr)
        return exc.code
    except AisecError as exc:
        print(f"aisec: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE if isinstance(exc, ServiceUnavailableError) else exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug must never look like a pass
        print(f"aisec: internal error: {type(exc).__name__}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
