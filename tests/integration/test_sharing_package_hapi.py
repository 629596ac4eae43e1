"""Physician sharing against the local HAPI FHIR R4 server: the consent captured at the desk
(scopes, a date range and a physician entered on the spot, written as a Practitioner in the
same transaction), read back by the gate, and a package whose contents are exactly what the
consent covers.

Each run makes its own client and physician (a random, valid NPI), so reruns against the
same database do not collide.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from symfhir.audit import ClientAuditTrail
from symfhir.errors import ConsentMissing
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.sharing.gate import consent_active, plan_share, sharing_consent
from symfhir.sharing.package import build_package
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.recording import capture_consent, withdraw_consent
from symfhir.workspace.photos import uploading
from tests.integration.conftest import random_npi, synthetic_patient, synthetic_practitioner

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


def _form(kind: str, **fields: str) -> dict[str, str]:
    return {
        "kind": kind,
        "decision": "given",
        "signer": "client",
        "signer_name": "Avery Quillfeather",
        "typed_signature": "Avery Quillfeather",
        **fields,
    }


def _seed(client: FhirClient, pid: str, now: datetime) -> dict[str, str]:
    """The client's record: recent facts, old ones, and what no physician share carries."""
    subject = {"reference": f"Patient/{pid}"}
    recent = (now - timedelta(days=3)).isoformat(timespec="seconds")
    old = (now - timedelta(days=800)).date().isoformat()
    made = {}
    for key, resource in {
        "allergy-old": {
            "resourceType": "AllergyIntolerance",
            "patient": subject,
            "recordedDate": old,
            "code": {"text": "lidocaine"},
        },
        "condition": {
            "resourceType": "Condition",
            "subject": subject,
            "recordedDate": recent[:10],
            "code": {"text": "migraine"},
        },
        "procedure": {
            "resourceType": "Procedure",
            "status": "completed",
            "subject": subject,
            "performedDateTime": recent,
            "code": {"text": "Botox, glabella"},
        },
        "procedure-old": {
            "resourceType": "Procedure",
            "status": "completed",
            "subject": subject,
            "performedDateTime": old,
            "code": {"text": "chemical peel"},
        },
        "observation": {
            "resourceType": "Observation",
            "status": "final",
            "subject": subject,
            "effectiveDateTime": recent,
            "code": {"text": "skin type"},
            "valueString": "III",
        },
        "intake": {
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "subject": subject,
            "authored": recent,
        },
        "note": {
            "resourceType": "DocumentReference",
            "status": "current",
            "subject": subject,
            "date": recent,
            "content": [{"attachment": {"contentType": "text/plain", "data": "bm90ZQ=="}}],
        },
        "task": {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "for": subject,
        },
    }.items():
        made[key] = f"{resource['resourceType']}/{client.create(resource).id}"
    return made


def test_a_consent_captured_at_the_desk_gates_the_package(client: FhirClient, actor: Actor):
    now = datetime.now(UTC)
    pid = synthetic_patient(client, birthDate="1985-04-12")
    trail = ClientAuditTrail(client, pid, actor.fhir_user)
    made = _seed(client, pid, now)
    # No physician-sharing consent yet: deny by default.
    with pytest.raises(ConsentMissing):
        sharing_consent(client, actor, pid, now=now)

    # The photo consent a week ago, then a photo taken today.
    week_ago = now - timedelta(days=7)
    saved = capture_consent(client, actor, pid, _form("photos_clinical"), audit=trail, now=week_ago)
    assert saved.outcome == "saved", saved.errors
    taken = now.astimezone(load_spa().zone).strftime("%Y-%m-%dT%H:%M")
    upload = uploading.upload_photos(
        client,
        actor,
        pid,
        {"body_site": "lips", "view": "frontal", "phase": "before", "taken_at": taken},
        [("IMG_0001.jpg", io.BytesIO(jpeg()), "image/jpeg")],
        audit=trail,
        now=now,
    )
    assert upload.outcome == "stored", upload.form_error

    # The physician-sharing consent, captured with a physician entered on the spot.
    npi = random_npi()
    start = (now - timedelta(days=30)).astimezone(load_spa().zone).date()
    form = _form(
        "physician_sharing",
        share_scope_intake="yes",
        share_scope_photos="yes",
        share_start=start.isoformat(),
        physician_name="Dr. Olamide Sorrel",
        physician_npi=npi,
        physician_organization="Bayou Family Medicine",
        physician_phone="(337) 555-0199",
        physician_email="sorrel@clinic.example.org",
    )
    saved = capture_consent(client, actor, pid, form, audit=trail, now=now)
    assert saved.outcome == "saved", saved.errors
    doctors = client.search_all(
        "Practitioner", {"identifier": f"http://hl7.org/fhir/sid/us-npi|{npi}"}
    )
    assert len(doctors) == 1

    found = sharing_consent(client, actor, pid, now=now)
    assert found.scopes == {"summary", "intake", "photos"}
    assert found.start == start and found.end is None
    assert found.recipient.reference == f"Practitioner/{doctors[0]['id']}"
    assert found.recipient.npi == npi
    assert found.recipient.organization == "Bayou Family Medicine"
    assert found.photos_consent

    # Treatments beyond the summary and the full record were not consented to.
    with pytest.raises(ConsentMissing):
        plan_share(found, ["full"])
    plan = plan_share(found, ["intake", "photos"])
    package = build_package(client, actor, pid, plan, now=now)
    names = [f.name for f in package.files]
    assert names[:2] == ["patient-summary.json", "records.json"]
    (media_id,) = upload.media_ids
    assert names[2:] == [f"photo-{media_id}.json"]

    document = json.loads(package.files[0].read())
    assert document["type"] == "document"
    records = json.loads(package.files[1].read())
    shared = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in records["entry"]}
    # Exactly what the consent covers: the summary and intake types within the range, the
    # old allergy (standing), the client's consents; never the old procedure, the note, the
    # Task, the photo's Binary or anyone else's.
    expected = {
        f"Patient/{pid}",
        made["allergy-old"],
        made["condition"],
        made["procedure"],
        made["observation"],
        made["intake"],
    }
    consents = {k for k in shared if k.startswith("Consent/")}
    assert shared - consents == expected
    assert len(consents) == 2
    photo = json.loads(package.files[2].read())
    assert photo["resourceType"] == "Media" and photo["id"] == media_id
    assert photo["content"]["contentType"] == "image/jpeg"
    assert "url" not in photo["content"]
    assert package.counts["Media"] == 1 and package.photos == 1

    # The link service's re-check (a category search on the server), before and after.
    assert consent_active(client, found.consent_id, now=now)
    assert consent_active(client, found.consent_id, now=now, patient_id=pid)

    # Withdrawn: nothing more leaves.
    withdrawn = withdraw_consent(client, actor, pid, "physician_sharing", audit=trail, now=now)
    assert withdrawn.outcome == "withdrawn"
    with pytest.raises(ConsentMissing):
        sharing_consent(client, actor, pid, now=now)
    assert not consent_active(client, found.consent_id, now=now)
