"""Business identifiers, stable ``urn:uuid`` full URLs and bundle entries.

Every resource symfhir writes carries a business identifier under the spa's
namespace, so conditional creates make replays harmless. Identifier values of
health facts are hashes, not words: ``ifNoneExist`` queries end up in server
logs, and "penicillin" in a URL would be PHI.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from symfhir.mapping.context import MappingContext

# Fixed namespace so the same input always yields the same fullUrls (reproducible output).
_NAMESPACE = uuid.UUID("6f1b7d9e-3c1a-5b8e-9a57-2f4c0d7e8a11")
TAG_SYSTEM = "http://symfhir.org/fhir/CodeSystem/source-key"


@dataclass(frozen=True)
class Entry:
    """A resource about to go into a transaction Bundle."""

    resource: dict[str, Any]
    full_url: str
    if_none_exist: str

    @property
    def reference(self) -> dict[str, str]:
        return {"reference": self.full_url}


def digest(*parts: str) -> str:
    """A short, stable, non-reversible key for a fact (16 hex chars of SHA-256)."""
    text = "\x1f".join(p.strip().casefold() for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def identifier(ctx: MappingContext, kind: str, value: str) -> dict[str, str]:
    return {"system": f"{ctx.spa.identifier_base}/{kind}", "value": value}


_NAMESPACE_SHA1 = hashlib.sha1(_NAMESPACE.bytes, usedforsecurity=False)


def full_url_for(system: str, value: str) -> str:
    """``urn:uuid:`` + ``uuid.uuid5(_NAMESPACE, "system|value")``, computed without building
    UUID objects: every resource of a mapping run gets one, and ``uuid5`` was ~6 % of
    ``symfhir map`` (tests/unit/test_refs.py checks it equals uuid5)."""
    sha = _NAMESPACE_SHA1.copy()
    sha.update(f"{system}|{value}".encode())
    h = sha.hexdigest()
    # version 5 in the 13th hex digit; the RFC 4122 variant (10xx) in the 17th
    return f"urn:uuid:{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_VARIANT = {d: "89ab"[int(d, 16) & 0x3] for d in "0123456789abcdef"}


def entry(resource: dict[str, Any], ident: dict[str, str]) -> Entry:
    """Entry for a resource identified by ``ident`` (already set on the resource)."""
    system, value = ident["system"], ident["value"]
    return Entry(resource, full_url_for(system, value), f"identifier={system}|{value}")


def tagged_entry(resource: dict[str, Any], key: str) -> Entry:
    """Entry for a resource type without an identifier (Binary, Provenance): keyed by a tag."""
    resource.setdefault("meta", {})["tag"] = [{"system": TAG_SYSTEM, "code": key}]
    return Entry(resource, full_url_for(TAG_SYSTEM, key), f"_tag={TAG_SYSTEM}|{key}")


def organization_ref(ctx: MappingContext) -> dict[str, Any]:
    spa = ctx.spa
    return {
        "identifier": {"system": spa.identifier_system, "value": spa.identifier_value},
        "display": spa.name,
    }
