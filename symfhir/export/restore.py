"""Restore an access package (the export ZIP: ``bundle.json`` with ``photos/`` and ``forms/``)
into a FHIR server, e.g. an empty one at another clinic, as ONE transaction: all or nothing.

Every resource is created anew (``urn:uuid`` fullUrls; references between the package's
resources rewritten to them, so the server gives new ids and links them), and every photo and
form of the package goes up as a Binary in the same transaction, the Media / Consent /
DocumentReference attachment pointing at it (``url``; inline ``data`` moved into the Binary)
with its size and SHA-1 hash. ``build_transaction`` is pure; ``read_package`` and
``restore_package`` do the I/O.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from symfhir.audit import AuditTrail
from symfhir.errors import RestoreError
from symfhir.export.attachments import attachments_of
from symfhir.fhir import FhirClient
from symfhir.fhir.paths import binary_id_of
from symfhir.workspace.actor import Actor

#: Server-assigned meta elements: the target server sets its own. Tags, security labels and
#: profiles are the record's and are kept.
_SERVER_META = ("versionId", "lastUpdated", "source")
#: The largest package read (a ZIP bomb guard; a whole record with photos is far smaller).
MAX_PACKAGE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Package:
    """A package read into memory: the collection Bundle and its files by ZIP name."""

    bundle: dict[str, Any]
    files: Mapping[str, bytes]


@dataclass(frozen=True)
class Transaction:
    """The transaction Bundle and, per entry, what it creates: the package's "Type/id" for a
    resource, or the file's ZIP name for a Binary."""

    bundle: dict[str, Any]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class RestoreResult:
    patient_id: str  # the new Patient id on the target server
    ids: Mapping[str, str]  # "Media/12" in the package -> "Media/7" on the target
    binaries: Mapping[str, str]  # "photos/Media-12.jpg" -> "Binary/8"
    counts: Mapping[str, int]  # resources created per type, Binary not counted

    @property
    def resources(self) -> int:
        return sum(self.counts.values())


def read_package(path: Path) -> Package:
    """The package's bundle.json and its photos/ and forms/. Raises RestoreError for a file
    that is not an (unencrypted) access package."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if sum(i.file_size for i in infos) > MAX_PACKAGE_BYTES:
                raise RestoreError("the package is larger than a record can be")
            names = {i.filename for i in infos}
            if "bundle.json" not in names:
                raise RestoreError("not an access package: no bundle.json")
            bundle = json.loads(archive.read("bundle.json"))
            files = {
                name: archive.read(name)
                for name in names
                if name.startswith(("photos/", "forms/")) and not name.endswith("/")
            }
    except zipfile.BadZipFile:
        raise RestoreError("not an access package: not a ZIP file") from None
    except RuntimeError:
        # zipfile's answer to an encrypted member read without a password.
        raise RestoreError("the package is encrypted: unpack it with its password first") from None
    except (ValueError, UnicodeDecodeError):
        raise RestoreError("not an access package: bundle.json is not JSON") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise RestoreError("not an access package: bundle.json is not a FHIR Bundle")
    return Package(bundle, files)


def build_transaction(
    package: Package, *, new_urn: Callable[[], str] = lambda: f"urn:uuid:{uuid.uuid4()}"
) -> Transaction:
    """The transaction re-creating every resource of ``package`` and uploading its files.
    Raises RestoreError for a reference to a resource the package does not hold, a file
    missing or not matching its record's size or hash."""
    entries = [e for e in package.bundle.get("entry") or [] if isinstance(e, dict)]
    resources = [e.get("resource") for e in entries]
    if not entries or not all(isinstance(r, dict) and r.get("id") for r in resources):
        raise RestoreError("not an access package: the Bundle has no resources with ids")
    base = _base_url(entries[0])
    urns = {f"{r['resourceType']}/{r['id']}": new_urn() for r in resources}

    out: list[dict[str, Any]] = []
    sources: list[str] = []
    for resource in resources:
        key = f"{resource['resourceType']}/{resource['id']}"
        copy = json.loads(json.dumps(resource))  # the caller's package stays as it was
        del copy["id"]
        _strip_meta(copy)
        _rewrite_references(copy, urns, base, key)
        for name, attachment in _attachments(resource, copy, base):
            data = package.files.get(name)
            if data is None:
                raise RestoreError(f"the package lacks {name}, the file of {key}")
            binary_urn = _check_and_point(attachment, data, name, key, new_urn)
            out.append(
                _post(
                    binary_urn,
                    {
                        "resourceType": "Binary",
                        "contentType": attachment.get("contentType") or "application/octet-stream",
                        "data": base64.b64encode(data).decode("ascii"),
                    },
                )
            )
            sources.append(name)
        out.append(_post(urns[key], copy))
        sources.append(key)
    return Transaction(
        {"resourceType": "Bundle", "type": "transaction", "entry": out}, tuple(sources)
    )


def restore_package(
    client: FhirClient, actor: Actor, package: Path, *, now: datetime, audit: AuditTrail
) -> RestoreResult:
    """Restore the access package at ``package`` into ``client``'s server as one transaction.
    ``actor`` is who restores it (the audit's agent, through ``audit``). Raises RestoreError
    before anything is written when the package is not whole; FhirServerError when the
    server refuses the transaction (then nothing was created)."""
    del actor, now  # the trail knows the actor; the server stamps the new resources
    transaction = build_transaction(read_package(package))
    answer = client.transaction(transaction.bundle)
    ids: dict[str, str] = {}
    binaries: dict[str, str] = {}
    for source, entry in zip(transaction.sources, answer.get("entry") or [], strict=True):
        location = str((entry.get("response") or {}).get("location", "")).split("/_history")[0]
        created = "/".join(location.split("/")[-2:])
        (binaries if created.startswith("Binary/") else ids)[source] = created
    patients = [new for old, new in ids.items() if old.startswith("Patient/")]
    if len(patients) != 1:
        raise RestoreError(f"the package holds {len(patients)} clients, not one")
    counts = Counter(new.split("/")[0] for new in ids.values())
    audit(
        "create",
        description=(
            f"restored an access package: {sum(counts.values())} resources, {len(binaries)} files"
        ),
        resources=tuple(sorted(counts)) + (("Binary",) if binaries else ()),
    )
    return RestoreResult(patients[0].split("/")[1], ids, binaries, dict(counts))


def _post(full_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _base_url(entry: dict[str, Any]) -> str:
    """The server the package came from: its fullUrls are ``<base>/<Type>/<id>``."""
    resource = entry["resource"]
    tail = f"/{resource['resourceType']}/{resource['id']}"
    full_url = str(entry.get("fullUrl") or "")
    return full_url[: -len(tail)] if full_url.endswith(tail) else ""


def _strip_meta(resource: dict[str, Any]) -> None:
    meta = resource.get("meta")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if k not in _SERVER_META}
        if kept:
            resource["meta"] = kept
        else:
            del resource["meta"]


def _rewrite_references(node: Any, urns: Mapping[str, str], base: str, owner: str) -> None:
    """Every Reference.reference naming a resource of the package is pointed at its urn; a
    relative one naming anything else cannot be restored (the target has no such resource).
    Absolute URLs elsewhere and ``#contained`` references stay as they are."""
    if isinstance(node, list):
        for item in node:
            _rewrite_references(item, urns, base, owner)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "reference" and isinstance(value, str):
            target = value
            if base and target.startswith(base + "/"):
                target = target[len(base) + 1 :]
            target = target.split("/_history/")[0]
            if target in urns:
                node[key] = urns[target]
            elif not value.startswith(("#", "urn:", "http://", "https://")):
                raise RestoreError(f"{owner} refers to {target}, which the package does not hold")
        else:
            _rewrite_references(value, urns, base, owner)


def _attachments(
    original: dict[str, Any], copy: dict[str, Any], base: str
) -> list[tuple[str, dict[str, Any]]]:
    """(ZIP name, the copy's attachment) for each attachment whose bytes the package holds:
    the names are the export's (``attachments_of`` on the original resource)."""
    if copy["resourceType"] == "Media":
        slots = [copy.get("content")]
    elif copy["resourceType"] == "Consent":
        slots = [copy.get("sourceAttachment")]
    elif copy["resourceType"] == "DocumentReference":
        slots = [c.get("attachment") for c in copy.get("content") or [] if isinstance(c, dict)]
    else:
        return []
    # The export skips an attachment without bytes (neither data nor a Binary on its own
    # server): the same filter keeps the names and the attachments in step.
    with_bytes = [
        a
        for a in slots
        if isinstance(a, dict)
        and (isinstance(a.get("data"), str) or binary_id_of(a.get("url"), base) is not None)
    ]
    refs = attachments_of(original, base)
    return [(ref.name, attachment) for ref, attachment in zip(refs, with_bytes, strict=True)]


def _check_and_point(
    attachment: dict[str, Any], data: bytes, name: str, owner: str, new_urn: Callable[[], str]
) -> str:
    """Check the file against the size and hash its record states, point the attachment at
    a new Binary (its urn, returned) and state the size and hash."""
    digest = base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode("ascii")
    if "size" in attachment and attachment["size"] != len(data):
        raise RestoreError(f"{name} is not the size {owner} states")
    if "hash" in attachment and attachment["hash"] != digest:
        raise RestoreError(f"{name} does not match the hash {owner} states")
    urn = new_urn()
    attachment.pop("data", None)
    attachment.update(url=urn, size=len(data), hash=digest)
    return urn
