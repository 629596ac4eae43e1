"""The intake form's values: pre-filled from a stored QuestionnaireResponse, or as posted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from symfhir.workspace.intake.questionnaire import (
    MAX_INSTANCES,
    Values,
    answer_value,
    field_name,
    instance_indices,
    widget_for,
)

# -- QuestionnaireResponse → form values ---------------------------------------------------


def values_from_response(questionnaire: dict[str, Any], response: dict[str, Any] | None) -> Values:
    """The form values that show ``response`` (e.g. the latest one) in the form."""
    values: Values = {}
    if response:
        _fill(questionnaire.get("item", []), response.get("item", []), None, values)
    return values


def _fill(
    q_items: list[dict[str, Any]], r_items: list[dict[str, Any]], index: int | None, out: Values
) -> None:
    by_link: dict[str, list[dict[str, Any]]] = {}
    for r_item in r_items:
        by_link.setdefault(str(r_item.get("linkId")), []).append(r_item)
    for item in q_items:
        found = by_link.get(item["linkId"], [])
        widget = widget_for(item)
        if widget == "fieldset":
            for r_item in found:
                _fill(item.get("item", []), r_item.get("item", []), index, out)
        elif widget == "repeat-group":
            for i, r_item in enumerate(found[:MAX_INSTANCES]):
                _fill(item.get("item", []), r_item.get("item", []), i, out)
        elif widget and widget != "display":
            given = [answer_value(a)[0] for r in found for a in r.get("answer", [])]
            if widget == "lines":
                given = ["\n".join(given)] if given else []
            if given:
                out[field_name(item["linkId"], index)] = given


# -- posted form → form values -------------------------------------------------------------


def values_from_form(questionnaire: dict[str, Any], form: Mapping[str, list[str]]) -> Values:
    """The posted values of the Questionnaire's fields (anything else is ignored)."""
    values: Values = {}
    for name in _names(questionnaire.get("item", []), form, None):
        given = [str(v) for v in form.get(name, [])]
        if any(v.strip() for v in given):
            values[name] = given
    return values


def _names(items: list[dict[str, Any]], form: Mapping[str, Any], index: int | None) -> list[str]:
    out: list[str] = []
    for item in items:
        widget = widget_for(item)
        if widget == "fieldset":
            out += _names(item.get("item", []), form, index)
        elif widget == "repeat-group":
            for i in instance_indices(item, form):
                out += _names(item.get("item", []), form, i)
        elif widget and widget != "display":
            out.append(field_name(item["linkId"], index))
    return out
