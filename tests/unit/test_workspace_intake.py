"""The intake form logic: form ↔ QuestionnaireResponse, validation, and the entries written."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from symfhir.mapping.context import MappingContext, load_questionnaire
from symfhir.validation import FastValidator
from symfhir.workspace import intake

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 25)
VS = "http://example.org/ValueSet/colour"
VALUE_SETS = {VS: [{"system": "http://example.org/colour", "code": "red", "display": "Red"}]}
SCT = "http://snomed.info/sct"


def coding(code: str, display: str) -> dict[str, Any]:
    return {"valueCoding": {"system": SCT, "code": code, "display": display}}


QUESTIONNAIRE: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "url": "http://example.org/Questionnaire/q",
    "version": "2",
    "item": [
        {
            "linkId": "a",
            "type": "group",
            "text": "Group A",
            "item": [
                {"linkId": "a.name", "type": "string", "text": "Name", "required": True},
                {"linkId": "a.note", "type": "text", "text": "Note"},
                {"linkId": "a.ok", "type": "boolean", "text": "OK?"},
                {"linkId": "a.born", "type": "date", "text": "Born"},
                {"linkId": "a.count", "type": "integer", "text": "Count"},
                {"linkId": "a.weight", "type": "decimal", "text": "Weight"},
                {"linkId": "a.info", "type": "display", "text": "Just text"},
                {"linkId": "a.photo", "type": "attachment", "text": "Not offered"},
            ],
        },
        {
            "linkId": "b.kind",
            "type": "choice",
            "text": "Kind",
            "answerOption": [coding("1", "One"), coding("2", "Two")],
        },
        {
            "linkId": "b.many",
            "type": "choice",
            "repeats": True,
            "answerOption": [coding("1", "One"), coding("2", "Two")],
        },
        {
            "linkId": "b.open",
            "type": "open-choice",
            "answerOption": [{"valueString": "tea"}],
        },
        {"linkId": "b.colour", "type": "choice", "answerValueSet": VS},
        {"linkId": "b.lines", "type": "string", "repeats": True},
        {
            "linkId": "c",
            "type": "group",
            "repeats": True,
            "text": "Rows",
            "item": [
                {"linkId": "c.what", "type": "string", "required": True},
                {"linkId": "c.when", "type": "date"},
            ],
        },
    ],
}

FULL_FORM: dict[str, list[str]] = {
    "a.name": ["Ada"],
    "a.note": ["line one\nline two"],
    "a.ok": ["true"],
    "a.born": ["1990-04-05"],
    "a.count": ["3"],
    "a.weight": ["61.5"],
    "b.kind": ["2"],
    "b.many": ["1", "2"],
    "b.open": ["coffee"],
    "b.colour": ["red"],
    "b.lines": ["x\n\ny"],
    "c.what[0]": ["peel"],
    "c.when[0]": ["2024-03-01"],
    "c.what[3]": ["laser"],
    "unknown": ["ignored"],
}


def parse(form: dict[str, list[str]]) -> tuple[dict[str, Any], dict[str, str]]:
    return intake.questionnaire_response(
        QUESTIONNAIRE,
        form,
        patient_id="p1",
        author="Practitioner/dr1",
        authored="2026-11-25T10:00:00+01:00",
        today=TODAY,
        value_sets=VALUE_SETS,
    )


def answers(response: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            if "answer" in item:
                found.setdefault(item["linkId"], []).extend(item["answer"])
            walk(item.get("item", []))

    walk(response.get("item", []))
    return found


def test_every_item_type_becomes_its_answer():
    response, errors = parse(FULL_FORM)
    assert errors == {}
    assert response["resourceType"] == "QuestionnaireResponse"
    assert response["questionnaire"] == "http://example.org/Questionnaire/q|2"
    assert response["status"] == "completed"
    assert response["subject"] == {"reference": "Patient/p1"}
    assert response["author"] == {"reference": "Practitioner/dr1"}
    got = answers(response)
    assert got["a.name"] == [{"valueString": "Ada"}]
    assert got["a.note"] == [{"valueString": "line one\nline two"}]
    assert got["a.ok"] == [{"valueBoolean": True}]
    assert got["a.born"] == [{"valueDate": "1990-04-05"}]
    assert got["a.count"] == [{"valueInteger": 3}]
    assert got["a.weight"] == [{"valueDecimal": 61.5}]
    assert got["b.kind"] == [coding("2", "Two")]
    assert got["b.many"] == [coding("1", "One"), coding("2", "Two")]
    assert got["b.open"] == [{"valueString": "coffee"}]
    assert got["b.colour"] == [{"valueCoding": VALUE_SETS[VS][0]}]
    assert got["b.lines"] == [{"valueString": "x"}, {"valueString": "y"}]
    assert got["c.what"] == [{"valueString": "peel"}, {"valueString": "laser"}]
    groups = [i for i in response["item"] if i["linkId"] == "c"]
    assert len(groups) == 2  # one item per instance of the repeating group
    assert "unknown" not in got
    assert FastValidator().validate_fhir_json(response) == []


def test_unanswered_items_and_empty_groups_are_left_out():
    response, errors = parse({"a.name": ["Ada"], "c.when[0]": [" "]})
    assert errors == {}
    assert response["item"] == [
        {
            "linkId": "a",
            "text": "Group A",
            "item": [{"linkId": "a.name", "text": "Name", "answer": [{"valueString": "Ada"}]}],
        }
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("a.name", "   ", intake.REQUIRED),
        ("a.born", "2026-11-26", intake.FUTURE_DATE),
        ("a.born", "2026-02-30", intake.BAD_DATE),
        ("a.born", "05/04/1990", intake.BAD_DATE),
        ("a.born", "2024-13", intake.BAD_DATE),
        ("a.born", "2027", intake.FUTURE_DATE),
        ("a.born", "1850-01-01", intake.OLD_DATE),
        ("a.ok", "maybe", intake.BAD_BOOLEAN),
        ("a.count", "2.5", intake.BAD_INTEGER),
        ("a.weight", "heavy", intake.BAD_DECIMAL),
        ("a.weight", "NaN", intake.BAD_DECIMAL),
        ("b.kind", "3", intake.NOT_LISTED),
        ("b.many", "9", intake.NOT_LISTED),
        ("b.colour", "blue", intake.NOT_LISTED),
        ("a.name", "x" * 501, "Keep this under 500 characters."),
    ],
)
def test_bad_answers_are_reported_by_field(field, value, message):
    _, errors = parse(FULL_FORM | {field: [value]})
    assert errors == {field: message}


@pytest.mark.parametrize("value", ["2024", "2024-06", "2026-11", "2026-11-25"])
def test_partial_and_current_dates_are_kept(value):
    response, errors = parse(FULL_FORM | {"a.born": [value]})
    assert errors == {}
    assert answers(response)["a.born"] == [{"valueDate": value}]
    (born,) = [
        f
        for f in intake.build_form(QUESTIONNAIRE, {"a.born": [value]})[0].children
        if f.link_id == "a.born"
    ]
    assert born.partial_date is (len(value) < 10)


def test_one_answer_for_a_non_repeating_item():
    _, errors = parse(FULL_FORM | {"b.kind": ["1", "2"]})
    assert errors == {"b.kind": intake.ONE_ANSWER}


def test_required_inside_a_repeating_group_only_for_a_started_row():
    _, errors = parse(FULL_FORM | {"c.when[1]": ["2024-01-01"]})
    assert errors == {"c.what[1]": intake.REQUIRED}
    _, errors = parse(FULL_FORM | {"c.what[1]": [""]})
    assert errors == {}


def test_rows_beyond_the_limit_are_ignored():
    response, errors = parse(FULL_FORM | {"c.what[99]": ["too many"]})
    assert errors == {}
    assert {"valueString": "too many"} not in answers(response)["c.what"]


def test_response_back_to_form_values():
    response, _ = parse(FULL_FORM)
    values = intake.values_from_response(QUESTIONNAIRE, response)
    assert values == {
        "a.name": ["Ada"],
        "a.note": ["line one\nline two"],
        "a.ok": ["true"],
        "a.born": ["1990-04-05"],
        "a.count": ["3"],
        "a.weight": ["61.5"],
        "b.kind": ["2"],
        "b.many": ["1", "2"],
        "b.open": ["coffee"],
        "b.colour": ["red"],
        "b.lines": ["x\ny"],
        "c.what[0]": ["peel"],
        "c.when[0]": ["2024-03-01"],
        "c.what[1]": ["laser"],
    }
    again, errors = parse(values)
    assert errors == {} and again == response
    assert intake.values_from_response(QUESTIONNAIRE, None) == {}


def test_build_form_widgets_ids_values_and_errors():
    values = {"a.name": ["Ada"], "b.many": ["2"], "c.what[0]": ["peel"]}
    fields = intake.build_form(QUESTIONNAIRE, values, {"b.kind": "bad"}, VALUE_SETS)
    group, kind, many, open_, colour, lines, rows = fields
    assert (group.widget, group.html_id, group.label) == ("fieldset", "q-a", "Group A")
    widgets = {f.link_id: f.widget for f in group.children}
    assert widgets == {
        "a.name": "text",
        "a.note": "textarea",
        "a.ok": "radio",
        "a.born": "date",
        "a.count": "integer",
        "a.weight": "decimal",
        "a.info": "display",
    }  # the attachment is not offered
    name = group.children[0]
    assert (name.html_id, name.name, name.value, name.required) == (
        "q-a-name",
        "a.name",
        "Ada",
        True,
    )
    assert (kind.widget, kind.error, kind.error_id) == ("select", "bad", "err-b-kind")
    assert [o.value for o in kind.options] == ["1", "2"]
    assert (many.widget, many.values) == ("checkboxes", ["2"])
    assert open_.widget == "open" and [o.label for o in colour.options] == ["Red"]
    assert lines.widget == "lines"
    assert rows.widget == "repeat-group" and len(rows.instances) == 2  # the answered + one empty
    first = rows.instances[0][0]
    assert (first.html_id, first.name, first.value) == ("q-c-what-0", "c.what[0]", "peel")
    assert rows.instances[1][0].html_id == "q-c-what-1"


def test_field_ids():
    assert intake.field_id("skin.type") == "q-skin-type"
    assert intake.field_id("medication.name", 2) == "q-medication-name-2"
    assert intake.field_name("medication.name", 2) == "medication.name[2]"


def test_project_value_sets_resolve_codesystem_urls():
    sets = intake.project_value_sets()
    concerns = sets["http://symfhir.org/fhir/CodeSystem/skin-concern"]
    assert {
        "system": "http://symfhir.org/fhir/CodeSystem/skin-concern",
        "code": "acne",
    }.items() <= (concerns[0].items())


def test_submission_for_the_real_questionnaire():
    now = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("America/New_York"))
    ctx = MappingContext.load(now)
    questionnaire = load_questionnaire()
    form = {
        "client.given": ["Ada"],
        "client.family": ["Testperson"],
        "client.birth_date": ["1990-04-05"],
        "skin.type": ["403231003"],
        "safety.contraindications": ["anticoagulants"],
    }
    response, errors = intake.questionnaire_response(
        questionnaire,
        form,
        patient_id="p1",
        author="Practitioner/dr1",
        authored=now.isoformat(),
        today=ctx.today,
    )
    assert errors == {}
    entries = intake.submission(questionnaire, response, "p1", ctx).entries
    kinds = [e.resource["resourceType"] for e in entries]
    assert kinds == ["QuestionnaireResponse", "Observation", "Observation", "Provenance"]
    qr, *observations, prov = entries
    assert qr.resource["identifier"]["value"].startswith(f"p1-{now.isoformat()}-")
    # Same second, same answers (a double submit): the same identifier; other answers: another.
    again = intake.submission(questionnaire, response, "p1", ctx).entries[0]
    assert again.resource["identifier"] == qr.resource["identifier"]
    changed, _ = intake.questionnaire_response(
        questionnaire,
        {**form, "skin.type": ["403222003"]},
        patient_id="p1",
        author="Practitioner/dr1",
        authored=now.isoformat(),
        today=ctx.today,
    )
    other = intake.submission(questionnaire, changed, "p1", ctx).entries[0]
    assert other.resource["identifier"]["value"] != qr.resource["identifier"]["value"]
    assert qr.if_none_exist.startswith("identifier=")
    for obs in observations:
        assert obs.resource["subject"] == {"reference": "Patient/p1"}
        assert obs.resource["performer"] == [{"reference": "Practitioner/dr1"}]
        assert obs.resource["derivedFrom"] == [qr.reference]
    assert prov.resource["target"] == [e.reference for e in entries[:-1]]
    references = str(prov.resource["agent"])
    assert "urn:uuid" not in references  # the Organization is named by identifier only
    assert "Practitioner/dr1" in references
    validator = FastValidator()
    assert all(validator.validate_fhir_json(e.resource) == [] for e in entries)
    again = intake.submission(questionnaire, response, "p1", ctx).entries
    assert [e.full_url for e in again] == [e.full_url for e in entries]  # replay-safe
