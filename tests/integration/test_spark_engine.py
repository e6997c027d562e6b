"""``--engine spark``: a real local Spark (PySpark + Java) runs the pii core per Arrow batch (mapInArrow);
the merged result equals the single-node scan: verdict, findings, counts."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.gates.pii import check_pii
from airflow_aisec.core.gates.pii.summary import check_partitioned
from airflow_aisec.core.policy.sections.pii import PiiPolicy
from airflow_aisec.exceptions import InputDataError
from tests.helpers.env import REPO
from tests.helpers.partitions import assert_value_free, comparable, planted_table, write_files, write_whole

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]


def policy() -> PiiPolicy:
    return PiiPolicy.model_validate({
        "levels": {"public": {"forbidden": ["*"]}, "restricted": {"allowed": ["*"]}},
        "min_count": 1, "scan": {"batch_rows": 100}})


@pytest.fixture(scope="module")
def spark():
    from airflow_aisec.core.engines.spark import spark_session

    session = spark_session("local[2]", app_name="aisec-test")
    session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "77")  # many batches, spanning row groups
    session.conf.set("spark.sql.files.maxPartitionBytes", "4096")  # several executor tasks per file
    yield session
    session.stop()


def test_spark_equals_local_on_one_file_and_on_a_directory(spark, tmp_path):
    from airflow_aisec.core.engines.spark import check_pii_spark

    section = policy()
    whole = write_whole(planted_table(3000), tmp_path / "whole.parquet", row_group_size=250)
    on_spark = check_pii_spark(section, str(whole), spark=spark)
    local = check_pii(section, str(whole))
    assert on_spark.findings and comparable(on_spark) == comparable(local)
    assert_value_free(on_spark.model_dump(mode="json"))
    assert check_pii_spark(section, str(whole), spark=spark, classification="restricted").findings == []

    lake = tmp_path / "lake"
    write_files(planted_table(3000), lake, [1000, 7, 993, 1000])
    on_spark = check_pii_spark(section, str(lake), spark=spark)
    assert comparable(on_spark) == comparable(check_partitioned(section, str(lake)))
    pq.write_table(planted_table(3000), tmp_path / "all.parquet")
    assert comparable(on_spark, drop_uri=True) == comparable(check_pii(section, str(tmp_path / "all.parquet")),
                                                            drop_uri=True)


def test_files_with_different_schemas_are_refused(spark, tmp_path):
    from airflow_aisec.core.engines.spark import check_pii_spark

    lake = tmp_path / "mixed"
    write_files(planted_table(200), lake, [100, 100])
    pq.write_table(planted_table(10).drop(["notes"]), lake / "part-00002.parquet")
    with pytest.raises(InputDataError, match="schema"):
        check_pii_spark(policy(), str(lake), spark=spark)


def test_cli_engine_spark_gives_the_local_result(tmp_path, aisec_cli):
    data = write_whole(planted_table(2000), tmp_path / "customers.parquet", row_group_size=300)
    strict = str(REPO / "policies" / "strict.yaml")
    local = aisec_cli("pii", "scan", str(data), "--policy", strict, "--json")
    spark = aisec_cli("pii", "scan", str(data), "--policy", strict, "--json", "--engine", "spark",
                      "--spark-master", "local[2]", timeout=1200)
    assert local.returncode == spark.returncode == 1, spark.stderr[-2000:]
    a, b = json.loads(local.stdout), json.loads(spark.stdout)
    keep = ("verdict", "findings", "metrics", "inputs", "policy")
    assert comparable({k: a[k] for k in keep}) == comparable({k: b[k] for k in keep})
    assert a["verdict"] == b["verdict"] == "fail"
    assert_value_free([spark.stdout, spark.stderr])
