"""``aisec bias check DATA --policy P --label COL --prediction COL --sensitive COL[,COL...] [--report OUT.html]``."""

from __future__ import annotations

import argparse

from airflow_aisec.cli._tabular_verbs import add_report_arguments, run_tabular_check
from airflow_aisec.cli.args import add_check_verb


def _columns(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out.extend(c.strip() for c in value.split(",") if c.strip())
    return out


def _check(args: argparse.Namespace) -> int:
    from airflow_aisec.core.gates.bias import check_bias

    return run_tabular_check(args, "bias", check_bias, [args.data], label=args.label, prediction=args.prediction,
                             score=args.score, sensitive=_columns(args.sensitive))


def register(sub: argparse._SubParsersAction) -> None:
    check = add_check_verb(
        sub, "bias", "fairness metrics per group against the policy (bias gate)",
        help="check a predictions table (CSV/Parquet, local or s3://)",
        description="Compute per-group rates and between-group fairness metrics (fairlearn's definitions) "
        "and check them against the policy's 'bias' section. Exit 0 pass/warn, 1 violation, 2 bad input, "
        "3 unreachable, 4 internal error.",
        inputs=[("data", "DATA", "predictions table: path or s3://bucket/key")],
        handler=_check,
    )
    check.add_argument("--label", metavar="COL", help="label column (or bias.label in the policy)")
    check.add_argument("--prediction", metavar="COL", help="prediction column (or bias.prediction)")
    check.add_argument("--score", metavar="COL", help="score column (optional; or bias.score)")
    check.add_argument("--sensitive", metavar="COL[,COL...]", action="append",
                       help="sensitive column(s), comma-separated or repeated; added to bias.sensitive")
    add_report_arguments(check)
