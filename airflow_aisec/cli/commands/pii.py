"""``aisec pii scan DATA`` and ``aisec pii redact DATA OUT``: the pii gate and redaction from the shell.

S3 locations use the standard AWS environment (``AWS_ENDPOINT_URL``, credentials, ...) or
``--endpoint-url``. A Vault-held HMAC key is read with ``VAULT_ADDR`` / ``VAULT_TOKEN``.
Exit codes as for every gate: 0 pass/warn, 1 violation, 2 invalid input, 3 unreachable service.
"""

from __future__ import annotations

import argparse
from typing import Any

from airflow_aisec.cli.args import add_gate_arguments, add_verbs, run_gate_command

LEVELS = ("public", "internal", "confidential", "restricted")


def _s3_client_factory(args: argparse.Namespace, *uris: str) -> Any:
    if not any(str(u).startswith("s3://") for u in uris):
        return None
    from airflow_aisec.core.io.storage import make_s3_client

    return make_s3_client(endpoint_url=args.endpoint_url or None)


def _scan(args: argparse.Namespace) -> int:
    def check(loaded):
        from airflow_aisec.core.gates.pii import check_pii

        return check_pii(loaded.section("pii"), args.data, classification=args.classification,
                         s3_client=_s3_client_factory(args, args.data), fmt=args.format)

    return run_gate_command(args, "pii", check)


def _redact(args: argparse.Namespace) -> int:
    def check(loaded):
        from airflow_aisec.core.gates.pii import redact_table

        section = loaded.section("pii")
        settings = section.redaction
        vault = None
        if settings.method == "hash" and settings.key is not None and settings.key.vault_path:
            from airflow_aisec.core.io.vault import VaultClient

            vault = VaultClient.from_env()
        return redact_table(section, args.data, args.out, classification=args.classification,
                            vault=vault, s3_client=_s3_client_factory(args, args.data, args.out),
                            src_format=args.format, dst_format=args.output_format)

    return run_gate_command(args, "pii", check)


def _common(parser: argparse.ArgumentParser) -> None:
    add_gate_arguments(parser)
    parser.add_argument("--classification", metavar="LEVEL",
                        help=f"declared level of the data ({'|'.join(LEVELS)}); default: the policy's")
    parser.add_argument("--format", choices=("csv", "parquet"), help="input format (default: from the extension)")
    parser.add_argument("--endpoint-url", metavar="URL", help="S3 endpoint (default: the AWS environment)")


def register(sub: argparse._SubParsersAction) -> None:
    verbs = add_verbs(sub, "pii", "classify PII in tables, write redacted copies")

    scan = verbs.add_parser("scan", help="per-column PII classification of a CSV/Parquet table against the policy")
    scan.add_argument("data", metavar="DATA", help="table: local path or s3://bucket/key")
    _common(scan)
    scan.set_defaults(handler=_scan)

    redact = verbs.add_parser("redact", help="write a redacted copy of a table; the copy must pass the pii gate")
    redact.add_argument("data", metavar="DATA", help="input table (never modified)")
    redact.add_argument("out", metavar="OUT", help="output table: local path or s3://bucket/key")
    _common(redact)
    redact.add_argument("--output-format", choices=("csv", "parquet"), help="output format (default: extension)")
    redact.set_defaults(handler=_redact)
