"""Looking at a client's photos: the gallery (``list_gallery``), one photo's image
(``photo_image``) and a before/after pair (``compare_photos``). Each reads through the FHIR
client it is given and records the access in the audit trail.

A photo is shown only when its Media is in the client's compartment and its image is a Binary
on the same server (``binary_id``): a Media naming another client, or a URL elsewhere, is
"not found".
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from symfhir.audit import AuditTrail
from symfhir.errors import FhirAuthError, FhirNotFoundError, FhirRequestError, PhotoError
from symfhir.fhir import FhirClient
from symfhir.fhir.compartment import in_compartment
from symfhir.fhir.paths import check_id
from symfhir.fhir.reading import batch_resources, read_batch
from symfhir.mapping.context import MappingContext
from symfhir.photos.files import JPEG, ImageLimits, sniff
from symfhir.photos.thumbnail import thumbnail
from symfhir.workspace.actor import Actor
from symfhir.workspace.fallbacks import LABEL as FALLBACK_LABEL
from symfhir.workspace.fallbacks import fallback_search, read_fallback, restore
from symfhir.workspace.photos.consents import ConsentState, consent_states
from symfhir.workspace.photos.gallery import (
    Gallery,
    Option,
    PhotoItem,
    binary_id,
    build_gallery,
)

PAGE_SIZE = 200
LABELS = ["Patient", "Media", "Procedure", "Consent"]
#: What an upload creates: a launch must be allowed to create each.
WRITTEN_TYPES = ("Binary", "Media", "Provenance")
#: What one photo may weigh, on the way in (cleaned) and on the way out (shown).
LIMITS = ImageLimits(max_bytes=15 * 1024 * 1024, max_pixels=40_000_000)
MAX_DOWNLOAD_BYTES = 25 * 1024 * 1024


@dataclass(frozen=True)
class PhotoRecord:
    """What one gallery batch read: the client's Patient, the resources, the gallery, the
    photo consents, the types that could not be read, and whether a search was cut short."""

    patient: dict[str, Any] | None
    resources: list[dict[str, Any]]
    gallery: Gallery
    states: dict[str, ConsentState]
    failed: list[str]
    truncated: bool
    body_site_choices: list[Option]
    view_choices: list[Option]
    local_now: str  # the upload form's default "taken at": now, the spa's local minute

    @property
    def clinical_consent(self) -> str:
        state = self.states.get("photos_clinical")
        return state.status if state else "never asked"


@dataclass(frozen=True)
class GalleryView:
    """The gallery as ``actor`` may use it: ``missing`` names the types an upload writes that
    the server did not let them create (empty: they may upload, unless read-only)."""

    record: PhotoRecord
    missing: list[str]


@dataclass(frozen=True)
class PhotoImage:
    data: bytes
    content_type: str


@dataclass(frozen=True)
class Comparison:
    before: PhotoItem
    after: PhotoItem
    suggestions: list[PhotoItem]  # other photos of the before's body site, not "before"

    @property
    def same_site(self) -> bool:
        return self.before.body_site == self.after.body_site


def gallery_batch(patient_id: str, fallbacks: bool = False) -> dict[str, Any]:
    """One batch: the Patient, the patient's Media, Procedures and Consents, newest first;
    with ``fallbacks``, also the Media and Consents kept as DocumentReferences."""
    pid = check_id(patient_id)
    urls = [
        f"Patient/{pid}",
        f"Media?subject=Patient/{pid}&_count={PAGE_SIZE}&_sort=-created",
        f"Procedure?subject=Patient/{pid}&_count={PAGE_SIZE}&_sort=-date",
        f"Consent?patient=Patient/{pid}&_count={PAGE_SIZE}&_sort=-date",
    ]
    if fallbacks:
        urls.append(fallback_search(pid))
    return read_batch(urls)


def read_record(
    client: FhirClient, actor: Actor, patient_id: str, ctx: MappingContext
) -> PhotoRecord:
    """The gallery batch, read and shaped (not audited: the caller's workflow is); Media and
    Consents kept as DocumentReferences are read too when ``actor`` may search them. Raises
    FhirServerError when the batch fails as a whole."""
    fallbacks = actor.may("DocumentReference", "s")
    labels = [*LABELS, FALLBACK_LABEL] if fallbacks else LABELS
    found = batch_resources(client.batch(gallery_batch(patient_id, fallbacks)), labels)
    zone = ctx.spa.zone
    own = [r for r in restore(found.resources) if in_compartment(r, patient_id)]
    patient = next((r for r in own if r.get("resourceType") == "Patient"), None)
    consents = [r for r in own if r.get("resourceType") == "Consent"]
    return PhotoRecord(
        patient=patient,
        resources=own,
        gallery=build_gallery(own, patient_id, ctx.terminology, zone),
        states=consent_states(consents, zone),
        failed=found.failed,
        truncated=found.truncated,
        body_site_choices=_choices(ctx, "body_site"),
        view_choices=_choices(ctx, "photo_view"),
        local_now=ctx.now.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
    )


def _choices(ctx: MappingContext, valueset: str) -> list[Option]:
    table = ctx.terminology.valuesets[valueset]
    return [Option(key, coding.get("display", key)) for key, coding in table.items()]


def missing_for_upload(actor: Actor) -> list[str]:
    """The types an upload writes that ``actor`` may not create (a photo is a Media, or a
    DocumentReference on a server that cannot store Media: either will do here)."""
    return [
        t
        for t in WRITTEN_TYPES
        if not actor.may(t, "c") and not (t == "Media" and actor.may(FALLBACK_LABEL, "c"))
    ]


def list_gallery(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    *,
    audit: AuditTrail,
    now: datetime | None = None,
) -> GalleryView:
    """The client's gallery, audited as one read naming every Media shown."""
    ctx = MappingContext.load(now or datetime.now(UTC))
    record = read_record(client, actor, patient_id, ctx)
    read = ", ".join([*LABELS, FALLBACK_LABEL] if actor.may(FALLBACK_LABEL, "s") else LABELS)
    audit(
        "read",
        description=f"photos view read {read}",
        resources=[f"Media/{photo.media_id}" for photo in record.gallery.photos],
    )
    return GalleryView(record, missing_for_upload(actor))


def read_media(
    client: FhirClient, patient_id: str, media_id: str, *, audit: AuditTrail
) -> dict[str, Any] | None:
    """The client's Media ``media_id`` (or the DocumentReference of that id standing in for
    one); None when neither exists, the server refuses it, or it is another client's (that
    refusal is audited)."""
    media = _read(lambda: client.read("Media", check_id(media_id)))
    if media is None:
        media = _read(lambda: read_fallback(client, "Media", check_id(media_id)))
    if media is not None and not in_compartment(media, patient_id):
        audit(
            "read",
            success=False,
            description="refused: a photo of a patient outside the launch context",
        )
        return None
    return media


def _read(read: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    try:
        return read()
    except (FhirNotFoundError, FhirRequestError):
        return None  # FhirRequestError: an id check_id refuses, or a type the server lacks
    except FhirAuthError as exc:
        if exc.status != 403:  # the EHR refuses another patient's resource with 403
            raise
        return None


def photo_image(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    media_id: str,
    *,
    thumb: bool = False,
    audit: AuditTrail,
) -> PhotoImage | None:
    """The photo's image (``thumb``: a small JPEG preview), each one audited as a read; None
    when there is no such photo of the client, or its content is not an image we show.
    Raises FhirServerError when the server fails (FhirResponseError past the size limit)."""
    media = read_media(client, patient_id, media_id, audit=audit)
    binary = binary_id(media, client.base_url) if media is not None else None
    if media is None or binary is None:
        return None
    out = io.BytesIO()
    client.download_binary(binary, out, max_bytes=MAX_DOWNLOAD_BYTES)
    data = out.getvalue()
    audit(
        "read",
        description="photo image read",
        resources=[f"Media/{media.get('id')}", f"Binary/{binary}"],
    )
    content_type, _ = sniff(data)
    if content_type not in LIMITS.allowed_types:
        return None
    if not thumb:
        return PhotoImage(data, content_type)
    try:
        return PhotoImage(thumbnail(data, record=f"Media/{media_id}"), JPEG)
    except PhotoError:
        return None


def compare_photos(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    before_id: str,
    after_id: str,
    *,
    audit: AuditTrail,
    now: datetime | None = None,
) -> Comparison | None:
    """Two of the client's photos side by side, with the other photos of the same body site
    to pick instead; None when either is not a photo of the client."""
    before = read_media(client, patient_id, before_id, audit=audit)
    after = read_media(client, patient_id, after_id, audit=audit) if before else None
    if before is None or after is None:
        return None
    ctx = MappingContext.load(now or datetime.now(UTC))
    record = read_record(client, actor, patient_id, ctx)
    others = [r for r in record.resources if r.get("resourceType") != "Media"]
    pair = build_gallery([*others, before, after], patient_id, ctx.terminology, ctx.spa.zone)
    items = {p.media_id: p for p in pair.photos}
    before_item = items.get(str(before.get("id")))
    after_item = items.get(str(after.get("id")))
    if before_item is None or after_item is None:
        return None
    suggestions = [
        p
        for p in record.gallery.photos
        if p.body_site == before_item.body_site
        and p.phase != "before"
        and p.media_id not in (before_item.media_id, after_item.media_id)
    ]
    audit(
        "read",
        description="photos compare read Media",
        resources=[f"Media/{before.get('id')}", f"Media/{after.get('id')}"],
    )
    return Comparison(before_item, after_item, suggestions)
