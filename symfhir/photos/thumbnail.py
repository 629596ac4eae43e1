"""Small previews of stored photos for the gallery: a few kilobytes instead of megabytes.

The gallery shows up to 200 photos inside the EHR's frame; sending each full image would
move hundreds of megabytes to the browser. A preview is made on request from the stored
(already cleaned) image and never stored: a JPEG whose longest side is at most
``max_side``, decoded at reduced scale where the format allows (JPEG's DCT scaling), with
no metadata. The input is checked like any upload (type from the bytes, pixel limit on the
header) since it comes back from a server.
"""

from __future__ import annotations

import io

from PIL import Image

from symfhir.errors import PhotoError
from symfhir.photos.clean import CLEANABLE
from symfhir.photos.files import JPEG, ImageLimits, sniff

THUMBNAIL_SIDE = 480
THUMBNAIL_QUALITY = 80
DEFAULT_LIMITS = ImageLimits()


def thumbnail(
    data: bytes,
    *,
    record: str,
    max_side: int = THUMBNAIL_SIDE,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> bytes:
    """A JPEG preview of ``data`` (JPEG, PNG or WebP) at most ``max_side`` pixels on its
    longest side; smaller images keep their size. Raises PhotoError naming ``record``."""
    content_type, name = sniff(data)
    if content_type not in CLEANABLE:
        kind = f"a {name} file" if name else "data of no known type"
        raise PhotoError(record, "file", f"{kind}, not a JPEG, PNG or WebP image")
    _, plugin = CLEANABLE[content_type]
    try:
        with plugin(io.BytesIO(data)) as source:
            width, height = source.size
            if width * height > limits.max_pixels:
                raise PhotoError(record, "file", "the image is over the pixel limit")
            if content_type == JPEG:
                # Decode at 1/2, 1/4 or 1/8 scale when that still covers the preview.
                source.draft("RGB", (max_side, max_side))
            image = _on_white(source)
    except PhotoError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = f"the image cannot be read ({type(exc).__name__})"
        raise PhotoError(record, "file", reason) from None
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return out.getvalue()


def _on_white(image: Image.Image) -> Image.Image:
    """RGB pixels; transparent parts shown on white (JPEG has no alpha, black would hide
    dark photos' edges)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")
