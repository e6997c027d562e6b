"""Example: adding gates to a DAG that already exists, in a few lines.

``churn_training_plain`` is an ordinary training DAG. ``churn_training_gated`` is the same DAG after
a platform team retrofitted it: the three gate tasks and the changed dependency line are the whole
change (the README shows it as a diff). Both DAGs run in CI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

from airflow_aisec.operators.model_scan import ModelScanGateOperator
from airflow_aisec.operators.pii import PiiGateOperator
from airflow_aisec.operators.source import SourceValidationOperator

ROOT = os.environ.get("AISEC_EXAMPLE_ROOT", "/tmp/aisec-example")
REFERENCE = f"{ROOT}/reference/churn.csv"
POLICY_DIR = Path(os.environ.get("AISEC_POLICY_DIR", Path(__file__).resolve().parents[1] / "policies"))


def churn_tasks(dag_id: str):
    """The user's existing tasks: extract a feature table, train, publish the model."""

    def features(seed: int):
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng(seed)
        n = 2000
        return pd.DataFrame({
            "customer_id": np.arange(1, n + 1),
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50_000, 12_000, n).round(2),
            "tenure_months": rng.integers(0, 120, n),
            "label": rng.integers(0, 2, n),
        })

    @task
    def extract() -> str:
        reference = Path(REFERENCE)
        if not reference.exists():  # the approved snapshot the gate compares against
            reference.parent.mkdir(parents=True, exist_ok=True)
            tmp = reference.with_suffix(f".{os.getpid()}.tmp")
            features(seed=2).to_csv(tmp, index=False)
            os.replace(tmp, reference)  # never half-written for a concurrent run
        path = Path(ROOT) / "landing" / f"{dag_id}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        features(seed=3).to_csv(path, index=False)
        return str(path)

    @task
    def train(path: str) -> str:
        import json

        import pandas as pd
        from sklearn.linear_model import LogisticRegression

        data = pd.read_csv(path)
        features = ["age", "income", "tenure_months"]
        model = LogisticRegression(max_iter=500).fit(data[features], data["label"])
        out = Path(ROOT) / "models" / dag_id
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.json").write_text(json.dumps({"coef": model.coef_.tolist(),
                                                    "intercept": model.intercept_.tolist()}))
        return str(out)

    @task
    def publish(model_dir: str) -> str:
        return model_dir

    return extract, train, publish


with DAG("churn_training_plain", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         catchup=False, tags=["aisec-example"]) as plain:
    extract, train, publish = churn_tasks("churn_training_plain")
    publish(train(extract()))


with DAG("churn_training_gated", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
         catchup=False, tags=["aisec-example"]) as gated:
    extract, train, publish = churn_tasks("churn_training_gated")
    # [START howto_retrofit]
    data = extract()
    # --- added by the retrofit: three gates and one dependency line -----------------------------
    source_gate = SourceValidationOperator(task_id="source_gate", data=data, reference=REFERENCE,
                                           policy=str(POLICY_DIR / "example-pipeline-source.yaml"))
    pii_gate = PiiGateOperator(task_id="pii_gate", data=data, policy=str(POLICY_DIR / "strict.yaml"))
    model = train(data)
    scan_gate = ModelScanGateOperator(task_id="scan_gate", model=model, policy=str(POLICY_DIR / "strict.yaml"))
    data >> source_gate >> pii_gate >> model >> scan_gate >> publish(model)
    # [END howto_retrofit]
