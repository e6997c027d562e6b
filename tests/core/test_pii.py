"""The pii gate core: policy section, column classification, sampling, bad input, S3."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from airflow_aisec.core.gate import run_check
from airflow_aisec.core.gates.pii import check_pii, scan_table
from airflow_aisec.core.policy import parse_policy
from airflow_aisec.core.policy.sections.pii import Classification, LevelRule, PiiPolicy
from airflow_aisec.exceptions import ConfigurationError, InputDataError, ServiceUnavailableError

# Planted values: none of them may show up in any result.
SSN = "372-81-4409"
EMAIL = "zq.planted@example.com"
PHONE = "(212) 555-0147"
IBAN = "DE89 3704 0044 0532 0130 00"
CARD = "4539 1488 0343 6467"
PLANTED = [SSN, EMAIL, PHONE, IBAN, CARD, "4539148803436467", "372814409"]

ROWS = 400


def customer_table(rows: int = ROWS) -> pa.Table:
    """Mixed table: ids, an e-mail column, free-text notes with an SSN, references, a clean column."""
    return pa.table({
        "id": list(range(1, rows + 1)),
        "email": [EMAIL if i % 4 == 0 else "" for i in range(rows)],
        "notes": [f"customer said SSN {SSN} by phone {PHONE}" if i == 7 else f"order {i} shipped on time"
                  for i in range(rows)],
        # Luhn-invalid 16-digit references and some that pass Luhn by chance (~10%)
        "reference": [f"{(i * 7919 + 4_000_000_000_000_000) % 10**16:016d}" for i in range(rows)],
        "comment": [f"release v1.{i}.0 on 2024-01-{1 + i % 28:02d}, see train.py" for i in range(rows)],
    })


@pytest.fixture
def parquet_path(tmp_path):
    path = tmp_path / "customers.parquet"
    pq.write_table(customer_table(), path, row_group_size=100)
    return path


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "customers.csv"
    pacsv.write_csv(customer_table(), path)
    return path


def policy(**overrides) -> PiiPolicy:
    base = {
        "levels": {
            "public": {"forbidden": ["*"]},
            "internal": {"allowed": ["EMAIL_ADDRESS", "PHONE_NUMBER"]},
            "restricted": {"allowed": ["*"]},
        },
        "scan": {"batch_rows": 64},
    }
    base.update(overrides)
    return PiiPolicy.model_validate(base)


def assert_value_free(obj) -> None:
    text = json.dumps(obj, default=str)
    for value in PLANTED:
        assert value not in text


# --- policy section -------------------------------------------------------------------------------
def test_level_rules_explicit_beats_wildcard_and_unlisted_fails_closed():
    rule = LevelRule(allowed=["*"], forbidden=["US_SSN"])
    assert rule.allows("EMAIL_ADDRESS") and not rule.allows("US_SSN")
    rule = LevelRule(allowed=["EMAIL_ADDRESS"], forbidden=["*"])
    assert rule.allows("EMAIL_ADDRESS") and not rule.allows("URL")
    assert not LevelRule().allows("URL")  # nothing listed: nothing allowed
    assert not PiiPolicy().level_rule(Classification.RESTRICTED).allows("URL")  # level absent: nothing allowed


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"levels": {"public": {"allowed": ["EMAIL"]}}}, "unknown entity type 'EMAIL'"),
        ({"levels": {"secret": {"allowed": []}}}, "levels.secret"),
        ({"levels": {"public": {"allowed": ["URL"], "forbidden": ["URL"]}}}, "both allowed and forbidden"),
        ({"entities": ["PERSON"]}, "need an NLP model"),
        ({"entities": []}, "at least one entity"),
        ({"redaction": {"method": "hash"}}, "needs redaction.key"),
        ({"redaction": {"method": "hash", "key": {"vault_path": "a", "env": "B"}}}, "exactly one"),
        ({"redaction": {"mask_token": "{value}"}}, "only use the {entity} placeholder"),
        ({"nlp": {"enabled": True}}, "needs nlp.model"),
        ({"min_share": 1.5}, "min_share"),
        ({"scan": {"mode": "some"}}, "scan.mode"),
        ({"typo_key": 1}, "typo_key"),
    ],
)
def test_invalid_policy_sections_are_rejected(section, message):
    from airflow_aisec.exceptions import PolicyError

    doc = "version: 1\nname: t\npii: " + json.dumps(section) + "\n"
    with pytest.raises(PolicyError) as err:
        parse_policy(doc.encode())
    assert message in str(err.value)


def test_strict_policy_makes_any_entity_in_a_public_dataset_fail():
    from pathlib import Path

    from airflow_aisec.core.policy import load_policy

    loaded = load_policy(Path(__file__).resolve().parents[2] / "policies" / "strict.yaml")
    section = loaded.policy.pii
    assert section.default_classification == Classification.PUBLIC
    public = section.level_rule(Classification.PUBLIC)
    assert not any(public.allows(e) for e in section.entities)


def test_resolve_classification():
    p = policy()
    assert p.resolve_classification(None) == Classification.PUBLIC
    assert p.resolve_classification(" Internal ") == Classification.INTERNAL
    with pytest.raises(ConfigurationError, match="unknown classification 'secret'"):
        p.resolve_classification("secret")


# --- classification of columns --------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["parquet_path", "csv_path"])
def test_columns_are_classified_with_counts_shares_and_rows(request, fixture):
    path = request.getfixturevalue(fixture)
    outcome = check_pii(policy(), str(path))
    m = outcome.metrics
    assert m["scan"] == {"mode": "full", "rows_total": ROWS, "rows_scanned": ROWS}
    assert m["cells_scanned"] == ROWS * 5
    cols = m["columns"]
    assert cols["email"]["entities"]["EMAIL_ADDRESS"]["count"] == ROWS // 4
    assert cols["email"]["entities"]["EMAIL_ADDRESS"]["share"] == 0.25
    assert cols["email"]["entities"]["EMAIL_ADDRESS"]["rows"] == [0, 4, 8, 12, 16]
    assert set(cols["notes"]["entities"]) == {"US_SSN", "PHONE_NUMBER"}
    assert cols["notes"]["entities"]["US_SSN"]["rows"] == [7]
    # integer ids, references (Luhn-invalid or passing by chance) and versions/dates/file names: no PII
    assert cols["id"]["entities"] == {}
    assert cols["reference"]["entities"] == {}
    assert cols["comment"]["entities"] == {}
    assert "reference" in m["coincidental_checksums"]
    assert m["pii_columns"] == {"email": ["EMAIL_ADDRESS"], "notes": ["PHONE_NUMBER", "US_SSN"]}
    rules = {(f.location["column"], f.location["entity"]) for f in outcome.findings}
    assert rules == {("email", "EMAIL_ADDRESS"), ("notes", "US_SSN"), ("notes", "PHONE_NUMBER")}
    ssn = next(f for f in outcome.findings if f.location["entity"] == "US_SSN")
    assert ssn.rule == "pii.entity_not_allowed" and ssn.severity == "critical" and ssn.count == 1
    assert ssn.location["rows"] == [7] and ssn.location["classification"] == "public"
    assert outcome.inputs[0].sha256 and len(outcome.inputs[0].sha256) == 64
    assert_value_free(outcome.model_dump(mode="json"))


def test_classification_decides_what_is_allowed(parquet_path):
    internal = check_pii(policy(), str(parquet_path), classification="internal")
    assert {f.location["entity"] for f in internal.findings} == {"US_SSN"}
    restricted = check_pii(policy(), str(parquet_path), classification="restricted")
    assert restricted.findings == [] and restricted.metrics["classification"] == "restricted"
    # what the columns carry is reported whatever the level
    assert restricted.metrics["pii_columns"]["notes"] == ["PHONE_NUMBER", "US_SSN"]


def test_min_share_sets_when_a_column_counts_as_pii(parquet_path):
    outcome = check_pii(policy(min_share=0.1), str(parquet_path))
    # notes carry the SSN in 1 of 400 rows: below 10%, recorded but not a finding
    assert {f.location["column"] for f in outcome.findings} == {"email"}
    assert outcome.metrics["columns"]["notes"]["entities"]["US_SSN"]["pii"] is False


def test_integer_id_and_luhn_invalid_reference_columns_are_not_pii(tmp_path):
    path = tmp_path / "ids.parquet"
    refs = [f"4{(i * 104729) % 10**15:015d}" for i in range(2000)]
    luhn_bad = []
    for r in refs:
        digits = [int(d) for d in r]
        total = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
        luhn_bad.append(r if total % 10 else r[:-1] + str((int(r[-1]) + 1) % 10))
    pq.write_table(pa.table({
        "customer_id": pa.array(range(10_000_000, 10_002_000), pa.int64()),
        "account_id": pa.array(range(2125550100, 2125552100), pa.int64()),  # phone-like integers
        "order_ref": luhn_bad,
        "random_ref": refs,                                                  # ~10% Luhn-valid by chance
    }), path)
    outcome = check_pii(policy(), str(path))
    assert outcome.findings == []
    assert outcome.metrics["pii_columns"] == {}


def test_sampling_is_recorded_and_reproducible(parquet_path):
    sampled = policy(scan={"mode": "sample", "sample_size": 100, "seed": 3, "batch_rows": 64})
    a = check_pii(sampled, str(parquet_path))
    b = check_pii(sampled, str(parquet_path))
    assert a.metrics["scan"] == {"mode": "sample", "rows_total": ROWS, "rows_scanned": 100, "sample_size": 100,
                                 "seed": 3}
    assert a.metrics["columns"] == b.metrics["columns"]
    email = a.metrics["columns"]["email"]["entities"]["EMAIL_ADDRESS"]
    assert 10 <= email["count"] <= 45 and all(r % 4 == 0 for r in email["rows"])  # global row positions
    other = check_pii(policy(scan={"mode": "sample", "sample_size": 100, "seed": 4}), str(parquet_path))
    assert other.metrics["columns"]["email"]["entities"]["EMAIL_ADDRESS"]["rows"] != email["rows"]
    # a sample larger than the table is the whole table (still recorded as a sample)
    big = check_pii(policy(scan={"mode": "sample", "sample_size": 10_000}), str(parquet_path))
    assert big.metrics["scan"]["rows_scanned"] == ROWS


def test_policy_columns_and_exclusions(parquet_path):
    only = check_pii(policy(columns=["notes"]), str(parquet_path))
    assert only.metrics["columns_scanned"] == ["notes"]
    excluded = check_pii(policy(exclude_columns=["email"]), str(parquet_path))
    assert "email" not in excluded.metrics["columns_scanned"]
    assert excluded.metrics["columns_skipped"]["email"] == "excluded by policy"


def test_non_text_columns_are_skipped_and_recorded(tmp_path):
    path = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"x": [1.5, 2.5], "flag": [True, False], "note": ["ok", "fine"]}), path)
    outcome = check_pii(policy(), str(path))
    assert outcome.metrics["columns_scanned"] == ["note"]
    assert outcome.metrics["columns_skipped"] == {"x": "double", "flag": "bool"}


def test_binary_and_decimal_columns_are_scanned_nested_text_is_refused(tmp_path):
    # Parquet writers store text as plain binary (no UTF-8 annotation) and card numbers as
    # decimals: skipping them let every value pass unseen.
    rows = 40
    path = tmp_path / "typed.parquet"
    pq.write_table(pa.table({
        "contact": pa.array([EMAIL.encode()] * rows, pa.binary()),
        "raw": pa.array([b"\xff\xfe" + EMAIL.encode()] * rows, pa.large_binary()),  # not UTF-8 as a whole
        "card": pa.array([4539148803436467] * rows, pa.decimal128(16, 0)),
        "note": ["ok"] * rows,
    }), path)
    outcome = check_pii(policy(), str(path))
    carried = {(f.location["column"], f.location["entity"]) for f in outcome.findings}
    assert {("contact", "EMAIL_ADDRESS"), ("raw", "EMAIL_ADDRESS"), ("card", "CREDIT_CARD")} <= carried
    assert outcome.metrics["columns_skipped"] == {}
    assert_value_free(outcome.model_dump())

    nested = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"tags": pa.array([["a", EMAIL]] * rows), "vec": pa.array([[0.5, 1.5]] * rows),
                             "note": ["ok"] * rows}), nested)
    with pytest.raises(InputDataError, match="'tags'") as info:
        check_pii(policy(), str(nested))
    assert EMAIL not in str(info.value)
    allowed = check_pii(policy(exclude_columns=["tags"]), str(nested))  # an explicit decision
    assert allowed.metrics["columns_skipped"] == {"tags": "excluded by policy", "vec": "list<element: double>"}


def test_csv_columns_are_read_as_text_so_leading_zeros_and_mixed_values_survive(tmp_path):
    path = tmp_path / "mixed.csv"
    lines = ["id,ssn"] + [f"{i},{100 + i}" for i in range(2000)] + ["2000,529-33-0187"]
    path.write_text("\n".join(lines) + "\n")
    outcome = check_pii(policy(), str(path))
    assert outcome.metrics["columns"]["ssn"]["entities"]["US_SSN"]["rows"] == [2000]


def test_column_hint_context_for_bare_numbers(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("customer_id,ssn,passport_no\n" + "".join(
        f"{100000000 + i},{529330187 + i * 11},{912345678 - i}\n" for i in range(50)))
    outcome = check_pii(policy(), str(path))
    assert outcome.metrics["pii_columns"] == {"ssn": ["US_SSN"], "passport_no": ["US_PASSPORT"]}


# --- the gate verdict --------------------------------------------------------------------------------
def test_gate_verdicts_through_run_check(parquet_path, tmp_path):
    doc = ("version: 1\nname: t\nrules: {pii.entity_not_allowed: enforce}\npii:\n"
           "  levels: {public: {forbidden: ['*']}, restricted: {allowed: ['*']}}\n")
    loaded = parse_policy(doc.encode())
    section = loaded.section("pii")
    run = run_check("pii", loaded, lambda: check_pii(section, str(parquet_path)))
    assert run.result.verdict == "fail"
    clean = tmp_path / "clean.parquet"
    pq.write_table(pa.table({"id": [1, 2], "txt": ["hello", "world"]}), clean)
    assert run_check("pii", loaded, lambda: check_pii(section, str(clean))).result.verdict == "pass"
    ok = run_check("pii", loaded, lambda: check_pii(section, str(parquet_path), classification="restricted"))
    assert ok.result.verdict == "pass"
    assert_value_free(run.result.to_dict())


# --- bad input ----------------------------------------------------------------------------------------
def _bad_inputs(tmp_path, parquet_path):
    data = parquet_path.read_bytes()
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(data[: len(data) // 2])
    wrong = tmp_path / "really_parquet.csv"
    wrong.write_bytes(data)
    empty_table = tmp_path / "header_only.csv"
    empty_table.write_text("id,email\n")
    empty_file = tmp_path / "zero.csv"
    empty_file.write_bytes(b"")
    cut_csv = tmp_path / "cut.csv"
    cut_csv.write_text("id,email,notes\n1,a@b.c,ok\n2,x\n")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not a parquet file at all" * 10)
    return {
        "truncated": (truncated, "truncated"),
        "wrong format": (wrong, "Parquet"),
        "empty table": (empty_table, "empty"),
        "empty file": (empty_file, "empty"),
        "cut csv": (cut_csv, "CSV"),
        "junk": (junk, "Parquet"),
        "missing": (tmp_path / "nope.parquet", "not found"),
        "directory": (tmp_path, "format"),
    }


def test_bad_input_is_a_clear_one_line_error_never_a_pass(tmp_path, parquet_path):
    loaded = parse_policy(b"version: 1\nname: t\npii: {}\n")
    for name, (path, fragment) in _bad_inputs(tmp_path, parquet_path).items():
        run = run_check("pii", loaded, lambda p=path: check_pii(loaded.section("pii"), str(p)))
        assert run.result.verdict == "error", name
        assert isinstance(run.exception, InputDataError), (name, run.exception)
        message = run.result.error.message
        assert "\n" not in message and fragment.lower() in message.lower(), (name, message)


def test_policy_column_missing_from_data_is_an_error(parquet_path):
    with pytest.raises(InputDataError, match="column\\(s\\) not in the data: 'ssn'"):
        check_pii(policy(columns=["notes", "ssn"]), str(parquet_path))
    with pytest.raises(InputDataError, match="'gone'"):
        check_pii(policy(exclude_columns=["gone"]), str(parquet_path))


def test_scan_table_reports_what_it_read(parquet_path):
    report = scan_table(policy(), str(parquet_path))
    assert report.fmt == "parquet" and report.rows_total == ROWS and report.mode == "full"
    assert report.cells_scanned == ROWS * 5


# --- S3 (real moto server) ---------------------------------------------------------------------------
@pytest.mark.integration
def test_s3_input_and_s3_errors(s3_server, parquet_path):
    client = s3_server.client()
    client.create_bucket(Bucket="pii-raw")
    client.upload_file(str(parquet_path), "pii-raw", "customers.parquet")
    outcome = check_pii(policy(), "s3://pii-raw/customers.parquet", s3_client=client)
    assert outcome.inputs[0].uri == "s3://pii-raw/customers.parquet"
    assert outcome.metrics["pii_columns"]["notes"] == ["PHONE_NUMBER", "US_SSN"]
    with pytest.raises(InputDataError, match="not found"):
        check_pii(policy(), "s3://pii-raw/missing.parquet", s3_client=client)
    with pytest.raises(InputDataError, match="not found"):
        check_pii(policy(), "s3://no-such-bucket/x.parquet", s3_client=client)


@pytest.mark.integration
def test_s3_access_denied_is_an_error(s3_server, parquet_path):
    from airflow_aisec.exceptions import AccessDeniedError

    client = s3_server.client()
    client.create_bucket(Bucket="pii-locked")
    client.upload_file(str(parquet_path), "pii-locked", "customers.parquet")
    client.put_bucket_policy(Bucket="pii-locked", Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": "arn:aws:s3:::pii-locked/*"}],
    }))
    loaded = parse_policy(b"version: 1\nname: t\npii: {}\n")
    section = loaded.section("pii")
    run = run_check("pii", loaded, lambda: check_pii(section, "s3://pii-locked/customers.parquet", s3_client=client))
    assert run.result.verdict == "error" and not run.result.error.retryable
    assert isinstance(run.exception, AccessDeniedError)


def test_unreachable_s3_is_retryable():
    import socket

    import boto3
    from botocore.config import Config

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="x",
                          aws_secret_access_key="y", region_name="us-east-1",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    loaded = parse_policy(b"version: 1\nname: t\npii: {}\n")
    section = loaded.section("pii")
    run = run_check("pii", loaded, lambda: check_pii(section, "s3://b/k.parquet", s3_client=client))
    assert run.result.verdict == "error" and run.result.error.retryable
    assert isinstance(run.exception, ServiceUnavailableError)


# --- optional NLP model (PERSON / LOCATION) -----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_spacy_model(tmp_path_factory):
    """A local spaCy pipeline (rule-based NER) standing in for a user-installed model: nothing is downloaded."""
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PERSON", "pattern": [{"LOWER": "alice"}, {"LOWER": "zqwerty"}]},
                        {"label": "GPE", "pattern": "Springfield"}])
    path = tmp_path_factory.mktemp("model") / "tiny_ner"
    nlp.to_disk(path)
    return path


def test_nlp_entities_with_a_local_model(tmp_path, tiny_spacy_model):
    path = tmp_path / "names.parquet"
    pq.write_table(pa.table({"note": ["met Alice Zqwerty in Springfield", "nothing here", "ok"]}), path)
    outcome = check_pii(policy(nlp={"enabled": True, "model": str(tiny_spacy_model)}), str(path))
    assert {(f.location["entity"], tuple(f.location["rows"])) for f in outcome.findings} == {
        ("PERSON", (0,)), ("LOCATION", (0,))}
    assert outcome.metrics["nlp"]["enabled"] is True and "PERSON" in outcome.metrics["entities_checked"]
    assert "Zqwerty" not in json.dumps(outcome.model_dump(mode="json"))
    # without the model, only the offline gazetteers (pii.text, on by default) read names; off: nothing
    assert {f.location["entity"] for f in check_pii(policy(), str(path)).findings} == {"PERSON"}
    assert check_pii(policy(text={"enabled": False}), str(path)).findings == []


def test_nlp_model_that_is_not_installed_is_refused_never_downloaded(tmp_path, monkeypatch):
    import spacy.cli

    def no_download(*_a, **_k):
        raise AssertionError("a model download was attempted")

    monkeypatch.setattr(spacy.cli, "download", no_download)
    path = tmp_path / "names.parquet"
    pq.write_table(pa.table({"note": ["hello"]}), path)
    with pytest.raises(ConfigurationError, match="never downloaded"):
        check_pii(policy(nlp={"enabled": True, "model": "en_core_web_lg"}), str(path))


def test_a_header_that_holds_pii_is_never_shown(tmp_path):
    """A CSV without a header row: its first row becomes the column names; results refer to #index."""
    path = tmp_path / "headerless.csv"
    path.write_text(f"1,{EMAIL},{SSN}\n2,other@example.org,529-33-0187\n3,third@example.org,611-20-7345\n")
    outcome = check_pii(policy(), str(path))
    rules = {(f.rule, f.location["column"], f.location["entity"]) for f in outcome.findings}
    assert ("pii.entity_in_column_name", "#1", "EMAIL_ADDRESS") in rules
    assert ("pii.entity_in_column_name", "#2", "US_SSN") in rules
    assert ("pii.entity_not_allowed", "#1", "EMAIL_ADDRESS") in rules
    assert outcome.metrics["columns_scanned"] == ["1", "#1", "#2"]
    assert_value_free(outcome.model_dump(mode="json"))
