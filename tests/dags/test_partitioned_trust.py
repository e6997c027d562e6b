"""Whoever can write XCom cannot make the partitioned gate show a pass that did not happen: real ``dag.test()``
runs where a task stands in for the XCom writer (forges, drops, replays), and runs without ``handoff_key``.

The data puts all its PII in the last row group, so the gate passes exactly when that partition's summary
is hidden from the merge: every test below would show a pass without the MACs."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from tests.helpers.env import REPO, patched_environ
from tests.helpers.partitions import assert_value_free, planted_table, write_whole

pytestmark = pytest.mark.integration

DAG_FILE = REPO / "dags" / "partitioned_pii.py"
POLICY = str(REPO / "policies" / "strict.yaml")
HEADER = """
from airflow.sdk import DAG, task
import pendulum
from airflow_aisec.operators.partitions import (GateMergeOperator, GatePartitionListOperator,
                                                GatePartitionScanOperator, MANIFEST_XCOM_KEY)
DATA, POLICY = {data!r}, {policy!r}
"""


def _env(data, **extra):
    return {"AISEC_PARTITIONED_DATA": str(data), "AISEC_PARTITION_BY": "row_group", "AISEC_CLASSIFICATION": "",
            "AISEC_POLICY_DIR": str(REPO / "policies"),
            "AIRFLOW__AISEC__BASELINE_POLICY": str(REPO / "policies" / "baseline.yaml"),
            "AIRFLOW__AISEC__POLICY_ROOTS": str(REPO / "policies"), **extra}


def _pii_last(path, *, clean=False):
    """1000 rows in 4 row groups; PII only in the last one (none at all with ``clean``)."""
    planted, spotless = planted_table(), planted_table(clean=True)
    table = spotless if clean else pa.concat_tables([spotless.slice(0, 750), planted.slice(750)])
    return write_whole(table, path, row_group_size=250)


def _run(run_dag, body, dag_id, data, **fmt):
    src = HEADER.format(data=str(data), policy=POLICY) + \
        f'with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False):\n' \
        + body.format(**fmt)
    with patched_environ(_env(data)):
        return run_dag(src, dag_id)


def _would_pass(data, partitions):
    """The core verdict on the first ``partitions`` row groups alone: what a merge shown less data says."""
    from airflow_aisec.core.gates.pii.summary import check_summary, summarize_partition
    from airflow_aisec.core.partitions import merge_all
    from airflow_aisec.core.policy import load_policy

    section = load_policy(POLICY).section("pii")
    uris = [f"{data}#row_group={i}" for i in range(partitions)]
    return check_summary(section, merge_all([summarize_partition(section, u, partition_id=u) for u in uris])) \
        .findings == []


def _violation(out, rule):
    assert out.state == "failed" and out.task_states["pii_gate"] == "failed", out.task_states
    result = out.xcom("pii_gate")
    assert result["verdict"] == "fail"
    assert [(f["rule"], f["severity"], f["waived"]) for f in result["findings"]] == [(rule, "critical", False)]
    assert_value_free({f"{t}/{k}": v for (t, k), v in out.xcoms.items()})
    return result


DROP = """
    parts = GatePartitionListOperator(task_id="list_partitions", data=DATA, by="row_group")

    @task
    def drop_last(uris):
        # The XCom writer drops the partition with the PII from the list and from its signed copy.
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
        manifest = dict(ti.xcom_pull(task_ids="list_partitions", key=MANIFEST_XCOM_KEY))
        manifest["partitions"] = manifest["partitions"][:-1]
        ti.xcom_push(key=MANIFEST_XCOM_KEY, value=manifest)
        return list(uris)[:-1]

    kept = drop_last(parts.output)
    scans = GatePartitionScanOperator.partial(task_id="scan_partition", gate="pii", policy=POLICY) \\
        .expand(data=kept)
    GateMergeOperator(task_id="pii_gate", gate="pii", policy=POLICY, summaries=scans.output, partitions=kept)
"""


def test_a_partition_dropped_with_its_list_entry_is_a_critical_violation(run_dag, tmp_path):
    data = _pii_last(tmp_path / "customers.parquet")
    out = _run(run_dag, DROP, "partitioned_dropped", data)
    assert out.task_states["scan_partition"] == "success"
    result = _violation(out, "partitions.manifest_invalid")
    assert "partitions" not in result["metrics"]  # nothing was merged
    assert _would_pass(data, 3) and not _would_pass(data, 4)  # what the forger was after


DROP_SUMMARY_ONLY = """
    parts = GatePartitionListOperator(task_id="list_partitions", data=DATA, by="row_group")
    scans = GatePartitionScanOperator.partial(task_id="scan_partition", gate="pii", policy=POLICY) \\
        .expand(data=parts.output)

    @task
    def drop_last(envelopes):
        return list(envelopes)[:-1]

    GateMergeOperator(task_id="pii_gate", gate="pii", policy=POLICY, summaries=drop_last(scans.output),
                      partitions=parts.output)
"""


def test_a_summary_dropped_from_the_signed_list_is_never_a_pass(run_dag, tmp_path):
    data = _pii_last(tmp_path / "customers.parquet")
    out = _run(run_dag, DROP_SUMMARY_ONLY, "partitioned_summary_dropped", data)
    assert out.state == "failed"
    result = out.xcom("pii_gate")
    assert result["verdict"] == "error" and "1 missing" in result["error"]["message"]


REPLAY = """
    parts = GatePartitionListOperator(task_id="list_partitions", data=DATA, by="row_group")
    scans = GatePartitionScanOperator.partial(task_id="scan_partition", gate="pii", policy=POLICY) \\
        .expand(data=parts.output)

    @task
    def relay(envelopes):
        # First run: passes the summaries on. Later runs: the XCom writer puts the first run's in their place.
        import json, pathlib

        saved = pathlib.Path({saved!r})
        return json.loads(saved.read_text()) if saved.exists() else list(envelopes)

    GateMergeOperator(task_id="pii_gate", gate="pii", policy=POLICY, summaries=relay(scans.output),
                      partitions=parts.output)
"""


def test_summaries_replayed_from_a_clean_run_are_a_critical_violation(run_dag, tmp_path):
    data = tmp_path / "customers.parquet"
    saved = tmp_path / "clean-run-summaries.json"
    _pii_last(data, clean=True)
    first = _run(run_dag, REPLAY, "partitioned_replayed", data, saved=str(saved))
    assert first.state == "success" and first.xcom("pii_gate")["verdict"] == "pass"
    saved.write_text(json.dumps(first.xcom("relay", "return_value")))
    _pii_last(data)  # same partitions, now with PII
    second = _run(run_dag, REPLAY, "partitioned_replayed", data, saved=str(saved))
    assert second.run_id != first.run_id
    _violation(second, "partitions.summary_tampered")


def test_without_handoff_key_every_partition_task_refuses(run_dag, tmp_path):
    data = _pii_last(tmp_path / "customers.parquet", clean=True)
    with patched_environ(_env(data, AIRFLOW__AISEC__HANDOFF_KEY="")):
        out = run_dag(DAG_FILE.read_text(), "partitioned_pii", filename="partitioned_pii.py")
    assert out.state == "failed"
    assert out.task_states["list_partitions"] == "failed"
    assert ("list_partitions", "return_value") not in out.xcoms  # nothing to map over, nothing signed
    result = out.xcom("pii_gate")  # the merge still runs (all_done) and records why: never a pass
    assert result["verdict"] == "error" and "handoff_key is not set" in result["error"]["message"]


SCAN_WITHOUT_KEY = """
    parts = GatePartitionListOperator(task_id="list_partitions", data=DATA, by="row_group")
    GatePartitionScanOperator(task_id="scan_partition", gate="pii", policy=POLICY, data=DATA + "#row_group=0")
"""


def test_a_scan_without_handoff_key_refuses_with_one_line(run_dag, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_aisec.core.gates.secrets import new_handoff_key
    from airflow_aisec.operators.partitions import GatePartitionListOperator, GatePartitionScanOperator
    from tests.helpers.airflow import task_context

    data = _pii_last(tmp_path / "customers.parquet", clean=True)
    src = HEADER.format(data=str(data), policy=POLICY) + \
        'with DAG("partitioned_nokey", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):\n' \
        + SCAN_WITHOUT_KEY
    with patched_environ(_env(data, AIRFLOW__AISEC__HANDOFF_KEY="")):
        out = run_dag(src, "partitioned_nokey")
        for op in (GatePartitionListOperator(task_id="list", data=str(data)),
                   GatePartitionScanOperator(task_id="scan", gate="pii", policy=POLICY, data=f"{data}#row_group=0")):
            context = task_context()
            with pytest.raises(AirflowFailException, match="handoff_key is not set") as info:
                op.execute(context)
            assert "\n" not in str(info.value) and not context["ti"].xcom_push.called
    assert out.task_states == {"list_partitions": "failed", "scan_partition": "failed"}
    assert ("scan_partition", "return_value") not in out.xcoms
    with patched_environ(_env(data, AIRFLOW__AISEC__HANDOFF_KEY=new_handoff_key())):
        out = run_dag(src, "partitioned_nokey")
    assert out.task_states == {"list_partitions": "success", "scan_partition": "success"}


MERGE_WITHOUT_LIST = """
    parts = GatePartitionListOperator(task_id="list_partitions", data=DATA, by="row_group")
    scans = GatePartitionScanOperator.partial(task_id="scan_partition", gate="pii", policy=POLICY) \\
        .expand(data=parts.output)
    GateMergeOperator(task_id="pii_gate", gate="pii", policy=POLICY, summaries=scans.output{partitions})
"""


@pytest.mark.parametrize("partitions", ["", ", partitions=[DATA + f'#row_group={{i}}' for i in range(3)]"],
                         ids=["missing", "literal"])
def test_a_merge_without_the_listing_task_does_not_load(tmp_path, partitions):
    from airflow.dag_processing.dagbag import DagBag

    data = _pii_last(tmp_path / "customers.parquet", clean=True)
    path = tmp_path / "partitioned_unlisted.py"
    path.write_text(HEADER.format(data=str(data), policy=POLICY)
                    + 'with DAG("partitioned_unlisted", schedule=None, start_date=pendulum.datetime(2025, 1, 1, '
                      'tz="UTC"), catchup=False):\n' + MERGE_WITHOUT_LIST.format(partitions=partitions))
    with patched_environ(_env(data)):
        bag = DagBag(dag_folder=str(path))
    assert "partitioned_unlisted" not in bag.dags
    (error,) = bag.import_errors.values()
    assert "pii_gate: GateMergeOperator needs partitions=" in error


MERGE_UNLISTED_AFTER_CONSTRUCTION = """
    parts = GatePartitionListOperator(task_id="list_partitions", data=DATA, by="row_group")
    scans = GatePartitionScanOperator.partial(task_id="scan_partition", gate="pii", policy=POLICY) \\
        .expand(data=parts.output)
    merge = GateMergeOperator(task_id="pii_gate", gate="pii", policy=POLICY, summaries=scans.output,
                              partitions=parts.output)
    merge.{attribute} = None  # DAG code is Python: the constructor's refusal is not the boundary
"""


@pytest.mark.parametrize("attribute", ["partitions", "_aisec_listing_task"])
def test_the_merge_refuses_at_run_time_without_the_listing_task(run_dag, tmp_path, attribute):
    data = _pii_last(tmp_path / "customers.parquet", clean=True)
    out = _run(run_dag, MERGE_UNLISTED_AFTER_CONSTRUCTION, "partitioned_unlisted_later", data, attribute=attribute)
    assert out.state == "failed" and out.task_states["scan_partition"] == "success"
    result = out.xcom("pii_gate")
    assert result["verdict"] == "error" and "needs partitions=" in result["error"]["message"]


TASK_LIST_AND_ONE_SCAN = """
    @task
    def listed():
        from airflow_aisec.operators.partitions import list_partitions

        return list_partitions(DATA, by="row_group")

    @task
    def scan_all(uris):
        # One task covering every partition (as a @task.pyspark with pii_envelopes_spark would), signed.
        from airflow_aisec.core.gates.pii.summary import summarize_partition
        from airflow_aisec.core.partitions import merge_all, section_digest
        from airflow_aisec.core.policy import load_policy
        from airflow_aisec.operators.partitions import sign_envelope

        section = load_policy(POLICY).section("pii")
        merged = merge_all([summarize_partition(section, u, partition_id=u) for u in uris])
        return [sign_envelope({{"gate": "pii", "partition": DATA, "summaries": [merged.signed_json()]}})]

    uris = listed()
    GateMergeOperator(task_id="pii_gate", gate="pii", policy=POLICY, summaries=scan_all(uris), partitions=uris,
                      inputs={{"classification": "internal"}})
"""


def test_a_task_listing_and_one_signed_scan_of_every_partition_merge(run_dag, tmp_path):
    """``list_partitions`` in a ``@task`` signs its list; ``sign_envelope`` signs a custom scan's summaries;
    the merge matches partitions by what each summary covers. Same findings as the single-node check."""
    data = _pii_last(tmp_path / "customers.parquet")
    env = {"AIRFLOW__AISEC__BASELINE_POLICY": ""}
    src = HEADER.format(data=str(data), policy=POLICY) + \
        'with DAG("partitioned_one_scan", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):\n' \
        + TASK_LIST_AND_ONE_SCAN.format()
    with patched_environ({**_env(data), **env}):
        out = run_dag(src, "partitioned_one_scan")
    assert out.task_states["pii_gate"] == "failed", out.task_states
    result = out.xcom("pii_gate")
    assert result["verdict"] == "fail" and result["metrics"]["partitions"]["count"] == 1
    from airflow_aisec.core.gates.pii import check_pii
    from airflow_aisec.core.policy import load_policy

    single = check_pii(load_policy(POLICY).section("pii"), str(data), classification="internal")
    assert [(f["rule"], f["location"]["entity"], f["count"]) for f in result["findings"]] == \
        [(f.rule, f.location["entity"], f.count) for f in single.findings]
    assert {f["location"]["entity"] for f in result["findings"]} == {"US_SSN", "CREDIT_CARD"}
    assert out.xcom("listed", "aisec_partitions")["partitions"] == [f"{data}#row_group={i}" for i in range(4)]


def test_list_partitions_outside_a_task_only_lists(tmp_path):
    from airflow_aisec.operators.partitions import list_partitions

    data = _pii_last(tmp_path / "customers.parquet", clean=True)
    assert list_partitions(str(data), by="row_group") == [f"{data}#row_group={i}" for i in range(4)]
