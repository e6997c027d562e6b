"""Recognizers of the pii gate: Presidio's patterns and validators, context rules, RE2 candidates."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from airflow_aisec.core.gates.pii._patterns import Detector, normalise_column_name
from airflow_aisec.core.gates.pii._validators import coincidental
from airflow_aisec.core.policy.sections.pii import PATTERN_ENTITIES


def luhn_complete(prefix: str, length: int = 16) -> str:
    """A Luhn-valid card number starting with ``prefix``."""
    body = prefix + "".join(str(random.Random(prefix).randint(0, 9)) for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        digits = [int(d) for d in body + check]
        total = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
        if total % 10 == 0:
            return body + check
    raise AssertionError("unreachable")


def luhn_invalid(number: str) -> str:
    last = (int(number[-1]) + 1) % 10
    return number[:-1] + str(last)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


def found(detector: Detector, text: str, column: str = "notes") -> dict[str, list[str]]:
    """Run the full path for one cell: RE2 candidates, then Presidio validation."""
    hinted = detector.hinted_entities(column)
    regexes = detector.candidate_regexes(hinted)
    arr = pa.array([text])
    candidates = [e for e, rx in regexes.items() if pc.match_substring_regex(arr, rx)[0].as_py()]
    cell = detector.detect(text, candidates, hinted)
    out: dict[str, list[str]] = {}
    for m in cell.matches:
        out.setdefault(m.entity, []).append(text[m.start:m.end])
    return out


CARD = luhn_complete("4539")


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("jane.roe@example.com", "EMAIL_ADDRESS", "jane.roe@example.com"),
        ("write to Jane <jane.roe@mail.example.org> today", "EMAIL_ADDRESS", "jane.roe@mail.example.org"),
        ("call (212) 555-0147 after 5pm", "PHONE_NUMBER", "(212) 555-0147"),
        ("+44 20 7946 0958", "PHONE_NUMBER", "+44 20 7946 0958"),
        ("patient SSN 372-81-4409 on file", "US_SSN", "372-81-4409"),
        (f"card {CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]} charged", "CREDIT_CARD",
         f"{CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]}"),
        (CARD, "CREDIT_CARD", CARD),
        ("pay to DE89 3704 0044 0532 0130 00 please", "IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
        ("GB82WEST12345698765432", "IBAN_CODE", "GB82WEST12345698765432"),
        ("login from 192.168.10.24 failed", "IP_ADDRESS", "192.168.10.24"),
        ("v6 host 2001:db8::8a2e:370:7334", "IP_ADDRESS", "2001:db8::8a2e:370:7334"),
        ("see https://example.org/profile/42 for details", "URL", "https://example.org/profile/42"),
        ("passport: A12345678", "US_PASSPORT", "A12345678"),
        ("wire to bank acct 000123456789", "US_BANK_NUMBER", "000123456789"),
    ],
)
def test_detects_entities_in_structured_and_free_text(detector, text, entity, value):
    assert value in found(detector, text).get(entity, [])


@pytest.mark.parametrize(
    "text",
    [
        "1234567",                      # integer id
        "123456789",                    # 9-digit id: SSN/passport/bank only with context
        "2125550123",                   # bare 10 digits: phone only with context
        "20240115",                     # compact date
        "2024-01-15",                   # date
        "v1.2.3",                       # version
        luhn_invalid(CARD),             # Luhn-invalid 16-digit reference
        "ref " + luhn_invalid(CARD),
        "order 1234-5678 shipped",
        "12345-6789",                   # ZIP+4 (SSN1 very weak pattern)
        "run train.py then eval.sh",    # file names with ccTLD-like extensions
        "000-12-3456",                  # SSN area 000 (Presidio invalidates)
        "XX12 ABCD EFGH IJKL",          # IBAN-shaped, bad checksum
        "3.14159 and 2.71828",
        "user@localhost",               # no public suffix
    ],
)
def test_no_false_positive_on_ids_references_and_the_like(detector, text):
    assert found(detector, text) == {}


def test_email_domain_is_not_also_a_url(detector):
    assert found(detector, "john.doe@example.com") == {"EMAIL_ADDRESS": ["john.doe@example.com"]}


def test_weak_patterns_need_column_or_text_context(detector):
    assert found(detector, "529330187", column="id") == {}
    assert found(detector, "529330187", column="customer_ssn") == {"US_SSN": ["529330187"]}
    assert found(detector, "912345678", column="passport_no") == {"US_PASSPORT": ["912345678"]}
    assert found(detector, "12345678901", column="BankAccountNumber") == {"US_BANK_NUMBER": ["12345678901"]}
    assert found(detector, "2125550147", column="mobile_phone") == {"PHONE_NUMBER": ["2125550147"]}
    assert found(detector, "my ssn is 529330187") == {"US_SSN": ["529330187"]}
    # the context must come before the number, within Presidio's five-word window
    assert found(detector, "529330187 is not my ssn") == {}
    assert found(detector, "ssn one two three four five six 529330187") == {}


def test_column_hints_from_policy(monkeypatch):
    d = Detector(column_hints={"US_PASSPORT": ["pp_num*"]})
    assert d.hinted_entities("PP_NUMBER") == {"US_PASSPORT"}
    assert Detector().hinted_entities("PP_NUMBER") == frozenset()


def test_normalise_column_name():
    assert normalise_column_name("CustomerSSN") == "customer_ssn"
    assert normalise_column_name("Bank Account#") == "bank_account"
    assert normalise_column_name("phone-number") == "phone_number"


def test_chance_correction_statistics():
    # random 16-digit references: ~10% pass Luhn
    assert coincidental("CREDIT_CARD", 1000, 105)
    # a card column: nearly all pass
    assert not coincidental("CREDIT_CARD", 1000, 990)
    # 100 real cards hidden among 900 references stand out
    assert not coincidental("CREDIT_CARD", 1000, 190)
    # too few candidates to judge: every valid one counts
    assert not coincidental("CREDIT_CARD", 5, 1)
    # entities without a checksum are never coincidences
    assert not coincidental("EMAIL_ADDRESS", 1000, 1)


def test_candidates_are_never_stricter_than_presidio(detector):
    """Every value Presidio's own engine flags (score >= 0.3, context-free) is a candidate for RE2."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from airflow_aisec.core.gates.pii._presidio import quiet_presidio

    rng = random.Random(7)
    samples = [
        "jane.roe@example.com", "a_b-c+d@sub.example.co.uk", "(212) 555-0147", "+1 415-555-0132",
        "+49 30 901820", "020 7946 0958", "01 23 45 67 89", "372-81-4409", "372 81 4409", "372.81.4409",
        "DE89 3704 0044 0532 0130 00", "FR1420041010050500013M02606", "10.0.0.1", "fe80::1ff:fe23:4567:890a",
        "https://www.example.com/a?b=c", "www.example.org", "example.net/path",
    ]
    samples += [luhn_complete(p, n) for p in ("4", "51", "6011", "37") for n in (15, 16)]
    samples += [f"note {s} end" for s in list(samples)]
    n_structured = len(samples)
    samples += ["".join(rng.choice("0123456789-. ()+@abc") for _ in range(rng.randint(5, 25))) for _ in range(300)]
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "no_op", "models": [{"lang_code": "en", "model_name": "no_op"}]})
    engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    regexes = detector.candidate_regexes(frozenset())
    arr = pa.array(samples)
    masks = {e: pc.match_substring_regex(arr, rx).to_pylist() for e, rx in regexes.items()}
    missed = []
    with quiet_presidio():
        for i, text in enumerate(samples):
            for r in engine.analyze(text=text, language="en", entities=list(PATTERN_ENTITIES)):
                if r.score < 0.3:
                    continue  # very weak patterns need context by design
                # Phone numbers come from python-phonenumbers, not a regex: candidates cover their
                # written forms (the structured samples), not whatever it accepts in random junk.
                if r.entity_type == "PHONE_NUMBER" and i >= n_structured:
                    continue
                if not masks[r.entity_type][i]:
                    missed.append((i, r.entity_type))
    assert missed == []


def test_bulk_decisions_equal_presidio_one_by_one(detector):
    """Whole-cell values decided in bulk (e-mail, IBAN, digits/Luhn, passports, +1 phones) get exactly the
    entities the one-by-one Presidio path gives them, in plain and in hinted columns."""
    import numpy as np

    from airflow_aisec.core.gates.pii._detect import ChecksumTally, build_plan, iter_column_detections
    from airflow_aisec.core.gates.pii._validators import luhn_valid, nanp_valid

    rng = random.Random(11)
    values = ["jane.roe@example.com", "x_y+z@mail.example.co.uk", "bad@domain.invalidtld", "a@b", "ok@localhost",
              "DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 01",
              "GB82WEST12345698765432", "A12345678", "a12345678", "912345678", "(212) 555-0147", "212-555-0147",
              "+1 212 555 0147", "1-212-555-0147", "2125550147", "(123) 456-7890", "555-555-5555", "+44 20 7946 0958"]
    for _ in range(150):
        n = rng.choice([8, 9, 12, 13, 15, 16, 17])
        values.append(str(rng.choice([1, 3, 4, 5, 6, 7, 57])) + "".join(str(rng.randint(0, 9)) for _ in range(n - 1)))
        values.append(luhn_complete(str(rng.choice([4, 51, 6011, 37])), rng.choice([13, 15, 16])))
        values.append(f"({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}")
    arr = pa.array(values)
    schema = pa.schema([pa.field(c, pa.string()) for c in ("notes", "bank_account", "passport_no", "mobile")])
    for plan in build_plan(detector, schema.names):
        tally = ChecksumTally()
        bulk = {i: cell.entities for i, _t, cell in iter_column_detections(arr, plan, detector, tally=tally)}
        one_by_one, candidates, valid = {}, 0, 0
        masks = {e: pc.match_substring_regex(arr, rx).to_pylist() for e, rx in plan.regexes.items()}
        for i, text in enumerate(values):
            ents = [e for e in plan.regexes if masks[e][i]]
            if not ents:
                continue
            cell = detector.detect(text, ents, plan.hinted)
            if cell.entities:
                one_by_one[i] = cell.entities
            # digit groups inside a valid IBAN are by-products: the bulk path does not count them
            if "CREDIT_CARD" in cell.checksum_candidates and "IBAN_CODE" not in cell.entities:
                candidates += 1
                valid += "CREDIT_CARD" in cell.entities
        assert bulk == one_by_one, plan.name
        assert tally.get("CREDIT_CARD", [0, 0]) == [candidates, valid], plan.name
    # the vectorized checks themselves
    cards = [luhn_complete("4", 16), luhn_invalid(luhn_complete("4", 16)), luhn_complete("37", 15)]
    assert luhn_valid(cards).tolist() == [True, False, True]
    import phonenumbers

    numbers = [str(rng.randint(2000000000, 9999999999)) for _ in range(3000)]
    expected = [phonenumbers.is_valid_number(phonenumbers.parse("+1" + x)) for x in numbers]
    assert nanp_valid(pa.array(numbers)).tolist() == expected
    assert np.asarray(expected).any() and not np.asarray(expected).all()


def test_email_validation_never_touches_the_network(monkeypatch):
    """Presidio's e-mail validator would fetch the public-suffix list; the gate uses the bundled snapshot."""
    import requests

    def no_network(*_a, **_k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(requests.Session, "send", no_network)
    d = Detector(["EMAIL_ADDRESS"])
    assert d.detect("mail jane.roe@example.co.uk now", ["EMAIL_ADDRESS"]).entities == {"EMAIL_ADDRESS"}
    assert d.detect("x@host.invalidtld", ["EMAIL_ADDRESS"]).entities == set()


def test_iban_loop_matches_presidio_iban_recognizer(detector):
    from presidio_analyzer.predefined_recognizers import IbanRecognizer

    presidio = IbanRecognizer()
    texts = ["DE89 3704 0044 0532 0130 00", "I want my deposit in DE89370400440532013000 2 days from today.",
             "IBAN GB82 WEST 1234 5698 7654 32 X", "GB82WEST12345698765432GB82WEST12345698765432",
             "two: DE89370400440532013000 and FR1420041010050500013M02606", "XX12 ABCD EFGH IJKL", "de89 3704 0044"]
    for text in texts:
        ours = sorted((s, e) for s, e, _score in detector._iban_matches(text))
        theirs = sorted((r.start, r.end) for r in presidio.analyze(text, ["IBAN_CODE"]))
        assert ours == theirs, text


def test_url_next_to_an_email_is_still_found(detector):
    assert found(detector, "mail jane.roe@example.com or visit www.example.org") == {
        "EMAIL_ADDRESS": ["jane.roe@example.com"], "URL": ["www.example.org"]}


def _pairwise_resolution(found):
    """The overlap rule applied pairwise over every match (reference for the clustered version)."""
    kept = []
    for m in sorted(found, key=lambda x: (-(x.end - x.start), -x.score, x.start)):
        if not any(o.start <= m.start and o.end >= m.end
                   and (o.entity == m.entity
                        or ((o.score > m.score or (o.score == m.score and (o.end - o.start) > (m.end - m.start)))
                            and (o.start, o.end) != (m.start, m.end)))
                   for o in kept):
            kept.append(m)
    return sorted(kept, key=lambda x: x.start)


def test_overlap_resolution_by_runs_equals_the_pairwise_rule():
    from airflow_aisec.core.gates.pii._matches import Match, resolve_overlaps

    rng = random.Random(5)
    for _ in range(300):
        found = []
        for _ in range(rng.randint(0, 40)):
            start = rng.randint(0, 200)
            found.append(Match(rng.choice(["URL", "EMAIL_ADDRESS", "CREDIT_CARD", "PHONE_NUMBER"]), start,
                               start + rng.randint(1, 30), rng.choice([0.4, 0.5, 1.0])))
        assert resolve_overlaps(list(found)) == _pairwise_resolution(found)


def test_long_cells_are_read_in_windows_with_the_same_matches(detector):
    """A long cell gives the matches of one pass over it, at the same offsets, also across window edges."""
    from airflow_aisec.core.gates.pii._patterns import WINDOW_CHARS

    rng = random.Random(3)
    pieces = ["jane.roe@example.com", "+1 212-555-0147", "https://example.org/a/b?x=1", "10.0.0.1", CARD,
              "DE89 3704 0044 0532 0130 00", "078-05-1120", "www.example.org"]
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "ref", "2024", "x.y", "note"]
    for _ in range(3):
        parts = []
        while sum(len(p) + 1 for p in parts) < 6 * WINDOW_CHARS:
            parts.append(rng.choice(pieces) if rng.random() < 0.3 else rng.choice(words))
        text = " ".join(parts)
        entities = list(detector.entities)
        windowed = detector.detect(text, entities)
        whole = detector._detect(text, entities, frozenset())
        assert len(text) > WINDOW_CHARS
        assert windowed.matches == whole.matches
        assert windowed.checksum_candidates == whole.checksum_candidates


@pytest.mark.timeout(300)  # a hang guard: quadratic backtracking took many minutes per cell
def test_long_cells_cost_linear_time(detector):
    """Presidio's regexes backtrack: an unbroken run before an address cost quadratic time (minutes)."""
    import base64

    blob = base64.b64encode(random.Random(1).randbytes(150_000)).decode()
    for text, entity in ((blob + " jane.roe@example.com", "EMAIL_ADDRESS"),
                         ("a-" * 100_000 + " jane.roe@example.com", "EMAIL_ADDRESS")):
        assert entity in found(detector, text)


def test_two_entities_reading_the_same_text_are_both_reported():
    """A value that is a US and a ZA passport number (same pattern, column named for both) is reported as
    both, as Presidio does: a policy forbidding either must see it."""
    from airflow_aisec.core.gates.pii._matches import Match, resolve_overlaps

    us, za = Match("US_PASSPORT", 0, 9, 0.45), Match("ZA_PASSPORT", 0, 9, 0.75)
    assert set(resolve_overlaps([us, za])) == {us, za}
    # a reading inside a longer, better one of another entity is still a by-product
    assert resolve_overlaps([Match("EMAIL_ADDRESS", 0, 20, 1.0), Match("URL", 6, 20, 0.5)]) == \
        [Match("EMAIL_ADDRESS", 0, 20, 1.0)]
