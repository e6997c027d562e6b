"""PII classification gate: which columns of a table carry which personal data, against the policy.

For each column of a CSV or Parquet table (local or ``s3://``) the gate finds
the entity types it carries (e-mail, phone, SSN, card, IBAN, IP, passport, bank
account, URL; PERSON / LOCATION with a user-configured NLP model), how many
cells and which share of the scanned rows. The policy says, for the dataset's
declared classification (``public`` unless declared otherwise), which entity
types are allowed; a column carrying any other one is a finding
``pii.entity_not_allowed``. Findings name the column, entity, count, share and a
few row positions, never a value.

Detection is Presidio's patterns and validators behind a vectorized RE2
pre-filter (:mod:`airflow_aisec.core.pii_patterns`). Tables stream in batches,
so memory follows the batch size, not the file. A scan is full or a seeded
sample, and the result records which.

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
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from airflow_aisec.core.pii_patterns import ALL_ENTITIES, NLP_ENTITIES, PATTERN_ENTITIES
from airflow_aisec.core.policy.base import GateSection, Severity, StrictModel
from airflow_aisec.core.result import CheckOutcome, Finding, InputRef
from airflow_aisec.exceptions import ConfigurationError, InputDataError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.pii_patterns import CellResult, Detector
    from airflow_aisec.core.policy import LoadedPolicy

GATE = "pii"
RULE_NOT_ALLOWED = "pii.entity_not_allowed"
RULE_NAME = "pii.entity_in_column_name"
#: Row positions kept per (column, entity) finding.
MAX_ROW_POSITIONS = 5
WILDCARD = "*"

#: How bad it is to find an entity where it is not allowed.
ENTITY_SEVERITY: dict[str, Severity] = {
    "US_SSN": Severity.CRITICAL,
    "CREDIT_CARD": Severity.CRITICAL,
    "US_PASSPORT": Severity.CRITICAL,
    "US_BANK_NUMBER": Severity.CRITICAL,
    "IBAN_CODE": Severity.CRITICAL,
    "EMAIL_ADDRESS": Severity.HIGH,
    "PHONE_NUMBER": Severity.HIGH,
    "PERSON": Severity.HIGH,
    "LOCATION": Severity.MEDIUM,
    "IP_ADDRESS": Severity.MEDIUM,
    "URL": Severity.LOW,
}


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


# -------------------------------------------------------------------------------------------------
# Scanning
# -------------------------------------------------------------------------------------------------
@dataclass
class EntityStats:
    count: int = 0
    rows: list[int] = field(default_factory=list)

    def add(self, position: int) -> None:
        self.count += 1
        if len(self.rows) < MAX_ROW_POSITIONS:
            self.rows.append(position)


@dataclass
class ColumnStats:
    """Per-column counts: cells per entity, and checksum candidates vs valid for chance correction."""

    entities: dict[str, EntityStats] = field(default_factory=dict)
    checksum_candidates: dict[str, int] = field(default_factory=dict)
    checksum_valid: dict[str, int] = field(default_factory=dict)
    coincidental: set[str] = field(default_factory=set)

    def carried(self) -> dict[str, EntityStats]:
        """Entities detected, minus coincidental checksum matches."""
        return {e: s for e, s in self.entities.items() if e not in self.coincidental}


@dataclass
class ScanReport:
    """What a scan saw: value-free counts only."""

    uri: str
    fmt: str
    sha256: str | None
    mode: str
    rows_total: int
    rows_scanned: int
    sample_size: int | None
    seed: int | None
    columns: dict[str, ColumnStats]
    skipped: dict[str, str]
    entities: list[str]
    nlp: dict[str, Any]
    duration_s: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    names_with_pii: dict[str, list[str]] = field(default_factory=dict)

    def label(self, name: str) -> str:
        """How results refer to a column: its name, or ``#<index>`` when the name itself holds PII."""
        return self.labels.get(name, name)

    @property
    def cells_scanned(self) -> int:
        return self.rows_scanned * len(self.columns)

    def scan_metrics(self) -> dict[str, Any]:
        scan: dict[str, Any] = {"mode": self.mode, "rows_total": self.rows_total, "rows_scanned": self.rows_scanned}
        if self.mode == "sample":
            scan.update(sample_size=self.sample_size, seed=self.seed)
        return scan


@dataclass(frozen=True)
class ColumnPlan:
    """How to scan one column: RE2 candidate expression per entity, and weak entities its name hints."""

    name: str
    hinted: frozenset[str]
    regexes: dict[str, str]
    union: str


def _is_text(dtype: pa.DataType) -> bool:
    import pyarrow as pa

    T = pa.types
    return (T.is_string(dtype) or T.is_large_string(dtype) or getattr(T, "is_string_view", lambda _t: False)(dtype)
            or T.is_binary(dtype) or T.is_large_binary(dtype) or getattr(T, "is_binary_view", lambda _t: False)(dtype))


def _is_scannable(dtype: pa.DataType) -> bool:
    """Text (also plain binary, as Parquet writers store text), integers and decimals (ids, cards)."""
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        return _is_scannable(dtype.value_type)
    return _is_text(dtype) or pa.types.is_integer(dtype) or pa.types.is_decimal(dtype)


def _nested_text(dtype: pa.DataType) -> bool:
    """Whether a nested type (list, struct, map, union) holds text somewhere inside."""
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        return _nested_text(dtype.value_type) or _is_text(dtype.value_type)
    if not pa.types.is_nested(dtype):
        return False
    return any(_is_text(dtype.field(i).type) or _nested_text(dtype.field(i).type) for i in range(dtype.num_fields))


def as_strings(arr: pa.Array, column: str = "?") -> pa.Array:
    """The column as a UTF-8 string array (integers and decimals become their decimal text).

    Binary cells that are not valid UTF-8 are decoded with replacement characters, so the
    text they carry is still scanned.

    Raises:
        InputDataError: the column cannot be read as text.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    try:
        return pc.cast(arr, pa.string())
    except pa.ArrowInvalid:
        if not _is_text(arr.type):
            raise InputDataError(f"column '{column}' cannot be read as text (ArrowInvalid)") from None
        return pa.array([None if v is None else v.decode("utf-8", "replace") for v in arr.to_pylist()], pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise InputDataError(f"column '{column}' cannot be read as text ({type(exc).__name__})") from None


def build_plan(detector: Detector, names: Sequence[str]) -> list[ColumnPlan]:
    """One :class:`ColumnPlan` per column name."""
    plans = []
    for name in names:
        hinted = detector.hinted_entities(name)
        regexes = detector.candidate_regexes(hinted)
        plans.append(ColumnPlan(name=name, hinted=hinted, regexes=regexes, union=detector.union_regex(regexes)))
    return plans


class ChecksumTally(dict):
    """Per checksum entity: ``[cells whose Presidio pattern matched, cells where it validated]``."""

    def add(self, entity: str, candidates: int, valid: int) -> None:
        slot = self.setdefault(entity, [0, 0])
        slot[0] += int(candidates)
        slot[1] += int(valid)


#: Scores of whole-cell matches decided in bulk (what Presidio's patterns, validators and context give them).
_BULK_SCORES = {"EMAIL_ADDRESS": 1.0, "IBAN_CODE": 1.0, "CREDIT_CARD": 1.0, "US_BANK_NUMBER": 0.4,
                "US_PASSPORT": 0.4, "PHONE_NUMBER": 0.4}


@dataclass
class ColumnDetections:
    """Detections in one column of one batch.

    Attributes:
        bulk: Per entity, batch indices of cells that the entity fills entirely (decided in bulk).
        cells: Cells checked one by one (and NLP hits): batch index -> (text, result).
        strings: The column as text (for the bulk cells' text, fetched only when asked for).
    """

    bulk: dict[str, Any]
    cells: dict[int, tuple[str, CellResult]]
    strings: Any

    def hits(self) -> dict[str, Any]:
        """Per entity, sorted batch indices of the cells carrying it."""
        import numpy as np

        singles: dict[str, list[int]] = {}
        for i, (_text, cell) in self.cells.items():
            for entity in {m.entity for m in cell.matches}:
                singles.setdefault(entity, []).append(i)
        out = {}
        for entity in set(self.bulk) | set(singles):
            parts = [np.asarray(self.bulk.get(entity, ()), dtype=np.int64),
                     np.asarray(singles.get(entity, ()), dtype=np.int64)]
            merged = np.unique(np.concatenate(parts))
            if len(merged):
                out[entity] = merged
        return out

    def iter_cells(self) -> Iterator[tuple[int, str, CellResult]]:
        """``(batch index, text, result)`` for every cell with matches, in row order."""
        import pyarrow as pa

        from airflow_aisec.core.pii_patterns import CellResult, Match

        per_cell: dict[int, list[str]] = {}
        for entity, ix in self.bulk.items():
            for i in ix.tolist():
                per_cell.setdefault(i, []).append(entity)
        texts = {}
        if per_cell:
            wanted = sorted(per_cell)
            texts = dict(zip(wanted, self.strings.take(pa.array(wanted, pa.int64())).to_pylist()))
        for i in sorted(set(per_cell) | set(self.cells)):
            if i in self.cells:
                text, cell = self.cells[i]
                if i in per_cell:
                    cell = CellResult(matches=_merge(cell.matches, [Match(e, 0, len(text), _BULK_SCORES[e])
                                                                    for e in per_cell[i]]))
            else:
                text = texts[i]
                cell = CellResult(matches=[Match(e, 0, len(text), _BULK_SCORES[e]) for e in per_cell[i]])
            if cell.matches:
                yield i, text, cell


def detect_column(
    arr: pa.Array,
    plan: ColumnPlan,
    detector: Detector,
    nlp: NlpScanner | None = None,
    tally: ChecksumTally | None = None,
) -> ColumnDetections:
    """Find the entities in one column of one batch.

    RE2 selects candidate cells over the whole column. Whole-cell values whose Presidio
    verdict follows from their shape are decided in bulk (:func:`_decide_in_bulk`); only the
    rest reach Presidio's validators one by one. ``tally`` counts checksum candidates and
    passes (for the chance correction).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from airflow_aisec.core.pii_patterns import CellResult

    tally = ChecksumTally() if tally is None else tally
    strings = as_strings(arr, plan.name)
    bulk: dict[str, Any] = {}
    cells: dict[int, tuple[str, CellResult]] = {}
    if plan.union:
        union = pc.fill_null(pc.match_substring_regex(strings, plan.union), False)
        idx = pc.indices_nonzero(union)
        if len(idx):
            sub = strings.take(idx)
            order = list(plan.regexes)
            masks = np.vstack([
                pc.match_substring_regex(sub, plan.regexes[e]).to_numpy(zero_copy_only=False) for e in order
            ])
            positions = idx.to_numpy().astype(np.int64)
            decided, done = _decide_in_bulk(sub, order, masks, plan, detector, tally)
            bulk = {e: positions[j] for e, j in decided.items()}
            one_by_one = np.flatnonzero(masks.any(axis=0) & ~done)
            if len(one_by_one):
                texts = sub.take(pa.array(one_by_one)).to_pylist()
                for j, text in zip(one_by_one.tolist(), texts):
                    cell = detector.detect(text, [order[k] for k in np.flatnonzero(masks[:, j])], plan.hinted)
                    for entity in cell.checksum_candidates:
                        tally.add(entity, 1, entity in cell.entities)
                    if cell.matches:
                        cells[int(positions[j])] = (text, cell)
    if nlp is not None:
        for i, text, matches in nlp.detect_array(strings):
            if i in cells:
                cells[i][1].matches = _merge(cells[i][1].matches, matches)
            else:
                cells[i] = (text, CellResult(matches=list(matches)))
    return ColumnDetections(bulk=bulk, cells=cells, strings=strings)


def iter_column_detections(
    arr: pa.Array,
    plan: ColumnPlan,
    detector: Detector,
    nlp: NlpScanner | None = None,
    tally: ChecksumTally | None = None,
) -> Iterator[tuple[int, str, CellResult]]:
    """``(index in batch, cell text, result)`` for the cells of one column with matches (see :func:`detect_column`)."""
    yield from detect_column(arr, plan, detector, nlp, tally).iter_cells()


# Whole-cell shapes whose Presidio result is known without running its regexes cell by cell.
_WHOLE_EMAIL = (r"^[A-Za-z0-9_](?:[A-Za-z0-9._%+\-]*[A-Za-z0-9_%+\-])?@"
                r"[A-Za-z0-9_]+(?:-+[A-Za-z0-9_]+)*(?:\.[A-Za-z0-9_]+(?:-+[A-Za-z0-9_]+)*)+$")
_WHOLE_DIGITS = r"^[0-9]{8,17}$"
# Presidio's card pattern on a bare digit string: 13-17 digits starting with 1, 3, 4, 50-55 or 6,
# but not 13 digits starting with 1 (its look-ahead).
_WHOLE_CARD_SHAPE = r"^(?:[346][0-9]{12,16}|5[0-5][0-9]{11,15}|1[0-9]{13,16})$"
_WHOLE_PASSPORT_NG = r"^[A-Za-z][0-9]{8}$"
_WHOLE_NANP = r"^(?:\+1[ .-]?|1[ .-])?(?:\([2-9][0-9]{2}\)|[2-9][0-9]{2})[ .-]?[0-9]{3}[ .-]?[0-9]{4}$"
_WHOLE_IBAN = r"^[A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,3})?$"


def _decide_in_bulk(sub: pa.Array, order: list[str], masks: Any, plan: ColumnPlan,
                    detector: Detector, tally: ChecksumTally) -> tuple[dict[str, Any], Any]:
    """Presidio's verdict for whole-cell values of a known shape, computed for many cells at once.

    * an e-mail address filling the cell: Presidio's e-mail pattern matches all of it and its
      validator only looks at the domain, so each distinct domain is validated once (a URL
      match inside it would be a by-product);
    * an IBAN filling the cell: Presidio's IBAN recognizer tries the longest match first, so a
      cell that passes its ``validate_result`` (mod 97 and the country's format) is one IBAN
      (digit groups inside it would be by-products);
    * a digit string filling the cell: Presidio's card pattern matches it whole exactly when it
      has 13-17 digits, starts with 1, 3, 4, 50-55 or 6 and is not 13 digits starting with 1; the
      card then stands or falls with Luhn (vectorized). Bank account (8-17 digits) and passport
      (9 digits, or a letter and 8 digits) readings are Presidio's very weak patterns: accepted
      exactly when the column name gives them context (a bare number has no words around it);
    * a North American number filling the cell: Presidio's first phone region (US) parses it to
      country code 1 and its 10 digits, and phonenumbers' validity for +1 is evaluated in bulk
      from its metadata (:func:`~airflow_aisec.core.pii_patterns.nanp_valid`); invalid ones go
      one by one (another region may still accept them).

    Cells that need anything else (an SSN or phone reading of digits, an invalid domain or
    checksum, other candidates) are left to :meth:`Detector.detect`.

    Returns:
        Per entity, the indices (into ``sub``) of cells it fills entirely; and a mask of every
        decided cell (with or without an entity).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from airflow_aisec.core.pii_patterns import luhn_valid_arrow, nanp_valid

    out: dict[str, list] = {}
    n = len(sub)
    done = np.zeros(n, dtype=bool)
    k = {e: i for i, e in enumerate(order)}
    any_cand = masks.any(axis=0)
    lengths = pc.utf8_length(sub).to_numpy(zero_copy_only=False)

    def others(allowed: set[str]):
        rest = [masks[i] for e, i in k.items() if e not in allowed]
        return np.logical_or.reduce(rest) if rest else np.zeros(n, dtype=bool)

    def shape(regex: str, sel):
        idx = np.flatnonzero(sel)
        if len(idx):
            ok = pc.match_substring_regex(sub.take(pa.array(idx)), regex).to_numpy(zero_copy_only=False)
            sel = np.zeros(n, dtype=bool)
            sel[idx[ok]] = True
        return sel

    def accept(entity: str, idx) -> None:
        out.setdefault(entity, []).append(np.asarray(idx, dtype=np.int64))

    if "EMAIL_ADDRESS" in k:
        idx = np.flatnonzero(shape(_WHOLE_EMAIL, masks[k["EMAIL_ADDRESS"]] & ~others({"EMAIL_ADDRESS", "URL"})))
        if len(idx):
            domains = pc.utf8_lower(pc.extract_regex(sub.take(pa.array(idx)), r"@(?P<d>[^@]+)$").field("d"))
            unique = pc.unique(domains).to_pylist()
            good = pa.array([d for d in unique if detector.email_domain_valid(d)], pa.string())
            ok = pc.is_in(domains, value_set=good).to_numpy(zero_copy_only=False)
            accept("EMAIL_ADDRESS", idx[ok])
            done[idx[ok]] = True

    if "IBAN_CODE" in k:
        inner = {"IBAN_CODE", "CREDIT_CARD", "PHONE_NUMBER", "US_BANK_NUMBER", "US_PASSPORT", "US_SSN"}
        idx = np.flatnonzero(shape(_WHOLE_IBAN, masks[k["IBAN_CODE"]] & ~others(inner)))
        if len(idx):
            ok = np.array([detector.iban_valid(t) for t in sub.take(pa.array(idx)).to_pylist()], dtype=bool)
            accept("IBAN_CODE", idx[ok])
            done[idx[ok]] = True

    bulk_digit = {"CREDIT_CARD", "US_BANK_NUMBER", "US_PASSPORT"}
    if k.keys() & bulk_digit:
        sel = shape(_WHOLE_DIGITS, any_cand & ~others(bulk_digit) & ~done)
        idx = np.flatnonzero(sel)
        if len(idx):
            done[idx] = True
            luhn = np.zeros(n, dtype=bool)
            if "CREDIT_CARD" in k:
                card = shape(_WHOLE_CARD_SHAPE, sel & masks[k["CREDIT_CARD"]])
                card_idx = np.flatnonzero(card)
                if len(card_idx):
                    luhn[card_idx] = luhn_valid_arrow(sub.take(pa.array(card_idx)))
                    tally.add("CREDIT_CARD", len(card_idx), luhn.sum())
            bank = (sel & masks[k["US_BANK_NUMBER"]] if "US_BANK_NUMBER" in k and "US_BANK_NUMBER" in plan.hinted
                    else np.zeros(n, dtype=bool))
            passport = (sel & masks[k["US_PASSPORT"]] & (lengths == 9)
                        if "US_PASSPORT" in k and "US_PASSPORT" in plan.hinted else np.zeros(n, dtype=bool))
            accept("CREDIT_CARD", np.flatnonzero(luhn))
            accept("US_BANK_NUMBER", np.flatnonzero(bank))
            accept("US_PASSPORT", np.flatnonzero(passport))

    if "PHONE_NUMBER" in k:
        idx = np.flatnonzero(shape(_WHOLE_NANP, masks[k["PHONE_NUMBER"]] & ~others({"PHONE_NUMBER"}) & ~done))
        if len(idx):
            values = sub.take(pa.array(idx))
            digits = pc.utf8_slice_codeunits(pc.replace_substring_regex(values, r"[^0-9]", ""), -10)
            valid = nanp_valid(digits)
            # Bare digit runs are Presidio-weak: they count only with the column name as context.
            formatted = pc.match_substring_regex(values, r"[-+(). ]").to_numpy(zero_copy_only=False)
            hinted = "PHONE_NUMBER" in plan.hinted
            accept("PHONE_NUMBER", idx[valid & (formatted | hinted)])
            done[idx[valid]] = True

    if "US_PASSPORT" in k and "US_PASSPORT" in plan.hinted:
        idx = np.flatnonzero(shape(_WHOLE_PASSPORT_NG, masks[k["US_PASSPORT"]] & ~others({"US_PASSPORT"}) & ~done))
        accept("US_PASSPORT", idx)
        done[idx] = True
    return {e: np.unique(np.concatenate(parts)) for e, parts in out.items()}, done


def _merge(a: list, b: list) -> list:
    from airflow_aisec.core.pii_patterns import _resolve_overlaps

    return _resolve_overlaps(list(a) + list(b))


class NlpScanner:
    """PERSON / LOCATION through Presidio's NLP engine with a user-supplied spaCy model (never downloaded)."""

    def __init__(self, settings: NlpSettings) -> None:
        self.settings = settings
        model = settings.model or ""
        import spacy

        if not (spacy.util.is_package(model) or Path(model).is_dir()):
            raise ConfigurationError(
                f"pii.nlp.model '{model}' is not an installed spaCy package or model directory "
                "(models are never downloaded; install one or disable pii.nlp)"
            )
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        try:
            engine = NlpEngineProvider(nlp_configuration={
                "nlp_engine_name": settings.engine,
                "models": [{"lang_code": "en", "model_name": model}],
            }).create_engine()
        except (OSError, ValueError, ImportError) as exc:
            raise ConfigurationError(f"pii.nlp.model '{model}' could not be loaded ({type(exc).__name__})") from None
        self.analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
        self.entities = list(settings.entities)

    def detect_text(self, text: str) -> list:
        from airflow_aisec.core.pii_patterns import Match

        results = self.analyzer.analyze(text=text, language="en", entities=self.entities,
                                        score_threshold=self.settings.min_score)
        return [Match(r.entity_type, r.start, r.end, float(r.score)) for r in results
                if r.entity_type in self.entities]

    def detect_array(self, strings: pa.Array) -> Iterator[tuple[int, str, list]]:
        for i, text in enumerate(strings.to_pylist()):
            if text and any(c.isalpha() for c in text):
                matches = self.detect_text(text)
                if matches:
                    yield i, text, matches


# -------------------------------------------------------------------------------------------------
# Opening tables
# -------------------------------------------------------------------------------------------------
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zst")


def sniff_format(path: Path, fmt: str, uri: str) -> None:
    """Refuse a file whose bytes contradict its format (a Parquet file named .csv, binary junk)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 4))
            tail = fh.read(4)
    except OSError as exc:
        raise InputDataError(f"{uri}: cannot read the file ({type(exc).__name__})") from None
    if not head:
        raise InputDataError(f"{uri}: the file is empty")
    if str(uri).lower().endswith(COMPRESSED_SUFFIXES):
        return  # compressed CSV: pyarrow decompresses it by extension and reports what it cannot read
    if fmt == "csv":
        if head.startswith(b"PAR1"):
            raise InputDataError(f"{uri}: the file is Parquet, not CSV")
        if b"\x00" in head:
            raise InputDataError(f"{uri}: binary data, not a CSV table")
    elif fmt == "parquet":
        if not head.startswith(b"PAR1"):
            raise InputDataError(f"{uri}: not a Parquet file (no Parquet magic bytes)")
        if size < 12 or tail != b"PAR1":
            raise InputDataError(f"{uri}: the Parquet file is truncated (no footer)")


def open_for_scan(path: Path, fmt: str, uri: str):
    """A pyarrow dataset for scanning; CSV columns are read as text.

    Reading CSV as text keeps leading zeros and '+' of identifiers and phone numbers,
    and a column whose later rows stop looking like numbers cannot break the scan.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds

    from airflow_aisec.core.io.tabular import open_dataset

    sniff_format(path, fmt, uri)
    dataset = open_dataset(path, fmt, uri=uri)
    if fmt != "csv":
        return dataset
    names = dataset.schema.names
    if len(set(names)) != len(names):
        raise InputDataError(f"{uri}: duplicate column names in the CSV header")
    try:
        return ds.dataset(str(path), format=ds.CsvFileFormat(
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names})))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError) as exc:
        raise InputDataError(f"{uri}: not a readable csv table ({type(exc).__name__})") from None


def select_columns(policy: PiiPolicy, schema: pa.Schema, uri: str) -> tuple[list[str], dict[str, str]]:
    """Columns to scan, and skipped ones with their type.

    Raises:
        InputDataError: a column named in the policy is not in the data, or a nested column
            (list, struct, map) holds text the gate cannot scan and the policy does not exclude it.
    """
    from airflow_aisec.core.io.tabular import check_columns

    names = list(schema.names)
    named = list(policy.columns or []) + list(policy.exclude_columns)
    check_columns(names, named, uri)
    skipped: dict[str, str] = {}
    chosen = []
    for name in (policy.columns if policy.columns is not None else names):
        if name in policy.exclude_columns:
            skipped[name] = "excluded by policy"
            continue
        dtype = schema.field(name).type
        if _is_scannable(dtype) or policy.columns is not None:
            chosen.append(name)
        elif _nested_text(dtype):
            # Text inside lists or structs is not scanned: never let it pass unseen (fail closed).
            raise InputDataError(
                f"{uri}: column '{name}' holds text in a nested type ({dtype}) that the pii gate cannot scan; "
                "flatten it, or exclude it explicitly with pii.exclude_columns"
            )
        else:
            skipped[name] = str(dtype)
    return chosen, skipped


def column_labels(detector: Detector, names: Sequence[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Columns whose *name* holds PII (a CSV without a header row makes its first row the names).

    Returns:
        ``{name: "#<index>"}`` for those columns (results never show such a name), and the
        entities found per label.
    """
    import pyarrow as pa

    if not names:
        return {}, {}
    plan = build_plan(detector, [""])[0]
    hits = detect_column(pa.array([str(n) for n in names], pa.string()), plan, detector).hits()
    labels: dict[str, str] = {}
    found: dict[str, list[str]] = {}
    for entity, where in sorted(hits.items()):
        for i in where.tolist():
            label = f"#{i}"
            labels[names[i]] = label
            found.setdefault(label, []).append(entity)
    return labels, found


def sample_positions(total: int, size: int, seed: int):
    """Sorted row positions of a seeded sample without replacement (all rows when ``size >= total``)."""
    import numpy as np

    if size >= total:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=size, replace=False)).astype(np.int64)


def iter_rows(dataset, columns: Sequence[str], *, batch_rows: int, uri: str,
              positions=None) -> Iterator[tuple[pa.RecordBatch, Any]]:
    """Stream ``(batch, global row positions)``, optionally keeping only the sampled ``positions``."""
    import numpy as np
    import pyarrow as pa

    from airflow_aisec.core.io.tabular import iter_batches

    offset = 0
    for batch in iter_batches(dataset, columns=list(columns), batch_rows=batch_rows, uri=uri):
        n = batch.num_rows
        if positions is None:
            yield batch, np.arange(offset, offset + n, dtype=np.int64)
        else:
            lo, hi = np.searchsorted(positions, [offset, offset + n])
            if hi > lo:
                chosen = positions[lo:hi]
                yield batch.take(pa.array(chosen - offset)), chosen
        offset += n


def _count_rows(dataset, uri: str) -> int:
    import pyarrow as pa

    try:
        return int(dataset.count_rows())
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, ValueError) as exc:
        raise InputDataError(f"{uri}: table could not be read (truncated or corrupt? {type(exc).__name__})") from None


def scan_table(
    uri: str,
    policy: PiiPolicy,
    *,
    s3_client: Any = None,
    fmt: str | None = None,
    full: bool = False,
    detector: Detector | None = None,
) -> ScanReport:
    """Scan a table and count, per column, the cells carrying each entity type.

    Args:
        uri: Local path or ``s3://bucket/key``.
        policy: The ``pii`` policy section.
        s3_client: boto3 client for ``s3://`` (operators pass ``S3Hook(...).get_conn()``).
        fmt: ``csv`` or ``parquet``; from the extension when omitted.
        full: Scan every row even when the policy asks for a sample (redaction needs this).
        detector: A prepared :class:`Detector` (built from the policy when omitted).

    Returns:
        Value-free counts.

    Raises:
        InputDataError: unreadable, truncated, wrong format, empty, or a policy column missing.
        AccessDeniedError / ServiceUnavailableError: S3 refused or unreachable.
    """
    from airflow_aisec.core.io.tabular import detect_format, local_copy

    uri = str(uri)
    fmt = detect_format(uri, fmt)
    with local_copy(uri, s3_client=s3_client) as copy:
        return scan_local(copy.path, uri, fmt, policy, full=full, detector=detector)


def scan_local(
    path: Path,
    uri: str,
    fmt: str,
    policy: PiiPolicy,
    *,
    full: bool = False,
    detector: Detector | None = None,
) -> ScanReport:
    """:func:`scan_table` on a local file (``uri`` is the name reported)."""
    from airflow_aisec.core.pii_patterns import Detector, coincidental, quiet_presidio
    from airflow_aisec.core.io.storage import sha256_file

    started = time.perf_counter()
    with quiet_presidio():
        dataset = open_for_scan(path, fmt, uri)
        columns, skipped = select_columns(policy, dataset.schema, uri)
        total = _count_rows(dataset, uri)
        if total == 0:
            raise InputDataError(f"{uri}: the table is empty")
        sampled = policy.scan.mode == "sample" and not full
        positions = sample_positions(total, policy.scan.sample_size, policy.scan.seed) if sampled else None
        detector = detector or Detector(policy.entities, column_hints=policy.column_hints)
        labels, names_with_pii = column_labels(detector, dataset.schema.names)
        nlp = NlpScanner(policy.nlp) if policy.nlp.enabled else None
        plans = build_plan(detector, columns)
        stats = {c: ColumnStats() for c in columns}
        scanned = 0
        for batch, rows in iter_rows(dataset, columns, batch_rows=policy.scan.batch_rows, uri=uri,
                                     positions=positions):
            scanned += batch.num_rows
            for plan in plans:
                col = stats[plan.name]
                tally = ChecksumTally()
                found = detect_column(batch.column(plan.name), plan, detector, nlp, tally)
                for entity, where in found.hits().items():
                    st = col.entities.setdefault(entity, EntityStats())
                    st.count += len(where)
                    room = MAX_ROW_POSITIONS - len(st.rows)
                    if room > 0:
                        st.rows.extend(int(r) for r in rows[where[:room]])
                for entity, (candidates, valid) in tally.items():
                    col.checksum_candidates[entity] = col.checksum_candidates.get(entity, 0) + candidates
                    col.checksum_valid[entity] = col.checksum_valid.get(entity, 0) + valid
        digest = sha256_file(path)
    if policy.chance_correction:
        for col in stats.values():
            for entity, candidates in col.checksum_candidates.items():
                if coincidental(entity, candidates, col.checksum_valid.get(entity, 0)):
                    col.coincidental.add(entity)
    nlp_info: dict[str, Any] = {"enabled": False}
    if policy.nlp.enabled:
        nlp_info = {"enabled": True, "engine": policy.nlp.engine, "model": policy.nlp.model,
                    "entities": list(policy.nlp.entities)}
    return ScanReport(
        uri=uri, fmt=fmt, sha256=digest, mode="sample" if sampled else "full", rows_total=total,
        rows_scanned=scanned, sample_size=policy.scan.sample_size if sampled else None,
        seed=policy.scan.seed if sampled else None, columns=stats, skipped=skipped,
        entities=list(detector.entities) + (list(policy.nlp.entities) if policy.nlp.enabled else []),
        nlp=nlp_info, duration_s=time.perf_counter() - started, labels=labels, names_with_pii=names_with_pii,
    )


# -------------------------------------------------------------------------------------------------
# Classification against the policy
# -------------------------------------------------------------------------------------------------
def _share(count: int, rows: int) -> float:
    return round(count / rows, 6) if rows else 0.0


def classify(report: ScanReport, policy: PiiPolicy, classification: Classification, *,
             rule: str = RULE_NOT_ALLOWED, subject: str = "") -> CheckOutcome:
    """Turn a scan into findings: one per column carrying an entity its classification does not allow."""
    level = policy.level_rule(classification)
    findings: list[Finding] = []
    columns: dict[str, Any] = {}
    pii_columns: dict[str, list[str]] = {}
    coincidences: dict[str, Any] = {}
    for label, entities in sorted(report.names_with_pii.items()):
        for entity in entities:
            if not level.allows(entity):
                findings.append(Finding(
                    rule=RULE_NAME,
                    severity=ENTITY_SEVERITY.get(entity, Severity.HIGH),
                    message=(f"{subject}the name of column {label} holds {entity} (a CSV without a header "
                             f"row?); not allowed in a '{classification.value}' dataset"),
                    count=1,
                    location={"uri": report.uri, "column": label, "entity": entity,
                              "classification": classification.value},
                ))
    for real_name, col in report.columns.items():
        name = report.label(real_name)
        entry: dict[str, Any] = {}
        for entity, st in sorted(col.carried().items()):
            share = _share(st.count, report.rows_scanned)
            is_pii = st.count >= policy.min_count and share >= policy.min_share
            allowed = level.allows(entity)
            entry[entity] = {"count": st.count, "share": share, "rows": list(st.rows), "pii": is_pii,
                             "allowed": allowed}
            if is_pii:
                pii_columns.setdefault(name, []).append(entity)
            if is_pii and not allowed:
                findings.append(Finding(
                    rule=rule,
                    severity=ENTITY_SEVERITY.get(entity, Severity.HIGH),
                    message=(f"{subject}column '{name}' carries {entity} in {st.count} of {report.rows_scanned} "
                             f"scanned rows ({share:.2%}); not allowed in a '{classification.value}' dataset"),
                    count=st.count,
                    location={"uri": report.uri, "column": name, "entity": entity, "share": share,
                              "rows": list(st.rows), "classification": classification.value},
                ))
        columns[name] = {"entities": entry}
        if col.coincidental:
            coincidences[name] = {e: {"candidates": col.checksum_candidates.get(e, 0),
                                      "valid": col.checksum_valid.get(e, 0)} for e in sorted(col.coincidental)}
    duration = round(report.duration_s, 3)
    metrics: dict[str, Any] = {
        "classification": classification.value,
        "scan": report.scan_metrics(),
        "cells_scanned": report.cells_scanned,
        "columns_scanned": [report.label(c) for c in report.columns],
        "columns_skipped": {report.label(c): why for c, why in report.skipped.items()},
        "entities_checked": list(report.entities),
        "thresholds": {"min_share": policy.min_share, "min_count": policy.min_count},
        "columns": columns,
        "pii_columns": pii_columns,
        "coincidental_checksums": coincidences,
        "nlp": report.nlp,
        "duration_s": duration,
        "cells_per_s": int(report.cells_scanned / report.duration_s) if report.duration_s > 0 else None,
    }
    return CheckOutcome(findings=findings, metrics=metrics, inputs=[InputRef(uri=report.uri, sha256=report.sha256)])


def check_pii(
    uri: str,
    policy: PiiPolicy | LoadedPolicy,
    *,
    classification: str | Classification | None = None,
    s3_client: Any = None,
    fmt: str | None = None,
) -> CheckOutcome:
    """The pii gate's check: scan ``uri`` and judge it at its classification.

    Args:
        uri: Local path or ``s3://`` URI of a CSV or Parquet table.
        policy: The ``pii`` section, or a loaded policy holding one.
        classification: Declared level; the policy's ``default_classification`` when omitted.
        s3_client: boto3 client for ``s3://`` inputs.
        fmt: ``csv`` / ``parquet`` (default: from the extension).

    Returns:
        Findings (``pii.entity_not_allowed``) and the column classification in metrics.
    """
    section = section_of(policy)
    level = section.resolve_classification(classification)
    report = scan_table(uri, section, s3_client=s3_client, fmt=fmt)
    return classify(report, section, level)


def section_of(policy: PiiPolicy | LoadedPolicy | Any) -> PiiPolicy:
    """The ``pii`` section of a loaded policy (or the section itself)."""
    if isinstance(policy, PiiPolicy):
        return policy
    inner = getattr(policy, "policy", policy)
    section = getattr(inner, "pii", None)
    if not isinstance(section, PiiPolicy):
        raise ConfigurationError("the policy has no 'pii' section; the pii gate refuses to run")
    return section


__all__ = [
    "Classification",
    "LevelRule",
    "NlpSettings",
    "PiiPolicy",
    "RedactionSettings",
    "ScanReport",
    "check_pii",
    "classify",
    "scan_table",
]
