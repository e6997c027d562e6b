"""``aisec endpoint check URL --policy P [--ca-bundle PEM] [--token-env VAR]``."""

from __future__ import annotations

import argparse
import os

from airflow_aisec.cli.args import CliError, add_check_verb, run_gate_command


def _token(var: str | None) -> str | None:
    """The token from the environment variable ``var`` (never from the command line, where ``ps`` shows it)."""
    if not var:
        return None
    value = os.environ.get(var)
    if not value:
        raise CliError(f"--token-env: environment variable {var} is not set or empty")
    return value


def _check(args: argparse.Namespace) -> int:
    from airflow_aisec.core.gates.endpoint import check_endpoint, policy_base_dir

    token = _token(args.token_env)
    return run_gate_command(
        args,
        "endpoint",
        lambda loaded: check_endpoint(loaded.section("endpoint"), args.url, token=token, ca_bundle=args.ca_bundle,
                                      base_dir=policy_base_dir(loaded.source)),
    )


def register(sub: argparse._SubParsersAction) -> None:
    check = add_check_verb(
        sub, "endpoint", "probe a model serving endpoint before promotion (endpoint gate)",
        help="probe a serving endpoint: TLS, auth, OpenAPI security, exposed paths, CORS, rate and body limits",
        description="Probe URL (a bounded number of requests, to that host only) against the policy's "
        "'endpoint' section. Exit 0 pass/warn, 1 violation, 2 bad input, 3 unreachable, 4 internal error.",
        inputs=[("url", "URL", "the endpoint's base URL (https://host[:port][/base])")],
        handler=_check,
    )
    check.add_argument("--ca-bundle", metavar="PEM", help="CA certificates trusted for the endpoint")
    check.add_argument("--token-env", metavar="VAR", help="environment variable holding the valid token")
