"""Random strings matching a regular expression (seeded), for differential tests against Presidio.

Walks Python's own parse of the expression (``re._parser``): literals, classes, repeats (capped),
alternatives, groups and back-references are generated; a positive look-behind generates its
text (so ``(?<=claim )\\d{6}`` yields ``claim 123456``); other look-arounds and anchors are
skipped (callers filter the samples through the real expression).
"""

from __future__ import annotations

import random
import re
import string

try:
    from re import _constants as C
    from re import _parser as sre_parse
except ImportError:  # Python < 3.11
    import sre_constants as C  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

_CATEGORY = {
    C.CATEGORY_DIGIT: string.digits,
    C.CATEGORY_WORD: string.ascii_letters + string.digits,
    C.CATEGORY_SPACE: " ",
    C.CATEGORY_NOT_DIGIT: string.ascii_letters,
    C.CATEGORY_NOT_WORD: " -.",
    C.CATEGORY_NOT_SPACE: string.ascii_letters + string.digits,
}
_PRINTABLE = string.ascii_letters + string.digits + " -./"
MAX_REPEAT = 6


def _class_chars(items, rng: random.Random) -> str:
    chars: list[str] = []
    negate = False
    for op, av in items:
        if op is C.NEGATE:
            negate = True
        elif op is C.LITERAL:
            chars.append(chr(av))
        elif op is C.RANGE:
            lo, hi = av
            chars.extend(chr(c) for c in range(lo, min(hi, lo + 200) + 1))
        elif op is C.CATEGORY:
            chars.extend(_CATEGORY.get(av, string.ascii_letters))
    if negate:
        excluded = set(chars)
        chars = [c for c in _PRINTABLE if c not in excluded]
    return rng.choice(chars) if chars else ""


def _emit(parsed, rng: random.Random, groups: dict[int, str]) -> str:
    out: list[str] = []
    for op, av in parsed:
        if op is C.LITERAL:
            out.append(chr(av))
        elif op is C.NOT_LITERAL:
            out.append(rng.choice([c for c in _PRINTABLE if ord(c) != av]))
        elif op is C.ANY:
            out.append(rng.choice(string.ascii_letters))
        elif op is C.IN:
            out.append(_class_chars(av, rng))
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", None)):
            lo, hi, sub = av
            hi = min(hi, lo + MAX_REPEAT) if hi != C.MAXREPEAT else lo + MAX_REPEAT
            out.extend(_emit(sub, rng, groups) for _ in range(rng.randint(lo, hi)))
        elif op is C.BRANCH:
            out.append(_emit(rng.choice(av[1]), rng, groups))
        elif op is C.SUBPATTERN:
            group, _add, _del, sub = av
            text = _emit(sub, rng, groups)
            if group:
                groups[group] = text
            out.append(text)
        elif op is C.GROUPREF:
            out.append(groups.get(av, ""))
        elif op is C.ASSERT:
            direction, sub = av
            if direction < 0:
                out.append(_emit(sub, rng, groups))
        elif op is C.CATEGORY:
            out.append(rng.choice(_CATEGORY.get(av, string.ascii_letters)))
        # AT (anchors), ASSERT_NOT, ATOMIC_GROUP...: generate nothing
    return "".join(out)


def sample(pattern: str, rng: random.Random, flags: int = 0) -> str:
    """One random string built from ``pattern``'s structure (not guaranteed to match it)."""
    pattern = re.sub(r"\(\?[aiLmsux]+\)", "", pattern)  # inline global flags (the regex module allows them anywhere)
    return _emit(sre_parse.parse(pattern, flags & ~re.IGNORECASE), rng, {})
