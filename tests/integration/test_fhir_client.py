"""symfhir.fhir.FhirClient against the local HAPI FHIR R4 server.

Every test writes under identifiers unique to the run (uuid4), so reruns against the same
database do not collide.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Iterator

import pytest

from symfhir.errors import FhirConflictError, FhirNotFoundError, FhirRequestError
from symfhir.fhir import FhirClient, ServerConfig, Written, outcomes

pytestmark = pytest.mark.integration

SYS_CLIENT = "urn:symfhir:test:client"
SYS_CONSENT = "urn:symfhir:test:consent"
SYS_PHOTO = "urn:symfhir:test:photo"
SYS_RUN = "urn:symfhir:test:run"


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


@pytest.fixture
def key() -> str:
    return uuid.uuid4().hex


def patient(key: str) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYS_CLIENT, "value": key}],
        "name": [{"family": "Quillfeather", "given": ["Avery"]}],
    }


def consent(key: str, patient_ref: str) -> dict:
    return {
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
        "patient": {"reference": patient_ref},
    }


def conditional(resource: dict, criteria: str, full_url: str | None = None) -> dict:
    entry = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": criteria},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def client_bundle(key: str) -> dict:
    """A client, a consent, a photo (Binary + Media) and a Provenance: all conditional."""
    ids = {name: f"urn:uuid:{uuid.uuid4()}" for name in ("p", "c", "b", "m", "v")}
    binary = {
        "resourceType": "Binary",
        "meta": {"tag": [{"system": SYS_PHOTO, "code": key}]},
        "contentType": "image/jpeg",
        "data": "/9j/4AAQSkZJRgABAQAAAQABAAD/2w==",
    }
    media = {
        "resourceType": "Media",
        "identifier": [{"system": SYS_PHOTO, "value": key}],
        "status": "completed",
        "subject": {"reference": ids["p"]},
        "content": {"contentType": "image/jpeg", "url": ids["b"]},
    }
    provenance = {
        "resourceType": "Provenance",
        "meta": {"tag": [{"system": SYS_RUN, "code": key}]},
        "target": [{"reference": ids["p"]}, {"reference": ids["m"]}],
        "recorded": "2026-11-25T09:30:00-06:00",
        "agent": [{"who": {"display": "symfhir import"}}],
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            conditional(patient(key), f"identifier={SYS_CLIENT}|{key}", ids["p"]),
            conditional(consent(key, ids["p"]), f"identifier={SYS_CONSENT}|{key}", ids["c"]),
            conditional(binary, f"_tag={SYS_PHOTO}|{key}", ids["b"]),
            conditional(media, f"identifier={SYS_PHOTO}|{key}", ids["m"]),
            conditional(provenance, f"_tag={SYS_RUN}|{key}", ids["v"]),
        ],
    }


def written(results: list) -> list[Written]:
    assert all(isinstance(r, Written) for r in results), results
    return results


def test_hapi_capabilities(client):
    caps = client.capabilities()
    assert caps.fhir_version == "4.0.1"
    for resource_type in ("Patient", "Consent", "Media", "Binary", "DocumentReference"):
        assert caps.can(resource_type, "create"), resource_type
        assert caps.can(resource_type, "update"), resource_type
    assert caps.can("Patient", "search-type") and caps.can("Patient", "vread")
    # HAPI 8.8 declares transaction but not batch, though it accepts batches (see below).
    assert caps.can_system("transaction")
    assert caps.has_operation("$everything", "Patient")
    caps.require("Media", "create", "store photos")


def test_create_read_and_conditional_create_again(client, key):
    criteria = f"identifier={SYS_CLIENT}|{key}"
    assert client.resource_count("Patient", {"identifier": f"{SYS_CLIENT}|{key}"}) == 0
    first = client.create(patient(key), if_none_exist=criteria)
    assert (first.resource_type, first.status, first.version) == ("Patient", "created", "1")
    assert first.location and f"Patient/{first.id}" in first.location

    stored = client.read("Patient", first.id)
    assert stored["identifier"] == [{"system": SYS_CLIENT, "value": key}]
    assert client.vread("Patient", first.id, "1")["id"] == first.id

    again = client.create(patient(key), if_none_exist=criteria)
    assert (again.id, again.status) == (first.id, "unchanged")
    assert client.resource_count("Patient", {"identifier": f"{SYS_CLIENT}|{key}"}) == 1


def test_search_follows_pages_over_25_resources(client, key):
    entries = [
        conditional(
            {**patient(f"{key}-{n}"), "meta": {"tag": [{"system": SYS_RUN, "code": key}]}},
            f"identifier={SYS_CLIENT}|{key}-{n}",
        )
        for n in range(25)
    ]
    client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    params = {"_tag": f"{SYS_RUN}|{key}", "_count": 10}
    pages = list(client.search_bundles("Patient", params))
    assert [len(p.get("entry", [])) for p in pages] == [10, 10, 5]
    found = client.search_all("Patient", params)
    assert len({r["id"] for r in found}) == 25
    assert client.resource_count("Patient", {"_tag": f"{SYS_RUN}|{key}"}) == 25


def test_include_and_revinclude(client, key):
    first = written(outcomes(bundle := client_bundle(key), client.transaction(bundle)))
    patient_id, consent_id = first[0].id, first[1].id

    pages = list(
        client.search_bundles(
            "Consent", {"identifier": f"{SYS_CONSENT}|{key}", "_include": "Consent:patient"}
        )
    )
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in pages[0]["entry"]}
    assert modes == {("Consent", "match"), ("Patient", "include")}

    found = client.search_all("Patient", {"_id": patient_id, "_revinclude": "Consent:patient"})
    assert {(r["resourceType"], r["id"]) for r in found} == {
        ("Patient", patient_id),
        ("Consent", consent_id),
    }


def test_transaction_of_conditional_creates_twice_changes_nothing_the_second_time(client, key):
    first = written(outcomes(bundle := client_bundle(key), client.transaction(bundle)))
    assert [w.status for w in first] == ["created"] * 5
    assert [w.resource_type for w in first] == [
        "Patient",
        "Consent",
        "Binary",
        "Media",
        "Provenance",
    ]

    second = written(outcomes(bundle := client_bundle(key), client.transaction(bundle)))
    assert [w.status for w in second] == ["unchanged"] * 5
    assert [w.id for w in second] == [w.id for w in first]
    media = client.read("Media", first[3].id)
    assert media["content"]["url"] == f"Binary/{first[2].id}"


def test_update_with_stale_if_match_is_a_conflict(client, key):
    created = client.create(patient(key))
    current = client.read("Patient", created.id)
    current["gender"] = "female"
    updated = client.update(current, if_match=created.version)
    assert (updated.status, updated.version) == ("updated", "2")

    current["gender"] = "unknown"
    with pytest.raises(FhirConflictError) as caught:
        client.update(current, if_match="1")
    assert caught.value.status == 409  # HAPI: 409, the spec: 412
    assert "version conflict" in str(caught.value)
    assert client.read("Patient", created.id)["gender"] == "female"


def test_conditional_update_creates_then_updates(client, key):
    criteria = f"identifier={SYS_CLIENT}|{key}"
    first = client.conditional_update(patient(key), criteria)
    assert first.status == "created"
    second = client.conditional_update({**patient(key), "gender": "other"}, criteria)
    assert (second.id, second.status, second.version) == (first.id, "updated", "2")


def test_deleting_a_referenced_patient_conflicts_until_cascaded(client, key):
    first = written(outcomes(bundle := client_bundle(key), client.transaction(bundle)))
    patient_id, consent_id, media_id = first[0].id, first[1].id, first[3].id

    with pytest.raises(FhirConflictError) as caught:
        client.delete("Patient", patient_id)
    error = caught.value
    assert error.status == 409
    assert error.issues and error.issues[0][0] == "error"
    assert f"Patient/{patient_id}" in error.reason  # HAPI names the referenced resource
    assert str(error).startswith(f"delete Patient/{patient_id} (HTTP 409): ")
    assert client.read("Patient", patient_id)["id"] == patient_id

    client.delete("Patient", patient_id, cascade=True)
    for resource_type, resource_id in (
        ("Patient", patient_id),
        ("Consent", consent_id),
        ("Media", media_id),
    ):
        with pytest.raises(FhirNotFoundError) as gone:
            client.read(resource_type, resource_id)
        assert gone.value.status == 410


def test_everything_returns_the_patients_resources(client, key):
    first = written(outcomes(bundle := client_bundle(key), client.transaction(bundle)))
    found = {(r["resourceType"], r["id"]) for r in client.everything(first[0].id)}
    assert {("Patient", first[0].id), ("Consent", first[1].id), ("Media", first[3].id)} <= found


def test_binary_round_trip_of_3_mb_streamed(client, key, tmp_path):
    data = os.urandom(3 * 1024 * 1024)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)

    plain = client.upload_binary(path, "image/jpeg")
    assert (plain.resource_type, plain.status) == ("Binary", "created")
    out = io.BytesIO()
    assert client.download_binary(plain.id, out) == (
        "image/jpeg",
        len(data),
        hashlib.sha1(data).hexdigest(),
    )
    assert out.getvalue() == data

    criteria = f"_tag={SYS_PHOTO}|{key}"
    tagged = client.upload_binary(path, "image/jpeg", if_none_exist=criteria)
    again = client.upload_binary(io.BytesIO(data), "image/jpeg", if_none_exist=criteria)
    assert (tagged.status, again.status, again.id) == ("created", "unchanged", tagged.id)
    _, size, sha1 = client.download_binary(tagged.id, io.BytesIO())
    assert (size, sha1) == (len(data), hashlib.sha1(data).hexdigest())


def test_missing_resource_is_not_found(client, key):
    with pytest.raises(FhirNotFoundError) as caught:
        client.read("Patient", f"missing-{key[:20]}")
    assert caught.value.status == 404
    assert "is not known" in str(caught.value)


def test_batch_entry_failures_are_returned_not_raised(client, key):
    created = client.create(patient(key))
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{created.id}"}},
            {"request": {"method": "GET", "url": f"Patient/missing-{key[:20]}"}},
            {
                "resource": {
                    "resourceType": "Patient",
                    "managingOrganization": {"reference": f"Organization/missing-{key[:20]}"},
                },
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    results = outcomes(bundle, client.batch(bundle))
    assert isinstance(results[0], Written) and results[0].status == "read"
    assert results[0].resource["id"] == created.id
    assert isinstance(results[1], FhirNotFoundError)
    assert isinstance(results[2], FhirRequestError)
    assert str(results[2]).startswith("batch entry 3: POST Patient (HTTP 400): ")


def test_long_query_is_sent_as_post_search(client, key):
    created = client.create(patient(key))
    others = [f"{SYS_CLIENT}|{uuid.uuid4().hex}" for _ in range(60)]
    identifiers = ",".join([*others, f"{SYS_CLIENT}|{key}"])
    assert len(identifiers) > 1800
    found = client.search_all("Patient", {"identifier": identifiers})
    assert [r["id"] for r in found] == [created.id]
