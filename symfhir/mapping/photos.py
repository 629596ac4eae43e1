"""Photos → Binary (the cleaned image) + Media (what, where, when, which treatment).

Follows hl7.org/fhir/R4/media.html. The Binary holds the re-encoded image with
all metadata stripped; the Media keeps the clinical capture details as structured fields
(no ``deviceName``: the camera is device metadata the privacy policy has no use for)
and points at the Binary with ``content.url`` (a ``urn:uuid`` the server
rewrites, as the transaction rules require for uri elements). The phase
(before/after/progress) has no R4 element and rides in the project extension
``photo-phase``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import Entry, entry, identifier, tagged_entry
from symfhir.model.photo import Photo
from symfhir.photos.files import CleanImage

MEDIA_TYPE = "http://terminology.hl7.org/CodeSystem/media-type"
PHASE_EXTENSION = "http://symfhir.org/fhir/StructureDefinition/photo-phase"


@dataclass(frozen=True)
class PhotoInput:
    """A manifest entry whose image was read and cleaned at the edge."""

    photo: Photo
    image: CleanImage


def photo_entries(
    client_id: str,
    photos: list[PhotoInput],
    patient: Entry,
    treatments: dict[str, Entry],
    ctx: MappingContext,
) -> list[Entry]:
    """Binary + Media for each photo; a photo's treatment must be one of the client's."""
    out: list[Entry] = []
    for item in photos:
        photo, image = item.photo, item.image
        binary = tagged_entry(
            {
                "resourceType": "Binary",
                "contentType": image.content_type,
                "securityContext": patient.reference,
                "data": base64.b64encode(image.data).decode("ascii"),
            },
            f"photo-{client_id}-{_hex(image.sha1_b64)}",
        )
        ident = identifier(ctx, "photo", f"{client_id}-{_hex(image.sha1_b64)}")
        taken = ctx.instant(photo.taken_at)
        phase = ctx.coding("photo_phase", photo.phase)
        media: dict[str, Any] = {
            "resourceType": "Media",
            "identifier": [ident],
            "extension": [{"url": PHASE_EXTENSION, "valueCoding": phase}],
            "status": "completed",
            "type": {"coding": [{"system": MEDIA_TYPE, "code": "image", "display": "Image"}]},
            "view": ctx.concept("photo_view", photo.view),
            "subject": patient.reference,
            "createdDateTime": taken,
            "bodySite": ctx.concept("body_site", photo.body_site),
            "height": image.height,
            "width": image.width,
            "content": {
                "contentType": image.content_type,
                "url": binary.full_url,
                "size": image.size,
                "hash": image.sha1_b64,
                "title": f"{phase.get('display', photo.phase)} photo",
                "creation": taken,
            },
        }
        if photo.treatment_id:
            media["partOf"] = [treatments[photo.treatment_id].reference]
        out.append(binary)
        out.append(entry(media, ident))
    return out


def _hex(b64: str) -> str:
    return base64.b64decode(b64).hex()
