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
#: Entity types that need a user-configured NLP model.
NLP_ENTITIES: tuple[str, ...] = ("PERSON", "LOCATION")
ALL_ENTITIES: tuple[str, ...] = PATTERN_ENTITIES + NLP_ENTITIES
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
            raise ValueError(f"unknown entity type '{v}'; known: {', '.join(ALL_ENTITIES)}")
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
        names = _check_entity_names(v, wildcard=False)
        bad = [n for n in names if n not in NLP_ENTITIES]
        if bad:
            raise ValueError(f"not an NLP entity: {bad}; NLP entities: {list(NLP_ENTITIES)}")
        return names

    @model_validator(mode="after")
    def _model_required(self) -> NlpSettings:
        if self.enabled and not self.model:
            raise ValueError("nlp.enabled needs nlp.model (an installed spaCy model name or directory)")
        return self


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
        entities: Entity types to detect (pattern entities; PERSON / LOCATION come from ``nlp``).
        min_share: Share of scanned rows from which a column counts as carrying an entity.
        min_count: Cells from which a column counts as carrying an entity.
        scan: Full scan or seeded sample.
        columns: Scan only these columns (each must exist in the data).
        exclude_columns: Do not scan these columns (each must exist in the data).
        column_hints: Extra column-name globs per entity that give weak patterns context
            (e.g. ``US_PASSPORT: ["pp_num*"]``).
        chance_correction: Treat checksum matches at chance rate (random references) as coincidences.
        nlp: Optional NER model for PERSON / LOCATION.
        redaction: Settings of the redaction operator.
    """

    default_classification: Classification = Classification.PUBLIC
    levels: dict[Classification, LevelRule] = Field(default_factory=dict)
    entities: list[str] = Field(default_factory=lambda: list(PATTERN_ENTITIES))
    min_share: float = Field(0.0, ge=0.0, le=1.0)
    min_count: int = Field(1, ge=1)
    scan: ScanSettings = ScanSettings()
    columns: list[str] | None = None
    exclude_columns: list[str] = Field(default_factory=list)
    column_hints: dict[str, list[str]] = Field(default_factory=dict)
    chance_correction: bool = True
    nlp: NlpSettings = NlpSettings()
    redaction: RedactionSettings = RedactionSettings()

    @field_validator("entities")
    @classmethod
    def _pattern_entities(cls, v: list[str]) -> list[str]:
        names = _check_entity_names(v, wildcard=False)
        bad = [n for n in names if n not in PATTERN_ENTITIES]
        if bad:
            raise ValueError(f"{bad} need an NLP model: configure them under pii.nlp.entities")
        if not names:
            raise ValueError("at least one entity type must be detected")
        return names

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
    "NLP_ENTITIES",
    "PATTERN_ENTITIES",
    "Classification",
    "HashKeySettings",
    "LevelRule",
    "NlpSettings",
    "PiiPolicy",
    "RedactionSettings",
    "ScanSettings",
]
