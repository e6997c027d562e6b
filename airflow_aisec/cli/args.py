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

#: Output formats of every gate verb (``--format``).
FORMATS = ("text", "json", "sarif")

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
    parser: argparse.ArgumentParser,
    *,
    policy_required: bool = True,
    policy_help: str = "policy YAML file",
    input_formats: tuple[str, ...] = (),
) -> None:
    """Options every gate verb takes: ``--policy``, ``--baseline``, ``--format`` (``--json``), ``--evidence``.

    ``input_formats``: values ``--format`` accepted before it chose the output, stored as ``input_format``
    (``aisec pii scan --format csv`` keeps working next to ``--input-format csv``).
    """
    parser.add_argument("--policy", required=policy_required, help=policy_help)
    parser.add_argument(
        "--baseline", metavar="PATH", default=os.environ.get(BASELINE_ENV) or None,
        help="platform policy floor (file or s3://), evaluated as well; the stricter outcome wins rule by "
        f"rule (default: ${BASELINE_ENV})",
    )
    add_format_arguments(parser, input_formats=input_formats)
    parser.add_argument("--evidence", metavar="LOCATION", help="append the result to this audit trail")


class _FormatAction(argparse.Action):
    """``--format``: an output format, or (for a verb that had it) an input format kept for compatibility."""

    def __init__(self, *args: Any, input_formats: tuple[str, ...] = (), **kwargs: Any):
        self.input_formats = input_formats
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if values in self.input_formats:
            namespace.input_format = values
        else:
            setattr(namespace, self.dest, values)


def add_format_arguments(
    parser: argparse.ArgumentParser,
    *,
    input_formats: tuple[str, ...] = (),
    json_help: str = "print the result contract as JSON (= --format json)",
) -> None:
    """``--format {text,json,sarif}`` and ``--json`` (the same as ``--format json``)."""
    group = parser.add_mutually_exclusive_group()
    legacy = f"; {', '.join(input_formats)}: the same as --input-format" if input_formats else ""
    group.add_argument("--format", choices=FORMATS + tuple(input_formats), default=None, action=_FormatAction,
                       input_formats=tuple(input_formats),
                       help=f"output: text (default), json (the result contract) or sarif (SARIF 2.1.0 log){legacy}")
    group.add_argument("--json", action="store_true", help=json_help)


def output_format(args: argparse.Namespace) -> str:
    """The output format a verb was asked for: ``--format``, else ``json`` for ``--json``, else ``text``."""
    fmt = getattr(args, "format", None)
    if fmt:
        return fmt
    return "json" if getattr(args, "json", False) else "text"


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


#: Fail fast on a dead endpoint instead of retrying for minutes (the CLI is interactive).
_INTERACTIVE_S3_CONFIG = {"retries": {"max_attempts": 2, "mode": "standard"}, "connect_timeout": 5, "read_timeout": 60}


def interactive_s3_client(endpoint_url: str | None) -> Any:
    """An S3 client for ``--endpoint-url`` (default: the AWS environment) that gives up quickly."""
    from botocore.config import Config

    from airflow_aisec.core.io.storage import make_s3_client

    return make_s3_client(endpoint_url=endpoint_url, config=Config(**_INTERACTIVE_S3_CONFIG))


def add_check_verb(
    sub: argparse._SubParsersAction,
    name: str,
    noun_help: str,
    *,
    help: str,
    description: str,
    inputs: list[tuple[str, str, str]],
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """``aisec NAME check INPUT... --policy P ...``: a gate noun whose one verb is ``check``.

    ``inputs``: the positional arguments as ``(dest, metavar, help)``; the common gate arguments follow
    them. Returns the verb's parser, for its own options.
    """
    check = add_verbs(sub, name, noun_help).add_parser("check", help=help, description=description)
    for dest, metavar, input_help in inputs:
        check.add_argument(dest, metavar=metavar, help=input_help)
    add_gate_arguments(check)
    check.set_defaults(handler=handler)
    return check


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


def print_result(
    result: GateResult,
    *,
    as_json: bool = False,
    fmt: str | None = None,
    stream=None,
    evidence: dict[str, Any] | None = None,
    exit_code: int | None = None,
    target: str | None = None,
) -> None:
    """Print a result on stdout: the JSON contract, a SARIF 2.1.0 log, or a human-readable summary.

    An error's message is not part of the summary: :func:`run_gate_command` prints it once, on
    stderr, as every other error of the CLI (``aisec: <message>``).

    Args:
        result: The gate result.
        as_json: Same as ``fmt="json"`` (kept for callers of the earlier signature).
        fmt: ``text``, ``json`` or ``sarif``.
        stream: Where to write (default stdout).
        evidence: The audit-trail record the result went to (SARIF ``properties.evidence``).
        exit_code: The exit code the CLI ends with (SARIF ``invocations[0].exitCode``).
        target: What the verb was asked to check (SARIF artifact of a result that names no input).
    """
    stream = stream or sys.stdout
    fmt = fmt or ("json" if as_json else "text")
    if fmt == "json":
        # pydantic's encoder: the same document as json.dumps(result.to_dict(), indent=2), up to float
        # spelling (0.00001 for 1e-05), ~8x faster for a wide table's 100,000s of findings.
        stream.write(result.model_dump_json(indent=2, ensure_ascii=True) + "\n")
        return
    if fmt == "sarif":
        from airflow_aisec.core.sarif import target_of, to_sarif

        # One write: json.dump writes each token on its own.
        stream.write(json.dumps(to_sarif(result.to_dict(), evidence=evidence, exit_code=exit_code,
                                         target=target_of(target)), indent=2) + "\n")
        return
    policy = f"{result.policy.name} ({result.policy.sha256[:12]})" if result.policy else "-"
    if result.baseline:
        policy += f"  baseline: {result.baseline.name} ({result.baseline.sha256[:12]})"
    stream.write(f"gate: {result.gate}  verdict: {str(result.verdict).upper()}  policy: {policy}\n")
    for f in result.findings:
        flag = " (waived)" if f.waived else ""
        count = f" count={f.count}" if f.count is not None else ""
        stream.write(f"  {f.enforcement:<7} {f.severity:<8} [{f.rule}]{count} {f.message}{flag}\n")
    for o in result.findings_omitted:
        flag = " (waived)" if o.waived else ""
        stream.write(f"  {o.enforcement or '-':<7} {o.severity:<8} [{o.rule}] and {o.findings} more finding(s) "
                     f"not listed{flag}\n")
    for r in result.reports:
        stream.write(f"  report: {r.uri}\n")


def _target(args: argparse.Namespace) -> str | None:
    """The first location a verb was given (what a SARIF result without inputs points at)."""
    for name in ("data", "model", "url", "uri", "location", "current", "endpoint", "dag_folder"):
        value = getattr(args, name, None)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str) and value:
            return value
    return None


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
        args: The verb's arguments: ``policy``, and ``format`` / ``json`` / ``evidence`` if it has them.
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
    fmt = output_format(args)
    code = exit_code_for(run)
    # The evidence record is written first so a SARIF log can name its digest.
    ref = evidence_error = None
    if getattr(args, "evidence", None):
        from airflow_aisec.core.evidence import open_evidence_store

        try:
            ref = open_evidence_store(args.evidence).append(result.to_dict())
        except AisecError as exc:
            evidence_error = exc
    if evidence_error is not None:
        exit_code = EXIT_UNREACHABLE if isinstance(evidence_error, ServiceUnavailableError) else evidence_error.exit_code
    else:
        exit_code = code
    print_result(result, fmt=fmt, evidence=ref.to_dict() if ref else None, exit_code=exit_code,
                 target=_target(args))
    if result.verdict == Verdict.ERROR.value and result.error is not None:
        # The one line of an error (stdout holds the verdict line, or the JSON with the same message).
        print(f"aisec: {result.error.message}", file=sys.stderr)
    elif details is not None and fmt == "text":
        details(result)
    if evidence_error is not None:
        print(f"aisec: could not record evidence: {evidence_error}", file=sys.stderr)
    elif ref is not None:
        print(f"evidence: {ref.location} #{ref.seq} {ref.sha256}", file=sys.stderr)
    return exit_code
