"""The ``pii`` policy section: which entity types a dataset of each classification may carry.

Schema only (the engine is :mod:`airflow_aisec.core.gates.pii`). The entity names live here
because the schema validates against them; the engine imports them from this module.

Example policy section::

    pii:
      default_classification: public
      levels:
        public: {forbidden: ["*"]}
        internal: {allowed: [EMAIL_ADDRESS, PHONE_NUMBER, URL, IP_ADDRESS]}
        restricted: {allowed: ["*"]}
      min_share: 0.0
      scan: {mode: sample, sample_size: 100000, seed: 7}
      redaction: {method: hash, key: {vault_path: aisec/pii-hmac}}
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, field_validator, model_validator

from airflow_aisec.core.policy.base import GateSection, StrictModel
from airflow_aisec.exceptions import ConfigurationError

#: Entity types the gate detects with patterns (no NLP model needed).
PATTERN_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "US_SSN",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_PASSPORT",
    "US_BANK_NUMBER",
    "URL",
)
#: The nine entities the gate started with: what ``pii.entities`` selected before country groups existed.
BASE_ENTITIES: tuple[str, ...] = PATTERN_ENTITIES
#: Pattern entities per country group (``pii.countries``): Presidio 2.2's predefined pattern
#: recognizers by country, plus the European identifiers Presidio lacks (FR, NL, BE, AT, CH).
#: GENERIC holds the entities of no particular country.
COUNTRY_ENTITIES: dict[str, tuple[str, ...]] = {
    "GENERIC": ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "URL", "CRYPTO",
                "DATE_TIME", "MAC_ADDRESS", "UUID"),
    "US": ("US_SSN", "US_PASSPORT", "US_BANK_NUMBER", "ABA_ROUTING_NUMBER", "MEDICAL_LICENSE", "US_CLAIM_NUMBER",
           "US_HEALTH_INSURANCE_MEMBER_ID", "US_ITIN", "US_DRIVER_LICENSE", "US_MBI", "US_NPI",
           "US_PRESCRIPTION_NUMBER", "US_PRIOR_AUTHORIZATION_NUMBER", "US_PROVIDER_TAX_ID", "US_REFERRAL_NUMBER"),
    "UK": ("UK_NHS", "UK_NINO", "UK_PASSPORT", "UK_DRIVING_LICENCE", "UK_POSTCODE", "UK_VEHICLE_REGISTRATION"),
    "DE": ("DE_TAX_ID", "DE_TAX_NUMBER", "DE_ID_CARD", "DE_PASSPORT", "DE_SOCIAL_SECURITY", "DE_HEALTH_INSURANCE",
           "DE_VAT_ID", "DE_FUEHRERSCHEIN", "DE_PLZ", "DE_BSNR", "DE_LANR", "DE_HANDELSREGISTER", "DE_KFZ"),
    "ES": ("ES_NIF", "ES_NIE", "ES_PASSPORT"),
    "IT": ("IT_FISCAL_CODE", "IT_VAT_CODE", "IT_PASSPORT", "IT_IDENTITY_CARD", "IT_DRIVER_LICENSE"),
    "FR": ("FR_NIR", "FR_SIREN", "FR_SIRET"),
    "NL": ("NL_BSN",),
    "BE": ("BE_NATIONAL_NUMBER",),
    "AT": ("AT_SOCIAL_SECURITY",),
    "CH": ("CH_AHV",),
    "PL": ("PL_PESEL",),
    "FI": ("FI_PERSONAL_IDENTITY_CODE",),
    "SE": ("SE_PERSONNUMMER", "SE_ORGANISATIONSNUMMER"),
    "SG": ("SG_NRIC_FIN", "SG_UEN"),
    "AU": ("AU_ABN", "AU_ACN", "AU_TFN", "AU_MEDICARE"),
    "IN": ("IN_AADHAAR", "IN_PAN", "IN_PASSPORT", "IN_VOTER", "IN_GSTIN", "IN_VEHICLE_REGISTRATION"),
    "KR": ("KR_RRN", "KR_FRN", "KR_BRN", "KR_PASSPORT", "KR_DRIVER_LICENSE"),
    "PH": ("PH_TIN", "PH_UMID", "PH_PASSPORT"),
    "TH": ("TH_TNIN",),
    "TR": ("TR_NATIONAL_ID", "TR_LICENSE_PLATE"),
    "NG": ("NG_NIN", "NG_VEHICLE_REGISTRATION"),
    "ZA": ("ZA_ID_NUMBER", "ZA_PASSPORT", "ZA_DRIVER_LICENSE", "ZA_INCOME_TAX_NUMBER", "ZA_VAT_NUMBER",
           "ZA_COMPANY_REGISTRATION", "ZA_TRAFFIC_REGISTER_NUMBER", "ZA_LICENSE_PLATE"),
    "CA": ("CA_SIN", "CA_POSTAL_CODE"),
}
#: Every pattern entity (``PATTERN_ENTITIES`` keeps naming the first nine, for code written against them).
ALL_PATTERN_ENTITIES: tuple[str, ...] = BASE_ENTITIES + tuple(
    e for group in COUNTRY_ENTITIES.values() for e in group if e not in BASE_ENTITIES)
#: Country group of each pattern entity.
ENTITY_COUNTRY: dict[str, str] = {e: c for c, group in COUNTRY_ENTITIES.items() for e in group}
#: Detected when the policy selects neither ``entities`` nor ``countries``: the nine base entities plus
#: the personal national identifiers whose shape is distinctive (letters in fixed places, a country
#: prefix, separators) and that carry a check character: they cost nothing on data without them and
#: are rarely matched by chance. National ids written as bare digit runs that phone numbers,
#: invoice numbers and amounts also match (DE tax id, PESEL, NHS, KR / TH / TR ids, Aadhaar...)
#: plus postcodes, dates, licence plates, company and tax-office numbers are opt-in
#: (``pii.entities`` or ``pii.countries``): on the benchmark's US data they made the scan six
#: times slower and read one US phone number in fifteen as an NHS number.
DEFAULT_ENTITIES: tuple[str, ...] = BASE_ENTITIES + (
    "FR_NIR", "NL_BSN", "BE_NATIONAL_NUMBER", "AT_SOCIAL_SECURITY", "CH_AHV", "ES_NIF", "ES_NIE", "IT_FISCAL_CODE",
    "UK_NINO", "FI_PERSONAL_IDENTITY_CODE", "SE_PERSONNUMMER", "SG_NRIC_FIN", "DE_SOCIAL_SECURITY",
    "DE_HEALTH_INSURANCE", "US_MBI",
)
#: Generic entities a ``pii.countries`` selection always includes (list GENERIC for the rest).
COUNTRY_BASE_ENTITIES: tuple[str, ...] = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS",
                                          "URL")
#: Entity types that need a user-configured NLP model.
NLP_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION")
ALL_ENTITIES: tuple[str, ...] = ALL_PATTERN_ENTITIES + NLP_ENTITIES
WILDCARD = "*"


class Classification(str, enum.Enum):
    """Declared sensitivity of a dataset, from least to most sensitive."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


def _check_entity_names(values: Sequence[str], *, wildcard: bool) -> list[str]:
    out = []
    for v in values:
        name = str(v).strip().upper() if v != WILDCARD else v
        if name == WILDCARD and wildcard:
            out.append(name)
            continue
        if name not in ALL_ENTITIES:
            import difflib  # only for the error message (start-up)

            close = difflib.get_close_matches(name, ALL_ENTITIES, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "see COUNTRY_ENTITIES for the names"
            raise ValueError(f"unknown entity type '{v}'; {hint}")
        out.append(name)
    if len(set(out)) != len(out):
        raise ValueError("entity types listed twice")
    return out


class LevelRule(StrictModel):
    """Which entity types a dataset of one classification may carry.

    An entity named in ``forbidden`` is never allowed; one named in ``allowed`` is
    allowed; otherwise ``"*"`` in ``forbidden`` or ``allowed`` decides; an entity
    mentioned nowhere is not allowed (fail closed).
    """

    allowed: list[str] = Field(default_factory=list)
    forbidden: list[str] = Field(default_factory=list)

    @field_validator("allowed", "forbidden")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        return _check_entity_names(v, wildcard=True)

    @model_validator(mode="after")
    def _disjoint(self) -> LevelRule:
        both = (set(self.allowed) & set(self.forbidden)) - {WILDCARD}
        if both:
            raise ValueError(f"entity types both allowed and forbidden: {sorted(both)}")
        return self

    def allows(self, entity: str) -> bool:
        if entity in self.forbidden:
            return False
        if entity in self.allowed:
            return True
        if WILDCARD in self.forbidden:
            return False
        return WILDCARD in self.allowed


def _name_entities(values: Sequence[str], what: str) -> list[str]:
    """Entity names limited to PERSON / LOCATION: what the NER model and the offline text scan find."""
    names = _check_entity_names(values, wildcard=False)
    bad = [n for n in names if n not in NLP_ENTITIES]
    if bad:
        raise ValueError(f"not {what} entity: {bad}; allowed: {list(NLP_ENTITIES)}")
    return names


class ScanSettings(StrictModel):
    """Full scan, or a seeded random sample of rows (the result records which)."""

    mode: Literal["full", "sample"] = "full"
    sample_size: int = Field(100_000, ge=1)
    seed: int = 0
    batch_rows: int = Field(65_536, ge=1, le=4_000_000)


class NlpSettings(StrictModel):
    """Optional NER model for PERSON / LOCATION (off by default: no model is installable from PyPI here).

    Attributes:
        enabled: Run the model.
        engine: Presidio NLP engine (``spacy``).
        model: Installed spaCy package name or a model directory. Never downloaded.
        entities: Which NER entities to report.
        min_score: Presidio score below which a name is ignored.
    """

    enabled: bool = False
    engine: Literal["spacy"] = "spacy"
    model: str | None = None
    entities: list[str] = Field(default_factory=lambda: list(NLP_ENTITIES))
    min_score: float = Field(0.5, ge=0.0, le=1.0)

    @field_validator("entities")
    @classmethod
    def _nlp_entities(cls, v: list[str]) -> list[str]:
        return _name_entities(v, "an NLP")

    @model_validator(mode="after")
    def _model_required(self) -> NlpSettings:
        if self.enabled and not self.model:
            raise ValueError("nlp.enabled needs nlp.model (an installed spaCy model name or directory)")
        return self


class TextEntitySettings(StrictModel):
    """PERSON / LOCATION offline: Faker's given-name and surname gazetteers, street / postcode patterns.

    Attributes:
        enabled: Look for names and postal addresses in text columns.
        entities: Which of PERSON / LOCATION.
        locales: Faker locales whose person providers make the name gazetteers.
        min_share: Share of scanned rows from which a column counts as carrying PERSON / LOCATION
            (one capitalised word does not make a column personal data).
    """

    enabled: bool = True
    entities: list[str] = Field(default_factory=lambda: list(NLP_ENTITIES))
    locales: list[str] = Field(default_factory=lambda: ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT",
                                                        "nl_NL"])
    min_share: float = Field(0.05, ge=0.0, le=1.0)

    @field_validator("entities")
    @classmethod
    def _text_entities(cls, v: list[str]) -> list[str]:
        return _name_entities(v, "a text")

    @field_validator("locales")
    @classmethod
    def _locales(cls, v: list[str]) -> list[str]:
        bad = [loc for loc in v if not (len(loc) == 5 and loc[2] == "_" and loc[:2].isalpha() and loc[3:].isalpha())]
        if bad:
            raise ValueError(f"not a locale like de_DE: {bad}")
        return v


class HashKeySettings(StrictModel):
    """Where the HMAC key for ``hash`` redaction comes from: Vault KV (preferred) or an environment variable.

    Attributes:
        vault_path: Secret path in the KV mount (operators read it through ``VaultHook``).
        vault_field: Field of the secret holding the key.
        vault_mount: KV mount point.
        kv_version: KV engine version.
        env: Environment variable holding the key (for runs without Vault).
    """

    vault_path: str | None = None
    vault_field: str = "key"
    vault_mount: str = "secret"
    kv_version: Literal[1, 2] = 2
    env: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> HashKeySettings:
        if bool(self.vault_path) == bool(self.env):
            raise ValueError("give exactly one of key.vault_path or key.env")
        return self


class RedactionSettings(StrictModel):
    """How the redaction operator rewrites PII cells.

    Attributes:
        method: ``mask`` (replace each match with ``mask_token``), ``drop`` (cell becomes null) or
            ``hash`` (replace each match by a keyed HMAC-SHA256 token: same value, same token, so joins work).
        mask_token: Replacement for ``mask``; ``{entity}`` is the entity type.
        hash_length: Hex characters of the HMAC kept in a token (64 = all of it).
        key: HMAC key source (required for ``hash``).
        classification: Level the output must pass; defaults to the policy's ``default_classification``.
    """

    method: Literal["mask", "drop", "hash"] = "mask"
    mask_token: str = Field("<{entity}>", min_length=1, max_length=200)
    hash_length: int = Field(32, ge=16, le=64)
    key: HashKeySettings | None = None
    classification: Classification | None = None

    @field_validator("mask_token")
    @classmethod
    def _token_format(cls, v: str) -> str:
        try:
            v.format(entity="X")
        except (KeyError, IndexError, ValueError):
            raise ValueError("mask_token may only use the {entity} placeholder") from None
        return v

    @model_validator(mode="after")
    def _key_for_hash(self) -> RedactionSettings:
        if self.method == "hash" and self.key is None:
            raise ValueError("redaction.method 'hash' needs redaction.key (vault_path or env)")
        return self


class PiiPolicy(GateSection):
    """Policy section ``pii``.

    Attributes:
        default_classification: Level of a dataset that does not declare one (``public``).
        levels: Per classification, the allowed / forbidden entity types. A level not
            listed allows nothing.
        entities: Entity types to detect (pattern entities; PERSON / LOCATION come from ``nlp``);
            ``"*"`` = every pattern entity. Neither ``entities`` nor ``countries`` given:
            :data:`DEFAULT_ENTITIES`. After validation this is the effective selection.
        countries: Country groups (:data:`COUNTRY_ENTITIES`: US, UK, DE, FR, ..., GENERIC) whose
            entities are detected, with the generic :data:`COUNTRY_BASE_ENTITIES`; added to ``entities``
            when both are given.
        min_share: Share of scanned rows from which a column counts as carrying an entity.
        min_count: Cells from which a column counts as carrying an entity.
        scan: Full scan or seeded sample.
        columns: Scan only these columns (each must exist in the data).
        exclude_columns: Do not scan these columns (each must exist in the data).
        column_hints: Extra column-name globs per entity that give weak patterns context
            (e.g. ``US_PASSPORT: ["pp_num*"]``).
        chance_correction: Treat checksum matches at chance rate (random references) as coincidences.
        phone_regions: Regions (ISO 3166 alpha-2) whose national phone formats are recognised;
            numbers written with ``+`` / ``00`` are recognised for every country.
        nlp: Optional NER model for PERSON / LOCATION.
        text: PERSON / LOCATION offline (gazetteers and address patterns), merged with ``nlp``.
        redaction: Settings of the redaction operator.
    """

    default_classification: Classification = Classification.PUBLIC
    levels: dict[Classification, LevelRule] = Field(default_factory=dict)
    entities: list[str] = Field(default_factory=lambda: list(DEFAULT_ENTITIES))
    countries: list[str] | None = None
    min_share: float = Field(0.0, ge=0.0, le=1.0)
    min_count: int = Field(1, ge=1)
    scan: ScanSettings = ScanSettings()
    columns: list[str] | None = None
    exclude_columns: list[str] = Field(default_factory=list)
    column_hints: dict[str, list[str]] = Field(default_factory=dict)
    chance_correction: bool = True
    phone_regions: list[str] = Field(default_factory=lambda: ["US", "GB", "DE", "FR", "ES", "IT", "NL"])
    nlp: NlpSettings = NlpSettings()
    text: TextEntitySettings = TextEntitySettings()
    redaction: RedactionSettings = RedactionSettings()

    @model_validator(mode="before")
    @classmethod
    def _select_entities(cls, data: object) -> object:
        """``entities`` + ``countries`` -> the effective entity list (validated by the field validators)."""
        if not isinstance(data, dict) or (data.get("countries") is None and data.get("entities") is None):
            return data
        countries = data.get("countries")
        entities = data.get("entities")
        if entities is not None and not isinstance(entities, list):
            return data  # the field validator reports the type error
        picked = list(entities or [])
        if WILDCARD in picked:
            picked = [e for e in picked if e != WILDCARD] + list(ALL_PATTERN_ENTITIES)
        if countries is not None:
            if not isinstance(countries, list) or not all(isinstance(c, str) for c in countries):
                raise ValueError("countries must be a list of country group names")
            groups = [str(c).strip().upper() for c in countries]
            unknown = [c for c, g in zip(countries, groups) if g not in COUNTRY_ENTITIES]
            if unknown:
                raise ValueError(f"unknown country group {unknown}; known: {', '.join(COUNTRY_ENTITIES)}")
            picked += list(COUNTRY_BASE_ENTITIES) + [e for g in groups for e in COUNTRY_ENTITIES[g]]
        seen: set[str] = set()
        out = []
        for e in picked:
            key = str(e).strip().upper() if isinstance(e, str) else e
            if key not in seen:
                seen.add(key)
                out.append(e)
        return {**data, "entities": out}

    @field_validator("countries")
    @classmethod
    def _country_names(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [c.strip().upper() for c in v]

    @field_validator("entities")
    @classmethod
    def _pattern_entities(cls, v: list[str]) -> list[str]:
        names = _check_entity_names(v, wildcard=False)
        bad = [n for n in names if n not in ALL_PATTERN_ENTITIES]
        if bad:
            raise ValueError(f"{bad} need an NLP model: configure them under pii.nlp.entities")
        if not names:
            raise ValueError("at least one entity type must be detected")
        return names

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        out = ["GB" if r.strip().upper() == "UK" else r.strip().upper() for r in v]
        bad = [r for r in out if len(r) != 2 or not r.isalpha() or not r.isascii()]
        if bad:
            raise ValueError(f"not an ISO 3166 alpha-2 region: {bad}")
        return list(dict.fromkeys(out))

    @field_validator("column_hints")
    @classmethod
    def _hint_entities(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        _check_entity_names(list(v), wildcard=False)
        return {k.upper(): [g.lower() for g in globs] for k, globs in v.items()}

    def level_rule(self, classification: Classification) -> LevelRule:
        return self.levels.get(classification) or LevelRule()

    def resolve_classification(self, declared: str | Classification | None) -> Classification:
        """The dataset's level: the declared one, else the policy default.

        Raises:
            ConfigurationError: an unknown level name.
        """
        if declared is None or (isinstance(declared, str) and not declared.strip()):
            return self.default_classification
        try:
            return Classification(str(getattr(declared, "value", declared)).strip().lower())
        except ValueError:
            names = ", ".join(c.value for c in Classification)
            raise ConfigurationError(f"unknown classification '{declared}'; expected one of: {names}") from None


__all__ = [
    "ALL_ENTITIES",
    "ALL_PATTERN_ENTITIES",
    "BASE_ENTITIES",
    "COUNTRY_ENTITIES",
    "DEFAULT_ENTITIES",
    "NLP_ENTITIES",
    "PATTERN_ENTITIES",
    "Classification",
    "HashKeySettings",
    "LevelRule",
    "NlpSettings",
    "PiiPolicy",
    "RedactionSettings",
    "ScanSettings",
    "TextEntitySettings",
]
