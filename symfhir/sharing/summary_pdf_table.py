"""A bordered PDF table with wrapped cells and its header repeated on every page, for the
patient summary's PDF (``symfhir.sharing.summary_render``)."""

from __future__ import annotations

from typing import Any

from fpdf import FPDF


class TableWriter:
    """A bordered table with wrapped cells and its header repeated on every page.

    Written with ``FPDF.text`` and rectangles rather than ``FPDF.table``: fpdf2's table lays
    every cell out twice through ``multi_cell`` (about 1 ms a cell), and a record of 2,000
    resources has some 15,000 cells.
    """

    SIZE = 8.5  # points
    LINE = 3.9  # mm between baselines
    PAD = 1.0  # mm inside a cell

    def __init__(self, pdf: FPDF, family: str) -> None:
        self.pdf = pdf
        self.family = family
        self._widths: dict[str, dict[str, float]] = {}
        self._metrics: dict[str, Any] = {}
        for style in ("", "B"):
            pdf.set_font(family, style, self.SIZE)
            self._metrics[style] = pdf.current_font.cw
            self._widths[style] = {}

    def _width(self, text: str, style: str) -> float:
        cache = self._widths[style]
        total = 0.0
        for char in text:
            width = cache.get(char)
            if width is None:
                width = cache[char] = self._char(char, style)
            total += width
        return total

    def _char(self, char: str, style: str) -> float:
        cw = self._metrics[style]
        units = cw.get(char) if isinstance(cw, dict) else None  # core fonts: by character
        if units is None:
            try:
                units = cw[ord(char)]  # TrueType fonts: by code point
            except (KeyError, IndexError, TypeError):
                units = 500
        return float(units or 0) * self.SIZE / 1000 / self.pdf.k

    def _wrap(self, text: str, width: float, style: str) -> list[str]:
        lines: list[str] = []
        line = ""
        for word in text.split():
            candidate = f"{line} {word}" if line else word
            if self._width(candidate, style) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while len(word) > 1 and self._width(word, style) > width:
                cut = len(word) - 1
                while cut > 1 and self._width(word[:cut], style) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        if line:
            lines.append(line)
        return lines or [""]

    def _columns(self, header: list[str], rows: list[list[str]], count: int) -> list[float]:
        """Widths by how much each column says (header and an average cell), each at least as
        wide as the longest word of its header, so no heading breaks inside a word."""
        available = self.pdf.epw
        weights, least = [], []
        for i in range(count):
            cells = [len(r[i]) for r in rows if i < len(r)]
            average = sum(cells) / len(cells) if cells else 0
            head = header[i] if i < len(header) else ""
            weights.append(max(len(head), min(40.0, average), 4.0))
            words = [self._width(w, "B") for w in head.split()] or [0.0]
            least.append(min(max(words) + 2 * self.PAD + 0.5, available / count))
        widths = [available * w / sum(weights) for w in weights]
        short = [i for i in range(count) if widths[i] < least[i]]
        if short:
            needed = sum(least[i] - widths[i] for i in short)
            spare = sum(widths[i] - least[i] for i in range(count) if i not in short)
            for i in range(count):
                if i in short:
                    widths[i] = least[i]
                elif spare > 0:
                    widths[i] -= (widths[i] - least[i]) * min(1.0, needed / spare)
        return widths

    def write(self, header: list[str], rows: list[list[str]]) -> None:
        count = max([len(header), *(len(r) for r in rows)], default=0)
        if count == 0:
            return
        widths = self._columns(header, rows, count)
        if header:
            self._row(header, widths, "B", first=True)
        for row in rows:
            if self._row(row, widths, "", first=False) and header:
                # the row did not fit: a new page, the header again, then the row
                self._row(header, widths, "B", first=True)
                self._row(row, widths, "", first=False)

    def _row(self, cells: list[str], widths: list[float], style: str, *, first: bool) -> bool:
        """Draw one row; True (nothing drawn) when it needs a new page first, which is added."""
        pdf = self.pdf
        wrapped = [
            self._wrap(cells[i] if i < len(cells) else "", widths[i] - 2 * self.PAD, style)
            for i in range(len(widths))
        ]
        height = max(len(w) for w in wrapped) * self.LINE + 2 * self.PAD
        bottom = pdf.h - pdf.b_margin
        if pdf.get_y() + height > bottom and pdf.get_y() > pdf.t_margin + 1:
            pdf.add_page()
            if not first:
                return True
        x, y = pdf.l_margin, pdf.get_y()
        pdf.set_font(self.family, style, self.SIZE)
        pdf.set_draw_color(170)
        pdf.set_line_width(0.2)
        if first:
            pdf.set_fill_color(235)
        for lines, width in zip(wrapped, widths, strict=True):
            pdf.rect(x, y, width, height, style="DF" if first else "D")
            for n, line in enumerate(lines):
                if line:
                    pdf.text(x + self.PAD, y + self.PAD + (n + 0.78) * self.LINE, line)
            x += width
        pdf.set_xy(pdf.l_margin, y + height)
        return False
