"""``aisec drift check REFERENCE CURRENT --policy P [--report OUT.html]``."""

from __future__ import annotations

import argparse


def _check(args: argparse.Namespace) -> int:
    from airflow_aisec.cli.args import endpoint_s3_client, run_gate_command
    from airflow_aisec.core.gates.drift import check_drift

    client = endpoint_s3_client(args.endpoint_url, args.reference, args.current, args.report)

    def check(loaded):
        return check_drift(
            loaded.section("drift"),
            args.reference,
            args.current,
            features=args.features,
            report=args.report,
            report_meta={"policy": f"{loaded.name} (sha256 {loaded.sha256})", "source": "aisec drift check"},
            s3_client=client,
        )

    return run_gate_command(args, "drift", check)


def register(sub: argparse._SubParsersAction) -> None:
    from airflow_aisec.cli.args import add_gate_arguments, add_verbs

    verbs = add_verbs(sub, "drift", "compare current data with a reference (drift gate)")
    check = verbs.add_parser(
        "check",
        help="compare two tables (CSV/Parquet, local or s3://)",
        description="Per feature: PSI (numeric on reference quantile bins, categorical by category) and the "
        "two-sample KS test for numeric features, against the policy's 'drift' section; unseen categories are "
        "findings. Exit 0 pass/warn, 1 violation, 2 bad input, 3 unreachable, 4 internal error.",
    )
    check.add_argument("reference", metavar="REFERENCE", help="reference table: path or s3://bucket/key")
    check.add_argument("current", metavar="CURRENT", help="current table: path or s3://bucket/key")
    add_gate_arguments(check)
    check.add_argument("--features", metavar="COL[,COL...]",
                       help="features to compare (added to drift.features; default: all reference columns)")
    check.add_argument("--report", metavar="OUT.html", help="write the HTML report here (path or s3://)")
    check.add_argument("--endpoint-url", help="S3 endpoint (default: the AWS environment)")
    check.set_defaults(handler=_check)
