"""What ``aisec bias check`` and ``aisec drift check`` share: tables in (local or ``s3://``), an optional
HTML report out, one S3 client for both when ``--endpoint-url`` is given."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from airflow_aisec.cli.args import endpoint_s3_client, run_gate_command


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """``--report OUT.html`` and ``--endpoint-url`` (for the tables and the report)."""
    parser.add_argument("--report", metavar="OUT.html", help="write the HTML report here (path or s3://)")
    parser.add_argument("--endpoint-url", help="S3 endpoint (default: the AWS environment)")


def run_tabular_check(args: argparse.Namespace, gate: str, check: Callable[..., Any], tables: list[str],
                      **options: Any) -> int:
    """Run ``aisec GATE check``: ``check(section, *tables, **options, report=, report_meta=, s3_client=)``
    under the policy's ``GATE`` section; returns the exit code."""
    client = endpoint_s3_client(args.endpoint_url, *tables, args.report)
    source = f"aisec {gate} check"

    def run(loaded):
        from airflow_aisec.cli._arrow import pyarrow_without_pandas

        pyarrow_without_pandas()  # the bias and drift gates never hand pandas objects to pyarrow
        meta = {"policy": f"{loaded.name} (sha256 {loaded.sha256})", "source": source}
        return check(loaded.section(gate), *tables, **options, report=args.report, report_meta=meta,
                     s3_client=client)

    return run_gate_command(args, gate, run)
