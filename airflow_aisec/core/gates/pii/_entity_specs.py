"""The pattern entities beyond the gate's first nine: which recognizer, RE2 candidates, context.

Presidio 2.2's predefined pattern recognizers are the source of their regexes, scores, context
words and validators (read from the recognizer classes when a detector is built); the European
identifiers Presidio lacks come from :mod:`._national`. For the vectorized pre-filter each
Presidio regex is turned into an RE2 expression that is never stricter
(:func:`re2_candidate`): look-arounds are dropped (a positive look-behind is matched as text, which
at cell level is the same), back-references become a short wildcard.

Context (Presidio's context words, minus words too generic to mean anything) is used as in the
rest of the gate: a pattern scoring below ``STRONG_SCORE`` counts only with a context word before
it or a column name built from one (``steuer_id``, ``codice_fiscale``, ``bsn``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: Presidio recognizer class per entity handled here (``presidio_analyzer.predefined_recognizers``).
PRESIDIO_CLASSES: dict[str, str] = {
    "ABA_ROUTING_NUMBER": "AbaRoutingRecognizer", "AU_ABN": "AuAbnRecognizer", "AU_ACN": "AuAcnRecognizer",
    "AU_MEDICARE": "AuMedicareRecognizer", "AU_TFN": "AuTfnRecognizer", "CA_POSTAL_CODE": "CaPostalCodeRecognizer",
    "CA_SIN": "CaSinRecognizer", "CRYPTO": "CryptoRecognizer", "DATE_TIME": "DateRecognizer",
    "DE_BSNR": "DeBsnrRecognizer", "DE_FUEHRERSCHEIN": "DeFuehrerscheinRecognizer",
    "DE_HANDELSREGISTER": "DeHandelsregisterRecognizer", "DE_HEALTH_INSURANCE": "DeHealthInsuranceRecognizer",
    "DE_ID_CARD": "DeIdCardRecognizer", "DE_KFZ": "DeKfzRecognizer", "DE_LANR": "DeLanrRecognizer",
    "DE_PASSPORT": "DePassportRecognizer", "DE_PLZ": "DePlzRecognizer",
    "DE_SOCIAL_SECURITY": "DeSocialSecurityRecognizer", "DE_TAX_ID": "DeTaxIdRecognizer",
    "DE_TAX_NUMBER": "DeTaxNumberRecognizer", "DE_VAT_ID": "DeVatIdRecognizer", "ES_NIE": "EsNieRecognizer",
    "ES_NIF": "EsNifRecognizer", "ES_PASSPORT": "EsPassportRecognizer",
    "FI_PERSONAL_IDENTITY_CODE": "FiPersonalIdentityCodeRecognizer", "IN_AADHAAR": "InAadhaarRecognizer",
    "IN_GSTIN": "InGstinRecognizer", "IN_PAN": "InPanRecognizer", "IN_PASSPORT": "InPassportRecognizer",
    "IN_VEHICLE_REGISTRATION": "InVehicleRegistrationRecognizer", "IN_VOTER": "InVoterRecognizer",
    "IT_DRIVER_LICENSE": "ItDriverLicenseRecognizer", "IT_FISCAL_CODE": "ItFiscalCodeRecognizer",
    "IT_IDENTITY_CARD": "ItIdentityCardRecognizer", "IT_PASSPORT": "ItPassportRecognizer",
    "IT_VAT_CODE": "ItVatCodeRecognizer", "KR_BRN": "KrBrnRecognizer", "KR_DRIVER_LICENSE": "KrDriverLicenseRecognizer",
    "KR_FRN": "KrFrnRecognizer", "KR_PASSPORT": "KrPassportRecognizer", "KR_RRN": "KrRrnRecognizer",
    "MAC_ADDRESS": "MacAddressRecognizer", "MEDICAL_LICENSE": "MedicalLicenseRecognizer", "NG_NIN": "NgNinRecognizer",
    "NG_VEHICLE_REGISTRATION": "NgVehicleRegistrationRecognizer", "UK_NHS": "NhsRecognizer",
    "PH_PASSPORT": "PhPassportRecognizer", "PH_TIN": "PhTinRecognizer", "PH_UMID": "PhUmidRecognizer",
    "PL_PESEL": "PlPeselRecognizer", "SE_ORGANISATIONSNUMMER": "SeOrganisationsnummerRecognizer",
    "SE_PERSONNUMMER": "SePersonnummerRecognizer", "SG_NRIC_FIN": "SgFinRecognizer", "SG_UEN": "SgUenRecognizer",
    "TH_TNIN": "ThTninRecognizer", "TR_LICENSE_PLATE": "TrLicensePlateRecognizer",
    "TR_NATIONAL_ID": "TrNationalIdRecognizer", "UK_DRIVING_LICENCE": "UkDrivingLicenceRecognizer",
    "UK_NINO": "UkNinoRecognizer", "UK_PASSPORT": "UkPassportRecognizer", "UK_POSTCODE": "UkPostcodeRecognizer",
    "UK_VEHICLE_REGISTRATION": "UkVehicleRegistrationRecognizer", "US_CLAIM_NUMBER": "UsClaimNumberRecognizer",
    "US_HEALTH_INSURANCE_MEMBER_ID": "UsHealthInsuranceMemberIdRecognizer", "US_ITIN": "UsItinRecognizer",
    "US_DRIVER_LICENSE": "UsLicenseRecognizer", "US_MBI": "UsMbiRecognizer", "US_NPI": "UsNpiRecognizer",
    "US_PRESCRIPTION_NUMBER": "UsPrescriptionNumberRecognizer",
    "US_PRIOR_AUTHORIZATION_NUMBER": "UsPriorAuthorizationNumberRecognizer",
    "US_PROVIDER_TAX_ID": "UsProviderTaxIdRecognizer", "US_REFERRAL_NUMBER": "UsReferralNumberRecognizer",
    "UUID": "UuidRecognizer", "ZA_COMPANY_REGISTRATION": "ZaCompanyRegistrationRecognizer",
    "ZA_DRIVER_LICENSE": "ZaDriverLicenseRecognizer", "ZA_ID_NUMBER": "ZaIdNumberRecognizer",
    "ZA_INCOME_TAX_NUMBER": "ZaIncomeTaxNumberRecognizer", "ZA_LICENSE_PLATE": "ZaLicensePlateRecognizer",
    "ZA_PASSPORT": "ZaPassportRecognizer", "ZA_TRAFFIC_REGISTER_NUMBER": "ZaTrafficRegisterNumberRecognizer",
    "ZA_VAT_NUMBER": "ZaVatNumberRecognizer",
}

#: Chance that a random value of a checksum entity's shape passes Presidio's validator (mod 10 / mod 11
#: checks, rounded up): the chance correction dismisses columns of random references at this rate.
CHECKSUM_CHANCE: dict[str, float] = {
    "ABA_ROUTING_NUMBER": 0.1, "AU_ABN": 0.02, "AU_ACN": 0.1, "AU_MEDICARE": 0.1, "AU_TFN": 0.1,
    "DE_TAX_ID": 0.1, "DE_SOCIAL_SECURITY": 0.1, "DE_ID_CARD": 0.1, "DE_PASSPORT": 0.1, "DE_HEALTH_INSURANCE": 0.1,
    "DE_VAT_ID": 0.1, "DE_BSNR": 0.1, "DE_LANR": 0.1, "ES_NIF": 0.05, "ES_NIE": 0.05, "FI_PERSONAL_IDENTITY_CODE": 0.05,
    "IN_AADHAAR": 0.1, "IT_FISCAL_CODE": 0.04, "IT_VAT_CODE": 0.1, "KR_BRN": 0.1, "KR_RRN": 0.1, "KR_FRN": 0.1,
    "NG_NIN": 0.1, "UK_NHS": 0.1, "PL_PESEL": 0.1, "SE_PERSONNUMMER": 0.1, "SE_ORGANISATIONSNUMMER": 0.1,
    "SG_UEN": 0.1, "TH_TNIN": 0.1, "TR_NATIONAL_ID": 0.1, "US_NPI": 0.1, "ZA_ID_NUMBER": 0.1,
    "ZA_INCOME_TAX_NUMBER": 0.1, "ZA_VAT_NUMBER": 0.1, "ZA_TRAFFIC_REGISTER_NUMBER": 0.1,
}

# Presidio context words that appear in any text (or any column name) and so support nothing.
GENERIC_CONTEXT = frozenset({
    "id", "identity", "identification", "number", "no", "nr", "card", "carta", "documento", "document", "pass", "code",
    "registration", "reg", "vehicle", "plate", "car", "auto", "fahrzeug", "pkw", "lkw", "ort", "stadt", "dorf",
    "gemeinde", "adresse", "address", "delivery", "shipping", "mailing", "correspondence", "zip", "date",
    "member", "policy", "insurance", "individual", "payer", "tax", "provider", "medical", "certificate",
    "billing", "claim", "approval", "auth", "authorization", "specialty", "pharmacy", "medication", "canada",
    "ontario", "quebec", "alberta", "british columbia", "firma", "gesellschaft", "gmbh", "ag", "ug", "kg", "ohg",
    "invoice", "rechnung", "rente", "praxis", "rezept", "hausarzt", "facharzt", "elettronico", "italiano",
    "viaggio", "viaggiare", "estero", "dogana", "elettronica", "riconoscimento", "espatrio", "identità", "licenza",
    "permit", "driving", "driver", "license", "licence", "kayıt", "mot", "logbook", "transaction", "bank",
    "account", "check", "save", "debit", "security", "social", "united", "states", "us", "travel", "wallet",
    "ethernet", "taxonomy", "beneficiary", "referring", "infusion", "straße", "strasse", "hausnummer", "bundesland",
    "postfach", "wohnort", "zulassung", "association", "status", "travel document", "identificación", "cms",
    "national id", "elector photo identity card", "kba", "fev", "feld 5", "verschreibung",
})

_PY_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))


def build_recognizer(entity: str) -> Any:
    """Presidio's recognizer instance for an entity of :data:`PRESIDIO_CLASSES`, or ours from :mod:`._national`."""
    if entity in PRESIDIO_CLASSES:
        from airflow_aisec.core.gates.pii._presidio import pattern_recognizers

        return getattr(pattern_recognizers(), PRESIDIO_CLASSES[entity])()
    from airflow_aisec.core.gates.pii import _national

    if entity in _national.PATTERNS:
        return _national.build(entity)
    raise ValueError(f"no recognizer for pattern entity {entity}")


def _closing(rx: str, i: int) -> int:
    """Index of the ``)`` closing the group opened at ``rx[i]``."""
    depth = 0
    j = i
    while j < len(rx):
        c = rx[j]
        if c == "\\":
            j += 2
            continue
        if c == "[":
            j = _class_end(rx, j)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise ValueError("unbalanced group")


def _class_end(rx: str, i: int) -> int:
    """Index just after the character class opened at ``rx[i]``."""
    j = i + 1
    if j < len(rx) and rx[j] == "^":
        j += 1
    if j < len(rx) and rx[j] == "]":
        j += 1
    while j < len(rx) and rx[j] != "]":
        j += 2 if rx[j] == "\\" else 1
    return j + 1


def re2_translate(rx: str) -> str:
    """A Python ``regex`` expression as an RE2 expression matching at least the same cells.

    Negative look-arounds and look-aheads are dropped (fewer constraints); a positive look-behind
    ``(?<=X)Y`` becomes ``(?:X)Y`` (a cell holds one exactly when it holds the other); a
    back-reference becomes ``.{0,8}``; ``\\Z`` becomes ``$``.
    """
    out: list[str] = []
    i = 0
    while i < len(rx):
        c = rx[i]
        if c == "\\" and i + 1 < len(rx):
            nxt = rx[i + 1]
            if nxt.isdigit() and nxt != "0":
                out.append(".{0,8}")
            elif nxt == "Z":
                out.append("$")
            else:
                out.append(rx[i:i + 2])
            i += 2
        elif c == "[":
            j = _class_end(rx, i)
            out.append(rx[i:j])
            i = j
        elif rx.startswith("(?<=", i):
            j = _closing(rx, i)
            out.append("(?:" + re2_translate(rx[i + 4:j]) + ")")
            i = j + 1
        elif rx.startswith(("(?=", "(?!", "(?<!"), i):
            i = _closing(rx, i) + 1
            if i < len(rx) and rx[i] in "?*":
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _flag_prefix(flags: int) -> str:
    letters = "".join(ch for bit, ch in _PY_FLAGS if flags & bit)
    return f"(?{letters})" if letters else ""


def context_terms(recognizer: Any, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The recognizer's context words (lower-case), minus :data:`GENERIC_CONTEXT`."""
    words = {str(w).strip().strip("#").lower() for w in list(recognizer.context or []) + list(extra)}
    return tuple(sorted(w for w in words if w and w not in GENERIC_CONTEXT and len(w) >= 2))


def _re2_escape(term: str) -> str:
    return "".join(("\\" + ch) if not ch.isalnum() and ch != " " else ("\\s+" if ch == " " else ch) for ch in term)


class EntitySpec:
    """One entity's RE2 candidates, context expression and column-name hint, built from its recognizer."""

    def __init__(self, entity: str, recognizer: Any, strong_score: float) -> None:
        self.entity = entity
        flags = getattr(recognizer, "global_regex_flags", None) or 0
        prefix = _flag_prefix(flags)
        strong, weak = [], []
        for p in getattr(recognizer, "patterns", []):
            (strong if p.score >= strong_score else weak).append(prefix + re2_translate(p.regex))
        self.strong = "|".join(f"(?:{s})" for s in strong)
        self.weak = "|".join(f"(?:{w})" for w in weak)
        self.terms = context_terms(recognizer)
        words = "|".join(_re2_escape(t) for t in self.terms)
        # RE2 for "a context word somewhere before a weak match" (looser than the Python check below).
        self.weak_with_context = f"(?is:(?:{words}).{{0,120}})(?:{self.weak})" if words and weak else ""
        names = [re.sub(r"[^0-9a-z]+", "_", t).strip("_") for t in self.terms]
        own = entity.lower().split("_", 1)[1] if "_" in entity else entity.lower()
        names = sorted({n for n in names + [own, entity.lower()] if len(n) >= 3})
        self.column_hint = re.compile(
            r"^(?:.*_)?(?:" + "|".join(re.escape(n) for n in names) + r")(?:_.*)?$") if names else None

    @functools.cached_property
    def context(self) -> re.Pattern[str] | None:
        """A context word, as a whole word (compiled when a weak match first needs it: start-up)."""
        py_words = "|".join(re.escape(t).replace(r"\ ", r"[\s_-]+") for t in self.terms)
        return re.compile(rf"(?<!\w)(?:{py_words})(?!\w)", re.IGNORECASE) if py_words else None

    def candidate(self, hinted: bool) -> str:
        parts = [p for p in (self.strong, self.weak if hinted else self.weak_with_context) if p]
        return "|".join(f"(?:{p})" for p in parts)

    def has_context(self, text: str, start: int, window: int) -> bool:
        return self.context is not None and self.context.search(text, max(0, start - window), start) is not None


def build_specs(recognizers: Mapping[str, Any], strong_score: float) -> dict[str, EntitySpec]:
    """:class:`EntitySpec` per entity handled here (the recognizers' entities outside the first nine)."""
    return {e: EntitySpec(e, r, strong_score) for e, r in recognizers.items()}
