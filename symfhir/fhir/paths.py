"""FHIR REST paths ``[type]/[id]/_history/[vid]``: checked before sending, parsed from answers.

https://hl7.org/fhir/R4/http.html#general and datatypes.html#id
"""

from __future__ import annotations

import re

from symfhir.errors import FhirRequestError

_TYPE = re.compile(r"[A-Z][A-Za-z]{0,63}")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_LOCATION = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/(?P<version>[^/?#]+))?/?$"
)


def type_of(resource: object) -> str:
    """The checked resourceType of a resource; raises ValueError for something else."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise ValueError("not a FHIR resource (a dict with a resourceType)")
    return check_type(resource["resourceType"])


def check_type(resource_type: str) -> str:
    """``resource_type`` if it is a FHIR resource type name; raises FhirRequestError."""
    if not isinstance(resource_type, str) or not _TYPE.fullmatch(resource_type):
        raise FhirRequestError("request", "not a FHIR resource type")
    return resource_type


def check_id(value: str, what: str = "id") -> str:
    """``value`` if it is a FHIR id (or version id); raises FhirRequestError."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise FhirRequestError("request", f"not a valid FHIR {what}")
    return value


def resource_path(resource_type: str, resource_id: str) -> str:
    """``[type]/[id]``, both checked; raises FhirRequestError."""
    return f"{check_type(resource_type)}/{check_id(resource_id)}"


def parse_location(location: str | None) -> tuple[str, str, str | None] | None:
    """(type, id, version or None) from a Location-like URL or path; None if it names none."""
    if not location:
        return None
    match = _LOCATION.search(location.split("?", 1)[0])
    if match is None:
        return None
    return match["type"], match["id"], match["version"]


def binary_id_of(url: object, base_url: str) -> str | None:
    """The Binary id an attachment's ``url`` names on the server at ``base_url``:
    ``Binary/<id>`` or ``<base_url>/Binary/<id>``, with or without ``/_history/<vid>``; None
    for anything else, so a URL to another server is never followed."""
    if not isinstance(url, str):
        return None
    prefix = base_url.rstrip("/") + "/"
    if url.startswith(prefix):
        url = url[len(prefix) :]
    parts = url.split("/")
    if len(parts) not in (2, 4) or parts[0] != "Binary" or not _ID.fullmatch(parts[1]):
        return None
    return parts[1] if len(parts) == 2 or parts[2] == "_history" else None
