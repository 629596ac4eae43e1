"""A posted intake form → a QuestionnaireResponse (hl7.org/fhir/R4/questionnaireresponse.html).

Same linkIds and nesting as the Questionnaire, and no item for an unanswered question, as
``symfhir.mapping.intake`` builds it from a spa export.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from symfhir.workspace.intake.answers import parse_answers
from symfhir.workspace.intake.minors import minor_problems
from symfhir.workspace.intake.questionnaire import (
    Errors,
    Values,
    ValueSets,
    canonical,
    field_name,
    instance_indices,
    project_value_sets,
    widget_for,
)
from symfhir.workspace.intake.values import values_from_form


def response_items(
    questionnaire: dict[str, Any],
    values: Values,
    today: date,
    value_sets: ValueSets | None = None,
) -> tuple[list[dict[str, Any]], Errors]:
    """The QuestionnaireResponse items of ``values`` and the errors (field name → message)."""
    errors: Errors = {}
    sets = project_value_sets() if value_sets is None else value_sets
    items = _items(questionnaire.get("item", []), values, None, today, sets, errors)
    return items, errors


def questionnaire_response(
    questionnaire: dict[str, Any],
    form: Mapping[str, list[str]],
    *,
    patient_id: str,
    author: str | None,
    authored: str,
    today: date,
    value_sets: ValueSets | None = None,
) -> tuple[dict[str, Any], Errors]:
    """form → (QuestionnaireResponse, errors). Completed, about ``Patient/patient_id``,
    authored ``authored`` by ``author`` (a reference such as ``Practitioner/1``). The
    response is meaningful only when ``errors`` is empty; they include the rule for minors
    (``minors.minor_problems``: a guardian for a client under 18, a birth date that settles
    the age)."""
    values = values_from_form(questionnaire, form)
    items, errors = response_items(questionnaire, values, today, value_sets)
    for name, message in minor_problems(questionnaire, values, today).items():
        errors.setdefault(name, message)
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": canonical(questionnaire),
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": authored,
        "item": items,
    }
    if author:
        resource["author"] = {"reference": author}
    if not items:
        del resource["item"]
    return resource, errors


def _items(
    q_items: list[dict[str, Any]],
    values: Values,
    index: int | None,
    today: date,
    sets: ValueSets,
    errors: Errors,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in q_items:
        widget = widget_for(item)
        node: dict[str, Any] = {"linkId": item["linkId"]}
        if item.get("text"):
            node["text"] = item["text"]
        if widget == "fieldset":
            children = _items(item.get("item", []), values, index, today, sets, errors)
            if children:
                out.append({**node, "item": children})
        elif widget == "repeat-group":
            for i in instance_indices(item, values):
                children = _items(item.get("item", []), values, i, today, sets, errors)
                if children:
                    out.append({**node, "item": children})
        elif widget and widget != "display":
            name = field_name(item["linkId"], index)
            answers, error = parse_answers(item, values.get(name, []), today, sets)
            if error:
                errors[name] = error
            elif answers:
                out.append({**node, "answer": answers})
    return out
