"""The ``aisec`` command line: the same core as the operators, without Airflow.

Start-up is part of every gate run (a DAG may start dozens of ``aisec`` processes), so ``main``
imports only the module of the command noun it was given: the other nouns are listed from
:data:`COMMANDS` (for ``--help`` and for "invalid choice") without importing anything. Exit codes
are listed in :mod:`airflow_aisec.cli.args`.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from airflow_aisec import __version__
from airflow_aisec.cli.args import EXIT_INTERNAL, EXIT_UNREACHABLE, CliError
from airflow_aisec.exceptions import AisecError, ServiceUnavailableError

#: Every command noun, in ``--help`` order: its module under ``airflow_aisec.cli.commands`` (which adds
#: the verbs through ``register(subparsers)``) has the same name; the text is its ``--help`` line and
#: must equal the help the module registers (tests/commands/test_cli_startup.py checks it).
COMMANDS: dict[str, str] = {
    "policy": "validate policies, print the policy JSON Schema",
    "audit": "verify or show the tamper-evident audit trail",
    "source": "validate dataset sources (origin, pins, schema, GX, poisoning)",
    "pii": "classify PII in tables, write redacted copies",
    "model": "sign, verify and scan ML models",
    "secrets": "check Vault secret grants",
    "bias": "fairness metrics per group against the policy (bias gate)",
    "drift": "compare current data with a reference (drift gate)",
    "lint": "check DAG files against the policy's platform rules (no running Airflow needed)",
    "prompt": "prompt-injection payloads in training / RAG / prompt data",
    "llm": "red-team a candidate model before it deploys",
    "endpoint": "probe a model serving endpoint before promotion (endpoint gate)",
    "storage": "S3 bucket posture for training data and models (storage gate)",
}
COMMAND_MODULES: tuple[str, ...] = tuple(COMMANDS)

#: Exit status when stdout is closed early (``aisec audit show | head``): what a shell reports for SIGPIPE.
EXIT_BROKEN_PIPE = 141


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``aisec`` parser.

    Args:
        command: Import only this noun's module (the others are listed, not importable verbs);
            ``""`` imports none (enough for ``--help`` and ``--version``); None imports every one.
    """
    parser = argparse.ArgumentParser(prog="aisec", description="Security gates for AI/ML pipelines.")
    parser.add_argument("--version", action="version", version=f"aisec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, text in COMMANDS.items():
        if command is None or name == command:
            importlib.import_module(f"airflow_aisec.cli.commands.{name}").register(sub)
        else:
            sub.add_parser(name, help=text, add_help=False)
    return parser


def _command_of(argv: Sequence[str]) -> str:
    """The command noun in ``argv`` ("" when there is none or it is unknown)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else ""
        if arg in ("-h", "--help", "--version"):
            return ""
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aisec`` console script (``argv`` None: the process exits when this returns)."""
    if argv is not None:
        return _main(list(argv))
    # Validation of policies and results runs no third-party code: pydantic plugins are off in the aisec
    # process unless the environment says otherwise (PYDANTIC_DISABLE_PLUGINS set, "" to allow them all).
    # It also spares pydantic's scan of every installed package's entry points (~15 ms per process).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        return _main(sys.argv[1:])
    finally:
        # The process ends next: the collector's full passes at interpreter shutdown would walk every object
        # a gate loaded (pydantic schemas, pyarrow, Presidio: ~50 ms CPU, a tenth of a small scan) for memory
        # the OS reclaims anyway. Objects are still released (and finalized) by reference count as the modules
        # are torn down; our outputs are closed before this point (with-blocks), never left to the collector.
        gc.freeze()


def _main(argv: list[str]) -> int:
    parser = build_parser(_command_of(argv))
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
    except BrokenPipeError:
        # The reader went away: not an error of ours, and Python must not complain at exit either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # noqa: BLE001 - a bug must never look like a pass
        print(f"aisec: internal error: {type(exc).__name__}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
