"""Example: a secure ML training pipeline, every stage behind a security gate.

ingest -> source validation -> PII classification -> redaction -> Vault secrets -> train
-> bias gate -> unsafe-file scan -> sign (Vault Transit) -> verification gate -> deploy

The signing task also writes signed provenance next to the signature (``model.provenance.json``:
the model digest, the training dataset's sha256 with its source and PII records in the central
audit trail, this file's sha256 and git commit, the run id and the training parameters), and the
verification gate requires it: a model deploys only if it was trained on data that passed the gates.

Four DAGs come from this file:

* ``secure_ml_training_pipeline``: the happy path; every gate passes, the model is deployed.
* ``secure_ml_training_pipeline_tampered``: the model directory is modified after signing
  (a supply-chain attack between build and release); the verification gate fails the run.
* ``secure_ml_training_pipeline_poisoned``: a third of the landed labels are flipped (data
  poisoning); the source-validation gate fails the run against the trusted reference.
* ``secure_ml_training_pipeline_unvetted_data``: training reads a side extract that never went
  through the source and PII gates; the model is signed with that dataset in its provenance and
  the verification gate fails the run (``signing.provenance_dataset``).

Settings (read at parse time from the environment, no I/O):

* ``AISEC_EXAMPLE_ROOT``: local storage root; its last component must be ``aisec-example``
  (the example policy allows data landed under ``*/aisec-example/landing/``).
* ``AISEC_POLICY_DIR``: where the policies live (default: ``../policies`` next to this folder).
* Airflow connection ``vault_default`` (KV v2 secret ``ml/training/feature-store`` and Transit key
  ``model-signing``; ``scripts/demo.py`` and ``docker/openbao/init.sh`` set both up).

Example DAGs double as system tests: ``tests/dags/`` runs each of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

from airflow_aisec.operators.bias import BiasGateOperator
from airflow_aisec.operators.model_scan import ModelScanGateOperator
from airflow_aisec.operators.pii import PiiGateOperator, PiiRedactOperator
from airflow_aisec.operators.secrets import VaultSecretsGateOperator, vault_secrets
from airflow_aisec.operators.signing import ModelSignOperator, ModelVerifyGateOperator
from airflow_aisec.operators.source import SourceValidationOperator

ROOT = os.environ.get("AISEC_EXAMPLE_ROOT", "/tmp/aisec-example")
POLICY_DIR = Path(os.environ.get("AISEC_POLICY_DIR", Path(__file__).resolve().parents[1] / "policies"))
STRICT = str(POLICY_DIR / "strict.yaml")
SOURCE_POLICY = str(POLICY_DIR / "example-pipeline-source.yaml")

FEATURES = ["age", "income", "tenure_months"]
#: Given to the model and recorded (signed) in the provenance.
TRAINING_PARAMS = {"estimator": "LogisticRegression", "max_iter": 1000, "test_size": 0.3, "random_state": 0,
                   "features": FEATURES, "label": "label"}
SECRET_PATH = "ml/training/feature-store"


def make_customers(n: int, seed: int, flip_labels: float = 0.0):
    """A synthetic customer table with PII columns, features, a sensitive attribute and a label."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = rng.normal(52_000, 15_000, n).round(2).clip(8_000, None)
    tenure = rng.integers(0, 120, n)
    group = rng.choice(["A", "B"], n)  # sensitive attribute, independent of the features
    logit = 0.04 * (age - 45) + 0.00004 * (income - 52_000) + 0.015 * (tenure - 60)
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    if flip_labels:
        flip = rng.random(n) < flip_labels
        label = np.where(flip & (label == 0), 1, label)  # poisoning: push the positive class
    ids = np.arange(1, n + 1)
    ssn = [f"{rng.integers(100, 665):03d}-{rng.integers(10, 99):02d}-{rng.integers(1000, 9999):04d}" for _ in ids]
    notes = [f"called about plan; ssn {s} verified" if i % 50 == 0 else "no issues" for i, s in zip(ids, ssn)]
    return pd.DataFrame(
        {
            "customer_id": ids,
            "email": [f"customer{i}@example.com" for i in ids],
            "phone": [f"+1 212 555 {i % 10000:04d}" for i in ids],
            "ssn": ssn,
            "note": notes,
            "age": age,
            "income": income,
            "tenure_months": tenure,
            "group": group,
            "label": label,
        }
    )


def build_pipeline(dag_id: str, *, variant: str = "secure") -> DAG:
    """One secure pipeline; ``variant`` injects an attack (``tampered``, ``poisoned`` or ``unvetted_data``)."""
    root = f"{ROOT}/{{{{ run_id | replace(':', '_') | replace('+', '_') }}}}"
    landing = f"{ROOT}/landing/{dag_id}.csv"
    reference = f"{ROOT}/reference/customers.csv"
    redacted = f"{root}/redacted/customers.csv"
    side_extract = f"{root}/side/customers.csv"  # the unvetted_data variant's shortcut, never gated
    training_data = side_extract if variant == "unvetted_data" else redacted
    model_dir = f"{root}/model"
    signature = f"{root}/model.sig"

    # [START howto_platform_dag]
    with DAG(
        dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["aisec-example", "model-deployment", "personal-data"],
        doc_md=__doc__,
    ) as dag:
        # [END howto_platform_dag]

        @task
        def ingest(run_dir: str) -> str:
            """Land today's extract (and the trusted reference, once); prepare this run's workspace."""
            Path(run_dir, "redacted").mkdir(parents=True, exist_ok=True)
            Path(reference).parent.mkdir(parents=True, exist_ok=True)
            if not Path(reference).exists():
                # write-then-rename: a concurrent first run never reads a half-written reference
                tmp = f"{reference}.{os.getpid()}.tmp"
                make_customers(4000, seed=7).to_csv(tmp, index=False)
                os.replace(tmp, reference)
            Path(landing).parent.mkdir(parents=True, exist_ok=True)
            make_customers(4000, seed=11, flip_labels=0.35 if variant == "poisoned" else 0.0).to_csv(
                landing, index=False
            )
            if variant == "unvetted_data":
                # The attack: an extract pulled straight from the CRM, raw PII included, past every gate.
                Path(run_dir, "side").mkdir(parents=True, exist_ok=True)
                make_customers(4000, seed=13).to_csv(Path(run_dir, "side", "customers.csv"), index=False)
            return landing

        # [START howto_source_gate]
        validate_source = SourceValidationOperator(
            task_id="validate_source", data=landing, reference=reference, policy=SOURCE_POLICY
        )
        # [END howto_source_gate]
        # [START howto_pii_gate]
        # The raw extract is declared restricted: it may hold any PII, and the gate records which.
        classify_pii = PiiGateOperator(
            task_id="classify_pii", data=landing, classification="restricted", policy=STRICT
        )
        # Training data must be public: the redacted copy is re-scanned and must pass.
        redact_pii = PiiRedactOperator(
            task_id="redact_pii", data=landing, output_uri=redacted, classification="public", policy=STRICT
        )
        # [END howto_pii_gate]
        # [START howto_secrets_gate]
        fetch_secrets = VaultSecretsGateOperator(
            task_id="fetch_secrets", paths={SECRET_PATH: ["token"]}, policy=STRICT
        )
        # [END howto_secrets_gate]

        @task
        def train(run_dir: str, data_file: str) -> str:
            """Fit a logistic regression on the training data (redacted); save it pickle-free (JSON)."""
            import json

            import pandas as pd
            from sklearn.linear_model import LogisticRegression
            from sklearn.model_selection import train_test_split

            # [START howto_secrets_consume]
            with vault_secrets("fetch_secrets") as secrets:
                token = secrets[SECRET_PATH]["token"]  # masked in logs; used for the feature store
                assert token, "feature-store token missing"
            # [END howto_secrets_consume]
            p = TRAINING_PARAMS
            data = pd.read_csv(data_file)
            train_df, test_df = train_test_split(data, test_size=p["test_size"], random_state=p["random_state"],
                                                 stratify=data[p["label"]])
            model = LogisticRegression(max_iter=p["max_iter"]).fit(train_df[FEATURES], train_df[p["label"]])
            out = Path(run_dir) / "model"
            out.mkdir(parents=True, exist_ok=True)
            (out / "model.json").write_text(json.dumps({
                "type": "sklearn.linear_model.LogisticRegression",
                "features": FEATURES,
                "coef": model.coef_.tolist(),
                "intercept": model.intercept_.tolist(),
                "classes": model.classes_.tolist(),
            }, indent=2))
            (out / "README.md").write_text("Churn model trained by secure_ml_training_pipeline.\n")
            predictions = test_df[["label", "group"]].copy()
            predictions["prediction"] = model.predict(test_df[FEATURES])
            predictions.to_csv(Path(run_dir) / "predictions.csv", index=False)
            return str(out)

        # [START howto_bias_gate]
        check_bias = BiasGateOperator(
            task_id="check_bias",
            data=f"{root}/predictions.csv",
            label_column="label",
            prediction_column="prediction",
            sensitive_columns=["group"],
            policy=STRICT,
        )
        # [END howto_bias_gate]
        # [START howto_model_scan_gate]
        scan_model = ModelScanGateOperator(task_id="scan_model", model=model_dir, policy=STRICT)
        # [END howto_model_scan_gate]
        # [START howto_signing_gate]
        sign_model = ModelSignOperator(
            task_id="sign_model",
            model=model_dir,
            signature=signature,
            transit_key="model-signing",
            datasets=[training_data],
            training_params=TRAINING_PARAMS,
            policy=STRICT,
        )
        verify_model = ModelVerifyGateOperator(
            task_id="verify_model_signature",
            model=model_dir,
            signature=signature,
            transit_key="model-signing",
            require_provenance=True,
            policy=STRICT,
        )
        # [END howto_signing_gate]

        @task
        def deploy(run_dir: str) -> str:
            """Copy the verified model, its signature and its provenance to the serving location."""
            import shutil

            target = Path(ROOT) / "serving" / dag_id
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(Path(run_dir) / "model", target / "model")
            shutil.copy2(Path(run_dir) / "model.sig", target / "model.sig")
            shutil.copy2(Path(run_dir) / "model.provenance.json", target / "model.provenance.json")
            return str(target)

        # [START howto_pipeline_chain]
        trained = train(root, training_data)
        ingest(root) >> validate_source >> classify_pii >> redact_pii >> fetch_secrets >> trained
        trained >> check_bias >> scan_model >> sign_model
        if variant == "tampered":

            @task
            def tamper_with_model(run_dir: str) -> None:
                """The attack: someone swaps the weights after the model was signed."""
                path = Path(run_dir) / "model" / "model.json"
                path.write_text(path.read_text().replace('"coef": [', '"coef": [[9.99], ', 1))

            sign_model >> tamper_with_model(root) >> verify_model
        else:
            sign_model >> verify_model
        verify_model >> deploy(root)
        # [END howto_pipeline_chain]
    return dag


secure_ml_training_pipeline = build_pipeline("secure_ml_training_pipeline")
secure_ml_training_pipeline_tampered = build_pipeline("secure_ml_training_pipeline_tampered", variant="tampered")
secure_ml_training_pipeline_poisoned = build_pipeline("secure_ml_training_pipeline_poisoned", variant="poisoned")
secure_ml_training_pipeline_unvetted_data = build_pipeline(
    "secure_ml_training_pipeline_unvetted_data", variant="unvetted_data"
)
