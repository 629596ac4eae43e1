"""What a FHIR write did: ``Written``, read from a write's answer or a transaction's entries.

https://hl7.org/fhir/R4/http.html#create (Location, ETag) and http.html#transaction-response
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import requests

from symfhir.errors import FhirServerError
from symfhir.fhir.body import parse_json
from symfhir.fhir.paths import parse_location
from symfhir.fhir.translate import not_fhir, translate

Status = Literal["created", "unchanged", "updated", "deleted", "read"]

_ETAG = re.compile(r'^(?:W/)?"?(?P<version>[^"]+)"?$')


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
        raise not_fhir(kind, "the response has a different number of entries")
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
            raise not_fhir(operation, "the entry's response has no status")
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
        parsed = parse_location(location) if location else None
        if parsed is None and resource is not None:
            parsed = (str(resource.get("resourceType", "")), str(resource.get("id", "")), None)
        if parsed is None:
            parsed = parse_location(target) or (target, "", None)
        resource_type, resource_id, version = parsed
        version = version or _etag_version(answer.get("etag"))
        results.append(Written(resource_type, resource_id, version, status, location, resource))
    return results


def written(response: requests.Response, resource_type: str, status: Status, op: str) -> Written:
    """The Written for one write's 2xx answer. Where the resource is comes from Location (else
    Content-Location, else the returned resource); its version from there, its meta or the ETag.

    Raises FhirResponseError when the answer does not say where the resource was stored.
    """
    resource = parse_json(response, op) if response.content.strip() else {}
    if resource.get("resourceType") != resource_type:
        resource = {}  # e.g. an OperationOutcome about the write
    location = response.headers.get("Location") or response.headers.get("Content-Location")
    parsed = parse_location(location) if location else None
    meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
    if parsed is None:
        parsed = (resource_type, str(resource.get("id", "")), meta.get("versionId"))
    found_type, found_id, version = parsed
    if not found_id:
        raise not_fhir(op, "the answer does not say where the resource was stored")
    version = version or meta.get("versionId") or _etag_version(response.headers.get("ETag"))
    return Written(found_type, found_id, version, status, location, resource or None)


def _etag_version(etag: object) -> str | None:
    match = _ETAG.match(etag.strip()) if isinstance(etag, str) else None
    return match["version"] if match else None


def _status_code(status: object) -> int | None:
    head = str(status or "").strip().split(" ", 1)[0]
    return int(head) if head.isdigit() else None
