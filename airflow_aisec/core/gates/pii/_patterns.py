"""PII recognizers of the pii gate: Presidio's patterns and validators behind a vectorized pre-filter.

Presidio (``presidio-analyzer``) is the source of truth for what an entity looks
like: its recognizers' regexes, scores, ``validate_result`` / ``invalidate_result``
(Luhn for cards, mod-97 for IBANs, public suffixes for e-mail, ``ipaddress`` for
IPs, SSN area/group rules) and ``phonenumbers`` for phone numbers. Running
Presidio's engine cell by cell is slow (a few thousand short strings per second),
so the gate works in two steps:

1. **Candidates**: RE2 regexes (``pyarrow.compute.match_substring_regex``) over
   whole columns select the cells that *could* hold an entity. They are
   deliberately looser than Presidio's regexes (RE2 has no look-around), so they
   never drop a cell Presidio's regex recognizers would flag. Phone numbers, which
   Presidio finds with python-phonenumbers rather than a regex, are candidates in
   their usual written forms (``+<country> ...``, ``(area) ...``, grouped digits,
   national trunk-0 numbers); python-phonenumbers then decides.
2. **Validation**: only those cells go through Presidio's own compiled patterns
   and validators (:meth:`Detector.detect`).

On top of Presidio the gate applies rules that keep structured data from being
mislabelled (presidio-structured calls integer id columns PHONE_NUMBER):

* Presidio's "very weak" patterns (bare 9 digits as SSN or passport, 8-17 digits
  as bank account, score < 0.3) and bare digit runs as phone numbers only count
  with context: the column name (``ssn``, ``passport_no``, ``bank_account``,
  ``phone``...) or one of the recognizer's context words among the five words
  before the match (Presidio's own context window), minus words too generic to
  mean anything (``us``, ``number``, ``check``...).
* URLs without a scheme must end on a word boundary (Presidio's regex turns
  ``john.doe@...`` into the URL ``john.do``) and must not be a file name such as
  ``train.py``.
* A match inside a longer, better-scored match of another entity is dropped
  (the domain of an e-mail address is not a separate URL).
* Checksum entities (cards, IBANs) in a column whose candidates validate no more
  often than chance (random 16-digit references pass Luhn one time in ten) are
  coincidences, not PII: see :func:`~airflow_aisec.core.gates.pii._validators.coincidental`.

Presidio is imported when a :class:`Detector` is built; the e-mail, URL and phone recognizers
(``tldextract``, a huge URL regex, ``phonenumbers``) and each entity's compiled patterns when a candidate
cell first needs them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from airflow_aisec.core.gates.pii._entity_specs import build_recognizer, build_specs
from airflow_aisec.core.gates.pii._matches import PHONE_BLOCKERS as _PHONE_BLOCKERS
from airflow_aisec.core.gates.pii._matches import CellResult, Match, one_reading_per_number, resolve_overlaps
from airflow_aisec.core.gates.pii._phones import (
    DEFAULT_PHONE_REGIONS,
    PHONE_CONTEXT,
    RE2_BARE,
    RE2_FORMATTED,
    PhoneFinder,
)
from airflow_aisec.core.gates.pii._validators import CHECKSUM_CHANCE, has_fqdn, offline_email_recognizer
from airflow_aisec.core.policy.sections.pii import ALL_PATTERN_ENTITIES, DEFAULT_ENTITIES

#: Presidio recognizer class (in ``presidio_analyzer.predefined_recognizers``) per entity.
PRESIDIO_RECOGNIZERS: dict[str, str] = {
    "EMAIL_ADDRESS": "EmailRecognizer",
    "PHONE_NUMBER": "PhoneRecognizer",
    "US_SSN": "UsSsnRecognizer",
    "CREDIT_CARD": "CreditCardRecognizer",
    "IBAN_CODE": "IbanRecognizer",
    "IP_ADDRESS": "IpRecognizer",
    "US_PASSPORT": "UsPassportRecognizer",
    "US_BANK_NUMBER": "UsBankRecognizer",
    "URL": "UrlRecognizer",
}

#: Presidio scores below this are its "very weak" patterns: they need context to count.
STRONG_SCORE = 0.3
#: Presidio's context similarity factor, added to a weak match that has context.
CONTEXT_BOOST = 0.35
#: Presidio's context window: words before the match that are searched for context.
CONTEXT_PREFIX_WORDS = 5
#: Characters before a match searched for those context words.
CONTEXT_PREFIX_CHARS = 120
#: Longest text handed to Presidio's regexes at once. They backtrack (Python ``regex``): a long run
#: without spaces costs time quadratic in its length, so longer cells are read in overlapping windows.
WINDOW_CHARS = 1024
#: Longest entity a window is sure to see whole, with its context prefix (an e-mail address has at
#: most 254 characters; a longer URL is still found, from its start).
MAX_ENTITY_CHARS = 320

# Context words from Presidio's recognizers that are too generic to support a weak match
# ("us", "number", "check", "save", "call" appear in any text).
_GENERIC_CONTEXT = frozenset({"us", "united", "states", "travel", "document", "number", "call", "check", "save",
                              "security", "ssid", "transaction"})
# Extra context words (same meaning as Presidio's, other spellings).
_EXTRA_CONTEXT: dict[str, frozenset[str]] = {
    "PHONE_NUMBER": PHONE_CONTEXT,
    "US_BANK_NUMBER": frozenset({"acct", "account", "bank", "routing"}),
    "US_SSN": frozenset({"ssn", "social"}),
    "US_PASSPORT": frozenset({"passport"}),
    "IP_ADDRESS": frozenset({"ip"}),
}

#: Column-name globs (over the normalised, ``_``-joined lower-case name) that give a weak entity context.
DEFAULT_COLUMN_HINTS: dict[str, tuple[str, ...]] = {
    "US_SSN": ("ssn", "ssn_*", "*_ssn", "*_ssn_*", "ssns", "*social_security*", "socsec*"),
    "US_PASSPORT": ("passport", "passport_*", "*_passport", "*_passport_*"),
    "US_BANK_NUMBER": ("*bank_account*", "bank_acct*", "*_bank_acct*", "acct", "acct_*", "*_acct", "*_acct_*",
                       "account_number*", "*_account_number*", "account_no", "*_account_no", "account_num",
                       "*_account_num", "bank_number", "*_bank_number"),
    "PHONE_NUMBER": ("phone", "phone_*", "*_phone", "*_phone_*", "telephone*", "*_telephone*", "tel", "tel_*",
                     "*_tel", "mobile", "mobile_*", "*_mobile", "*_mobile_*", "cell", "cell_phone*",
                     "*_cell", "cellphone*", "fax", "*_fax", "fax_*", "*telefon*", "*telefoon*", "handy*",
                     "*_handy", "portable", "*_portable", "movil*", "*_movil*", "cellulare*", "*_cellulare*", "gsm*",
                     "*mobiel*", "*_mobil", "mobil_*", "tel_nr*", "telnr*"),
    "IP_ADDRESS": ("ip", "ip_*", "*_ip", "*_ip_*", "ipv4*", "ipv6*", "*_ipv4", "*_ipv6"),
}

# --- RE2 candidate expressions (pyarrow.compute): looser than Presidio's, never stricter. ---------
_STRONG_CANDIDATES: dict[str, str] = {
    "EMAIL_ADDRESS": r"[^\s@]@[^\s@.]+\.[^\s@.]",
    "URL": r"(?i)(?:https?://|\bwww\d{0,3}\.|[a-z0-9-]\.[a-z]{2,})",
    "IP_ADDRESS": r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}"
                  r"|::[0-9A-Fa-f]{1,4}",
    "CREDIT_CARD": r"\b[13456]\d{3}[- ]?\d{3,4}[- ]?\d{3,4}[- ]?\d{3,5}\b",
    "IBAN_CODE": r"[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2}",
    "US_SSN": r"\b\d{3}[- .]\d{2}[- .]\d{4}\b",
    "PHONE_NUMBER": RE2_FORMATTED,
}
_WEAK_CANDIDATES: dict[str, str] = {
    "US_SSN": r"\b\d{5}-\d{4}\b|\b\d{3}-\d{6}\b|\b\d{9}\b",
    "US_PASSPORT": r"(?i)\b(?:\d{9}|[a-z]\d{8})\b",
    "US_BANK_NUMBER": r"\b\d{8,17}\b",
    "PHONE_NUMBER": RE2_BARE,
    "IP_ADDRESS": r"::",
}
# File extensions that are also top-level domains: "train.py" is a file, not a URL.
_FILE_LIKE_TLDS = frozenset({"py", "sh", "md", "rs", "pl", "ps", "cc", "so", "mov", "ml", "zip", "cs", "ts", "js"})
_WORD = re.compile(r"[A-Za-z]+")
_ABBREVIATION = re.compile(r"[A-Z][a-z]{0,2}\.[A-Z][a-z]{0,3}")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^0-9a-zA-Z]+")

def normalise_column_name(name: str) -> str:
    """``"CustomerSSN"`` -> ``"customer_ssn"``, ``"Bank Account#"`` -> ``"bank_account"``."""
    spaced = _CAMEL.sub("_", str(name))
    return "_".join(p for p in _NON_ALNUM.split(spaced.lower()) if p)


class Detector:
    """Presidio-backed detection for a set of entity types; build once per scan.

    Args:
        entities: Pattern entity types to detect (subset of :data:`ALL_PATTERN_ENTITIES`; default: the
            policy's default selection).
        column_hints: Extra column-name globs per entity, added to :data:`DEFAULT_COLUMN_HINTS`.
        phone_regions: Regions whose national phone formats count (``pii.phone_regions``).
    """

    def __init__(self, entities: Iterable[str] = DEFAULT_ENTITIES, *,
                 column_hints: Mapping[str, Sequence[str]] | None = None,
                 phone_regions: Sequence[str] | None = None) -> None:
        from airflow_aisec.core.gates.pii._presidio import (
            class_constant,
            pattern_recognizers,
            unchecked_patterns,
        )

        presidio = pattern_recognizers()  # not `import presidio_analyzer`: that imports spaCy and torch

        self.entities: tuple[str, ...] = tuple(e for e in ALL_PATTERN_ENTITIES if e in set(entities))
        unknown = set(entities) - set(ALL_PATTERN_ENTITIES)
        if unknown:
            raise ValueError(f"not a pattern entity: {sorted(unknown)}")

        def recognizer(entity: str) -> Any:
            with unchecked_patterns():  # each pattern is compiled (and so checked) by _compile, when needed
                if entity in PRESIDIO_RECOGNIZERS:
                    cls = getattr(presidio, PRESIDIO_RECOGNIZERS[entity])
                    return offline_email_recognizer(cls)() if entity == "EMAIL_ADDRESS" else cls()
                return build_recognizer(entity)  # every other Presidio pattern recognizer, and the European ids

        # Built when a candidate cell first needs them (start-up): the e-mail, URL and phone recognizers, and
        # every entity's compiled patterns. The others are needed now (context words, specs).
        self._recognizers = _Lazy(self.entities, recognizer, {e: recognizer(e) for e in self.entities if e not in _LAZY})
        self._patterns: Mapping[str, list[tuple[float, Any]]] = _Lazy(self.entities, self._compile)
        self.context_words: Mapping[str, frozenset[str]] = _Lazy(self.entities, self._context_words)
        self._specs = build_specs({e: self._recognizers[e] for e in self.entities if e not in PRESIDIO_RECOGNIZERS},
                                  STRONG_SCORE)
        hints = {e: list(g) for e, g in DEFAULT_COLUMN_HINTS.items()}
        for entity, globs in (column_hints or {}).items():
            hints.setdefault(entity, []).extend(g.lower() for g in globs)
        self._column_hints = {e: tuple(g) for e, g in hints.items() if e in self.entities}
        # One compiled expression per entity (fnmatchcase semantics), matched once per column name.
        self._hint_regexes = {e: re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))
                              for e, globs in self._column_hints.items() if globs}
        self._phones = PhoneFinder(phone_regions or DEFAULT_PHONE_REGIONS)
        self._strong = dict(_STRONG_CANDIDATES)
        if "URL" in self.entities:
            self._strong["URL"] = _url_candidate(class_constant(PRESIDIO_RECOGNIZERS["URL"], "BASE_URL_REGEX"))
        self._skip_pattern: dict[str, Callable[[str], bool]] = {
            # Run each of Presidio's patterns only where it can match (a character it requires).
            "Standard Url": lambda t: "://" not in t,
            "Quoted URL": lambda t: '"' not in t and "'" not in t,
            "Quoted Non-schema URL": lambda t: '"' not in t and "'" not in t,
            "IPv4": lambda t: "." not in t,
            "IPv4_mapped": lambda t: "::" not in t,
            "IPv4_embedded": lambda t: ":" not in t,
            "IPv6": lambda t: ":" not in t,
            "IPv6_unspecified": lambda t: "::" not in t,
        }
        self._pattern_names: Mapping[str, list[str]] = _Lazy(
            self.entities, lambda e: [p.name for p in getattr(self._recognizers[e], "patterns", [])])
        # The offline e-mail recognizer's own domain check, without building the recognizer.
        self.email_domain_valid: Callable[[str], bool] = has_fqdn if "EMAIL_ADDRESS" in self.entities else _never

    def _compile(self, entity: str) -> list[tuple[float, Any]]:
        import regex

        recognizer = self._recognizers[entity]
        flags = getattr(recognizer, "global_regex_flags", None) or 0
        return [(p.score, regex.compile(p.regex, flags=flags)) for p in getattr(recognizer, "patterns", [])]

    def _context_words(self, entity: str) -> frozenset[str]:
        if entity in _LAZY and not self._recognizers.built(entity):  # its class's CONTEXT, read without importing it
            from airflow_aisec.core.gates.pii._presidio import class_constant

            context = class_constant(PRESIDIO_RECOGNIZERS[entity], "CONTEXT")
        else:
            context = self._recognizers[entity].context
        words = {w.strip("#").lower() for w in (context or []) if w.strip()}
        words = (words - _GENERIC_CONTEXT) | _EXTRA_CONTEXT.get(entity, frozenset())
        return frozenset(w for w in words if w.isalpha())

    # --- column level -----------------------------------------------------------------------
    def hint_sources(self) -> tuple[list[str], list[str]]:
        """The column hints as configured: the globs, and the entity specs' hint expressions (what a
        bulk pre-filter over many column names is built from; :meth:`hinted_entities` decides)."""
        return ([g for globs in self._column_hints.values() for g in globs],
                [spec.column_hint.pattern for spec in self._specs.values() if spec.column_hint is not None])

    def hinted_entities(self, column: str) -> frozenset[str]:
        """Weak entities the column name gives context to (``customer_ssn`` -> ``US_SSN``)."""
        name = normalise_column_name(column)
        return frozenset(e for e, rx in self._hint_regexes.items() if rx.match(name)) | frozenset(
            e for e, spec in self._specs.items() if spec.column_hint is not None and spec.column_hint.match(name))

    def candidate_regexes(self, hinted: frozenset[str]) -> dict[str, str]:
        """RE2 expression per entity selecting the cells worth validating in a column."""
        out: dict[str, str] = {}
        for entity in self.entities:
            parts = []
            if entity in self._strong:
                parts.append(self._strong[entity])
            weak = _WEAK_CANDIDATES.get(entity)
            if weak:
                if entity in hinted:
                    parts.append(weak)
                elif self.context_words.get(entity):
                    words = "|".join(sorted(self.context_words[entity]))
                    parts.append(rf"(?is:\b(?:{words})\b.{{0,80}})(?:{weak})")
            if entity in self._specs:
                parts = [p for p in (self._specs[entity].candidate(entity in hinted),) if p]
            if parts:
                out[entity] = "|".join(f"(?:{p})" for p in parts)
        return out

    @staticmethod
    def union_regex(per_entity: Mapping[str, str]) -> str:
        return "|".join(f"(?:{p})" for p in per_entity.values())

    # --- cell level ---------------------------------------------------------------------------
    def detect(self, text: str, entities: Iterable[str], hinted: frozenset[str] = frozenset()) -> CellResult:
        """Validate one candidate cell with Presidio's patterns and validators.

        Args:
            text: The cell.
            entities: Entities whose candidate expression matched this cell.
            hinted: Weak entities the column name gives context to.

        Returns:
            Accepted matches (overlaps resolved) and the checksum entities seen.
        """
        entities = list(entities)
        if len(text) <= WINDOW_CHARS:
            return self._detect(text, entities, hinted)
        # Overlapping windows; each match is kept by the one window in which it starts inside the
        # window's own stretch, where it lies whole and has its context prefix: linear time.
        overlap = CONTEXT_PREFIX_CHARS + MAX_ENTITY_CHARS
        step = WINDOW_CHARS - overlap
        result = CellResult()
        found: list[Match] = []
        start = 0
        while True:
            last = start + WINDOW_CHARS >= len(text)
            part = self._detect(text[start:start + WINDOW_CHARS], entities, hinted)
            result.checksum_candidates |= part.checksum_candidates
            lo = start + CONTEXT_PREFIX_CHARS if start else 0
            hi = len(text) if last else start + CONTEXT_PREFIX_CHARS + step
            found.extend(Match(m.entity, start + m.start, start + m.end, m.score)
                         for m in part.matches if lo <= start + m.start < hi)
            if last:
                break
            start += step
        result.matches = resolve_overlaps(found)
        return result

    def _detect(self, text: str, entities: Sequence[str], hinted: frozenset[str]) -> CellResult:
        """:meth:`detect` on a text of at most :data:`WINDOW_CHARS` characters."""
        result = CellResult()
        found: list[Match] = []
        # E-mail before URL (a URL inside an address is a by-product), phone numbers last (digits
        # already read as an IP, IBAN, card or SSN are not parsed again).
        for entity in sorted(entities, key=lambda e: _DETECT_ORDER.get(e, _EXTENDED_ORDER)):
            if entity == "PHONE_NUMBER":
                raw = self._phone_matches(text, found, hinted)
            elif entity == "URL" and not _text_outside(text, found, "EMAIL_ADDRESS", "."):
                continue  # every URL match needs a '.', and one inside an address would be dropped
            elif entity == "IBAN_CODE":
                raw = self._iban_matches(text)
            else:
                raw = self._pattern_matches(entity, text, result, hinted)
            for start, end, score in raw:
                if entity == "URL" and not self._plausible_url(text, start, end):
                    continue
                if score < STRONG_SCORE:
                    if entity not in hinted and not self._has_context(entity, text, start):
                        continue
                    score = min(1.0, score + CONTEXT_BOOST)
                found.append(Match(entity, start, end, score))
        if "PHONE_NUMBER" in entities:
            found = one_reading_per_number(
                text, found, lambda m: m.entity in hinted or self._has_context(m.entity, text, m.start))
        result.matches = resolve_overlaps(found)
        return result

    def _pattern_matches(self, entity: str, text: str, result: CellResult,
                         hinted: frozenset[str] = frozenset()) -> Iterator[tuple[int, int, float]]:
        """Presidio's ``PatternRecognizer`` loop, minus the result objects it builds.

        A very weak pattern (a bare digit run) that passes a checksum still needs context: one
        random number in ten passes a mod-10 check (Presidio would score it 1.0).
        """
        recognizer = self._recognizers[entity]
        for name, (base_score, compiled) in zip(self._pattern_names[entity], self._patterns[entity]):
            skip = self._skip_pattern.get(name)
            if skip is not None and skip(text):
                continue
            for m in compiled.finditer(text):
                start, end = m.span()
                if start == end:
                    continue
                piece = text[start:end]
                score = base_score
                validation = recognizer.validate_result(piece)
                if validation is not None:
                    if entity in CHECKSUM_CHANCE:
                        result.checksum_candidates.add(entity)
                    score = 1.0 if validation else 0.0
                    if (validation and base_score < STRONG_SCORE and entity not in hinted
                            and not self._has_context(entity, text, start)):
                        continue
                if recognizer.invalidate_result(piece):
                    score = 0.0
                if score > 0.0:
                    yield start, end, score

    def iban_valid(self, text: str) -> bool:
        """Presidio's IBAN validator (mod 97 and the country's format) on a whole value."""
        recognizer = self._recognizers.get("IBAN_CODE")
        return bool(recognizer is not None and recognizer.validate_result(text))

    def _iban_matches(self, text: str) -> Iterator[tuple[int, int, float]]:
        """Presidio's ``IbanRecognizer`` matching loop (longest group first, shorter on a failed check).

        Same regex, groups, order and ``validate_result`` as its ``__analyze_patterns``, without
        building explanation objects for every attempt.
        """
        recognizer = self._recognizers["IBAN_CODE"]
        for base_score, compiled in self._patterns["IBAN_CODE"]:
            for match in compiled.finditer(text):
                start = match.span(0)[0]
                for group in reversed(range(1, len(match.groups()) + 1)):
                    end = match.span(group)[1] if match.span(group)[1] > 0 else match.span(0)[1]
                    piece = text[start:end]
                    if not piece:
                        continue
                    validation = recognizer.validate_result(piece)
                    score = base_score if validation is None else (1.0 if validation else 0.0)
                    if score > 0.0:
                        yield start, end, score
                        break

    def _phone_matches(self, text: str, found: Sequence[Match] = (),
                       hinted: frozenset[str] = frozenset()) -> Iterator[tuple[int, int, float]]:
        """Phone numbers of the policy's regions (:class:`~._phones.PhoneFinder`), extensions included."""
        # Digits already read as an address, card, IP or SSN are not a phone number; a national id
        # whose checksum a phone number passes by chance does not hide the phone reading.
        skip = [(f.start, f.end) for f in found if f.entity in _PHONE_BLOCKERS]
        yield from self._phones.find(text, hinted="PHONE_NUMBER" in hinted, skip=skip)

    def _any_context(self, entity: str, text: str) -> bool:
        words = self.context_words.get(entity)
        return bool(words) and any(w.lower() in words for w in _WORD.findall(text))

    def _has_context(self, entity: str, text: str, start: int) -> bool:
        if entity in self._specs:
            return self._specs[entity].has_context(text, start, CONTEXT_PREFIX_CHARS)
        words = self.context_words.get(entity)
        if not words:
            return False
        before = _WORD.findall(text[max(0, start - CONTEXT_PREFIX_CHARS):start])[-CONTEXT_PREFIX_WORDS:]
        return any(w.lower() in words for w in before)

    @staticmethod
    def _plausible_url(text: str, start: int, end: int) -> bool:
        if end < len(text) and (text[end].isalnum() or text[end] in "_@"):
            return False  # Presidio's URL pattern has no end boundary: "john.do" in "john.doe@x.com"
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "@._-"):
            return False
        piece = text[start:end].lower()
        if "://" in piece or piece.startswith("www") or "/" in piece:
            return True
        host = piece.rstrip(".")
        if _ABBREVIATION.fullmatch(text[start:end].rstrip(".")):
            return False  # "B.Sc", "M.A", "Dr.Med": a degree or title, not a host
        tld = host.rsplit(".", 1)[-1]
        return tld not in _FILE_LIKE_TLDS


#: Where the other pattern entities are validated: after the first nine, before phone numbers.
_EXTENDED_ORDER = 7.5
_DETECT_ORDER = {e: i for i, e in enumerate(
    ("EMAIL_ADDRESS", "URL", "IBAN_CODE", "CREDIT_CARD", "IP_ADDRESS", "US_SSN", "US_PASSPORT", "US_BANK_NUMBER",
     "PHONE_NUMBER"))}


#: Recognizers built on first use: importing them costs more than a small scan (tldextract, a huge URL regex,
#: phonenumbers). Presidio's recognizers of these take their context words from the class's ``CONTEXT``.
_LAZY = frozenset({"EMAIL_ADDRESS", "URL", "PHONE_NUMBER"})


def _never(_domain: str) -> bool:
    return False


class _Lazy(Mapping[str, Any]):
    """A mapping over fixed keys whose values are built on first access."""

    def __init__(self, keys: Iterable[str], build: Callable[[str], Any], ready: Mapping[str, Any] | None = None):
        self._keys = tuple(keys)
        self._build = build
        self._values: dict[str, Any] = dict(ready or {})

    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            if key not in self._keys:
                raise
        value = self._values[key] = self._build(key)
        return value

    def built(self, key: str) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _text_outside(text: str, found: Sequence[Match], entity: str, needle: str) -> bool:
    """Whether ``needle`` occurs in ``text`` outside the matches of ``entity`` found so far."""
    spans = [(m.start, m.end) for m in found if m.entity == entity]
    if not spans:
        return needle in text
    pos = text.find(needle)
    while pos >= 0:
        if not any(a <= pos < b for a, b in spans):
            return True
        pos = text.find(needle, pos + 1)
    return False


def _url_candidate(base_url_regex: str) -> str:
    """RE2 candidate for URLs: Presidio's own URL regex (it has no look-around), minus file extensions.

    ``train.py`` matches Presidio's pattern (``.py`` is Paraguay) and is rejected later
    anyway; leaving such TLDs out of the candidate keeps notes full of file names from
    reaching Python. URLs with a scheme or ``www.`` stay candidates whatever their TLD.
    """
    if not base_url_regex:
        return _STRONG_CANDIDATES["URL"]
    pruned = base_url_regex
    for tld in sorted(_FILE_LIKE_TLDS):
        pruned = pruned.replace(f"|(?:{tld})", "")
    return r"(?i)(?:https?://|\bwww\d{0,3}\.)|(?i:" + pruned + r")\b"
