"""Example: "train only on data that passed", with Airflow's own scheduling.

A gate given ``outlets`` emits an asset event only when it passes (or warns), and attaches its
verdict, policy sha256 and audit-trail record digest to the event's ``extra["aisec"]``. A failed gate
fails its task, and a failed task emits no asset event: nothing downstream is scheduled.

* ``certify_churn_features``: lands a feature table; the PII gate certifies it
  (asset ``certified_churn_features``).
* ``certify_churn_features_leaky``: the same extract after an upstream change that started to ship
  e-mail addresses: the PII gate fails and the asset gets no event.
* ``train_on_certified_features`` (scheduled on ``certified_churn_features``): trains, and the model
  scan gate certifies the model (asset ``certified_churn_model``).
* ``deploy_certified_model`` (scheduled on ``certified_churn_model``): deploys only a model whose
  triggering event carries a passing certification; a manual run without one fails closed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Asset, task

from airflow_aisec.operators.model_scan import ModelScanGateOperator
from airflow_aisec.operators.pii import PiiGateOperator

ROOT = os.environ.get("AISEC_EXAMPLE_ROOT", "/tmp/aisec-example")
POLICY_DIR = Path(os.environ.get("AISEC_POLICY_DIR", Path(__file__).resolve().parents[1] / "policies"))
STRICT = str(POLICY_DIR / "strict.yaml")
FEATURES = f"{ROOT}/certified/churn_features.csv"
MODEL_DIR = f"{ROOT}/certified/churn_model"

# [START howto_certified_assets]
CERTIFIED_FEATURES = Asset(name="certified_churn_features", uri=f"file://{FEATURES}")
CERTIFIED_MODEL = Asset(name="certified_churn_model", uri=f"file://{MODEL_DIR}")
# [END howto_certified_assets]
START = pendulum.datetime(2026, 1, 1, tz="UTC")


def land_features(leaky: bool):
    @task(task_id="extract")
    def extract() -> str:
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng(7)
        n = 1000
        frame = pd.DataFrame({
            "customer_id": np.arange(1, n + 1),
            "age": rng.integers(18, 80, n),
            "tenure_months": rng.integers(0, 120, n),
            "label": rng.integers(0, 2, n),
        })
        if leaky:  # the upstream change: a contact column nobody asked for
            frame["contact"] = [f"customer{i}@example.com" for i in range(n)]
        path = Path(FEATURES)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
        return str(path)

    return extract()


for dag_id, leaky in (("certify_churn_features", False), ("certify_churn_features_leaky", True)):
    with DAG(dag_id, schedule=None, start_date=START, catchup=False, tags=["aisec-example"]):
        # [START howto_certify_dataset]
        certify = PiiGateOperator(task_id="certify_features", data=FEATURES, policy=STRICT,
                                  outlets=[CERTIFIED_FEATURES])
        # [END howto_certify_dataset]
        land_features(leaky) >> certify


with DAG("train_on_certified_features", schedule=[CERTIFIED_FEATURES], start_date=START, catchup=False,
         tags=["aisec-example"]):

    @task
    def train() -> str:
        import json

        import pandas as pd
        from sklearn.linear_model import LogisticRegression

        data = pd.read_csv(FEATURES)
        model = LogisticRegression(max_iter=500).fit(data[["age", "tenure_months"]], data["label"])
        out = Path(MODEL_DIR)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.json").write_text(json.dumps({"coef": model.coef_.tolist(),
                                                    "intercept": model.intercept_.tolist()}))
        return str(out)

    # [START howto_certify_model]
    certify_model = ModelScanGateOperator(task_id="certify_model", model=MODEL_DIR, policy=STRICT,
                                          outlets=[CERTIFIED_MODEL])
    # [END howto_certify_model]
    train() >> certify_model


with DAG("deploy_certified_model", schedule=[CERTIFIED_MODEL], start_date=START, catchup=False,
         tags=["aisec-example"]):

    # [START howto_consume_certified_asset]
    @task
    def deploy(triggering_asset_events=None) -> str:
        from airflow.sdk.exceptions import AirflowFailException

        events = (triggering_asset_events or {}).get(CERTIFIED_MODEL, [])
        certified = [e for e in events if (e.extra or {}).get("aisec", {}).get("verdict") in ("pass", "warn")]
        if not certified:
            raise AirflowFailException("no certified model event: refusing to deploy")
        cert = certified[-1].extra["aisec"]
        print(f"deploying {MODEL_DIR}: {cert['gate']} {cert['verdict']}, policy {cert['policy_sha256'][:12]}, "
              f"evidence {cert['evidence_sha256'][:12]}")
        return MODEL_DIR
    # [END howto_consume_certified_asset]

    deploy()
