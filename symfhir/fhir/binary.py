"""FHIR Binary streamed up and down: never read whole into memory.

https://hl7.org/fhir/R4/http.html#binary and binary.html
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from collections.abc import Iterable
from typing import Any, BinaryIO
from urllib.parse import parse_qsl

import requests

from symfhir.fhir.body import check_length, iter_body, read_body, too_large
from symfhir.fhir.translate import decode_fhir, media_type, not_fhir
from symfhir.fhir.transport import FHIR_JSON

_MEDIA_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")


def check_media_type(content_type: str) -> str:
    """``content_type`` if it is a media type ("image/jpeg"); raises ValueError otherwise."""
    if not _MEDIA_TYPE.match(content_type):
        raise ValueError(f"not a media type: {content_type!r}")
    return content_type


def conditional_body(stream: BinaryIO, content_type: str, criteria: str) -> Base64JsonBody:
    """The body of a conditional Binary upload: a Binary resource tagged as ``criteria``
    ("_tag=system|code") says, its ``data`` the base64 of ``stream`` encoded while sending.

    Raises ValueError for other criteria or a stream that cannot seek.
    """
    return Base64JsonBody(stream, _binary_head(content_type, criteria), b'"}')


def copy_binary(
    response: requests.Response,
    dest: BinaryIO,
    limit: int,
    operation: str,
    timeout: tuple[float, float],
) -> tuple[str, int, str]:
    """Copy a streamed Binary download into ``dest``; (content type, size, SHA-1 hex).

    Raises FhirResponseError past ``limit`` bytes; what was written to ``dest`` by then is
    incomplete.
    """
    content_type = media_type(response)
    if content_type in (FHIR_JSON, "application/json+fhir"):
        # Either the server sent the Binary resource (its data in base64) or the stored
        # bytes are themselves FHIR JSON: read it whole (capped) to tell which.
        read_body(response, limit * 4 // 3 + 64 * 1024, operation, timeout)
        resource, _ = decode_fhir(content_type, response.content)
        chunks: Iterable[bytes] = [response.content]
        if resource is not None and resource.get("resourceType") == "Binary":
            chunks = [_binary_data(resource, operation)]
            content_type = str(resource.get("contentType", ""))
    else:
        check_length(response, limit, operation)
        chunks = iter_body(response, operation, timeout)
    sha1 = hashlib.sha1(usedforsecurity=False)
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large(operation, response.status_code, limit)
        sha1.update(chunk)
        dest.write(chunk)
    return content_type, size, sha1.hexdigest()


class Base64JsonBody(io.RawIOBase):
    """A request body ``head + base64(stream) + tail`` produced while it is read.

    It knows its length (so requests sends Content-Length, not chunks) and can seek (so a
    retry rewinds it); the stream must be seekable. Memory use is one read's worth.
    """

    def __init__(self, stream: BinaryIO, head: bytes, tail: bytes) -> None:
        super().__init__()
        if not stream.seekable():
            raise ValueError("a conditional Binary upload needs a seekable source")
        self._stream = stream
        self._start = stream.tell()
        size = stream.seek(0, io.SEEK_END) - self._start
        self._head, self._tail = head, tail
        self._encoded = 4 * ((size + 2) // 3)
        self._length = len(head) + self._encoded + len(tail)
        self._pos = 0

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = min(max(base + offset, 0), self._length)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._length - self._pos
        out = bytearray()
        while len(out) < size and self._pos < self._length:
            out += self._piece(size - len(out))
        return bytes(out)

    def _piece(self, want: int) -> bytes:
        head_end = len(self._head)
        data_end = head_end + self._encoded
        if self._pos < head_end:
            piece = self._head[self._pos : self._pos + want]
        elif self._pos < data_end:
            offset = self._pos - head_end
            group = offset // 4  # base64 turns each 3 raw bytes into 4
            groups = max(1, (want + offset % 4 + 3) // 4)
            self._stream.seek(self._start + 3 * group)
            encoded = base64.b64encode(self._stream.read(3 * min(groups, 16384)))
            piece = encoded[offset % 4 : offset % 4 + want]
            if not piece:
                raise ValueError("the Binary source changed while it was being sent")
        else:
            offset = self._pos - data_end
            piece = self._tail[offset : offset + want]
        self._pos += len(piece)
        return piece


def _binary_head(content_type: str, criteria: str) -> bytes:
    tags = []
    for name, value in parse_qsl(criteria, keep_blank_values=True):
        system, bar, code = value.partition("|")
        if name != "_tag" or not bar or not code:
            raise ValueError("a conditional Binary upload takes only _tag=system|code criteria")
        tags.append({"system": system, "code": code} if system else {"code": code})
    if not tags:
        raise ValueError("a conditional Binary upload takes only _tag=system|code criteria")
    head = {"resourceType": "Binary", "meta": {"tag": tags}, "contentType": content_type}
    # The JSON object is left open for the base64 "data" that follows, then closed by the tail.
    return json.dumps(head, separators=(",", ":")).encode()[:-1] + b',"data":"'


def _binary_data(resource: dict, operation: str) -> bytes:
    data = resource.get("data", "")
    if resource.get("resourceType") != "Binary" or not isinstance(data, str):
        raise not_fhir(operation, "expected a Binary")
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        raise not_fhir(operation, "the Binary's data is not base64") from None
