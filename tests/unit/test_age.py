"""One rule for a client's age status (adult / minor / unknown), used by the import, the
intake form and consent capture."""

from __future__ import annotations

from datetime import date

import pytest

from symfhir.mapping.context import MappingContext, load_questionnaire
from symfhir.model.age import age_status, youngest_age
from symfhir.workspace import consents as ws
from symfhir.workspace import intake
from symfhir.workspace.intake.minors import AGE_UNKNOWN, GUARDIAN_NEEDED

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 25)


@pytest.mark.parametrize(
    ("birth", "status"),
    [
        (date(2008, 11, 25), "adult"),  # 18 today
        (date(2008, 11, 26), "minor"),  # 18 tomorrow
        ("2008-11-25", "adult"),
        ("1980", "adult"),  # every day of 1980 is an adult's birthday by now
        ("2008-10", "adult"),
        ("2015", "minor"),
        ("2008-12", "minor"),
        ("2008", "unknown"),  # born early 2008: adult; in December: not yet
        ("2008-11", "unknown"),
        (None, "unknown"),
        ("", "unknown"),
        ("2008-02-30", "unknown"),
        ("11/25/2008", "unknown"),
    ],
)
def test_age_status(birth, status):
    assert age_status(birth, TODAY) == status
    assert (youngest_age(birth, TODAY) is None) == (status == "unknown")


def _intake(ctx: MappingContext, **answers: str) -> dict[str, str]:
    form = {"client.given": ["Ada"], "client.family": ["Testperson"]}
    form.update({name: [value] for name, value in answers.items()})
    _, errors = intake.questionnaire_response(
        load_questionnaire(),
        form,
        patient_id="p1",
        author=None,
        authored=ctx.now.isoformat(),
        today=ctx.today,
    )
    return errors


def test_intake_of_a_minor_needs_a_guardian(ctx: MappingContext):
    errors = _intake(ctx, **{"client.birth_date": "2012-05-05"})
    assert errors == {"guardian.name": GUARDIAN_NEEDED, "guardian.relationship": GUARDIAN_NEEDED}
    with_guardian = {
        "client.birth_date": "2012-05-05",
        "guardian.name": "Parent Testperson",
        "guardian.relationship": "MTH",
    }
    assert _intake(ctx, **with_guardian) == {}
    assert _intake(ctx, **{"client.birth_date": "1985-04-12"}) == {}
    assert _intake(ctx, **{"client.birth_date": "1985"}) == {}  # partial, but surely adult


@pytest.mark.parametrize("birth", ["2008", "2008-11"])
def test_intake_refuses_a_birth_date_that_leaves_the_age_unknown(ctx: MappingContext, birth):
    errors = _intake(ctx, **{"client.birth_date": birth, "guardian.name": "Parent T"})
    assert errors["client.birth_date"] == AGE_UNKNOWN


def test_intake_answers_with_a_card_number_are_refused(ctx: MappingContext):
    # Contact and guardian answers are free text written to the record like any other.
    card = "4111 1111 1111 1111"
    for name in ("client.address", "emergency.name", "guardian.name", "guardian.phone"):
        errors = _intake(ctx, **{"client.birth_date": "1985-04-12", name: f"x {card}"})
        assert errors == {name: intake.CARD_NUMBER}, name


def _capture_form(**fields: str) -> dict[str, str]:
    return {
        "kind": "research",
        "decision": "given",
        "signer": "client",
        "signer_name": "Ada Testperson",
        "typed_signature": "Ada Testperson",
        **fields,
    }


@pytest.mark.parametrize("patient", [None, {}, {"birthDate": "2008"}, {"birthDate": "2008-11"}])
@pytest.mark.parametrize("signer", ["client", "guardian"])
def test_capture_refuses_until_the_age_is_settled(ctx: MappingContext, patient, signer):
    age = ws.patient_age(patient, ctx.today)
    fields = {
        "signer": signer,
        "guardian": "new",
        "guardian_name": "Parent T",
        "guardian_relationship": "parent",
    }
    capture, errors = ws.parse_capture(_capture_form(**fields), ctx.consent_kinds, ctx, age)
    assert capture is None
    assert "Date of birth" in errors["signer"] and "Patient.birthDate" in errors["signer"]


def test_capture_of_a_surely_adult_partial_birth_date(ctx: MappingContext):
    age = ws.patient_age({"birthDate": "1980"}, ctx.today)
    capture, errors = ws.parse_capture(_capture_form(), ctx.consent_kinds, ctx, age)
    assert errors == {} and capture is not None


def test_capture_for_a_minor_by_partial_birth_date_needs_the_guardian(ctx: MappingContext):
    age = ws.patient_age({"birthDate": "2015"}, ctx.today)
    capture, errors = ws.parse_capture(_capture_form(), ctx.consent_kinds, ctx, age)
    assert capture is None and "under 18" in errors["signer"]


@pytest.mark.parametrize(
    ("name", "field"),
    [("signer_name", "signer-name"), ("typed_signature", "signature")],
)
def test_capture_names_with_a_card_number_are_refused(ctx: MappingContext, name, field):
    form = _capture_form(**{name: "Ada 4111 1111 1111 1111"})
    capture, errors = ws.parse_capture(form, ctx.consent_kinds, ctx, 36)
    assert capture is None and "card number" in errors[field]


def test_a_new_guardian_named_with_a_card_number_is_refused(ctx: MappingContext):
    form = _capture_form(
        signer="guardian",
        guardian="new",
        guardian_relationship="parent",
        guardian_name="Pat 4111111111111111",
    )
    capture, errors = ws.parse_capture(form, ctx.consent_kinds, ctx, 15)
    assert capture is None and "card number" in errors["guardian-name"]
