"""The intake form: Questionnaire items ↔ HTML form fields ↔ QuestionnaireResponse (pure).

A generic reading of an R4 Questionnaire (hl7.org/fhir/R4/questionnaire.html): each item
becomes a form field named by its linkId (``linkId[i]`` inside instance ``i`` of a repeating
group); the posted form is checked against the item (required, type, allowed answers) and
turned into a QuestionnaireResponse (hl7.org/fhir/R4/questionnaireresponse.html) with the same
linkIds and nesting and no item for an unanswered question, as ``symfhir.mapping.intake``
builds it from a spa export. ``submission_entries`` adds the Observations of SDC extraction
(``symfhir.mapping.extract``) and a Provenance. No Flask, no I/O, no clock.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.mapping import extract
from symfhir.mapping.context import MappingContext
from symfhir.mapping.patient import organization
from symfhir.mapping.provenance import AGENT_TYPE, provenance
from symfhir.mapping.refs import Entry, entry, identifier, organization_ref
from symfhir.terminology import MAPPINGS_DIR

Values = dict[str, list[str]]  # form field name → the raw values posted (or pre-filled)
Errors = dict[str, str]  # form field name (the linkId outside repeating groups) → message
ValueSets = Mapping[str, list[dict[str, Any]]]  # answerValueSet canonical → its Codings

ANSWERABLE = ("string", "text", "boolean", "choice", "open-choice", "date", "integer", "decimal")
MAX_INSTANCES = 20  # rows of one repeating group a form may post
EXTRA_ROWS = 1  # empty rows offered after the answered ones of a repeating group
MAX_STRING = 500
MAX_TEXT = 4000
EARLIEST = date(1900, 1, 1)
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_INTEGER = re.compile(r"^[+-]?\d{1,9}$")

REQUIRED = "This answer is required."
ONE_ANSWER = "Give only one answer."
NOT_LISTED = "Choose one of the listed answers."
BAD_DATE = "Enter a real date: YYYY-MM-DD (or YYYY-MM, or YYYY)."
FUTURE_DATE = "The date cannot be in the future."
OLD_DATE = "Enter a date after 1900."
BAD_BOOLEAN = "Answer yes or no."
BAD_INTEGER = "Enter a whole number."
BAD_DECIMAL = "Enter a number."


@dataclass(frozen=True)
class Option:
    value: str  # what the form posts: the code of a Coding, else the value as text
    label: str
    answer: dict[str, Any]  # the answer[x] it stands for, e.g. {"valueCoding": {...}}


@dataclass
class Field:
    """One rendered item. ``widget``: fieldset, repeat-group, text, textarea, lines, radio
    (yes/no), select, open (text with suggestions), checkboxes, date, integer, decimal,
    display."""

    link_id: str
    name: str
    html_id: str
    label: str
    widget: str
    required: bool = False
    options: list[Option] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    error: str | None = None
    children: list[Field] = field(default_factory=list)
    instances: list[list[Field]] = field(default_factory=list)

    @property
    def value(self) -> str:
        return self.values[0] if self.values else ""

    @property
    def partial_date(self) -> bool:
        """A date known only to the year or month: shown as text (a date input would drop it)."""
        return self.widget == "date" and 0 < len(self.value) < 10

    @property
    def error_id(self) -> str:
        return "err-" + self.html_id.removeprefix("q-")


def field_name(link_id: str, index: int | None = None) -> str:
    return link_id if index is None else f"{link_id}[{index}]"


def field_id(link_id: str, index: int | None = None) -> str:
    """The element id: ``q-`` + the linkId with dots as dashes (+ ``-i`` in a repeating group)."""
    base = "q-" + re.sub(r"[^A-Za-z0-9_-]", "-", link_id)
    return base if index is None else f"{base}-{index}"


def canonical(questionnaire: dict[str, Any]) -> str:
    url = questionnaire["url"]
    return f"{url}|{questionnaire['version']}" if questionnaire.get("version") else url


# -- answer options ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def project_value_sets(directory: Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """Codings of the project CodeSystems (``mappings/codesystems``), by the CodeSystem's url
    and its ``valueSet`` (the implicit "all codes" value set). Reads files once."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((directory or MAPPINGS_DIR / "codesystems").glob("*.json")):
        system = json.loads(path.read_text(encoding="utf-8"))
        codings = [
            {"system": system["url"], "code": c["code"], "display": c.get("display", c["code"])}
            for c in system.get("concept", [])
        ]
        for url in (system.get("url"), system.get("valueSet")):
            if url:
                found[url] = codings
    return found


def _answer_value(answer: dict[str, Any]) -> tuple[str, str]:
    """(form value, label) of an answerOption / QR answer."""
    for key, raw in answer.items():
        if not key.startswith("value"):
            continue
        if key == "valueCoding":
            return str(raw.get("code", "")), str(raw.get("display") or raw.get("code", ""))
        if key == "valueBoolean":
            return ("true" if raw else "false"), ("Yes" if raw else "No")
        return str(raw), str(raw)
    return "", ""


def options(item: dict[str, Any], value_sets: ValueSets) -> list[Option]:
    """The allowed answers of a choice item: its answerOptions, else its answerValueSet."""
    answers = [
        {k: v for k, v in o.items() if k.startswith("value")} for o in item.get("answerOption", [])
    ]
    if not answers and item.get("answerValueSet"):
        url = str(item["answerValueSet"]).split("|")[0]
        answers = [{"valueCoding": dict(c)} for c in value_sets.get(url, [])]
    return [Option(*_answer_value(a), answer=a) for a in answers]


def _widget(item: dict[str, Any]) -> str | None:
    kind, repeats = item.get("type"), bool(item.get("repeats"))
    if kind == "group":
        return "repeat-group" if repeats else "fieldset"
    if kind in ("string", "text"):
        return "lines" if repeats else ("textarea" if kind == "text" else "text")
    if kind == "open-choice" and not repeats:
        return "open"  # a text input suggesting the options (a datalist)
    if kind in ("choice", "open-choice"):
        return "checkboxes" if repeats else "select"
    if kind == "boolean":
        return "radio"
    if kind in ("date", "integer", "decimal"):
        return kind
    if kind == "display":
        return "display"
    return None  # attachment, quantity, reference…: not offered by this form


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
        widget = _widget(item)
        if widget == "fieldset":
            for r_item in found:
                _fill(item.get("item", []), r_item.get("item", []), index, out)
        elif widget == "repeat-group":
            for i, r_item in enumerate(found[:MAX_INSTANCES]):
                _fill(item.get("item", []), r_item.get("item", []), i, out)
        elif widget and widget != "display":
            given = [_answer_value(a)[0] for r in found for a in r.get("answer", [])]
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


def _indices(item: dict[str, Any], names: Mapping[str, Any]) -> list[int]:
    """The instance numbers of a repeating group present among ``names``."""
    wanted = {c["linkId"] for c in _leaves(item.get("item", []))}
    found: set[int] = set()
    for name in names:
        match = re.fullmatch(r"(.+)\[(\d{1,3})\]", name)
        if match and match.group(1) in wanted and int(match.group(2)) < MAX_INSTANCES:
            found.add(int(match.group(2)))
    return sorted(found)


def _leaves(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        if item.get("type") == "group":
            out += _leaves(item.get("item", []))
        else:
            out.append(item)
    return out


def _names(items: list[dict[str, Any]], form: Mapping[str, Any], index: int | None) -> list[str]:
    out: list[str] = []
    for item in items:
        widget = _widget(item)
        if widget == "fieldset":
            out += _names(item.get("item", []), form, index)
        elif widget == "repeat-group":
            for i in _indices(item, form):
                out += _names(item.get("item", []), form, i)
        elif widget and widget != "display":
            out.append(field_name(item["linkId"], index))
    return out


# -- form values → QuestionnaireResponse ---------------------------------------------------


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
    response is meaningful only when ``errors`` is empty."""
    values = values_from_form(questionnaire, form)
    items, errors = response_items(questionnaire, values, today, value_sets)
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
        widget = _widget(item)
        node: dict[str, Any] = {"linkId": item["linkId"]}
        if item.get("text"):
            node["text"] = item["text"]
        if widget == "fieldset":
            children = _items(item.get("item", []), values, index, today, sets, errors)
            if children:
                out.append({**node, "item": children})
        elif widget == "repeat-group":
            for i in _indices(item, values):
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


def parse_answers(
    item: dict[str, Any], raw: list[str], today: date, value_sets: ValueSets
) -> tuple[list[dict[str, Any]], str | None]:
    """The answers of one item from its posted values, or the message saying what is wrong."""
    kind, repeats = item.get("type"), bool(item.get("repeats"))
    given = [v.strip() for v in raw if v.strip()]
    if kind in ("string", "text") and repeats:
        given = [line.strip() for v in given for line in v.splitlines() if line.strip()]
    if not given:
        return [], REQUIRED if item.get("required") else None
    if len(given) > 1 and not repeats:
        return [], ONE_ANSWER
    parse = _PARSERS[str(kind)]
    answers: list[dict[str, Any]] = []
    for value in given:
        answer, error = parse(item, value, today, value_sets)
        if error:
            return [], error
        if answer not in answers:
            answers.append(answer)
    return answers, None


Parsed = tuple[dict[str, Any], str | None]


def _string(item: dict[str, Any], value: str, _today: date, _sets: ValueSets) -> Parsed:
    limit = int(item.get("maxLength") or (MAX_TEXT if item.get("type") == "text" else MAX_STRING))
    if len(value) > limit:
        return {}, f"Keep this under {limit} characters."
    return {"valueString": value}, None


def _choice(item: dict[str, Any], value: str, today: date, sets: ValueSets) -> Parsed:
    for option in options(item, sets):
        if option.value == value:
            return {
                k: (dict(v) if isinstance(v, dict) else v) for k, v in option.answer.items()
            }, None
    if item.get("type") == "open-choice":
        return _string(item, value, today, sets)
    return {}, NOT_LISTED


def _date(_item: dict[str, Any], value: str, today: date, _sets: ValueSets) -> Parsed:
    """A full date, or a partial one (YYYY or YYYY-MM) as FHIR allows and the spa exports hold."""
    if not _DATE.match(value):
        return {}, BAD_DATE
    try:
        start = date.fromisoformat((value + "-01-01")[:10])
        if len(value) == 10:
            start = date.fromisoformat(value)
    except ValueError:
        return {}, BAD_DATE
    if start > today:  # every date the intake asks about is in the past (birth, treatments)
        return {}, FUTURE_DATE
    if start < EARLIEST:
        return {}, OLD_DATE
    return {"valueDate": value}, None


def _boolean(_item: dict[str, Any], value: str, _today: date, _sets: ValueSets) -> Parsed:
    if value not in ("true", "false"):
        return {}, BAD_BOOLEAN
    return {"valueBoolean": value == "true"}, None


def _integer(_item: dict[str, Any], value: str, _today: date, _sets: ValueSets) -> Parsed:
    if not _INTEGER.match(value):
        return {}, BAD_INTEGER
    return {"valueInteger": int(value)}, None


def _decimal(_item: dict[str, Any], value: str, _today: date, _sets: ValueSets) -> Parsed:
    try:
        number = Decimal(value)
    except InvalidOperation:
        return {}, BAD_DECIMAL
    if not number.is_finite() or not math.isfinite(float(number)) or len(value) > 20:
        return {}, BAD_DECIMAL
    return {"valueDecimal": float(number)}, None


_PARSERS: dict[str, Callable[[dict[str, Any], str, date, ValueSets], Parsed]] = {
    "string": _string,
    "text": _string,
    "choice": _choice,
    "open-choice": _choice,
    "date": _date,
    "boolean": _boolean,
    "integer": _integer,
    "decimal": _decimal,
}


# -- the form to render --------------------------------------------------------------------


def build_form(
    questionnaire: dict[str, Any],
    values: Values,
    errors: Errors | None = None,
    value_sets: ValueSets | None = None,
) -> list[Field]:
    """The fields to render, showing ``values`` and ``errors``."""
    sets = project_value_sets() if value_sets is None else value_sets
    return _fields(questionnaire.get("item", []), values, errors or {}, None, sets)


def _fields(
    items: list[dict[str, Any]],
    values: Values,
    errors: Errors,
    index: int | None,
    sets: ValueSets,
) -> list[Field]:
    out: list[Field] = []
    for item in items:
        widget = _widget(item)
        if widget is None:
            continue
        link_id = item["linkId"]
        node = Field(
            link_id=link_id,
            name=field_name(link_id, index),
            html_id=field_id(link_id, index),
            label=str(item.get("text") or link_id),
            widget=widget,
            required=bool(item.get("required")) and widget not in ("fieldset", "repeat-group"),
        )
        if widget == "fieldset":
            node.children = _fields(item.get("item", []), values, errors, index, sets)
        elif widget == "repeat-group":
            present = [i for i in _indices(item, values) if i < MAX_INSTANCES]
            present += [i for i in _indices(item, errors) if i not in present]
            count = min(MAX_INSTANCES, max(present, default=-1) + 1 + EXTRA_ROWS)
            node.instances = [
                _fields(item.get("item", []), values, errors, i, sets) for i in range(count)
            ]
        elif widget != "display":
            node.options = options(item, sets)
            node.values = list(values.get(node.name, []))
            node.error = errors.get(node.name)
        out.append(node)
    return out


# -- the transaction -----------------------------------------------------------------------


def submission_entries(
    questionnaire: dict[str, Any],
    response: dict[str, Any],
    patient_id: str,
    ctx: MappingContext,
) -> list[Entry]:
    """QuestionnaireResponse, its extracted Observations (SDC observation-based extraction, as
    the importer does) and a Provenance naming the practitioner, for one transaction.

    Every entry is about ``Patient/patient_id``; the Provenance targets only urn:uuids of the
    same Bundle; the spa Organization is named by identifier (a patient-scoped launch may not
    create it)."""
    ident = identifier(ctx, "intake", f"{patient_id}-{response['authored']}")
    qr = entry({**response, "identifier": ident}, ident)
    observations = extract.observations(questionnaire, qr.resource, qr, patient_id, ctx)
    org = organization(ctx)
    prov = provenance([qr, *observations], "symfhir intake form", patient_id, org, ctx)
    org_ref = organization_ref(ctx)
    for agent in prov.resource["agent"]:
        for key in ("who", "onBehalfOf"):
            if agent.get(key) == org.reference:
                agent[key] = org_ref
    author = response.get("author")
    if author:
        prov.resource["agent"].append(
            {
                "type": {"coding": [{"system": AGENT_TYPE, "code": "author"}]},
                "who": dict(author),
                "onBehalfOf": org_ref,
            }
        )
    prov.resource["entity"][0]["what"]["display"] = "intake form entered in symfhir"
    return [qr, *observations, prov]
