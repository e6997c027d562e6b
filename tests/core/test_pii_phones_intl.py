"""International phone numbers (issue 18 item 2): Faker's formats in seven locales, measured recall and
precision against decoys, extensions and prefixes inside the span, regions from the policy."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pydantic import ValidationError

from airflow_aisec.core.gates.pii._detect import build_plan, detect_column
from airflow_aisec.core.gates.pii._patterns import Detector
from airflow_aisec.core.gates.pii._phones import PhoneFinder
from airflow_aisec.core.gates.pii._presidio import quiet_presidio
from airflow_aisec.core.policy.sections.pii import PiiPolicy
from tests.helpers import pii_corpus

N_PER_LOCALE = 1500
# The word that introduces a phone number in running text, per locale.
CONTEXT = {"de_DE": "Rückruf unter Telefon", "fr_FR": "Téléphone :", "en_GB": "call back on phone",
           "es_ES": "Teléfono", "it_IT": "Telefono", "nl_NL": "Bel terug op telefoon", "en_US": "call back on phone"}


@pytest.fixture(scope="module")
def detector():
    with quiet_presidio():
        return Detector()


def _hits(detector, values, column):
    plan = build_plan(detector, [column])[0]
    return {int(i) for i in detect_column(pa.array(values, pa.string()), plan, detector).hits().get("PHONE_NUMBER", ())}


def _spans(detector, values, column):
    plan = build_plan(detector, [column])[0]
    out = {}
    for i, text, cell in detect_column(pa.array(values, pa.string()), plan, detector).iter_cells():
        out[i] = [text[m.start:m.end] for m in cell.matches if m.entity == "PHONE_NUMBER"]
    return out


@pytest.mark.parametrize("locale", pii_corpus.LOCALES)
def test_recall_and_precision_on_faker_phones_per_locale(detector, locale):
    """>= 99% of Faker's numbers found as whole spans (column and free text); >= 99% precision vs decoys."""
    numbers = pii_corpus.phones(locale, N_PER_LOCALE, seed=7)
    decoys = pii_corpus.decoys(N_PER_LOCALE, seed=hash(locale) % 1000)
    values = numbers + decoys
    # a column named like a phone column: every number; any other column: every written-out number
    # (a bare digit run is an id as often as a phone number: it needs the column name or a context word)
    for column in ("phone", "contact"):
        hits = _hits(detector, values, column)
        expected = [i for i, v in enumerate(numbers) if column == "phone" or not v.isdigit()]
        tp = len(hits & set(expected))
        fp = len([i for i in hits if i >= len(numbers)])
        recall, precision = tp / len(expected), tp / max(1, tp + fp)
        assert recall >= 0.99 and precision >= 0.99, (locale, column, recall, precision)
    # free text with the locale's context word: the whole number (extension included) is the span
    notes = [f"Kunde ok, {CONTEXT[locale]} {v} bis Freitag." for v in values]
    spans = _spans(detector, notes, "notes")
    tp = sum(1 for i, v in enumerate(numbers) if v in spans.get(i, []))
    fp = sum(1 for i in range(len(numbers), len(values)) if spans.get(i))
    assert tp / len(numbers) >= 0.99, (locale, tp)
    assert tp / max(1, tp + fp) >= 0.99, (locale, fp)


def test_decoys_are_not_phone_numbers_anywhere(detector):
    decoys = pii_corpus.decoys(4000, seed=3)
    assert _hits(detector, decoys, "value") == set()
    assert _hits(detector, [f"Status {d} ok" for d in decoys], "notes") == set()
    assert _hits(detector, list(pii_corpus.HARD_NEGATIVES), "notes") == set()


@pytest.mark.parametrize(("text", "span"), [
    ("call 962.952.7601x89555 today", "962.952.7601x89555"),
    ("call 916-776-1222x02972 today", "916-776-1222x02972"),
    ("tel 001-513-290-9960 now", "001-513-290-9960"),
    ("+1-537-640-6812x41586", "+1-537-640-6812x41586"),
    ("reach me at (212) 555-0147 ext. 12", "(212) 555-0147 ext. 12"),
    ("Telefon +49(0)1152449390 bitte", "+49(0)1152449390"),
    ("Tel (056) 2301238", "(056) 2301238"),
    ("Handy 08778 932879", "08778 932879"),
    ("tél. +33 (0)1 75 38 08 58.", "+33 (0)1 75 38 08 58"),
    ("bel 0031-6-12345678", "0031-6-12345678"),
    ("chiamare +39 06 6982 1234", "+39 06 6982 1234"),
    ("llamar al 912 34 56 78", "912 34 56 78"),
])
def test_whole_number_with_prefix_and_extension_is_the_span(detector, text, span):
    assert _spans(detector, [text], "notes").get(0) == [span]


def test_bare_digits_need_column_name_or_context_word(detector):
    assert _hits(detector, ["2125550147"], "id") == set()
    assert _hits(detector, ["2125550147"], "mobile_phone") == {0}
    assert _hits(detector, ["2125550147"], "Telefonnummer") == {0}
    assert _hits(detector, ["ruf an: Telefon 030123456789"], "notes") == {0}
    assert _hits(detector, ["Bestellnummer 030123456789"], "notes") == set()


def test_regions_come_from_the_policy():
    assert PiiPolicy(phone_regions=["uk", "de"]).phone_regions == ["GB", "DE"]
    with pytest.raises(ValidationError):
        PiiPolicy(phone_regions=["Germany"])
    text = "Tel. (0113) 496 0123"
    assert [text[a:b] for a, b, _ in PhoneFinder(["GB"]).find(text)] == ["(0113) 496 0123"]
    # the US dials no trunk 0: a UK national number is not a US one
    assert list(PhoneFinder(["US"]).find(text)) == []
    # an international number counts whatever the regions
    assert len(list(PhoneFinder(["US"]).find("Tel. +44 113 496 0123"))) == 1
