"""Redaction: mask / drop / keyed hash, input untouched, output re-scanned, Vault-held key."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.gate import run_check
from airflow_aisec.core.gates.pii import check_pii, redact_table
from airflow_aisec.core.gates.pii._rewrite import normalise_value
from airflow_aisec.core.gates.pii.redact import resolve_hmac_key
from airflow_aisec.core.io.storage import sha256_file
from airflow_aisec.core.io.vault import VaultClient
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.core.policy.sections.pii import PiiPolicy
from airflow_aisec.exceptions import AccessDeniedError, ConfigurationError, ServiceUnavailableError

SSNS = ["372-81-4409", "529-33-0187", "611-20-7345"]
EMAILS = ["zq.alice@example.com", "zq.bob@example.org", "Zq.Alice@Example.com"]
PHONE = "(212) 555-0147"
KEY = "k" * 24
PLANTED = SSNS + EMAILS + [PHONE, "372814409", "529330187", "zq.alice"]


def people(rows: int = 60) -> pa.Table:
    return pa.table({
        "id": list(range(rows)),
        "email": [EMAILS[i % 3] for i in range(rows)],
        "ssn": pa.array([int(SSNS[i % 3].replace("-", "")) for i in range(rows)], pa.int64()),
        "notes": [f"called {PHONE}, ssn {SSNS[i % 3]} verified" if i % 5 == 0 else "no issue" for i in range(rows)],
        "score": [float(i) for i in range(rows)],
    })


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "people.parquet"
    pq.write_table(people(), path)
    return path


def pol(method: str = "mask", **redaction) -> PiiPolicy:
    red = {"method": method, **redaction}
    if method == "hash" and "key" not in red:
        red["key"] = {"env": "AISEC_TEST_HMAC"}
    return PiiPolicy.model_validate({
        "levels": {"public": {"forbidden": ["*"]}, "internal": {"allowed": ["EMAIL_ADDRESS"]}},
        "redaction": red,
        "scan": {"batch_rows": 16},
    })


def text_of(path) -> str:
    table = pq.read_table(path) if str(path).endswith(".parquet") else pacsv.read_csv(path)
    return json.dumps(table.to_pylist())


def assert_no_planted(text: str) -> None:
    for value in PLANTED:
        assert value not in text


def test_mask_rewrites_only_the_pii_spans_and_the_output_passes(src, tmp_path):
    before = sha256_file(src)
    out = tmp_path / "masked.parquet"
    outcome = redact_table(pol("mask"), str(src), str(out))
    assert outcome.findings == []
    assert sha256_file(src) == before  # input untouched
    red = outcome.metrics["redaction"]
    assert red["published"] and red["method"] == "mask" and red["classification"] == "public"
    assert red["columns"]["email"] == {"cells": 60, "entities": ["EMAIL_ADDRESS"]}
    assert red["columns"]["ssn"]["entities"] == ["US_SSN"]
    assert red["columns"]["notes"] == {"cells": 12, "entities": ["PHONE_NUMBER", "US_SSN"]}
    table = pq.read_table(out)
    assert table.column("notes")[0].as_py() == "called <PHONE_NUMBER>, ssn <US_SSN> verified"
    assert table.column("notes")[1].as_py() == "no issue"
    assert table.column("ssn").type == pa.string()  # integer SSNs became masked text
    assert table.column("score").to_pylist() == [float(i) for i in range(60)]
    assert_no_planted(text_of(out))
    # the output passes the gate at the target level
    assert check_pii(pol(), str(out)).findings == []
    assert outcome.inputs[0].sha256 == before and outcome.inputs[1].sha256 == sha256_file(out)
    assert_no_planted(json.dumps(outcome.model_dump(mode="json")))


def test_drop_nulls_the_cells_and_keeps_types(src, tmp_path):
    out = tmp_path / "dropped.parquet"
    outcome = redact_table(pol("drop"), str(src), str(out))
    assert outcome.findings == []
    table = pq.read_table(out)
    assert table.column("ssn").type == pa.int64() and table.column("ssn").null_count == 60
    assert table.column("notes").null_count == 12
    assert table.column("id").to_pylist() == list(range(60))


def test_hash_is_keyed_deterministic_and_joinable(src, tmp_path, monkeypatch):
    monkeypatch.setenv("AISEC_TEST_HMAC", KEY)
    out1, out2 = tmp_path / "h1.parquet", tmp_path / "h2.csv"
    redact_table(pol("hash"), str(src), str(out1))
    # same data as CSV in another table, redacted separately: tokens must match so joins work
    other = tmp_path / "other.csv"
    pacsv.write_csv(people().select(["id", "email"]), other)
    redact_table(pol("hash"), str(other), str(out2))
    t1, t2 = pq.read_table(out1), pacsv.read_csv(out2)
    e1, e2 = t1.column("email").to_pylist(), t2.column("email").to_pylist()
    assert e1 == e2 and all(v.startswith("EMAIL_ADDRESS_") and len(v) == len("EMAIL_ADDRESS_") + 32 for v in e1)
    # e-mail is normalised before hashing: two spellings of one address, one token
    assert e1[0] == e1[2] and e1[0] != e1[1]
    assert_no_planted(text_of(out1) + text_of(out2))
    # another key, other tokens
    monkeypatch.setenv("AISEC_TEST_HMAC", "z" * 24)
    out3 = tmp_path / "h3.parquet"
    redact_table(pol("hash"), str(src), str(out3))
    assert pq.read_table(out3).column("email").to_pylist()[0] != e1[0]


def test_allowed_entities_are_left_alone(src, tmp_path):
    out = tmp_path / "internal.parquet"
    outcome = redact_table(pol("mask"), str(src), str(out), classification="internal")
    assert outcome.findings == []
    table = pq.read_table(out)
    assert table.column("email").to_pylist()[:3] == EMAILS  # allowed at internal
    assert "<US_SSN>" in table.column("notes")[0].as_py()


def test_residual_pii_fails_and_nothing_is_published(src, tmp_path):
    out = tmp_path / "bad.parquet"
    loaded = parse_policy(json.dumps({
        "version": 1, "name": "t",
        "pii": {"redaction": {"method": "mask", "mask_token": "redacted@example.com"}},
    }).encode())
    run = run_check("pii", loaded, lambda: redact_table(loaded.section("pii"), str(src), str(out)))
    assert run.result.verdict == "fail"
    assert {f.rule for f in run.result.findings} == {"pii.redaction_residual"}
    assert all(f.message.startswith("redacted output: ") for f in run.result.findings)
    assert run.result.metrics["redaction"]["published"] is False
    assert not out.exists() and not list(tmp_path.glob(".aisec-redact-*"))


def test_output_must_not_be_the_input(src):
    with pytest.raises(ConfigurationError, match="must not overwrite its input"):
        redact_table(pol(), str(src), str(src))
    with pytest.raises(ConfigurationError, match="must not overwrite its input"):
        redact_table(pol(), str(src), str(src.parent / "." / src.name))


def test_bad_input_is_an_error_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 garbage")
    loaded = parse_policy(b"version: 1\nname: t\npii: {}\n")
    section = loaded.section("pii")
    run = run_check("pii", loaded, lambda: redact_table(section, str(bad), str(tmp_path / "o.parquet")))
    assert run.result.verdict == "error" and "\n" not in run.result.error.message
    assert not (tmp_path / "o.parquet").exists()
    run = run_check("pii", loaded, lambda: redact_table(section, str(bad), str(tmp_path / "nodir" / "o.parquet")))
    assert run.result.verdict == "error"


def test_key_sources_and_rules(monkeypatch):
    settings = pol("hash").redaction
    with pytest.raises(ConfigurationError, match="AISEC_TEST_HMAC"):
        resolve_hmac_key(settings, environ={})
    with pytest.raises(ConfigurationError, match="shorter than 16 bytes"):
        resolve_hmac_key(settings, environ={"AISEC_TEST_HMAC": "short"})
    assert resolve_hmac_key(settings, environ={"AISEC_TEST_HMAC": KEY}) == KEY.encode()
    assert resolve_hmac_key(settings, key_provider=lambda: b"p" * 20) == b"p" * 20
    vault = pol("hash", key={"vault_path": "aisec/pii"}).redaction
    with pytest.raises(ConfigurationError, match="no Vault client"):
        resolve_hmac_key(vault)


def test_normalisation():
    assert normalise_value("EMAIL_ADDRESS", " Zq.Alice@Example.COM ") == "zq.alice@example.com"
    assert normalise_value("US_SSN", "372-81-4409") == normalise_value("US_SSN", "372814409")
    assert normalise_value("PHONE_NUMBER", "+1 (212) 555-0147") == "+12125550147"
    assert normalise_value("IBAN_CODE", "de89 3704 0044") == "DE8937040044"


@pytest.mark.integration
def test_hash_key_from_vault(bao_server, src, tmp_path):
    root = bao_server.client()
    root.secrets.kv.v2.create_or_update_secret(path="aisec/pii-hmac", secret={"key": KEY}, mount_point="secret")
    client = VaultClient(root)
    settings = pol("hash", key={"vault_path": "aisec/pii-hmac"})
    out = tmp_path / "vault.parquet"
    outcome = redact_table(settings, str(src), str(out), vault=client)
    assert outcome.findings == [] and out.exists()
    assert KEY not in json.dumps(outcome.model_dump(mode="json"))
    # same key through the environment gives the same tokens
    out_env = tmp_path / "env.parquet"
    redact_table(pol("hash"), str(src), str(out_env), environ={"AISEC_TEST_HMAC": KEY})
    assert pq.read_table(out).column("email").to_pylist() == pq.read_table(out_env).column("email").to_pylist()
    # a missing secret or field is refused, never a default key
    missing = pol("hash", key={"vault_path": "aisec/nope"}).redaction
    with pytest.raises(AccessDeniedError):
        resolve_hmac_key(missing, vault=client)
    no_field = pol("hash", key={"vault_path": "aisec/pii-hmac", "vault_field": "other"}).redaction
    with pytest.raises(ConfigurationError, match="no non-empty string field 'other'"):
        resolve_hmac_key(no_field, vault=client)


def test_unreachable_vault_is_retryable():
    import socket

    import hvac

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = VaultClient(hvac.Client(url=f"http://127.0.0.1:{port}", token="t", timeout=2))
    with pytest.raises(ServiceUnavailableError):
        resolve_hmac_key(pol("hash", key={"vault_path": "aisec/pii-hmac"}).redaction, vault=client)


@pytest.mark.integration
def test_s3_to_s3_redaction(s3_server, src):
    client = s3_server.client()
    client.create_bucket(Bucket="redact-raw")
    client.create_bucket(Bucket="redact-clean")
    client.upload_file(str(src), "redact-raw", "people.parquet")
    before = client.head_object(Bucket="redact-raw", Key="people.parquet")["ETag"]
    outcome = redact_table(pol("mask"), "s3://redact-raw/people.parquet", "s3://redact-clean/people.parquet",
                           s3_client=client)
    assert outcome.findings == [] and outcome.metrics["redaction"]["published"]
    assert client.head_object(Bucket="redact-raw", Key="people.parquet")["ETag"] == before
    body = client.get_object(Bucket="redact-clean", Key="people.parquet")["Body"].read()
    assert check_pii(pol(), "s3://redact-clean/people.parquet", s3_client=client).findings == []
    for value in PLANTED:
        assert value.encode() not in body


def test_redaction_scans_every_row_even_when_the_gate_samples(src, tmp_path):
    sampled = PiiPolicy.model_validate({
        "levels": {"public": {"forbidden": ["*"]}},
        "scan": {"mode": "sample", "sample_size": 5, "seed": 1, "batch_rows": 16},
    })
    out = tmp_path / "all.parquet"
    outcome = redact_table(sampled, str(src), str(out))
    assert outcome.metrics["redaction"]["rows"] == 60
    assert outcome.metrics["output_scan"]["scan"]["mode"] == "full"
    assert outcome.metrics["redaction"]["columns"]["email"]["cells"] == 60
    assert_no_planted(text_of(out))


def test_names_are_redacted_with_a_local_nlp_model(tmp_path):
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PERSON", "pattern": [{"LOWER": "alice"},
                                                                               {"LOWER": "zqwerty"}]}])
    model = tmp_path / "model"
    nlp.to_disk(model)
    src = tmp_path / "names.csv"
    src.write_text("id,note\n1,call Alice Zqwerty today\n2,nothing\n")
    out = tmp_path / "names_out.csv"
    settings = PiiPolicy.model_validate({"nlp": {"enabled": True, "model": str(model)}})
    outcome = redact_table(settings, str(src), str(out))
    assert outcome.findings == []
    assert "Zqwerty" not in out.read_text() and "<PERSON>" in out.read_text()


def test_compressed_csv_in_and_out(tmp_path):
    import gzip

    src = tmp_path / "people.csv.gz"
    with gzip.open(src, "wt") as fh:
        fh.write("id,notes\n1,ssn 372-81-4409 noted\n2,fine\n")
    assert {f.location["entity"] for f in check_pii(pol(), str(src)).findings} == {"US_SSN"}
    out = tmp_path / "clean.csv.gz"
    outcome = redact_table(pol(), str(src), str(out))
    assert outcome.findings == [] and out.exists()
    text = gzip.decompress(out.read_bytes()).decode()
    assert "<US_SSN>" in text and "372-81-4409" not in text


def test_redaction_renames_a_column_whose_name_holds_pii(tmp_path):
    src = tmp_path / "headerless.csv"
    src.write_text("1,zq.alice@example.com\n2,zq.bob@example.org\n")
    out = tmp_path / "out.csv"
    outcome = redact_table(pol(), str(src), str(out))
    assert outcome.findings == [] and outcome.metrics["input_scan"]["columns_renamed"] == ["#1"]
    text = out.read_text()
    assert text.splitlines()[0] == '"1","column_1"'
    assert_no_planted(text + json.dumps(outcome.model_dump(mode="json")))


@pytest.mark.parametrize("method", ["mask", "drop"])
def test_output_schema_from_lists_equals_the_one_from_fields(method):
    """A wide CSV file's output schema is made from its names and types (its input schema is never
    made): the same fields as from the input schema's, renamed and retyped alike."""
    from airflow_aisec.core.gates.pii.redact import _output_schema
    from airflow_aisec.core.io.schema_lists import ColumnLists

    names = ["id", "email", "alice@example.com", "note", "n"]
    types = [pa.int64(), pa.string(), pa.string(), pa.string(), pa.float64()]
    targets = {"email": {"EMAIL_ADDRESS"}, "note": {"PHONE_NUMBER"}}
    labels = {"alice@example.com": "#3"}
    from_lists = _output_schema(ColumnLists(names, types), targets, method, labels)
    from_fields = _output_schema(ColumnLists.of(pa.schema(list(zip(names, types)))), targets, method, labels)
    assert ColumnLists(names, types).plain and not ColumnLists.of(pa.schema([("a", pa.int64())])).plain
    assert from_lists.equals(from_fields, check_metadata=True)
    assert from_lists.names == ["id", "email", "column_3", "note", "n"]
