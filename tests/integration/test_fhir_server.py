"""The local HAPI FHIR R4 server (scripts/fhir-server) does what symfhir relies on.

The session fixture starts the server when nothing answers at the base URL yet (a cold first
run builds the server jar with Maven first); it never skips: a server that cannot start fails
the tests. Each test writes resources under identifiers unique to the run, so a database left
by an earlier run does not matter.
"""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.integration.conftest import BASE

pytestmark = pytest.mark.integration

SYS_CLIENT = "urn:symfhir:test:client"
SYS_CONSENT = "urn:symfhir:test:consent"
SYS_PHOTO = "urn:symfhir:test:photo"
SYS_RUN = "urn:symfhir:test:run"


def _count(session: requests.Session, resource_type: str, **params: str) -> int:
    response = session.get(f"{BASE}/{resource_type}", params={**params, "_summary": "count"})
    response.raise_for_status()
    return response.json()["total"]


def _transaction(session: requests.Session, bundle: dict) -> list[dict]:
    response = session.post(BASE, json=bundle)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    return [entry["response"] for entry in body["entry"]]


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _client_bundle(key: str) -> dict:
    """A client, a consent, a photo (Binary + Media pointing at it) and the import's Provenance,
    every entry a conditional create, the way symfhir writes them."""
    patient, consent, binary, media, provenance = (_urn() for _ in range(5))
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": SYS_CLIENT, "value": key}],
                    "name": [{"family": "Quillfeather", "given": ["Avery"]}],
                },
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={SYS_CLIENT}|{key}",
                },
            },
            {
                "fullUrl": consent,
                "resource": {
                    "resourceType": "Consent",
                    "identifier": [{"system": SYS_CONSENT, "value": key}],
                    "status": "active",
                    "scope": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                "code": "patient-privacy",
                            }
                        ]
                    },
                    "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                    "patient": {"reference": patient},
                },
                "request": {
                    "method": "POST",
                    "url": "Consent",
                    "ifNoneExist": f"identifier={SYS_CONSENT}|{key}",
                },
            },
            {
                "fullUrl": binary,
                "resource": {
                    "resourceType": "Binary",
                    "meta": {"tag": [{"system": SYS_PHOTO, "code": key}]},
                    "contentType": "image/jpeg",
                    "data": "/9j/4AAQSkZJRgABAQAAAQABAAD/2w==",
                },
                "request": {
                    "method": "POST",
                    "url": "Binary",
                    "ifNoneExist": f"_tag={SYS_PHOTO}|{key}",
                },
            },
            {
                "fullUrl": media,
                "resource": {
                    "resourceType": "Media",
                    "identifier": [{"system": SYS_PHOTO, "value": key}],
                    "status": "completed",
                    "subject": {"reference": patient},
                    "content": {"contentType": "image/jpeg", "url": binary},
                },
                "request": {
                    "method": "POST",
                    "url": "Media",
                    "ifNoneExist": f"identifier={SYS_PHOTO}|{key}",
                },
            },
            {
                "fullUrl": provenance,
                "resource": {
                    "resourceType": "Provenance",
                    "meta": {"tag": [{"system": SYS_RUN, "code": key}]},
                    "target": [{"reference": patient}, {"reference": media}],
                    "recorded": "2026-11-25T09:30:00-06:00",
                    "agent": [{"who": {"display": "symfhir import"}}],
                },
                "request": {
                    "method": "POST",
                    "url": "Provenance",
                    "ifNoneExist": f"_tag={SYS_RUN}|{key}",
                },
            },
        ],
    }


def _id_of(location: str) -> str:
    """'Media/1003/_history/1' -> '1003'."""
    return location.split("/")[1]


def test_metadata_is_fhir_r4_with_every_resource_type_symfhir_writes(fhir):
    response = fhir.get(f"{BASE}/metadata")
    assert response.status_code == 200
    capability = response.json()
    assert capability["resourceType"] == "CapabilityStatement"
    assert capability["fhirVersion"] == "4.0.1"
    types = {resource["type"] for resource in capability["rest"][0]["resource"]}
    assert {"Patient", "Consent", "Media", "Binary", "Provenance", "DocumentReference"} <= types


def test_transaction_replay_creates_nothing_the_second_time(fhir):
    key = f"T{uuid.uuid4().hex[:12]}"
    types = ["Patient", "Consent", "Binary", "Media", "Provenance"]
    before = {t: _count(fhir, t) for t in types}

    first = _transaction(fhir, _client_bundle(key))
    assert [r["status"] for r in first] == ["201 Created"] * 5
    after_first = {t: _count(fhir, t) for t in types}
    assert after_first == {t: n + 1 for t, n in before.items()}

    # Same content, fresh urn:uuids: every conditional create matches what the first one wrote.
    second = _transaction(fhir, _client_bundle(key))
    assert [r["status"] for r in second] == ["200 OK"] * 5
    assert [_id_of(r["location"]) for r in second] == [_id_of(r["location"]) for r in first]
    assert {t: _count(fhir, t) for t in types} == after_first

    assert _count(fhir, "Patient", identifier=f"{SYS_CLIENT}|{key}") == 1
    assert _count(fhir, "Media", identifier=f"{SYS_PHOTO}|{key}") == 1
    assert _count(fhir, "Binary", _tag=f"{SYS_PHOTO}|{key}") == 1
    assert _count(fhir, "Provenance", _tag=f"{SYS_RUN}|{key}") == 1


def test_media_content_url_urn_is_rewritten_to_the_binary(fhir):
    key = f"M{uuid.uuid4().hex[:12]}"
    responses = _transaction(fhir, _client_bundle(key))
    binary_id = _id_of(responses[2]["location"])
    media_id = _id_of(responses[3]["location"])

    media = fhir.get(f"{BASE}/Media/{media_id}").json()
    assert media["content"]["url"] == f"Binary/{binary_id}"

    binary = fhir.get(f"{BASE}/Binary/{binary_id}").json()
    assert binary["resourceType"] == "Binary"
    assert binary["contentType"] == "image/jpeg"


def test_deleting_a_referenced_patient_is_refused_unless_cascaded(fhir):
    key = f"D{uuid.uuid4().hex[:12]}"
    responses = _transaction(fhir, _client_bundle(key))
    patient_id = _id_of(responses[0]["location"])
    consent_id = _id_of(responses[1]["location"])
    media_id = _id_of(responses[3]["location"])

    refused = fhir.delete(f"{BASE}/Patient/{patient_id}")
    assert refused.status_code == 409, refused.text
    assert f"Patient/{patient_id}" in refused.text
    assert fhir.get(f"{BASE}/Patient/{patient_id}").status_code == 200

    cascaded = fhir.delete(f"{BASE}/Patient/{patient_id}", params={"_cascade": "delete"})
    assert cascaded.status_code == 200, cascaded.text
    for path in (f"Patient/{patient_id}", f"Consent/{consent_id}", f"Media/{media_id}"):
        assert fhir.get(f"{BASE}/{path}").status_code == 410, path


def test_stale_if_match_update_is_a_409_conflict(fhir):
    key = f"V{uuid.uuid4().hex[:12]}"
    patient_id = _id_of(_transaction(fhir, _client_bundle(key))[0]["location"])
    url = f"{BASE}/Patient/{patient_id}"
    patient = fhir.get(url).json()
    assert patient["meta"]["versionId"] == "1"

    patient["gender"] = "female"
    assert fhir.put(url, json=patient, headers={"If-Match": 'W/"1"'}).status_code == 200
    patient["gender"] = "unknown"
    stale = fhir.put(url, json=patient, headers={"If-Match": 'W/"1"'})
    # HAPI answers a version mismatch with 409 Conflict (not 412 Precondition Failed).
    assert stale.status_code == 409, stale.text
    assert fhir.get(url).json()["gender"] == "female"


def test_a_page_holds_up_to_200_results_as_the_hapi_starter_allows(fhir):
    """The app reads a client's Observations or photos in one page of 200; HAPI's own cap
    (50) would cut a full record short."""
    run = uuid.uuid4().hex
    basics = [
        {
            "resource": {
                "resourceType": "Basic",
                "identifier": [{"system": SYS_RUN, "value": f"{run}-{i}"}],
                "code": {"text": "page-size test"},
            },
            "request": {"method": "POST", "url": "Basic"},
        }
        for i in range(70)
    ]
    _transaction(fhir, {"resourceType": "Bundle", "type": "transaction", "entry": basics})
    page = fhir.get(
        f"{BASE}/Basic",
        params={"identifier": ",".join(f"{SYS_RUN}|{run}-{i}" for i in range(70)), "_count": "200"},
    )
    page.raise_for_status()
    body = page.json()
    assert len(body["entry"]) == 70
    assert not any(link["relation"] == "next" for link in body.get("link", []))


def test_the_newest_intake_wins_a_tie_on_authored(fhir):
    """Two saves of the intake within one second share `authored`: the app's search for the
    latest response must still find the one written last (HAPI orders ties arbitrarily)."""
    from symfhir.workspace.intake.saving import latest_response_search

    patient = {"resourceType": "Patient", "identifier": [{"system": SYS_RUN, "value": _urn()}]}
    created = fhir.post(f"{BASE}/Patient", json=patient)
    created.raise_for_status()
    pid = created.json()["id"]
    url = f"http://symfhir.org/fhir/Questionnaire/test-{uuid.uuid4().hex}"
    ids = []
    for n in range(4):
        qr = {
            "resourceType": "QuestionnaireResponse",
            "questionnaire": url,
            "status": "completed",
            "subject": {"reference": f"Patient/{pid}"},
            "authored": "2026-11-25T09:30:00-06:00",
            "item": [{"linkId": "n", "answer": [{"valueInteger": n}]}],
        }
        answer = fhir.post(f"{BASE}/QuestionnaireResponse", json=qr)
        answer.raise_for_status()
        ids.append(answer.json()["id"])
    found = fhir.get(f"{BASE}/QuestionnaireResponse", params=latest_response_search(pid, url))
    found.raise_for_status()
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [ids[-1]]
