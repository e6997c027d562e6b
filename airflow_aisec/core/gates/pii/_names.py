"""PERSON offline: given-name and surname gazetteers from Faker's locale providers, plus context.

No model is downloaded: the gazetteers are the person providers of the ``faker`` package (a
dependency of the ``pii`` extra), loaded on first use and cached per locale set. A run of
capitalised words is a name when

* a given name is followed by a surname (``Erica Möchlichen``, ``Artemio Blazquez Paniagua``), or
* an honorific, title, salutation or role word stands right before a given name or surname
  (``Herr Koch``, ``Mme Clément``, ``Dear Jordan``, ``Kunde Erica ...``, ``Dr. Weber``).

It is not a name when a company suffix follows (``Schmidt GmbH``), when it is a well-known brand
that looks like a person (``Hugo Boss``, ``Ted Baker``), or when a product word follows it.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterator, Sequence

from airflow_aisec.core.gates.pii._addresses import street_suffixes

#: Locales whose Faker person providers feed the gazetteers when the policy lists none.
DEFAULT_LOCALES: tuple[str, ...] = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")
#: Scores: given name + surname; a single name after an honorific or role word.
FULL_NAME_SCORE = 0.85
CONTEXT_NAME_SCORE = 0.75

HONORIFICS = frozenset({
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "dame", "lord", "lady", "rev",
    "herr", "frau", "hr", "fr", "dipl", "ing", "mag",
    "m", "mme", "mlle", "monsieur", "madame", "mademoiselle", "me", "maître",
    "sr", "sra", "srta", "señor", "señora", "señorita", "don", "doña", "dña",
    "sig", "sigra", "signor", "signore", "signora", "signorina", "dott", "dottssa", "avv",
    "dhr", "mevr", "mevrouw", "meneer", "mw", "ir", "drs",
})
ROLE_WORDS = frozenset({
    "customer", "client", "patient", "employee", "contact", "applicant", "tenant", "dear", "hi", "hello",
    "kunde", "kundin", "patientin", "mitarbeiter", "mitarbeiterin", "liebe", "lieber", "geehrte", "geehrter",
    "hallo", "ansprechpartner", "ansprechpartnerin",
    "cliente", "paciente", "estimado", "estimada", "hola", "gentile", "egregio", "caro", "cara", "ciao",
    "cher", "chère", "bonjour", "patiente", "klant", "beste", "geachte",
})
_INTRO = HONORIFICS | ROLE_WORDS
_COMPANY = frozenset({"gmbh", "ag", "kg", "ohg", "se", "sa", "sas", "sarl", "spa", "srl", "sl", "bv", "nv", "ltd",
                      "llc", "inc", "plc", "co", "corp", "group", "gruppe", "groupe", "holding", "&"})
_PRODUCT_AFTER = frozenset({"shirt", "shirts", "jacket", "jackets", "store", "stores", "shop", "bag", "bags",
                            "parfum", "perfume", "whisky", "whiskey", "collection", "brand", "marke", "marque",
                            "shoes", "watch", "watches", "jeans", "sneakers", "hotel", "restaurant", "bar",
                            "app", "software", "award", "prize", "preis", "prix", "premio", "street", "road",
                            "avenue", "boulevard", "station", "airport", "university", "universität", "stadium"})
# Well-known brands shaped like a given name + surname.
_BRANDS = frozenset({"hugo boss", "ted baker", "ben sherman", "tommy hilfiger", "louis vuitton", "paul smith",
                     "marc jacobs", "calvin klein", "ralph lauren", "jack daniels", "jack daniel", "john deere",
                     "victoria secret", "tom ford", "michael kors", "kate spade", "vera wang", "hugo",
                     "anne klein", "oscar mayer", "ben jerry", "betty crocker", "martha stewart", "pierre cardin",
                     "karl lagerfeld", "giorgio armani", "emilio pucci", "max mara", "carolina herrera"})
# Words that start sentences or are capitalised for other reasons and are also in the gazetteers.
_STOP = frozenset({"the", "and", "der", "die", "das", "le", "la", "les", "el", "los", "las", "il", "lo", "de",
                   "van", "von", "het", "een", "a", "an", "in", "on", "at", "to", "for", "by", "with", "bis", "sur",
                   "via", "new", "street", "road", "lane", "avenue", "park", "city", "state", "north", "south",
                   "east", "west", "saint", "san", "santa", "st", "monday", "may", "june", "april", "august"})
_TOKEN = re.compile(r"[^\W\d_][^\W\d_'’\-]*(?:[-'’][^\W\d_]+)*\.?")
_PARTICLES = frozenset({"van", "von", "de", "der", "den", "del", "della", "di", "da", "du", "le", "la", "ter", "ten",
                        "zu", "dos", "das", "y", "i"})
# Where a name can start (see NameFinder.find), besides a given name or surname.
_HEAD_WORDS = _INTRO | _PARTICLES


@functools.lru_cache(maxsize=8)
def gazetteers(locales: tuple[str, ...] = DEFAULT_LOCALES) -> tuple[frozenset[str], frozenset[str]]:
    """Given names and surnames (lower-case) of Faker's person providers for ``locales``."""
    given: set[str] = set()
    family: set[str] = set()
    for locale in locales:
        try:
            provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        except ImportError:
            continue
        for attr in ("first_names", "first_names_male", "first_names_female"):
            given.update(n.lower() for n in getattr(provider, attr, ()) or () if len(n) > 1)
        for attr in ("last_names", "last_names_male", "last_names_female"):
            family.update(n.lower() for n in getattr(provider, attr, ()) or () if len(n) > 1)
    return frozenset(given - _STOP), frozenset(family - _STOP)


class NameFinder:
    """PERSON spans in free text (see the module docstring)."""

    def __init__(self, locales: Sequence[str] = DEFAULT_LOCALES) -> None:
        self._locales = tuple(locales)

    # Faker's lists are loaded when a candidate cell is first read: a table without text never needs them.
    @functools.cached_property
    def given(self) -> frozenset[str]:
        return gazetteers(self._locales)[0]

    @functools.cached_property
    def family(self) -> frozenset[str]:
        return gazetteers(self._locales)[1]

    @functools.cached_property
    def names(self) -> frozenset[str]:
        return self.given | self.family

    @functools.cached_property
    def _streets(self) -> frozenset[str]:
        return street_suffixes()

    def find(self, text: str) -> Iterator[tuple[int, int, float]]:
        tokens = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]
        # Where a name can start: a capitalised given name, surname, particle or honorific / role word
        # (_judge finds no name part anywhere else). Most words fail the first, cheapest test.
        names, head_words = self.names, _HEAD_WORDS
        starts = [k for k, (_a, _b, w) in enumerate(tokens) if w[0].isupper() and len(w) > 1 and not w.isupper()
                  and ((h := w.rstrip(".").lower()) in names or h in head_words or self._known(h))]
        i = 0
        for start in starts:
            if start < i:
                continue  # inside the name found last
            i = start
            # The run of capitalised words (and name particles) starting here.
            j = i
            while j + 1 < len(tokens) and j - i < 5 and _adjacent(text, tokens[j][1], tokens[j + 1][0]) \
                    and not _sentence_end(tokens[j][2]):
                nxt = tokens[j + 1][2]
                if _capitalised(nxt) or _initial(nxt):
                    j += 1
                    continue
                # particles ("van der", "de la") count when a capitalised word follows them
                k = j + 1
                while k < len(tokens) and tokens[k][2].lower() in _PARTICLES and k - j < 3:
                    k += 1
                if k > j + 1 and k < len(tokens) and _capitalised(tokens[k][2]):
                    j = k
                    continue
                break
            span = self._judge(text, tokens, i, j)
            if span is not None:
                yield span
                i = j + 1

    def _known(self, word: str, *, family: bool = True) -> bool:
        """A given name (or surname); hyphenated names when every part is one."""
        names = self.names if family else self.given
        if word in names:
            return True
        parts = word.split("-")
        return len(parts) > 1 and all(p in self.given or p in self.family for p in parts if p)

    def _judge(self, text: str, tokens: list, i: int, j: int) -> tuple[int, int, float] | None:
        words = [tokens[k][2].rstrip(".") for k in range(i, j + 1)]
        lower = [w.lower() for w in words]
        # An honorific inside the run ("Herr Dr. Koch"): start after it.
        k = 0
        while k < len(lower) - 1 and lower[k] in _INTRO:
            k += 1
        intro = lower[k - 1] if k else None
        words, lower = words[k:], lower[k:]
        first = i + k
        # Keep the name part: given names, particles, surnames; stop at the first other word.
        n = 0
        while n < len(lower) and (self._known(lower[n]) or lower[n] in _PARTICLES
                                  or (0 < n < len(lower) - 1 and _initial(tokens[first + n][2])
                                      and _capitalised(words[n + 1]))
                                  or (n > 0 and _capitalised(words[n]) and any(w in self.given for w in lower[:n])
                                      and (lower[n - 1] in self.given or lower[n - 1] in _PARTICLES))):
            n += 1
        while n > 0 and lower[n - 1] in _PARTICLES:
            n -= 1
        if n == 0:
            return None  # most runs end here: the context words below are read only for a name
        if n < len(lower):
            after = lower[n]
        else:
            after = tokens[j + 1][2].rstrip(".").lower() if j + 1 < len(tokens) else ""
        if words[n - 1] in self._streets or (n < len(words) and words[n] in self._streets):
            return None  # "Darren Roads", "Samuel Rapids": a street
        if after in _COMPANY or after in _PRODUCT_AFTER or " ".join(lower[:n]).replace("'s", "") in _BRANDS \
                or (n >= 2 and " ".join(lower[:2]) in _BRANDS):
            return None
        start, end = tokens[first][0], tokens[first + n - 1][1]
        if text[end - 1] == "." and tokens[first + n - 1][2].rstrip(".").lower() not in HONORIFICS:
            end -= 1
        has_given = any(self._known(w, family=False) for w in lower[:n])
        has_family = any(w in self.family for w in lower[1:n]) or (n >= 2 and lower[n - 1] not in _PARTICLES)
        if n >= 2 and has_given and has_family:
            return start, end, FULL_NAME_SCORE
        if intro is not None:
            prev = intro
        else:
            prev = tokens[i - 1][2].rstrip(".").lower() if i > 0 and _adjacent(text, tokens[i - 1][1], tokens[i][0],
                                                                             gap=3) else ""
        if prev in _INTRO:
            return start, end, CONTEXT_NAME_SCORE
        return None


def _sentence_end(word: str) -> bool:
    return word.endswith(".") and len(word) > 2 and word[:-1].lower() not in HONORIFICS


def _initial(word: str) -> bool:
    return len(word) == 2 and word[0].isupper() and word[1] == "."


def _capitalised(word: str) -> bool:
    return len(word) > 1 and word[0].isupper() and not word.isupper()


def _adjacent(text: str, end: int, start: int, gap: int = 1) -> bool:
    between = text[end:start]
    return len(between) <= gap and between.strip(" .") == ""
