"""The intake's history extraction (pure): answers → the importer's resources and identifiers,
driven by the Questionnaire's definitionExtract markers; removals → versioned updates."""

from __future__ import annotations

import copy
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from symfhir.mapping import history as mapping
from symfhir.mapping.context import MappingContext, load_questionnaire
from symfhir.mapping.refs import Entry
from symfhir.model import SpaRecord
from symfhir.model.client import Client
from symfhir.model.health import Allergy, HealthHistory, Medication
from symfhir.validation import FastValidator
from symfhir.workspace import intake

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("America/Chicago"))
PATIENT = Entry({}, "Patient/p1", "")


@pytest.fixture(scope="module")
def ctx() -> MappingContext:
    return MappingContext.load(NOW)


def respond(form: dict[str, list[str]], ctx: MappingContext, questionnaire=None) -> dict:
    questionnaire = questionnaire or load_questionnaire()
    response, errors = intake.questionnaire_response(
        questionnaire,
        CLIENT | form,
        patient_id="p1",
        author="Practitioner/dr1",
        authored=NOW.isoformat(),
        today=ctx.today,
    )
    assert errors == {}
    return response


CLIENT = {"client.given": ["Ada"], "client.family": ["T"], "client.birth_date": ["1990-04-05"]}
FORM = {
    "allergy.substance[0]": ["Penicillin"],
    "allergy.reaction[0]": ["hives"],
    "allergy.severity[0]": ["severe"],
    "medication.name[0]": ["Warfarin"],
    "medication.dose[0]": ["5 mg"],
    "medication.name[2]": ["Zinc"],
    "medication.kind[2]": ["supplement"],
    "history.conditions": ["Eczema\nKeloids"],
    "prior.what[0]": ["Chemical peel"],
    "prior.when[0]": ["2024-05"],
    "prior.where[0]": ["Elsewhere Spa"],
}


def test_answers_become_the_importers_resources_with_the_same_identifiers(ctx):
    facts, errors = intake.extract_history(load_questionnaire(), respond(FORM, ctx), ctx)
    assert errors == {}
    day = date(2026, 11, 25)
    qr = Entry({}, "urn:uuid:qr", "")
    entries = intake.history_entries(facts, "C0042", day, PATIENT, qr, ctx)
    record = SpaRecord.model_construct(
        client=Client.model_construct(client_id="C0042"),
        health=HealthHistory.model_construct(
            intake_date=day,
            allergies=[Allergy(substance="Penicillin", reaction="hives", severity="severe")],
            medications=[
                Medication(name="Warfarin", dose="5 mg"),
                Medication(name="Zinc", kind="supplement"),
            ],
            conditions=["Eczema", "Keloids"],
            prior_treatments=[facts[-1].fact],
        ),
    )
    imported = [
        *mapping.conditions(record, PATIENT, ctx),
        *mapping.medications(record, PATIENT, qr, ctx),
        *mapping.allergies(record, PATIENT, ctx),
        *mapping.prior_treatments(record, PATIENT, ctx),
    ]
    assert entries == imported  # resources, full URLs and ifNoneExist alike
    kinds = [e.resource["resourceType"] for e in entries]
    assert kinds == [
        *("Condition", "Condition", "MedicationStatement", "MedicationStatement"),
        *("AllergyIntolerance", "Procedure"),
    ]
    assert entries[3].resource["category"]["coding"][0]["code"] == "supplement"
    assert entries[5].resource["performedDateTime"] == "2024-05"
    validator = FastValidator()
    assert all(validator.validate_fhir_json(e.resource) == [] for e in entries)


def test_identifiers_ignore_case_and_spaces_like_the_importer(ctx):
    facts, _ = intake.extract_history(
        load_questionnaire(), respond({"allergy.substance[0]": ["  PENICILLIN "]}, ctx), ctx
    )
    (entry,) = intake.history_entries(facts, "C1", date(2026, 1, 1), PATIENT, PATIENT, ctx)
    imported = mapping.allergy(
        Allergy(substance="penicillin"), "C1", date(2025, 1, 1), PATIENT, ctx
    )
    assert entry.resource["identifier"] == imported.resource["identifier"]
    assert entry.if_none_exist == imported.if_none_exist
    other = mapping.allergy(Allergy(substance="penicillin"), "C2", date(2025, 1, 1), PATIENT, ctx)
    assert entry.if_none_exist != other.if_none_exist  # per client


def renamed(questionnaire: dict[str, Any]) -> dict[str, Any]:
    """The intake with every history linkId renamed: only the markers and definitions stay."""
    copied = copy.deepcopy(questionnaire)

    def walk(items):
        for item in items:
            if item["linkId"].startswith(("history.", "allergy.", "medication.", "prior.")):
                item["linkId"] = "x-" + item["linkId"].replace(".", "-")
            walk(item.get("item", []))

    walk(copied["item"])
    return copied


def test_the_definition_markers_drive_the_extraction_not_the_link_ids(ctx):
    questionnaire = renamed(load_questionnaire())
    form = {"x-allergy-substance[0]": ["Latex"], "x-history-conditions": ["Rosacea"]}
    facts, errors = intake.extract_history(questionnaire, respond(form, ctx, questionnaire), ctx)
    assert errors == {}
    assert [(f.resource_type, f.fact) for f in facts] == [
        ("Condition", "Rosacea"),
        ("AllergyIntolerance", Allergy(substance="Latex")),
    ]
    # Without its marker an item is not extracted.
    group = next(i for i in questionnaire["item"] if i["linkId"] == "history")
    for item in group["item"]:
        item.pop("extension", None)
    facts, _ = intake.extract_history(questionnaire, respond(form, ctx, questionnaire), ctx)
    assert facts == []


def test_the_marker_names_the_resource_type(ctx):
    group = next(i for i in load_questionnaire()["item"] if i["linkId"] == "history")
    types = {i["linkId"]: intake.extracted_type(i) for i in group["item"]}
    assert types == {
        "history.conditions": "Condition",
        "history.medications": "MedicationStatement",
        "history.allergies": "AllergyIntolerance",
        "history.prior_treatments": "Procedure",
    }
    assert intake.extracted_type({"linkId": "x"}) is None


@pytest.mark.parametrize(
    ("form", "name", "message"),
    [
        ({"allergy.severity[1]": ["mild"]}, "allergy.substance[1]", intake.ROW_NEEDS),
        ({"medication.dose[0]": ["5 mg"]}, "medication.name[0]", intake.ROW_NEEDS),
        ({"prior.when[3]": ["2020"]}, "prior.what[3]", intake.ROW_NEEDS),
        (
            {"allergy.substance[0]": ["Latex"], "allergy.substance[1]": ["latex"]},
            "allergy.substance[1]",
            intake.DUPLICATE,
        ),
    ],
)
def test_rows_that_cannot_become_a_resource_are_errors_of_the_field(ctx, form, name, message):
    questionnaire = load_questionnaire()
    values = intake.values_from_form(questionnaire, form)
    _, errors = intake.extract_history(questionnaire, respond(form, ctx), ctx, values)
    assert errors == {name: message}


def test_a_card_number_in_a_history_row_is_an_error_of_its_field(ctx):
    # Caught with every other free-text answer, before the history is extracted.
    _, errors = intake.questionnaire_response(
        load_questionnaire(),
        CLIENT | {"allergy.substance[0]": ["card 4111 1111 1111 1111"]},
        patient_id="p1",
        author=None,
        authored=NOW.isoformat(),
        today=ctx.today,
    )
    assert errors == {"allergy.substance[0]": intake.CARD_NUMBER}


# -- removals and changes against the server ---------------------------------------------------


def server_copy(item: Entry, rid: str, version: str = "7", **changes: Any) -> dict[str, Any]:
    resource = copy.deepcopy(item.resource)
    return {**resource, "id": rid, "meta": {"versionId": version}, **changes}


def facts_of(form: dict[str, list[str]], ctx: MappingContext) -> list[intake.Extracted]:
    facts, errors = intake.extract_history(load_questionnaire(), respond(form, ctx), ctx)
    assert errors == {}
    return facts


def test_removed_items_become_versioned_status_updates(ctx):
    previous = facts_of(FORM, ctx)
    day = date(2026, 11, 25)
    old = intake.history_entries(previous, "C1", day, PATIENT, PATIENT, ctx)
    found = [server_copy(e, f"id{i}", str(i + 1)) for i, e in enumerate(old)]
    found.append({**found[0], "id": "other", "subject": {"reference": "Patient/p2"}})
    plan = intake.submission(
        load_questionnaire(),
        respond({"history.conditions": ["Eczema"]}, ctx),
        "p1",
        ctx,
        facts_of({"history.conditions": ["Eczema"]}, ctx),
        intake.HistoryState("C1", previous, found),
    )
    updates = {u.path: u for u in plan.updates}
    # Keloids, Warfarin, Zinc and Penicillin ended; Eczema kept; the prior treatment untouched.
    assert set(updates) == {"Condition/id1", "MedicationStatement/id2"} | {
        "MedicationStatement/id3",
        "AllergyIntolerance/id4",
    }
    assert updates["Condition/id1"].resource["clinicalStatus"]["coding"][0]["code"] == "resolved"
    assert (
        updates["Condition/id1"].resource["verificationStatus"]
        == (old[1].resource["verificationStatus"])
    )
    assert updates["MedicationStatement/id2"].resource["status"] == "stopped"
    allergy = updates["AllergyIntolerance/id4"]
    assert allergy.resource["clinicalStatus"]["coding"][0]["code"] == "inactive"
    assert allergy.bundle_entry()["request"] == {
        "method": "PUT",
        "url": "AllergyIntolerance/id4",
        "ifMatch": 'W/"5"',
    }
    assert "meta" not in allergy.resource
    assert [e.resource["resourceType"] for e in plan.creates] == ["QuestionnaireResponse"]
    bundle = plan.bundle()
    assert [e["request"]["method"] for e in bundle["entry"]] == ["POST"] + ["PUT"] * 4 + ["POST"]
    provenance = plan.provenance.resource
    assert {"reference": "AllergyIntolerance/id4"} in provenance["target"]
    assert {"reference": "Condition/id0"} not in provenance["target"]
    validator = FastValidator()
    assert all(validator.validate_fhir_json(r) == [] for r in plan.resources())


def test_nothing_changes_for_a_resubmission_and_stopped_items_stay_stopped(ctx):
    facts = facts_of(FORM, ctx)
    old = intake.history_entries(facts, "C1", date(2025, 1, 1), PATIENT, PATIENT, ctx)
    found = [server_copy(e, f"id{i}") for i, e in enumerate(old)]
    listed = intake.history_entries(facts, "C1", date(2026, 11, 25), PATIENT, PATIENT, ctx)
    assert intake.reconcile(listed, old, found, "p1") == intake.Changes([], [])
    found[2]["status"] = "stopped"  # Warfarin, stopped in the EHR meanwhile
    changes = intake.reconcile(listed[:2] + listed[3:], old, found, "p1")
    assert changes.updates == []  # not ended twice
    changes = intake.reconcile(listed, old, found, "p1")
    (update,) = changes.updates
    assert update.resource["status"] == "active"  # listed again
    assert "listed again" in update.change


def test_resources_symfhir_did_not_write_or_entered_in_error_are_never_touched(ctx):
    facts = facts_of({"allergy.substance[0]": ["Latex"]}, ctx)
    old = intake.history_entries(facts, "C1", date(2025, 1, 1), PATIENT, PATIENT, ctx)
    in_error = server_copy(
        old[0],
        "a1",
        verificationStatus={"coding": [{"code": "entered-in-error"}]},
    )
    assert intake.reconcile([], old, [in_error], "p1").updates == []
    unversioned = {k: v for k, v in server_copy(old[0], "a1").items() if k != "meta"}
    assert intake.reconcile([], old, [unversioned], "p1").updates == []
    theirs = {**server_copy(old[0], "a1"), "identifier": [{"system": "urn:ehr", "value": "1"}]}
    assert intake.reconcile([], old, [theirs], "p1").updates == []
    assert len(intake.reconcile([], old, [server_copy(old[0], "a1")], "p1").updates) == 1


def test_history_reads_name_no_health_words(ctx):
    bundle = intake.history_reads("p1", {"AllergyIntolerance", "Procedure"}, ctx)
    urls = [e["request"]["url"] for e in bundle["entry"]]
    assert bundle["type"] == "batch"
    assert urls == [
        "Patient/p1",
        "AllergyIntolerance?patient=Patient%2Fp1&identifier=http%3A%2F%2Fsymfhir.org%2Ffhir"
        "%2Fsid%2Fsymetrie-studio-spa%2Fallergy%7C&_count=100",
        "Procedure?subject=Patient%2Fp1&identifier=http%3A%2F%2Fsymfhir.org%2Ffhir%2Fsid"
        "%2Fsymetrie-studio-spa%2Fprocedure%7C&_count=100",
    ]
