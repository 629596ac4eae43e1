"""The text of a PDF as fpdf2 writes it, decoded from its content streams through each font's
ToUnicode map: enough to check what a generated PDF says, written from the PDF specification
(ISO 32000-1 §7.3, §9.10) rather than with the library that wrote it."""

from __future__ import annotations

import re
import zlib

_OBJECT = re.compile(rb"(\d+) 0 obj(.*?)endobj", re.S)
_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.S)
_FONT_REF = re.compile(rb"/(F\d+) (\d+) 0 R")
_TO_UNICODE = re.compile(rb"/ToUnicode (\d+) 0 R")
_BFCHAR = re.compile(rb"<([0-9A-Fa-f]+)> <([0-9A-Fa-f]+)>")
_STRING = rb"\((?:\\.|[^\\)])*\)"  # a literal string, parentheses included
_STRINGS = re.compile(rb"\(((?:\\.|[^\\)])*)\)", re.S)
_OPS = re.compile(
    rb"/(F\d+) [\d.]+ Tf|(" + _STRING + rb") ?Tj|<([0-9A-Fa-f]*)> ?Tj"
    rb"|\[((?:" + _STRING + rb"|[^\]\(])*)\] ?TJ",
    re.S,
)
_STRING_RE = re.compile(_STRING, re.S)
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(raw: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i : i + 1]
        if c != b"\\":
            out += c
            i += 1
            continue
        nxt = raw[i + 1 : i + 2]
        octal = re.match(rb"[0-7]{1,3}", raw[i + 1 : i + 4])
        if octal:
            out.append(int(octal.group(), 8) & 0xFF)
            i += 1 + len(octal.group())
        else:
            out += _ESCAPES.get(nxt, nxt)
            i += 2
    return bytes(out)


def pdf_text(pdf: bytes) -> str:
    """Every shown string, in order, one per line."""
    objects: dict[int, tuple[bytes, bytes]] = {}
    for number, body in _OBJECT.findall(pdf):
        stream = _STREAM.search(body)
        data = b""
        if stream:
            data = stream.group(1)
            if b"/FlateDecode" in body[: stream.start()]:
                data = zlib.decompress(data)
        objects[int(number)] = (body, data)
    cmaps: dict[int, dict[int, str]] = {}
    for number, (body, _) in objects.items():
        found = _TO_UNICODE.search(body)
        if found and b"/Type /Font" in body:
            cmap_data = objects[int(found.group(1))][1]
            cmaps[number] = {
                int(a, 16): bytes.fromhex(b.decode()).decode("utf-16-be")
                for a, b in _BFCHAR.findall(cmap_data)
            }
    names = {
        name.decode(): int(ref)
        for body, _ in objects.values()
        for name, ref in _FONT_REF.findall(body)
    }
    lines: list[str] = []
    for _body, data in objects.values():
        if b"BT" not in data:
            continue
        current: dict[int, str] | None = None
        for font, literal, hexa, array in _OPS.findall(data):
            if font:
                current = cmaps.get(names.get(font.decode(), -1))
                continue
            if hexa:
                raw = bytes.fromhex(hexa.decode())
            else:
                shown = [literal] if literal else _STRING_RE.findall(array)
                raw = b"".join(_unescape(_STRINGS.fullmatch(x).group(1)) for x in shown)
            if current is None:  # a core font: Latin-1 bytes
                lines.append(raw.decode("latin-1"))
            else:
                gids = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw) - 1, 2)]
                lines.append("".join(current.get(g, "\ufffd") for g in gids))
    return "\n".join(lines)
