"""What photos and signed forms are, before Pillow sees them: types, limits, digests.

Kept apart from ``symfhir.photos.clean`` so that reading a spa export (which needs
the limits and the records, not Pillow) does not import Pillow: most runs carry no
photos, and importing it is ~12 ms of every ``symfhir map`` start.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime

from symfhir.errors import PhotoError

JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"
PDF = "application/pdf"

# The only types that can be decoded and re-encoded without carrying metadata over.
CLEANABLE_NAMES = {JPEG: "JPEG", PNG: "PNG", WEBP: "WebP"}
PDF_EOF_WINDOW = 1024
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})


@dataclass(frozen=True)
class CleanImage:
    """A re-encoded image with all metadata removed, and what was worth keeping from it."""

    data: bytes
    content_type: str
    width: int
    height: int
    size: int
    sha1_b64: str
    taken_at: datetime | None


@dataclass(frozen=True)
class CleanDocument:
    """A signed form ready to store: a PDF as uploaded, or a cleaned image."""

    data: bytes
    content_type: str
    size: int
    sha1_b64: str


@dataclass(frozen=True)
class ImageLimits:
    """What an upload may be: bytes, decoded pixels, and content types."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    allowed_types: frozenset[str] = frozenset({JPEG, PNG, WEBP})


def sniff(raw: bytes) -> tuple[str | None, str]:
    """The content type and a display name of ``raw``, judged by its magic number only.

    Returns ``(None, "")`` for bytes no known format starts with.
    """
    head = raw[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG, "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG, "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP, "WebP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif", "GIF"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "image/tiff", "TIFF"
    if head[:2] == b"BM":
        return "image/bmp", "BMP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif", "AVIF"
        if brand in _HEIF_BRANDS:
            return "image/heic", "HEIC"
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "image/jp2", "JPEG 2000"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "image/jxl", "JPEG XL"
    if head.startswith(b"\x00\x00\x01\x00"):
        return "image/vnd.microsoft.icon", "ICO"
    if head.startswith(b"8BPS"):
        return "image/vnd.adobe.photoshop", "PSD"
    if head.startswith(b"%PDF-"):
        return PDF, "PDF"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml")):
        return "image/svg+xml", "SVG"
    return None, ""


def sha1_b64(data: bytes) -> str:
    """Base64 of the SHA-1 of ``data``, as FHIR ``Attachment.hash`` wants it."""
    digest = hashlib.sha1(data, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def size_problem(size: int, limits: ImageLimits) -> str | None:
    """Why a file of ``size`` bytes is refused, or None when its size is acceptable."""
    if size == 0:
        return "the file is empty"
    if size > limits.max_bytes:
        return f"the file is larger than the limit of {_bytes(limits.max_bytes)}"
    return None


def check_size(raw: bytes, record: str, field: str, limits: ImageLimits) -> None:
    problem = size_problem(len(raw), limits)
    if problem:
        raise PhotoError(record, field, problem)


def type_names(types: frozenset[str] | set[str]) -> str:
    return ", ".join(sorted(CLEANABLE_NAMES[t] for t in types))


def _bytes(count: int) -> str:
    if count >= 1024 * 1024 and count % (1024 * 1024) == 0:
        return f"{count // (1024 * 1024)} MiB"
    if count >= 1024 and count % 1024 == 0:
        return f"{count // 1024} KiB"
    return f"{count:,} bytes"
