"""``aisec storage check s3://bucket[/prefix] --policy P [--endpoint-url URL]``."""

from __future__ import annotations

import argparse

from airflow_aisec.cli.args import add_check_verb, interactive_s3_client, run_gate_command


def _check(args: argparse.Namespace) -> int:
    from airflow_aisec.core.gates.storage import check_storage

    def check(loaded):
        client = interactive_s3_client(args.endpoint_url)
        return check_storage(loaded.section("storage"), args.uri, s3_client=client)

    return run_gate_command(args, "storage", check)


def register(sub: argparse._SubParsersAction) -> None:
    check = add_check_verb(
        sub, "storage", "S3 bucket posture for training data and models (storage gate)",
        help="check a bucket's encryption, public access, TLS policy, versioning, ACL and objects",
        description="Check s3://bucket[/prefix] against the policy's 'storage' section. Exit 0 pass/warn, "
        "1 violation, 2 bad input or access denied, 3 unreachable, 4 internal error.",
        inputs=[("uri", "s3://bucket[/prefix]", "the bucket, and the prefix whose objects are checked")],
        handler=_check,
    )
    check.add_argument("--endpoint-url", metavar="URL", help="S3 endpoint (default: the AWS environment)")
