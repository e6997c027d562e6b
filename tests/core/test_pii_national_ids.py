"""National identifiers on the PII gate's fast path: every Presidio 2.2 pattern entity against Presidio's
own recognizer, and the European identifiers Presidio lacks (FR NIR / SIREN / SIRET, NL BSN, BE national
number, AT social security number, CH AHV) against independently generated values (Faker's providers
and computed check digits)."""

from __future__ import annotations

import random
import re
import string

import pyarrow as pa
import pytest

from airflow_aisec.core.gates.pii._checksums import SCALAR, valid_many
from airflow_aisec.core.gates.pii._detect import build_plan, detect_column
from airflow_aisec.core.gates.pii._entity_specs import PRESIDIO_CLASSES, build_recognizer, re2_translate
from airflow_aisec.core.gates.pii._patterns import Detector
from airflow_aisec.core.gates.pii._presidio import quiet_presidio
from tests.helpers.regex_sampler import sample

EU = ("FR_NIR", "FR_SIREN", "FR_SIRET", "NL_BSN", "BE_NATIONAL_NUMBER", "AT_SOCIAL_SECURITY", "CH_AHV")
FAKER = {"FR_NIR": ("fr_FR", "ssn"), "NL_BSN": ("nl_NL", "ssn"), "BE_NATIONAL_NUMBER": ("nl_BE", "ssn"),
         "AT_SOCIAL_SECURITY": ("de_AT", "ssn"), "CH_AHV": ("de_CH", "ssn"), "FR_SIREN": ("fr_FR", "siren"),
         "FR_SIRET": ("fr_FR", "siret")}
# Where the gate deliberately differs from Presidio's recognizer on the generated values (documented):
# none once weak patterns get their context (a context word and the column name, as below). Without
# context the gate ignores Presidio's very weak patterns (score < 0.3) even when a checksum passes,
# because one random number in ten passes a mod-10 check; see test_weak_patterns_need_context.
KNOWN_DIFFERENCES: dict[str, str] = {}
PER_ENTITY = 24


def _gate_hits(entity: str, texts: list[str], column: str) -> set[int]:
    detector = Detector([entity])
    plan = build_plan(detector, [column])[0]
    with quiet_presidio():
        hits = detect_column(pa.array(texts, pa.string()), plan, detector).hits().get(entity, [])
    return {int(i) for i in hits}


def _overrides(recognizer, method: str) -> bool:
    from presidio_analyzer import PatternRecognizer

    return getattr(type(recognizer), method) is not getattr(PatternRecognizer, method)


def _complete(recognizer, value: str) -> str | None:
    """``value`` with its check character(s) computed: the last one or two characters that make
    the recognizer's validator accept it (None if no completion exists)."""
    def ok(v: str) -> bool:
        try:
            return recognizer.validate_result(v) is not False  # None: shape only, nothing to check
        except (ValueError, IndexError, KeyError):
            return False

    def same_kind(c: str) -> str:  # a digit stays a digit, a letter a letter (the pattern's shape), then any
        return (string.digits if c.isdigit() else string.ascii_uppercase) + string.ascii_uppercase + string.digits

    if ok(value):
        return value
    positions = [i for i, c in enumerate(value) if c.isalnum()]
    for last in positions[-1:]:
        for c in same_kind(value[last]):
            cand = value[:last] + c + value[last + 1:]
            if ok(cand):
                return cand
    if len(positions) >= 2:
        a, b = positions[-2], positions[-1]
        for c1 in same_kind(value[a]):
            for c2 in same_kind(value[b]):
                cand = value[:a] + c1 + value[a + 1:b] + c2 + value[b + 1:]
                if ok(cand):
                    return cand
    return None


def _corrupt(value: str, rng: random.Random) -> str:
    """The same value with one digit changed."""
    digits = [i for i, c in enumerate(value) if c.isdigit()]
    if not digits:
        return value
    i = rng.choice(digits)
    return value[:i] + str((int(value[i]) + rng.randint(1, 9)) % 10) + value[i + 1:]


def _generated(entity: str, rng: random.Random) -> tuple[list[str], list[str]]:
    """Values of the recognizer's patterns: valid ones (check digits computed) and one-digit corruptions."""
    recognizer = build_recognizer(entity)
    flags = recognizer.global_regex_flags or 0
    validated = _overrides(recognizer, "validate_result")
    valid: list[str] = []
    for pattern in recognizer.patterns:
        try:
            compiled = re.compile(pattern.regex, flags)
        except re.error:
            compiled = None
        for _ in range(400):
            if sum(1 for _v in valid) >= PER_ENTITY * (1 + recognizer.patterns.index(pattern)):
                break
            try:
                value = sample(pattern.regex, rng, flags).strip()
            except (re.error, IndexError, ValueError):
                break
            if not value or (compiled is not None and not compiled.search(value)):
                continue
            if validated:
                value = _complete(recognizer, value)
            if value:
                valid.append(value)
    if entity == "IN_GSTIN":  # state code, the holder's PAN, entity number, Z, check character
        up, dig = string.ascii_uppercase, string.digits
        templates = [f"{rng.randint(1, 37):02d}" + "".join(rng.choice(up) for _ in range(5))
                     + "".join(rng.choice(dig) for _ in range(4)) + rng.choice(up) + rng.choice("123456789") + "Z0"
                     for _ in range(PER_ENTITY)]
        valid = [v for v in (_complete(recognizer, t) for t in templates) if v]
    if entity == "CRYPTO":  # base58check: the 4-byte check is computed, not searched for
        valid = [_bitcoin_address(rng) for _ in range(PER_ENTITY)]
    invalid = [_corrupt(v, rng) for v in valid]
    return valid, invalid


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _bitcoin_address(rng: random.Random) -> str:
    """A P2PKH address: version 0, a random 20-byte hash, double-SHA256 check, base58."""
    import hashlib

    payload = b"\x00" + bytes(rng.randrange(256) for _ in range(20))
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\x00"))) + out


@pytest.fixture(scope="module")
def differential() -> dict[str, dict]:
    """Per Presidio entity: Presidio's recognizer and the gate on the same generated texts."""
    rng = random.Random(20260101)
    out = {}
    for entity in sorted(PRESIDIO_CLASSES):
        recognizer = build_recognizer(entity)
        valid, invalid = _generated(entity, rng)
        detector = Detector([entity])
        terms = detector._specs[entity].terms
        word = rng.choice(terms) if terms else ""
        texts, labels = [], []
        for kind, values in (("valid", valid), ("invalid", invalid)):
            for v in values:
                texts.append(f"{word}: {v}" if word else v)
                labels.append(kind)
        with quiet_presidio():
            presidio = []
            for text in texts:
                start = text.rfind(":") + 2 if word else 0
                presidio.append(any(r.score > 0 and r.start < len(text) and r.end > start
                                    for r in recognizer.analyze(text, [entity])))
        # The column name gives the weak patterns context too (Presidio scores them without any).
        gate = _gate_hits(entity, texts, entity.lower())
        agree = {k: [presidio[i] == (i in gate) for i in range(len(texts)) if labels[i] == k]
                 for k in ("valid", "invalid")}
        out[entity] = {
            "n": len(texts), "presidio_pos": sum(presidio), "gate_pos": len(gate),
            "agree_valid": sum(agree["valid"]) / max(1, len(agree["valid"])),
            "agree_invalid": sum(agree["invalid"]) / max(1, len(agree["invalid"])),
            "disagreements": [(labels[i], presidio[i]) for i in range(len(texts)) if presidio[i] != (i in gate)],
        }
    return out


def test_differential_against_presidio_per_entity(differential, capsys):
    """Every Presidio pattern entity: the gate (RE2 pre-filter, Presidio's regexes and validators, context
    rules) agrees with Presidio's own recognizer on generated valid values and on one-digit corruptions."""
    with capsys.disabled():
        print("\nentity                          values  presidio+  gate+  agree(valid)  agree(invalid)")
        for entity, row in differential.items():
            print(f"{entity:32}{row['n']:6}{row['presidio_pos']:11}{row['gate_pos']:7}"
                  f"{row['agree_valid']:14.3f}{row['agree_invalid']:16.3f}")
    assert len(differential) == len(PRESIDIO_CLASSES)
    generated = [e for e, row in differential.items() if row["n"] >= 10]
    assert len(generated) >= len(PRESIDIO_CLASSES) - 3  # the sampler covers nearly every recognizer
    with_positives = [e for e, row in differential.items() if row["presidio_pos"] > 0]
    assert len(with_positives) >= len(PRESIDIO_CLASSES) - 3
    bad = {e: row["disagreements"][:3] for e, row in differential.items()
           if e not in KNOWN_DIFFERENCES and (row["agree_valid"] < 1.0 or row["agree_invalid"] < 1.0)}
    assert bad == {}


def test_checksummed_entities_reject_corrupted_values(differential):
    """Where Presidio validates a checksum, corrupting one digit is caught by the gate too (most of the time:
    a mod-10 check misses no single-digit change, weaker checks may)."""
    for entity in ("DE_TAX_ID", "PL_PESEL", "UK_NHS", "IT_FISCAL_CODE", "ES_NIF", "FI_PERSONAL_IDENTITY_CODE",
                   "TR_NATIONAL_ID", "KR_RRN", "TH_TNIN", "AU_TFN", "IN_AADHAAR"):
        row = differential[entity]
        assert row["presidio_pos"] > 0, entity
        assert row["gate_pos"] < row["n"], entity  # the corrupted half is (mostly) rejected


@pytest.mark.parametrize("rx", [
    r"(?<!\d)\d{10}(?!\d)", r"\b(?!bg|gb)[A-Z]{2}\d{6}\b", r"(?<=\bclaim\s)\d{6}", r"\b[0-9a-f]{2}([:-])[0-9a-f]{2}\1\b",
])
def test_re2_translation_is_never_stricter(rx):
    import pyarrow.compute as pc

    samples = ["x 0123456789 y", "AB123456", "GB123456", "claim 123456", "aa:bb:cc", "aa-bb-cc"]
    translated = re2_translate(rx)
    re2 = pc.match_substring_regex(pa.array(samples), "(?i)" + translated).to_pylist()
    for text, hit in zip(samples, re2):
        if re.search(rx, text, re.IGNORECASE):
            assert hit, (rx, text)


@pytest.mark.parametrize("entity", EU)
def test_eu_identifiers_from_faker_validate_scalar_and_vectorized(entity):
    from faker import Faker

    locale, method = FAKER[entity]
    fake = Faker(locale)
    fake.seed_instance(42)
    values = [getattr(fake, method)() for _ in range(500)]
    assert all(SCALAR[entity](v) for v in values)
    assert valid_many(entity, values).all()
    rng = random.Random(1)
    corrupted = [_corrupt(v, rng) for v in values]
    scalar = [SCALAR[entity](v) for v in corrupted]
    assert list(valid_many(entity, corrupted)) == scalar  # both forms agree value by value
    assert sum(scalar) <= 0.15 * len(values)  # a changed digit fails the check (mod 97 / 11 / Luhn / EAN)


def _nir_key(body13: str) -> str:
    n = int(body13.replace("2A", "19").replace("2B", "18"))
    return f"{97 - n % 97:02d}"


def test_fr_nir_with_corsica_and_published_examples():
    assert SCALAR["FR_NIR"]("2 55 08 14 168 025 38")  # INSEE's published example
    for dept in ("2A", "2B"):
        body = f"18501{dept}123456"
        good = body + _nir_key(body)
        assert SCALAR["FR_NIR"](good) and valid_many("FR_NIR", [good])[0]
        bad = body + f"{(int(_nir_key(body)) % 97) + 1:02d}"
        assert not SCALAR["FR_NIR"](bad) and not valid_many("FR_NIR", [bad])[0]
    # Corsica keys are not the mainland ones: 2A counts as 19, not 20.
    assert _nir_key("18501" + "2A" + "123456") != _nir_key("1850120123456")


def test_other_eu_published_examples():
    assert SCALAR["NL_BSN"]("111222333") and not SCALAR["NL_BSN"]("111222334")
    assert SCALAR["BE_NATIONAL_NUMBER"]("85.07.30-033.28") and not SCALAR["BE_NATIONAL_NUMBER"]("85.07.30-033.29")
    body = "000101123"  # born 1 January 2000: the key is computed over 2 followed by the nine digits
    key = 97 - int("2" + body) % 97
    assert SCALAR["BE_NATIONAL_NUMBER"](f"{body}{key:02d}")
    assert SCALAR["AT_SOCIAL_SECURITY"]("1237 010180") and not SCALAR["AT_SOCIAL_SECURITY"]("1238 010180")
    assert SCALAR["CH_AHV"]("756.9217.0769.85") and not SCALAR["CH_AHV"]("756.9217.0769.84")
    assert not SCALAR["CH_AHV"]("757.9217.0769.85")  # not the Swiss prefix
    assert SCALAR["FR_SIREN"]("732 829 320") and SCALAR["FR_SIRET"]("732 829 320 00074")
    assert not SCALAR["FR_SIRET"]("732 829 320 00075")


@pytest.mark.parametrize("entity", EU)
def test_eu_identifiers_found_in_text_and_columns(entity):
    """Faker's values are found in free text with a context word, and as whole cells of a column whose
    name says what they are; corrupted values are not."""
    from faker import Faker

    from airflow_aisec.core.gates.pii import _national

    locale, method = FAKER[entity]
    fake = Faker(locale)
    fake.seed_instance(7)
    values = [getattr(fake, method)() for _ in range(60)]
    word = _national.CONTEXT[entity][0]
    texts = [f"client {i}: {word} {v} enregistré" for i, v in enumerate(values)]
    assert _gate_hits(entity, texts, "notes") == set(range(len(texts)))
    assert _gate_hits(entity, values, entity.lower()) == set(range(len(values)))
    rng = random.Random(3)
    corrupted = [c for c in (_corrupt(v, rng) for v in values) if not SCALAR[entity](c)]
    assert _gate_hits(entity, corrupted, entity.lower()) == set()


def test_weak_patterns_need_context():
    """A bare 9-digit number passing the 11-check is a BSN only with context (word or column name);
    formatted, strongly structured ids (NIR, AHV) need none."""
    bsn = "111222333"
    assert _gate_hits("NL_BSN", [f"order {bsn} shipped"], "notes") == set()
    assert _gate_hits("NL_BSN", [f"BSN {bsn}"], "notes") == {0}
    assert _gate_hits("NL_BSN", [bsn], "burgerservicenummer") == {0}
    assert _gate_hits("CH_AHV", ["versichert 756.9217.0769.85"], "notes") == {0}
    assert _gate_hits("FR_NIR", ["dossier 2 55 08 14 168 025 38"], "notes") == {0}


def test_chance_correction_covers_checksum_entities():
    """A column of random 9-digit references named ``bsn`` is not a BSN column: about 1 in 11 pass by chance."""
    from airflow_aisec.core.gates.pii._detect import ChecksumTally
    from airflow_aisec.core.gates.pii._validators import coincidental

    rng = random.Random(9)
    refs = [str(rng.randint(100_000_000, 999_999_999)) for _ in range(2000)]
    detector = Detector(["NL_BSN"])
    plan = build_plan(detector, ["bsn"])[0]
    tally = ChecksumTally()
    with quiet_presidio():
        hits = detect_column(pa.array(refs), plan, detector, tally=tally).hits().get("NL_BSN", [])
    candidates, valid = tally["NL_BSN"]
    assert candidates == len(refs) and valid == len(hits)
    assert 0 < valid < 0.15 * len(refs)
    assert coincidental("NL_BSN", candidates, valid)


@pytest.mark.parametrize("column", ["notes", "ahv_nr", "bsn", "svnr", "siret", "rijksregisternummer", "nir"])
def test_bulk_decisions_equal_one_by_one(column):
    """Whole-cell European ids decided in bulk (vectorized check digits) get exactly what the cell-by-cell
    path (regexes, scalar checks, context rules) gives them, in plain and hinted columns, and the
    checksum tally counts the same candidates."""
    from faker import Faker

    from airflow_aisec.core.gates.pii._detect import ChecksumTally

    rng = random.Random(column)
    values: list[str] = []
    for locale, method in FAKER.values():
        fake = Faker(locale)
        fake.seed_instance(len(values))
        for _ in range(25):
            v = getattr(fake, method)()
            values += [v, _corrupt(v, rng), f"note {v}"]
    values += ["", "n/a", "12345", "756.0000.0000.00"]
    detector = Detector(list(EU))
    plan = build_plan(detector, [column])[0]
    tally = ChecksumTally()
    with quiet_presidio():
        bulk = detect_column(pa.array(values), plan, detector, tally=tally).hits()
        one_by_one: dict[str, set[int]] = {}
        for i, text in enumerate(values):
            for m in detector.detect(text, list(EU), plan.hinted).matches:
                one_by_one.setdefault(m.entity, set()).add(i)
    assert {e: set(map(int, ix)) for e, ix in bulk.items()} == one_by_one
    assert one_by_one  # something was found in every column
