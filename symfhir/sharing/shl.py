"""SMART Health Links, the protocol's pure parts: manifest ids, keys, compact JWE, the link
payload, the ``shlink:/`` form, the viewer URL and the QR code.

Follows the SMART Health Cards and Links IG (STU1),
https://hl7.org/fhir/uv/smart-health-cards-and-links/links-specification.html:
the payload ``{url, key, exp, flag, label, v}``; ``url`` carries 256 random bits and is at most
128 characters; ``key`` is 32 random bytes in base64url; ``flag`` letters come in the order
L (long-term), P (passcode), U (single file, never with P); ``label`` is at most 80
characters. Files are compact JWE (RFC 7516, ``alg=dir``, ``enc=A256GCM``, ``cty`` set,
optionally ``zip=DEF``).

A file is encrypted once, when its link is made, straight with ``cryptography``'s AES-GCM
(a fresh 96-bit IV each time; the additional data is the ASCII of the base64url protected
header, RFC 7516 §5.1): ``encrypt_parts`` gives the JWE's binary parts (``EncryptedFile``),
which the store keeps as they are. Their compact serialization, four base64url parts joined by
dots, is made only when a file is served (``EncryptedFile.compact`` for a manifest's
``embedded`` file, ``compact_chunks`` to stream a ``location`` file): base64url costs more
than AES-GCM itself, and kept as text a file would take a third more room.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import secrets
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import segno
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from symfhir.errors import SharingError

MANIFEST_ID_BYTES = 32
KEY_BYTES = 32
URL_MAX = 128
LABEL_MAX = 80
FLAG_ORDER = "LPU"
PREFIX = "shlink:/"
VERSION = 1
FHIR_JSON = "application/fhir+json"
IV_BYTES = 12
TAG_BYTES = 16
CONTENT_TYPE_MAX = 100
#: The only algorithms a link's files use.
ALGORITHMS = ("dir", "A256GCM", "DEF")
#: Ciphertext bytes base64url-encoded per streamed chunk: a multiple of 3, so no chunk but
#: the last needs padding and the chunks join into the encoding of the whole (256 KiB out).
STREAM_CHUNK = 3 * 65536
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url(data: bytes) -> str:
    """Unpadded base64url, the encoding of every part of a link and a JWE."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_length(size: int) -> int:
    """The length of the unpadded base64url encoding of ``size`` bytes."""
    return (4 * size + 2) // 3


def _b64url_bytes(data: bytes | memoryview) -> bytes:
    # binascii takes a memoryview as it is: a slice of the ciphertext is never copied.
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def b64url_decode(text: str) -> bytes:
    """The bytes of unpadded base64url ``text``. Raises ValueError when it is not."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_manifest_id() -> str:
    """A manifest id: 256 random bits as 43 base64url characters."""
    return secrets.token_urlsafe(MANIFEST_ID_BYTES)


def new_key() -> bytes:
    """A fresh 32-byte AES-256 key for one link's files."""
    return secrets.token_bytes(KEY_BYTES)


def protected_header(content_type: str, *, compress: bool = False) -> str:
    """The base64url JWE protected header of a link's file: ``alg=dir``, ``enc=A256GCM``,
    ``cty=content_type``, and ``zip=DEF`` only when ``compress``. Raises SharingError for a
    content type that is not a short printable ASCII media type."""
    if (
        not isinstance(content_type, str)
        or not content_type
        or len(content_type) > CONTENT_TYPE_MAX
        or not content_type.isascii()
        or not content_type.isprintable()
        or "/" not in content_type
    ):
        raise SharingError("content_type: an ASCII media type is needed")
    header: dict[str, str] = {"alg": "dir", "enc": "A256GCM", "cty": content_type}
    if compress:
        header["zip"] = "DEF"
    return b64url(json.dumps(header, separators=(",", ":")).encode("ascii"))


def read_protected_header(protected: str) -> dict[str, str]:
    """The JOSE header of base64url ``protected`` when it is one a link's file may carry
    (``alg=dir``, ``enc=A256GCM``, an ASCII ``cty``, ``zip`` absent or ``DEF``, nothing
    else). Raises SharingError otherwise."""
    try:
        header = json.loads(b64url_decode(protected))
    except (ValueError, UnicodeDecodeError):
        raise SharingError("protected: not a base64url JSON header") from None
    if not isinstance(header, dict) or not set(header) <= {"alg", "enc", "cty", "zip"}:
        raise SharingError("protected: only alg, enc, cty and zip are used")
    if header.get("alg") != "dir" or header.get("enc") != "A256GCM":
        raise SharingError("protected: alg must be dir and enc A256GCM")
    if header.get("zip", "DEF") != "DEF":
        raise SharingError("protected: zip, when present, must be DEF")
    if not isinstance(header.get("cty"), str):
        raise SharingError("protected: cty is needed")
    if protected != protected_header(header["cty"], compress="zip" in header):
        raise SharingError("protected: not the header a link's file carries")
    return header


@dataclass(frozen=True, eq=False)
class EncryptedFile:
    """One file of a link as a compact JWE's binary parts, as the store keeps them: the
    base64url protected header (text: it is also the additional authenticated data), the IV,
    the ciphertext and the tag; the encrypted key is empty (``alg=dir``). The compact
    serialization is made only when served. Raises SharingError for parts that cannot be a
    link's file (a header not ours, an IV not 96 bits, a tag not 128)."""

    protected: str
    iv: bytes
    #: A memoryview right after encryption (no copy of AES-GCM's output), bytes from the store.
    ciphertext: bytes | memoryview = field(repr=False)
    tag: bytes

    def __post_init__(self) -> None:
        read_protected_header(self.protected)
        if len(self.iv) != IV_BYTES:
            raise SharingError(f"iv: {IV_BYTES} bytes are needed")
        if len(self.tag) != TAG_BYTES:
            raise SharingError(f"tag: {TAG_BYTES} bytes are needed")

    @property
    def header(self) -> dict[str, str]:
        """The JOSE header."""
        return read_protected_header(self.protected)

    @property
    def compact_length(self) -> int:
        """The length of the compact serialization (characters, ASCII: bytes too)."""
        return (
            len(self.protected)
            + 2  # the dots around the empty encrypted key
            + b64url_length(IV_BYTES)
            + 1
            + b64url_length(len(self.ciphertext))
            + 1
            + b64url_length(TAG_BYTES)
        )

    def compact(self) -> str:
        """The compact serialization, whole: for small files (a manifest's ``embedded``)."""
        return b"".join(self.compact_chunks()).decode("ascii")

    def __str__(self) -> str:
        return self.compact()

    def compact_chunks(self, chunk: int = STREAM_CHUNK) -> Iterator[bytes]:
        """The compact serialization in pieces (ASCII bytes) that join into ``compact()``:
        the header, the empty key and the IV; the ciphertext ``chunk`` bytes at a time (a
        multiple of 3); the tag. Raises SharingError for another chunk size."""
        if chunk <= 0 or chunk % 3:
            raise SharingError("chunk: a positive multiple of 3 bytes is needed")
        yield self.protected.encode("ascii") + b".." + _b64url_bytes(self.iv) + b"."
        view = memoryview(self.ciphertext)
        for start in range(0, len(view), chunk):
            yield _b64url_bytes(view[start : start + chunk])
        yield b"." + _b64url_bytes(self.tag)


def encrypt_parts(
    data: bytes, key: bytes, content_type: str, *, compress: bool = False
) -> EncryptedFile:
    """``data`` encrypted under ``key`` as a compact JWE's binary parts: ``alg=dir``,
    ``enc=A256GCM``, ``cty=content_type``, and ``zip=DEF`` (raw DEFLATE before encryption)
    when ``compress``. Each call draws a fresh 96-bit IV. Raises SharingError for a key that
    is not 32 bytes, a bad content type, data too large for one AES-GCM call."""
    _check_key(key)
    protected = protected_header(content_type, compress=compress)
    if compress:
        deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        data = deflate.compress(data) + deflate.flush()
    iv = os.urandom(IV_BYTES)
    try:
        # RFC 7516 §5.1: the additional authenticated data is ASCII(BASE64URL(header)).
        sealed = AESGCM(key).encrypt(iv, data, protected.encode("ascii"))
    except OverflowError:
        raise SharingError("data: too large for one file (2 GiB at most)") from None
    # AES-GCM gives the ciphertext with the tag after it: split by views, not copies.
    view = memoryview(sealed)
    return EncryptedFile(protected, iv, view[:-TAG_BYTES], bytes(view[-TAG_BYTES:]))


def encrypt(data: bytes, key: bytes, content_type: str, *, compress: bool = False) -> bytes:
    """``data`` as a whole compact JWE (ASCII bytes), as ``encrypt_parts`` makes it. Raises
    SharingError as encrypt_parts does."""
    return encrypt_parts(data, key, content_type, compress=compress).compact().encode("ascii")


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
