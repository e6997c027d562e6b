"""Source validation gate core (no Great Expectations here: see test_source_gx.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from airflow_aisec.core.gate import run_check
from airflow_aisec.core.gates.source import check_sources, policy_dir
from airflow_aisec.core.gates.source._origin import canonical_target, origin_allowed
from airflow_aisec.core.gates.source._pins import parse_manifest
from airflow_aisec.core.gates.source._poisoning import DuplicateCounter, label_shift, row_hashes
from airflow_aisec.core.gates.source._schema import type_matches
from airflow_aisec.core.policy import load_policy
from airflow_aisec.core.policy.sections.source import parse_origin
from airflow_aisec.exceptions import ConfigurationError, InputDataError, PolicyError

PLANTED = ["zz-secret-label-7781", "planted.person@example.org", "31337.4242"]


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def area(tmp_path):
    """An approved data directory, and a place outside it."""
    approved = tmp_path / "approved"
    approved.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    return approved


def write_policy(directory, section: dict, **top) -> object:
    doc = {"version": 1, "name": "src-test", **top, "source": section}
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_policy(path)


def base_section(area, **extra) -> dict:
    return {"origins": [f"{area}/*"], **extra}


def make_table(n=2000, *, seed=0, label_p=(0.5, 0.5), dup_rows=0, outliers=0, labels=("cat", "dog")):
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    if dup_rows:
        ids[-dup_rows:] = ids[:dup_rows]
    x = rng.normal(size=n)
    if dup_rows:
        x[-dup_rows:] = x[:dup_rows]
    if outliers:
        x[:outliers] = 1000.0
    label = rng.choice(list(labels), size=n, p=list(label_p))
    if dup_rows:
        label[-dup_rows:] = label[:dup_rows]
    return pa.table({"id": ids, "x": x, "label": label})


def write_parquet(path, table, row_group_size=500):
    pq.write_table(table, path, row_group_size=row_group_size)
    return str(path)


def check(loaded, data, **kw):
    return check_sources(loaded.section("source"), data, base_dir=policy_dir(loaded.source), **kw)


def run(loaded, data, **kw):
    return run_check("source", loaded, lambda: check(loaded, data, **kw))


# ------------------------------------------------------------------------------------------------
# Policy schema
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"origins": []}, "source.origins"),
        ({"origins": ["gs://bucket/*"]}, "source.origins"),
        ({"origins": ["s3://bucket"]}, "source.origins"),
        ({"origins": ["/d/*"], "freshness": {"max_age": "3 days"}}, "source.freshness.max_age"),
        ({"origins": ["/d/*"], "freshness": {"max_age": 0}}, "source.freshness.max_age"),
        ({"origins": ["/d/*"], "schema": {"columns": {"a": "integr"}}}, "source.schema.columns"),
        ({"origins": ["/d/*"], "rows": {"min": 10, "max": 5}}, "source.rows"),
        ({"origins": ["/d/*"], "pinning": {"s3_versions": {"/local": {"etag": "x"}}}}, "source.pinning.s3_versions"),
        ({"origins": ["/d/*"], "pinning": {"sha256": {"/a": "abc"}}}, "source.pinning.sha256./a"),
        ({"origins": ["/d/*"], "poisoning": {}}, "source.poisoning"),
        ({"origins": ["/d/*"], "expectations": {}}, "source.expectations"),
        ({"origins": ["/d/*"], "expectations": {"expect": [{"type": "drop table"}]}}, "source.expectations.expect.0.type"),
        ({"origins": ["/d/*"], "poisoning": {"out_of_range": {"max_rate": 0.1, "ranges": {"a": [5, 1]}}}},
         "source.poisoning.out_of_range.ranges"),
        ({"origins": ["/d/*"], "sheme": {}}, "source.sheme"),
    ],
)
def test_invalid_policy_sections_name_the_field(tmp_path, section, field):
    with pytest.raises(PolicyError) as info:
        write_policy(tmp_path, section)
    assert info.value.field == field


def test_policy_values_parse(tmp_path):
    loaded = write_policy(tmp_path, {
        "origins": ["/d/*", "s3://ml-*/datasets/*", "file:///srv/data/*"],
        "freshness": {"max_age": "36h"},
        "schema": {"columns": {"a": "int64", "b": "string", "c": "timestamp[ms]"}},
        "pinning": {"sha256": {"x.csv": "A" * 64}},
    })
    section = loaded.policy.source
    assert section.freshness.max_age == dt.timedelta(hours=36)
    assert section.pinning.sha256["x.csv"] == "a" * 64
    assert section.table_schema.columns["c"] == "timestamp[ms]"
    assert write_policy(tmp_path, {"origins": ["/d/*"], "freshness": {"max_age": 90}}).policy.source.freshness.max_age \
        == dt.timedelta(seconds=90)


def test_type_matching():
    assert type_matches("integer", pa.int32())
    assert type_matches("int64", pa.int64()) and not type_matches("int64", pa.int32())
    assert type_matches("string", pa.large_string())
    assert type_matches("numeric", pa.float32()) and type_matches("numeric", pa.decimal128(10, 2))
    assert type_matches("timestamp[ms]", pa.timestamp("ms", tz="UTC"))
    assert not type_matches("floating", pa.int64())
    assert type_matches("any", pa.list_(pa.int8()))


# ------------------------------------------------------------------------------------------------
# Origins
# ------------------------------------------------------------------------------------------------
def test_origin_globs_match_bucket_and_key_separately():
    origins = [parse_origin("s3://trusted-*/datasets/*")]
    assert origin_allowed(canonical_target("s3://trusted-1/datasets/a/b.csv"), origins)
    assert not origin_allowed(canonical_target("s3://trusted-1/other/a.csv"), origins)
    assert not origin_allowed(canonical_target("s3://evil/trusted-1/datasets/a.csv"), origins)
    assert not origin_allowed(canonical_target("/datasets/a.csv"), origins)


def test_s3_dot_segments_and_other_schemes_are_refused():
    with pytest.raises(InputDataError, match="'.' or '..'"):
        canonical_target("s3://trusted/datasets/../secrets/a.csv")
    with pytest.raises(InputDataError, match="unsupported URI scheme 'https'"):
        canonical_target("https://example.org/a.csv")
    with pytest.raises(InputDataError, match="bucket or prefix"):
        canonical_target("s3://trusted/datasets/")


def test_origin_outside_allow_list_is_refused_before_reading(area, tmp_path):
    loaded = write_policy(tmp_path, base_section(area))
    # A file that is not even a table: the origin error wins, proving nothing was parsed.
    outside = tmp_path / "outside" / "evil.parquet"
    outside.write_text("not parquet")

    def no_s3():
        raise AssertionError("no S3 client may be created for a refused origin")

    for uri in (str(outside), f"{area}/../outside/evil.parquet", "s3://evil/data.parquet"):
        result = run(loaded, [uri], s3_client=no_s3)
        assert result.result.verdict == "error"
        assert isinstance(result.exception, InputDataError)
        assert "origin not on the allow-list" in result.result.error.message


def test_symlink_escaping_the_approved_directory_is_refused(area, tmp_path):
    target = write_parquet(tmp_path / "outside" / "real.parquet", make_table(10))
    link = area / "innocent.parquet"
    link.symlink_to(target)
    loaded = write_policy(tmp_path, base_section(area))
    result = run(loaded, [str(link)])
    assert result.result.verdict == "error" and "origin" in result.result.error.message


def test_reference_origin_is_checked_too(area, tmp_path):
    data = write_parquet(area / "d.parquet", make_table(100))
    ref = write_parquet(tmp_path / "outside" / "ref.parquet", make_table(100))
    loaded = write_policy(tmp_path, base_section(area, poisoning={"volume": {"max_change": 0.5}}))
    result = run(loaded, [data], reference=ref)
    assert result.result.verdict == "error"
    assert "reference dataset origin not on the allow-list" in result.result.error.message


def test_relative_origin_globs_resolve_against_the_policy_directory(area, tmp_path):
    data = write_parquet(area / "d.parquet", make_table(50))
    loaded = write_policy(tmp_path, {"origins": ["approved/*"]})
    assert run(loaded, [data]).result.verdict == "pass"


# ------------------------------------------------------------------------------------------------
# Pinned content
# ------------------------------------------------------------------------------------------------
def test_inline_sha256_pin_pass_and_mismatch(area, tmp_path):
    data = write_parquet(area / "d.parquet", make_table(100))
    good = write_policy(tmp_path, base_section(area, pinning={"required": True, "sha256": {data: sha(data)}}))
    assert run(good, [data]).result.verdict == "pass"

    bad = write_policy(tmp_path, base_section(area, pinning={"sha256": {"approved/d.parquet": "0" * 64}}))
    result = run(bad, [data]).result
    assert result.verdict == "fail"
    [finding] = result.findings
    assert finding.rule == "source.digest_mismatch" and finding.severity == "critical"
    assert finding.location["sha256"] == sha(data) and finding.location["expected_sha256"] == "0" * 64


def test_tampered_file_fails_its_pin(area, tmp_path):
    data = write_parquet(area / "d.parquet", make_table(100))
    loaded = write_policy(tmp_path, base_section(area, pinning={"sha256": {data: sha(data)}}))
    write_parquet(area / "d.parquet", make_table(100, seed=1))  # poisoned after approval
    assert [f.rule for f in run(loaded, [data]).result.findings] == ["source.digest_mismatch"]


def test_manifest_json_and_sha256sum(area, tmp_path):
    data = write_parquet(area / "d.parquet", make_table(100))
    (area / "manifest.json").write_text(json.dumps({"sha256": {"d.parquet": sha(data)}}))
    loaded = write_policy(tmp_path, base_section(area, pinning={"required": True, "manifest": "approved/manifest.json"}))
    result = run(loaded, [data]).result
    assert result.verdict == "pass"
    assert any(i.uri.endswith("manifest.json") and i.sha256 for i in result.inputs)

    (area / "SHA256SUMS").write_text(f"{'1' * 64}  d.parquet\n")
    loaded = write_policy(tmp_path, base_section(area, pinning={"manifest": str(area / "SHA256SUMS")}))
    assert [f.rule for f in run(loaded, [data]).result.findings] == ["source.digest_mismatch"]


def test_unpinned_dataset_when_pinning_is_required(area, tmp_path):
    data = write_parquet(area / "d.parquet", make_table(100))
    loaded = write_policy(tmp_path, base_section(area, pinning={"required": True}))
    [finding] = run(loaded, [data]).result.findings
    assert finding.rule == "source.not_pinned"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"sha256": {"a": "xyz"}}', "invalid sha256"),
        (b"deadbeef  file.csv\n", "line 1"),
        (b'{"s3_versions": {"/local": {"etag": "x"}}}', "s3_versions entry"),
    ],
)
def test_bad_manifests(area, tmp_path, content, match):
    with pytest.raises(ConfigurationError, match=match):
        parse_manifest(content, "m")
    data = write_parquet(area / "d.parquet", make_table(10))
    (tmp_path / "m.txt").write_bytes(content)
    loaded = write_policy(tmp_path, base_section(area, pinning={"manifest": "m.txt"}))
    result = run(loaded, [data])
    assert result.result.verdict == "error" and isinstance(result.exception, ConfigurationError)


def test_missing_manifest_and_conflicting_or_misplaced_pins(area, tmp_path):
    data = write_parquet(area / "d.parquet", make_table(10))
    loaded = write_policy(tmp_path, base_section(area, pinning={"manifest": "nope.json"}))
    assert "pinning manifest not found" in run(loaded, [data]).result.error.message

    (tmp_path / "m.json").write_text(json.dumps({"sha256": {data: "2" * 64}}))
    loaded = write_policy(tmp_path, base_section(area, pinning={"manifest": "m.json", "sha256": {data: "3" * 64}}))
    assert "conflicting pinned sha256" in run(loaded, [data]).result.error.message

    (tmp_path / "m.json").write_text(json.dumps({"s3_versions": {"s3://b/k.csv": {"version_id": "v"}}}))
    assert run(write_policy(tmp_path, base_section(area, pinning={"manifest": "m.json"})), [data]).result.verdict \
        == "pass"


# ------------------------------------------------------------------------------------------------
# Freshness, rows, schema
# ------------------------------------------------------------------------------------------------
def test_freshness_by_modification_time(area, tmp_path):
    data = write_parquet(area / "d.parquet", make_table(10))
    loaded = write_policy(tmp_path, base_section(area, freshness={"max_age": "1h"}))
    assert run(loaded, [data]).result.verdict == "pass"
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)).timestamp()
    os.utime(data, (old, old))
    result = run(loaded, [data]).result
    [finding] = result.findings
    assert finding.rule == "source.stale" and finding.location["age_seconds"] > 3 * 3600 - 60


def test_freshness_by_timestamp_column(area, tmp_path):
    stamps = pa.array([dt.datetime(2026, 3, 1, 12), None, dt.datetime(2026, 3, 2, 6)], pa.timestamp("ns"))
    data = write_parquet(area / "d.parquet", pa.table({"ts": stamps, "v": [1, 2, 3]}))
    loaded = write_policy(tmp_path, base_section(area, freshness={"max_age": "1d", "column": "ts"}))
    fresh = run_check("source", loaded, lambda: check(
        loaded, [data], now=dt.datetime(2026, 3, 2, 18, tzinfo=dt.UTC)))
    assert fresh.result.verdict == "pass"
    assert fresh.result.metrics["datasets"][0]["age_seconds"] == 12 * 3600
    stale = run_check("source", loaded, lambda: check(
        loaded, [data], now=dt.datetime(2026, 3, 5, tzinfo=dt.UTC)))
    assert [f.rule for f in stale.result.findings] == ["source.stale"]

    wrong = write_policy(tmp_path, base_section(area, freshness={"max_age": "1d", "column": "v"}))
    result = run(wrong, [data])
    assert result.result.verdict == "error" and "not a timestamp" in result.result.error.message


def test_a_timestamp_in_the_future_is_not_fresh(area, tmp_path):
    # One forged row dated far ahead (or a file mtime set ahead) made the age 0: always fresh.
    stamps = pa.array([dt.datetime(2020, 1, 1), dt.datetime(2999, 1, 1)], pa.timestamp("us"))
    data = write_parquet(area / "d.parquet", pa.table({"ts": stamps, "v": [1, 2]}))
    loaded = write_policy(tmp_path, base_section(area, freshness={"max_age": "1d", "column": "ts"}))
    result = run(loaded, [data], now=dt.datetime(2026, 3, 2, tzinfo=dt.UTC)).result
    assert result.verdict == "fail"
    [finding] = result.findings
    assert finding.rule == "source.stale" and "future" in finding.message

    skewed = write_parquet(area / "m.parquet", make_table(10))
    ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).timestamp()
    os.utime(skewed, (ahead, ahead))
    by_mtime = write_policy(tmp_path, base_section(area, freshness={"max_age": "1h"}))
    [finding] = run(by_mtime, [skewed]).result.findings
    assert finding.rule == "source.stale" and "future" in finding.message
    # a few seconds of clock skew between hosts is tolerated
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)).timestamp()
    os.utime(skewed, (soon, soon))
    assert run(by_mtime, [skewed]).result.verdict == "pass"


def test_row_count_bounds(area, tmp_path):
    data = write_parquet(area / "d.parquet", make_table(100))
    assert run(write_policy(tmp_path, base_section(area, rows={"min": 100, "max": 100})), [data]).result.verdict \
        == "pass"
    [low] = run(write_policy(tmp_path, base_section(area, rows={"min": 101})), [data]).result.findings
    [high] = run(write_policy(tmp_path, base_section(area, rows={"max": 99})), [data]).result.findings
    assert low.rule == high.rule == "source.row_count" and low.count == 100


def test_schema_types_and_extra_columns(area, tmp_path):
    data = write_parquet(area / "d.parquet", make_table(20))
    ok = base_section(area, schema={"columns": {"id": "integer", "x": "double", "label": "string"}})
    assert run(write_policy(tmp_path, ok), [data]).result.verdict == "pass"

    bad = base_section(area, schema={"columns": {"id": "string", "x": "numeric"}})
    result = run(write_policy(tmp_path, bad), [data]).result
    rules = sorted(f.rule for f in result.findings)
    assert rules == ["source.schema_extra_column", "source.schema_type"]
    extra = next(f for f in result.findings if f.rule == "source.schema_extra_column")
    assert extra.location["columns"] == ["label"]

    allowed = base_section(area, schema={"columns": {"id": "int64"}, "allow_extra_columns": True})
    assert run(write_policy(tmp_path, allowed), [data]).result.verdict == "pass"


def test_schema_column_missing_from_data_is_bad_input(area, tmp_path):
    data = write_parquet(area / "d.parquet", make_table(20))
    result = run(write_policy(tmp_path, base_section(area, schema={"columns": {"id": "int64", "amount": "double"}})),
                 [data])
    assert result.result.verdict == "error" and isinstance(result.exception, InputDataError)
    assert "column(s) not in the data: 'amount'" in result.result.error.message


def test_csv_declared_types_drive_parsing(area, tmp_path):
    path = area / "d.csv"
    path.write_text("zip,amount\n00501,1.5\n02134,2\n")
    loaded = write_policy(tmp_path, base_section(area, schema={"columns": {"zip": "string", "amount": "float"}}))
    assert run(loaded, [str(path)]).result.verdict == "pass"  # zip kept as text, amount as float
    loaded = write_policy(tmp_path, base_section(area, schema={"columns": {"zip": "string", "amount": "integer"}}))
    result = run(loaded, [str(path)])
    assert result.result.verdict == "error"
    assert "CSV column 'amount'" in result.result.error.message


@pytest.mark.parametrize("kind", ["header_only_csv", "empty_parquet", "zero_bytes", "truncated", "wrong_format",
                                  "directory", "missing"])
def test_bad_inputs_are_errors_never_passes(area, tmp_path, kind):
    path = area / ("d.csv" if kind in ("header_only_csv", "zero_bytes") else "d.parquet")
    if kind == "header_only_csv":
        path.write_text("a,b\n")
    elif kind == "empty_parquet":
        write_parquet(path, pa.table({"a": pa.array([], pa.int64())}))
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "truncated":
        write_parquet(path, make_table(500))
        path.write_bytes(path.read_bytes()[:-100])
    elif kind == "wrong_format":
        path.write_text("a,b\n1,2\n")
    elif kind == "directory":
        path.mkdir()
    loaded = write_policy(tmp_path, base_section(area))
    result = run(loaded, [str(path)])
    assert result.result.verdict == "error"
    assert isinstance(result.exception, InputDataError)
    assert "\n" not in result.result.error.message


def test_no_dataset_given(area, tmp_path):
    loaded = write_policy(tmp_path, base_section(area))
    assert "no dataset given" in run(loaded, []).result.error.message


# ------------------------------------------------------------------------------------------------
# Poisoning signals
# ------------------------------------------------------------------------------------------------
def test_label_shift_psi_and_chi2(area, tmp_path):
    write_parquet(area / "ref.parquet", make_table(4000, seed=1))
    same = write_parquet(area / "same.parquet", make_table(4000, seed=2))
    shifted = write_parquet(area / "shifted.parquet", make_table(4000, seed=3, label_p=(0.8, 0.2)))
    psi = write_policy(tmp_path, base_section(area, poisoning={
        "reference": "approved/ref.parquet", "label_shift": {"column": "label", "max_psi": 0.1}}))
    assert run(psi, [same]).result.verdict == "pass"
    result = run(psi, [shifted]).result
    [finding] = result.findings
    assert finding.rule == "source.label_shift" and finding.location["psi"] > 0.1
    assert result.metrics["datasets"][0]["label_shift"]["classes"] == 2

    chi2 = write_policy(tmp_path, base_section(area, poisoning={
        "reference": "approved/ref.parquet", "label_shift": {"column": "label", "method": "chi2"}}))
    assert run(chi2, [same]).result.verdict == "pass"
    assert run(chi2, [shifted]).result.findings[0].location["method"] == "chi2"


def test_new_label_class_counts_as_shift():
    shift = label_shift({"a": 500, "b": 450, "evil": 50}, {"a": 500, "b": 500})
    assert shift.new_classes == 1 and shift.psi > 0.2 and shift.chi2_p_value < 1e-6
    assert label_shift({"a": 1}, {"a": 2}, chi2=False).chi2_p_value is None
    assert label_shift({"a": 1}, {"a": 2}).psi == 0.0


def test_label_with_too_many_classes_is_refused(area, tmp_path):
    ref = write_parquet(area / "ref.parquet", pa.table({"label": [f"c{i}" for i in range(50)]}))
    loaded = write_policy(tmp_path, base_section(area, poisoning={
        "reference": ref, "label_shift": {"column": "label", "max_classes": 10}}))
    result = run(loaded, [ref])
    assert result.result.verdict == "error" and "more than 10 distinct values" in result.result.error.message


def test_duplicate_rate(area, tmp_path):
    clean = write_parquet(area / "clean.parquet", make_table(2000))
    dirty = write_parquet(area / "dirty.parquet", make_table(2000, dup_rows=100))
    loaded = write_policy(tmp_path, base_section(area, poisoning={"duplicates": {"max_rate": 0.01}}))
    assert run(loaded, [clean]).result.verdict == "pass"
    result = run(loaded, [dirty]).result
    [finding] = result.findings
    assert finding.rule == "source.duplicate_rate" and finding.count == 100
    assert result.metrics["datasets"][0]["duplicate_rate"] == 0.05

    by_label = write_policy(tmp_path, base_section(area, poisoning={"duplicates": {"max_rate": 0.5,
                                                                                   "columns": ["label"]}}))
    assert run(by_label, [clean]).result.findings[0].count == 1998


def test_duplicate_counter_spills_to_partitions_and_stays_exact():
    rng = np.random.default_rng(5)
    values = rng.integers(0, 30_000, size=50_000)
    counter = DuplicateCounter(buffer_rows=4096, partitions=16)
    for start in range(0, len(values), 3000):
        counter.update(pa.record_batch({"v": values[start:start + 3000], "k": values[start:start + 3000] % 7}))
    assert counter._tmpdir is not None  # it did spill
    spill_dir = counter._tmpdir.name
    assert counter.finish() == len(values) - len(np.unique(values))
    assert not os.path.exists(spill_dir)


def test_row_hash_is_independent_of_nulls_elsewhere_in_the_batch():
    a = pa.record_batch({"i": pa.array([1, None], pa.int64()), "s": ["x", None], "f": [1.5, float("nan")]})
    b = pa.record_batch({"i": pa.array([1, 2], pa.int64()), "s": ["x", "y"], "f": [1.5, 2.0]})
    c = pa.record_batch({"i": pa.array([1], pa.int64()), "s": ["y"], "f": [1.5]})
    ha, hb, hc = row_hashes(a), row_hashes(b), row_hashes(c)
    assert ha[0] == hb[0] and ha[0] != hc[0] and ha[1] != hb[1]


def test_out_of_range_against_reference_and_explicit_ranges(area, tmp_path):
    ref = write_parquet(area / "ref.parquet", make_table(2000, seed=1))
    ok = write_parquet(area / "ok.parquet", make_table(2000, seed=1))
    bad = write_parquet(area / "bad.parquet", make_table(2000, seed=1, outliers=100))
    section = base_section(area, poisoning={"reference": ref, "out_of_range": {"max_rate": 0.01, "columns": ["x"]}})
    loaded = write_policy(tmp_path, section)
    assert run(loaded, [ok]).result.verdict == "pass"
    [finding] = run(loaded, [bad]).result.findings
    assert finding.rule == "source.out_of_range" and finding.count == 100 and finding.location["column"] == "x"

    # Explicit ranges need no reference; the id column is checked by its declared range.
    explicit = write_policy(tmp_path, base_section(area, poisoning={
        "out_of_range": {"max_rate": 0.0, "columns": ["id"], "ranges": {"id": [0, 999]}}}))
    [finding] = run(explicit, [ok]).result.findings
    assert finding.count == 1000 and "policy range" in finding.message

    not_numeric = write_policy(tmp_path, base_section(area, poisoning={
        "reference": ref, "out_of_range": {"max_rate": 0.1, "columns": ["label"]}}))
    assert "not numeric" in run(not_numeric, [ok]).result.error.message


def test_out_of_range_columns_named_by_ranges_cannot_be_skipped(area, tmp_path):
    # A column the policy gives a range for must be checked: renaming it, or turning it into text,
    # in the data made the check silently skip it.
    ref = write_parquet(area / "ref.parquet", make_table(200, seed=1))
    section = base_section(area, poisoning={"reference": ref, "out_of_range": {"max_rate": 0.0,
                                                                               "ranges": {"x": [-10, 10]}}})
    loaded = write_policy(tmp_path, section)
    renamed = write_parquet(area / "renamed.parquet", make_table(200, seed=1).rename_columns(["id", "x2", "label"]))
    result = run(loaded, [renamed]).result
    assert result.verdict == "error" and "'x'" in result.error.message
    t = make_table(200, seed=1)
    as_text = write_parquet(area / "text.parquet", t.set_column(1, "x", pa.array(["1e9"] * 200)))
    result = run(loaded, [as_text]).result
    assert result.verdict == "error" and "not numeric" in result.error.message
    # and it still catches what it is there for
    bad = write_parquet(area / "bad.parquet", make_table(200, seed=1, outliers=5))
    [finding] = run(loaded, [bad]).result.findings
    assert finding.rule == "source.out_of_range" and finding.location["column"] == "x" and finding.count == 5


def test_volume_change(area, tmp_path):
    ref = write_parquet(area / "ref.parquet", make_table(1000))
    double = write_parquet(area / "double.parquet", make_table(2100))
    loaded = write_policy(tmp_path, base_section(area, poisoning={"volume": {"max_change": 0.5}}))
    [finding] = run(loaded, [double], reference=ref).result.findings
    assert finding.rule == "source.volume_change" and finding.location["change"] == 1.1
    assert run(loaded, [ref], reference=ref).result.verdict == "pass"


def test_poisoning_without_reference_is_a_configuration_error(area, tmp_path):
    data = write_parquet(area / "d.parquet", make_table(10))
    loaded = write_policy(tmp_path, base_section(area, poisoning={"volume": {"max_change": 0.5}}))
    result = run(loaded, [data])
    assert isinstance(result.exception, ConfigurationError) and "need a reference" in result.result.error.message


def test_reference_problems_are_bad_input(area, tmp_path):
    data = write_parquet(area / "d.parquet", make_table(10))
    no_label = write_parquet(area / "ref.parquet", pa.table({"x": [1.0, 2.0]}))
    loaded = write_policy(tmp_path, base_section(area, poisoning={
        "reference": no_label, "label_shift": {"column": "label"}}))
    assert "'label'" in run(loaded, [data]).result.error.message
    empty = write_parquet(area / "empty.parquet", pa.table({"label": pa.array([], pa.string())}))
    assert "reference table is empty" in run(loaded, [data], reference=empty).result.error.message


# ------------------------------------------------------------------------------------------------
# Whole gate: streaming, several inputs, enforcement levels, no values in the result
# ------------------------------------------------------------------------------------------------
def test_streams_in_policy_batches(area, tmp_path):
    data = write_parquet(area / "d.parquet", make_table(3000), row_group_size=1000)
    loaded = write_policy(tmp_path, base_section(area, batch_rows=250, poisoning={"duplicates": {"max_rate": 0}}))
    metrics = run(loaded, [data]).result.metrics
    assert metrics["datasets"][0]["batches"] == 12 and metrics["batch_rows"] == 250


def test_several_datasets_and_warn_level(area, tmp_path):
    clean = write_parquet(area / "clean.parquet", make_table(500))
    dirty = write_parquet(area / "dirty.parquet", make_table(500, dup_rows=50))
    section = base_section(area, poisoning={"duplicates": {"max_rate": 0.01}})
    result = run(write_policy(tmp_path, section), [clean, dirty]).result
    assert result.verdict == "fail"
    assert [f.location["uri"] for f in result.findings] == [dirty]
    assert [i.uri for i in result.inputs] == [clean, dirty] and all(i.sha256 for i in result.inputs)
    warned = run(write_policy(tmp_path, section, rules={"source.duplicate_rate": "warn"}), [clean, dirty]).result
    assert warned.verdict == "warn"


def test_no_cell_value_reaches_the_result(area, tmp_path):
    n = 400
    table = pa.table({
        "id": np.arange(n),
        "email": [PLANTED[1]] * n,
        "amount": np.full(n, float(PLANTED[2])),
        "label": [PLANTED[0]] * (n // 2) + ["ok"] * (n // 2),
        "ts": pa.array([dt.datetime(2020, 1, 1)] * n, pa.timestamp("us")),
    })
    ref = write_parquet(area / "ref.parquet", pa.table({"id": np.arange(n), "amount": np.zeros(n),
                                                        "label": ["ok"] * n}))
    data = write_parquet(area / "d.parquet", pa.concat_tables([table, table]))
    loaded = write_policy(tmp_path, base_section(
        area,
        schema={"columns": {"id": "string"}},
        freshness={"max_age": "1d", "column": "ts"},
        poisoning={"reference": ref, "label_shift": {"column": "label"}, "duplicates": {"max_rate": 0},
                   "out_of_range": {"max_rate": 0}, "volume": {"max_change": 0.1}},
    ))
    result = run(loaded, [data]).result
    assert {f.rule for f in result.findings} >= {
        "source.schema_type", "source.schema_extra_column", "source.stale", "source.label_shift",
        "source.duplicate_rate", "source.out_of_range", "source.volume_change"}
    text = json.dumps(result.to_dict())
    for value in PLANTED + ["2020-01-01"]:
        assert value not in text
