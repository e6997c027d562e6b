"""``aisec source check DATA... --policy P [--reference REF]`` and ``aisec source pin DATA...``."""

from __future__ import annotations

import argparse
import functools
import json

from airflow_aisec.cli.args import add_gate_arguments, add_verbs, interactive_s3_client, run_gate_command


def _check(args: argparse.Namespace) -> int:
    from airflow_aisec.core.gates.source import check_sources, policy_dir

    factory = functools.partial(interactive_s3_client, args.endpoint_url)
    return run_gate_command(
        args,
        "source",
        lambda loaded: check_sources(loaded.section("source"), args.data, reference=args.reference,
                                     base_dir=policy_dir(loaded.source), s3_client=factory),
    )


def _pin(args: argparse.Namespace) -> int:
    from airflow_aisec.core.gates.source import pin_sources

    manifest = pin_sources(args.data, s3_client=functools.partial(interactive_s3_client, args.endpoint_url))
    print(json.dumps(manifest, indent=2, sort_keys=True))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    verbs = add_verbs(sub, "source", "validate dataset sources (origin, pins, schema, GX, poisoning)")

    check = verbs.add_parser("check", help="validate datasets against the policy's 'source' section")
    check.add_argument("data", nargs="+", metavar="DATA", help="dataset: local path or s3:// URI (CSV or Parquet)")
    check.add_argument("--reference", metavar="REF", help="reference dataset for the poisoning signals")
    check.add_argument("--endpoint-url", metavar="URL", help="S3 endpoint (default: the AWS environment)")
    add_gate_arguments(check)
    check.set_defaults(handler=_check)

    pin = verbs.add_parser("pin", help="print a pinning manifest (sha256, S3 VersionId / ETag) for datasets")
    pin.add_argument("data", nargs="+", metavar="DATA")
    pin.add_argument("--endpoint-url", metavar="URL", help="S3 endpoint (default: the AWS environment)")
    pin.set_defaults(handler=_pin)
