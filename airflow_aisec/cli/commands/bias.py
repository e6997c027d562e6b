"""``aisec bias check DATA --policy P --label COL --prediction COL --sensitive COL[,COL...] [--report OUT.html]``."""

from __future__ import annotations

import argparse

from airflow_aisec.cli.args import add_gate_arguments, add_verbs, endpoint_s3_client, run_gate_command


def _columns(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out.extend(c.strip() for c in value.split(",") if c.strip())
    return out


def _check(args: argparse.Namespace) -> int:
    from airflow_aisec.core.gates.bias import check_bias

    client = endpoint_s3_client(args.endpoint_url, args.data, args.report)

    def check(loaded):
        return check_bias(
            loaded.section("bias"),
            args.data,
            label=args.label,
            prediction=args.prediction,
            score=args.score,
            sensitive=_columns(args.sensitive),
            report=args.report,
            report_meta={"policy": f"{loaded.name} (sha256 {loaded.sha256})", "source": "aisec bias check"},
            s3_client=client,
        )

    return run_gate_command(args, "bias", check)


def register(sub: argparse._SubParsersAction) -> None:
    verbs = add_verbs(sub, "bias", "fairness metrics per group against the policy (bias gate)")
    check = verbs.add_parser(
        "check",
        help="check a predictions table (CSV/Parquet, local or s3://)",
        description="Compute per-group rates and between-group fairness metrics (fairlearn's definitions) "
        "and check them against the policy's 'bias' section. Exit 0 pass/warn, 1 violation, 2 bad input, "
        "3 unreachable, 4 internal error.",
    )
    check.add_argument("data", metavar="DATA", help="predictions table: path or s3://bucket/key")
    add_gate_arguments(check)
    check.add_argument("--label", metavar="COL", help="label column (or bias.label in the policy)")
    check.add_argument("--prediction", metavar="COL", help="prediction column (or bias.prediction)")
    check.add_argument("--score", metavar="COL", help="score column (optional; or bias.score)")
    check.add_argument("--sensitive", metavar="COL[,COL...]", action="append",
                       help="sensitive column(s), comma-separated or repeated; added to bias.sensitive")
    check.add_argument("--report", metavar="OUT.html", help="write the HTML report here (path or s3://)")
    check.add_argument("--endpoint-url", help="S3 endpoint (default: the AWS environment)")
    check.set_defaults(handler=_check)
