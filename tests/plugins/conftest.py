"""Fixtures for the UI plugin tests: real gate results produced by real DAG runs.

A tiny gate operator (defined in the DAG files below) subclasses the real
``AisecGateOperator`` and returns the findings it is given, so every XCom the UI
reads was pushed by the real base class during a real ``dag.test()`` run.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# The test auth manager is named by its import path in Airflow's config: make it importable.
sys.path.insert(0, str(Path(__file__).parent))

from ui_dags import (
    MIXED_DAG,
    SECRET_DAG,
    XSS_PAYLOAD,
    mixed_dag_source,
    pick_gate,
    policy_text,
    secret_dag_source,
)


@dataclass
class GateRuns:
    gate: str
    policy_path: Path
    policy_sha256: str
    report_path: Path
    mixed_run_id: str
    secret_run_id: str
    mixed_state: str
    task_states: dict


@pytest.fixture(scope="session")
def report_root(session_dir) -> Path:
    root = session_dir / "aisec-reports"
    root.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW__AISEC__REPORT_ROOTS"] = str(root)
    from airflow_aisec import settings

    settings.reload()  # settings are a snapshot: take a new one with the report root
    return root


@pytest.fixture(scope="session")
def gate_runs(run_dag, session_dir, report_root) -> GateRuns:
    import hashlib

    gate = pick_gate()
    policy_path = session_dir / "ui-policy.yaml"
    policy_path.write_text(policy_text(gate))
    report = report_root / "drift-report.html"
    report.write_text(f"<html><body><h1>Drift report</h1><p>{XSS_PAYLOAD}</p></body></html>")
    mixed = run_dag(mixed_dag_source(gate, str(policy_path), str(report), str(report_root)), MIXED_DAG)
    secret = run_dag(secret_dag_source(gate, str(policy_path)), SECRET_DAG)
    return GateRuns(
        gate=gate,
        policy_path=policy_path,
        policy_sha256=hashlib.sha256(policy_path.read_bytes()).hexdigest(),
        report_path=report,
        mixed_run_id=mixed.run_id,
        secret_run_id=secret.run_id,
        mixed_state=mixed.state,
        task_states=mixed.task_states,
    )
