"""The narrative of the patient summary: paragraphs and tables, written as FHIR XHTML and
read back from any document's XHTML (pure).

The summary writes its narratives from blocks (``narrative_xhtml``); the HTML and PDF
renderings read them back (``narrative_blocks``) rather than copying the XHTML through, so
a document that did not come from here (a tampered file, another system's summary) can
carry no markup, script or style into a page: only the text of paragraphs, headings, list
items and table cells survives, and it is escaped again where it is written.

https://hl7.org/fhir/R4/narrative.html
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser

XHTML_NS = "http://www.w3.org/1999/xhtml"


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


Block = Paragraph | Table


def narrative_xhtml(blocks: list[Block] | tuple[Block, ...]) -> str:
    """The XHTML ``div`` of a narrative made of ``blocks``, every text escaped."""
    parts = [f'<div xmlns="{XHTML_NS}">']
    for block in blocks:
        if isinstance(block, Paragraph):
            parts.append(f"<p>{_text(block.text)}</p>")
            continue
        head = "".join(f"<th>{_text(h)}</th>" for h in block.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{_text(c)}</td>" for c in row) + "</tr>" for row in block.rows
        )
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    parts.append("</div>")
    return "".join(parts)


def _text(value: str) -> str:
    return escape(" ".join(str(value).split()), quote=True)


_PARAGRAPH_TAGS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "caption"})
_CELL_TAGS = frozenset({"td", "th"})
_IGNORED = frozenset({"script", "style", "template", "title", "head"})


class _Reader(HTMLParser):
    """Collects text into paragraphs and tables; ignores every attribute and unknown tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self._text: list[str] = []
        self._rows: list[tuple[list[str], bool]] | None = None  # (cells, all header cells)
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._row_header = True
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _IGNORED:
            self._skip += 1
        elif tag == "table":
            self._flush()
            self._rows = []
        elif tag == "tr" and self._rows is not None:
            self._row, self._row_header = [], True
        elif tag in _CELL_TAGS and self._row is not None:
            self._cell = []
            self._row_header &= tag == "th"
        elif tag in _PARAGRAPH_TAGS or tag == "br":
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _IGNORED:
            self._skip = max(0, self._skip - 1)
        elif tag in _CELL_TAGS and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._rows is not None:
            if self._row:
                self._rows.append((self._row, self._row_header))
            self._row = None
        elif tag == "table" and self._rows is not None:
            self._end_table()
        elif tag in _PARAGRAPH_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._cell is not None:
            self._cell.append(data)
        elif self._rows is None:
            self._text.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._text).split())
        if text:
            self.blocks.append(Paragraph(text))
        self._text = []

    def _end_table(self) -> None:
        rows = self._rows or []
        header: tuple[str, ...] = ()
        if rows and rows[0][1]:
            header = tuple(rows[0][0])
            rows = rows[1:]
        self.blocks.append(Table(header, tuple(tuple(cells) for cells, _ in rows)))
        self._rows = self._row = self._cell = None

    def finish(self) -> list[Block]:
        self.close()
        # an unclosed cell, row or table still counts (a narrative cut short)
        self.handle_endtag("td")
        self.handle_endtag("tr")
        if self._rows is not None:
            self._end_table()
        self._flush()
        return self.blocks


def narrative_blocks(xhtml: object) -> list[Block]:
    """The paragraphs and tables of a narrative ``div`` (any string; [] for anything else):
    text only, markup dropped, character references decoded."""
    if not isinstance(xhtml, str) or not xhtml:
        return []
    reader = _Reader()
    reader.feed(xhtml)
    return reader.finish()
