"""Example: the PII gate over a partitioned table, one mapped task per partition, one verdict.

``list_partitions`` lists the Parquet row groups (or files) of the table at run time; ``scan_partition``
is mapped over them (each task scans one partition and returns a value-free summary: counts, row
positions, digests); ``pii_gate`` merges the summaries, checks their MACs and digests and that every
partition of the signed list was scanned once, and applies the policy once: one result, one
audit-trail record listing every partition's digest. Verdict, findings and counts are those of
``PiiGateOperator`` on the whole table. With CeleryExecutor / KubernetesExecutor the partitions are
scanned on as many workers as there are.

The workers need ``[aisec] handoff_key`` (``AIRFLOW__AISEC__HANDOFF_KEY``; ``aisec secrets handoff-key``
prints one, ``docker/compose.yaml`` and ``scripts/demo.py`` set it on the workers, the test suite for its
whole session): the partition list and the summaries cross XCom authenticated with it, and without it the
three tasks refuse to run. A DAG file cannot set it (settings are the platform's).

Settings (read at parse time from the environment, no I/O):

* ``AISEC_PARTITIONED_DATA``: a Parquet / CSV file, a directory or an ``s3://`` prefix
  (default ``$AISEC_EXAMPLE_ROOT/partitioned/customers.parquet``);
* ``AISEC_PARTITION_BY``: ``row_group`` (default) or ``file``;
* ``AISEC_CLASSIFICATION``: the dataset's declared level (default: the policy's);
* ``AISEC_POLICY_DIR``: where ``strict.yaml`` lives (default: ``../policies``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_aisec.operators.partitions import (
    GateMergeOperator,
    GatePartitionListOperator,
    GatePartitionScanOperator,
)

ROOT = Path(os.environ.get("AISEC_EXAMPLE_ROOT", "/tmp/aisec-example")) / "partitioned"
DATA = os.environ.get("AISEC_PARTITIONED_DATA", str(ROOT / "customers.parquet"))
PARTITION_BY = os.environ.get("AISEC_PARTITION_BY", "row_group")
CLASSIFICATION = os.environ.get("AISEC_CLASSIFICATION") or None
POLICY_DIR = Path(os.environ.get("AISEC_POLICY_DIR", Path(__file__).resolve().parents[1] / "policies"))
POLICY = str(POLICY_DIR / "strict.yaml")

with DAG(
    "partitioned_pii",
    description="PII gate over a partitioned table: mapped scans, one merged verdict",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["aisec-example", "pii", "partitioned"],
) as dag:
    # [START howto_partitioned_pii]
    parts = GatePartitionListOperator(task_id="list_partitions", data=DATA, by=PARTITION_BY)
    scans = GatePartitionScanOperator.partial(task_id="scan_partition", gate="pii", policy=POLICY) \
        .expand(data=parts.output)
    GateMergeOperator(task_id="pii_gate", gate="pii", policy=POLICY, summaries=scans.output,
                      partitions=parts.output, data=DATA,
                      inputs={"classification": CLASSIFICATION} if CLASSIFICATION else {})
    # [END howto_partitioned_pii]
