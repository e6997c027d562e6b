"""LOCATION offline: postal addresses from per-locale street patterns, house numbers and postcode + city.

A street counts only with its house number (``Hermannstr. 3909``, ``44, rue de Blin``,
``Calle Mayor 5``, ``Via Roma, 12``, ``Lucstraat 90``, ``449 Catherine Prairie``) and a postcode
only with the city after it (``92915 Illertissen``, ``6668 IC Valkenswaard``, ``TR85 8LB``,
``AS 95267``), so a city named on its own, a street-like product name (``Park Avenue`` shampoo) or
a bare number is not an address. Adjacent parts (street, postcode, city) become one span.
English street suffixes come from Faker's address providers (loaded on first use).
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterator


def _trie(words: list[str]) -> str:
    """An alternation of literal ``words`` as a prefix tree (valid in re and RE2). Same matches as the words
    listed longest first, but the engine tests a position against a few first letters instead of every word:
    several times faster for the long street-kind and suffix lists."""
    tree: dict = {}
    for word in words:
        node = tree
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        ends = "" in node
        branches = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        if len(branches) == 1 and not ends:
            return branches[0]
        return "(?:" + "|".join(branches) + ("|" if ends else "") + ")"  # "" last: the longest word wins

    return emit(tree)


def _unescape(fragment: str) -> str:
    return re.sub(r"\\(.)", r"\1", fragment)


#: Score of an address span.
ADDRESS_SCORE = 0.9

_UP = r"[A-ZÄÖÜÀ-ÖØ-Þ]"
_WORD = r"[^\W\d_][\w'’\-.]*"
_NUMBER = r"\d{1,5}(?:\s?[-–/]\s?\d{1,5}|\s?[a-zA-Z](?![\w]))?"
_GLUED_SUFFIX = _trie(["straße", "strasse", "str.", "weg", "platz", "allee", "gasse", "ring", "damm", "ufer",
                       "chaussee", "steig", "pfad", "straat", "laan", "plein", "gracht", "kade", "singel", "dijk",
                       "steeg", "baan", "dreef", "hof", "pad", "markt", "boulevard"])
_PREFIX = (r"rue|avenue|av\.|boulevard|bd|chemin|impasse|allée|quai|route|place|cours|"
           r"calle|c/|avenida|avda\.|plaza|paseo|camino|ronda|glorieta|carretera|rambla|travesía|urbanización|"
           r"alameda|callejón|cañada|pasaje|pasadizo|cuesta|c\.|vial|acceso|via|viale|piazza|piazzale|corso|vicolo|largo|contrada|strada|borgo|"
           r"rotonda|stretto|canale|incrocio")
_LINKS = r"(?:(?:de|du|des|de la|del|della|dei|delle|di|d'|l'|la|le|los|las)\s?)"

_GLUED = re.compile(
    rf"(?<![\w-])(?:{_UP}[\w\-.]*\s){{0,2}}{_UP}[\w\-.]*?(?i:{_GLUED_SUFFIX})\s*,?\s*{_NUMBER}(?!\d)")
_SEPARATE = re.compile(
    rf"(?<![\w-])(?:{_UP}[\w\-]*[\s-]){{1,3}}(?:Straße|Strasse|Str\.|Weg|Platz|Allee|Gasse|Ring|Damm)\s*{_NUMBER}(?!\d)")
_POSTCODE_CITY = re.compile(
    rf"(?<![\w\-./])(?:\d{{5}}|\d{{4}}\s?[A-Z]{{2}}|[A-Z]{{1,2}}-\d{{4,5}})(?!\w),?\s{_UP}[\w\-']+"
    rf"(?:[ \-](?:{_UP}[\w\-']+|\([A-Z]{{2}}\)|an der|am|im|sur|en|de|del|di)){{0,3}}")
_UK_POSTCODE = re.compile(r"(?<![\w])[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}(?![\w])")
_US_STATE_ZIP = re.compile(r"(?<=,\s)[A-Z]{2}\s\d{5}(?:-\d{4})?(?!\d)")
_FLAT_WORDS = _trie(["flat", "studio", "apt.", "apt", "apartment", "suite", "unit", "puerta", "piso", "appartamento",
                     "piano", "scala", "interno", "étage"])
_FLAT = re.compile(rf"(?i:{_FLAT_WORDS})\s\w{{1,5}}")
_CITY_POSTCODE = re.compile(rf"(?<![\w])(?:{_UP}[\w\-']+\s){{0,2}}{_UP}[\w\-']+,\s\d{{5}}(?!\d)")
# What may stand between two parts of one address: a town or district name and commas.
_BETWEEN = re.compile(rf"[\s,;]*(?:(?:{_UP}[\w'’\-]*|de|del|di|la|le|sur|am|an|der|upon)[\s,;]+){{0,5}}")
# US military mail: "USS Pittman, FPO AE 85563", "PSC 7140, Box 6947, APO AA 19202".
_MILITARY = re.compile(r"(?:(?:USNS|USNV|USS|USCGC)\s[A-Z][a-z]+|PSC\s\d{4},\sBox\s\d{4}|Unit\s\d{4}\sBox\s\d{4}),"
                       r"\s(?:APO|FPO|DPO)\s(?:AA|AE|AP)\s\d{5}")
_POSTAL = (_POSTCODE_CITY, _UK_POSTCODE, _US_STATE_ZIP, _CITY_POSTCODE, _MILITARY)
MAX_GAP = 40
_DIGIT = re.compile(r"\d")


@functools.lru_cache(maxsize=1)
def _street_kinds() -> str:
    """Alternation of street kinds: rue / calle / via ... plus Faker's fr, es, it lists (valid in re and RE2)."""
    kinds = set(_PREFIX.split("|"))
    for locale, attr in (("fr_FR", "street_prefixes"), ("es_ES", "street_prefixes"), ("it_IT", "street_suffixes")):
        try:
            provider = importlib.import_module(f"faker.providers.address.{locale}").Provider
            kinds.update(re.escape(k.lower()) for k in getattr(provider, attr, ()) if k)
        except ImportError:
            continue
    return _trie([_unescape(k) for k in kinds])


@functools.lru_cache(maxsize=1)
def _prefixed_streets() -> re.Pattern[str]:
    """Streets named after their kind (:func:`_street_kinds`), then the name."""
    alt = _street_kinds()
    return re.compile(
        rf"(?:(?<![\w,])\d{{1,5}}(?:\s?(?:bis|ter))?,?\s)?(?<![\w])(?i:{alt})\s{_LINKS}*{_UP}[\w'’\-]*"
        rf"(?:\s{_LINKS}*{_UP}[\w'’\-]*){{0,3}}(?:,?\s(?:n\.?\s?|nº\s?)?{_NUMBER}(?!\d))?")


@functools.lru_cache(maxsize=1)
def street_suffixes() -> frozenset[str]:
    """English street suffixes (Road, Lane, ... and Faker's en_US / en_GB lists)."""
    suffixes: set[str] = {"Road", "Street", "Lane", "Avenue", "Drive", "Close", "Way", "Court", "Place", "Crescent",
                          "Gardens", "Terrace", "Rd", "St", "Ln", "Ave", "Dr", "Blvd"}
    for locale in ("en_US", "en_GB"):
        try:
            provider = importlib.import_module(f"faker.providers.address.{locale}").Provider
            suffixes.update(s for s in getattr(provider, "street_suffixes", ()) if s[:1].isupper())
        except ImportError:
            continue
    return frozenset(suffixes)


def _english_alt() -> str:
    return _trie(list(street_suffixes()))


@functools.lru_cache(maxsize=1)
def _english_streets() -> re.Pattern[str]:
    alt = _english_alt()
    # "449 Catherine Prairie", or a numbered flat before the street: "Flat 6, Darren Roads".
    return re.compile(rf"(?:(?<![\w,.])\d{{1,5}}[A-Za-z]?\s|(?i:flat|studio|apartment|unit|suite)\s\w{{1,5}},\s)"
                      rf"(?:{_UP}[\w'’\-]*\s){{1,3}}(?:{alt})\.?(?![\w])")


#: Python's ``\s`` and ``\d`` in RE2 (whose own classes are ASCII): the pre-filters must not miss a cell.
_RE2_SPACE = r"[\t\n\x0b\f\r\x1c-\x1f\x85\p{Z}]"
_RE2_DIGIT = r"\p{Nd}"


@functools.lru_cache(maxsize=1)
def re2_prefilters() -> tuple[str, ...]:
    """RE2 expressions, one per group of street / postcode patterns, each matching every cell its group can
    match (a superset): run over a whole column, they spare Python the patterns a cell cannot match."""
    sp, d = _RE2_SPACE, _RE2_DIGIT
    return (
        rf"(?i:{_GLUED_SUFFIX}){sp}*,?{sp}*{d}",  # _GLUED and _SEPARATE: a suffix, then the house number
        rf"(?i:{_street_kinds()}){sp}",  # prefixed streets: the kind, then the name
        rf"{sp}(?:{_english_alt()})",  # English streets: a word, then the suffix
        rf"{d}{{4}}",  # _POSTCODE_CITY
        rf"{d}[A-Z]{{2}}",  # _UK_POSTCODE: the inward code
        rf",{sp}[A-Z]{{2}}{sp}{d}{{5}}",  # _US_STATE_ZIP
        rf",{sp}{d}{{5}}",  # _CITY_POSTCODE
        rf"(?:APO|FPO|DPO){sp}",  # _MILITARY
        rf"(?i:{_FLAT_WORDS}){sp}",  # _FLAT
    )


_ALL_GROUPS = (True,) * 9


class AddressFinder:
    """LOCATION spans (postal addresses) in free text."""

    def find(self, text: str, groups: tuple[bool, ...] = _ALL_GROUPS) -> Iterator[tuple[int, int, float]]:
        """Address spans; ``groups``: which :func:`re2_prefilters` matched ``text`` (all when unknown)."""
        if not _DIGIT.search(text):
            return  # every address part needs a house number or a postcode
        streets, prefixed_ok, english, *postal, flat = groups
        parts: list[tuple[int, int]] = []
        if streets:
            parts.extend(m.span() for m in _GLUED.finditer(text))
            parts.extend(m.span() for m in _SEPARATE.finditer(text))
        if prefixed_ok:
            # "Avenue Montaigne" without a number is a place name, not an address
            parts.extend(m.span() for m in _prefixed_streets().finditer(text) if _DIGIT.search(m.group()))
        if english:
            parts.extend(m.span() for m in _english_streets().finditer(text))
        for rx, ok in zip(_POSTAL, postal):
            if ok:
                parts.extend(m.span() for m in rx.finditer(text))
        if not parts:
            return
        if flat:
            for m in _FLAT.finditer(text):
                if any(0 <= a - m.end() <= 3 or 0 <= m.start() - b <= 3 for a, b in parts):
                    parts.append(m.span())
        parts.sort()
        start, end = parts[0]
        for a, b in parts[1:]:
            if a <= end + MAX_GAP and _BETWEEN.fullmatch(text[end:a] + " "):
                end = max(end, b)
            else:
                yield start, end, ADDRESS_SCORE
                start, end = a, b
        yield start, end, ADDRESS_SCORE
