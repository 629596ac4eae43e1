"""Gallery previews: small JPEGs of stored photos, no metadata, refused for non-images."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from symfhir.errors import PhotoError
from symfhir.photos.files import ImageLimits
from symfhir.photos.thumbnail import THUMBNAIL_SIDE, thumbnail

pytestmark = pytest.mark.unit


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize(
    ("size", "expected"), [((3000, 2000), (480, 320)), ((900, 1800), (240, 480))]
)
def test_the_longest_side_becomes_the_preview_size(fmt, size, expected):
    preview = Image.open(
        io.BytesIO(thumbnail(encoded(Image.new("RGB", size, "teal"), fmt), record="p"))
    )
    assert preview.format == "JPEG"
    assert preview.size == expected
    assert max(preview.size) == THUMBNAIL_SIDE


def test_a_small_photo_keeps_its_size():
    preview = Image.open(
        io.BytesIO(thumbnail(encoded(Image.new("RGB", (64, 48)), "PNG"), record="p"))
    )
    assert preview.size == (64, 48)


def test_no_metadata_reaches_the_preview():
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (29.0, 57.0, 12.0)}
    raw = encoded(Image.new("RGB", (800, 600), "red"), "JPEG", exif=exif.tobytes())
    preview = Image.open(io.BytesIO(thumbnail(raw, record="p")))
    assert dict(preview.getexif()) == {}
    assert "exif" not in preview.info and "icc_profile" not in preview.info


def test_transparent_parts_are_white():
    image = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    image.paste((200, 0, 0, 255), (25, 25, 75, 75))
    preview = Image.open(io.BytesIO(thumbnail(encoded(image, "PNG"), record="p")))
    assert min(preview.getpixel((5, 5))) > 240  # transparent corner: white, not black
    red, green, _ = preview.getpixel((50, 50))
    assert red > 180 and green < 40


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"%PDF-1.4 not a photo", "a PDF file, not a JPEG, PNG or WebP image"),
        (b"\x00" * 64, "data of no known type, not a JPEG, PNG or WebP image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "the image cannot be read"),
    ],
)
def test_what_is_not_a_readable_photo_is_refused_with_the_record(data, says):
    with pytest.raises(PhotoError) as caught:
        thumbnail(data, record="Media/m1")
    assert caught.value.record == "Media/m1"
    assert says in str(caught.value)


def test_the_pixel_limit_holds_before_decoding():
    raw = encoded(Image.new("RGB", (200, 200)), "PNG")
    with pytest.raises(PhotoError, match="pixel limit"):
        thumbnail(raw, record="p", limits=ImageLimits(max_pixels=10_000))
