"""Entity matches inside a cell (offsets and scores only) and how overlapping readings are resolved."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Match:
    """One accepted entity occurrence inside a cell (offsets only; the text stays with the caller)."""

    entity: str
    start: int
    end: int
    score: float


@dataclass
class CellResult:
    """What :meth:`Detector.detect` found in one cell.

    Attributes:
        matches: Accepted matches after overlap resolution.
        checksum_candidates: Checksum entities whose Presidio pattern matched, valid or not.
    """

    matches: list[Match] = field(default_factory=list)
    checksum_candidates: set[str] = field(default_factory=set)

    @property
    def entities(self) -> set[str]:
        return {m.entity for m in self.matches}


def resolve_overlaps(found: list[Match]) -> list[Match]:
    """Keep the best reading of each stretch of text.

    A match inside another match of the same entity is a duplicate (Presidio's
    SSN patterns overlap; a URL with and without its scheme); a match inside a
    better-scored match of another entity is a by-product (the domain of an
    e-mail address, the digits of an IBAN). Exception: two entities reading exactly
    the same text are both kept, as Presidio reports them: `D38993679` in a
    `passport_no` column is a US and a ZA passport number, and keeping only the
    better-scored one would let a policy that forbids the other pass (a 16-digit
    number in a bank-account column that passes Luhn by chance stays a bank number
    too, because the checksum reading may be judged a coincidence for the column).
    Phone numbers against digit-only ids are settled by :func:`one_reading_per_number`.
    """
    if len(found) < 2:
        return found
    # Only overlapping matches can dominate each other: resolve each run of overlapping matches
    # on its own (a cell with thousands of matches would otherwise cost their square).
    kept: list[Match] = []
    cluster: list[Match] = []
    end = -1
    for m in sorted(found, key=lambda x: (x.start, x.end)):
        if cluster and m.start >= end:
            kept.extend(_resolve_cluster(cluster))
            cluster = []
        cluster.append(m)
        end = max(end, m.end) if len(cluster) > 1 else m.end
    kept.extend(_resolve_cluster(cluster))
    kept.sort(key=lambda x: x.start)
    return kept


def _resolve_cluster(found: list[Match]) -> list[Match]:
    kept: list[Match] = []
    for m in sorted(found, key=lambda x: (-(x.end - x.start), -x.score, x.start)):
        dominated = any(
            o.start <= m.start and o.end >= m.end
            and (o.entity == m.entity
                 or ((o.score > m.score or (o.score == m.score and (o.end - o.start) > (m.end - m.start)))
                     and (o.start, o.end) != (m.start, m.end)))
            for o in kept
        )
        if not dominated:
            kept.append(m)
    return kept


def merge_matches(a: list[Match], b: list[Match]) -> list[Match]:
    """Two lists of matches in one cell, overlaps resolved (pattern and NLP matches, bulk and single)."""
    return resolve_overlaps(list(a) + list(b))


#: Entities whose digits are never parsed as a phone number in the first place (see ``_patterns``).
PHONE_BLOCKERS = frozenset({"EMAIL_ADDRESS", "URL", "IBAN_CODE", "CREDIT_CARD", "IP_ADDRESS", "US_SSN"})


def one_reading_per_number(text: str, found: list[Match], id_context: Callable[[Match], bool]) -> list[Match]:
    """A run of digits that is both a valid phone number and an id whose check digits it passes (UK NHS
    numbers are written 3-3-4 like North American numbers; one bare number in ten passes a PESEL-style
    mod-10 check) is reported once: as the id when the id has context (a context word before it or
    the column name, ``id_context``), otherwise as the phone number (it only exists here after the
    phone rules accepted it: formatted, or with phone context).
    """
    phones = [m for m in found if m.entity == "PHONE_NUMBER"]
    if not phones or len(phones) == len(found):
        return found
    dropped: set[int] = set()
    for i, m in enumerate(found):
        if m.entity == "PHONE_NUMBER" or m.entity in PHONE_BLOCKERS:
            continue
        if not _digits_only(text[m.start:m.end]):
            continue
        inside = [j for j, p in enumerate(found) if p.entity == "PHONE_NUMBER" and p.start <= m.start and m.end <= p.end]
        if not inside:
            continue
        if id_context(m):
            dropped.update(inside)
        else:
            dropped.add(i)
    return [m for i, m in enumerate(found) if i not in dropped] if dropped else found


def _digits_only(piece: str) -> bool:
    return any(c.isdigit() for c in piece) and all(c.isdigit() or c in " -./()" for c in piece)
