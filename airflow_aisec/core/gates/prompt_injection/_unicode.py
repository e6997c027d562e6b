"""Hidden and look-alike characters: text normalisation, the ``hidden_unicode`` and ``homoglyph`` rules.

:func:`normalise` is what the phrase rules read: invisible characters removed, full-width /
mathematical / enclosed Latin letters folded to ASCII, and look-alike Cyrillic / Greek / Armenian
letters folded inside words that also hold ASCII letters ("ignоre" with a Cyrillic o). Letters of
real Cyrillic or Greek words are left alone. It changes a text only where :data:`NEEDS_RE2` matches,
which is what makes the RE2 pre-filter sound: a text it does not select is its own normalisation.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata

from airflow_aisec.core.gates.prompt_injection._pattern import py_char, re2_char, ws_body

# --- invisible characters -----------------------------------------------------------------------
_INVISIBLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F),
    (0x3164, 0x3164), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0x1BCA0, 0x1BCA3),
    (0xE0000, 0xE007F), (0xE0100, 0xE01EF),
)
INVISIBLE = frozenset(chr(cp) for lo, hi in _INVISIBLE_RANGES for cp in range(lo, hi + 1))

# Characters Python's case-insensitive matching equates with an ASCII letter but RE2 does not
# (dotted / dotless i): folded so that both engines see the same text.
_CASE_SPECIALS = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}


def _nfkc_ascii_ranges() -> dict[str, str]:
    """Full-width, mathematical and enclosed letters/digits whose NFKC form is one ASCII letter or digit."""
    out: dict[str, str] = {}
    for lo, hi in ((0xFF10, 0xFF5A), (0x1D400, 0x1D7FF), (0x24B6, 0x24E9), (0x1F130, 0x1F189)):
        for cp in range(lo, hi + 1):
            folded = unicodedata.normalize("NFKC", chr(cp))
            if len(folded) == 1 and folded.isascii() and folded.isalnum():
                out[chr(cp)] = folded.lower()
    return out


#: Always folded, wherever they are.
ALWAYS_FOLD: dict[str, str] = {**_nfkc_ascii_ranges(), **_CASE_SPECIALS}

# Look-alikes of Latin letters (Unicode confusables, lower-cased targets).
_CONFUSABLE_SOURCE = {
    "a": "\u0430\u0251\u03b1\u0410\u0391",
    "b": "\u0412\u0392\u042c",
    "c": "\u0441\u03f2\u0421\u03f9",
    "d": "\u0501",
    "e": "\u0435\u0415\u0395\u04bd",
    "g": "\u0261",
    "h": "\u04bb\u041d\u0397",
    "i": "\u0456\u03b9\u0406\u0399\u04c0\u0269",
    "j": "\u0458\u0408",
    "k": "\u03ba\u041a\u039a",
    "l": "\u04cf",
    "m": "\u041c\u039c",
    "n": "\u039d\u0578",
    "o": "\u043e\u03bf\u0585\u041e\u039f",
    "p": "\u0440\u03c1\u0420\u03a1",
    "q": "\u051b",
    "s": "\u0455\u0405",
    "t": "\u0422\u03a4",
    "u": "\u03c5\u057d",
    "v": "\u03bd\u0475",
    "w": "\u051d",
    "x": "\u0445\u0425\u03a7",
    "y": "\u0443\u04ae\u03a5",
    "z": "\u0396",
}
CONFUSABLES: dict[str, str] = {ch: ascii_ for ascii_, chars in _CONFUSABLE_SOURCE.items() for ch in chars}

_DELETE = {ord(c): None for c in INVISIBLE}
_ALWAYS_TABLE = {**_DELETE, **{ord(k): v for k, v in ALWAYS_FOLD.items()}}
_CONF_TABLE = {ord(k): v for k, v in CONFUSABLES.items()}
_FULL_TABLE = {**_ALWAYS_TABLE, **_CONF_TABLE}


def _ranges_class(chars: frozenset[str] | set[str], *, re2: bool) -> str:
    """A character class body listing ``chars`` as ranges."""
    conv = re2_char if re2 else py_char
    cps = sorted(ord(c) for c in chars)
    parts: list[str] = []
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        lo, hi = chr(cps[i]), chr(cps[j])
        parts.append(conv(lo) if i == j else f"{conv(lo)}-{conv(hi)}")
        i = j + 1
    return "".join(parts)


# Token: a run of characters that are neither whitespace nor ASCII punctuation.
_PUNCT = "".join("\\" + c if c in "\\]^-[" else c for c in string.punctuation)


def _token_class(re2: bool) -> str:
    return f"[^{ws_body(re2, exact=True)}{_PUNCT}]"


def _mixed_token_re2() -> str:
    """A token holding an ASCII letter and a confusable letter (what :func:`normalise` folds), in RE2."""
    tok = _token_class(True)
    conf = "[" + _ranges_class(set(CONFUSABLES), re2=True) + "]"
    return f"[A-Za-z]{tok}*{conf}|{conf}{tok}*[A-Za-z]"


_NEEDS_CHARS = set(INVISIBLE) | set(ALWAYS_FOLD)
#: Where :func:`normalise` can change a text (RE2 syntax, for the pre-filter).
NEEDS_RE2 = f"[{_ranges_class(_NEEDS_CHARS, re2=True)}]|{_mixed_token_re2()}"
_ALWAYS_ANY = re.compile(f"[{_ranges_class(_NEEDS_CHARS, re2=False)}]")
_CONF_ANY = re.compile("[" + _ranges_class(set(CONFUSABLES), re2=False) + "]")
_ASCII_LETTER = re.compile("[A-Za-z]")
_TOKEN = re.compile(_token_class(False) + "+")


def _fold_mixed(match: re.Match[str]) -> str:
    token = match.group()
    if _CONF_ANY.search(token) and _ASCII_LETTER.search(token):
        return token.translate(_CONF_TABLE)
    return token


def normalise(text: str) -> str:
    """What the phrase rules read (see the module docstring). Unchanged when nothing needs folding."""
    always = _ALWAYS_ANY.search(text)
    confusable = _CONF_ANY.search(text)
    if not always and not confusable:
        return text
    if always:
        text = text.translate(_ALWAYS_TABLE)
    if confusable:
        text = _TOKEN.sub(_fold_mixed, text)
    return text


# --- hidden_unicode -----------------------------------------------------------------------------
# Emoji tag sequences (subdivision flags such as England's) are the one legitimate use of tag characters.
_TAG_FLAG = re.compile("\U0001f3f4[\U000e0020-\U000e007e]{1,12}\U000e007f")
_TAG = re.compile("[\U000e0000-\U000e007f]")
_BIDI_OVERRIDE = re.compile("[\u202d\u202e]")
_BIDI_EMBED = re.compile("[\u202a\u202b\u202c\u2066-\u2069]")
_RTL_LETTER = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
_ZW = "\u200b-\u200d\u2060-\u2064\ufeff\u180e\u034f"
_ZW_IN_WORD = re.compile(f"[A-Za-z][{_ZW}]+[A-Za-z]")
_ZW_RUN = re.compile(f"[{_ZW}\u200e\u200f]{{3,}}")
_VS_IN_WORD = re.compile("[A-Za-z][\ufe00-\ufe0f\U000e0100-\U000e01ef]+[A-Za-z]")
_VS_RUN = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]{3,}")

#: RE2 anchors of :func:`hidden_unicode` (each of its tests needs one of these characters).
HIDDEN_RE2 = (
    "[\\x{e0000}-\\x{e007f}\\x{202a}-\\x{202e}\\x{2066}-\\x{2069}\\x{200b}-\\x{200f}\\x{2060}-\\x{2064}"
    "\\x{feff}\\x{180e}\\x{34f}\\x{e0100}-\\x{e01ef}]|[A-Za-z][\\x{fe00}-\\x{fe0f}]|[\\x{fe00}-\\x{fe0f}]{3}"
)


def hidden_unicode(text: str) -> bool:
    """Tag characters (outside emoji flags), bidi overrides, bidi embeddings in text without
    right-to-left letters, zero-width or variation characters inside a Latin word, or runs of
    three or more of them (steganography)."""
    if _TAG.search(text) and _TAG.search(_TAG_FLAG.sub("", text)):
        return True
    if _BIDI_OVERRIDE.search(text):
        return True
    if _BIDI_EMBED.search(text) and not _RTL_LETTER.search(text):
        return True
    return bool(_ZW_IN_WORD.search(text) or _ZW_RUN.search(text) or _VS_IN_WORD.search(text)
                or _VS_RUN.search(text))


# --- homoglyph ------------------------------------------------------------------------------------
#: Words attackers disguise (lower-case ASCII). A token that folds to one of them is a finding.
TRIGGER_WORDS: tuple[str, ...] = (
    "ignore", "disregard", "forget", "override", "bypass", "instructions", "instruction", "previous",
    "prior", "system", "prompt", "jailbreak", "jailbroken", "developer", "reveal", "unrestricted",
    "unfiltered", "uncensored", "assistant", "confidential", "password", "secret", "secrets",
    "ignora", "ignoriere", "instrucciones", "anweisungen", "vergiss", "oublie", "consignes",
    "olvida", "anteriores", "vorherigen",
)
@functools.lru_cache(maxsize=1)
def homoglyph_re2() -> str:
    """RE2 pattern matching any substring that folds to a trigger word (invisibles allowed between)."""
    by_letter: dict[str, set[str]] = {}
    for ch, target in {**ALWAYS_FOLD, **CONFUSABLES}.items():
        if target.isalpha():
            by_letter.setdefault(target, set()).add(ch)
    inv = "[" + _ranges_class(INVISIBLE, re2=True) + "]*"
    words = []
    for word in TRIGGER_WORDS:
        parts = []
        for letter in word:
            members = {letter, letter.upper(), *by_letter.get(letter, ())}
            parts.append("[" + _ranges_class(members, re2=True) + "]")
        words.append(inv.join(parts))
    return "(?i:" + "|".join(words) + ")"


_TRIGGERS = frozenset(TRIGGER_WORDS)
#: RE2 class of the characters a homoglyph needs (the cheap first stage of its pre-filter).
FOLDABLE_RE2 = "[" + _ranges_class(set(ALWAYS_FOLD) | set(CONFUSABLES), re2=True) + "]"
_FOLDABLE = re.compile("[" + _ranges_class(set(ALWAYS_FOLD) | set(CONFUSABLES), re2=False) + "]")


def homoglyph(text: str) -> bool:
    """A word written with look-alike letters (or full-width / mathematical ones) that reads as a trigger word."""
    for match in _TOKEN.finditer(text):
        token = match.group()
        if not _FOLDABLE.search(token):
            continue
        if token.translate(_FULL_TABLE).lower() in _TRIGGERS:
            return True
    return False
