"""Reads from the upstream FHIR server for the launcher and pickers (no token: it is local)."""

from __future__ import annotations

import logging
from typing import Any

import requests

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
TIMEOUT_S = 10
LIST_COUNT = 50
SYNTHETIC_SYSTEM = "urn:symfhir:sandbox"
SYNTHETIC_PRACTITIONER: dict[str, Any] = {
    "resourceType": "Practitioner",
    "identifier": [{"system": SYNTHETIC_SYSTEM, "value": "sandbox-practitioner"}],
    "active": True,
    "name": [
        {"use": "official", "prefix": ["Dr."], "given": ["Sandbox"], "family": "Practitioner"}
    ],
}


class UpstreamError(Exception):
    """The upstream FHIR server did not answer as expected.

    Its text is shown on pages, so it names neither the upstream's URL nor the query (a
    patient's name); the log gets the kind of failure, no more.
    """


def _failed(what: str, error: Exception) -> UpstreamError:
    log.warning("sandbox upstream: %s failed: %s", what, type(error).__name__)
    return UpstreamError(f"the FHIR server behind the sandbox is unavailable ({what} failed)")


def display_name(resource: dict[str, Any]) -> str:
    """A human name for a Patient or Practitioner, else its id."""
    for name in resource.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return str(resource.get("id", "?"))


def search(
    upstream: str, resource_type: str, count: int = LIST_COUNT, name: str = ""
) -> list[dict[str, Any]]:
    """The first `count` resources of a type, the most recently updated first; only those
    whose name matches `name` when given. Raises UpstreamError."""
    params: dict[str, Any] = {"_count": count, "_sort": "-_lastUpdated"}
    if name.strip():
        params["name"] = name.strip()
    try:
        response = requests.get(
            f"{upstream}/{resource_type}",
            params=params,
            headers={"Accept": FHIR_JSON},
            timeout=TIMEOUT_S,
        )
        response.raise_for_status()
        bundle = response.json()
    except (requests.RequestException, ValueError) as error:
        raise _failed(f"{resource_type} search", error) from error
    return [e["resource"] for e in bundle.get("entry", []) if "resource" in e]


def practitioners(upstream: str) -> list[dict[str, Any]]:
    """Practitioners; when there are none, the synthetic one is created (conditional create)."""
    found = search(upstream, "Practitioner")
    if found:
        return found
    identifier = SYNTHETIC_PRACTITIONER["identifier"][0]
    try:
        response = requests.post(
            f"{upstream}/Practitioner",
            json=SYNTHETIC_PRACTITIONER,
            headers={
                "Content-Type": FHIR_JSON,
                "Accept": FHIR_JSON,
                "If-None-Exist": f"identifier={identifier['system']}|{identifier['value']}",
                "Prefer": "return=representation",
            },
            timeout=TIMEOUT_S,
        )
        response.raise_for_status()
    except requests.RequestException as error:
        raise _failed("creating the sandbox practitioner", error) from error
    return search(upstream, "Practitioner")
