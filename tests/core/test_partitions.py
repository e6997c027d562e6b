"""Partition summaries for the pii gate: merged == single-node scan, in any order; value-free; fail closed."""

from __future__ import annotations

import itertools
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.gates.pii import check_pii
from airflow_aisec.core.gates.pii.summary import PiiSummary, check_summary, summarize_partition
from airflow_aisec.core.partitions import (
    SUMMARIES,
    Coverage,
    list_partitions,
    load_summary,
    merge_all,
    split_partition_uri,
    summary_class,
)
from airflow_aisec.core.policy.sections.pii import PiiPolicy
from airflow_aisec.exceptions import ConfigurationError, InputDataError, SecurityViolationError
from tests.helpers.partitions import assert_value_free, comparable, planted_table, write_files, write_whole


def policy(**overrides) -> PiiPolicy:
    base = {
        "levels": {"public": {"forbidden": ["*"]}, "internal": {"allowed": ["EMAIL_ADDRESS", "PHONE_NUMBER"]},
                   "restricted": {"allowed": ["*"]}},
        "scan": {"batch_rows": 64},
        "min_count": 1,
    }
    base.update(overrides)
    return PiiPolicy.model_validate(base)


def summaries(section, uri, *, by="file"):
    parts = list_partitions(str(uri), by=by)
    return [summarize_partition(section, p, partition_id=p) for p in parts]


@pytest.fixture
def whole(tmp_path):
    return write_whole(planted_table(), tmp_path / "whole.parquet", row_group_size=125)


@pytest.mark.parametrize("classification", ["public", "internal", "restricted"])
def test_row_groups_merged_equal_single_scan_exactly(whole, classification):
    section = policy()
    parts = summaries(section, whole, by="row_group")
    assert len(parts) == 8 and split_partition_uri(parts[3].partition) == (str(whole), 3)
    single = check_pii(section, str(whole), classification=classification)
    merged = check_summary(section, merge_all(parts), classification=classification)
    assert comparable(merged) == comparable(single)  # same uri and sha256 too: one file
    assert merged.metrics["partitions"] == {"count": 8}
    if classification == "restricted":
        assert merged.findings == []
    else:
        assert merged.findings, "the planted PII must fail a public / internal dataset"
        rows = {f.location["entity"]: f.location["rows"] for f in merged.findings}
        assert rows["US_SSN"] == [420, 910]  # row group 3 and 7: global positions


def test_merge_is_commutative_and_associative(whole):
    section = policy()
    parts = summaries(section, whole, by="row_group")
    reference = merge_all(parts).digest()
    rng = random.Random(7)
    for _ in range(6):
        shuffled = parts[:]
        rng.shuffle(shuffled)
        assert merge_all(shuffled).digest() == reference
        cut = rng.randrange(1, len(parts))  # (a.b).(c.d) grouping
        assert merge_all([merge_all(shuffled[:cut]), merge_all(shuffled[cut:])]).digest() == reference
    for a, b in itertools.permutations(parts[:3], 2):
        assert a.merge(b).digest() == b.merge(a).digest()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_files_merged_equal_the_concatenated_single_scan(tmp_path, fmt):
    table = planted_table()
    write_files(table, tmp_path / "lake", [300, 1, 299, 400], fmt=fmt)
    concatenated = tmp_path / f"all.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, concatenated)
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, concatenated)
    section = policy()
    merged = check_summary(section, merge_all(summaries(section, tmp_path / "lake")))
    single = check_pii(section, str(concatenated))
    assert comparable(merged, drop_uri=True) == comparable(single, drop_uri=True)
    assert merged.findings and {f.location["uri"] for f in merged.findings} == {str(tmp_path / "lake") + "/"}
    assert [i.uri for i in merged.inputs] == [str(p) for p in sorted((tmp_path / "lake").iterdir())]


def test_chance_correction_runs_on_merged_counts(whole):
    # Each row group alone has too few Luhn candidates to tell chance from data; the whole table does.
    section = policy()
    single = check_pii(section, str(whole))
    merged = check_summary(section, merge_all(summaries(section, whole, by="row_group")))
    assert merged.metrics["coincidental_checksums"] == single.metrics["coincidental_checksums"]
    assert merged.metrics["columns"]["reference"] == single.metrics["columns"]["reference"]


def test_json_round_trip_digest_and_tampering(whole):
    section = policy()
    part = summaries(section, whole, by="row_group")[3]
    signed = json.loads(json.dumps(part.signed_json()))
    again = load_summary("pii", signed)
    assert again == part and again.digest() == signed["digest"]
    assert summary_class("pii") is PiiSummary and set(SUMMARIES) >= {"pii", "source"}
    forged = json.loads(json.dumps(signed))
    forged["columns"]["notes"]["entities"]["US_SSN"]["count"] = 0
    with pytest.raises(SecurityViolationError) as err:
        load_summary("pii", forged)
    assert err.value.rule == "partitions.summary_tampered"


def test_summaries_and_results_are_value_free(whole, capsys):
    section = policy()
    parts = summaries(section, whole, by="row_group")
    for p in parts:
        assert_value_free(p.signed_json())
    assert_value_free(check_summary(section, merge_all(parts)).model_dump(mode="json"))
    assert_value_free(capsys.readouterr())


def test_summary_size_is_bounded_by_columns_not_rows(tmp_path):
    section = policy()
    small = write_whole(planted_table(1000), tmp_path / "small.parquet", row_group_size=1000)
    large = write_whole(planted_table(20000), tmp_path / "large.parquet", row_group_size=20000)
    size = {n: len(json.dumps(summaries(section, p)[0].signed_json())) for n, p in (("s", small), ("l", large))}
    print(f"summary bytes per partition: 1k rows {size['s']}, 20k rows {size['l']}")
    assert size["l"] < size["s"] * 1.5  # positions are capped per entity; counts do not grow in bytes much


def test_different_policies_or_gates_do_not_merge(whole):
    a = summaries(policy(), whole, by="row_group")
    b = summaries(policy(min_share=0.5), whole, by="row_group")
    with pytest.raises(ConfigurationError, match="different policy"):
        a[0].merge(b[1])
    with pytest.raises(ConfigurationError, match="different pii policy"):
        check_summary(policy(min_share=0.5), merge_all(a))

    class Other(PiiSummary):
        pass

    other = Other(**{f: getattr(a[1], f) for f in a[1].__dataclass_fields__})
    other.gate = "source"
    with pytest.raises(ConfigurationError, match="cannot merge"):
        a[0].merge(other)


def test_a_partition_twice_or_missing_rows_fail_closed(whole, tmp_path):
    section = policy()
    parts = summaries(section, whole, by="row_group")
    with pytest.raises(InputDataError, match="scanned twice"):
        merge_all([*parts, parts[2]])
    # A slice of a file (as a Spark batch sees it) that leaves rows out cannot be judged.
    partial = Coverage.single("f", "f.parquet", ["f.parquet", -1], 10, start=0).merge(
        Coverage.single("f", "f.parquet", ["f.parquet", -1], 10, start=20))
    with pytest.raises(InputDataError, match="not scanned"):
        partial.offsets()
    assert Coverage.single("f", "f", ["f", -1], 10).merge(Coverage.single("f", "f", ["f", -1], 5, start=10)) \
        .offsets() == {"f": 0}


def test_sampling_is_refused_and_bad_partitions_are_input_errors(whole, tmp_path):
    with pytest.raises(ConfigurationError, match="sample"):
        summarize_partition(policy(scan={"mode": "sample", "sample_size": 10}), str(whole), partition_id="x")
    with pytest.raises(InputDataError, match="no row group 99"):
        summarize_partition(policy(), f"{whole}#row_group=99", partition_id="x")
    with pytest.raises(InputDataError, match="no data files"):
        (tmp_path / "empty").mkdir()
        list_partitions(str(tmp_path / "empty"))
    with pytest.raises(ConfigurationError, match="row_group"):
        list_partitions(str(whole), by="rows")


def test_an_empty_table_is_an_error_as_in_a_single_scan(tmp_path):
    path = tmp_path / "empty.parquet"
    pq.write_table(planted_table(0), path)
    merged = merge_all(summaries(policy(), path))
    with pytest.raises(InputDataError, match="empty"):
        check_summary(policy(), merged)
    with pytest.raises(InputDataError, match="empty"):
        check_pii(policy(), str(path))


def test_a_header_holding_pii_stays_a_label(tmp_path):
    path = tmp_path / "h.parquet"
    pq.write_table(pa.table({"zq.planted@example.com": ["a", "b"], "x": ["1", "2"]}), path)
    section = policy()
    merged = check_summary(section, merge_all(summaries(section, path)))
    assert comparable(merged) == comparable(check_pii(section, str(path)))
    assert_value_free(merge_all(summaries(section, path)).signed_json())


# --- the Spark executor side, without Spark: Arrow batches with file and row index columns ------------

def _spark_like_batches(files, *, batch_rows=96, shuffle_seed=3):
    """What mapInArrow hands an executor: projected columns + file path + row index, batches spanning
    files, in any order."""
    import pyarrow.compute as pc

    tables = []
    for f in files:
        t = pq.read_table(f)
        t = t.append_column("__aisec_file", pa.array([f"file:{f}"] * t.num_rows))
        t = t.append_column("__aisec_row", pa.array(range(t.num_rows), pa.int64()))
        tables.append(t)
    batches = pa.concat_tables(tables).to_batches(max_chunksize=batch_rows)
    random.Random(shuffle_seed).shuffle(batches)
    assert pc.sum(pa.array([b.num_rows for b in batches])).as_py() == sum(t.num_rows for t in tables)
    return batches


def test_spark_executor_function_equals_the_local_scan(tmp_path):
    from airflow_aisec.core.engines.spark import _normalize, summarize_batches
    from airflow_aisec.core.gates.pii._table import open_for_scan
    from airflow_aisec.core.gates.pii.summary import ScanSetup, check_partitioned

    files = [str(p) for p in write_files(planted_table(), tmp_path / "lake", [300, 200, 500])]
    section = policy()
    setup = ScanSetup.from_schema(section, open_for_scan(files[0], "parquet", files[0]).schema, files[0], "parquet")
    mapping = {_normalize(f): f for f in files}
    batches = _spark_like_batches(files)
    out = []
    for chunk in (batches[:4], batches[4:7], batches[7:]):  # three executor tasks
        (result,) = summarize_batches(section.model_dump(mode="json"), setup.header(), mapping, iter(chunk))
        out.append(load_summary("pii", json.loads(result.column("summary")[0].as_py())))
    merged = merge_all(out)
    for f in files:  # the driver adds each file's sha256 (executors never hash)
        merged.coverage.parts[f]["sha256"] = check_pii(section, f).inputs[0].sha256
    assert comparable(check_summary(section, merged)) == comparable(check_partitioned(section, str(tmp_path / "lake")))
    with pytest.raises(InputDataError, match="not scanned"):  # an executor's batch lost
        check_summary(section, merge_all(out[:2]))


def test_spark_engine_refusals_happen_before_any_spark_start(tmp_path, whole):
    import subprocess
    import sys

    from airflow_aisec.core.engines.spark import check_pii_spark

    csv = tmp_path / "t.csv"
    csv.write_text("a\n1\n")
    with pytest.raises(ConfigurationError, match="Parquet only"):
        check_pii_spark(policy(), str(csv))
    with pytest.raises(ConfigurationError, match="s3://"):
        check_pii_spark(policy(), "s3://bucket/data/")
    with pytest.raises(ConfigurationError, match="sample"):
        check_pii_spark(policy(scan={"mode": "sample", "sample_size": 5}), str(whole))
    code = ("import sys; import airflow_aisec.cli.commands.pii, airflow_aisec.core.engines.spark, "
            "airflow_aisec.core.partitions; assert 'pyspark' not in sys.modules, 'pyspark imported'")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
