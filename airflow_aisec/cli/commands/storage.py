"""``aisec storage check s3://bucket[/prefix] --policy P [--endpoint-url URL]``."""

from __future__ import annotations

import argparse

from airflow_aisec.cli.args import add_gate_arguments, add_verbs, run_gate_command

#: Fail fast on a dead endpoint instead of retrying for minutes (the CLI is interactive).
_S3_CONFIG = {"retries": {"max_attempts": 2, "mode": "standard"}, "connect_timeout": 5, "read_timeout": 60}


def _check(args: argparse.Namespace) -> int:
    from botocore.config import Config

    from airflow_aisec.core.gates.storage import check_storage
    from airflow_aisec.core.io.storage import make_s3_client

    def check(loaded):
        client = make_s3_client(endpoint_url=args.endpoint_url, config=Config(**_S3_CONFIG))
        return check_storage(loaded.section("storage"), args.uri, s3_client=client)

    return run_gate_command(args, "storage", check)


def register(sub: argparse._SubParsersAction) -> None:
    verbs = add_verbs(sub, "storage", "S3 bucket posture for training data and models (storage gate)")
    check = verbs.add_parser(
        "check",
        help="check a bucket's encryption, public access, TLS policy, versioning, ACL and objects",
        description="Check s3://bucket[/prefix] against the policy's 'storage' section. Exit 0 pass/warn, "
        "1 violation, 2 bad input or access denied, 3 unreachable, 4 internal error.",
    )
    check.add_argument("uri", metavar="s3://bucket[/prefix]", help="the bucket, and the prefix whose objects are checked")
    add_gate_arguments(check)
    check.add_argument("--endpoint-url", metavar="URL", help="S3 endpoint (default: the AWS environment)")
    check.set_defaults(handler=_check)
