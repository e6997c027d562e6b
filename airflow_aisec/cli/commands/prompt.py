"""``aisec prompt scan DATA --policy P [--column COL ...]``."""

from __future__ import annotations

import argparse

from airflow_aisec.cli.args import add_gate_arguments, add_verbs, endpoint_s3_client, run_gate_command


def _columns(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out.extend(c.strip() for c in value.split(",") if c.strip())
    return out


def _scan(args: argparse.Namespace) -> int:
    from airflow_aisec.core.gates.prompt_injection import check_prompt_injection

    client = endpoint_s3_client(args.endpoint_url, args.data)

    def check(loaded):
        return check_prompt_injection(loaded.section("prompt_injection"), args.data,
                                      columns=_columns(args.column) or None, s3_client=client, engine=args.engine)

    return run_gate_command(args, "prompt_injection", check)


def register(sub: argparse._SubParsersAction) -> None:
    verbs = add_verbs(sub, "prompt", "prompt-injection payloads in training / RAG / prompt data")
    scan = verbs.add_parser(
        "scan",
        help="scan a table, JSONL file, document or directory of documents (local or s3://)",
        description="Scan DATA (CSV / Parquet text columns, JSONL string fields, .txt/.md/.html documents, or a "
        "directory / s3:// prefix of them) against the policy's 'prompt_injection' section. Findings name the "
        "rule, column / field / documents and positions, never the text. Exit 0 pass/warn, 1 violation, "
        "2 bad input, 3 unreachable, 4 internal error.",
    )
    scan.add_argument("data", metavar="DATA", help="file, directory or s3:// URI")
    add_gate_arguments(scan)
    scan.add_argument("--column", metavar="COL[,COL...]", action="append",
                      help="table column(s) to scan, comma-separated or repeated (default: every text column)")
    scan.add_argument("--engine", choices=("auto", "re"), default="auto",
                      help="auto: RE2 pre-filter then the rules (default); re: the rules on every cell "
                      "(Python only, same findings, slower)")
    scan.add_argument("--endpoint-url", help="S3 endpoint (default: the AWS environment)")
    scan.set_defaults(handler=_scan)
