"""Every operator and sensor constructor only stores its arguments: no file, network or process access.

Airflow runs the constructors each time it parses a DAG file (dag-processor, scheduler, workers), so any
I/O there slows every parse and fails in places where the inputs do not exist. ``forbid_io`` sees
``open``/``Path.read_text``, ``os.stat``/``os.path.exists``, directory listings, sockets, DNS and
subprocesses (``tests/test_no_io_helper.py`` proves it).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from tests.helpers.no_io import forbid_io

POLICY = {"policy": "/nonexistent/aisec/policy.yaml", "evidence_location": "s3://nowhere-evidence/trail"}

#: (class path, typical arguments) for every public operator and sensor; one entry per argument style.
CASES = [
    ("airflow_aisec.operators.partitions.GatePartitionListOperator", {"data": "s3://nowhere/lake/", "by": "row_group"}),
    ("airflow_aisec.operators.partitions.GatePartitionScanOperator",
     {"gate": "pii", "data": "s3://nowhere/x.parquet#row_group=0", **POLICY}),
    ("airflow_aisec.operators.partitions.GateMergeOperator",
     {"gate": "pii", "summaries": [], "partitions": "<listing task output>", **POLICY}),
    ("airflow_aisec.operators.bias.BiasGateOperator",
     {"data": "s3://nowhere/scores.csv", "label_column": "y", "prediction_column": "p",
      "sensitive_columns": "sex,age_band", "report_location": "s3://nowhere/reports/", **POLICY}),
    ("airflow_aisec.operators.drift.DriftGateOperator",
     {"reference": "s3://nowhere/ref.csv", "current": "/nonexistent/current.parquet", "features": ["a", "b"],
      "report_location": "/nonexistent/reports", **POLICY}),
    ("airflow_aisec.operators.model_scan.ModelScanGateOperator", {"model": "s3://nowhere/models/m/", **POLICY}),
    ("airflow_aisec.operators.prompt_injection.PromptInjectionScanOperator",
     {"data": "s3://nowhere/rag/", "columns": ["text"], **POLICY}),
    ("airflow_aisec.operators.llm_redteam.LlmRedTeamGateOperator",
     {"endpoint": "https://models.nowhere.example", "model": "m", "conn_id": "model_nope",
      "vault_secret_path": "ml/model-token", "vault_conn_id": "vault_nope", **POLICY}),
    ("airflow_aisec.operators.pii.PiiGateOperator",
     {"data": "s3://nowhere/customers.csv", "classification": "internal", "data_format": "csv", **POLICY}),
    ("airflow_aisec.operators.pii.PiiRedactOperator",
     {"data": "/nonexistent/in.parquet", "output_uri": "s3://nowhere/out.parquet",
      "classification": "confidential", "vault_conn_id": "vault_nope", **POLICY}),
    ("airflow_aisec.operators.secrets.VaultSecretsGateOperator",
     {"paths": ["ml/app/db", "ml/app/api"], "wrap_ttl": 300, "vault_conn_id": "vault_nope", **POLICY}),
    ("airflow_aisec.operators.secrets.VaultSecretsGateOperator",
     {"paths": {"ml/app/db": ["password"]}, **POLICY}),
    ("airflow_aisec.operators.signing.ModelSignOperator",
     {"model": "/nonexistent/models/m", "transit_key": "model-signing", "vault_conn_id": "vault_nope", **POLICY}),
    ("airflow_aisec.operators.signing.ModelSignOperator",
     {"model": "s3://nowhere/models/m/", "private_key": "/nonexistent/keys/signer.pem", **POLICY}),
    ("airflow_aisec.operators.signing.ModelVerifyGateOperator",
     {"model": "s3://nowhere/models/m/", "public_key": "/nonexistent/keys/pub.pem", **POLICY}),
    ("airflow_aisec.operators.signing.ModelVerifyGateOperator",
     {"model": "/nonexistent/models/m", "signature": "/nonexistent/m.sig", "transit_key": "model-signing",
      **POLICY}),
    ("airflow_aisec.operators.source.SourceValidationOperator",
     {"data": ["s3://nowhere/a.parquet", "/nonexistent/b.csv"], "reference": "s3://nowhere/ref.parquet",
      "aws_conn_id": "aws_nope", **POLICY}),
    ("airflow_aisec.operators.endpoint.EndpointSecurityGateOperator",
     {"url": "https://models.nowhere.example/churn", "token_conn_id": "serving_nope",
      "ca_bundle": "/nonexistent/ca.pem", **POLICY}),
    ("airflow_aisec.operators.endpoint.EndpointSecurityGateOperator",
     {"url": "https://models.nowhere.example", "vault_secret_path": "serving/token", "vault_conn_id": "vault_nope",
      **POLICY}),
    ("airflow_aisec.operators.storage.StoragePostureGateOperator",
     {"uri": "s3://nowhere/training/", "aws_conn_id": "aws_nope", **POLICY}),
    ("airflow_aisec.operators.approval.AisecWaiverApprovalOperator",
     {"gate_task_id": "drift_gate", "body": "Legacy model", "evidence_location": "s3://nowhere-evidence/trail"}),
    ("airflow_aisec.sensors.signing.ModelSignatureSensor",
     {"model": "s3://nowhere/models/m/", "transit_key": "model-signing", "poke_interval": 5, "timeout": 60,
      "mode": "reschedule", **POLICY}),
    ("airflow_aisec.sensors.signing.ModelSignatureSensor",
     {"model": "/nonexistent/models/m", "public_key": "/nonexistent/keys/pub.pem", **POLICY}),
]


def _load(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


#: (case, in a DAG?) for every case both ways, but a merge: its partitions= is another task's output,
#: and tasks can be related only inside a DAG.
COMBINATIONS = [(i, in_dag) for i, (_, kwargs) in enumerate(CASES) for in_dag in (True, False)
                if in_dag or "partitions" not in kwargs]


@pytest.mark.parametrize(("case", "in_dag"), COMBINATIONS,
                         ids=[f"{CASES[i][0].rsplit('.', 1)[1]}-{i}-{'in_dag' if d else 'standalone'}"
                              for i, d in COMBINATIONS])
def test_constructor_does_no_io(case, in_dag):
    from airflow.sdk import DAG

    from airflow_aisec.operators.partitions import GatePartitionListOperator

    path, kwargs = CASES[case]
    cls = _load(path)  # importing the module may read files; constructing it may not

    def construct():
        args = dict(kwargs)
        if args.get("partitions") == "<listing task output>":
            args["partitions"] = GatePartitionListOperator(task_id="list", data="s3://nowhere/lake/").output
        return cls(task_id="gate", **args)

    if in_dag:
        with DAG(f"no_io_{cls.__name__}", schedule=None, default_args={"retries": 2}), \
                forbid_io(f"{cls.__name__}.__init__"):
            op = construct()
    else:
        with forbid_io(f"{cls.__name__}.__init__"):
            op = construct()
    assert op.task_id == "gate"
    for name, value in kwargs.items():
        if name in ("poke_interval", "timeout", "mode", "paths", "partitions"):
            continue  # normalised by the base class / the operator; an XComArg made here
        assert getattr(op, name) == value, name


def test_every_operator_and_sensor_is_covered():
    from airflow.sdk import BaseOperator

    import airflow_aisec.operators
    import airflow_aisec.sensors
    from airflow_aisec.operators.base import AisecGateOperator, AisecGateSensor

    found = set()
    for pkg in (airflow_aisec.operators, airflow_aisec.sensors):
        for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
            module = importlib.import_module(info.name)
            for name, obj in inspect.getmembers(module, inspect.isclass):
                if (obj.__module__ == module.__name__ and issubclass(obj, BaseOperator)
                        and not name.startswith("_") and obj not in (AisecGateOperator, AisecGateSensor)):
                    found.add(f"{obj.__module__}.{name}")
    assert found == {path for path, _ in CASES}
