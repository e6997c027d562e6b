"""The free-text shortcuts give the answers of the slow paths they skip (issue 18 throughput).

* the RE2 pre-filters of the address patterns match every cell their patterns can match;
* the prefix-tree alternations match what the plain word lists match;
* phone numbers accepted without ``phonenumbers.parse`` are the ones parse would accept.
"""

from __future__ import annotations

import random
import re

import pyarrow as pa
import pytest

from airflow_aisec.core.gates.pii import _addresses
from airflow_aisec.core.gates.pii._addresses import AddressFinder, re2_prefilters
from airflow_aisec.core.gates.pii._phones import PhoneFinder
from airflow_aisec.core.gates.pii._text import TextScanner
from tests.helpers import pii_corpus

pytest.importorskip("phonenumbers")
pytest.importorskip("faker")


def _texts() -> list[str]:
    texts = [n.text for n in pii_corpus.notes(60, seed=5)] + list(pii_corpus.HARD_NEGATIVES)
    texts += [
        "Lieferung an Müllerstraße\u00a012, 80331\u2009München",  # non-ASCII letters, Unicode spaces
        "Adresse: Rue de la Paix ٤٤, Paris",  # Arabic-Indic digits are \d for Python
        "ship to Flat 6, Darren Roads, London TR85 8LB",
        "USS Pittman, FPO AE 85563",
        "VIA ROMA 12, 00184 ROMA",
        "calle mayor\x1c5, Madrid",
    ]
    return texts + [t.upper() for t in texts[:80]] + [t.lower() for t in texts[:80]]


def test_address_prefilters_never_hide_an_address() -> None:
    texts = _texts()
    finder = AddressFinder()
    groups = TextScanner(["LOCATION"], ["en_US"])._address_groups(pa.array(texts))
    assert len(groups[0]) == len(re2_prefilters())
    skipped = 0
    for text, flags in zip(texts, groups):
        assert list(finder.find(text, flags)) == list(finder.find(text)), text
        skipped += flags.count(False)
    assert skipped > len(texts)  # the pre-filters do spare patterns


def test_prefix_tree_matches_the_word_list() -> None:
    words = ["via", "viale", "vial", "via del", "c/", "av.", "avenida", "allée", "rue", "ruelle"]
    tree = re.compile(rf"(?i:{_addresses._trie(words)})")
    plain = re.compile("(?i:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")")
    rng = random.Random(3)
    pieces = [*words, " ", "x", "V", "IA", "le", "."]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        assert [m.span() for m in tree.finditer(text)] == [m.span() for m in plain.finditer(text)], text


def _parse_international(finder: PhoneFinder, main: str) -> bool:
    pn = finder._pn
    raw = main.replace("(0)", " ")
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    try:
        number = pn.parse(raw, None)
    except pn.NumberParseException:
        return False
    national = len(str(number.national_number))
    if pn.region_code_for_country_code(number.country_code) != "ZZ" and 4 <= national <= 14 \
            and len(str(number.country_code)) + national <= 15:
        return True
    return pn.is_valid_number(number)


def _parse_national(finder: PhoneFinder, main: str, possible: bool) -> bool:
    pn = finder._pn
    for region in finder.regions:
        try:
            number = pn.parse(main, region)
        except pn.NumberParseException:
            continue
        if pn.is_valid_number(number) or (possible and pn.is_possible_number(number)):
            return True
    return False


def _random_number(rng: random.Random, lead: list[str]) -> str:
    body = rng.choice(lead) + "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 13)))
    return "".join(c + (rng.choice(" .-/") if rng.random() < 0.2 else "") for c in body).strip(" .-/")


def test_international_shortcut_agrees_with_phonenumbers() -> None:
    finder = PhoneFinder()
    rng = random.Random(7)
    codes = [str(c) for c in finder._pn.COUNTRY_CODE_TO_REGION_CODE] + ["0", "999", "28"]
    cases = [rng.choice(["+", "+ ", "00", "+(0)"]) + rng.choice(codes) + rng.choice(["", " ", " (0) ", "(0)"])
             + _random_number(rng, ["", "0", "1", "15", "9"]) for _ in range(4000)]
    cases += [p for loc in pii_corpus.LOCALES for p in pii_corpus.phones(loc, 40, seed=2)
              if p.startswith(("+", "00")) and "x" not in p and "#" not in p]
    for main in cases:
        assert finder._international(main) == _parse_international(finder, main), main
    shortcut = [m for m in cases if m.startswith("+") and finder._plausible_e164(re.sub(r"\D", "", m))]
    assert len(shortcut) > len(cases) // 8  # the shortcut is taken, not only the fallback


@pytest.mark.parametrize("regions", [("US", "GB", "DE", "FR", "ES", "IT", "NL"), ("BR", "AR", "MX", "RU", "JP", "IN")])
def test_national_shortcut_agrees_with_phonenumbers(regions: tuple[str, ...]) -> None:
    finder = PhoneFinder(regions)
    rng = random.Random(11)
    lead = ["", "1", "7", "8", "3", "6", "9", "49", "44", "33", "39", "55", "54", "52", "81", "91"]
    shortcut = 0
    for _ in range(1500):
        main = _random_number(rng, lead)
        shortcut += finder._as_national(re.sub(r"\D", "", main), finder.regions[0]) is not None
        for possible in (False, True):
            assert finder._national(main, possible=possible) == _parse_national(finder, main, possible), main
    assert shortcut > 300
