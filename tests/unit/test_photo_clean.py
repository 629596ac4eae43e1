"""Photo and signed-form cleaning: metadata really gone, orientation kept, bad files refused."""

import base64
import hashlib
import io
import struct
import warnings
import zlib

import pytest
from PIL import ExifTags, Image, ImageCms
from PIL.PngImagePlugin import PngInfo

from symfhir.errors import PhotoError
from symfhir.photos.clean import clean_image, clean_signed_form
from symfhir.photos.files import ImageLimits, sniff
from tests.conftest import SAMPLE

pytestmark = pytest.mark.unit

XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>SyntheticCreator</rdf:RDF></x:xmpmeta>'
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


def exif(orientation=1, make="SynthCam", model="SC-1 Clinic"):
    data = Image.Exif()
    data[ExifTags.Base.Make] = make
    data[ExifTags.Base.Model] = model
    data[ExifTags.Base.Software] = "SyntheticSoftware"
    data[ExifTags.Base.ImageDescription] = "Synthetic Person Name"
    data[ExifTags.Base.Orientation] = orientation
    data.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2026:03:06 09:20:00"
    gps = data.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (30.0, 6.0, 1.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (92.0, 1.0, 2.5)
    return data


def srgb_icc():
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def picture(size=(64, 48), mode="RGB"):
    image = Image.new("RGB", size, (40, 120, 200))
    image.paste((230, 20, 20), (0, 0, 16, 16))  # a red block, top-left as stored
    if mode == "RGBA":
        image = image.convert("RGBA")
        image.paste((0, 0, 0, 0), (32, 32, 48, 48))  # some transparency, or encoders drop alpha
        return image
    return image.convert(mode) if mode != "RGB" else image


def encode(fmt, image=None, **params):
    out = io.BytesIO()
    (image or picture()).save(out, fmt, **params)
    return out.getvalue()


def with_everything(fmt, orientation=1):
    """An image carrying every kind of metadata its format can hold."""
    params = {"exif": exif(orientation).tobytes(), "icc_profile": srgb_icc()}
    if fmt == "JPEG":
        params |= {"comment": b"SyntheticComment", "xmp": XMP}
        return add_iptc(encode(fmt, **params))
    if fmt == "PNG":
        info = PngInfo()
        info.add_text("Author", "SyntheticAuthor")
        info.add_text("Comment", "SyntheticComment", zip=True)
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        return encode(fmt, pnginfo=info, **params)
    return encode(fmt, xmp=XMP, **params)


def add_iptc(jpeg):
    """Insert an APP13 (Photoshop/IPTC) segment right after SOI."""
    iptc = b"\x1c\x02\x50\x00\x0dSyntheticIPTC"
    block = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    payload = b"Photoshop 3.0\x00" + block
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def bomb_png(width, height):
    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def reopen(data):
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("fmt", FORMATS)
def test_all_metadata_is_removed(fmt):
    raw = with_everything(fmt)
    assert b"SynthCam" in raw and b"SyntheticCreator" in raw
    clean = clean_image(raw, record="r")
    image = reopen(clean.data)
    assert not image.getexif()
    assert not image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    for key in ("exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment", "Author", "Comment"):
        assert key not in image.info
    assert not getattr(image, "text", {})
    for marker in (b"SynthCam", b"Synthetic", b"Exif", b"ICC_PROFILE", b"Photoshop", b"xmpmeta"):
        assert marker not in clean.data
    if fmt == "PNG":
        for chunk in (b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP"):
            assert chunk not in clean.data


@pytest.mark.parametrize("fmt", FORMATS)
def test_capture_details_are_read_before_stripping(fmt):
    clean = clean_image(with_everything(fmt), record="r")
    assert clean.taken_at is not None
    assert clean.taken_at.isoformat() == "2026-03-06T09:20:00"
    assert clean.taken_at.tzinfo is None


def test_the_camera_is_not_kept():
    # The privacy promise: no metadata reaches the server, the camera make and model included.
    clean = clean_image(with_everything("JPEG"), record="r")
    assert not hasattr(clean, "device")
    assert b"SynthCam" not in clean.data and b"SC-1" not in clean.data


def test_no_exif_means_no_capture_details():
    clean = clean_image(encode("PNG"), record="r")
    assert clean.taken_at is None


@pytest.mark.parametrize("value", ["0000:00:00 00:00:00", "yesterday", ""])
def test_unusable_exif_date_is_ignored(value):
    data = exif()
    data.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = value
    assert clean_image(encode("JPEG", exif=data.tobytes()), record="r").taken_at is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_orientation_6_is_applied(fmt):
    clean = clean_image(encode(fmt, exif=exif(orientation=6).tobytes()), record="r")
    assert (clean.width, clean.height) == (48, 64)
    image = reopen(clean.data).convert("RGB")
    assert image.size == (48, 64)
    # Orientation 6 = rotate 90° clockwise to display: the stored top-left goes top-right.
    red, green, blue = image.getpixel((40, 5))
    assert red > 180 and green < 80 and blue < 80
    assert not image.getexif()


@pytest.mark.parametrize(("orientation", "size"), [(1, (64, 48)), (3, (64, 48)), (8, (48, 64))])
def test_other_orientations(orientation, size):
    clean = clean_image(encode("JPEG", exif=exif(orientation).tobytes()), record="r")
    assert (clean.width, clean.height) == size


@pytest.mark.parametrize("fmt", FORMATS)
def test_type_size_and_hash_come_from_the_output(fmt):
    raw = with_everything(fmt)
    clean = clean_image(raw, record="r")
    assert clean.content_type == FORMATS[fmt]
    assert reopen(clean.data).format == fmt
    assert clean.size == len(clean.data)
    assert clean.sha1_b64 == base64.b64encode(hashlib.sha1(clean.data).digest()).decode()
    assert clean.data != raw


@pytest.mark.parametrize(
    ("fmt", "mode", "params", "expected"),
    [
        ("JPEG", "CMYK", {}, "RGB"),
        ("JPEG", "L", {}, "L"),
        ("PNG", "P", {"transparency": 0}, "RGBA"),
        ("PNG", "P", {}, "RGB"),
        ("PNG", "LA", {}, "RGBA"),
        ("PNG", "1", {}, "L"),
        ("PNG", "RGBA", {}, "RGBA"),
        ("WEBP", "RGBA", {}, "RGBA"),
    ],
)
def test_modes_are_made_sensible(fmt, mode, params, expected):
    clean = clean_image(encode(fmt, picture(mode=mode), **params), record="r")
    assert reopen(clean.data).mode == expected


def test_cmyk_with_its_profile_becomes_rgb():
    raw = encode("JPEG", picture(mode="CMYK"), icc_profile=b"not really a profile")
    image = reopen(clean_image(raw, record="r").data)
    assert image.mode == "RGB"
    assert "icc_profile" not in image.info


def test_sniffing_ignores_names_and_reads_bytes():
    assert sniff(encode("PNG"))[0] == "image/png"
    assert sniff(encode("WEBP"))[0] == "image/webp"
    assert sniff(b"GIF89a....")[1] == "GIF"
    assert sniff(b"plain text") == (None, "")


def heic_header():
    return b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 32


def truncated(fmt):
    raw = encode(fmt, Image.radial_gradient("L").convert("RGB"))
    return raw[: len(raw) // 2]


def animated_png():
    frames = [picture(), picture().rotate(90)]
    out = io.BytesIO()
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:])
    return out.getvalue()


REFUSED = [
    pytest.param(b"", ImageLimits(), "empty", id="empty"),
    pytest.param(encode("PNG"), ImageLimits(max_bytes=100), "limit of 100 bytes", id="too-big"),
    pytest.param(
        encode("PNG"), ImageLimits(max_bytes=1024 * 1024 - 1), None, id="just-under-limit"
    ),
    pytest.param(b"Synthetic Person Name, notes\n", ImageLimits(), "not an image", id="text"),
    pytest.param(b"%PDF-1.4\n%%EOF\n", ImageLimits(), "PDF", id="pdf"),
    pytest.param(encode("GIF"), ImageLimits(), "GIF images are not accepted", id="gif"),
    pytest.param(encode("TIFF"), ImageLimits(), "TIFF images are not accepted", id="tiff"),
    pytest.param(encode("BMP"), ImageLimits(), "BMP images are not accepted", id="bmp"),
    pytest.param(heic_header(), ImageLimits(), "HEIC images are not accepted", id="heic"),
    pytest.param(
        encode("JPEG"),
        ImageLimits(allowed_types=frozenset({"image/png"})),
        "JPEG images are not accepted; allowed: PNG",
        id="type-not-allowed",
    ),
    pytest.param(bomb_png(100_000, 100_000), ImageLimits(), "decompression bomb", id="bomb"),
    # Above Pillow's warning threshold but below its error: Image.open would only warn.
    pytest.param(bomb_png(10_000, 10_000), ImageLimits(), "decompression bomb", id="bomb-warn"),
    pytest.param(
        bomb_png(100_000, 100_000),
        ImageLimits(max_pixels=10**12),
        "decompression bomb",
        id="bomb-over-pillow-limit",
    ),
    pytest.param(encode("PNG"), ImageLimits(max_pixels=1000), "over the limit", id="max-pixels"),
    pytest.param(truncated("JPEG"), ImageLimits(), "truncated or corrupt", id="truncated-jpeg"),
    pytest.param(truncated("PNG"), ImageLimits(), "truncated or corrupt", id="truncated-png"),
    pytest.param(truncated("WEBP"), ImageLimits(), "truncated or corrupt", id="truncated-webp"),
    pytest.param(b"\xff\xd8\xff" + b"\x00" * 50, ImageLimits(), "corrupt", id="jpeg-magic-only"),
    pytest.param(animated_png(), ImageLimits(), "animated", id="animated-png"),
]


@pytest.mark.parametrize(("raw", "limits", "says"), REFUSED)
def test_refusals_name_record_field_and_reason(raw, limits, says):
    if says is None:
        assert clean_image(raw, record="photos.csv row 7", limits=limits).size > 0
        return
    with pytest.raises(PhotoError) as caught:
        clean_image(raw, record="photos.csv row 7", limits=limits)
    err = caught.value
    assert (err.record, err.field) == ("photos.csv row 7", "file")
    assert says in err.reason
    assert "Synthetic" not in str(err)


def test_bomb_check_leaves_pillow_and_warnings_alone():
    before_pixels = Image.MAX_IMAGE_PIXELS
    before_filters = list(warnings.filters)
    with pytest.raises(PhotoError):
        clean_image(bomb_png(10_000, 10_000), record="r")
    assert before_pixels == Image.MAX_IMAGE_PIXELS
    assert warnings.filters == before_filters


def pdf(tail=b""):
    return b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n" + tail


def test_signed_pdf_is_kept_as_is():
    raw = pdf()
    doc = clean_signed_form(raw, record="r")
    assert doc.data == raw
    assert doc.content_type == "application/pdf"
    assert doc.size == len(raw)
    assert doc.sha1_b64 == base64.b64encode(hashlib.sha1(raw).digest()).decode()


def test_signed_form_image_is_cleaned():
    doc = clean_signed_form(with_everything("PNG"), record="r")
    assert doc.content_type == "image/png"
    assert b"Synthetic" not in doc.data
    assert not reopen(doc.data).getexif()


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"", "empty"),
        (b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\n", "incomplete"),
        (pdf(b"\n" * 2048), "incomplete"),
        (b"Synthetic signed form text", "not a PDF or an image"),
        (encode("GIF"), "GIF images are not accepted"),
        (truncated("JPEG"), "truncated or corrupt"),
    ],
)
def test_signed_form_refusals(raw, says):
    with pytest.raises(PhotoError) as caught:
        clean_signed_form(raw, record="clients.csv row 4")
    assert (caught.value.record, caught.value.field) == ("clients.csv row 4", "signed_form")
    assert says in caught.value.reason
    assert "Synthetic" not in str(caught.value)


def test_sample_signed_forms_are_accepted():
    forms = sorted((SAMPLE / "forms").iterdir())
    assert forms
    for path in forms:
        doc = clean_signed_form(path.read_bytes(), record=path.name)
        assert doc.content_type in {"application/pdf", "image/png"}
