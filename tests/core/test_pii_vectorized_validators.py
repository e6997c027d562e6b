"""Presidio's digit validators vectorized with numpy (PESEL, NHS, Luhn) equal Presidio's own
``validate_result`` on generated valid and one-digit-corrupted values, and the digit-run pruning they
drive leaves every detection and the checksum tally exactly as the cell-by-cell path gives them."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from airflow_aisec.core.gates.pii._detect import ChecksumTally, build_plan, detect_column
from airflow_aisec.core.gates.pii._entity_specs import build_recognizer
from airflow_aisec.core.gates.pii._patterns import Detector
from airflow_aisec.core.gates.pii._presidio import quiet_presidio
from airflow_aisec.core.gates.pii._validators import (
    digit_matrix,
    digit_run_may_validate,
    luhn_check,
    nhs_check,
    pesel_check,
    pesel_shape,
)


def _corrupt(value: str, rng: random.Random) -> str:
    i = rng.randrange(len(value))
    return value[:i] + str((int(value[i]) + rng.randint(1, 9)) % 10) + value[i + 1:]


def _values(rng: random.Random, length: int, valid, n: int = 400) -> list[str]:
    """Half valid by ``valid`` (searched among random digit strings), half one digit off, plus random ones."""
    good: list[str] = []
    while len(good) < n // 2:
        v = "".join(rng.choice("0123456789") for _ in range(length))
        if valid(v):
            good.append(v)
    return good + [_corrupt(v, rng) for v in good] + [
        "".join(rng.choice("0123456789") for _ in range(length)) for _ in range(n // 2)]


def _recognizer(entity: str):
    if entity == "CREDIT_CARD":
        from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

        return CreditCardRecognizer()
    return build_recognizer(entity)


def _presidio(entity: str):
    recognizer = _recognizer(entity)
    return lambda v: bool(recognizer.validate_result(v))


@pytest.mark.parametrize(("entity", "length", "vector"), [
    ("PL_PESEL", 11, pesel_check), ("UK_NHS", 10, nhs_check),
    ("CREDIT_CARD", 16, luhn_check), ("CREDIT_CARD", 13, luhn_check), ("CREDIT_CARD", 15, luhn_check)])
def test_vectorized_check_equals_presidio(entity, length, vector):
    from faker import Faker

    scalar = _presidio(entity)
    rng = random.Random(f"{entity}{length}")
    values = _values(rng, length, scalar)
    if entity == "PL_PESEL":
        fake = Faker("pl_PL")
        fake.seed_instance(18)
        values += [fake.pesel() for _ in range(200)]
    if entity == "CREDIT_CARD" and length == 16:
        values += [Faker("en_US").credit_card_number(card_type="visa16") for _ in range(100)]
    mat = digit_matrix(pa.array(values))
    got = vector(mat)
    want = np.array([scalar(v) for v in values])
    assert got.tolist() == want.tolist()
    assert 0.3 < want.mean() < 0.8  # both outcomes well represented


def test_pesel_shape_equals_presidio_regex():
    import regex

    rx = regex.compile(build_recognizer("PL_PESEL").patterns[0].regex)
    rng = random.Random(11)
    values = ["".join(rng.choice("0123456789") for _ in range(11)) for _ in range(3000)]
    got = pesel_shape(digit_matrix(pa.array(values)))
    assert got.tolist() == [rx.fullmatch(v) is not None for v in values]


@pytest.mark.parametrize("entity", ["PL_PESEL", "UK_NHS", "CREDIT_CARD"])
def test_may_validate_is_never_false_for_a_validating_cell(entity):
    """``False`` is exact: Presidio's recognizer finds no valid match in any cell the numpy check rules out."""
    recognizer = _recognizer(entity)
    rng = random.Random(entity)
    for length in (10, 11, 13, 16, 22):
        values = ["".join(rng.choice("0123456789") for _ in range(length)) for _ in range(600)]
        may = digit_run_may_validate(entity, digit_matrix(pa.array(values)))
        with quiet_presidio():
            found = [any(r.score > 0 for r in recognizer.analyze(v, [entity])) for v in values]
        assert not any(f and not m for f, m in zip(found, may.tolist())), (entity, length)
        assert sum(found) <= may.sum()


@pytest.mark.parametrize("column", ["reference", "bank_account", "nhs_number", "pesel"])
def test_pruned_digit_runs_equal_one_by_one(column):
    """Digit-only cells (random references, Luhn-valid cards, PESELs, NHS numbers) give the same hits and the
    same checksum tally through the pruned bulk path as cell by cell."""
    from faker import Faker

    rng = random.Random(column)
    fake = Faker("pl_PL")
    fake.seed_instance(3)
    values = ["".join(rng.choice("0123456789") for _ in range(rng.choice((10, 11, 13, 16, 17, 22))))
              for _ in range(1500)]
    values += [fake.pesel() for _ in range(60)] + [Faker("en_US").credit_card_number() for _ in range(60)]
    values += ["INV-2024-001234", "", "n/a", "4111 1111 1111 1111"]
    entities = ["CREDIT_CARD", "PL_PESEL", "UK_NHS", "US_BANK_NUMBER", "KR_RRN", "PHONE_NUMBER"]
    with quiet_presidio():
        detector = Detector(entities)
    plan = build_plan(detector, [column])[0]
    tally = ChecksumTally()
    with quiet_presidio():
        bulk = detect_column(pa.array(values), plan, detector, tally=tally).hits()
        one_by_one: dict[str, set[int]] = {}
        slow = ChecksumTally()
        for i, text in enumerate(values):
            cell = detector.detect(text, entities, plan.hinted)
            for m in cell.matches:
                one_by_one.setdefault(m.entity, set()).add(i)
            for e in cell.checksum_candidates:
                slow.add(e, 1, int(e in cell.entities))
    assert {e: set(map(int, ix)) for e, ix in bulk.items()} == one_by_one
    for entity in ("PL_PESEL", "UK_NHS", "CREDIT_CARD"):
        assert tally.get(entity) == slow.get(entity), entity
    assert one_by_one.get("PL_PESEL") and one_by_one.get("CREDIT_CARD")
