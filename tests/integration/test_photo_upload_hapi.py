"""The photo upload workflow against the local HAPI FHIR R4 server: the transaction it builds
is accepted, the photo comes back in the gallery and as an image, a second upload of the same
image is found rather than stored twice, and each access leaves an AuditEvent.

Each run makes its own client (a uuid4 key), so reruns against the same database do not
collide.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from symfhir.audit import ClientAuditTrail
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor
from symfhir.workspace.photos import uploading, viewing
from symfhir.workspace.photos.consents import CONSENT_KIND_SYSTEM
from tests.integration.conftest import synthetic_patient, synthetic_practitioner

pytestmark = pytest.mark.integration


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


@pytest.fixture
def actor(client: FhirClient) -> Actor:
    return synthetic_practitioner(client)


@pytest.fixture
def patient_id(client: FhirClient) -> str:
    """A new synthetic client with a clinical photo consent given a week ago."""
    pid = synthetic_patient(client)
    week_ago = (datetime.now(UTC) - timedelta(days=7)).isoformat(timespec="seconds")
    client.create(
        {
            "resourceType": "Consent",
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": CONSENT_KIND_SYSTEM, "code": "photos_clinical"}]}],
            "patient": {"reference": f"Patient/{pid}"},
            "dateTime": week_ago,
            "provision": {"type": "permit"},
        }
    )
    return pid


def jpeg(color: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, "JPEG")
    return out.getvalue()


def test_upload_then_gallery_image_and_a_repeat(client: FhirClient, actor: Actor, patient_id: str):
    trail = ClientAuditTrail(client, patient_id, actor.fhir_user)
    now = datetime.now(UTC)
    taken = now.astimezone(load_spa().zone).strftime("%Y-%m-%dT%H:%M")
    form = {"body_site": "lips", "view": "frontal", "phase": "before", "taken_at": taken}
    image = jpeg("red")
    files = [("IMG_0001.jpg", io.BytesIO(image), "image/jpeg"), ("dup.jpg", image, "image/jpeg")]

    first = uploading.upload_photos(client, actor, patient_id, form, files, audit=trail, now=now)
    assert first.outcome == "stored", first
    assert [(f.ok, f.message) for f in first.files] == [
        (True, "stored"),
        (False, "the same image as IMG_0001.jpg"),
    ]
    (media_id,) = first.media_ids
    assert [p.media_id for p in first.record.gallery.photos] == [media_id]

    view = viewing.list_gallery(client, actor, patient_id, audit=trail, now=now)
    (photo,) = view.record.gallery.photos
    assert (photo.media_id, photo.phase, photo.body_site) == (media_id, "before", "lips")
    assert [u.key for u in photo.uses] == ["clinical"]

    shown = viewing.photo_image(client, actor, patient_id, media_id, audit=trail)
    assert shown is not None and shown.content_type == "image/jpeg"
    assert shown.data[:2] == b"\xff\xd8"

    again = uploading.upload_photos(
        client, actor, patient_id, form, [("again.jpg", image, "image/jpeg")], audit=trail, now=now
    )
    assert [(f.ok, f.message) for f in again.files] == [(True, "already in the record")]
    assert len(again.record.gallery.photos) == 1

    events = [
        bundle_entry["resource"]
        for page in client.search_bundles("AuditEvent", {"entity": f"Patient/{patient_id}"})
        for bundle_entry in page.get("entry") or []
    ]
    assert {e["subtype"][0]["code"] for e in events} >= {"create", "read"}
    assert all(e["agent"][0]["who"] == {"reference": actor.fhir_user} for e in events)
