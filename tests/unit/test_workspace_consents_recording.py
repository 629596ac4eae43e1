"""The consent workflows (symfhir.workspace.consents.recording) over a fake FHIR client:
capture and withdrawal as one transaction each, refusals before anything is read or
written, a withdrawal of a consent changed meanwhile, and what is audited."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from symfhir.errors import FhirConflictError, NotAllowedError
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.recording import (
    capture_consent,
    read_consents,
    withdraw_consent,
)
from tests.unit.fake_fhir import FakeFhir, Trail

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))
ACTOR = Actor("Practitioner/dr1")
KIND = "http://symfhir.org/fhir/CodeSystem/consent-kind"
FORM = {
    "kind": "research",
    "decision": "given",
    "signer": "client",
    "signer_name": "Ada Testperson",
    "typed_signature": "Ada Testperson",
}


def patient(birth: str = "1990-04-01") -> dict:
    return {"resourceType": "Patient", "id": "p1", "birthDate": birth}


def given(pid: str = "p1", cid: str = "c1") -> dict:
    return {
        "resourceType": "Consent",
        "id": cid,
        "meta": {"versionId": "3"},
        "status": "active",
        "scope": {"coding": [{"code": "patient-privacy"}]},
        "patient": {"reference": f"Patient/{pid}"},
        "dateTime": "2026-10-01T10:00:00-05:00",
        "category": [{"coding": [{"system": KIND, "code": "research"}]}],
        "provision": {"type": "permit", "period": {"start": "2026-10-01"}},
    }


def test_read_names_what_it_read_and_searches_guardians_only_when_allowed():
    trail = Trail()
    no_related = Actor(
        "Practitioner/dr1", permits=lambda t, i: t not in ("RelatedPerson", "DocumentReference")
    )
    record = read_consents(FakeFhir([patient(), given()]), no_related, "p1", audit=trail, now=NOW)  # type: ignore[arg-type]
    assert not record.guardians_read and not record.may_add_guardian
    research = next(k for k in record.overview if k.key == "research")
    assert research.status == "given"
    assert trail.events == [("read", True, "consents view read Patient, Consent", ())]
    fhir = FakeFhir([patient(), given(pid="p2")])
    record = read_consents(fhir, ACTOR, "p1", audit=trail, now=NOW)  # type: ignore[arg-type]
    assert next(k for k in record.overview if k.key == "research").status == "never asked"
    assert len(fhir.batches[0]["entry"]) == 4  # with RelatedPerson and DocumentReference
    assert record.guardians_read and record.age == 36 and not record.minor


def test_a_capture_is_one_transaction_naming_the_client_and_the_practitioner():
    fhir = FakeFhir([patient()])
    trail = Trail()
    result = capture_consent(fhir, ACTOR, "p1", FORM, audit=trail, now=NOW)  # type: ignore[arg-type]
    assert (result.outcome, result.kind, result.decision) == ("saved", "research", "given")
    (consent,) = fhir.written("Consent")
    assert consent["patient"] == {"reference": "Patient/p1"}
    assert consent["status"] == "active"
    assert trail.events[-1][:3] == ("create", True, "consents page recorded a research Consent")


def test_an_invalid_capture_writes_nothing():
    fhir = FakeFhir([patient()])
    result = capture_consent(
        fhir, ACTOR, "p1", {**FORM, "decision": "maybe"}, audit=Trail(), now=NOW
    )  # type: ignore[arg-type]
    assert result.outcome == "invalid" and "decision" in result.errors
    assert fhir.transactions == []


@pytest.mark.parametrize("workflow", ["capture", "withdraw"])
def test_read_only_is_refused_before_anything_is_read(workflow):
    fhir = FakeFhir([patient(), given()])
    actor = Actor("Practitioner/dr1", writable=False)
    with pytest.raises(NotAllowedError):
        if workflow == "capture":
            capture_consent(fhir, actor, "p1", FORM, audit=Trail(), now=NOW)  # type: ignore[arg-type]
        else:
            withdraw_consent(fhir, actor, "p1", "research", audit=Trail(), now=NOW)  # type: ignore[arg-type]
    assert fhir.batches == [] and fhir.transactions == []


def test_a_withdrawal_updates_the_consent_shown():
    fhir = FakeFhir([patient(), given()])
    trail = Trail()
    result = withdraw_consent(fhir, ACTOR, "p1", "research", ("c1", "3"), audit=trail, now=NOW)  # type: ignore[arg-type]
    assert result.outcome == "withdrawn"
    (bundle,) = fhir.transactions
    (entry,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Consent"]
    assert entry["request"]["method"] == "PUT"
    assert entry["request"]["ifMatch"] == 'W/"3"'
    assert entry["resource"]["status"] == "inactive"
    assert trail.events[-1][0] == "update"


def test_a_withdrawal_writes_nothing_when_there_is_nothing_or_it_changed():
    fhir = FakeFhir([patient(), given()])
    never = withdraw_consent(fhir, ACTOR, "p1", "marketing_email", audit=Trail(), now=NOW)  # type: ignore[arg-type]
    assert never.outcome == "refused" and never.problem
    stale = withdraw_consent(fhir, ACTOR, "p1", "research", ("c1", "2"), audit=Trail(), now=NOW)  # type: ignore[arg-type]
    assert stale.outcome == "changed"
    assert fhir.transactions == []
    fhir.fail_transaction = FhirConflictError("transaction", "412", status=412)
    conflict = withdraw_consent(fhir, ACTOR, "p1", "research", audit=Trail(), now=NOW)  # type: ignore[arg-type]
    assert conflict.outcome == "changed"
    assert len(fhir.batches) == 4  # read again after the conflict
