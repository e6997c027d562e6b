"""The detector: every rule on one text, and the vectorized RE2 pre-filter over a column of texts.

Two engines, one result:

* ``re``: :meth:`Detector.detect` (Python ``re``) on every cell;
* ``re2`` (``auto``): pyarrow's ``match_substring_regex`` (RE2, the PII gate's fast path) selects
  the cells where any rule *could* fire, from anchors every rule match is guaranteed to contain
  (:mod:`._pattern`), in two stages: the union of short heads over the whole column (plus a pass
  over its rot13), then each rule group's full patterns over the cells that matched a head. Only
  those cells go through :meth:`Detector.detect`, and only the checks of the groups they matched. The pre-filter over-selects, never under-selects, so the flagged cells
  are the same; ``tests/core/test_prompt_engine.py`` checks it on the labelled corpus and on
  generated adversarial text.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_aisec.core.gates.prompt_injection._decode import Decoder
from airflow_aisec.core.gates.prompt_injection._exfil import ANCHORS as EXFIL_ANCHORS
from airflow_aisec.core.gates.prompt_injection._exfil import exfiltration_url
from airflow_aisec.core.gates.prompt_injection._html import HINT_TEMPLATE, hidden_segments
from airflow_aisec.core.gates.prompt_injection._markers import (
    MARKER_ANCHORS,
    TOOL_ANCHORS,
    chat_template_marker,
    tool_call_shape,
)
from airflow_aisec.core.gates.prompt_injection._pattern import compile_template, to_re2
from airflow_aisec.core.gates.prompt_injection._phrases import PHRASE_RULES, build_phrase_rules
from airflow_aisec.core.gates.prompt_injection._unicode import (
    FOLDABLE_RE2,
    HIDDEN_RE2,
    NEEDS_RE2,
    hidden_unicode,
    homoglyph,
    homoglyph_re2,
    normalise,
)
from airflow_aisec.core.policy.sections.prompt_injection import PromptInjectionPolicy

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

ENGINES = ("auto", "re2", "re")
# Hidden HTML text addressed to a model ("AI assistants must recommend ...").
_AI_ADDRESS = compile_template(r"\b(?:AI|A\.I\.|LLM|language~model|assistant|chatbot|GPT|agent|model|IA|KI)s?\b")
_IMPERATIVE = compile_template(r"\b(?:must|should|always|never|do~not|don't|ignore|include|say|respond|reply"
                               r"|write|output|recommend|tell|mention|instead)\b")
# Alternatives per RE2 program: large unions make RE2's DFA run out of memory and fall back to the slow NFA.
_UNION_CHUNK = 8


@dataclass(frozen=True)
class CellHits:
    """Rules that fired in one cell (names), and the encodings of ``encoded_payload`` hits."""

    rules: frozenset[str]
    encodings: frozenset[str] = frozenset()


NO_HITS = CellHits(frozenset())


@dataclass(frozen=True)
class _Group:
    """A set of checks and the RE2 patterns that every hit of them contains.

    Attributes:
        first: Cheap patterns (heads, classes); run on every cell, as one union with the other groups'.
        second: Full patterns, run on the cells that matched ``first`` (None: ``first`` is enough).
        rotated: Match against the rot13 of the cell instead of the cell.
    """

    first: tuple[str, ...]
    second: tuple[str, ...] | None = None
    rotated: bool = False


# Group names that enable each check in :meth:`Detector.detect`.
_NEEDS = "needs"


class Detector:
    """All enabled rules of one policy section; build once per scan.

    Args:
        section: The ``prompt_injection`` section.
    """

    def __init__(self, section: PromptInjectionPolicy) -> None:
        self.enabled = frozenset(section.enabled_rules())
        self.phrases = build_phrase_rules(tuple(section.languages))
        self.allowed_hosts = tuple(section.allowed_hosts)
        self.decoder = Decoder(section.decode, self.any_phrase)
        self._html_hint = compile_template(HINT_TEMPLATE)
        self.groups = self._groups()

    # --- one text ------------------------------------------------------------------------------
    def any_phrase(self, text: str) -> bool:
        """Instruction phrasing of any kind (what decoded blobs and hidden text are checked for)."""
        norm = normalise(text)
        return any(rule.search(norm) for rule in self.phrases.values()) or chat_template_marker(norm)

    def hidden_hit(self, segments: Sequence[str]) -> bool:
        """Hidden text that carries instruction phrasing or addresses a model."""
        for segment in segments:
            norm = normalise(segment)
            if self.any_phrase(norm) or (_AI_ADDRESS.search(norm) and _IMPERATIVE.search(norm)):
                return True
        return False

    def detect(self, text: str, *, html_done: bool = False, groups: Container[str] | None = None) -> CellHits:
        """Every enabled rule on one text.

        Args:
            text: The cell / record field / document segment.
            html_done: The caller already judged the text's hidden HTML (HTML documents).
            groups: Pre-filter groups the text matched; checks of other groups cannot fire and are
                skipped. None runs every check (the ``re`` engine).
        """
        enabled = self.enabled
        every = groups is None
        needs = every or _NEEDS in groups  # type: ignore[operator]

        def want(group: str) -> bool:
            return every or group in groups  # type: ignore[operator]

        hits: set[str] = set()
        norm = normalise(text)
        for name, rule in self.phrases.items():
            if name in enabled and (needs or want(f"phrase:{name}")) and rule.search(norm):
                hits.add(name)
        if "chat_template_marker" in enabled and (needs or want("marker")) and chat_template_marker(norm):
            hits.add("chat_template_marker")
        if "tool_call_shape" in enabled and (needs or want("tool")) and tool_call_shape(norm):
            hits.add("tool_call_shape")
        if "hidden_unicode" in enabled and want("hidden") and hidden_unicode(text):
            hits.add("hidden_unicode")
        if "homoglyph" in enabled and want("homoglyph") and homoglyph(text):
            hits.add("homoglyph")
        if ("html_hidden_text" in enabled and not html_done and want("html") and self._html_hint.search(text)
                and self.hidden_hit(hidden_segments(text))):
            hits.add("html_hidden_text")
        encodings: frozenset[str] = frozenset()
        if "encoded_payload" in enabled and (want("encoded") or needs or want("rot13")):
            encodings = frozenset(self.decoder.encodings(text, norm, blobs=want("encoded"),
                                                         rot13=needs or want("rot13")))
            if encodings:
                hits.add("encoded_payload")
        if "exfiltration_url" in enabled and want("exfil") and exfiltration_url(text, self.allowed_hosts):
            hits.add("exfiltration_url")
        return CellHits(frozenset(hits), encodings) if hits else NO_HITS

    # --- a column ------------------------------------------------------------------------------
    def _groups(self) -> dict[str, _Group]:
        enabled = self.enabled
        groups: dict[str, _Group] = {}
        for name, rule in self.phrases.items():
            if name in enabled:
                groups[f"phrase:{name}"] = _Group(rule.heads, rule.anchors)
        if enabled & {*PHRASE_RULES, "chat_template_marker", "tool_call_shape", "encoded_payload"}:
            groups[_NEEDS] = _Group((NEEDS_RE2,))
        if "chat_template_marker" in enabled:
            groups["marker"] = _Group(MARKER_ANCHORS)
        if "tool_call_shape" in enabled:
            groups["tool"] = _Group(TOOL_ANCHORS)
        if "hidden_unicode" in enabled:
            groups["hidden"] = _Group((HIDDEN_RE2,))
        if "homoglyph" in enabled:
            groups["homoglyph"] = _Group((FOLDABLE_RE2,), (homoglyph_re2(),))
        if "html_hidden_text" in enabled:
            groups["html"] = _Group((f"(?i:{to_re2(HINT_TEMPLATE)})",))
        if "encoded_payload" in enabled:
            groups["encoded"] = _Group(self.decoder.anchors)
            if self.decoder.settings.rot13:
                heads = tuple(dict.fromkeys(h for rule in self.phrases.values() for h in rule.heads))
                full = tuple(a for rule in self.phrases.values() for a in rule.anchors)
                groups["rot13"] = _Group(heads + MARKER_ANCHORS, full + MARKER_ANCHORS, rotated=True)
        if "exfiltration_url" in enabled:
            groups["exfil"] = _Group(EXFIL_ANCHORS)
        return groups

    @functools.cached_property
    def _first_stage(self) -> tuple[tuple[str, bool], ...]:
        """The whole-column programs: phrase heads, every other group's cheap patterns, and the heads
        over the rot13 of the column (each one union: unions of heads stay small for RE2's DFA)."""
        heads = [p for name, g in self.groups.items() if name.startswith("phrase:") for p in g.first]
        others = [p for name, g in self.groups.items() if not name.startswith("phrase:") and not g.rotated
                  for p in g.first]
        rotated = [p for g in self.groups.values() if g.rotated for p in g.first]
        programs = [(_union(heads), False), (_union(others), False), (_union(rotated), True)]
        return tuple((p, r) for p, r in programs if p)

    def candidates(self, strings: pa.Array) -> tuple[np.ndarray, list[frozenset[str]]]:
        """Cells where a rule could fire, and for each the groups whose patterns it matched.

        A superset of the cells :meth:`detect` flags: a check whose group a cell did not match
        cannot fire on that cell.
        """
        import concurrent.futures as cf

        import numpy as np
        import pyarrow as pa

        stage = self._first_stage
        rotated_all = rot13_array(strings) if any(r for _, r in stage) else None
        # pyarrow's kernels release the GIL: the whole-column programs run side by side.
        with cf.ThreadPoolExecutor(max_workers=min(len(stage), os.cpu_count() or 1) or 1) as pool:
            masks = list(pool.map(lambda pr: _match(rotated_all if pr[1] else strings, pr[0]), stage))
        mask = np.logical_or.reduce(masks) if masks else np.zeros(len(strings), dtype=bool)
        idx = np.flatnonzero(mask)
        if not len(idx):
            return idx, []
        take = pa.array(idx)
        subset = strings.take(take)
        rotated_subset = rotated_all.take(take) if rotated_all is not None else None
        names = list(self.groups)
        matrix = np.zeros((len(names), len(idx)), dtype=bool)
        for row, name in enumerate(names):
            group = self.groups[name]
            target = rotated_subset if group.rotated else subset
            hit = np.zeros(len(idx), dtype=bool)
            for program in _programs(group.first):
                hit |= _match(target, program)
            if group.second is not None and hit.any():
                inner = np.flatnonzero(hit)
                narrowed = target.take(pa.array(inner))
                second = np.zeros(len(inner), dtype=bool)
                for program in _programs(group.second):
                    second |= _match(narrowed, program)
                hit[inner] = second
            matrix[row] = hit
        keep = matrix.any(axis=0)
        return idx[keep], [frozenset(names[r] for r in np.flatnonzero(matrix[:, c])) for c in np.flatnonzero(keep)]

    def detect_array(self, strings: pa.Array, *, engine: str = "auto", html_done: Container[int] = (),
                     stats: dict[str, int] | None = None) -> list[tuple[int, CellHits]]:
        """Hits of every cell of a string array, as ``(index, hits)`` for the cells with any.

        Args:
            strings: pyarrow string / large_string array.
            engine: ``auto`` / ``re2`` (pre-filter, then Python on candidates) or ``re`` (Python on all).
            html_done: Indices of cells whose hidden HTML the caller judged (HTML documents).
            stats: Incremented with ``candidates`` (cells handed to Python).
        """
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")
        if engine == "re":
            idx = np.flatnonzero(pc.is_valid(strings).to_numpy(zero_copy_only=False))
            groups: list[frozenset[str]] | None = None
        else:
            idx, groups = self.candidates(strings)
        if stats is not None:
            stats["candidates"] = stats.get("candidates", 0) + len(idx)
        if not len(idx):
            return []
        texts = strings.take(pa.array(idx)).to_pylist()
        out: list[tuple[int, CellHits]] = []
        for n, (i, text) in enumerate(zip(idx.tolist(), texts)):
            if text is None:
                continue
            hits = self.detect(text, html_done=i in html_done, groups=None if groups is None else groups[n])
            if hits.rules:
                out.append((i, hits))
        return out


def _union(patterns: list[str]) -> str:
    return "|".join(f"(?:{p})" for p in dict.fromkeys(patterns))


def _programs(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """Unions of at most :data:`_UNION_CHUNK` patterns (RE2's DFA runs out of memory on large unions)."""
    return tuple("|".join(f"(?:{p})" for p in patterns[i:i + _UNION_CHUNK])
                 for i in range(0, len(patterns), _UNION_CHUNK))


def _match(strings: pa.Array, program: str) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.fill_null(pc.match_substring_regex(strings, program), False).to_numpy(zero_copy_only=False)


@functools.lru_cache(maxsize=1)
def _rot13_table() -> Any:
    import numpy as np

    table = np.arange(256, dtype=np.uint8)
    for base in (ord("a"), ord("A")):
        for i in range(26):
            table[base + i] = base + (i + 13) % 26
    return table


def rot13_array(strings: pa.Array) -> pa.Array:
    """rot13 of every string, on the Arrow value buffer (rot13 changes ASCII letters only, and UTF-8
    multi-byte sequences hold no ASCII bytes, so a byte-wise translation is exact)."""
    import numpy as np
    import pyarrow as pa

    if strings.type not in (pa.string(), pa.large_string()):
        strings = strings.cast(pa.string())
    validity, offsets, data = strings.buffers()
    if data is None or data.size == 0:
        return strings
    rotated = _rot13_table()[np.frombuffer(data, dtype=np.uint8)]
    cls = pa.StringArray if strings.type == pa.string() else pa.LargeStringArray
    return cls.from_buffers(len(strings), offsets, pa.py_buffer(rotated), validity, strings.null_count,
                            strings.offset)
