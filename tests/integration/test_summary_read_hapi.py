"""symfhir.sharing.summary_read against the local HAPI server: a record that needs several pages
per search is read whole in at most 4 requests (2 when it does not change), only the client's
own resources come back, and the document built from them validates."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from symfhir.errors import NotAllowedError, SharingError
from symfhir.fhir import FhirClient
from symfhir.fhir.config import ServerConfig
from symfhir.sharing import summary_read
from symfhir.sharing.summary import patient_summary
from symfhir.sharing.summary_read import read_summary_resources
from symfhir.workspace.actor import Actor
from tests.integration.conftest import synthetic_patient

pytestmark = pytest.mark.integration

ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
# Observations and Procedures past HAPI's 200-a-page cap, so both need 3 pages.
COUNTS = {
    "AllergyIntolerance": 12,
    "MedicationStatement": 15,
    "Condition": 10,
    "Procedure": 420,
    "Observation": 450,
    "Consent": 3,
}


@pytest.fixture(scope="module")
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


def _resource(kind: str, pid: str, i: int) -> dict[str, Any]:
    subject = {"reference": f"Patient/{pid}"}
    if kind == "AllergyIntolerance":
        return {
            "resourceType": kind,
            "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
            "patient": subject,
            "code": {"text": f"Substance {i}"},
        }
    if kind == "MedicationStatement":
        return {
            "resourceType": kind,
            "status": "active",
            "subject": subject,
            "medicationCodeableConcept": {"text": f"Medication {i}"},
        }
    if kind == "Condition":
        return {"resourceType": kind, "subject": subject, "code": {"text": f"Condition {i}"}}
    if kind == "Procedure":
        return {
            "resourceType": kind,
            "status": "completed",
            "subject": subject,
            "code": {"text": f"Treatment {i}"},
            "performedDateTime": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
        }
    if kind == "Observation":
        return {
            "resourceType": kind,
            "status": "final",
            "subject": subject,
            "code": {"text": f"Finding {i}"},
            "valueString": f"value {i}",
        }
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "treatment",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": subject,
    }


def seed(client: FhirClient, pid: str, counts: dict[str, int]) -> None:
    resources = [_resource(k, pid, i) for k, n in counts.items() for i in range(n)]
    for start in range(0, len(resources), 500):
        chunk = resources[start : start + 500]
        client.transaction(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                        "resource": r,
                        "request": {"method": "POST", "url": r["resourceType"]},
                    }
                    for r in chunk
                ],
            }
        )


@pytest.fixture(scope="module")
def patients(client: FhirClient) -> tuple[str, str]:
    """A client with a record of several pages, and another client with records of their own."""
    pid = synthetic_patient(client)
    other = synthetic_patient(client, name=[{"family": "Otherperson"}])
    seed(client, pid, COUNTS)
    seed(client, other, {"AllergyIntolerance": 2, "Observation": 5})
    return pid, other


class Requests:
    """Counts the HTTP requests a client's session makes (retries inside one are one)."""

    def __init__(self, client: FhirClient) -> None:
        self.seen: list[str] = []
        self._client = client

    def __enter__(self) -> Requests:
        self._client.session.hooks["response"].append(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.session.hooks["response"].remove(self._hook)

    def _hook(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self.seen.append(response.request.method)


def test_a_record_of_several_pages_is_read_whole_in_two_requests(client, patients):
    pid, _ = patients
    with Requests(client) as requests_made:
        found = read_summary_resources(client, Actor(None), pid)
    assert len(requests_made.seen) == 2 <= summary_read.MAX_ROUNDS
    assert requests_made.seen == ["POST", "POST"]  # two batches
    counts = Counter(r["resourceType"] for r in found)
    assert counts == Counter({"Patient": 1, **COUNTS})
    assert len({(r["resourceType"], r["id"]) for r in found}) == len(found)


def test_only_the_clients_own_resources(client, patients):
    pid, other = patients
    found = read_summary_resources(client, Actor(None), pid)
    subjects = {
        (r.get("subject") or r.get("patient") or {}).get("reference")
        for r in found
        if r["resourceType"] != "Patient"
    }
    assert subjects == {f"Patient/{pid}"}
    assert [r["id"] for r in found if r["resourceType"] == "Patient"] == [pid]
    mine = read_summary_resources(client, Actor(None), other)
    assert Counter(r["resourceType"] for r in mine) == Counter(
        {"Patient": 1, "AllergyIntolerance": 2, "Observation": 5}
    )


def test_a_small_record_takes_one_request(client):
    pid = synthetic_patient(client)
    seed(client, pid, {"AllergyIntolerance": 1, "Condition": 2})
    with Requests(client) as requests_made:
        found = read_summary_resources(client, Actor(None), pid)
    assert len(requests_made.seen) == 1
    assert len(found) == 4


def test_the_document_from_the_read_validates(client, patients):
    pid, _ = patients
    found = read_summary_resources(client, Actor(None), pid)
    doc = patient_summary(found, patient_id=pid, now=datetime.now(UTC), author="test")
    sections = {s["code"]["coding"][0]["code"]: s for s in doc["entry"][0]["resource"]["section"]}
    assert len(sections["48765-2"]["entry"]) == COUNTS["AllergyIntolerance"]
    assert len(sections["30954-2"]["entry"]) == COUNTS["Observation"]


def test_hapis_own_validator_finds_no_error_in_the_document(client, patients, fhir):
    """An independent check: HAPI's FHIR validator (Bundle/$validate) on the document."""
    pid, _ = patients
    found = read_summary_resources(client, Actor(None), pid)
    doc = patient_summary(found, patient_id=pid, now=datetime.now(UTC), author="test")
    answer = fhir.post(f"{client.base_url}/Bundle/$validate", json=doc, timeout=120)
    assert answer.status_code == 200
    errors = [
        (i.get("location"), i.get("diagnostics"))
        for i in answer.json().get("issue", [])
        if i.get("severity") in ("error", "fatal")
    ]
    assert errors == []


def test_not_allowed_types_refuse_before_any_request(client, patients):
    pid, _ = patients
    actor = Actor(None, permits=lambda kind, interaction: kind != "AllergyIntolerance")
    with Requests(client) as requests_made, pytest.raises(NotAllowedError) as caught:
        read_summary_resources(client, actor, pid)
    assert caught.value.missing == (("AllergyIntolerance", "s"),)
    assert requests_made.seen == []


def test_unknown_patient_names_the_type(client):
    with pytest.raises(SharingError, match="Patient: could not be read"):
        read_summary_resources(client, Actor(None), "no-such-client-" + uuid.uuid4().hex[:8])
