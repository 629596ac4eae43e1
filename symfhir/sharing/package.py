"""A share's package: the files that leave for a plan (``symfhir.sharing.gate.SharePlan``).

Every resource read goes through ``gate.allowed`` (the one filter) before it is put in any file,
and ``gate.without_images`` (no picture of the client but a photo file); nothing else decides
what leaves. The files, in this order (the viewer and decoders rely on it):

1. ``patient-summary.json``: the patient summary document Bundle (``summary.patient_summary``),
   always first;
2. ``records.json``: a ``collection`` Bundle of every shared resource but photos, only when the
   plan goes beyond the summary;
3. ``photo-<Media id>.json``, one per photo: a single Media with its image inline
   (``content.data``, base64; EXIF already stripped when it was stored), read only when the
   file is read, one at a time, so a package of many photos holds one photo in memory at most.

A summary-only plan is read with ``summary_read.read_summary_resources`` (at most 4 requests);
a broader one, or one with photos, reads the client's compartment as the export does
(``symfhir.export.collect`` into a Spool).
"""

from __future__ import annotations

import base64
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from symfhir.errors import SharingError
from symfhir.export.attachments import FileRef, attachments_of, write_file
from symfhir.export.collect import collect
from symfhir.export.spool import Spool
from symfhir.fhir import FhirClient
from symfhir.sharing.gate import SharePlan, allowed, without_images
from symfhir.sharing.scopes import SUMMARY, load_sharing
from symfhir.sharing.summary import patient_summary
from symfhir.sharing.summary_read import read_summary_resources
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor
from symfhir.workspace.fallbacks import is_fallback, read_fallback, restore

CONTENT_TYPE = "application/fhir+json"
SUMMARY_FILE = "patient-summary.json"
RECORDS_FILE = "records.json"
PHOTO_PREFIX = "photo-"
_UNSAFE = re.compile(r"[^A-Za-z0-9\-.]")
#: Practice resources (nobody's record) that may sit beside a full share's summary.
_PRACTICE = ("Practitioner", "PractitionerRole", "Organization")


@dataclass(frozen=True)
class SharedFile:
    """One file of a package: its name, its SHL content type, and its bytes, read on demand."""

    name: str
    content_type: str
    read: Callable[[], bytes]


@dataclass(frozen=True)
class SharePackage:
    """What leaves for ``plan``: ``files[0]`` is always the summary document; ``counts`` the
    resources that leave, per type (photos as Media), for the audit of the disclosure."""

    plan: SharePlan
    files: tuple[SharedFile, ...]
    counts: Mapping[str, int]
    photos: int


@dataclass(frozen=True)
class _Photo:
    """A shared photo, without its bytes: the Media (inline data removed) and where they are."""

    media: dict[str, Any]
    source: FileRef | None  # a Binary on the server; None: inline, read again with the Media
    fallback: bool  # kept on the server as a DocumentReference


def build_package(
    client: FhirClient, actor: Actor, patient_id: str, plan: SharePlan, *, now: datetime
) -> SharePackage:
    """The package of ``plan`` for the client ``patient_id``.

    Raises SharingError when the plan is another client's, or a photo is no longer shareable
    when read (its Media changed meanwhile); NotAllowedError when the actor may not read the
    Patient; FhirServerError when the server fails a read; FhirValidationError when the
    summary document breaks FHIR R4.
    """
    if plan.patient_id != patient_id:
        raise SharingError("patient: the share's plan is for another client")
    sharing = load_sharing()
    summary_types = sharing.types_of([SUMMARY]) | set(_PRACTICE)
    counts: Counter[str] = Counter()
    photos: list[_Photo] = []
    records: bytes | None = None
    if not plan.beyond_summary and not plan.photos:
        read = read_summary_resources(client, actor, patient_id)
        kept = [without_images(r, plan) for r in read if allowed(r, plan)]
        counts.update(str(r["resourceType"]) for r in kept)
        summary_input = kept
    else:
        base = str(getattr(client, "base_url", "") or "")
        with Spool() as spool:
            collect(client, actor, patient_id, spool)
            summary_input = []
            out = _Records(now, base) if plan.beyond_summary else None
            for resource in _staged(spool):
                if not allowed(resource, plan):
                    continue
                counts[str(resource["resourceType"])] += 1
                if resource["resourceType"] == "Media":
                    photos.append(_photo(resource, base))
                    continue
                resource = without_images(resource, plan)
                if resource["resourceType"] in summary_types:
                    summary_input.append(resource)
                if out is not None:
                    out.add(resource)
            records = out.close() if out is not None else None
    document = patient_summary(
        summary_input, patient_id=patient_id, now=now, author=author_of(actor)
    )
    summary_bytes = orjson.dumps(document)
    files = [SharedFile(SUMMARY_FILE, CONTENT_TYPE, lambda: summary_bytes)]
    if records is not None:
        files.append(SharedFile(RECORDS_FILE, CONTENT_TYPE, _constant(records)))
    for photo in photos:
        files.append(
            SharedFile(
                f"{PHOTO_PREFIX}{_safe(photo.media.get('id'))}.json",
                CONTENT_TYPE,
                _photo_reader(client, photo, plan),
            )
        )
    return SharePackage(plan, tuple(files), dict(counts), len(photos))


def _staged(spool: Spool) -> Iterable[dict[str, Any]]:
    """Every staged resource, a photo or consent kept as a DocumentReference read back as the
    Media or Consent it stands for (so the photo rules apply to it as to any Media)."""
    for resource_type in spool.types():
        for resource in spool.resources(resource_type):
            yield from restore([resource]) if resource_type == "DocumentReference" else [resource]


class _Records:
    """``records.json`` written entry by entry (a collection Bundle)."""

    def __init__(self, now: datetime, base: str) -> None:
        self._base = base.rstrip("/")
        self._out = io.BytesIO()
        head = {"resourceType": "Bundle", "type": "collection", "timestamp": now.isoformat()}
        self._out.write(orjson.dumps(head)[:-1] + b',"entry":[')
        self._first = True

    def add(self, resource: Mapping[str, Any]) -> None:
        entry: dict[str, Any] = {"resource": resource}
        if self._base and resource.get("id"):
            entry = {
                "fullUrl": f"{self._base}/{resource['resourceType']}/{resource['id']}",
                **entry,
            }
        self._out.write((b"" if self._first else b",") + orjson.dumps(entry))
        self._first = False

    def close(self) -> bytes:
        self._out.write(b"]}")
        return self._out.getvalue()


def _photo(media: dict[str, Any], base: str) -> _Photo:
    fallback = is_fallback(media)
    refs = attachments_of(media, base)
    source = refs[0] if refs and refs[0].binary_id is not None else None
    stripped = {k: v for k, v in media.items() if k not in ("meta", "text")}
    content = {k: v for k, v in (media.get("content") or {}).items() if k not in ("data", "url")}
    stripped["content"] = content
    return _Photo(stripped, source, fallback)


def _photo_reader(client: FhirClient, photo: _Photo, plan: SharePlan) -> Callable[[], bytes]:
    def read() -> bytes:
        media = dict(photo.media)
        if photo.source is not None:
            data = io.BytesIO()
            write_file(client, photo.source, data)
            raw = data.getvalue()
        else:
            # Inline data was not kept: read the Media again, and check it again.
            media_id = str(media.get("id", ""))
            again = (
                read_fallback(client, "Media", media_id)
                if photo.fallback
                else client.read("Media", media_id)
            )
            if again is None or not allowed(again, plan):
                raise SharingError(f"photos: Media/{_safe(media_id)} is no longer shareable")
            refs = attachments_of(again, "")
            if not refs or refs[0].data is None:
                raise SharingError(f"photos: Media/{_safe(media_id)} has no image")
            data = io.BytesIO()
            write_file(client, refs[0], data)
            raw = data.getvalue()
        content = dict(media.get("content") or {})
        content["data"] = base64.b64encode(raw).decode("ascii")
        media["content"] = content
        return orjson.dumps(media)

    return read


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _safe(value: object) -> str:
    return _UNSAFE.sub("_", str(value or ""))[:64] or "unnamed"


def author_of(actor: Actor) -> str:
    """Who prepared a summary document, by name."""
    # A bare reference ("Practitioner/92873") means nothing to a physician elsewhere: without
    # a name, the spa alone is the author.
    return actor.display or load_spa().name
