"""``aisec llm redteam --endpoint URL --policy P [--model NAME] [--token-env VAR]``."""

from __future__ import annotations

import argparse
import os

from airflow_aisec.cli.args import CliError, add_gate_arguments, add_verbs, run_gate_command


def _redteam(args: argparse.Namespace) -> int:
    from airflow_aisec.core.gates.llm_redteam import check_llm_redteam

    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise CliError(f"environment variable {args.token_env} (the endpoint token) is not set")

    def check(loaded):
        return check_llm_redteam(loaded.section("llm_redteam"), args.endpoint, model=args.model, token=token)

    return run_gate_command(args, "llm_redteam", check)


def register(sub: argparse._SubParsersAction) -> None:
    verbs = add_verbs(sub, "llm", "red-team a candidate model before it deploys")
    redteam = verbs.add_parser(
        "redteam",
        help="send the prompt-injection probe suite to an OpenAI-compatible endpoint",
        description="Send the bounded probe suite of the policy's 'llm_redteam' section to ENDPOINT "
        "(http(s)://host[:port][/v1], the full .../chat/completions URL, or module:function for an in-process "
        "model) with a fresh canary in the system prompt; replies are judged and dropped. Exit 0 pass/warn, "
        "1 violation, 2 bad input, 3 unreachable, 4 internal error.",
    )
    redteam.add_argument("--endpoint", required=True, help="model endpoint URL or module:function")
    add_gate_arguments(redteam)
    redteam.add_argument("--model", help="model name sent with each request (default: llm_redteam.model)")
    redteam.add_argument("--token-env", metavar="VAR",
                         help="environment variable holding the endpoint's bearer token (never a command-line value)")
    redteam.set_defaults(handler=_redteam)
