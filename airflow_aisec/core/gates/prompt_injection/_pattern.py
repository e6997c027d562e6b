"""One pattern source, two engines: Python ``re`` (the decision) and RE2 (the vectorized pre-filter).

Rules are written once as *templates* in a small dialect of Python regex syntax:

* ``~`` one or more separators (any Unicode whitespace, or ``*`` from Markdown emphasis);
* ``%`` zero or more separators;
* ``'`` any apostrophe (``'``, ``’``, ``ʼ``, backtick);
* ``\\b``, ``^``, ``$`` and look-arounds are allowed: the RE2 translation drops them.

:func:`to_python` gives the exact pattern; :func:`to_re2` a pattern RE2 accepts (pyarrow's
``match_substring_regex``) that matches wherever the Python one does (a superset): word
boundaries, anchors and look-arounds only ever *restrict* a match, so removing them can only
widen it; ``\\s`` becomes the explicit list of the characters Python's ``\\s`` matches (RE2's is
ASCII only); ``\\d`` / ``\\w`` become their Unicode classes. The pre-filter may select more cells
than the rules flag, never fewer, which is why both engines give identical results.
"""

from __future__ import annotations

import functools
import re

#: Characters Python's ``\s`` matches in a ``str`` pattern (RE2's ``\s`` is ASCII only).
WHITESPACE: tuple[str, ...] = tuple(
    chr(cp) for cp in (*range(0x09, 0x0E), *range(0x1C, 0x21), 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                       0x2028, 0x2029, 0x202F, 0x205F, 0x3000)
)
APOSTROPHES = "'\u2019\u02bc`"


def py_char(ch: str) -> str:
    """A character as a Python class member (escaped when needed)."""
    cp = ord(ch)
    if ch.isalnum() and cp < 128:
        return ch
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def re2_char(ch: str) -> str:
    cp = ord(ch)
    if ch.isalnum() and cp < 128:
        return ch
    return f"\\x{{{cp:x}}}"


def ws_body(re2: bool, *, exact: bool = False) -> str:
    """Body of a character class matching Python's ``\\s`` (for use inside ``[...]``).

    For RE2 the non-ASCII whitespace is widened to every non-ASCII character: still a superset, and
    a far smaller automaton (RE2's DFA ran out of memory on unions of patterns that each listed the
    Unicode spaces, and fell back to its slow NFA).
    """
    if re2 and not exact:
        return "\\t-\\r\\x{1c}-\\x{20}\\x{80}-\\x{10ffff}"
    conv = re2_char if re2 else py_char
    return "".join(conv(c) for c in WHITESPACE)


def _apos(re2: bool) -> str:
    conv = re2_char if re2 else py_char
    return "[" + "".join(conv(c) for c in APOSTROPHES) + "]"


def _sep(re2: bool, quant: str) -> str:
    return f"[{ws_body(re2)}*]{quant}"


def to_python(template: str) -> str:
    """The exact (Python ``re``) pattern of a template."""
    return _expand(template, re2=False)


def to_re2(template: str) -> str:
    """An RE2 pattern matching a superset of :func:`to_python`'s matches (see the module docstring)."""
    return _expand(template, re2=True)


def _skip_group(src: str, i: int) -> int:
    """Index just past the group that opens at ``src[i]`` (``(``), honouring escapes and classes."""
    depth = 0
    in_class = False
    while i < len(src):
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced group in pattern template")


def _expand(src: str, *, re2: bool) -> str:
    out: list[str] = []
    i = 0
    in_class = False
    negated = False
    while i < len(src):
        c = src[i]
        if c == "\\":
            nxt = src[i + 1] if i + 1 < len(src) else ""
            if nxt and nxt in "uU":
                width = 4 if nxt == "u" else 8
                cp = int(src[i + 2:i + 2 + width], 16)
                out.append(re2_char(chr(cp)) if re2 else src[i:i + 2 + width])
                i += 2 + width
                continue
            if re2 and not in_class:
                if nxt in "bBAZ":
                    i += 2
                    continue
                if nxt == "s":
                    out.append(f"[{ws_body(True)}]")
                    i += 2
                    continue
                if nxt == "d":
                    out.append(r"\p{Nd}")
                    i += 2
                    continue
                if nxt == "w":
                    out.append(r"[\p{L}\p{N}\p{M}_]")
                    i += 2
                    continue
            if re2 and in_class and nxt in "sdw":
                # In a negated class the exact list keeps the translation a superset.
                out.append({"s": ws_body(True, exact=negated), "d": r"\p{Nd}", "w": r"\p{L}\p{N}\p{M}_"}[nxt])
                i += 2
                continue
            out.append(src[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            elif c == "'":
                out.append("".join(re2_char(a) if re2 else py_char(a) for a in APOSTROPHES))
                i += 1
                continue
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            negated = src[i + 1:i + 2] == "^"
            if negated:
                out.append("^")
                i += 1
            i += 1
            continue
        if c == "(" and re2 and src[i + 1:i + 3] in ("?=", "?!") or c == "(" and re2 and src[i + 1:i + 4] in (
                "?<=", "?<!"):
            i = _skip_group(src, i)
            continue
        if c in "^$" and re2:
            i += 1
            continue
        if c == "~":
            out.append(_sep(re2, "+"))
        elif c == "%":
            out.append(_sep(re2, "*"))
        elif c == "'":
            out.append(_apos(re2))
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _top_level_alternatives(src: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    in_class = False
    start = 0
    i = 0
    while i < len(src):
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(src[start:i])
            start = i + 1
        i += 1
    parts.append(src[start:])
    return parts


def head(template: str, *, units: int = 3) -> str:
    """A prefix every match of ``template`` starts with (the template itself when there is none).

    The prefix is a sequence of up to ``units`` words or non-optional groups with the separators
    between them. The RE2 pre-filter first runs the union of the heads (a small automaton: the union
    of the full patterns is too large for RE2's DFA), then the full patterns on the cells that matched
    a head.
    """
    alternatives = _top_level_alternatives(template)
    if len(alternatives) > 1:
        return "|".join(f"(?:{head(a, units=units)})" for a in alternatives)
    src = template
    i = 0
    taken = 0
    end = 0
    while i < len(src) and taken < units:
        if src.startswith("\\b", i):
            i += 2
            continue
        c = src[i]
        if c in "~%'":
            i += 1
            continue
        if src.startswith("(?:", i):
            close = _skip_group(src, i)
            if src[close:close + 1] in ("?", "*", "{", "+"):
                break
            i = end = close
            taken += 1
            continue
        match = re.match(r"[A-Za-z]+", src[i:])
        if not match:
            break
        word = match.group()
        after = src[i + len(word):i + len(word) + 1]
        if after in ("?", "*", "{", "+"):
            if len(word) > 1:
                end = i + len(word) - 1
                taken += 1
            break
        i = end = i + len(word)
        taken += 1
    prefix = src[:end]
    while prefix.endswith(("~", "%")):
        prefix = prefix[:-1]
    return prefix if len(prefix.replace("\\b", "")) >= 3 else template


@functools.cache
def compile_template(template: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    return re.compile(to_python(template), flags)


def union(patterns: list[str]) -> str:
    """One alternation of already-expanded patterns (each in its own group)."""
    return "|".join(f"(?:{p})" for p in patterns)
