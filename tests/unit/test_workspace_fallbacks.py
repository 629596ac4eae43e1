"""The workflows on a server where Consent and Media fell back to DocumentReference (as the
import does when the CapabilityStatement lacks them): consents show as they are rather than
"never asked", uploads check the consent kept as a DocumentReference and store photos as
DocumentReferences, and the gallery shows them."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from symfhir.errors import FhirCapabilityError
from symfhir.mapping.fallback import (
    MEDIA_TAG,
    consent_to_document_reference,
    media_to_document_reference,
)
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.recording import (
    FALLBACK_WITHDRAWAL,
    capture_consent,
    read_consents,
    withdraw_consent,
)
from symfhir.workspace.fallbacks import fallback_search, is_fallback, restore
from symfhir.workspace.photos import uploading, viewing
from symfhir.workspace.summary import read_summary
from tests.unit.fake_fhir import FakeFhir, Trail
from tests.unit.test_workspace_photos import consent, media

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))
ACTOR = Actor("Practitioner/dr1")
NO_MEDIA_SCOPE = Actor("Practitioner/dr1", permits=lambda t, i: t not in ("Media", "Consent"))
PATIENT = {"resourceType": "Patient", "id": "p1"}


def as_document(resource: dict[str, Any], doc_id: str) -> dict[str, Any]:
    """``resource`` as the server keeps it on a fallback server: a DocumentReference with an
    id and version of its own, whose embedded Consent names the client logically."""
    if resource["resourceType"] == "Media":
        doc = media_to_document_reference(resource)
    else:
        logical = {"urn:uuid:p1": {"type": "Patient", "identifier": {"system": "s", "value": "1"}}}
        doc = consent_to_document_reference(
            {**resource, "patient": {"reference": "urn:uuid:p1"}}, logical
        )
        doc["subject"] = {"reference": "Patient/p1"}
    return {**doc, "id": doc_id, "meta": {**doc["meta"], "versionId": "2"}}


def clinical(doc_id: str = "d1") -> dict[str, Any]:
    return as_document(consent("photos_clinical", "active", "2026-01-01T00:00:00-06:00"), doc_id)


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(out, "JPEG")
    return out.getvalue()


def test_the_search_asks_for_the_tagged_documents_of_the_client_only():
    url = fallback_search("p1", ["consent"])
    assert url.startswith("DocumentReference?subject=Patient/p1&_tag=")
    assert "fallback%7Cconsent" in url and "media" not in url


def test_restore_gives_back_the_consent_with_the_document_s_id_and_owner():
    (restored,) = restore([clinical()])
    assert restored["resourceType"] == "Consent"
    assert (restored["id"], restored["meta"]["versionId"]) == ("d1", "2")
    assert restored["patient"] == {"reference": "Patient/p1"}  # the server's, not the logical
    assert is_fallback(restored)
    other = {"resourceType": "DocumentReference", "id": "x", "meta": {"tag": []}}
    broken = {**clinical(), "content": []}
    assert restore([other, broken]) == [other]  # an unreadable fallback is left out


def test_consents_and_summary_show_a_fallback_consent_as_given():
    fhir = FakeFhir([PATIENT, clinical()])
    record = read_consents(fhir, ACTOR, "p1", audit=Trail(), now=NOW)  # type: ignore[arg-type]
    assert next(k for k in record.overview if k.key == "photos_clinical").status == "given"
    found = read_summary(fhir, ACTOR, "p1", audit=Trail(), now=NOW)  # type: ignore[arg-type]
    (row,) = [r for r in found.summary.consents if r.key == "photos_clinical"]
    assert row.status == "given"


def test_a_fallback_consent_is_not_withdrawn_as_a_consent():
    fhir = FakeFhir([PATIENT, clinical()])
    result = withdraw_consent(fhir, ACTOR, "p1", "photos_clinical", audit=Trail(), now=NOW)  # type: ignore[arg-type]
    assert (result.outcome, result.problem) == ("refused", FALLBACK_WITHDRAWAL)
    assert fhir.transactions == []


def test_an_upload_checks_the_fallback_consent_and_stores_documents():
    fhir = FakeFhir([PATIENT, clinical()], cannot_create={"Media", "Consent"})
    trail = Trail()
    form = {
        "body_site": "lips",
        "view": "frontal",
        "phase": "before",
        "taken_at": "2026-11-25T09:00",
    }
    result = uploading.upload_photos(
        fhir,  # type: ignore[arg-type]
        NO_MEDIA_SCOPE,
        "p1",
        form,
        [("a.jpg", jpeg(), "image/jpeg")],
        audit=trail,
        now=NOW,
    )
    assert result.outcome == "stored", result.form_error
    assert [f.message for f in result.files] == [
        "stored as a DocumentReference (this EHR cannot store Media)"
    ]
    (bundle,) = fhir.transactions
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types == ["Binary", "DocumentReference", "Provenance"]
    assert MEDIA_TAG in bundle["entry"][1]["resource"]["meta"]["tag"]
    assert trail.events[-1][3] == ("DocumentReference/n1",)


def test_an_upload_on_a_server_without_media_or_document_reference_is_refused():
    fhir = FakeFhir([PATIENT, clinical()], cannot_create={"Media", "DocumentReference"})
    form = {
        "body_site": "lips",
        "view": "frontal",
        "phase": "before",
        "taken_at": "2026-11-25T09:00",
    }
    with pytest.raises(FhirCapabilityError):
        uploading.upload_photos(
            fhir,  # type: ignore[arg-type]
            ACTOR,
            "p1",
            form,
            [("a.jpg", jpeg(), "image/jpeg")],
            audit=Trail(),
            now=NOW,
        )
    assert fhir.transactions == []


def test_the_gallery_and_the_image_of_a_fallback_photo():
    photo = as_document(media("m1", "before", "lips", "2026-03-06T09:20:00-06:00"), "d7")
    photo["content"][0]["attachment"]["url"] = "Binary/b1"
    fhir = FakeFhir([PATIENT, clinical(), photo], binaries={"b1": jpeg()})
    view = viewing.list_gallery(fhir, ACTOR, "p1", audit=Trail(), now=NOW)  # type: ignore[arg-type]
    (item,) = view.record.gallery.photos
    assert (item.media_id, item.body_site, [u.key for u in item.uses]) == (
        "d7",
        "lips",
        ["clinical"],
    )
    shown = viewing.photo_image(fhir, ACTOR, "p1", "d7", audit=Trail())  # type: ignore[arg-type]
    assert shown is not None and shown.content_type == "image/jpeg"


def test_a_capture_on_a_server_without_consent_stores_a_document():
    fhir = FakeFhir([{**PATIENT, "birthDate": "1990-04-01"}], cannot_create={"Consent"})
    form = {
        "kind": "research",
        "decision": "given",
        "signer": "client",
        "signer_name": "Ada Testperson",
        "typed_signature": "Ada Testperson",
    }
    result = capture_consent(fhir, ACTOR, "p1", form, audit=Trail(), now=NOW)  # type: ignore[arg-type]
    assert result.outcome == "saved" and result.fallback
    assert fhir.written("Consent") == []
    (doc,) = fhir.written("DocumentReference")
    assert doc["subject"] == {"reference": "Patient/p1"}
