"""Photos and signed forms in, re-encoded bytes with every piece of metadata gone out.

Photos carry more than pixels: EXIF (with GPS position and camera serials), XMP,
IPTC, comments, PNG text chunks and ICC profiles. ``clean_image`` decodes the
image fully and writes the pixels into a brand-new image, so nothing from the
original file reaches the output; only the capture time is read first and
returned as a structured field for the FHIR Media (the camera is not kept). The original bytes are
never returned.

Pillow is driven through the JPEG, PNG and WebP plugin classes directly
instead of ``Image.open``: the file type is decided from the bytes here, no
other decoder ever sees the input, and the pixel limit is checked on the
header before anything is decoded, so Pillow's process-wide
``MAX_IMAGE_PIXELS`` check (a warning, then an error) is neither relied on
nor changed.
"""

from __future__ import annotations

import io
import struct
import zlib
from datetime import datetime
from functools import lru_cache

from PIL import ExifTags, Image, ImageCms, ImageFile, ImageOps
from PIL.JpegImagePlugin import JpegImageFile
from PIL.PngImagePlugin import PngImageFile
from PIL.WebPImagePlugin import WebPImageFile

from symfhir.errors import PhotoError
from symfhir.photos.files import (
    CLEANABLE_NAMES,
    JPEG,
    PDF,
    PDF_EOF_WINDOW,
    PNG,
    WEBP,
    CleanDocument,
    CleanImage,
    ImageLimits,
    check_size,
    sha1_b64,
    sniff,
    type_names,
)

# The only types that can be decoded and re-encoded without carrying metadata over.
CLEANABLE: dict[str, tuple[str, type[ImageFile.ImageFile]]] = {
    JPEG: (CLEANABLE_NAMES[JPEG], JpegImageFile),
    PNG: (CLEANABLE_NAMES[PNG], PngImageFile),
    WEBP: (CLEANABLE_NAMES[WEBP], WebPImageFile),
}
JPEG_QUALITY = 92
WEBP_QUALITY = 92
DEFAULT_LIMITS = ImageLimits()

# What Pillow (or a plugin) raises on bad image data; all mean "truncated or corrupt".
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    struct.error,
    zlib.error,
)
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)
_GRAY = frozenset({"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_ALPHA = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def clean_image(raw: bytes, *, record: str, limits: ImageLimits = DEFAULT_LIMITS) -> CleanImage:
    """Decode ``raw`` fully, apply its EXIF orientation, and re-encode it without metadata.

    JPEG stays JPEG, PNG stays PNG, WebP stays WebP (first frame's pixels only;
    animated images are refused). An embedded ICC profile is applied (pixels
    converted to sRGB) before it is dropped, so colours survive the stripping.

    Raises PhotoError(record, "file", reason) for an empty or oversized file,
    bytes that are not an image, an image type not in ``limits.allowed_types``,
    more pixels than ``limits.max_pixels`` (checked on the header, before
    decoding), animation, and truncated or corrupt image data.
    """
    check_size(raw, record, "file", limits)
    content_type, name = sniff(raw)
    allowed = limits.allowed_types & CLEANABLE.keys()
    if content_type is None:
        raise PhotoError(record, "file", "not an image (unrecognised format)")
    if content_type == PDF:
        raise PhotoError(record, "file", "not an image: the file is a PDF document")
    if content_type not in allowed:
        raise PhotoError(
            record, "file", f"{name} images are not accepted; allowed: {type_names(allowed)}"
        )
    try:
        return _reencode(raw, content_type, record, limits)
    except PhotoError:
        raise
    except _BOMB_ERRORS:
        raise PhotoError(record, "file", "too many pixels (possible decompression bomb)") from None
    except _DECODE_ERRORS:
        raise PhotoError(record, "file", f"the {name} image data is truncated or corrupt") from None


def clean_signed_form(
    raw: bytes, *, record: str, limits: ImageLimits = DEFAULT_LIMITS
) -> CleanDocument:
    """A signed consent form: a PDF kept byte for byte, or an image cleaned by ``clean_image``.

    PDF metadata (the Info dictionary, XMP) is NOT rewritten: a signed PDF is
    kept as signed, and rewriting would break any digital signature in it. The
    PDF must start with ``%PDF-`` and have an ``%%EOF`` marker in its last KiB.

    Raises PhotoError(record, "signed_form", reason) for an empty or oversized
    file, an incomplete PDF, or anything that is neither a PDF nor an accepted image.
    """
    check_size(raw, record, "signed_form", limits)
    content_type = sniff(raw)[0]
    if content_type == PDF:
        if b"%%EOF" not in raw[-PDF_EOF_WINDOW:]:
            raise PhotoError(
                record, "signed_form", "the PDF is incomplete (no %%EOF marker at its end)"
            )
        return CleanDocument(raw, PDF, len(raw), sha1_b64(raw))
    if content_type is None:
        raise PhotoError(record, "signed_form", "not a PDF or an image (unrecognised format)")
    try:
        image = clean_image(raw, record=record, limits=limits)
    except PhotoError as err:
        raise PhotoError(record, "signed_form", err.reason) from None
    return CleanDocument(image.data, image.content_type, image.size, image.sha1_b64)


def _reencode(raw: bytes, content_type: str, record: str, limits: ImageLimits) -> CleanImage:
    name, plugin = CLEANABLE[content_type]
    # The plugin class reads the header only; no pixels are decoded yet.
    with plugin(io.BytesIO(raw)) as source:
        width, height = source.size
        if width < 1 or height < 1:
            raise PhotoError(record, "file", f"the {name} image has no pixels")
        max_pixels = _pixel_limit(limits)
        if width * height > max_pixels:
            raise PhotoError(
                record,
                "file",
                f"the image declares {width}x{height} pixels, over the limit of "
                f"{max_pixels:,} (possible decompression bomb)",
            )
        if getattr(source, "n_frames", 1) > 1:
            raise PhotoError(record, "file", f"animated {name} images are not accepted")
        taken_at = _taken_at(source)
        source.load()  # the full decode: truncated or corrupt data fails here
        icc = source.info.get("icc_profile")
        pixels = _to_srgb(_output_mode(ImageOps.exif_transpose(source), content_type), icc)
    # A fresh image has no info, EXIF or encoder settings for a saver to pick up.
    bare = Image.new(pixels.mode, pixels.size)
    bare.paste(pixels)
    out = io.BytesIO()
    if content_type == JPEG:
        bare.save(out, format="JPEG", quality=JPEG_QUALITY)
    elif content_type == PNG:
        bare.save(out, format="PNG")
    else:
        bare.save(out, format="WEBP", quality=WEBP_QUALITY)
    data = out.getvalue()
    return CleanImage(
        data=data,
        content_type=content_type,
        width=bare.width,
        height=bare.height,
        size=len(data),
        sha1_b64=sha1_b64(data),
        taken_at=taken_at,
    )


def _pixel_limit(limits: ImageLimits) -> int:
    # Honour a stricter process-wide Pillow setting if the application chose one.
    pillow = Image.MAX_IMAGE_PIXELS
    return min(limits.max_pixels, pillow) if pillow else limits.max_pixels


def _output_mode(image: Image.Image, content_type: str) -> Image.Image:
    mode = image.mode
    has_alpha = mode in _ALPHA or (mode == "P" and "transparency" in image.info)
    if mode == "CMYK" and image.info.get("icc_profile"):
        return image  # converted through its own profile in _to_srgb
    if content_type == JPEG:
        target = "L" if mode in _GRAY else "RGB"
    elif has_alpha:
        target = "RGBA"
    elif content_type == PNG and mode in _GRAY:
        target = "L"
    else:
        target = "RGB"
    return image if mode == target else image.convert(target)


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image.convert("RGB") if image.mode == "CMYK" else image
    out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(image, profile, _srgb(), outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        # An unusable profile is simply dropped; the pixels are kept as decoded.
        return image.convert(out_mode) if image.mode != out_mode else image
    assert converted is not None  # not in place, so a new image is returned
    return converted


@lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _taken_at(image: Image.Image) -> datetime | None:
    """DateTimeOriginal from EXIF; unreadable EXIF counts as absent.

    The one EXIF value kept: the camera make and model (and everything else) are device
    metadata the privacy policy has no use for, and never reach the server.
    """
    try:
        exif = image.getexif()
        original = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal)
    except _DECODE_ERRORS:
        return None
    return _exif_datetime(original)


def _exif_datetime(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # e.g. the "0000:00:00 00:00:00" some cameras write when unset
