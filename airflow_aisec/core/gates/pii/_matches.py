"""Entity matches inside a cell (offsets and scores only) and how overlapping readings are resolved."""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow_aisec.core.gates.pii._validators import CHECKSUM_CHANCE


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
    e-mail address, the digits of an IBAN). Exception: a checksum match does
    not hide another reading of exactly the same text (a 16-digit number in a
    bank-account column that passes Luhn by chance), because the checksum
    reading may still be judged a coincidence for the whole column.
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
                     and not (o.entity in CHECKSUM_CHANCE and (o.start, o.end) == (m.start, m.end))))
            for o in kept
        )
        if not dominated:
            kept.append(m)
    return kept


def merge_matches(a: list[Match], b: list[Match]) -> list[Match]:
    """Two lists of matches in one cell, overlaps resolved (pattern and NLP matches, bulk and single)."""
    return resolve_overlaps(list(a) + list(b))
