"""An independent SMART Health Link client for tests, written from the specification
(hl7.org/fhir/uv/smart-health-cards-and-links, links-specification) and RFC 7516/7518,
importing nothing from symfhir: it checks what our service serves, not what our code thinks.

    payload = parse("shlink:/…" or "https://viewer#shlink:/…")
    files = open_link(payload, recipient="Dr. Test", passcode="…")   # [(content type, bytes)]

JWE compact: BASE64URL(header).BASE64URL(encrypted key).BASE64URL(IV).BASE64URL(ciphertext)
.BASE64URL(tag); with ``alg=dir`` the encrypted key is empty and the link's key is the CEK;
A256GCM's additional authenticated data is the ASCII of the first part; ``zip=DEF`` means raw
DEFLATE (RFC 1951) of the plaintext before encryption.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import requests
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "shlink:/"


class ShlError(Exception):
    """The link, the manifest or a file is not what the specification says."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def b64d(text: str) -> bytes:
    if "=" in text or "+" in text or "/" in text:
        raise ShlError("not unpadded base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse(link: str) -> dict[str, Any]:
    """The payload of a ``shlink:/`` link, bare or after a viewer URL's ``#``."""
    if "#" in link:
        link = link.split("#", 1)[1]
    if not link.startswith(PREFIX):
        raise ShlError("no shlink:/ prefix")
    payload = json.loads(b64d(link[len(PREFIX) :]))
    if not isinstance(payload, dict):
        raise ShlError("payload is not an object")
    url, key = payload.get("url"), payload.get("key")
    if not isinstance(url, str) or len(url) > 128:
        raise ShlError("url missing or over 128 characters")
    if not isinstance(key, str) or len(key) != 43 or len(b64d(key)) != 32:
        raise ShlError("key is not 32 bytes in 43 base64url characters")
    flag = payload.get("flag", "")
    if flag and (("P" in flag and "U" in flag) or list(flag) != sorted(flag, key="LPU".index)):
        raise ShlError("bad flag")
    if "label" in payload and len(payload["label"]) > 80:
        raise ShlError("label over 80 characters")
    return payload


def decrypt(token: str, key: bytes) -> tuple[dict[str, Any], bytes]:
    """The protected header and the plaintext of compact JWE ``token`` under ``key``."""
    parts = token.split(".")
    if len(parts) != 5:
        raise ShlError("a compact JWE has five parts")
    header_b64, encrypted_key, iv, ciphertext, tag = parts
    header = json.loads(b64d(header_b64))
    if header.get("alg") != "dir" or header.get("enc") != "A256GCM":
        raise ShlError(f"unexpected alg/enc {header.get('alg')}/{header.get('enc')}")
    if encrypted_key:
        raise ShlError("alg=dir has an empty encrypted key")
    nonce = b64d(iv)
    if len(nonce) != 12:
        raise ShlError("A256GCM needs a 96-bit IV")
    data = AESGCM(key).decrypt(nonce, b64d(ciphertext) + b64d(tag), header_b64.encode("ascii"))
    if header.get("zip") == "DEF":
        data = zlib.decompress(data, -15)
    elif "zip" in header:
        raise ShlError(f"unknown zip {header['zip']}")
    return header, data


def manifest(
    payload: dict[str, Any],
    *,
    recipient: str,
    passcode: str | None = None,
    embedded_length_max: int | None = None,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """POST the manifest request; raises ShlError with the status for any non-200."""
    body: dict[str, Any] = {"recipient": recipient}
    if passcode is not None:
        body["passcode"] = passcode
    if embedded_length_max is not None:
        body["embeddedLengthMax"] = embedded_length_max
    http = session or requests
    response = http.post(payload["url"], json=body, timeout=30)
    if response.status_code != 200:
        try:
            detail = response.json()
        except ValueError:
            detail = response.text
        raise ShlError(f"manifest: HTTP {response.status_code}", response.status_code, detail)
    return response.json()


def open_link(
    payload: dict[str, Any],
    *,
    recipient: str,
    passcode: str | None = None,
    embedded_length_max: int | None = None,
    session: requests.Session | None = None,
) -> list[tuple[str, bytes]]:
    """Every file of the link: (content type, plaintext), in manifest order."""
    key = b64d(payload["key"])
    http = session or requests
    if "U" in payload.get("flag", ""):
        response = http.get(payload["url"], params={"recipient": recipient}, timeout=30)
        if response.status_code != 200:
            raise ShlError(f"direct file: HTTP {response.status_code}", response.status_code)
        header, data = decrypt(response.text, key)
        return [(header.get("cty", ""), data)]
    found = manifest(
        payload,
        recipient=recipient,
        passcode=passcode,
        embedded_length_max=embedded_length_max,
        session=session,
    )
    out = []
    for entry in found["files"]:
        if "embedded" in entry:
            token = entry["embedded"]
        else:
            response = http.get(entry["location"], timeout=30)
            if response.status_code != 200:
                raise ShlError(f"file: HTTP {response.status_code}", response.status_code)
            token = response.text
        header, data = decrypt(token, key)
        if header.get("cty") != entry["contentType"]:
            raise ShlError("the JWE's cty differs from the manifest's contentType")
        out.append((entry["contentType"], data))
    return out
