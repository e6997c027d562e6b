"""A number that is both a valid phone number and a checksum-valid id (UK NHS, PL PESEL) is reported once
per span: as the id with id context (column name or a context word), otherwise as the phone number;
neither loses recall on real Faker values."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from airflow_aisec.core.gates.pii._detect import build_plan, detect_column
from airflow_aisec.core.gates.pii._entity_specs import build_recognizer
from airflow_aisec.core.gates.pii._patterns import Detector
from airflow_aisec.core.gates.pii._presidio import quiet_presidio

ENTITIES = ["PHONE_NUMBER", "UK_NHS", "PL_PESEL", "US_SSN", "CREDIT_CARD", "US_BANK_NUMBER"]
N = 60


@pytest.fixture(scope="module")
def detector() -> Detector:
    with quiet_presidio():
        return Detector(ENTITIES, phone_regions=["US", "GB", "PL"])


def _cells(detector: Detector, column: str, values: list[str]) -> dict[int, list[tuple[str, int, int]]]:
    plan = build_plan(detector, [column])[0]
    with quiet_presidio():
        return {i: sorted((m.entity, m.start, m.end) for m in cell.matches)
                for i, _t, cell in detect_column(pa.array(values, pa.string()), plan, detector).iter_cells()}


def _one_entity_per_span(found: dict[int, list[tuple[str, int, int]]]) -> None:
    for matches in found.values():
        for a in matches:
            for b in matches:
                if a is not b and a[0] != b[0]:
                    assert a[2] <= b[1] or b[2] <= a[1], matches  # no two entities on one stretch of digits


@pytest.fixture(scope="module")
def nhs_valid_phones() -> list[str]:
    """Faker's US phone numbers whose ten digits pass Presidio's NHS check (about one in eleven)."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(18)
    nhs = build_recognizer("UK_NHS")
    out: list[str] = []
    while len(out) < N:
        number = fake.phone_number()
        digits = "".join(c for c in number.split("x")[0] if c.isdigit())[-10:]
        if "x" not in number and len(digits) == 10 and nhs.validate_result(digits) and number[-1].isdigit():
            out.append(number)
    return out


def _nhs_numbers(rng: random.Random) -> list[str]:
    """Valid NHS numbers (mod 11 check digit), written 3 3 4 as the NHS prints them."""
    out: list[str] = []
    while len(out) < N:
        body = [rng.randint(0, 9) for _ in range(9)]
        check = (11 - sum(d * w for d, w in zip(body, range(10, 1, -1))) % 11) % 11
        if check == 10:
            continue
        digits = "".join(map(str, body)) + str(check)
        out.append(f"{digits[:3]} {digits[3:6]} {digits[6:]}")
    return out


def test_phone_numbers_that_pass_the_nhs_check_are_phones(detector, nhs_valid_phones):
    # A bare run of ten digits is a phone number only with phone context (the column name or a word):
    # without it, it is Presidio's NHS reading alone.
    formatted = [v for v in nhs_valid_phones if not v.isdigit()]
    assert len(formatted) >= N // 2
    for column, values in (("phone", nhs_valid_phones), ("contact", formatted),
                           ("notes", [f"call me on {v} tomorrow" for v in nhs_valid_phones])):
        found = _cells(detector, column, values)
        _one_entity_per_span(found)
        assert set(found) == set(range(len(values))), column  # no recall loss
        assert all({e for e, *_ in m} == {"PHONE_NUMBER"} for m in found.values()), column


def test_nhs_numbers_with_context_are_nhs_numbers(detector):
    values = _nhs_numbers(random.Random(18))
    assert all(build_recognizer("UK_NHS").validate_result(v) for v in values)
    for column, cells in (("nhs_number", values), ("notes", [f"NHS number {v} on file" for v in values])):
        found = _cells(detector, column, cells)
        _one_entity_per_span(found)
        assert set(found) == set(range(len(values))), column
        assert all({e for e, *_ in m} == {"UK_NHS"} for m in found.values()), (column, found)


def test_pesel_with_context_is_pesel_and_phone_stays_phone(detector):
    from faker import Faker

    fake = Faker("pl_PL")
    fake.seed_instance(18)
    pesels = [fake.pesel() for _ in range(N)]
    # Written internationally (Faker's national forms include landlines grouped 2-3-2-2 with no trunk digit).
    phones = [p if p.startswith("+48") else "+48 " + p for p in (fake.phone_number() for _ in range(N))]
    texts = [f"PESEL {p}, tel. {t}" for p, t in zip(pesels, phones)]
    found = _cells(detector, "notes", texts)
    _one_entity_per_span(found)
    for i, text in enumerate(texts):
        got = {(e, text[a:b].strip()) for e, a, b in found.get(i, [])}
        assert ("PL_PESEL", pesels[i]) in got, text
        assert any(e == "PHONE_NUMBER" and phones[i].replace(" ", "") in v.replace(" ", "") for e, v in got), text
    # A bare PESEL in its own column is the id, never a phone number.
    found = _cells(detector, "pesel", pesels)
    assert set(found) == set(range(N))
    assert all({e for e, *_ in m} == {"PL_PESEL"} for m in found.values())
