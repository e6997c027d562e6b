"""Encoded payloads: base64 / hex blobs and rot13 text that decode to instruction phrasing.

A blob counts only when it decodes to readable text in which a phrase rule or a chat-template
marker fires: base64 images, digests, keys and other binary blobs decode to bytes that are not
text, so they never count however long they are. Decoding is bounded per blob and per cell.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Callable

from airflow_aisec.core.policy.sections.prompt_injection import DecodeSettings

_B64_CHARS = "A-Za-z0-9+/_\\-"
_WRAPPED_TAIL = rf"(?:[ \t]*\r?\n[ \t]*[{_B64_CHARS}]{{4,}}={{0,2}})*"
# Base64 of ASCII text: each 4-character group encodes 3 bytes below 0x80, which pins its first three
# characters to these classes (top bits zero); five such groups in a row are 15 ASCII bytes. Random
# words, URL paths and binary blobs rarely have them, instruction text always does.
_ASCII_QUAD = "[A-Za-f][A-HQ-Xg-nw-z0-3][ABEFIJMNQRUVYZcdghklopstwx014589][A-Za-z0-9+/_\\-]"
_ASCII_B64 = f"(?:{_ASCII_QUAD}){{5}}"
# Hex of printable ASCII: every byte 0x20..0x7e, so its first digit is 2..7.
_ASCII_HEX = (r"(?:[2-7][0-9A-Fa-f]){10}", r"(?:\\x[2-7][0-9A-Fa-f]){10}", r"(?:0x[2-7][0-9A-Fa-f][ ,]*){10}",
              r"(?:[2-7][0-9A-Fa-f][ :]){10}")


class Decoder:
    """Finds and decodes blobs for one :class:`DecodeSettings`.

    Args:
        settings: Minimum lengths and bounds.
        check: Called with each decoded text (already readable); True means instruction phrasing.
    """

    def __init__(self, settings: DecodeSettings, check: Callable[[str], bool]) -> None:
        self.settings = settings
        self.check = check
        n = settings.hex_min_bytes
        self._b64 = re.compile(rf"[{_B64_CHARS}]{{{settings.base64_min_chars},}}={{0,2}}{_WRAPPED_TAIL}")
        hex_patterns = (
            rf"(?:[0-9A-Fa-f]{{2}}){{{n},}}",
            rf"(?:\\x[0-9A-Fa-f]{{2}}){{{n},}}",
            rf"(?:0x[0-9A-Fa-f]{{2}}[ ,]*){{{n},}}",
            rf"(?:[0-9A-Fa-f]{{2}}[ :]){{{n},}}",
        )
        self._hex = re.compile("|".join(hex_patterns))
        self._ascii_b64 = re.compile(_ASCII_B64)
        self._ascii_hex = re.compile("|".join(_ASCII_HEX))
        #: RE2 anchors (plain ASCII classes: the same in both engines). A blob is decoded only where
        #: one of them matches, in the ``re`` engine too.
        self.anchors: tuple[str, ...] = (_ASCII_B64, *_ASCII_HEX)

    def encodings(self, text: str, normalised: str | None = None, *, blobs: bool = True,
                  rot13: bool = True) -> set[str]:
        """Which encodings (``base64``, ``hex``, ``rot13``) hide instruction phrasing in ``text``.

        ``normalised`` is the text as the phrase rules read it: rot13 is applied to that (a
        full-width "ｉｇｎｏｒｅ" must not read as plain text after a rot13 that leaves it alone).
        ``blobs`` / ``rot13`` False skip checks the pre-filter has ruled out.
        """
        found: set[str] = set()
        budget = self.settings.max_blobs if blobs else 0
        for match in self._hex.finditer(text):
            if budget <= 0:
                break
            if not self._ascii_hex.search(match.group()):
                continue
            budget -= 1
            if self._readable_hit(_hex_bytes(match.group(), self.settings.max_decoded_bytes)):
                found.add("hex")
                break
        for match in self._b64.finditer(text):
            if budget <= 0:
                break
            if not self._ascii_b64.search(match.group()):
                continue
            budget -= 1
            if self._b64_hit(match.group()):
                found.add("base64")
                break
        if rot13 and self.settings.rot13 and self.check(codecs.encode(text if normalised is None else normalised, "rot13")):
            found.add("rot13")
        return found

    def _b64_hit(self, blob: str) -> bool:
        compact = re.sub(r"\s+", "", blob).rstrip("=")[: self.settings.max_decoded_bytes * 4 // 3 + 4]
        urlsafe = ("-" in compact or "_" in compact) and "+" not in compact and "/" not in compact
        # A blob glued to a word ("base64aGVsbG8") is misaligned: try the four alignments.
        for skip in range(4):
            part = compact[skip:]
            part = part[: len(part) - len(part) % 4] if len(part) % 4 == 1 else part
            if len(part) < 8:
                break
            padded = part + "=" * (-len(part) % 4)
            try:
                raw = base64.urlsafe_b64decode(padded) if urlsafe else base64.b64decode(padded.replace("-", "+")
                                                                                         .replace("_", "/"))
            except (binascii.Error, ValueError):
                continue
            if self._readable_hit(raw):
                return True
        return False

    def _readable_hit(self, raw: bytes) -> bool:
        if not raw or not _mostly_text(raw[:256]):
            return False
        text = raw[: self.settings.max_decoded_bytes].decode("utf-8", errors="replace")
        if not _readable(text):
            return False
        return self.check(text)


def _hex_bytes(blob: str, limit: int) -> bytes:
    digits = re.sub(r"\\x|0x|[^0-9A-Fa-f]", "", blob)[: limit * 2]
    digits = digits[: len(digits) - len(digits) % 2]
    try:
        return bytes.fromhex(digits)
    except ValueError:
        return b""


_TEXT_BYTES = bytes(range(32, 127)) + b"\t\n\r"


def _mostly_text(raw: bytes) -> bool:
    """Cheap first look (C speed): mostly printable ASCII, as instructions in the phrase rules' languages
    are (random bytes are about 37% printable ASCII)."""
    return len(raw) - len(raw.translate(None, _TEXT_BYTES)) >= 0.75 * len(raw)


def _readable(text: str) -> bool:
    """Mostly printable text (what a model would read), not binary."""
    if not text:
        return False
    good = sum(1 for ch in text if ch.isprintable() or ch in "\n\r\t")
    return good >= 0.85 * len(text) and text.count("\ufffd") <= 0.05 * len(text)
