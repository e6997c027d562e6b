"""Rewriting PII cells for redaction: mask, drop, or a keyed HMAC token that keeps joins working."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.pii._detect import iter_column_detections
from airflow_aisec.core.gates.pii._table import as_strings

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pyarrow as pa

    from airflow_aisec.core.gates.pii._matches import CellResult, Match
    from airflow_aisec.core.policy.sections.pii import RedactionSettings


def normalise_value(entity: str, text: str) -> str:
    """Canonical form hashed for ``entity``: the same value written two ways gets one token."""
    if entity in ("EMAIL_ADDRESS", "URL"):
        return text.strip().lower()
    if entity in ("PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "US_BANK_NUMBER", "US_PASSPORT"):
        keep = "".join(c for c in text if c.isalnum())
        if entity == "PHONE_NUMBER" and text.strip().startswith("+"):
            keep = "+" + keep
        return keep.upper()
    return text.strip()


class Rewriter:
    """Replaces matches in a cell according to the redaction method."""

    def __init__(self, settings: RedactionSettings, key: bytes | None) -> None:
        self.method = settings.method
        self.mask_token = settings.mask_token
        self.hash_length = settings.hash_length
        self._key = key

    def token(self, entity: str, text: str) -> str:
        if self.method == "hash":
            assert self._key is not None
            msg = f"{entity}\x00{normalise_value(entity, text)}".encode()
            return f"{entity}_{hmac.new(self._key, msg, hashlib.sha256).hexdigest()[: self.hash_length]}"
        return self.mask_token.format(entity=entity)

    def rewrite(self, text: str, matches: list[Match]) -> str | None:
        """The new cell (``None`` for ``drop``)."""
        if self.method == "drop":
            return None
        spans = _merge_spans(matches)
        out = text
        for start, end, entity in reversed(spans):
            out = out[:start] + self.token(entity, text[start:end]) + out[end:]
        return out


def _merge_spans(matches: list[Match]) -> list[tuple[int, int, str]]:
    """Non-overlapping spans, each labelled with the best-scored entity it covers."""
    spans: list[list[Any]] = []
    for m in sorted(matches, key=lambda x: (x.start, -x.end)):
        if spans and m.start < spans[-1][1]:
            last = spans[-1]
            if m.score > last[3]:
                last[2], last[3] = m.entity, m.score
            last[1] = max(last[1], m.end)
        else:
            spans.append([m.start, m.end, m.entity, m.score])
    return [(s, e, ent) for s, e, ent, _score in spans]


def redact_column(arr: pa.Array, plan: Any, entities: set[str], detector: Any, rewriter: Rewriter,
                  nlp: Any, detections: Iterable[tuple[int, str, CellResult]] | None = None) -> tuple[pa.Array, int]:
    """One column of one batch with the matches of ``entities`` rewritten, and how many cells changed.

    ``detections``: the column's (:func:`~._detect.detections_by_column`), else detected here."""
    import pyarrow as pa

    changes: dict[int, str | None] = {}
    if detections is None:
        detections = iter_column_detections(arr, plan, detector, nlp)
    for i, text, cell in detections:
        chosen = [m for m in cell.matches if m.entity in entities]
        if chosen:
            changes[i] = rewriter.rewrite(text, chosen)
    if not changes:
        if rewriter.method == "drop":
            return arr, 0
        return as_strings(arr, plan.name), 0
    if rewriter.method == "drop":
        import numpy as np
        import pyarrow.compute as pc

        mask = np.zeros(len(arr), dtype=bool)
        mask[list(changes)] = True
        return pc.if_else(pa.array(mask), pa.nulls(len(arr), type=arr.type), arr), len(changes)
    values = as_strings(arr, plan.name).to_pylist()
    for i, new in changes.items():
        values[i] = new
    return pa.array(values, type=pa.string()), len(changes)


# --- redaction by column -------------------------------------------------------------------------
#: Mean words (two letters or more) per non-empty cell from which a column is free text, redacted by span.
FREE_TEXT_WORDS = 3.0
_WORD_RE2 = r"\pL{2,}"


class TextShape:
    """Running count of non-empty cells and their words, per column (decides column vs span redaction)."""

    def __init__(self) -> None:
        self.cells = 0
        self.words = 0

    def add(self, strings: pa.Array) -> None:
        cells, words = shape_counts(strings, 1)
        self.cells += cells[0]
        self.words += words[0]

    @property
    def free_text(self) -> bool:
        return self.cells > 0 and self.words / self.cells >= FREE_TEXT_WORDS


def _per_column(values: Any, columns: int) -> list[int]:
    """Sums of ``columns`` equally long runs of a pyarrow array of booleans or counts (a null counts 0)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    filled = pc.fill_null(values, False if pa.types.is_boolean(values.type) else 0)
    return filled.to_numpy(zero_copy_only=False).astype("int64").reshape(columns, -1).sum(axis=1).tolist()


def shape_counts(strings: pa.Array, columns: int) -> tuple[list[int], list[int]]:
    """Per column of ``strings`` (``columns`` columns of one batch laid end to end): its non-empty cells
    and their words, for :class:`TextShape` (one pass for many columns: each pass compiles its
    expression)."""
    import pyarrow.compute as pc

    non_empty = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(strings)), 0)
    return _per_column(non_empty, columns), _per_column(pc.count_substring_regex(strings, _WORD_RE2), columns)


def redact_whole_column(arr: pa.Array, plan: Any, entities: set[str], default: str, detector: Any,
                        rewriter: Rewriter, nlp: Any,
                        detections: Iterable[tuple[int, str, CellResult]] | None = None) -> tuple[pa.Array, int]:
    """Every non-empty cell of a column classified as carrying ``entities`` becomes one token.

    A cell's token names the entity detected in it, else ``default`` (the column's dominant entity):
    the detector may miss a value in a format it does not know, the column classification does not.
    ``detections`` as for :func:`redact_column`.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    strings = as_strings(arr, plan.name)
    non_empty = pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(strings)), 0), False)
    n = int(pc.sum(non_empty).as_py() or 0)
    if rewriter.method == "drop":
        return pc.if_else(non_empty, pa.nulls(len(arr), type=arr.type), arr), n
    seen: dict[int, str] = {}
    if detections is None:
        detections = iter_column_detections(arr, plan, detector, nlp)
    for i, _text, cell in detections:
        chosen = sorted((m for m in cell.matches if m.entity in entities), key=lambda m: -(m.end - m.start))
        if chosen:
            seen[i] = chosen[0].entity
    values = strings.to_pylist()
    flags = non_empty.to_pylist()
    out = [rewriter.token(seen.get(i, default), v.strip()) if flag else v
           for i, (v, flag) in enumerate(zip(values, flags))]
    return pa.array(out, type=pa.string()), n


def residual_cells(strings: pa.Array, *, whole_column: bool, method: str, tokens: Any, columns: int = 1) -> list[int]:
    """Per column of ``strings`` (``columns`` columns of one batch laid end to end), its cells that
    still hold PII the classification says is there.

    ``whole_column``: every non-empty cell must be a redaction token (or null for ``drop``).
    Otherwise (free text): a token glued to leftover digits (``<PHONE_NUMBER>x31948``,
    ``001-<PHONE_NUMBER>``) is a partial redaction.
    """
    import pyarrow.compute as pc

    non_empty = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(strings)), 0)
    if whole_column:
        if method == "drop":
            return _per_column(non_empty, columns)
        is_token = pc.fill_null(pc.match_substring_regex(strings, f"^(?:{tokens})$"), False)
        return _per_column(pc.and_(pc.fill_null(non_empty, False), pc.invert(is_token)), columns)
    if method == "drop":
        return [0] * columns
    partial = rf"\d[\-./(]?(?:{tokens})|(?:{tokens})(?:\s?(?i:x|ext\.?|#)\s?\d|[\-./)]?\d)"
    return _per_column(pc.match_substring_regex(strings, partial), columns)


def token_regex(rewriter: Rewriter, entities: Any) -> str:
    """RE2 expression matching the tokens ``rewriter`` writes for ``entities``."""
    import re

    names = sorted(set(entities))
    if rewriter.method == "hash":
        return "|".join(f"{re.escape(e)}_[0-9a-f]{{{rewriter.hash_length}}}" for e in names)
    return "|".join(re.escape(rewriter.mask_token.format(entity=e)) for e in names)
