"""The patient summary for people who print it: a standalone HTML page and a PDF, from the
document Bundle of ``symfhir.sharing.summary``.

Both read the Composition's narratives through ``summary_narrative.narrative_blocks`` (text
of paragraphs and tables only) and write that text escaped (HTML) or as text (PDF): a
document from anywhere renders without carrying markup, scripts or styles along. The page
loads nothing and runs nothing; its Content-Security-Policy allows only its own stylesheet.

The PDF uses a Unicode TrueType font: ``SYMFHIR_PDF_FONT`` (and ``SYMFHIR_PDF_FONT_BOLD``)
when set, else DejaVu Sans of the Debian package fonts-dejavu-core. A character the font
cannot draw (or, without any TrueType font, any character outside Latin-1, all fpdf2's core
fonts know) is printed as "?" and the PDF says so at its top: a name is never silently
changed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from fpdf import FPDF

from symfhir.errors import SharingError
from symfhir.sharing.summary_narrative import Block, Paragraph, narrative_blocks
from symfhir.sharing.summary_pdf_table import TableWriter

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
FOOTER = (
    "Confidential health information, shared with the client's consent. "
    "Do not pass it on without the client's permission."
)
REPLACED_NOTICE = (
    "Some characters of this record cannot be drawn with this PDF's font and are shown as "
    '"?". The HTML and FHIR versions of this summary carry them unchanged.'
)


@dataclass(frozen=True)
class _Section:
    title: str
    blocks: list[Block]
    level: int


@dataclass(frozen=True)
class _View:
    title: str
    intro: list[Block]
    identifier: str
    timestamp: str
    sections: list[_Section]


def _view(document: Mapping[str, Any]) -> _View:
    """What both renderings show. Raises SharingError when ``document`` is not a document
    Bundle that starts with its Composition."""
    if not isinstance(document, Mapping) or document.get("resourceType") != "Bundle":
        raise SharingError("document: not a FHIR Bundle")
    entries = document.get("entry")
    first = entries[0] if isinstance(entries, list) and entries else None
    composition = first.get("resource") if isinstance(first, Mapping) else None
    if not isinstance(composition, Mapping) or composition.get("resourceType") != "Composition":
        raise SharingError("document: the first entry is not a Composition")
    identifier = document.get("identifier")
    value = identifier.get("value") if isinstance(identifier, Mapping) else None
    return _View(
        title=_plain(composition.get("title")) or "Patient summary",
        intro=narrative_blocks(_div(composition)),
        identifier=_plain(value),
        timestamp=_plain(document.get("timestamp")),
        sections=list(_sections(composition.get("section"), 2)),
    )


def _sections(raw: object, level: int) -> Iterable[_Section]:
    for section in raw if isinstance(raw, list) else []:
        if not isinstance(section, Mapping):
            continue
        yield _Section(_plain(section.get("title")), narrative_blocks(_div(section)), level)
        if level < 4:
            yield from _sections(section.get("section"), level + 1)


def _div(node: Mapping[str, Any]) -> object:
    text = node.get("text")
    return text.get("div") if isinstance(text, Mapping) else None


def _plain(value: object) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def _when(timestamp: str) -> str:
    try:
        return datetime.fromisoformat(timestamp).strftime("%Y-%m-%d %H:%M %Z").strip()
    except ValueError:
        return timestamp


# --- HTML -----------------------------------------------------------------------------------

STYLE = """
body { font: 11pt/1.4 "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: #111;
  max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin: 0 0 .5rem; }
h2 { font-size: 1.15rem; margin: 1.6rem 0 .4rem; border-bottom: 1px solid #888; }
h3, h4 { font-size: 1rem; margin: 1.2rem 0 .3rem; }
table { border-collapse: collapse; width: 100%; font-size: .95em; }
th, td { border: 1px solid #bbb; padding: .25rem .4rem; text-align: left; vertical-align: top; }
th { background: #eee; }
.meta, footer { color: #444; font-size: .9em; }
footer { margin-top: 2rem; border-top: 1px solid #888; padding-top: .5rem; }
@page { margin: 15mm; }
@media print {
  body { font-size: 9.5pt; margin: 0; max-width: none; }
  h2, h3, h4 { break-after: avoid; page-break-after: avoid; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; page-break-inside: avoid; }
  th { background: none; }
}
""".strip()
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'none'; "
    "base-uri 'none'; form-action 'none'"
)


def summary_html(document: Mapping[str, Any]) -> str:
    """A standalone printable HTML page of the summary ``document``: every text escaped, no
    script, no outside resource. Raises SharingError for a Bundle without a Composition first."""
    view = _view(document)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(view.title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{escape(view.title)}</h1>",
        *_html_blocks(view.intro),
        f'<p class="meta">Document {escape(view.identifier)}, {escape(_when(view.timestamp))}</p>',
        "</header>",
        "<main>",
    ]
    for section in view.sections:
        level = min(section.level, 4)
        parts.append(f"<section><h{level}>{escape(section.title)}</h{level}>")
        parts.extend(_html_blocks(section.blocks))
        parts.append("</section>")
    parts += ["</main>", f"<footer><p>{escape(FOOTER)}</p></footer>", "</body>", "</html>", ""]
    return "\n".join(parts)


def _html_blocks(blocks: list[Block]) -> list[str]:
    out = []
    for block in blocks:
        if isinstance(block, Paragraph):
            out.append(f"<p>{escape(block.text)}</p>")
            continue
        table = ["<table>"]
        if block.header:
            cells = "".join(f'<th scope="col">{escape(h)}</th>' for h in block.header)
            table.append(f"<thead><tr>{cells}</tr></thead>")
        table.append("<tbody>")
        for row in block.rows:
            table.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
        table.append("</tbody></table>")
        out.append("".join(table))
    return out


# --- PDF ------------------------------------------------------------------------------------


def pdf_fonts(environ: Mapping[str, str] = os.environ) -> tuple[Path, Path] | None:
    """The (regular, bold) TrueType fonts of the PDF; None when there is none (core fonts).
    The bold one falls back to the regular one."""
    regular = environ.get("SYMFHIR_PDF_FONT")
    if regular:
        bold = environ.get("SYMFHIR_PDF_FONT_BOLD") or regular
        return (Path(regular), Path(bold)) if Path(regular).is_file() else None
    for folder in FONT_DIRS:
        paths = [folder / name for name in FONT_FILES]
        if paths[0].is_file():
            return paths[0], paths[1] if paths[1].is_file() else paths[0]
    return None


class _Pdf(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(size=7.5)
        self.set_text_color(90)
        self.cell(0, 5, f"{FOOTER}  Page {self.page_no()}/{{nb}}", align="C")


def summary_pdf(document: Mapping[str, Any], *, environ: Mapping[str, str] = os.environ) -> bytes:
    """The summary ``document`` as a PDF (US Letter) with a Unicode font (see the module's
    docstring). Raises SharingError for a Bundle without a Composition first."""
    view = _view(document)
    pdf = _Pdf(format="letter")
    fonts = pdf_fonts(environ)
    if fonts is not None:
        pdf.add_font("summary", "", str(fonts[0]))
        pdf.add_font("summary", "B", str(fonts[1]))
        family = "summary"
        drawable = set(pdf.fonts["summary"].cmap) & set(pdf.fonts["summaryB"].cmap)
    else:
        family = "helvetica"
        drawable = set(range(32, 256))
    fit = _Fitter(drawable)
    fit.scan(view)
    pdf.set_title(fit(view.title))
    pdf.set_creator("symfhir")
    with contextlib.suppress(ValueError):  # a document's own timestamp, not the clock's
        pdf.set_creation_date(datetime.fromisoformat(view.timestamp))
    pdf.set_auto_page_break(True, margin=16)
    pdf.set_margins(15, 15, 15)
    pdf.add_page()
    pdf.set_font(family, "B", 16)
    pdf.multi_cell(0, 8, fit(view.title), align="L", new_x="LMARGIN", new_y="NEXT")
    if fit.replaced:
        pdf.set_font(family, "B", 9)
        pdf.set_text_color(150, 0, 0)
        pdf.multi_cell(0, 5, REPLACED_NOTICE, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0)
    pdf.set_font(family, "", 10)
    _pdf_blocks(pdf, family, view.intro, fit)
    pdf.set_font(family, "", 8.5)
    pdf.set_text_color(70)
    meta = f"Document {view.identifier}, {_when(view.timestamp)}"
    pdf.multi_cell(0, 5, fit(meta), align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0)
    for section in view.sections:
        pdf.ln(3)
        size = {2: 12.5, 3: 11}.get(section.level, 10)
        pdf.set_font(family, "B", size)
        pdf.multi_cell(0, 7, fit(section.title), align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(family, "", 9)
        _pdf_blocks(pdf, family, section.blocks, fit)
    return bytes(pdf.output())


def _pdf_blocks(pdf: FPDF, family: str, blocks: list[Block], fit: _Fitter) -> None:
    for block in blocks:
        if isinstance(block, Paragraph):
            pdf.multi_cell(0, 5, fit(block.text), align="L", new_x="LMARGIN", new_y="NEXT")
        else:
            TableWriter(pdf, family).write(
                [fit(h) for h in block.header], [[fit(c) for c in row] for row in block.rows]
            )
            pdf.ln(1.5)


class _Fitter:
    """Replaces the characters the font cannot draw with "?" and remembers that it did."""

    def __init__(self, drawable: set[int]) -> None:
        self.drawable = drawable
        self.replaced = False

    def __call__(self, text: str) -> str:
        if all(ord(c) in self.drawable for c in text):
            return text
        self.replaced = True
        return "".join(c if ord(c) in self.drawable else "?" for c in text)

    def scan(self, view: _View) -> None:
        """Decide before the first line whether anything will be replaced (for the notice)."""
        texts = [view.title, view.identifier, view.timestamp]
        for blocks in [view.intro, *(s.blocks for s in view.sections)]:
            for block in blocks:
                if isinstance(block, Paragraph):
                    texts.append(block.text)
                else:
                    texts += [*block.header, *(c for row in block.rows for c in row)]
        texts += [s.title for s in view.sections]
        for text in texts:
            self(text)
