"""European identifiers Presidio 2.2 has no recognizer for, as Presidio ``PatternRecognizer`` s.

FR NIR (numéro de sécurité sociale / INSEE), FR SIREN / SIRET, NL BSN, BE national number
(rijksregisternummer / numéro national), AT social security number (Sozialversicherungsnummer),
CH AHV / AVS number. Same shape as Presidio's own recognizers (regex patterns with scores,
context words, ``validate_result``), so the :class:`~._patterns.Detector` treats them like any
other; the check digits are in :mod:`._checksums`.

Scores follow Presidio's conventions: a pattern below 0.3 (a bare run of digits that many
numbers have) only counts with context (a context word before it or the column name).

Presidio is imported when a recognizer is built.
"""

from __future__ import annotations

from typing import Any

from airflow_aisec.core.gates.pii._checksums import SCALAR

# (pattern name, regex, score) per entity.
PATTERNS: dict[str, tuple[tuple[str, str, float], ...]] = {
    "FR_NIR": (
        ("NIR (sex, year, month, department, commune, order, key)",
         r"\b[1-478] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}\b", 0.5),
    ),
    "FR_SIREN": (("SIREN (9 digits, weak)", r"\b\d{3}[ .]?\d{3}[ .]?\d{3}\b", 0.1),),
    "FR_SIRET": (("SIRET (14 digits, weak)", r"\b\d{3}[ .]?\d{3}[ .]?\d{3}[ .]?\d{5}\b", 0.1),),
    "NL_BSN": (("BSN (9 digits, weak)", r"\b(?:\d{9}|\d{4}\.\d{2}\.\d{3}|\d{3} \d{3} \d{3})\b", 0.1),),
    "BE_NATIONAL_NUMBER": (
        ("BE national number (YY.MM.DD-XXX.CC)", r"\b\d{2}\.[0-5]\d\.[0-3]\d-\d{3}\.\d{2}\b", 0.5),
        ("BE national number (11 digits, weak)", r"\b\d{2}[0-5]\d[0-3]\d\d{5}\b", 0.1),
    ),
    "AT_SOCIAL_SECURITY": (
        ("AT SVNR (NNNC DDMMYY)", r"\b[1-9]\d{3} (?:0[1-9]|[12]\d|3[01])(?:0[1-9]|1[0-2])\d{2}\b", 0.4),
        ("AT SVNR (10 digits, weak)", r"\b[1-9]\d{9}\b", 0.1),
    ),
    "CH_AHV": (("AHV/AVS number (756.XXXX.XXXX.XX)", r"\b756[. ]?\d{4}[. ]?\d{4}[. ]?\d{2}\b", 0.5),),
}

CONTEXT: dict[str, tuple[str, ...]] = {
    "FR_NIR": ("nir", "numéro de sécurité sociale", "sécurité sociale", "securite sociale", "insee",
               "numéro insee", "carte vitale", "nss", "numéro de sécu", "sécu"),
    "FR_SIREN": ("siren", "numéro siren", "rcs", "registre du commerce", "immatriculation"),
    "FR_SIRET": ("siret", "numéro siret", "établissement", "etablissement"),
    "NL_BSN": ("bsn", "burgerservicenummer", "sofinummer", "sofi-nummer", "persoonsnummer"),
    "BE_NATIONAL_NUMBER": ("rijksregisternummer", "rijksregister", "registre national", "numéro national",
                           "numéro de registre national", "insz", "niss", "nationaal nummer", "national number"),
    "AT_SOCIAL_SECURITY": ("sozialversicherungsnummer", "versicherungsnummer", "svnr", "sv-nummer", "sv-nr",
                           "sozialversicherung", "e-card", "ecard"),
    "CH_AHV": ("ahv", "avs", "ahv-nummer", "ahv-nr", "numéro avs", "sozialversicherungsnummer", "ahvn13",
               "versichertennummer"),
}


def build(entity: str) -> Any:
    """A Presidio ``PatternRecognizer`` for one of :data:`PATTERNS` with its check digits."""
    import regex

    from airflow_aisec.core.gates.pii._presidio import pattern_recognizers

    pattern_recognizers()  # `presidio_analyzer` without its NLP engines
    from presidio_analyzer import Pattern, PatternRecognizer

    check = SCALAR[entity]

    class NationalIdRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return check(pattern_text)

    return NationalIdRecognizer(
        supported_entity=entity,
        name=f"{entity.title().replace('_', '')}Recognizer",
        patterns=[Pattern(name, rx, score) for name, rx, score in PATTERNS[entity]],
        context=list(CONTEXT[entity]),
        supported_language="en",
        global_regex_flags=regex.DOTALL | regex.MULTILINE | regex.IGNORECASE,
    )


def whole_cell_shapes() -> dict[str, tuple[tuple[str, bool], ...]]:
    """Per entity, RE2 expressions of a cell holding exactly one value of a pattern, and whether the
    pattern is weak (needs the column name as context): the cells :mod:`._detect` decides in bulk."""
    return {e: tuple((rf"(?i)^(?:{rx})$", score < 0.3) for _name, rx, score in pats) for e, pats in PATTERNS.items()}
