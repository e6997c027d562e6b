"""Text of HTML documents, and the text HTML hides from a human reader but not from a model.

Hidden: comments, elements with the ``hidden`` attribute, ``<input type=hidden>`` values, and inline
styles that make text invisible (``display:none``, ``visibility:hidden``, zero font size or opacity,
white text on a white or unset background, zero-size boxes with hidden overflow, text pushed far
off-screen, ``clip`` to nothing). Rules in ``<style>`` sheets are not evaluated (documented limit).
``<script>`` and ``<style>`` content is neither visible nor hidden text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
                   "source", "track", "wbr"})
_SKIP = frozenset({"script", "style", "noscript", "template"})
_BLOCK = frozenset({"p", "div", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
                    "header", "footer", "blockquote", "pre", "ul", "ol", "table", "br", "hr", "title"})
_WHITE = r"(?:#fff(?:fff)?(?:ff)?|white|rgba?\(\s*255\s*,\s*255\s*,\s*255\s*(?:,\s*[0-9.]+\s*)?\)|hsl\(\s*0\s*,\s*0%\s*,\s*100%\s*\))"
_HIDING = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*(?:hidden|collapse)|font-size\s*:\s*0(?:\.0+)?(?:px|pt|em|rem|%)?\s*(?:;|!|$)"
    r"|opacity\s*:\s*0(?:\.0+)?\s*(?:;|!|$)|text-indent\s*:\s*-\d{3,}|(?:left|top|right)\s*:\s*-\d{3,}\s*px"
    r"|clip\s*:\s*rect\(\s*0[^)]*\)|clip-path\s*:\s*inset\(\s*(?:50|100)%|transform\s*:\s*scale\(\s*0\s*\)"
    r"|color\s*:\s*transparent",
    re.IGNORECASE,
)
_ZERO_BOX = re.compile(r"(?:^|;)\s*(?:height|width|max-height)\s*:\s*0(?:px)?\s*(?:;|$)", re.IGNORECASE)
_OVERFLOW_HIDDEN = re.compile(r"overflow\s*:\s*hidden", re.IGNORECASE)
_COLOR = re.compile(r"(?:^|;)\s*color\s*:\s*([^;!]+)", re.IGNORECASE)
_BACKGROUND = re.compile(r"background(?:-color)?\s*:\s*([^;!]+)", re.IGNORECASE)
_WHITE_RE = re.compile(rf"^\s*{_WHITE}\s*$", re.IGNORECASE)

#: Cheap test of whether a text can hold hidden HTML at all (RE2 and Python alike).
HINT_TEMPLATE = r"<!--|style%=|hidden|<input|<font|color%="
#: Hints of hidden *elements*; without one, comments are the only hidden text (no need to parse).
_ELEMENT_HINT = re.compile(r"style\s*=|hidden|<input|<font|color\s*=", re.IGNORECASE)
_COMMENT = re.compile(r"<!--(.*?)(?:-->|$)", re.DOTALL)


@dataclass
class HtmlText:
    """What a reader sees and what is hidden from them."""

    visible: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(self.visible) + "\n" + "\n".join(self.hidden)


def _style_hides(style: str) -> bool:
    if _HIDING.search(style):
        return True
    if _ZERO_BOX.search(style) and _OVERFLOW_HIDDEN.search(style):
        return True
    color = _COLOR.search(style)
    if color and _WHITE_RE.match(color.group(1)):
        background = _BACKGROUND.search(style)
        return background is None or bool(_WHITE_RE.match(background.group(1)))
    return False


def _hides(tag: str, attrs: dict[str, str | None]) -> bool:
    if "hidden" in attrs:
        return True
    if tag == "input" and (attrs.get("type") or "").lower() == "hidden":
        return True
    if tag == "font" and _WHITE_RE.match(attrs.get("color") or ""):
        return True
    return _style_hides(attrs.get("style") or "")


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = HtmlText()
        self._stack: list[tuple[str, bool]] = []
        self._skip = 0

    @property
    def _hidden(self) -> bool:
        return bool(self._stack) and self._stack[-1][1]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        amap = {k.lower(): v for k, v in attrs}
        hides = _hides(tag, amap)
        if tag == "input":
            value = amap.get("value")
            if value and (hides or self._hidden):
                self.out.hidden.append(value)
        for name in ("alt", "title", "aria-label", "placeholder"):
            value = amap.get(name)
            if value:
                (self.out.hidden if self._hidden or hides else self.out.visible).append(value)
        if tag in _BLOCK:
            self.out.visible.append("\n")
        if tag in _VOID:
            return
        if tag in _SKIP:
            self._skip += 1
        parent_hidden = self._hidden
        if hides and not parent_hidden:
            self.out.hidden.append("")  # a new hidden segment
        self._stack.append((tag, parent_hidden or hides))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                for t, _ in self._stack[i:]:
                    if t in _SKIP:
                        self._skip -= 1
                del self._stack[i:]
                break
        if tag in _BLOCK:
            self.out.visible.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._hidden:
            if not self.out.hidden:
                self.out.hidden.append("")
            self.out.hidden[-1] += data
        else:
            self.out.visible.append(data)

    def handle_comment(self, data: str) -> None:
        self.out.hidden.append(data)


def hidden_segments(text: str) -> list[str]:
    """Hidden text of a document: comments only (a regex) unless it can hide elements (parsed)."""
    if not _ELEMENT_HINT.search(text):
        return [c for c in (m.group(1).strip() for m in _COMMENT.finditer(text)) if c]
    return extract(text).hidden


def extract(html: str) -> HtmlText:
    """Visible and hidden text of an HTML document (or of Markdown with inline HTML)."""
    parser = _Extractor()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # malformed markup: keep what was read
        pass
    out = parser.out
    out.hidden = [h for h in (s.strip() for s in out.hidden) if h]
    return out
