"""Real DAG runs with the real OpenLineage provider enabled, emitting to a file transport.

The provider decides once per process whether it is enabled (``[openlineage]`` config, cached) and
registers its listener when Airflow loads plugins: so a lineage run happens in a fresh subprocess that
starts with ``AIRFLOW__OPENLINEAGE__TRANSPORT`` set, while the test process itself keeps the provider
disabled (no transport configured). The subprocess shares the session's migrated metadata DB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Self-contained (no ``tests`` import) and started outside the checkout: with the repository root on
# sys.path, its airflow_aisec.egg-info is a second distribution declaring the ``aisec`` plugin entry
# point, and the Task SDK's plugin loader stops at the first duplicate name (``return``, not
# ``continue``), dropping every plugin after it: the OpenLineage listener among them.
_RUNNER = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
path, dag_id, out = sys.argv[1], sys.argv[2], sys.argv[3]
bag = DagBag(dag_folder=path)
assert not bag.import_errors, bag.import_errors
dr = bag.get_dag(dag_id).test()
states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dr.get_task_instances()}
# A file, not stdout: the listener's forked children log to the same stdout, mid-line at times.
with open(out, "w") as fh:
    json.dump({"state": str(getattr(dr.state, "value", dr.state)), "tasks": states}, fh)
"""


@dataclass
class LineageRun:
    state: str
    task_states: dict[str, str]
    events: list[dict[str, Any]] = field(default_factory=list)
    events_text: str = ""
    log: str = ""

    def task_events(self, task_id: str, event_type: str | None = None) -> list[dict[str, Any]]:
        """Events of one task's job (``<dag_id>.<task_id>``), optionally of one type (START, COMPLETE, FAIL)."""
        return [e for e in self.events
                if e.get("job", {}).get("name", "").endswith(f".{task_id}")
                and (event_type is None or e.get("eventType") == event_type)]


def run_dag_with_lineage(source: str, dag_id: str, *, workdir: Path, extra_env: dict[str, str] | None = None,
                         timeout: int = 600) -> LineageRun:
    """Run ``dag_id`` from ``source`` with real ``dag.test()`` in a subprocess whose OpenLineage provider
    writes every event to ``workdir/events.jsonl`` (file transport, append mode)."""
    workdir.mkdir(parents=True, exist_ok=True)
    events = workdir / "events.jsonl"
    events.unlink(missing_ok=True)
    dags_folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    path = dags_folder / f"{dag_id}.py"
    path.write_text(textwrap.dedent(source))
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events),
                                                       "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "aisec-tests",
        # the listener forks per event and waits for the child at most this long
        "AIRFLOW__OPENLINEAGE__EXECUTION_TIMEOUT": "120",
        **(extra_env or {}),
    }
    env.pop("AIRFLOW__OPENLINEAGE__DISABLED", None)
    env.pop("PYTHONPATH", None)
    result = workdir / "run.json"
    result.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-c", _RUNNER, str(path), dag_id, str(result)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(workdir), check=False)
    assert proc.returncode == 0 and result.exists(), (proc.stdout[-3000:] + proc.stderr[-6000:])
    summary = json.loads(result.read_text())
    text = events.read_text() if events.exists() else ""
    parsed = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
    return LineageRun(state=summary["state"], task_states=summary["tasks"], events=parsed, events_text=text,
                      log=proc.stdout + proc.stderr)
