"""The intake workflows (symfhir.workspace.intake.saving) over a fake FHIR client: the form
pre-filled, a save as one transaction, refusals before anything is read or written, and what
is audited."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from symfhir.errors import FhirConflictError, NotAllowedError
from symfhir.workspace.actor import Actor
from symfhir.workspace.intake.saving import read_intake, save_intake
from tests.unit.fake_fhir import FakeFhir, Trail

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))
ACTOR = Actor("Practitioner/dr1")
FORM = {
    "client.given": ["Ada"],
    "client.family": ["Testperson"],
    "client.birth_date": ["1990-04-05"],
    "skin.type": ["403231003"],
    "allergy.substance[0]": ["Penicillin"],
}
Q_URL = "http://symfhir.org/fhir/Questionnaire/spa-intake"


def patient() -> dict:
    return {"resourceType": "Patient", "id": "p1", "name": [{"family": "Testperson"}]}


def save(fhir: FakeFhir, form: dict, actor: Actor = ACTOR, trail: Trail | None = None):
    return save_intake(fhir, actor, "p1", form, audit=trail or Trail(), now=NOW)  # type: ignore[arg-type]


def test_a_save_is_one_transaction_naming_the_client_and_the_practitioner():
    fhir = FakeFhir([patient()])
    trail = Trail()
    result = save(fhir, FORM, trail=trail)
    assert result.outcome == "saved"
    assert "AllergyIntolerance" in result.created and result.updated == []
    (bundle,) = fhir.transactions
    (response,) = fhir.written("QuestionnaireResponse")
    assert response["subject"] == {"reference": "Patient/p1"}
    assert response["author"] == {"reference": "Practitioner/dr1"}
    assert response["authored"] == "2026-11-25T09:30:00-06:00"  # the spa's local time
    (allergy,) = fhir.written("AllergyIntolerance")
    assert allergy["patient"] == {"reference": "Patient/p1"}
    assert bundle["entry"][-1]["resource"]["resourceType"] == "Provenance"
    assert trail.subtypes == ["search", "create"]


def test_invalid_answers_write_nothing_and_come_back_with_errors():
    fhir = FakeFhir([patient()])
    result = save(fhir, {**FORM, "client.birth_date": ["not a date"]})
    assert result.outcome == "invalid"
    assert "client.birth_date" in result.form.errors
    assert fhir.transactions == [] and fhir.batches == []


def test_read_only_is_refused_before_anything_is_read():
    fhir = FakeFhir([patient()])
    with pytest.raises(NotAllowedError) as caught:
        save(fhir, FORM, actor=Actor("Practitioner/dr1", writable=False))
    assert caught.value.read_only
    assert fhir.batches == [] and fhir.transactions == []


def test_a_type_the_launch_may_not_create_is_refused_before_writing():
    fhir = FakeFhir([patient()])
    actor = Actor("Practitioner/dr1", permits=lambda t, i: t != "AllergyIntolerance")
    with pytest.raises(NotAllowedError) as caught:
        save(fhir, FORM, actor=actor)
    assert caught.value.missing == (("AllergyIntolerance", "c"),)
    assert fhir.transactions == []


def test_history_not_read_writes_nothing():
    fhir = FakeFhir([patient()], failing_types={"AllergyIntolerance"})
    trail = Trail()
    result = save(fhir, FORM, trail=trail)
    assert result.outcome == "failed"
    assert fhir.transactions == []
    assert trail.events[-1][:2] == ("search", False)


def test_a_refused_transaction_keeps_the_answers():
    fhir = FakeFhir([patient()], fail_transaction=FhirConflictError("transaction", "412"))
    trail = Trail()
    result = save(fhir, FORM, trail=trail)
    assert result.outcome == "failed"
    assert trail.events[-1][:2] == ("create", False)
    assert "Penicillin" in repr(result.form.fields)


def test_the_form_is_prefilled_from_the_client_s_latest_response_only():
    def response(pid: str, skin: str) -> dict:
        return {
            "resourceType": "QuestionnaireResponse",
            "questionnaire": Q_URL,
            "status": "completed",
            "subject": {"reference": f"Patient/{pid}"},
            "item": [
                {
                    "linkId": "client",
                    "item": [{"linkId": "client.given", "answer": [{"valueString": skin}]}],
                }
            ],
        }

    trail = Trail()
    empty = read_intake(FakeFhir([patient()]), ACTOR, "p1", audit=trail)  # type: ignore[arg-type]
    assert not empty.prefilled and empty.title
    filled = read_intake(
        FakeFhir([patient(), response("p1", "Ada")]),  # type: ignore[arg-type]
        ACTOR,
        "p1",
        audit=trail,
    )
    assert filled.prefilled
    assert trail.subtypes == ["search", "search"]
