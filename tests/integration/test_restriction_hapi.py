"""A restriction request against the local HAPI FHIR server: the consents it names are
withdrawn as new versions of their Consents (never deleted), and the client's photo leaves
the marketing uses at once, as the gallery reads consents live."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from PIL import Image

from symfhir.audit import ClientAuditTrail
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.marketing.audience import marketing_photos
from symfhir.privacy import restriction
from symfhir.privacy.audit import RequestAuditTrail
from symfhir.privacy.model import (
    COMPLETED,
    IDENTITY_VERIFIED,
    PrivacyRequest,
    Requester,
    Verification,
)
from symfhir.privacy.processing import process_request
from symfhir.privacy.requests import NewRequest, submit_request
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.recording import capture_consent, read_consents
from symfhir.workspace.photos import uploading, viewing
from tests.integration.conftest import synthetic_patient, synthetic_practitioner

pytestmark = pytest.mark.integration


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


@pytest.fixture
def actor(client: FhirClient) -> Actor:
    return synthetic_practitioner(client)


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(out, "JPEG")
    return out.getvalue()


def website_list(client: FhirClient, actor: Actor, now: datetime) -> set[str]:
    photos = marketing_photos(client, actor, "website", now=now, audit=lambda *a, **k: None)
    return {p.media_id for p in photos.photos}


def request_for(patient_id: str, officer: Actor, consents: str, now: datetime) -> PrivacyRequest:
    return PrivacyRequest(
        task_id=None,
        kind="restriction",
        requester=Requester("Avery Quillfeather", email="avery.q@example.com"),
        received=now,
        due=date(2026, 12, 31),
        business_status=IDENTITY_VERIFIED,
        patient_id=patient_id,
        inputs={"consents": consents},
        verifications=(Verification("in-person", officer.fhir_user, now),),
    )


def test_withdrawn_photo_consent_takes_the_photo_off_marketing_at_once(
    client: FhirClient, actor: Actor
):
    patient_id = synthetic_patient(client, birthDate="1990-04-01")
    trail = ClientAuditTrail(client, patient_id, actor.fhir_user)
    earlier = datetime.now(UTC) - timedelta(hours=2)
    for kind in ("photos_clinical", "photos_website", "marketing_email"):
        form = {
            "kind": kind,
            "decision": "given",
            "signer": "client",
            "signer_name": "Avery Quillfeather",
            "typed_signature": "Avery Quillfeather",
        }
        captured = capture_consent(client, actor, patient_id, form, audit=trail, now=earlier)
        assert captured.outcome == "saved", captured.errors
    now = datetime.now(UTC)
    taken = now.astimezone(load_spa().zone).strftime("%Y-%m-%dT%H:%M")
    upload = {"body_site": "lips", "view": "frontal", "phase": "before", "taken_at": taken}
    stored = uploading.upload_photos(
        client,
        actor,
        patient_id,
        upload,
        [("IMG_0001.jpg", jpeg(), "image/jpeg")],
        audit=trail,
        now=now,
    )
    assert stored.outcome == "stored", stored.form_error
    (photo,) = viewing.list_gallery(
        client, actor, patient_id, audit=trail, now=now
    ).record.gallery.photos
    assert [u.key for u in photo.uses] == ["clinical", "website"]
    assert photo.marketing_allowed
    assert photo.media_id in website_list(client, actor, now)

    request = request_for(patient_id, actor, "photos_website, marketing_email,research", now)
    outcome = restriction.handle(client, actor, request, now=now, audit=trail)

    assert outcome.business_status == COMPLETED
    (report,) = outcome.outputs
    assert report.label == "restriction-report"
    assert report.text == (
        "photos_website: withdrawn\nmarketing_email: withdrawn\nresearch: nothing to withdraw"
    )
    # The very next read of the gallery no longer offers the photo for marketing.
    (photo,) = viewing.list_gallery(
        client, actor, patient_id, audit=trail, now=now
    ).record.gallery.photos
    assert [u.key for u in photo.uses] == ["clinical"]
    assert not photo.marketing_allowed
    # And the website's photo list, which reads every client's consents, drops it too.
    assert photo.media_id not in website_list(client, actor, now)

    # Withdrawn as a new version of the same Consent; the given version is still there.
    record = read_consents(client, actor, patient_id, audit=trail, now=now)
    status = {k.key: k for k in record.overview}
    assert status["photos_website"].status == "withdrawn"
    assert status["marketing_email"].status == "withdrawn"
    assert status["photos_clinical"].status == "given"
    current = status["photos_website"].current
    assert current is not None and current.version == "2"
    first = client.vread("Consent", current.id, "1")
    assert first["status"] == "active"

    # Handled again (a retry): nothing left to withdraw, nothing written, still completed.
    again = restriction.handle(client, actor, request, now=now, audit=trail)
    assert again.business_status == COMPLETED
    assert again.outputs[0].text.count("nothing to withdraw") == 3
    assert client.read("Consent", current.id)["meta"]["versionId"] == "2"


def test_a_restriction_request_processed_end_to_end(client: FhirClient, actor: Actor):
    """Submitted at the desk (verified in person), processed by the bundled handler: the Task
    is completed with the report, the consent is withdrawn, the audit names the client."""
    patient_id = synthetic_patient(client, birthDate="1990-04-01")
    now = datetime.now(UTC)
    form = {
        "kind": "marketing_email",
        "decision": "given",
        "signer": "client",
        "signer_name": "Avery Quillfeather",
        "typed_signature": "Avery Quillfeather",
    }
    own = ClientAuditTrail(client, patient_id, actor.fhir_user)
    earlier = now - timedelta(hours=1)
    assert capture_consent(client, actor, patient_id, form, audit=own, now=earlier).outcome == (
        "saved"
    )
    trail = RequestAuditTrail(client, actor.fhir_user, clock=lambda: now)
    new = NewRequest(
        "restriction",
        Requester("Avery Quillfeather", date(1990, 4, 1), "avery.q@example.com"),
        inputs={"consents": "marketing_email"},
        patient_id=patient_id,
        verifications=(Verification("in-person", actor.fhir_user, now - timedelta(minutes=1)),),
    )
    task_id = submit_request(client, actor, new, now=now, audit=trail).request.task_id
    processed = process_request(client, actor, task_id, now=now, audit=trail)

    assert processed.outcome.business_status == COMPLETED
    task = client.read("Task", task_id)
    assert task["businessStatus"]["coding"][0]["code"] == COMPLETED
    outputs = {o["type"]["text"]: o.get("valueString") for o in task.get("output", [])}
    assert outputs.get("restriction-report") == "marketing_email: withdrawn"
    record = read_consents(client, actor, patient_id, audit=own, now=now)
    assert next(k for k in record.overview if k.key == "marketing_email").status == "withdrawn"
    events = client.search_all("AuditEvent", {"patient": f"Patient/{patient_id}"})
    assert any(
        e.get("outcomeDesc") == "consents page withdrew a marketing_email Consent" for e in events
    )
