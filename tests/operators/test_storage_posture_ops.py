"""StoragePostureGateOperator in real DAG runs against buckets on the moto server (``S3Hook`` connection)."""

from __future__ import annotations

import pytest

from airflow_aisec.operators.storage import StoragePostureGateOperator
from tests.helpers.buckets import STORAGE_POLICY, compliant_bucket, non_compliant_bucket

pytestmark = pytest.mark.integration

DAG = """
import pendulum
from airflow.sdk import DAG
from airflow_aisec.operators.storage import StoragePostureGateOperator

with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False):
    StoragePostureGateOperator(task_id="storage_gate", uri={uri!r}, policy={policy!r})
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    path = tmp_path_factory.mktemp("storage-op") / "storage.yaml"
    path.write_text(STORAGE_POLICY)
    return str(path)


def test_constructor_stores_arguments_only():
    op = StoragePostureGateOperator(task_id="s", uri="s3://{{ params.bucket }}/x")
    assert op.uri == "s3://{{ params.bucket }}/x" and "uri" in op.template_fields


def test_compliant_bucket_passes_in_a_dag_run(run_dag, s3_server, policy):
    bucket = compliant_bucket(s3_server.client())
    out = run_dag(DAG.format(dag_id="storage_ok", uri=f"s3://{bucket}/training", policy=policy), "storage_ok")
    assert out.state == "success", out.task_states
    result = out.xcom("storage_gate")
    assert result["verdict"] == "pass" and result["metrics"]["objects_checked"] == 3


def test_non_compliant_bucket_fails_the_run(run_dag, s3_server, policy):
    bucket = non_compliant_bucket(s3_server.client())
    out = run_dag(DAG.format(dag_id="storage_bad", uri=f"s3://{bucket}/training", policy=policy), "storage_bad")
    assert out.state == "failed" and out.task_states["storage_gate"] == "failed"
    result = out.xcom("storage_gate")
    assert result["verdict"] == "fail"
    assert {"storage.encryption_missing", "storage.public_acl", "storage.tls_policy_missing",
            "storage.versioning_disabled", "storage.object_unencrypted"} <= {f["rule"] for f in result["findings"]}
    assert "PLANTED-ROW" not in str(out.xcoms)
