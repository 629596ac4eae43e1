"""The FHIR R4 client symfhir's workflows use: reads, paged searches, conditional writes,
transactions and batches, streamed Binary upload and download, capability checks.

https://hl7.org/fhir/R4/http.html

Every method names its request in errors ("read Patient/12", "search Patient",
"transaction (5 entries)"): ids and resource types, never resource content or search values.
All errors are FhirServerError subclasses (symfhir.errors), raised by ``transport.send``.
This module is over 400 lines because it is the one REST surface of the server; its parts
(paging, write outcomes, Binary streaming) share the request plumbing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import requests
from requests.auth import AuthBase

from symfhir.errors import FhirRequestError, FhirResponseError, FhirServerError
from symfhir.fhir.auth import TokenCallback, make_auth
from symfhir.fhir.capabilities import Capabilities
from symfhir.fhir.config import ServerConfig, load_config
from symfhir.fhir.transport import (
    FHIR_JSON,
    FORM,
    bundle_is_idempotent,
    check_length,
    decode_fhir,
    iter_body,
    make_session,
    media_type,
    parse_json,
    read_body,
    send,
    too_large,
    translate,
)

Params = Mapping[str, Any] | Iterable[tuple[str, Any]] | None
Status = Literal["created", "unchanged", "updated", "deleted", "read"]

# Past this length a search goes as POST [type]/_search with a form body (http.html#search):
# proxies and servers commonly refuse URLs much over 2,000 characters.
MAX_QUERY = 1800
_TYPE = re.compile(r"[A-Z][A-Za-z]{0,63}")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_LOCATION = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/(?P<version>[^/?#]+))?/?$"
)
_ETAG = re.compile(r'^(?:W/)?"?(?P<version>[^"]+)"?$')
_MEDIA_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")


@dataclass(frozen=True)
class Written:
    """The result of one write: where the resource is and what the server did.

    ``status``: "created" (201), "unchanged" (a conditional create matched an existing
    resource), "updated", "deleted", or "read" (a GET entry of a batch).
    """

    resource_type: str
    id: str
    version: str | None
    status: Status
    location: str | None
    resource: dict | None = field(default=None, repr=False, compare=False)


class FhirClient:
    """A FHIR R4 server: ``FhirClient(config)`` or ``FhirClient.from_config()``; a context
    manager (``close()`` releases the connections it opened)."""

    def __init__(
        self,
        config: ServerConfig,
        auth: AuthBase | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.config = config
        self.base_url = config.base_url
        self._auth = auth
        self._own_session = session is None
        self.session = session if session is not None else make_session(config, auth)
        if session is not None and auth is not None:
            session.auth = auth
        self._capabilities: Capabilities | None = None

    @classmethod
    def from_config(
        cls,
        server: str | None = None,
        config_path: Path | None = None,
        environ: Mapping[str, str] = os.environ,
        *,
        token_response: dict[str, Any] | None = None,
        on_refresh: TokenCallback | None = None,
    ) -> FhirClient:
        """A client for the configured server (see ``load_config``); raises ConfigError."""
        config = load_config(server, config_path, environ)
        auth = make_auth(config, token_response=token_response, on_refresh=on_refresh)
        return cls(config, auth)

    def close(self) -> None:
        """Close the session (if this client made it) and the token endpoint's connections."""
        if self._own_session:
            self.session.close()
        close = getattr(self._auth, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """The server's CapabilityStatement (read once, then cached).

        Raises FhirCapabilityError for a statement that is not R4 or has no server part.
        """
        if self._capabilities is None:
            statement = self._json("GET", "metadata", "read capabilities")
            self._capabilities = Capabilities.from_statement(statement)
        return self._capabilities

    def read(self, resource_type: str, resource_id: str) -> dict:
        """The current version of a resource; FhirNotFoundError if absent or deleted."""
        path = _path(resource_type, resource_id)
        return self._expect(self._json("GET", path, f"read {path}"), resource_type, f"read {path}")

    def vread(self, resource_type: str, resource_id: str, version: str) -> dict:
        """One version of a resource; FhirNotFoundError if there is no such version."""
        path = f"{_path(resource_type, resource_id)}/_history/{_check_id(version, 'version')}"
        return self._expect(
            self._json("GET", path, f"vread {path}"), resource_type, f"vread {path}"
        )

    def search_bundles(self, resource_type: str, params: Params = None) -> Iterator[dict]:
        """Every page (searchset Bundle) of a search, following ``next`` links.

        Entries keep their ``search.mode`` ("match", "include", "outcome"), so ``_include`` and
        ``_revinclude`` results can be told apart. A query longer than MAX_QUERY characters is
        sent as POST [type]/_search. Raises FhirResponseError for a next link to another host.
        """
        operation = f"search {_check_type(resource_type)}"
        pairs = _pairs(params)
        query = urlencode(pairs)
        if len(query) > MAX_QUERY:
            response = self._send(
                "POST",
                f"{resource_type}/_search",
                operation,
                data=query.encode(),
                headers={"Content-Type": FORM},
                idempotent=True,  # a search writes nothing
            )
            first = parse_json(response, operation)
        else:
            first = self._json("GET", resource_type, operation, params=pairs)
        yield from self._pages(first, operation)

    def search(self, resource_type: str, params: Params = None) -> Iterator[dict]:
        """The resources of every page of a search (matches and ``_include``d ones alike:
        use ``search_bundles`` to tell them apart)."""
        for bundle in self.search_bundles(resource_type, params):
            yield from _resources(bundle)

    def search_all(self, resource_type: str, params: Params = None) -> list[dict]:
        """``search`` as a list."""
        return list(self.search(resource_type, params))

    def resource_count(self, resource_type: str, params: Params = None) -> int:
        """How many resources match (``_summary=count``)."""
        operation = f"count {_check_type(resource_type)}"
        pairs = [*_pairs(params), ("_summary", "count")]
        total = self._json("GET", resource_type, operation, params=pairs).get("total")
        if isinstance(total, bool) or not isinstance(total, int):
            raise _not_fhir(operation, "the count answer has no total")
        return total

    def everything(self, patient_id: str, params: Params = None) -> Iterator[dict]:
        """The resources of Patient/<id>/$everything, every page."""
        path = _path("Patient", patient_id)
        operation = f"$everything {path}"
        first = self._json("GET", f"{path}/$everything", operation, params=_pairs(params))
        for bundle in self._pages(first, operation):
            yield from _resources(bundle)

    # -- writing -------------------------------------------------------------------------

    def create(self, resource: dict, if_none_exist: str | None = None) -> Written:
        """Create a resource; with ``if_none_exist`` (e.g. "identifier=sys|123") only when no
        resource matches: then the status is "unchanged" and nothing is written.

        A create without condition is sent once, never retried. Raises FhirConflictError
        when the condition matches several resources.
        """
        resource_type = _type_of(resource)
        conditional = bool(if_none_exist)
        operation = f"{'conditional ' if conditional else ''}create {resource_type}"
        headers = {"If-None-Exist": if_none_exist} if if_none_exist else {}
        response = self._send(
            "POST",
            resource_type,
            operation,
            json_body=resource,
            headers=headers,
            idempotent=conditional,
        )
        status: Status = "unchanged" if conditional and response.status_code == 200 else "created"
        return _written(response, resource_type, status, operation)

    def update(self, resource: dict, if_match: str | None = None) -> Written:
        """PUT [type]/[id]; with ``if_match`` ("3" or 'W/"3"') only if that version is current.

        Raises FhirConflictError "version conflict" when it is not (HAPI answers 409, the
        spec 412: both are handled).
        """
        resource_type = _type_of(resource)
        path = _path(resource_type, str(resource.get("id", "")))
        operation = f"update {path}"
        headers = {}
        if if_match:
            headers["If-Match"] = (
                if_match if "/" in if_match or '"' in if_match else f'W/"{if_match}"'
            )
        try:
            response = self._send(
                "PUT", path, operation, json_body=resource, headers=headers, idempotent=True
            )
        except FhirServerError as exc:
            if if_match and exc.status in (409, 412):
                raise type(exc)(
                    operation,
                    f"version conflict: {path} is no longer at version {headers['If-Match']}",
                    status=exc.status,
                    issues=exc.issues,
                    body=exc.body,
                    log_text=exc.log_text,
                ) from None
            raise
        status: Status = "created" if response.status_code == 201 else "updated"
        return _written(response, resource_type, status, operation)

    def conditional_update(self, resource: dict, criteria: str) -> Written:
        """PUT [type]?criteria: update the one match, or create when none matches.

        Raises FhirConflictError when several resources match.
        """
        resource_type = _type_of(resource)
        operation = f"conditional update {resource_type}"
        response = self._send(
            "PUT",
            resource_type,
            operation,
            json_body=resource,
            params=parse_qsl(criteria, keep_blank_values=True),
            idempotent=True,
        )
        status: Status = "created" if response.status_code == 201 else "updated"
        return _written(response, resource_type, status, operation)

    def delete(self, resource_type: str, resource_id: str, cascade: bool = False) -> None:
        """Delete a resource; with ``cascade`` also those that reference it (HAPI's
        ``_cascade=delete``). Raises FhirConflictError when others still reference it."""
        path = _path(resource_type, resource_id)
        params = {"_cascade": "delete"} if cascade else None
        operation = f"{'cascading ' if cascade else ''}delete {path}"
        self._send("DELETE", path, operation, params=params, idempotent=True)

    def transaction(self, bundle: dict) -> dict:
        """POST a transaction Bundle; the transaction-response Bundle (see ``outcomes``).

        Retried only when every POST entry is a conditional create (``ifNoneExist``).
        """
        return self._bundle(bundle, "transaction")

    def batch(self, bundle: dict) -> dict:
        """POST a batch Bundle; the batch-response Bundle. Failed entries do not raise: see
        ``outcomes``."""
        return self._bundle(bundle, "batch")

    # -- Binary --------------------------------------------------------------------------

    def upload_binary(
        self,
        source: BinaryIO | str | Path,
        content_type: str,
        if_none_exist: str | None = None,
    ) -> Written:
        """Store bytes as a Binary, streamed from a file object or path (never read whole).

        Without ``if_none_exist`` the raw bytes are POSTed once. With it ("_tag=sys|code",
        the only criteria a Binary can satisfy) the body is a Binary resource carrying those
        tags, its base64 ``data`` encoded while sending, and the upload is a retryable
        conditional create ("unchanged" if such a Binary exists). Raises ValueError for an
        unusable content type, criteria or source.
        """
        if not _MEDIA_TYPE.match(content_type):
            raise ValueError(f"not a media type: {content_type!r}")
        if isinstance(source, str | Path):
            with Path(source).open("rb") as stream:
                return self._upload(stream, content_type, if_none_exist)
        return self._upload(source, content_type, if_none_exist)

    def download_binary(
        self, binary_id: str, dest: BinaryIO, max_bytes: int | None = None
    ) -> tuple[str, int, str]:
        """Stream Binary/<id>'s bytes into ``dest``; (content type, size, SHA-1 hex).

        Raises FhirResponseError past ``max_bytes`` (config.max_response_bytes by default);
        what was written to ``dest`` by then is incomplete.
        """
        path = _path("Binary", binary_id)
        operation = f"download {path}"
        limit = max_bytes or self.config.max_response_bytes
        # Any Accept but FHIR's asks for the raw bytes (http.html#binary).
        response = self._send(
            "GET", path, operation, headers={"Accept": "*/*"}, stream=True, idempotent=True
        )
        with response:
            content_type = media_type(response)
            if content_type in (FHIR_JSON, "application/json+fhir"):
                # Either the server sent the Binary resource (its data in base64) or the stored
                # bytes are themselves FHIR JSON: read it whole (capped) to tell which.
                read_body(response, limit * 4 // 3 + 64 * 1024, operation, self.config.timeout)
                resource, _ = decode_fhir(content_type, response.content)
                chunks: Iterable[bytes] = [response.content]
                if resource is not None and resource.get("resourceType") == "Binary":
                    chunks = [_binary_data(resource, operation)]
                    content_type = str(resource.get("contentType", ""))
            else:
                check_length(response, limit, operation)
                chunks = iter_body(response, operation, self.config.timeout)
            sha1 = hashlib.sha1(usedforsecurity=False)
            size = 0
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise too_large(operation, response.status_code, limit)
                sha1.update(chunk)
                dest.write(chunk)
        return content_type, size, sha1.hexdigest()

    # -- plumbing ------------------------------------------------------------------------

    def _send(self, method: str, path: str, operation: str, **kwargs: Any) -> requests.Response:
        if path.startswith(("http://", "https://")):
            url = path
        else:
            url = f"{self.base_url}/{path}" if path else self.base_url
        return send(self.session, method, url, operation, **kwargs)

    def _json(self, method: str, path: str, operation: str, **kwargs: Any) -> dict:
        response = self._send(method, path, operation, idempotent=True, **kwargs)
        return parse_json(response, operation)

    @staticmethod
    def _expect(resource: dict, resource_type: str, operation: str) -> dict:
        if resource.get("resourceType") != resource_type:
            raise _not_fhir(operation, f"expected a {resource_type}, got something else")
        return resource

    def _pages(self, bundle: dict, operation: str) -> Iterator[dict]:
        origin = _origin(self.base_url)
        seen: set[str] = set()
        while True:
            if bundle.get("resourceType") != "Bundle":
                raise _not_fhir(operation, "expected a Bundle")
            yield bundle
            link = _next_link(bundle)
            if link is None:
                return
            url = urljoin(self.base_url + "/", link)
            if _origin(url) != origin:
                raise _not_fhir(
                    operation, f"refused a next-page link to another host ({_origin(url)[1]})"
                )
            if url in seen:
                raise _not_fhir(operation, "the next-page link repeats a page already read")
            seen.add(url)
            bundle = self._json("GET", url, f"{operation} (page {len(seen) + 1})")

    def _bundle(self, bundle: dict, kind: str) -> dict:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise ValueError(f"{kind}: not a Bundle")
        if bundle.get("type") != kind:
            raise ValueError(f"{kind}: the Bundle's type is {bundle.get('type')!r}")
        entries = bundle.get("entry") or []
        operation = f"{kind} ({len(entries)} entries)"
        response = self._send(
            "POST", "", operation, json_body=bundle, idempotent=bundle_is_idempotent(bundle)
        )
        answer = parse_json(response, operation)
        if answer.get("resourceType") != "Bundle" or answer.get("type") != f"{kind}-response":
            raise _not_fhir(operation, f"expected a {kind}-response Bundle")
        if len(answer.get("entry") or []) != len(entries):
            raise _not_fhir(operation, "the response has a different number of entries")
        return answer

    def _upload(self, stream: BinaryIO, content_type: str, if_none_exist: str | None) -> Written:
        if not if_none_exist:
            response = self._send(
                "POST",
                "Binary",
                "upload Binary",
                data=stream,
                headers={"Content-Type": content_type, "Prefer": "return=minimal"},
                idempotent=False,
            )
            return _written(response, "Binary", "created", "upload Binary")
        operation = "conditional upload Binary"
        body = Base64JsonBody(stream, _binary_head(content_type, if_none_exist), b'"}')
        response = self._send(
            "POST",
            "Binary",
            operation,
            data=body,
            headers={
                "Content-Type": FHIR_JSON,
                "If-None-Exist": if_none_exist,
                "Prefer": "return=minimal",
            },
            idempotent=True,
        )
        status: Status = "unchanged" if response.status_code == 200 else "created"
        return _written(response, "Binary", status, operation)


def outcomes(request_bundle: dict, response_bundle: dict) -> list[Written | FhirServerError]:
    """What each entry of a transaction or batch did, in order.

    A 2xx entry gives a Written: a POST answered 201 is "created", 200 "unchanged" (its
    conditional create matched); a PUT 201 "created", 200 "updated"; a DELETE "deleted"; a GET
    "read". A failed batch entry (4xx/5xx with its OperationOutcome) gives the FhirServerError
    it would have raised, not raised. Raises FhirResponseError if the bundles do not pair up.
    """
    kind = str(request_bundle.get("type", "bundle"))
    requests_ = request_bundle.get("entry") or []
    answers = response_bundle.get("entry") or []
    if len(requests_) != len(answers):
        raise _not_fhir(kind, "the response has a different number of entries")
    results: list[Written | FhirServerError] = []
    for index, (sent, got) in enumerate(zip(requests_, answers, strict=True), start=1):
        request = sent.get("request") or {}
        method = str(request.get("method", "")).upper()
        url = str(request.get("url", ""))
        answer = got.get("response") or {}
        code = _status_code(answer.get("status"))
        target = url.split("?", 1)[0]
        operation = f"{kind} entry {index}: {method} {target}"
        if code is None:
            raise _not_fhir(operation, "the entry's response has no status")
        if code >= 300:
            results.append(translate(operation, status=code, outcome=answer.get("outcome")))
            continue
        status: Status
        if method == "POST":
            status = "unchanged" if code == 200 and request.get("ifNoneExist") else "created"
        elif method == "PUT":
            status = "created" if code == 201 else "updated"
        elif method == "DELETE":
            status = "deleted"
        else:
            status = "read"
        resource = got.get("resource") if isinstance(got.get("resource"), dict) else None
        location = answer.get("location") if isinstance(answer.get("location"), str) else None
        parsed = _parse_location(location) if location else None
        if parsed is None and resource is not None:
            parsed = (str(resource.get("resourceType", "")), str(resource.get("id", "")), None)
        if parsed is None:
            parsed = _parse_location(target) or (target, "", None)
        resource_type, resource_id, version = parsed
        version = version or _etag_version(answer.get("etag"))
        results.append(Written(resource_type, resource_id, version, status, location, resource))
    return results


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
        raise _not_fhir(operation, "expected a Binary")
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        raise _not_fhir(operation, "the Binary's data is not base64") from None


def _written(response: requests.Response, resource_type: str, status: Status, op: str) -> Written:
    resource = parse_json(response, op) if response.content.strip() else {}
    if resource.get("resourceType") != resource_type:
        resource = {}  # e.g. an OperationOutcome about the write
    location = response.headers.get("Location") or response.headers.get("Content-Location")
    parsed = _parse_location(location) if location else None
    meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
    if parsed is None:
        parsed = (resource_type, str(resource.get("id", "")), meta.get("versionId"))
    found_type, found_id, version = parsed
    if not found_id:
        raise _not_fhir(op, "the answer does not say where the resource was stored")
    version = version or meta.get("versionId") or _etag_version(response.headers.get("ETag"))
    return Written(found_type, found_id, version, status, location, resource or None)


def _next_link(bundle: dict) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) and url else None
    return None


def _resources(bundle: dict) -> Iterator[dict]:
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue
        search = entry.get("search") if isinstance(entry.get("search"), dict) else {}
        if search.get("mode") != "outcome":
            yield entry["resource"]


def _pairs(params: Params) -> list[tuple[str, str]]:
    if params is None:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    pairs: list[tuple[str, str]] = []
    for name, value in items:
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend((str(name), str(v)) for v in values)
    return pairs


def _type_of(resource: object) -> str:
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise ValueError("not a FHIR resource (a dict with a resourceType)")
    return _check_type(resource["resourceType"])


def _check_type(resource_type: str) -> str:
    if not isinstance(resource_type, str) or not _TYPE.fullmatch(resource_type):
        raise FhirRequestError("request", "not a FHIR resource type")
    return resource_type


def _check_id(value: str, what: str = "id") -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise FhirRequestError("request", f"not a valid FHIR {what}")
    return value


def _path(resource_type: str, resource_id: str) -> str:
    return f"{_check_type(resource_type)}/{_check_id(resource_id)}"


def _parse_location(location: str | None) -> tuple[str, str, str | None] | None:
    if not location:
        return None
    match = _LOCATION.search(location.split("?", 1)[0])
    if match is None:
        return None
    return match["type"], match["id"], match["version"]


def _etag_version(etag: object) -> str | None:
    match = _ETAG.match(etag.strip()) if isinstance(etag, str) else None
    return match["version"] if match else None


def _status_code(status: object) -> int | None:
    head = str(status or "").strip().split(" ", 1)[0]
    return int(head) if head.isdigit() else None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is no number: matches no origin
        return parts.scheme, "invalid"
    return parts.scheme, f"{(parts.hostname or '').lower()}:{port}"


def _not_fhir(operation: str, reason: str) -> FhirResponseError:
    return FhirResponseError(operation, reason, log_text=f"{operation}: {reason}")
