"""``aisec drift check REFERENCE CURRENT --policy P [--report OUT.html]``."""

from __future__ import annotations

import argparse


def _check(args: argparse.Namespace) -> int:
    from airflow_aisec.cli._tabular_verbs import run_tabular_check
    from airflow_aisec.core.gates.drift import check_drift

    return run_tabular_check(args, "drift", check_drift, [args.reference, args.current], features=args.features)


def register(sub: argparse._SubParsersAction) -> None:
    from airflow_aisec.cli._tabular_verbs import add_report_arguments
    from airflow_aisec.cli.args import add_check_verb

    check = add_check_verb(
        sub, "drift", "compare current data with a reference (drift gate)",
        help="compare two tables (CSV/Parquet, local or s3://)",
        description="Per feature: PSI (numeric on reference quantile bins, categorical by category) and the "
        "two-sample KS test for numeric features, against the policy's 'drift' section; unseen categories are "
        "findings. Exit 0 pass/warn, 1 violation, 2 bad input, 3 unreachable, 4 internal error.",
        inputs=[("reference", "REFERENCE", "reference table: path or s3://bucket/key"),
                ("current", "CURRENT", "current table: path or s3://bucket/key")],
        handler=_check,
    )
    check.add_argument("--features", metavar="COL[,COL...]",
                       help="features to compare (added to drift.features; default: all reference columns)")
    add_report_arguments(check)
