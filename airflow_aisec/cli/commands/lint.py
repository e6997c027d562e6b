"""``aisec lint DAG_FOLDER --policy P``: check DAG files against the platform rules, in CI.

The DAG files are parsed with Airflow's ``DagBag`` (no scheduler, no metadata
database needed) and every DAG is checked with the same rules the cluster policy
applies (:mod:`airflow_aisec.core.gates.platform`). The parsing happens in a child
process started with ``[aisec] platform_policy`` empty in its environment, so the
installed cluster policy is a no-op there (nothing in DAG code can switch it, and
there is no switch in the provider to flip); the child hands back plain descriptions
of the DAGs, and this process, where no DAG code ran, evaluates the policy given on
the command line.

Exit codes: 0 no blocking violation; 1 at least one enforce-level violation (each is
listed); 2 invalid input: the folder or policy is missing or invalid, the policy has no
``platform`` section, a DAG file fails to import (it could not be checked), or no DAG
was found at all (a lint that checked nothing must not look like a pass).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from airflow_aisec.cli.args import (
    EXIT_INTERNAL,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_VIOLATION,
    CliError,
    add_format_arguments,
    output_format,
)

#: Runs in the child: parse, describe every DAG, write plain JSON to argv[2].
_CHILD = """
import json, logging, sys
from airflow.dag_processing.dagbag import DagBag
from airflow_aisec.cluster_policy import describe_dag
# Each import error is reported once, in one line, by the parent: not as Airflow's logged traceback.
logging.getLogger("airflow.dag_processing").setLevel(logging.CRITICAL)
bag = DagBag(dag_folder=sys.argv[1])
doc = {"dags": [describe_dag(d).to_dict() for d in bag.dags.values()],
       "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}}
with open(sys.argv[2], "w") as fh:
    json.dump(doc, fh, default=str)
"""
#: Longest a lint parse may take (DagBag also bounds each file with [core] dagbag_import_timeout).
PARSE_TIMEOUT_SECONDS = 3600


def _spec(doc: dict[str, Any]) -> Any:
    from airflow_aisec.core.gates.platform import DagSpec, TaskSpec

    tasks = [
        TaskSpec(task_id=t["task_id"], classes=tuple(t.get("classes") or ()), gate=t.get("gate"),
                 upstream=tuple(t.get("upstream") or ()), trigger_rule=t.get("trigger_rule") or "all_success",
                 approves=t.get("approves"),
                 pods=tuple((p.get("source"), p.get("pod")) for p in t.get("pods") or ()))
        for t in doc.get("tasks") or ()
    ]
    return DagSpec.build(doc["dag_id"], tasks, tags=doc.get("tags") or (), fileloc=doc.get("fileloc"))


def _parse(folder: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Descriptions (:class:`DagSpec`) and import errors of a folder or file, parsed in a child process
    in which the cluster policy is off (its setting is empty in the child's environment)."""
    from airflow_aisec import settings

    # Airflow's parse messages (its structlog loggers) are left out too: the report names each error.
    env = {**os.environ, settings.env_var("platform_policy"): "",
           "AIRFLOW__LOGGING__NAMESPACE_LEVELS": "airflow.dag_processing=CRITICAL"}
    with tempfile.TemporaryDirectory(prefix="aisec-lint-") as tmp:
        out = Path(tmp) / "dags.json"
        sys.stdout.flush()
        try:
            proc = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(out)], env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=PARSE_TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            raise CliError(f"{folder}: parsing the DAG files took longer than {PARSE_TIMEOUT_SECONDS}s") from None
        # Airflow's logging and DAG files' prints go to stderr: they must not mix with the report.
        sys.stderr.write(proc.stdout.decode("utf-8", "replace"))
        if proc.returncode != 0 or not out.exists():
            raise CliError(f"{folder}: the DAG files could not be parsed (exit {proc.returncode})",
                           code=EXIT_INTERNAL)
        doc = json.loads(out.read_text())
    dags = {d["dag_id"]: _spec(d) for d in doc["dags"]}
    return dags, dict(doc["import_errors"])


def _error_text(error: str) -> str:
    """An import error's last line (the exception), without the traceback before it."""
    return error.strip().splitlines()[-1] if error.strip() else ""


def _error_line(file: str, error: str) -> int | None:
    """The line of ``file`` that the import error's traceback names last (its innermost frame there)."""
    lines = [int(n) for f, n in re.findall(r'File "([^"\n]*)", line (\d+)', error) if Path(f) == Path(file)]
    return lines[-1] if lines else None


def _lint(args: argparse.Namespace) -> int:
    from airflow_aisec.core.gates.platform import evaluate_dag, violations_outcome
    from airflow_aisec.core.policy import load_policy

    folder = Path(args.dag_folder)
    if not folder.exists():
        raise CliError(f"{folder}: DAG folder or file not found")
    loaded = load_policy(args.policy)  # PolicyError -> exit 2 naming file and field
    loaded.section("platform")  # PolicyError -> exit 2: lint without platform rules checks nothing

    dags, import_errors = _parse(folder)
    violations = []
    for dag_id in sorted(dags):
        violations.extend(evaluate_dag(loaded, dags[dag_id]))
    blocking = [v for v in violations if v.blocking]

    code = EXIT_INVALID if (import_errors or not dags) else (EXIT_VIOLATION if blocking else EXIT_OK)
    if output_format(args) == "sarif":
        _print_sarif(loaded, folder, violations, import_errors, code)
    elif output_format(args) == "json":
        doc = {
            "policy": {"name": loaded.name, "sha256": loaded.sha256, "source": loaded.source},
            "dags": sorted(dags),
            "import_errors": [{"file": f, "line": _error_line(f, e), "error": _error_text(e)}
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
            line = _error_line(f, e)
            print(f"{f}{'' if line is None else f':{line}'}: import error: {_error_text(e) or 'import error'}")
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


def _print_sarif(loaded: Any, folder: Path, violations: list, import_errors: dict[str, str], code: int) -> None:
    """The lint as a SARIF log: the platform gate's findings; files that did not import are notifications."""
    from airflow_aisec.core.result import SCHEMA_VERSION, utcnow
    from airflow_aisec.core.sarif import artifact_uri, to_sarif

    now = utcnow()
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "gate": "platform",
        "verdict": "error" if code == EXIT_INVALID else ("fail" if code == EXIT_VIOLATION else (
            "warn" if any(v.enforcement.value == "warn" and not v.waived for v in violations) else "pass")),
        "policy": {"name": loaded.name, "sha256": loaded.sha256, "source": loaded.source},
        "findings": [v.to_finding().model_dump(mode="json") for v in violations],
        "inputs": [{"uri": str(folder)}], "started_at": now, "finished_at": now,
    }
    if code == EXIT_INVALID:
        what = f"{len(import_errors)} DAG file(s) could not be imported" if import_errors else "no DAG found"
        result["error"] = {"type": "InputDataError", "message": f"{folder}: {what}", "retryable": False}
    doc = to_sarif(result, exit_code=code)
    for f in sorted(import_errors):
        doc["runs"][0]["invocations"][0].setdefault("toolExecutionNotifications", []).append(
            {"level": "error", "message": {"text": "import error: the DAG file was not checked"},
             "descriptor": {"id": "import_error"},
             "locations": [{"physicalLocation": {"artifactLocation": {"uri": artifact_uri(f)}}}]})
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "lint",
        help="check DAG files against the policy's platform rules (no running Airflow needed)",
        description="Parse the DAG files and check every DAG against the 'platform' rules of the "
        "policy, as the cluster policy does. Exit 1 on a violation, 2 on invalid input.",
    )
    parser.add_argument("dag_folder", metavar="DAG_FOLDER", help="DAG folder or a single DAG file")
    parser.add_argument("--policy", required=True, help="policy YAML file with a 'platform' section")
    add_format_arguments(parser, json_help="print the result as JSON (= --format json)")
    parser.set_defaults(handler=_lint)
