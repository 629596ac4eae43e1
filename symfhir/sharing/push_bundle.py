"""What a push sends, built from a share package (pure): the transaction re-creating the shared
resources on another provider's FHIR server, with a Provenance naming the spa as the source.

https://hl7.org/fhir/R4/http.html#transaction and provenance.html

Every resource is created anew under a ``urn:uuid`` fullUrl; references between the shared
resources point at those urns (the target gives new ids and links them); a reference to
anything not shared (the practitioner, an encounter) keeps only its display, so nothing outside
the package is named and the target has nothing to resolve. Every POST is a conditional create
on the spa's ``shared-resource`` identifier naming the resource it was made from (business
identifiers need not be unique; a QuestionnaireResponse, which has room for one identifier,
keeps its own; a Binary or the Provenance a tag), so the client layer may retry the whole
transaction after a 429 or 503 without duplicating anything, and pushing the same records
again adds nothing.
Photos go up as a Binary with the Media pointing at it (``url``, ``size``, ``hash``), or inline
in the Media when the target cannot create Binary.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from symfhir.errors import PushError

#: Types whose ``identifier`` is one Identifier, not a list (R4).
SINGLE_IDENTIFIER = frozenset({"QuestionnaireResponse", "Composition", "Bundle"})
#: Types without ``identifier`` (R4): conditional on a tag instead.
NO_IDENTIFIER = frozenset({"Binary", "Provenance"})
#: Server-assigned meta elements: the target sets its own.
SERVER_META = ("versionId", "lastUpdated", "source")
#: A document's Composition only makes sense inside its document; the transaction carries
#: the resources it lists.
DOCUMENT_ONLY = frozenset({"Composition"})


@dataclass(frozen=True)
class Source:
    """The spa as the source of what is pushed: its name, its identifier, and the base of the
    identifier systems it mints (``mappings/spa.yaml``)."""

    name: str
    identifier_system: str
    identifier_value: str
    identifier_base: str

    @property
    def shared_resource_system(self) -> str:
        return f"{self.identifier_base}/shared-resource"

    @property
    def push_tag_system(self) -> str:
        return f"{self.identifier_base}/push"


@dataclass(frozen=True)
class Transaction:
    """The transaction Bundle, and per entry what it carries: the shared resource's own
    ``Type/id`` (or ``Binary for Media/id``, ``Provenance``)."""

    bundle: dict[str, Any]
    sources: tuple[str, ...]


def resources_of(bundle: Mapping[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
    """(fullUrl, resource) of each entry of a Bundle that holds a resource."""
    found = []
    for entry in bundle.get("entry") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("resource"), Mapping):
            full_url = entry.get("fullUrl")
            found.append((full_url if isinstance(full_url, str) else None, dict(entry["resource"])))
    return found


def push_transaction(
    entries: Iterable[tuple[str | None, Mapping[str, Any]]],
    photos: Iterable[Mapping[str, Any]],
    *,
    source: Source,
    now: datetime,
    binary: bool,
    push_id: str | None = None,
    new_urn: Callable[[], str] = lambda: f"urn:uuid:{uuid.uuid4()}",
) -> Transaction:
    """The transaction creating ``entries`` ((fullUrl, resource) of the shared resources, one
    copy each: a resource named twice is sent once), the photo ``photos`` (Media with inline
    ``content.data``; as Binary + Media when ``binary``) and one Provenance.

    Raises PushError for a resource without a type or id, or a photo without inline data.
    """
    push_id = push_id or uuid.uuid4().hex
    chosen: dict[str, dict[str, Any]] = {}
    aliases: dict[str, str] = {}
    for full_url, resource in entries:
        key = _key(resource)
        if resource.get("resourceType") in DOCUMENT_ONLY or key in chosen:
            if full_url and key in chosen:
                aliases[full_url] = key
            continue
        chosen[key] = dict(resource)
        if full_url:
            aliases[full_url] = key
    media = []
    for photo in photos:
        key = _key(photo)
        if photo.get("resourceType") != "Media":
            raise PushError(f"{key}: a photo file must hold one Media")
        chosen.pop(key, None)  # the photo file's copy carries the bytes
        media.append(dict(photo))
    urns = {key: new_urn() for key in [*chosen, *(_key(m) for m in media)]}
    for full_url, key in aliases.items():
        urns.setdefault(full_url, urns[key])

    out: list[dict[str, Any]] = []
    sources: list[str] = []
    for key, resource in chosen.items():
        out.append(_create(urns[key], _prepared(resource, urns, source)))
        sources.append(key)
    for photo in media:
        key = _key(photo)
        prepared = _prepared(photo, urns, source)
        if binary:
            binary_entry = _binary_for(prepared, key, new_urn(), source)
            out.append(binary_entry)
            sources.append(f"Binary for {key}")
        out.append(_create(urns[key], prepared))
        sources.append(key)
    targets = [e["fullUrl"] for e in out if e["resource"]["resourceType"] != "Binary"]
    if targets:
        out.append(_create(new_urn(), provenance(targets, source, now, push_id)))
        sources.append("Provenance")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": out}
    return Transaction(bundle, tuple(sources))


def provenance(targets: Sequence[str], source: Source, now: datetime, push_id: str) -> dict:
    """The Provenance of a push: its targets came from the spa's record (entity ``source``),
    the spa being the agent that assembled and sent them at ``now``."""
    spa = {
        "identifier": {"system": source.identifier_system, "value": source.identifier_value},
        "display": source.name,
    }
    return {
        "resourceType": "Provenance",
        "meta": {"tag": [{"system": source.push_tag_system, "code": push_id}]},
        "target": [{"reference": t} for t in targets],
        "recorded": now.isoformat(timespec="seconds"),
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "CREATE",
                    "display": "create",
                }
            ]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "assembler",
                            "display": "Assembler",
                        }
                    ]
                },
                "who": spa,
            }
        ],
        "entity": [{"role": "source", "what": {**spa, "display": f"{source.name} client record"}}],
    }


def condition_of(resource: Mapping[str, Any]) -> str | None:
    """The ``ifNoneExist`` criteria of a prepared resource: its first identifier with a system
    and value, else its first tag; None when it has neither."""
    identifiers = resource.get("identifier")
    if isinstance(identifiers, Mapping):
        identifiers = [identifiers]
    for identifier in identifiers or []:
        if isinstance(identifier, Mapping) and identifier.get("system") and identifier.get("value"):
            return urlencode({"identifier": f"{identifier['system']}|{identifier['value']}"})
    for tag in (resource.get("meta") or {}).get("tag") or []:
        if isinstance(tag, Mapping) and tag.get("system") and tag.get("code"):
            return urlencode({"_tag": f"{tag['system']}|{tag['code']}"})
    return None


def _key(resource: Mapping[str, Any]) -> str:
    kind, rid = resource.get("resourceType"), resource.get("id")
    if not isinstance(kind, str) or not kind or not isinstance(rid, str) or not rid:
        raise PushError("a shared resource has no type or id")
    return f"{kind}/{rid}"


def _prepared(resource: Mapping[str, Any], urns: Mapping[str, str], source: Source) -> dict:
    """A copy ready to create: no id, no server meta, references rewritten, an identifier."""
    key = _key(resource)
    kind = key.split("/", 1)[0]
    out = copy.deepcopy(dict(resource))
    del out["id"]
    meta = out.get("meta")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if k not in SERVER_META}
        if kept:
            out["meta"] = kept
        else:
            del out["meta"]
    _rewrite(out, urns)
    own = {"system": source.shared_resource_system, "value": key.replace("/", "-")}
    if kind in SINGLE_IDENTIFIER:
        if condition_of(out) is None:
            out["identifier"] = own
    elif kind not in NO_IDENTIFIER:
        # First, so that it is what the create is conditional on: business identifiers need
        # not be unique (a Consent and the one that withdrew it, two photos of one session),
        # and two creates on the same criteria in one transaction would collapse into one.
        kept = [i for i in out.get("identifier") or [] if i != own]
        out["identifier"] = [own, *kept]
    return out


def _rewrite(node: Any, urns: Mapping[str, str]) -> None:
    """Point every Reference at a shared resource to its urn; keep only the display of one to
    anything else (a ``#contained`` reference stays)."""
    if isinstance(node, list):
        for item in node:
            _rewrite(item, urns)
        return
    if not isinstance(node, dict):
        return
    value = node.get("reference")
    if isinstance(value, str):
        target = _shared_key(value, urns)
        if target is not None:
            node["reference"] = urns[target]
        elif not value.startswith("#"):
            del node["reference"]
            if not node.get("display") and not node.get("identifier"):
                kind = value.split("/")[-2] if "/" in value else "record"
                node["display"] = f"{kind} (not shared)"
    for key, item in node.items():
        # A Reference's own "reference" string is done above; an element named "reference"
        # that is itself a Reference (Consent.provision.actor.reference) is walked into.
        if not (key == "reference" and isinstance(item, str)):
            _rewrite(item, urns)


def _shared_key(reference: str, urns: Mapping[str, str]) -> str | None:
    if reference in urns:
        return reference
    plain = reference.split("/_history/")[0]
    tail = "/".join(plain.rstrip("/").split("/")[-2:])
    return tail if tail in urns and not tail.startswith("urn:") else None


def _binary_for(media: dict[str, Any], key: str, urn: str, source: Source) -> dict[str, Any]:
    """The Binary entry carrying a Media's inline photo; the Media then points at it."""
    content = media.get("content")
    data = content.get("data") if isinstance(content, dict) else None
    if not isinstance(data, str):
        raise PushError(f"{key}: the photo has no inline data")
    raw = base64.b64decode(data)
    digest = base64.b64encode(hashlib.sha1(raw, usedforsecurity=False).digest()).decode("ascii")
    content_type = str(content.get("contentType") or "application/octet-stream")
    tag = {"system": f"{source.identifier_base}/shared-binary", "code": key.replace("/", "-")}
    binary = {
        "resourceType": "Binary",
        "meta": {"tag": [tag]},
        "contentType": content_type,
        "data": data,
    }
    del content["data"]
    content.update(url=urn, size=len(raw), hash=digest)
    return _create(urn, binary)


def _create(full_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "POST", "url": resource["resourceType"]}
    condition = condition_of(resource)
    if condition:
        request["ifNoneExist"] = condition
    return {"fullUrl": full_url, "resource": resource, "request": request}
