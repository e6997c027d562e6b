"""``aisec audit verify LOCATION`` and ``aisec audit show LOCATION``."""

from __future__ import annotations

import argparse
import json

from airflow_aisec.cli.args import add_verbs, endpoint_s3_client
from airflow_aisec.core.evidence import open_evidence_store
from airflow_aisec.exceptions import EvidenceChainError


def _store(args: argparse.Namespace):
    return open_evidence_store(args.location, s3_client=endpoint_s3_client(args.endpoint_url, args.location))


def _verify(args: argparse.Namespace) -> int:
    try:
        report = _store(args).verify()
    except EvidenceChainError as exc:
        print(f"BROKEN {args.location}: first bad record: {exc.record}: {exc}")
        return 1
    print(f"OK {report.location}: {report.records} record(s), head sha256={report.head_sha256 or '-'}")
    return 0


def _show(args: argparse.Namespace) -> int:
    records = _store(args).read_records()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    for r in records:
        payload = r.get("payload", {})
        air = payload.get("airflow") or {}
        print(
            f"#{r.get('seq'):>5} {r.get('recorded_at')} {r.get('kind'):<14} "
            f"{payload.get('gate', '-'):<12} {payload.get('verdict', '-'):<6} "
            f"{air.get('dag_id', '-')}/{air.get('task_id', '-')}"
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    verbs = add_verbs(sub, "audit", "verify or show the tamper-evident audit trail")
    for name, handler, text in (("verify", _verify, "verify the hash chain"), ("show", _show, "list records")):
        p = verbs.add_parser(name, help=text)
        p.add_argument("location", metavar="LOCATION", help="directory or s3://bucket/prefix")
        p.add_argument("--endpoint-url", help="S3 endpoint (default: the AWS environment)")
        if name == "show":
            p.add_argument("--json", action="store_true")
        p.set_defaults(handler=handler)
