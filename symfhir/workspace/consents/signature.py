"""The signed form of a consent: a drawn or typed signature as a clean PNG (pure).

A drawn signature arrives as a PNG data URL from the signature pad; a typed one is rendered
with Pillow. Either is decoded and re-encoded without metadata by ``symfhir.photos.clean``.
"""

from __future__ import annotations

import base64
import binascii
import io
import re

from PIL import Image, ImageDraw, ImageFont

from symfhir.cardnumbers import has_card_number
from symfhir.errors import PhotoError
from symfhir.model.consent import SignedForm
from symfhir.photos.clean import clean_image
from symfhir.photos.files import PNG, ImageLimits

DATA_URL_PREFIX = "data:image/png;base64,"
SIGNATURE_MAX_BYTES = 512 * 1024
SIGNATURE_MAX_WIDTH = 2000
SIGNATURE_MAX_HEIGHT = 1000
SIGNATURE_LIMITS = ImageLimits(
    max_bytes=SIGNATURE_MAX_BYTES,
    max_pixels=SIGNATURE_MAX_WIDTH * SIGNATURE_MAX_HEIGHT,
    allowed_types=frozenset({PNG}),
)
NAME_MAX = 100
TYPED_FONT_SIZE = 40
TYPED_PADDING = 24
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: A name typed at the desk is free text written to the record: no card number in it.
CARD_NUMBER = "Remove the payment card number: card numbers are never stored."


def checked_name(value: str | None) -> str | None:
    """Stripped text, or None when it has control characters or is over NAME_MAX."""
    text = (value or "").strip()
    if _CONTROL.search(text) or len(text) > NAME_MAX:
        return None
    return text


def signature_form(drawn: str, typed: str) -> tuple[SignedForm | None, bool, str]:
    """The signed form as a clean PNG: (form, typed?, "") or (None, False, why not).

    A drawn signature (a ``data:image/png;base64,`` URL) wins over a typed one.
    """
    drawn = drawn.strip()
    if drawn:
        try:
            return signature_png(decode_data_url(drawn)), False, ""
        except PhotoError as err:
            return None, False, f"The drawn signature cannot be used: {err.reason}."
    name = checked_name(typed)
    if name is None:
        return None, False, "The typed signature has control characters or is too long."
    if not name:
        return None, False, "Sign on the pad, or type the signer's name as the signature."
    if has_card_number(name):
        return None, False, CARD_NUMBER
    return signature_png(render_typed_signature(name)), True, ""


def decode_data_url(url: str) -> bytes:
    """The bytes of a base64 PNG data URL. Raises PhotoError (field "signature")."""
    if not url.startswith(DATA_URL_PREFIX):
        raise PhotoError("signature", "signature", "it is not a PNG image")
    payload = url[len(DATA_URL_PREFIX) :]
    # base64 grows by 4/3: refuse an oversized payload before decoding it.
    if len(payload) > (SIGNATURE_MAX_BYTES * 4) // 3 + 4:
        raise PhotoError("signature", "signature", "it is larger than 512 KiB")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise PhotoError("signature", "signature", "it is not valid base64 data") from None


def signature_png(raw: bytes) -> SignedForm:
    """A signature PNG decoded and re-encoded without metadata (``symfhir.photos.clean``).

    Raises PhotoError for anything but a PNG, over 512 KiB or 2000x1000 pixels, corrupt,
    or blank (no mark at all).
    """
    try:
        image = clean_image(raw, record="signature", limits=SIGNATURE_LIMITS)
    except PhotoError as err:
        raise PhotoError("signature", "signature", _short_reason(err.reason)) from None
    if image.width > SIGNATURE_MAX_WIDTH or image.height > SIGNATURE_MAX_HEIGHT:
        raise PhotoError(
            "signature",
            "signature",
            f"it is {image.width}x{image.height} pixels, over "
            f"{SIGNATURE_MAX_WIDTH}x{SIGNATURE_MAX_HEIGHT}",
        )
    if _blank(image.data):
        raise PhotoError("signature", "signature", "it is blank")
    return SignedForm(
        content_type=image.content_type, data=image.data, size=image.size, sha1_b64=image.sha1_b64
    )


def _short_reason(reason: str) -> str:
    if "larger than" in reason:
        return "it is larger than 512 KiB"
    return reason


def _blank(png: bytes) -> bool:
    with Image.open(io.BytesIO(png)) as image:
        if "A" in image.getbands():
            return image.getchannel("A").getextrema()[1] == 0
        low, high = image.convert("L").getextrema()
        return bool(low == high)


def render_typed_signature(name: str) -> bytes:
    """The typed name drawn black on white with Pillow's default font, as PNG bytes."""
    font = ImageFont.load_default(size=TYPED_FONT_SIZE)
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox(
        (0, 0), name, font=font
    )
    width = min(SIGNATURE_MAX_WIDTH, int(right - left) + 2 * TYPED_PADDING)
    height = min(SIGNATURE_MAX_HEIGHT, int(bottom - top) + 2 * TYPED_PADDING)
    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).text((TYPED_PADDING - left, TYPED_PADDING - top), name, fill=0, font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
