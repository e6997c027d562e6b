"""``aisec lint DAG_FOLDER --policy P``: check DAG files against the platform rules, in CI.

The DAG files are parsed with Airflow's ``DagBag`` (no scheduler, no metadata
database needed) and every DAG is checked with the same rules the cluster policy
applies (:mod:`airflow_aisec.core.platform`). The installed cluster policy is
suspended while parsing so the rules are not applied twice, and so that the policy
given on the command line is the one that counts.

Exit codes: 0 no blocking violation; 1 at least one enforce-level violation (each is
listed); 2 invalid input: the folder or policy is missing or invalid, the policy has no
``platform`` section, a DAG file fails to import (it could not be checked), or no DAG
was found at all (a lint that checked nothing must not look like a pass).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_aisec.cli.args import EXIT_INVALID, EXIT_OK, EXIT_VIOLATION, CliError


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send fd 1 to stderr: Airflow's logging and DAG files' prints must not mix with the report."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _parse(folder: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """DAGs and import errors of a folder or file, without the aisec cluster policy."""
    with _stdout_to_stderr():
        from airflow.dag_processing.dagbag import DagBag

        from airflow_aisec import cluster_policy

        with cluster_policy.suspended():
            bag = DagBag(dag_folder=str(folder))
    return dict(bag.dags), {str(k): str(v) for k, v in bag.import_errors.items()}


def _lint(args: argparse.Namespace) -> int:
    from airflow_aisec.cluster_policy import describe_dag
    from airflow_aisec.core.platform import evaluate_dag, platform_section, violations_outcome
    from airflow_aisec.core.policy import load_policy

    folder = Path(args.dag_folder)
    if not folder.exists():
        raise CliError(f"{folder}: DAG folder or file not found")
    loaded = load_policy(args.policy)  # PolicyError -> exit 2 naming file and field
    platform_section(loaded)

    dags, import_errors = _parse(folder)
    violations = []
    for dag_id in sorted(dags):
        violations.extend(evaluate_dag(loaded, describe_dag(dags[dag_id])))
    blocking = [v for v in violations if v.blocking]

    if args.json:
        doc = {
            "policy": {"name": loaded.name, "sha256": loaded.sha256, "source": loaded.source},
            "dags": sorted(dags),
            "import_errors": [{"file": f, "error": e.strip().splitlines()[-1] if e.strip() else ""}
                              for f, e in sorted(import_errors.items())],
            "violations": [v.to_finding().model_dump(mode="json") for v in violations],
            "metrics": violations_outcome(violations, dags=len(dags)).metrics,
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for v in violations:
            print(f"{v.dag_id}: {v.task_id}: {v.format()}")
        for f, e in sorted(import_errors.items()):
            last = e.strip().splitlines()[-1] if e.strip() else "import error"
            print(f"{f}: import error: {last}")
        print(
            f"aisec lint: {len(dags)} DAG(s), {len(blocking)} blocking violation(s), "
            f"{len(violations) - len(blocking)} non-blocking, {len(import_errors)} import error(s); "
            f"policy '{loaded.name}' ({loaded.sha256[:12]})"
        )
    if import_errors:
        print(f"aisec: {len(import_errors)} DAG file(s) could not be imported, so they were not checked",
              file=sys.stderr)
        return EXIT_INVALID
    if not dags:
        print(f"aisec: no DAG found in {folder}", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_VIOLATION if blocking else EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "lint",
        help="check DAG files against the policy's platform rules (no running Airflow needed)",
        description="Parse the DAG files and check every DAG against the 'platform' rules of the "
        "policy, as the cluster policy does. Exit 1 on a violation, 2 on invalid input.",
    )
    parser.add_argument("dag_folder", metavar="DAG_FOLDER", help="DAG folder or a single DAG file")
    parser.add_argument("--policy", required=True, help="policy YAML file with a 'platform' section")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=_lint)
