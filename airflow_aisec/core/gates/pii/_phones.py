"""Phone numbers in international and national formats: spans, decoy rejection, python-phonenumbers.

A span is a run of digit groups written the way phone numbers are (``+49(0)30 901820``,
``(0113) 496 0123``, ``001-513-290-9960x123``, ``06 12 34 56 78``), extension included, so a
redaction never leaves ``x31948`` behind. A span counts as a phone number when:

* it starts with ``+`` / ``00`` and python-phonenumbers calls it valid, or possible for a real
  country code (Faker and many real directories hold numbers outside allocated ranges);
* it is a national number that phonenumbers calls valid for one of the policy's regions
  (``pii.phone_regions``), or has the shape every listed country writes: a trunk ``0`` and 9-13
  digits, or a North American 3-3-4 grouping (when US or CA is listed);
* a bare digit run (no separator) needs evidence: the column name (``phone``, ``tel``...) or a
  context word (Tel., Telefon, téléphone, teléfono, telefono, telefoon, call...) shortly before.

Decoys are rejected before any parsing: dates and timestamps, versions, amounts (currency,
thousands grouping, decimal comma), IP-like dotted quads, and numbers introduced by an order /
invoice / reference word. phonenumbers is imported on first use.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from typing import Any

#: Regions tried for national numbers when the policy does not list any.
DEFAULT_PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES", "IT", "NL")
#: Score given to an accepted number (Presidio's PhoneRecognizer score).
PHONE_SCORE = 0.4

#: Words that make a bare digit run a phone number (any of the listed languages).
PHONE_CONTEXT: frozenset[str] = frozenset({
    "phone", "telephone", "tel", "mobile", "cell", "cellphone", "fax", "call", "dial", "whatsapp", "contact",
    "telefon", "telefonnummer", "handy", "mobil", "mobilnummer", "rufnummer", "anrufen", "erreichbar",
    "téléphone", "tél", "portable", "appeler", "joindre",
    "teléfono", "telefono", "móvil", "movil", "llamar", "celular",
    "cellulare", "chiamare", "numero", "telefonico",
    "telefoon", "telefoonnummer", "mobiel", "bellen", "gsm",
})
# Words that introduce a number that is not a phone number.
_NEGATIVE_CONTEXT = frozenset({
    "order", "invoice", "ref", "reference", "id", "ticket", "isbn", "sku", "serial", "tracking", "item",
    "article", "artikel", "account", "konto", "iban", "zip", "plz", "postcode", "code", "version", "build",
    "release", "v", "bestellung", "bestellnummer", "rechnung", "rechnungsnummer", "auftrag", "kundennummer",
    "commande", "facture", "référence", "pedido", "factura", "referencia", "ordine", "fattura", "riferimento",
    "bestelling", "factuur", "ordernummer", "kenmerk", "case", "batch", "lot", "amount", "total", "price",
    "betrag", "summe", "montant", "importe", "importo", "bedrag", "eur", "usd", "gbp", "chf",
})

_SEP = r"[ .\-/]"
# Python span: international prefix, digit groups (an area code may be parenthesised, a "(0)"
# trunk marker may follow the country code), optional extension; not glued to letters or digits.
SPAN_RE = re.compile(
    r"(?<![\w+\-./#$€£])"
    r"(?:\+\s?|\b|(?=\())(?:\(\d{1,5}\)[ .\-/]?\d{1,10}|\(\d{1,5}\)|\d{1,15})"
    rf"(?:(?:{_SEP}{{1,2}}|{_SEP}?\(\d{{1,5}}\){_SEP}?|{_SEP}?\(0\){_SEP}?)\d{{1,12}}){{0,6}}"
    r"(?:\s?(?:x|ext\.?|extension|#)\s?\d{1,6})?"
    r"(?![\w])",
    re.IGNORECASE,
)
_EXTENSION = re.compile(r"\s?(?:x|ext\.?|extension|#)\s?\d{1,6}$", re.IGNORECASE)
# RE2 candidates (pyarrow.compute): formatted numbers; bare runs are handled by the caller with context.
# Tight enough that a date column ("2023-01-15", "15.01.2023") does not reach Python.
RE2_FORMATTED = (
    r"\+\s?\d{1,3}[-. /(]*\d[\d\-. /()]{5,}\d"
    r"|\b00\d{1,3}[-. /(]{0,2}\d[\d\-. /()]{5,}\d"
    r"|\(\d{1,5}\)[-. /]{0,2}\d{2,10}(?:[-. /]{1,2}\d{1,8}){0,3}"
    r"|\b\d{2,5}[-. /]{1,2}\d{3,5}[-. /]{1,2}\d{3,5}"
    r"|\b\d{3}[-. ]\d{2}[-. ]\d{2}[-. ]\d{2}\b"
    r"|\b\d{2,4}[-. /]\d{6,8}"
    r"|\b0\d{2,5}[-. /]{1,2}\d{4,8}"
    r"|\b\d{2}(?:[-. ]\d{2}){4}"
)
RE2_BARE = r"\b\d{7,15}\b"

_DATE = re.compile(
    r"(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})(?:[ T]\d{1,2})?")
_SSN_SHAPE = re.compile(r"\d{3}([- .])\d{2}\1\d{4}")
_DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_THOUSANDS = re.compile(r"[1-9]\d{0,2}(?:([., ])\d{3})(?:\1\d{3})*")
_NANP = re.compile(r"(?:(?:\+\s?1|001|1)[ .\-]?)?(?:\(\d{3}\)\s?|\d{3}[ .\-])\d{3}[ .\-]\d{4}")
_COMPACT_TIME = re.compile(r"(?:19\d\d|20[0-4]\d)(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
                           r"(?:(?:[01]\d|2[0-3])[0-5]\d(?:[0-5]\d)?)?")
_NANP_BARE = re.compile(r"1?[2-9]\d{9}")
_PLAIN_INTL = re.compile(r"\+[0-9 .\-/()]+")
_PLAIN_NATIONAL = re.compile(r"[0-9 .\-/()]+")
_NON_ASCII_DIGIT = re.compile(r"[^0-9]")
_NOT_DIGIT = re.compile(r"\D")
_WORDS = re.compile(r"[^\W\d_]+")
_CURRENCY = frozenset("$€£¥")


def context_before(text: str, start: int, words: frozenset[str], n_words: int = 5) -> bool:
    """Whether one of ``words`` is among the ``n_words`` words before ``start`` (Unicode words)."""
    before = _WORDS.findall(text[max(0, start - 80):start])[-n_words:]
    return any(w.lower() in words for w in before)


class PhoneFinder:
    """Phone-number spans in a text, for a list of regions (ISO 3166 codes, ``UK`` means ``GB``)."""

    def __init__(self, regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> None:
        self.regions = tuple(dict.fromkeys("GB" if r.upper() == "UK" else r.upper() for r in regions))
        self._prefixes: dict[int, re.Pattern[str] | None] = {}
        self._regional: dict[str, tuple | None] = {}
        self._nanp = bool({"US", "CA"} & set(self.regions))

    # phonenumbers (tens of ms to import) only once a span reaches it: most scans of small tables never do.
    @functools.cached_property
    def _pn(self) -> Any:
        import phonenumbers

        return phonenumbers

    @functools.cached_property
    def _trunk(self) -> bool:
        """National numbers written with a trunk "0" count when a listed region dials one."""
        return any(getattr(self._pn.PhoneMetadata.metadata_for_region(r), "national_prefix", None) == "0"
                   for r in self.regions)

    def find(self, text: str, *, hinted: bool = False,
             skip: Sequence[tuple[int, int]] = ()) -> Iterator[tuple[int, int, float]]:
        """``(start, end, score)`` of each phone number; ``hinted``: the column name says phone."""
        for m in SPAN_RE.finditer(text):
            start, end = m.span()
            if end - start < 7:
                continue  # fewer than 7 digits: a house number, a postcode (most spans in free text)
            if any(a <= start and b >= end for a, b in skip):
                continue  # already another entity (IP, IBAN, card, SSN)
            if self.accept(text, start, end, hinted=hinted):
                yield start, end, PHONE_SCORE

    def accept(self, text: str, start: int, end: int, *, hinted: bool = False) -> bool:
        piece = text[start:end]
        ext = _EXTENSION.search(piece)
        main = piece[:ext.start()] if ext else piece
        digits = _NOT_DIGIT.sub("", main)  # SPAN_RE's digits are \d: the same as str.isdigit here
        if not 7 <= len(digits) <= 15:
            return False
        if self._decoy(text, start, end, main, hinted=hinted):
            return False
        intl = main.startswith("+") or (main.startswith("00") and not main.startswith("000"))
        formatted = ext is not None or len(digits) != len(main)  # "+", separators, parentheses
        evidence = hinted or context_before(text, start, PHONE_CONTEXT)
        if not formatted and (not evidence or _COMPACT_TIME.fullmatch(main)
                              or (main[0] == "1" and not _NANP_BARE.fullmatch(main))):
            return False  # bare: needs evidence; never a compact timestamp or an epoch-like 1xxxxxxxxx
        if intl and self._international(main):
            return True
        if main.startswith("+"):
            return False
        if self._nanp and (_NANP.fullmatch(main) or (not formatted and _NANP_BARE.fullmatch(main))):
            return True
        if self._trunk and digits[0] == "0" and not digits.startswith("000") and 9 <= len(digits) <= 13:
            return True  # trunk prefix: the national form in every listed European region
        # A number phonenumbers only calls "possible" (right length) needs formatting and evidence.
        return self._national(main, possible=evidence and formatted)

    # --- helpers ----------------------------------------------------------------------------
    def _international(self, main: str) -> bool:
        pn = self._pn
        raw = main.replace("(0)", " ")
        if raw.startswith("00"):
            raw = "+" + raw[2:]
        if _PLAIN_INTL.fullmatch(raw) and self._plausible_e164(_NON_ASCII_DIGIT.sub("", raw)):
            return True
        try:
            number = pn.parse(raw, None)
        except pn.NumberParseException:
            return False
        # Written with "+" and a real country code, E.164 length: directories (and Faker) hold numbers
        # outside the allocated ranges, and a "+" is never a date, amount or version. Checked first: it
        # is cheap, and the validity check (the costlier one) only matters when it fails.
        national = len(str(number.national_number))
        if pn.region_code_for_country_code(number.country_code) != "ZZ" and 4 <= national <= 14 and \
                len(str(number.country_code)) + national <= 15:
            return True
        return pn.is_valid_number(number)

    def _plausible_e164(self, digits: str) -> bool:
        """:meth:`_international`'s E.164 check without ``phonenumbers.parse`` (a third of a phone column's
        time), for the common case where parse keeps every digit: a real country code, no leading zero, no
        national prefix the country's metadata would strip. ``False`` means: undecided, parse it."""
        cc = next((digits[:n] for n in (1, 2, 3) if int(digits[:n] or 0) in self._pn.COUNTRY_CODE_TO_REGION_CODE),
                  None) if digits[:1] not in ("", "0") else None
        if cc is None:
            return False
        national = digits[len(cc):]
        if national[:1] in ("", "0") or not 4 <= len(national) <= 14 or len(digits) > 15:
            return False
        prefix = self._national_prefix(int(cc))
        return prefix is None or prefix.match(national) is None

    def _national_prefix(self, cc: int) -> re.Pattern[str] | None:
        if cc not in self._prefixes:
            pn = self._pn
            meta = pn.PhoneMetadata.metadata_for_region_or_calling_code(cc, pn.region_code_for_country_code(cc))
            pattern = getattr(meta, "national_prefix_for_parsing", None)
            self._prefixes[cc] = re.compile(pattern) if pattern else None
        return self._prefixes[cc]

    def _national(self, main: str, *, possible: bool) -> bool:
        pn = self._pn
        digits = _NON_ASCII_DIGIT.sub("", main) if _PLAIN_NATIONAL.fullmatch(main) else ""
        for region in self.regions:
            number = self._as_national(digits, region)
            if number is None:
                try:
                    number = pn.parse(main, region)
                except pn.NumberParseException:
                    continue
            if pn.is_valid_number(number) or (possible and pn.is_possible_number(number)):
                return True
        return False

    def _as_national(self, digits: str, region: str):
        """What ``phonenumbers.parse(digits, region)`` returns when it keeps every digit as the national number
        (no leading zero, no international, country or national prefix of the region); else ``None``."""
        if not digits or digits[0] == "0":
            return None
        if region not in self._regional:
            meta = self._pn.PhoneMetadata.metadata_for_region(region)
            self._regional[region] = None if meta is None else (
                meta.country_code, str(meta.country_code),
                [re.compile(p) for p in (meta.international_prefix, meta.national_prefix_for_parsing) if p])
        known = self._regional[region]
        if known is None:
            return None
        cc, cc_text, prefixes = known
        if digits.startswith(cc_text) or any(p.match(digits) for p in prefixes):
            return None
        return self._pn.PhoneNumber(country_code=cc, national_number=int(digits))

    @staticmethod
    def _decoy(text: str, start: int, end: int, main: str, *, hinted: bool) -> bool:
        after = text[end:end + 2]
        before = text[max(0, start - 2):start]
        if after[:1] == ":" or (after[:1] in ",." and after[1:2].isdigit()):
            return True  # a time, or the integer part of an amount / a longer dotted number
        if any(c in _CURRENCY for c in before + after) or after[:1] == "%":
            return True
        tail = text[end:end + 5].strip().lower()
        if tail[:3] in ("eur", "usd", "gbp", "chf") or tail.startswith(("€", "euro")):
            return True
        if main.startswith("+"):
            return False  # a written-out international number is never a date or an amount
        if _DATE.fullmatch(main) or _DOTTED_QUAD.fullmatch(main) or _SSN_SHAPE.fullmatch(main):
            return True
        groups = re.split(r"\D+", main.strip("()"))
        if "." in main and " " not in main and not main.startswith("0") and min(len(g) for g in groups if g) <= 2:
            return True  # 10.0.19041.1234, 3.14.159
        if (not hinted and not main.startswith(("0", "(")) and _THOUSANDS.fullmatch(main)
                and not context_before(text, start, PHONE_CONTEXT)):
            return True  # 1.234.567 / 12 345 678: a grouped amount (Polish mobiles are 3-3-3: "tel. 783 329 253")
        return context_before(text, start, _NEGATIVE_CONTEXT, n_words=2)
