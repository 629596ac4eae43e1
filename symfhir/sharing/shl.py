"""SMART Health Links, the protocol's pure parts: manifest ids, keys, compact JWE, the link
payload, the ``shlink:/`` form, the viewer URL and the QR code.

Follows the SMART Health Cards and Links IG (STU1),
https://hl7.org/fhir/uv/smart-health-cards-and-links/links-specification.html:
the payload ``{url, key, exp, flag, label, v}``; ``url`` carries 256 random bits and is at most
128 characters; ``key`` is 32 random bytes in base64url; ``flag`` letters come in the order
L (long-term), P (passcode), U (single file, never with P); ``label`` is at most 80
characters. Files are compact JWE (``alg=dir``, ``enc=A256GCM``, ``cty`` set, optionally
``zip=DEF``) made by joserfc, which draws a fresh 96-bit IV for each one.
"""

from __future__ import annotations

import base64
import gc
import io
import json
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import segno
from joserfc import jwe
from joserfc.jwk import OctKey

from symfhir.errors import SharingError

MANIFEST_ID_BYTES = 32
KEY_BYTES = 32
URL_MAX = 128
LABEL_MAX = 80
FLAG_ORDER = "LPU"
PREFIX = "shlink:/"
VERSION = 1
FHIR_JSON = "application/fhir+json"
_COLLECT_ABOVE = 1024 * 1024
#: The only algorithms a link's files use (and a registry that allows nothing else).
ALGORITHMS = ("dir", "A256GCM", "DEF")


def b64url(data: bytes) -> str:
    """Unpadded base64url, the encoding of every part of a link and a JWE."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of unpadded base64url ``text``. Raises ValueError when it is not."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_manifest_id() -> str:
    """A manifest id: 256 random bits as 43 base64url characters."""
    return secrets.token_urlsafe(MANIFEST_ID_BYTES)


def new_key() -> bytes:
    """A fresh 32-byte AES-256 key for one link's files."""
    return secrets.token_bytes(KEY_BYTES)


def encrypt(data: bytes, key: bytes, content_type: str, *, compress: bool = False) -> bytes:
    """``data`` as a compact JWE (ASCII bytes) under ``key``: ``alg=dir``, ``enc=A256GCM``,
    ``cty=content_type``, and ``zip=DEF`` (raw DEFLATE before encryption) when ``compress``.
    Each call draws a fresh IV. Raises SharingError for a key that is not 32 bytes."""
    _check_key(key)
    if not content_type or not content_type.isascii():
        raise SharingError("content_type: an ASCII media type is needed")
    header: dict[str, Any] = {"alg": "dir", "enc": "A256GCM", "cty": content_type}
    if compress:
        header["zip"] = "DEF"
    token = jwe.encrypt_compact(header, data, OctKey.import_key(key), algorithms=ALGORITHMS)
    if len(data) > _COLLECT_ABOVE:
        # joserfc's message and its recipient refer to each other, so the plaintext and the
        # base64 ciphertext they hold would wait for the cyclic collector; freeing them now
        # keeps memory flat across a package of photos (a young-generation pass: ~0.1 ms).
        gc.collect(0)
    return token.encode("ascii")


def flags(*, long_term: bool = False, passcode: bool = False, single_file: bool = False) -> str:
    """The ``flag`` letters for a link, in the spec's order. Raises SharingError for a
    single-file link with a passcode (the spec forbids U with P)."""
    if passcode and single_file:
        raise SharingError("flag: a single-file link (U) cannot have a passcode (P)")
    return "".join(
        letter for letter, on in (("L", long_term), ("P", passcode), ("U", single_file)) if on
    )


def check_label(label: str | None) -> str | None:
    """``label`` when it is usable in a payload (None or empty: no label). Raises SharingError
    past 80 characters or with control characters."""
    if label is None or label == "":
        return None
    if not isinstance(label, str):
        raise SharingError("label: must be text")
    if len(label) > LABEL_MAX:
        raise SharingError(f"label: at most {LABEL_MAX} characters ({len(label)} given)")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in label):
        raise SharingError("label: control characters are not allowed")
    return label


def check_flags(flag: str) -> str:
    """``flag`` when its letters are from L, P, U, each once, in that order, and not U with P.
    Raises SharingError otherwise."""
    if any(letter not in FLAG_ORDER for letter in flag):
        raise SharingError("flag: only the letters L, P and U are defined")
    if list(flag) != sorted(set(flag), key=FLAG_ORDER.index):
        raise SharingError("flag: letters must appear once each, in the order L, P, U")
    if "P" in flag and "U" in flag:
        raise SharingError("flag: a single-file link (U) cannot have a passcode (P)")
    return flag


def link_payload(
    url: str, key: bytes, *, exp: datetime | None, flags: str, label: str | None
) -> dict[str, Any]:
    """The SHL payload for the manifest ``url`` and ``key``: ``exp`` as epoch seconds,
    ``flag`` and ``label`` only when set, ``v`` 1. Raises SharingError naming the field:
    a URL that is not http(s) or past 128 characters, a key not 32 bytes, bad flags, a label
    past 80 characters, a naive ``exp``."""
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise SharingError("url: an http(s) manifest URL is needed")
    if len(url) > URL_MAX:
        raise SharingError(f"url: at most {URL_MAX} characters ({len(url)} given)")
    _check_key(key)
    payload: dict[str, Any] = {"url": url, "key": b64url(key)}
    if exp is not None:
        if exp.tzinfo is None:
            raise SharingError("exp: an aware datetime is needed (with its zone)")
        payload["exp"] = int(exp.timestamp())
    flag = check_flags(flags)
    if flag:
        payload["flag"] = flag
    label = check_label(label)
    if label is not None:
        payload["label"] = label
    payload["v"] = VERSION
    return payload


def shlink(payload: Mapping[str, Any]) -> str:
    """``shlink:/`` + base64url of the minified JSON payload."""
    text = json.dumps(dict(payload), separators=(",", ":"), ensure_ascii=False)
    return PREFIX + b64url(text.encode("utf-8"))


def parse_shlink(text: str) -> dict[str, Any]:
    """The payload of a ``shlink:/…`` or of a viewer URL ending in ``#shlink:/…``.
    Raises SharingError when it is neither or does not decode."""
    link = text.strip()
    if "#" in link:
        link = link.split("#", 1)[1]
    if not link.startswith(PREFIX):
        raise SharingError("link: not a shlink:/ link")
    try:
        payload = json.loads(b64url_decode(link[len(PREFIX) :]))
    except (ValueError, UnicodeDecodeError):
        raise SharingError("link: the payload does not decode") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("url"), str):
        raise SharingError("link: the payload has no url")
    return payload


def viewer_url(viewer: str, link: str) -> str:
    """The viewer page's URL with the link after ``#``: a fragment never reaches a server,
    so the key stays in the browser. Raises SharingError for a viewer URL with a fragment."""
    if "#" in viewer:
        raise SharingError("viewer: the viewer URL must not have a fragment")
    return f"{viewer}#{link}"


def qr_png(text: str, *, scale: int = 4) -> bytes:
    """A QR code of ``text`` (a link or viewer URL) as PNG, error correction M."""
    out = io.BytesIO()
    _qr(text).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def qr_svg(text: str, *, scale: int = 4) -> str:
    """The same QR code as an SVG document (text)."""
    out = io.BytesIO()
    _qr(text).save(out, kind="svg", scale=scale, border=4, xmldecl=False, svgns=True)
    return out.getvalue().decode("utf-8")


def _qr(text: str) -> segno.QRCode:
    # Level M as the spec's examples; never boosted, so a link's size stays predictable.
    return segno.make_qr(text, error="m", boost_error=False)


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise SharingError(f"key: {KEY_BYTES} random bytes are needed")
