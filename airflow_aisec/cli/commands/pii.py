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


def _is_directory(data: str) -> bool:
    import os

    return str(data).endswith("/") or (not str(data).startswith("s3://") and os.path.isdir(data))


def _s3_client_factory(args: argparse.Namespace, *uris: str) -> Any:
    if not any(str(u).startswith("s3://") for u in uris):
        return None
    from airflow_aisec.core.io.storage import make_s3_client

    return make_s3_client(endpoint_url=args.endpoint_url or None)


def _scan(args: argparse.Namespace) -> int:
    def check(loaded):
        if args.engine == "spark":  # PySpark and Java start only here
            from airflow_aisec.core.engines.spark import check_pii_spark

            return check_pii_spark(loaded.section("pii"), args.data, classification=args.classification,
                                   master=args.spark_master)
        from airflow_aisec.cli._arrow import pyarrow_without_pandas
        from airflow_aisec.core.gates.pii import check_pii

        pyarrow_without_pandas()
        if _is_directory(args.data):  # files laid end to end: one summary per file, merged
            from airflow_aisec.core.gates.pii.summary import check_partitioned

            return check_partitioned(loaded.section("pii"), args.data, classification=args.classification,
                                     s3_client=_s3_client_factory(args, args.data), fmt=args.input_format)
        return check_pii(loaded.section("pii"), args.data, classification=args.classification,
                         s3_client=_s3_client_factory(args, args.data), fmt=args.input_format)

    return run_gate_command(args, "pii", check)


def _redact(args: argparse.Namespace) -> int:
    def check(loaded):
        from airflow_aisec.cli._arrow import pyarrow_without_pandas
        from airflow_aisec.core.gates.pii import redact_table

        pyarrow_without_pandas()
        section = loaded.section("pii")
        settings = section.redaction
        vault = None
        if settings.method == "hash" and settings.key is not None and settings.key.vault_path:
            from airflow_aisec.core.io.vault import VaultClient

            vault = VaultClient.from_env()
        return redact_table(section, args.data, args.out, classification=args.classification,
                            vault=vault, s3_client=_s3_client_factory(args, args.data, args.out),
                            src_format=args.input_format, dst_format=args.output_format)

    return run_gate_command(args, "pii", check)


def _common(parser: argparse.ArgumentParser) -> None:
    add_gate_arguments(parser, input_formats=("csv", "parquet"))  # --format csv|parquet: before --input-format
    parser.add_argument("--classification", metavar="LEVEL",
                        help=f"declared level of the data ({'|'.join(LEVELS)}); default: the policy's")
    parser.add_argument("--input-format", choices=("csv", "parquet"),
                        help="input format (default: from the extension)")
    parser.add_argument("--endpoint-url", metavar="URL", help="S3 endpoint (default: the AWS environment)")


def register(sub: argparse._SubParsersAction) -> None:
    verbs = add_verbs(sub, "pii", "classify PII in tables, write redacted copies")

    scan = verbs.add_parser("scan", help="per-column PII classification of a CSV/Parquet table against the policy")
    scan.add_argument("data", metavar="DATA", help="table: local path or s3://bucket/key (a directory or "
                      "s3://.../ prefix: its files, merged)")
    _common(scan)
    scan.add_argument("--engine", choices=("local", "spark"), default="local",
                      help="where the scan runs: this process (default) or Spark (Parquet; same result)")
    scan.add_argument("--spark-master", metavar="URL", help="Spark master for --engine spark (default local[*])")
    scan.set_defaults(handler=_scan)

    redact = verbs.add_parser("redact", help="write a redacted copy of a table; the copy must pass the pii gate")
    redact.add_argument("data", metavar="DATA", help="input table (never modified)")
    redact.add_argument("out", metavar="OUT", help="output table: local path or s3://bucket/key")
    _common(redact)
    redact.add_argument("--output-format", choices=("csv", "parquet"), help="output format (default: extension)")
    redact.set_defaults(handler=_redact)
