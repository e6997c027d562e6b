"""``aisec audit verify LOCATION``, ``aisec audit show LOCATION``, ``aisec audit export LOCATION`` and
``aisec audit coverage``."""

from __future__ import annotations

import argparse
import json

from airflow_aisec.cli.args import add_verbs, endpoint_s3_client
from airflow_aisec.core.evidence import open_evidence_store
from airflow_aisec.exceptions import EvidenceChainError


def _store(args: argparse.Namespace):
    return open_evidence_store(args.location, s3_client=endpoint_s3_client(args.endpoint_url, args.location))


def _verify(args: argparse.Namespace) -> int:
    # A missing location or one without records is exit 2 (a typo or a deleted trail never verifies).
    try:
        report = _store(args).verify(require_records=True)
    except EvidenceChainError as exc:
        print(f"BROKEN {args.location}: first bad record: {exc}")  # str(exc) starts with the record
        return 1
    print(f"OK {report.location}: {report.records} record(s), head sha256={report.head_sha256 or '-'}")
    return 0


def _show(args: argparse.Namespace) -> int:
    # A missing location (a typo, a deleted trail, a symlink loop) is exit 2, never an empty listing.
    records = _store(args).read_records(require_location=True)
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


def _export(args: argparse.Namespace) -> int:
    """The trail's records as JUnit XML or a SARIF log, only after its chain verified (exit 1 if broken)."""
    import sys

    from airflow_aisec.core.junit import junit_xml, read_verified_records

    store = _store(args)
    try:
        records, head = read_verified_records(store)
    except EvidenceChainError as exc:
        print(f"aisec: BROKEN {args.location}: first bad record: {exc}; nothing exported", file=sys.stderr)
        return 1
    if args.format == "junit":
        data = junit_xml(records, location=store.location, head_sha256=head, group_by=args.group_by)
    else:
        from airflow_aisec.core.sarif import sarif_log, sarif_run

        runs = []
        for rec in records:
            payload = rec.record.get("payload")
            if isinstance(payload, dict) and isinstance(payload.get("gate"), str) and payload.get("verdict"):
                runs.append(sarif_run(payload, evidence={"location": store.location, "seq": rec.seq,
                                                         "name": rec.name, "sha256": rec.sha256}))
        data = (json.dumps(sarif_log(runs), indent=2) + "\n").encode("utf-8")
    if args.output:
        from pathlib import Path

        Path(args.output).write_bytes(data)
        print(f"exported {len(records)} record(s) of {store.location} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def _coverage_runs(window, dag_globs: list[str]):
    """Runs of the window from Airflow's metadata database (the configured connection)."""
    import fnmatch

    from airflow_aisec.cli.args import EXIT_UNREACHABLE, CliError

    try:
        from airflow.utils.session import create_session
        from sqlalchemy.exc import SQLAlchemyError

        from airflow_aisec.coverage_db import load_runs
    except ImportError:
        raise CliError("aisec audit coverage runs next to Airflow: Airflow is not installed here") from None
    dag_filter = (lambda d: any(fnmatch.fnmatchcase(d, g) for g in dag_globs)) if dag_globs else None
    try:
        with create_session() as session:
            return load_runs(session, since=window, dag_filter=dag_filter)
    except SQLAlchemyError as exc:
        raise CliError(
            f"the Airflow metadata database cannot be read ({type(exc).__name__}); run this where Airflow's "
            "configuration is",
            EXIT_UNREACHABLE,
        ) from None


def _coverage(args: argparse.Namespace) -> int:
    """Deployments and gate results of recent runs that the central audit trail does not back."""
    import os

    from airflow_aisec import settings
    from airflow_aisec.cli.args import CliError
    from airflow_aisec.core.coverage import find_gaps, parse_window
    from airflow_aisec.core.io.storage import is_s3_uri
    from airflow_aisec.core.policy import load_policy
    from airflow_aisec.core.trail_index import build_index

    window = parse_window(args.since)
    location = args.evidence or settings.evidence_location()
    if not is_s3_uri(location) and not os.path.isdir(location):
        raise CliError(f"audit trail {location} does not exist (--evidence or [aisec] evidence_location)")
    policy_path = args.policy or settings.platform_policy()
    if not policy_path:
        raise CliError("no platform policy: set [aisec] platform_policy or pass --policy P")
    loaded = load_policy(policy_path)
    section = loaded.section("platform")
    index = build_index(open_evidence_store(location, s3_client=endpoint_s3_client(args.endpoint_url, location)))
    runs = _coverage_runs(window, args.dag_id or [])
    report = find_gaps(section, runs, index)
    if args.json:
        print(json.dumps({"since": args.since, "evidence": location, "records": index.records,
                          "trail_broken": index.broken,
                          "policy": {"name": loaded.name, "sha256": loaded.sha256, "source": policy_path},
                          **report.to_dict()}, indent=2))
    else:
        labels = {"unverified_deployment": "UNVERIFIED DEPLOYMENT", "unrecorded_gate_result": "UNRECORDED RESULT",
                  "trail_broken": "TRAIL BROKEN"}
        for f in report.findings:
            where = "/".join(x for x in (f.dag_id, f.run_id, f.task_id) if x)
            rule = f" [{f.rule}]" if f.rule else ""
            print(f"{labels.get(f.kind, f.kind)} {where}{rule}: {f.message}")
        status = "GAPS" if report.findings else "OK"
        print(f"{status} {location}: {report.runs} run(s) in the last {args.since}, {report.deployments} protected "
              f"task(s) succeeded, {report.results} gate result(s) checked against {index.records} record(s); "
              f"{len(report.findings)} finding(s)")
    return 1 if report.findings else 0


def register(sub: argparse._SubParsersAction) -> None:
    verbs = add_verbs(sub, "audit", "verify or show the tamper-evident audit trail")
    for name, handler, text in (("verify", _verify, "verify the hash chain"), ("show", _show, "list records")):
        p = verbs.add_parser(name, help=text)
        p.add_argument("location", metavar="LOCATION", help="directory or s3://bucket/prefix")
        p.add_argument("--endpoint-url", help="S3 endpoint (default: the AWS environment)")
        if name == "show":
            p.add_argument("--json", action="store_true")
        p.set_defaults(handler=handler)
    p = verbs.add_parser(
        "export",
        help="the records as JUnit XML (CI test reports) or a SARIF 2.1.0 log, after verifying the chain",
        description="Exit 0 exported, 1 broken chain (nothing is exported), 2 no trail at LOCATION.",
    )
    p.add_argument("location", metavar="LOCATION", help="directory or s3://bucket/prefix")
    p.add_argument("--format", choices=("junit", "sarif"), default="junit", help="output format (default junit)")
    p.add_argument("--group-by", choices=("gate", "dag"), default="gate",
                   help="JUnit: one test suite per gate (default) or per DAG")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--endpoint-url", help="S3 endpoint (default: the AWS environment)")
    p.set_defaults(handler=_export)
    p = verbs.add_parser(
        "coverage",
        help="runs where a protected task succeeded without a verified gate record, and gate results the "
        "audit trail does not back (reads Airflow's metadata database; run where Airflow's configuration is)",
    )
    p.add_argument("--since", default="7d", help="window back from now: 7d, 24h, 30m (default 7d)")
    p.add_argument("--evidence", metavar="LOCATION", help="audit trail (default [aisec] evidence_location)")
    p.add_argument("--policy", metavar="P", help="policy with the platform rules (default [aisec] platform_policy)")
    p.add_argument("--dag-id", action="append", metavar="GLOB", help="only these DAGs (repeatable)")
    p.add_argument("--endpoint-url", help="S3 endpoint (default: the AWS environment)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_coverage)
