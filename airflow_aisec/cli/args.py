"""What every ``aisec`` verb shares: exit codes, ``CliError``, the common arguments, printing a result
and running a gate (:func:`run_gate_command`). Command modules import from here, never from ``main``.

Exit codes, for every verb:
    0  pass or warn
    1  policy violation (verdict ``fail``), or a broken audit chain
    2  invalid input or configuration (one line naming the file and the field)
    3  a required service (Vault, S3) is unreachable
    4  unexpected internal error (a bug: never a pass)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_aisec.exceptions import AisecError, ServiceUnavailableError

if TYPE_CHECKING:  # the runner is imported when a gate runs: `aisec --help` and `policy` need none of it
    from airflow_aisec.core.gate import GateRun
    from airflow_aisec.core.policy import LoadedPolicy
    from airflow_aisec.core.result import CheckOutcome, GateResult

#: Environment variable giving every gate verb's ``--baseline`` default.
BASELINE_ENV = "AISEC_BASELINE_POLICY"

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_INVALID = 2
EXIT_UNREACHABLE = 3
EXIT_INTERNAL = 4

class CliError(Exception):
    """Raised by a verb to end with a message and an exit code."""

    def __init__(self, message: str, code: int = EXIT_INVALID):
        super().__init__(message)
        self.code = code


def add_verbs(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """Add the command ``aisec NAME VERB ...``; returns the sub-parsers to add its verbs to."""
    parser = sub.add_parser(name, help=help)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    return verbs


def add_gate_arguments(
    parser: argparse.ArgumentParser, *, policy_required: bool = True, policy_help: str = "policy YAML file"
) -> None:
    """Options every gate verb takes: ``--policy``, ``--baseline``, ``--json``, ``--evidence``."""
    parser.add_argument("--policy", required=policy_required, help=policy_help)
    parser.add_argument(
        "--baseline", metavar="PATH", default=os.environ.get(BASELINE_ENV) or None,
        help="platform policy floor (file or s3://), evaluated as well; the stricter outcome wins rule by "
        f"rule (default: ${BASELINE_ENV})",
    )
    parser.add_argument("--json", action="store_true", help="print the result contract as JSON")
    parser.add_argument("--evidence", metavar="LOCATION", help="append the result to this audit trail")


def load_baseline_arg(args: argparse.Namespace) -> LoadedPolicy | None:
    """The ``--baseline`` policy (or ``$AISEC_BASELINE_POLICY``), None without one.

    Raises:
        PolicyError: unreadable or invalid (the gate ends in ``error``, exit 2).
    """
    location = getattr(args, "baseline", None)
    if not location:
        return None
    from airflow_aisec.core.policy import load_pinned

    return load_pinned(location, s3_client=endpoint_s3_client(getattr(args, "endpoint_url", None), location))


def endpoint_s3_client(endpoint_url: str | None, *uris: str | None) -> Any:
    """An S3 client for ``--endpoint-url`` when one of ``uris`` is ``s3://``, else None (without
    ``--endpoint-url`` the core builds its own client from the AWS environment when it needs one)."""
    if not endpoint_url:
        return None
    from airflow_aisec.core.io.storage import make_s3_client, s3_client_if_needed

    return s3_client_if_needed(*uris, factory=lambda: make_s3_client(endpoint_url))


def exit_code_for(run: GateRun) -> int:
    from airflow_aisec.core.result import Verdict

    verdict = run.result.verdict
    if verdict in (Verdict.PASS.value, Verdict.WARN.value):
        return EXIT_OK
    if verdict == Verdict.FAIL.value:
        return EXIT_VIOLATION
    exc = run.exception
    if isinstance(exc, ServiceUnavailableError):
        return EXIT_UNREACHABLE
    if isinstance(exc, AisecError):
        return exc.exit_code
    return EXIT_INTERNAL


def print_result(result: GateResult, *, as_json: bool, stream=None) -> None:
    """Print a result on stdout: the JSON contract, or a human-readable summary.

    An error's message is not part of the summary: :func:`run_gate_command` prints it once, on
    stderr, as every other error of the CLI (``aisec: <message>``).
    """
    stream = stream or sys.stdout
    if as_json:
        json.dump(result.to_dict(), stream, indent=2, sort_keys=False)
        stream.write("\n")
        return
    policy = f"{result.policy.name} ({result.policy.sha256[:12]})" if result.policy else "-"
    if result.baseline:
        policy += f"  baseline: {result.baseline.name} ({result.baseline.sha256[:12]})"
    stream.write(f"gate: {result.gate}  verdict: {str(result.verdict).upper()}  policy: {policy}\n")
    for f in result.findings:
        flag = " (waived)" if f.waived else ""
        count = f" count={f.count}" if f.count is not None else ""
        stream.write(f"  {f.enforcement:<7} {f.severity:<8} [{f.rule}]{count} {f.message}{flag}\n")
    for r in result.reports:
        stream.write(f"  report: {r.uri}\n")


def run_gate_command(
    args: argparse.Namespace,
    gate: str,
    check: Callable[[LoadedPolicy], CheckOutcome],
    *,
    load: Callable[[], LoadedPolicy] | None = None,
    details: Callable[[GateResult], None] | None = None,
) -> int:
    """Load the policy, run a core check, print and record the result; return the exit code.

    Args:
        args: The verb's arguments: ``policy``, and ``json`` / ``evidence`` if it has them.
        gate: Gate name, also the policy section the check needs.
        check: The core check, given the loaded policy.
        load: Loads the policy instead of ``load_policy(args.policy)``.
        details: Prints the verb's own lines after a human-readable result that is not an error.

    Returns:
        The exit code (see the module docstring).
    """
    from airflow_aisec.core.gate import run_gate
    from airflow_aisec.core.policy import load_policy
    from airflow_aisec.core.result import Verdict

    run = run_gate(gate, load or (lambda: load_policy(args.policy)), check, baseline=lambda: load_baseline_arg(args))
    result = run.result
    as_json = getattr(args, "json", False)
    print_result(result, as_json=as_json)
    if result.verdict == Verdict.ERROR.value and result.error is not None:
        # The one line of an error (stdout holds the verdict line, or the JSON with the same message).
        print(f"aisec: {result.error.message}", file=sys.stderr)
    elif details is not None and not as_json:
        details(result)
    if getattr(args, "evidence", None):
        from airflow_aisec.core.evidence import open_evidence_store

        try:
            ref = open_evidence_store(args.evidence).append(result.to_dict())
        except AisecError as exc:
            print(f"aisec: could not record evidence: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE if isinstance(exc, ServiceUnavailableError) else exc.exit_code
        print(f"evidence: {ref.location} #{ref.seq} {ref.sha256}", file=sys.stderr)
    return exit_code_for(run)
