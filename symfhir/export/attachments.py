"""The files a client's resources carry: a photo's ``Media.content``, a signed form's
``Consent.sourceAttachment``, a document's ``DocumentReference.content.attachment``. Each is
either a Binary on the same server (streamed from it, never whole in memory) or inline
``data`` (already in the resource, decoded piecewise)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from symfhir.errors import FhirResponseError
from symfhir.fhir import FhirClient
from symfhir.fhir.paths import binary_id_of

_UNSAFE = re.compile(r"[^A-Za-z0-9\-.]")
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/heic": ".heic",
    "application/pdf": ".pdf",
    "video/mp4": ".mp4",
    "text/plain": ".txt",
}
CHUNK = 48 * 1024  # a multiple of 3, so base64 pieces join without padding in between


@dataclass(frozen=True)
class FileRef:
    """One attachment of one resource: where it goes in a package (``name``), what the
    resource says of it, and where its bytes are (``binary_id`` or inline ``data``)."""

    owner: str  # "Media/12"
    folder: str  # "photos" or "forms"
    name: str  # "photos/Media-12.jpg"
    content_type: str
    title: str
    binary_id: str | None
    data: str | None  # inline base64

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


def attachments_of(resource: dict[str, Any], base_url: str) -> list[FileRef]:
    """The attachments of a Media, Consent or DocumentReference with bytes to export."""
    resource_type = resource.get("resourceType")
    found: list[Any] = []
    if resource_type == "Media":
        found = [resource.get("content")]
        folder = "photos"
    elif resource_type == "Consent":
        found = [resource.get("sourceAttachment")]
        folder = "forms"
    elif resource_type == "DocumentReference":
        found = [c.get("attachment") for c in resource.get("content") or [] if isinstance(c, dict)]
        folder = "photos" if _is_photo_document(resource) else "forms"
    owner = f"{resource_type}/{resource.get('id', '')}"
    refs = []
    for index, attachment in enumerate(a for a in found if isinstance(a, dict)):
        content_type = str(attachment.get("contentType") or "application/octet-stream")
        binary = binary_id_of(attachment.get("url"), base_url)
        data = attachment.get("data") if isinstance(attachment.get("data"), str) else None
        if binary is None and data is None:
            continue
        suffix = f"-{index + 1}" if index else ""
        extension = _EXTENSIONS.get(content_type, ".bin")
        # Ids come from the server: anything but FHIR id characters is replaced, so a name
        # can never leave its folder or break out of an HTML attribute.
        safe_id = _UNSAFE.sub("_", str(resource.get("id", "")))[:64] or "unnamed"
        name = f"{folder}/{resource_type}-{safe_id}{suffix}{extension}"
        title = str(attachment.get("title") or "")
        refs.append(FileRef(owner, folder, name, content_type, title, binary, data))
    return refs


def write_file(client: FhirClient, ref: FileRef, dest: IO[bytes]) -> tuple[int, str]:
    """Stream the attachment's bytes into ``dest``; (size, SHA-1 hex). Raises
    FhirServerError when the Binary cannot be read, FhirResponseError for bad inline data."""
    if ref.binary_id is not None:
        _, size, sha1 = client.download_binary(ref.binary_id, dest)
        return size, sha1
    digest = hashlib.sha1(usedforsecurity=False)
    size = 0
    for piece in _decoded(ref):
        digest.update(piece)
        size += len(piece)
        dest.write(piece)
    return size, digest.hexdigest()


class Base64Writer:
    """A file-like sink that base64-encodes what is written to it into ``dest`` (for a
    photo embedded in a single HTML page), holding at most two bytes between writes."""

    def __init__(self, dest: IO[bytes]) -> None:
        self._dest = dest
        self._rest = b""

    def write(self, data: bytes) -> int:
        buffered = self._rest + bytes(data)
        cut = len(buffered) - len(buffered) % 3
        self._dest.write(base64.b64encode(buffered[:cut]))
        self._rest = buffered[cut:]
        return len(data)

    def close(self) -> None:
        self._dest.write(base64.b64encode(self._rest))
        self._rest = b""


def inline_base64(ref: FileRef) -> Iterator[bytes]:
    """Inline data as it is (already base64), in pieces, whitespace removed."""
    data = "".join((ref.data or "").split())
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK].encode("ascii")


def _decoded(ref: FileRef) -> Iterator[bytes]:
    data = "".join((ref.data or "").split())
    step = CHUNK // 3 * 4
    for start in range(0, len(data), step):
        try:
            yield base64.b64decode(data[start : start + step], validate=True)
        except (binascii.Error, ValueError):
            raise FhirResponseError(
                f"export {ref.owner}", "the attachment's data is not base64"
            ) from None


def _is_photo_document(resource: dict[str, Any]) -> bool:
    # A photo kept as a DocumentReference (the Media fallback) carries an image.
    for content in resource.get("content") or []:
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if isinstance(attachment, dict) and str(attachment.get("contentType", "")).startswith(
            "image/"
        ):
            return True
    return False
