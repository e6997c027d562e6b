"""``pii.entities`` / ``pii.countries``: which entities the gate detects, bad names refused in one line,
the shipped policies still valid, and planted national identifiers found without leaving their values
in findings or results."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from airflow_aisec.core.policy.sections.pii import (
    ALL_PATTERN_ENTITIES,
    BASE_ENTITIES,
    COUNTRY_BASE_ENTITIES,
    COUNTRY_ENTITIES,
    DEFAULT_ENTITIES,
    PiiPolicy,
)

REPO = Path(__file__).resolve().parents[2]


def test_default_selection_is_the_nine_plus_distinctive_national_ids():
    policy = PiiPolicy()
    assert policy.entities == list(DEFAULT_ENTITIES)
    assert set(BASE_ENTITIES) <= set(policy.entities)
    for entity in ("FR_NIR", "NL_BSN", "BE_NATIONAL_NUMBER", "AT_SOCIAL_SECURITY", "CH_AHV", "ES_NIF",
                   "IT_FISCAL_CODE", "UK_NINO"):
        assert entity in policy.entities
    for opt_in in ("DATE_TIME", "DE_PLZ", "UK_POSTCODE", "DE_KFZ", "US_DRIVER_LICENSE", "FR_SIREN", "US_ITIN",
                   "DE_TAX_ID", "PL_PESEL", "UK_NHS"):
        assert opt_in not in policy.entities


def test_every_entity_belongs_to_one_country_group():
    grouped = [e for group in COUNTRY_ENTITIES.values() for e in group]
    assert len(grouped) == len(set(grouped)) == len(ALL_PATTERN_ENTITIES)
    assert set(COUNTRY_ENTITIES) >= {"US", "UK", "DE", "ES", "IT", "FR", "NL", "BE", "AT", "CH", "PL", "FI", "SE",
                                     "SG", "AU", "IN", "KR", "PH", "TH", "TR", "NG", "ZA", "CA", "GENERIC"}


def test_explicit_entities_are_taken_as_given():
    policy = PiiPolicy.model_validate({"entities": ["email_address", "US_SSN"]})
    assert policy.entities == ["EMAIL_ADDRESS", "US_SSN"]
    assert policy.countries is None


def test_countries_select_their_entities_plus_generic_contact_data():
    policy = PiiPolicy.model_validate({"countries": ["de", "FR"]})
    assert policy.countries == ["DE", "FR"]
    assert set(policy.entities) == set(COUNTRY_BASE_ENTITIES) | set(COUNTRY_ENTITIES["DE"]) | set(COUNTRY_ENTITIES["FR"])
    assert "US_SSN" not in policy.entities and "DATE_TIME" not in policy.entities
    both = PiiPolicy.model_validate({"countries": ["NL"], "entities": ["US_SSN"]})
    assert set(both.entities) == {"US_SSN", *COUNTRY_BASE_ENTITIES, "NL_BSN"}
    generic = PiiPolicy.model_validate({"countries": ["GENERIC"]})
    assert set(generic.entities) == set(COUNTRY_ENTITIES["GENERIC"])


def test_wildcard_selects_every_pattern_entity():
    assert set(PiiPolicy.model_validate({"entities": ["*"]}).entities) == set(ALL_PATTERN_ENTITIES)


@pytest.mark.parametrize(("section", "fragment"), [
    ({"entities": ["DE_TAXID"]}, "unknown entity type 'DE_TAXID'; did you mean DE_TAX_ID"),
    ({"countries": ["XX"]}, "unknown country group ['XX']"),
    ({"countries": "DE"}, "countries must be a list"),
    ({"entities": ["PERSON"]}, "need an NLP model"),
    ({"levels": {"public": {"allowed": ["NL_BSM"]}}}, "unknown entity type 'NL_BSM'"),
])
def test_bad_names_are_refused(section, fragment):
    with pytest.raises(ValidationError) as err:
        PiiPolicy.model_validate(section)
    assert fragment in str(err.value)


def test_levels_and_hints_accept_new_entities():
    policy = PiiPolicy.model_validate({
        "countries": ["FR"],
        "levels": {"internal": {"allowed": ["FR_SIREN"], "forbidden": ["FR_NIR"]}},
        "column_hints": {"nl_bsn": ["klant_nr*"]},
    })
    assert policy.level_rule("internal").allows("FR_SIREN")
    assert not policy.level_rule("internal").allows("FR_NIR")
    assert policy.column_hints == {"NL_BSN": ["klant_nr*"]}


def test_shipped_policies_still_validate():
    from airflow_aisec.core.policy.loader import load_policy

    paths = sorted((REPO / "policies").glob("*.yaml"))
    assert paths
    for path in paths:
        loaded = load_policy(path)  # raises on an invalid section
        section = getattr(loaded.policy, "pii", None)
        if section is not None:
            assert set(section.entities) <= set(ALL_PATTERN_ENTITIES)


def test_unknown_country_in_a_policy_file_is_exit_2_one_line(aisec_cli, tmp_path):
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": ["a", "b"]}), table)
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\nname: c\npii:\n  countries: [DE, XX]\n")
    out = aisec_cli("pii", "scan", str(table), "--policy", str(policy))
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "XX" in lines[0] and "Traceback" not in out.stderr


# --- planted values -----------------------------------------------------------------------------
NIR = "2 55 08 14 168 025 38"
BSN = "111222333"
AHV = "756.9217.0769.85"
BE_NN = "85.07.30-033.28"
AT_SVNR = "1237 010180"
PLANTED = [NIR, NIR.replace(" ", ""), BSN, AHV, BE_NN, AT_SVNR, "255081416802538", "7569217076985"]


@pytest.fixture
def planted_table(tmp_path):
    n = 40
    path = tmp_path / "eu.parquet"
    pq.write_table(pa.table({
        "id": list(range(n)),
        "bsn": [BSN if i % 2 else "" for i in range(n)],
        "notes": [f"assuré NIR {NIR}, AHV {AHV}" if i == 5 else
                  f"rijksregisternummer {BE_NN}" if i == 6 else
                  f"SVNR {AT_SVNR}" if i == 7 else "rien à signaler" for i in range(n)],
        "reference": [str(100_000_000 + 7919 * i) for i in range(n)],
    }), path)
    return path


def test_planted_national_ids_found_and_never_echoed(planted_table):
    from airflow_aisec.core.gates.pii import check_pii

    policy = PiiPolicy.model_validate({"levels": {"public": {"forbidden": ["*"]}}})
    outcome = check_pii(policy, str(planted_table))
    found = {(f.location["column"], f.location["entity"]) for f in outcome.findings}
    # The phone finder may also read a spaced NIR / SVNR as a phone number (national ids do not hide
    # the phone reading there); nothing else is expected, and the reference column is not an id.
    assert found - {("notes", "PHONE_NUMBER")} == {
        ("bsn", "NL_BSN"), ("notes", "FR_NIR"), ("notes", "CH_AHV"), ("notes", "BE_NATIONAL_NUMBER"),
        ("notes", "AT_SOCIAL_SECURITY")}
    dumped = json.dumps([f.model_dump(mode="json") for f in outcome.findings], default=str) + json.dumps(
        outcome.metrics, default=str)
    for value in PLANTED:
        assert value not in dumped


def test_country_selection_changes_what_is_found(planted_table):
    from airflow_aisec.core.gates.pii import check_pii

    policy = PiiPolicy.model_validate({"levels": {"public": {"forbidden": ["*"]}}, "countries": ["NL"]})
    outcome = check_pii(policy, str(planted_table))
    assert {f.location["entity"] for f in outcome.findings} - {"PHONE_NUMBER"} == {"NL_BSN"}
    assert "FR_NIR" not in outcome.metrics["entities_checked"]
