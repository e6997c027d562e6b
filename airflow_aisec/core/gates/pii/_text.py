"""PERSON / LOCATION in free text: offline gazetteers and address patterns, plus a spaCy model if configured.

An RE2 pre-filter over the whole column selects the cells with a capitalised word next to another
one or to a number; only those reach :class:`~._names.NameFinder` and
:class:`~._addresses.AddressFinder`, and one RE2 pass per address pattern group
(:func:`~._addresses.re2_prefilters`) tells the latter which of its patterns a cell can match.
When the policy configures a spaCy model (``pii.nlp``), its entities are merged with these
(overlaps resolved, best reading kept).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.pii._matches import Match, merge_matches

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_aisec.core.policy.sections.pii import PiiPolicy

#: Cells worth reading: two capitalised words, a number then a capitalised word, a capitalised word then a
#: number, or a lower-case street kind (``44, rue de Blin``).
PREFILTER = (r"\p{Lu}[\p{L}'’\-]*\.?,?\s+\p{Lu}|\d,?\s+\p{Lu}|\p{Lu}\p{Ll}[\p{L}.\-]*\s\d"
             r"|(?i:\b(?:rue|avenue|boulevard|chemin|allée|impasse|quai|via|calle)\s)")


class TextScanner:
    """Offline PERSON / LOCATION finder with the same interface as :class:`~._presidio.NlpScanner`."""

    def __init__(self, entities: list[str], locales: list[str], nlp: Any = None) -> None:
        self.entities = list(entities)
        self._locales = list(locales)
        self._nlp = nlp

    # Built when a candidate cell first needs them: the address patterns compile at import (start-up).
    @functools.cached_property
    def _names(self) -> Any:
        from airflow_aisec.core.gates.pii._names import NameFinder

        return NameFinder(self._locales) if "PERSON" in self.entities else None

    @functools.cached_property
    def _addresses(self) -> Any:
        from airflow_aisec.core.gates.pii._addresses import AddressFinder

        return AddressFinder() if "LOCATION" in self.entities else None

    def detect_text(self, text: str, address_groups: tuple[bool, ...] | None = None) -> list[Match]:
        found: list[Match] = []
        if self._addresses is not None and (address_groups is None or any(address_groups)):
            spans = self._addresses.find(text) if address_groups is None else self._addresses.find(text, address_groups)
            found += [Match("LOCATION", a, b, s) for a, b, s in spans]
        if self._names is not None:
            found += [Match("PERSON", a, b, s) for a, b, s in self._names.find(text)]
        return merge_matches(found, []) if found else found

    def detect_array(self, strings: pa.Array) -> Iterator[tuple[int, str, list[Match]]]:
        import pyarrow.compute as pc

        hits: dict[int, tuple[str, list[Match]]] = {}
        idx = pc.indices_nonzero(pc.fill_null(pc.match_substring_regex(strings, PREFILTER), False))
        if len(idx):
            candidates = strings.take(idx)
            groups = self._address_groups(candidates)
            for n, (i, text) in enumerate(zip(idx.to_pylist(), candidates.to_pylist())):
                matches = self.detect_text(text, None if groups is None else groups[n])
                if matches:
                    hits[i] = (text, matches)
        if self._nlp is not None:
            for i, text, matches in self._nlp.detect_array(strings):
                old = hits.get(i, (text, []))[1]
                hits[i] = (text, merge_matches(old, matches))
        for i in sorted(hits):
            yield i, hits[i][0], hits[i][1]

    def _address_groups(self, candidates: pa.Array) -> list[tuple[bool, ...]] | None:
        """Per cell, which address pattern groups can match it (RE2 over the column, one pass per group)."""
        if "LOCATION" not in self.entities:
            return None
        import numpy as np
        import pyarrow.compute as pc

        from airflow_aisec.core.gates.pii._addresses import re2_prefilters

        masks = np.stack([pc.fill_null(pc.match_substring_regex(candidates, rx), False).to_numpy(zero_copy_only=False)
                          for rx in re2_prefilters()], axis=1)
        return list(map(tuple, masks.tolist()))


def build_text_scanner(section: PiiPolicy) -> Any:
    """The scanner for PERSON / LOCATION the policy asks for (offline, spaCy, both), or ``None``."""
    from airflow_aisec.core.gates.pii._presidio import NlpScanner

    nlp = NlpScanner(section.nlp) if section.nlp.enabled else None
    text = getattr(section, "text", None)
    if text is None or not text.enabled:
        return nlp
    return TextScanner(list(text.entities), list(text.locales), nlp)
