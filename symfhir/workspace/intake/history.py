"""SDC definition-based extraction of the intake's health history (pure).

hl7.org/fhir/uv/sdc/extraction.html#definition-based-extraction: an item (a group, or a
repeating question) carrying ``sdc-questionnaire-definitionExtract`` names the resource type
each instance (or answer) becomes; its children's ``item.definition`` (profile ``#`` element
path) say which element each answer fills. This module reads those markers and turns the
answers into the record model of the importer (``symfhir.model.health``), then maps them with
the importer's own functions (``symfhir.mapping.history``): the same resource, the same
business identifier for the same client and text. ``BINDINGS`` is the only place that knows
which element path is which model field; a resource type without a binding (the Patient of
the ``client`` group: the EHR owns demographics) is not extracted here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from symfhir.mapping import history
from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import Entry
from symfhir.model.fields import ShortText
from symfhir.model.health import Allergy, Medication, PriorTreatment
from symfhir.terminology import Terminology
from symfhir.workspace.intake.answers import CARD_NUMBER
from symfhir.workspace.intake.questionnaire import Errors, Values, field_name, instance_indices

DEFINITION_EXTRACT = (
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-definitionExtract"
)

ROW_NEEDS = "Required: this row has other answers."
DUPLICATE = "Already listed in another row."

Fact = BaseModel | str  # an Allergy, Medication, PriorTreatment… or a condition's text
# (fact, client key, intake date, Patient, the QuestionnaireResponse) → the resource's entry
Build = Callable[[Any, str, date, Entry, Entry, MappingContext], Entry]


@dataclass(frozen=True)
class Binding:
    """How the answers extracted as one resource type become the library's model and resource.

    ``fields``: element path (``item.definition`` after ``#``) → (model field, the terminology
    value set a coded answer is looked up in, or None). ``model`` None: the fact is the answer's
    text itself (one resource per answer of a repeating question)."""

    model: type[BaseModel] | None
    fields: Mapping[str, tuple[str, str | None]]
    build: Build


BINDINGS: dict[str, Binding] = {
    "AllergyIntolerance": Binding(
        Allergy,
        {
            "AllergyIntolerance.code.text": ("substance", None),
            "AllergyIntolerance.reaction.manifestation.text": ("reaction", None),
            "AllergyIntolerance.reaction.severity": ("severity", "allergy_severity"),
            "AllergyIntolerance.category": ("category", "allergy_category"),
        },
        lambda f, key, day, pat, _qr, ctx: history.allergy(f, key, day, pat, ctx),
    ),
    "MedicationStatement": Binding(
        Medication,
        {
            "MedicationStatement.medicationCodeableConcept.text": ("name", None),
            "MedicationStatement.category.coding": ("kind", "medication_kind"),
            "MedicationStatement.dosage.text": ("dose", None),
        },
        history.medication,
    ),
    "Condition": Binding(
        None,
        {"Condition.code.text": ("text", None)},
        lambda f, key, day, pat, _qr, ctx: history.condition(f, key, day, pat, ctx),
    ),
    "Procedure": Binding(
        PriorTreatment,
        {
            "Procedure.code.text": ("what", None),
            "Procedure.performedDateTime": ("when", None),
            "Procedure.location.display": ("where", None),
        },
        lambda f, key, _day, pat, _qr, ctx: history.prior_treatment(f, key, pat, ctx),
    ),
}

_TEXT: TypeAdapter[str] = TypeAdapter(ShortText)


@dataclass(frozen=True)
class Extracted:
    """One fact of the response, with the resource type its item's marker names."""

    resource_type: str
    fact: Fact


def extracted_type(item: dict[str, Any]) -> str | None:
    """The resource type an item's definitionExtract marker names (e.g. ``AllergyIntolerance``
    for ``…/StructureDefinition/AllergyIntolerance``), or None without a marker."""
    for ext in item.get("extension", []):
        if ext.get("url") != DEFINITION_EXTRACT:
            continue
        canonical = ext.get("valueCanonical")  # the marker's R5 form
        for sub in ext.get("extension", []):
            if sub.get("url") == "definition":
                canonical = sub.get("valueCanonical") or sub.get("valueUri")
        if isinstance(canonical, str) and canonical:
            return canonical.split("|")[0].rstrip("/").rsplit("/", 1)[-1]
    return None


def extract_history(
    questionnaire: dict[str, Any],
    response: dict[str, Any] | None,
    ctx: MappingContext,
    values: Values | None = None,
) -> tuple[list[Extracted], Errors]:
    """The facts of ``response``'s items marked for definition-based extraction, in order, and
    the errors of rows that cannot become one (field name → message; with ``values``, the
    posted form, the names carry the form's row numbers). A fact listed twice is kept once."""
    facts: list[Extracted] = []
    errors: Errors = {}
    seen: set[tuple[str, str]] = set()
    context = {"today": ctx.today, "terminology": ctx.terminology, "card_numbers": "reject"}
    for kind, q_item, ordinal, answers in _marked(
        questionnaire.get("item", []), (response or {}).get("item", [])
    ):
        binding = BINDINGS[kind]
        row = None if q_item.get("type") != "group" else _row_number(q_item, ordinal, values)
        fact, problems = _fact(binding, q_item, answers, ctx.terminology, context)
        for link_id, message in problems.items():
            errors.setdefault(field_name(link_id, row), message)
        if fact is None:
            continue
        key = (kind, _identity(fact))
        if key in seen:
            if row is not None:
                errors.setdefault(field_name(_key_link(binding, q_item), row), DUPLICATE)
            continue
        seen.add(key)
        facts.append(Extracted(kind, fact))
    return facts, errors


def history_entries(
    facts: list[Extracted],
    client_key: str,
    intake_date: date,
    patient: Entry,
    response: Entry,
    ctx: MappingContext,
) -> list[Entry]:
    """The entries of ``facts`` as the importer maps them, for the client ``client_key``."""
    return [
        BINDINGS[f.resource_type].build(f.fact, client_key, intake_date, patient, response, ctx)
        for f in facts
    ]


# -- walking the response --------------------------------------------------------------------

Answers = dict[str, list[dict[str, Any]]]  # linkId → answers, within one instance


def _marked(
    q_items: list[dict[str, Any]], r_items: list[dict[str, Any]]
) -> Iterator[tuple[str, dict[str, Any], int, Answers]]:
    """(resource type, marked item, ordinal, answers by linkId) per instance (group) or per
    answer (question) of each marked item with a binding."""
    by_link = {q["linkId"]: q for q in q_items}
    ordinals: dict[str, int] = {}
    for r_item in r_items:
        q_item = by_link.get(str(r_item.get("linkId")))
        if q_item is None:
            continue
        kind = extracted_type(q_item)
        if kind not in BINDINGS:
            yield from _marked(q_item.get("item", []), r_item.get("item", []))
            continue
        if q_item.get("type") == "group":
            ordinal = ordinals.get(q_item["linkId"], 0)
            ordinals[q_item["linkId"]] = ordinal + 1
            yield kind, q_item, ordinal, _leaf_answers(r_item.get("item", []))
        else:
            for ordinal, answer in enumerate(r_item.get("answer", [])):
                yield kind, q_item, ordinal, {q_item["linkId"]: [answer]}


def _leaf_answers(r_items: list[dict[str, Any]]) -> Answers:
    out: Answers = {}
    for r_item in r_items:
        if r_item.get("answer"):
            out.setdefault(str(r_item["linkId"]), []).extend(r_item["answer"])
        out.update(_leaf_answers(r_item.get("item", [])))
    return out


def _leaves(q_item: dict[str, Any]) -> list[dict[str, Any]]:
    if q_item.get("type") != "group":
        return [q_item]
    return [leaf for child in q_item.get("item", []) for leaf in _leaves(child)]


def _row_number(q_item: dict[str, Any], ordinal: int, values: Values | None) -> int:
    """The form's row number of instance ``ordinal`` (rows left empty are not in the response)."""
    if values is not None:
        rows = instance_indices(q_item, values)
        if ordinal < len(rows):
            return rows[ordinal]
    return ordinal


def _path(item: dict[str, Any]) -> str:
    return str(item.get("definition") or "").partition("#")[2]


def _key_link(binding: Binding, q_item: dict[str, Any]) -> str:
    """The linkId of the answer that names the fact (the first bound element)."""
    first = next(iter(binding.fields))
    return next((leaf["linkId"] for leaf in _leaves(q_item) if _path(leaf) == first), "")


# -- answers → the record model --------------------------------------------------------------


def _fact(
    binding: Binding,
    q_item: dict[str, Any],
    answers: Answers,
    terminology: Terminology,
    context: dict[str, Any],
) -> tuple[Fact | None, dict[str, str]]:
    """The model value of one instance, or None and the problems by linkId."""
    data: dict[str, Any] = {}
    link_of: dict[str, str] = {}
    for leaf in _leaves(q_item):
        bound = binding.fields.get(_path(leaf))
        if bound is None:
            continue
        field, valueset = bound
        link_of[field] = leaf["linkId"]
        given = [_value(a, valueset, terminology) for a in answers.get(leaf["linkId"], [])]
        if given:
            data[field] = given[0]
    try:
        if binding.model is None:
            return _TEXT.validate_python(data.get("text"), context=context), {}
        return binding.model.model_validate(data, context=context), {}
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "text"
            link_id = link_of.get(field) or _key_link(binding, q_item)
            problems.setdefault(link_id, _message(error))
        return None, problems


def _value(answer: dict[str, Any], valueset: str | None, terminology: Terminology) -> Any:
    """An answer as the model takes it: text, a date string, or a code table key."""
    for key, raw in answer.items():
        if not key.startswith("value"):
            continue
        if key == "valueCoding" and isinstance(raw, dict):
            if valueset:
                for name in sorted(terminology.keys(valueset)):
                    coding = terminology.coding(valueset, name)
                    if (coding.get("system"), coding.get("code")) == (
                        raw.get("system"),
                        raw.get("code"),
                    ):
                        return name
            return raw.get("code")
        return raw if isinstance(raw, str) else str(raw)
    return None


def _message(error: Any) -> str:
    if error.get("type") == "missing" or error.get("input") is None:
        return ROW_NEEDS
    text = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    if "card number" in text:
        return CARD_NUMBER
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _identity(fact: Fact) -> str:
    """What makes two rows the same fact (as the identifiers hash it: trimmed, any case)."""
    if isinstance(fact, str):
        return fact.strip().casefold()
    if isinstance(fact, PriorTreatment):
        return "\x1f".join(p.strip().casefold() for p in (fact.what, fact.when or ""))
    first = next(iter(type(fact).model_fields))
    return str(getattr(fact, first)).strip().casefold()
