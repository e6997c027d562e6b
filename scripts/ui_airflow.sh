#!/usr/bin/env bash
# Start a throw-away Airflow (api-server + scheduler + dag-processor, SQLite, LocalExecutor) on a free
# loopback port with the UI plugin's test DAG, run it once (one gate fails), and keep it up until Ctrl-C,
# to look at the "Security gates" tab and overview by hand. Same code as the browser test's fixture.
#   usage: scripts/ui_airflow.sh [AIRFLOW_HOME_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
source .venv/bin/activate
HOME_DIR="${1:-$(mktemp -d -t aisec-ui-XXXXXX)}"
exec python - "$HOME_DIR" <<'PY'
import sys, time
from pathlib import Path
sys.path.insert(0, "tests/plugins")
from ui_airflow import ADMIN_PASSWORD, live_airflow
from ui_dags import MIXED_DAG, mixed_dag_source, pick_gate, policy_text

root = Path(sys.argv[1])
root.mkdir(parents=True, exist_ok=True)
home = root / "airflow"
gate = pick_gate()
policy = root / "policy.yaml"
policy.write_text(policy_text(gate))
reports = home / "evidence" / "reports"
reports.mkdir(parents=True, exist_ok=True)
report = reports / "drift-report.html"
report.write_text("<html><body><h1>Drift report</h1></body></html>")
with live_airflow(home, {f"{MIXED_DAG}.py": mixed_dag_source(gate, str(policy), str(report), str(reports))}) as live:
    live.wait_for_dag(MIXED_DAG)
    run_id = live.trigger(MIXED_DAG)
    print(f"run {run_id}: {live.wait_for_run(MIXED_DAG, run_id)}", flush=True)
    print(f"open {live.base_url}/dags/{MIXED_DAG}/runs/{run_id}/plugin/aisec-gates", flush=True)
    print(f"login admin / {ADMIN_PASSWORD}   (Ctrl-C stops Airflow; home: {home})", flush=True)
    try:
        while True:
            live.check_alive()
            time.sleep(2)
    except KeyboardInterrupt:
        pass
PY
