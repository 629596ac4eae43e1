"""The app's workflows on a server that cannot create Consent or Media (as the import's
capability check sees it), against the local HAPI FHIR R4 server: a consent captured and a
photo uploaded are stored as DocumentReferences, and read back as the consent (given, not
"never asked") and the photo (in the gallery, with its image) they stand in for.

HAPI itself stores Media and Consent; the client below reports a CapabilityStatement without
them, which is all the workflows read. Each run makes its own client.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest
from PIL import Image

from symfhir.audit import ClientAuditTrail
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.fhir.capabilities import Capabilities
from symfhir.mapping.fallback import CONSENT_TAG, MEDIA_TAG
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.recording import capture_consent, read_consents
from symfhir.workspace.photos import uploading, viewing
from tests.integration.conftest import synthetic_patient, synthetic_practitioner

pytestmark = pytest.mark.integration


class WithoutConsentOrMedia(FhirClient):
    def capabilities(self) -> Capabilities:
        caps = super().capabilities()
        kept = {t: i for t, i in caps.resources.items() if t not in ("Consent", "Media")}
        return dataclasses.replace(caps, resources=MappingProxyType(kept))


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with WithoutConsentOrMedia(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


@pytest.fixture
def actor(client: FhirClient) -> Actor:
    return synthetic_practitioner(client)


@pytest.fixture
def patient_id(client: FhirClient) -> str:
    return synthetic_patient(client, birthDate="1990-04-01")


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(out, "JPEG")
    return out.getvalue()


def documents(client: FhirClient, patient_id: str) -> list[dict]:
    return [
        entry["resource"]
        for page in client.search_bundles("DocumentReference", {"subject": f"Patient/{patient_id}"})
        for entry in page.get("entry") or []
    ]


def test_consent_and_photo_kept_as_documents_are_read_back(
    client: FhirClient, actor: Actor, patient_id: str
):
    trail = ClientAuditTrail(client, patient_id, actor.fhir_user)
    earlier = datetime.now(UTC) - timedelta(hours=2)
    form = {
        "kind": "photos_clinical",
        "decision": "given",
        "signer": "client",
        "signer_name": "Avery Quillfeather",
        "typed_signature": "Avery Quillfeather",
    }
    captured = capture_consent(client, actor, patient_id, form, audit=trail, now=earlier)
    assert captured.outcome == "saved" and captured.fallback, captured.errors
    assert [d["meta"]["tag"][-1]["code"] for d in documents(client, patient_id)] == [
        CONSENT_TAG["code"]
    ]

    record = read_consents(client, actor, patient_id, audit=trail)
    assert next(k for k in record.overview if k.key == "photos_clinical").status == "given"

    now = datetime.now(UTC)
    taken = now.astimezone(load_spa().zone).strftime("%Y-%m-%dT%H:%M")
    upload = {"body_site": "lips", "view": "frontal", "phase": "before", "taken_at": taken}
    files = [("IMG_0002.jpg", jpeg(), "image/jpeg")]
    result = uploading.upload_photos(client, actor, patient_id, upload, files, audit=trail, now=now)
    assert result.outcome == "stored", result.form_error
    assert result.files[0].message.startswith("stored as a DocumentReference")
    (doc_id,) = result.media_ids
    tags = {d["id"]: d["meta"]["tag"] for d in documents(client, patient_id)}
    assert any(t["code"] == MEDIA_TAG["code"] for t in tags[doc_id])

    view = viewing.list_gallery(client, actor, patient_id, audit=trail, now=now)
    (photo,) = view.record.gallery.photos
    assert (photo.media_id, photo.body_site, [u.key for u in photo.uses]) == (
        doc_id,
        "lips",
        ["clinical"],
    )
    shown = viewing.photo_image(client, actor, patient_id, doc_id, audit=trail)
    assert shown is not None and shown.data[:2] == b"\xff\xd8"
