"""A wide schema's names and types listed once and shared (core/io/schema_lists.py)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from airflow_aisec.core.io import schema_lists as lists
from tests.helpers.calls import count_calls


def _schema(columns: int) -> pa.Schema:
    return pa.schema([(f"c{i}", pa.float64() if i % 2 else pa.string()) for i in range(columns)])


def test_a_wide_schema_is_listed_once_and_its_lists_equal_pyarrows():
    schema = _schema(lists.WIDE_SCHEMA)
    names, types = lists.schema_lists(schema)
    assert names == schema.names and types == schema.types
    again = lists.schema_lists(schema)
    assert again[0] is names and again[1] is types  # not listed a second time
    assert lists.column_names(schema) is names and lists.column_types(schema) is types


def test_an_equal_but_other_schema_object_gets_its_own_lists():
    first, second = _schema(lists.WIDE_SCHEMA), _schema(lists.WIDE_SCHEMA + 1)
    assert lists.column_names(first) == first.names
    assert lists.column_names(second) == second.names and len(lists.column_names(second)) == lists.WIDE_SCHEMA + 1


def test_narrow_schemas_are_not_remembered():
    schema = _schema(5)
    names = lists.column_names(schema)
    assert names == schema.names and lists.column_names(schema) is not names
    assert all(known is not schema for known, _, _ in lists._KNOWN)


def test_only_the_last_few_wide_schemas_are_kept():
    schemas = [_schema(lists.WIDE_SCHEMA) for _ in range(lists._KEPT + 2)]
    for schema in schemas:
        lists.column_names(schema)
    kept = [known for known, _, _ in lists._KNOWN]
    assert len(kept) == lists._KEPT and kept[0] is schemas[-1]
    assert not any(s is k for s in schemas[:2] for k in kept)  # the oldest went (equal schemas: by identity)


def test_a_gate_lists_a_wide_csv_schema_no_more_than_its_reader_did(tmp_path, monkeypatch):
    """pii over a wide CSV asks for the names and types at every step; none lists the schema again."""
    from airflow_aisec.core.gates.pii import check_pii
    from airflow_aisec.core.io import wide_csv
    from airflow_aisec.core.policy.sections.pii import PiiPolicy

    monkeypatch.setattr(wide_csv, "WIDE_COLUMNS", 8)
    path = tmp_path / "wide.csv"
    table = pa.table({f"c{i}": [f"v{i}-{r}" for r in range(4)] for i in range(lists.WIDE_SCHEMA)})
    pacsv.write_csv(table, path)
    misses = count_calls(monkeypatch, lists, "remember")  # called here only when a schema is listed anew
    outcome = check_pii(PiiPolicy(entities=["EMAIL_ADDRESS"], scan={"mode": "full"}), str(path),
                        classification="restricted")
    assert len(outcome.metrics["columns"]) == lists.WIDE_SCHEMA
    assert misses[0] == 0


def test_column_lists_make_the_schema_only_when_asked_and_share_their_lists():
    names = [f"c{i}" for i in range(lists.WIDE_SCHEMA)]
    types = [pa.float64() if i % 2 else pa.string() for i in range(lists.WIDE_SCHEMA)]
    from_lists = lists.ColumnLists(names, types)
    assert from_lists.names is names and from_lists.types is types and len(from_lists) == len(names)
    assert from_lists._schema is None  # nothing made yet
    schema = from_lists.schema
    assert schema.equals(_schema(lists.WIDE_SCHEMA)) and from_lists.schema is schema
    assert lists.column_names(schema) is names and lists.column_types(schema) is types  # not listed again
    of_schema = lists.ColumnLists.of(_schema(7))
    assert of_schema.names == _schema(7).names and of_schema.types == _schema(7).types and len(of_schema) == 7
    for bad in ((names, types[:-1]), (names, None), (None, None)):
        with pytest.raises(ValueError, match="names and types of one length"):
            lists.ColumnLists(*bad)


@pytest.mark.parametrize("gate", ["bias", "drift", "source"])
def test_a_gate_over_a_wide_csv_never_makes_the_files_schema(tmp_path, monkeypatch, gate):
    """bias reads 3 columns of a wide CSV file, drift and source every column by type groups: none
    needs the file's Arrow schema (100,000 fields cost ~50 ms, more than bias's whole run on a long
    table)."""
    from airflow_aisec.core.gates.bias import check_bias
    from airflow_aisec.core.gates.drift import check_drift
    from airflow_aisec.core.io import wide_csv
    from airflow_aisec.core.policy.sections.bias import BiasPolicy
    from airflow_aisec.core.policy.sections.drift import DriftPolicy

    width = wide_csv.WIDE_COLUMNS + 10
    table = pa.table({"y": [0, 1, 1, 0, 1, 0], "p": [0, 1, 0, 0, 1, 1], "sex": ["F", "M"] * 3,
                      **{f"c{i}": [float(i * r % 7) for r in range(6)] for i in range(width)}})
    path = tmp_path / "wide.csv"
    pacsv.write_csv(table, path)
    made = count_calls(monkeypatch, lists, "remember")  # every Arrow schema made from lists is remembered
    if gate == "bias":
        outcome = check_bias(BiasPolicy(label="y", prediction="p", sensitive=["sex"], min_group_size=1,
                                        thresholds={"demographic_parity_difference": {"max": 1.0}}), str(path))
        assert outcome.metrics["rows"] == 6
    elif gate == "drift":
        outcome = check_drift(DriftPolicy(exclude=["y", "p"], categorical=["sex"]), str(path), str(path))
        assert outcome.metrics["features_checked"] == width + 1 and not outcome.findings
    else:
        from airflow_aisec.core.gates.source import check_sources
        from airflow_aisec.core.policy.loader import parse_policy

        section = parse_policy(f"""
version: 1
name: wide-source
source:
  origins: ["{tmp_path}/*"]
  rows: {{min: 1}}
  schema: {{columns: {{y: integer, sex: string}}, allow_extra_columns: true}}
  poisoning:
    reference: {path}
    duplicates: {{max_rate: 1.0}}
    out_of_range: {{max_rate: 1.0, margin: 0.5}}
""".encode()).section("source")
        outcome = check_sources(section, [str(path)])
        assert outcome.metrics["datasets"][0]["columns"] == width + 3 and not outcome.findings
    assert made[0] == 0


def test_per_type_id_decides_once_per_type_id_and_per_dictionary_type():
    seen = []

    def is_text(t):
        seen.append(t)
        return pa.types.is_string(t.value_type if pa.types.is_dictionary(t) else t)

    words, codes = pa.dictionary(pa.int8(), pa.string()), pa.dictionary(pa.int8(), pa.int64())
    types = [pa.string(), pa.int64(), words, pa.string(), codes, pa.int64(), words] * 300
    assert lists.per_type_id(types, is_text) == [True, False, True, True, False, False, True] * 300
    assert len(seen) == 4  # string, int64 and the two dictionary types
    seen.clear()
    forced = [i % 2 == 0 for i in range(len(types))]
    got = lists.per_type_id(types, lambda t, f: (is_text(t), f), forced)
    assert got == [(is_text(t), f) for t, f in zip(types, forced)] and len(seen) == 8 + len(types)
