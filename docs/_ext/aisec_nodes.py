"""docutils building blocks shared by the generated reference pages (tables, docstring text)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from docutils import nodes

Cell = str | nodes.Node | Sequence[nodes.Node]

# ``code``, `code`, :role:`target` (rendered as plain code: generated pages never cross-reference)
_INLINE = re.compile(r"``(.+?)``|:[a-z:]+:`~?([^`]+)`|`([^`]+)`")


def inline(text: str) -> list[nodes.Node]:
    """Docstring text as nodes: code spans become literals, everything else stays plain text."""
    out: list[nodes.Node] = []
    pos = 0
    for match in _INLINE.finditer(text):
        if match.start() > pos:
            out.append(nodes.Text(text[pos:match.start()]))
        code = next(group for group in match.groups() if group is not None)
        out.append(nodes.literal(code, code))
        pos = match.end()
    if pos < len(text):
        out.append(nodes.Text(text[pos:]))
    return out


def docstring_blocks(text: str) -> list[nodes.Node]:
    """Paragraphs of a docstring; a paragraph ending in ``::`` introduces a literal block."""
    blocks: list[nodes.Node] = []
    lines = text.strip("\n").splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        para: list[str] = []
        while i < len(lines) and lines[i].strip() and not lines[i].startswith("    "):
            para.append(lines[i].strip())
            i += 1
        if para:
            joined = " ".join(para)
            literal_follows = joined.endswith("::")
            joined = joined[:-1] if literal_follows else joined
            blocks.append(nodes.paragraph("", "", *inline(joined)))
        else:
            literal_follows = True
        if literal_follows:
            while i < len(lines) and not lines[i].strip():
                i += 1
            code: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                code.append(lines[i][4:])
                i += 1
            if code:
                source = "\n".join(code).rstrip()
                blocks.append(nodes.literal_block(source, source))
    return blocks


def _cell(value: Cell) -> nodes.entry:
    entry = nodes.entry()
    if isinstance(value, str):
        entry += nodes.paragraph("", "", *inline(value)) if value else nodes.paragraph()
    elif isinstance(value, nodes.Node):
        entry += value if isinstance(value, nodes.Body) else nodes.paragraph("", "", value)
    else:
        entry += nodes.paragraph("", "", *value)
    return entry


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], widths: Sequence[int]) -> nodes.table:
    """A plain table; cells are text (docstring markup), one node or a list of inline nodes."""
    tbl = nodes.table(classes=["aisec-generated", "longtable"])
    group = nodes.tgroup(cols=len(headers))
    tbl += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    header_row = nodes.row()
    for title in headers:
        header_row += _cell(title)
    head += header_row
    body = nodes.tbody()
    group += body
    for values in rows:
        row = nodes.row()
        for value in values:
            row += _cell(value)
        body += row
    return tbl


def section(document: nodes.document, title: str | Sequence[nodes.Node], anchor: str) -> nodes.section:
    """A section with a stable, unique id (``anchor``) registered with the document."""
    sect = nodes.section(ids=[nodes.make_id(anchor)], names=[nodes.fully_normalize_name(anchor)])
    sect += nodes.title("", "", *([nodes.Text(title)] if isinstance(title, str) else title))
    document.note_explicit_target(sect, sect)
    return sect
