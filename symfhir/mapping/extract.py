"""SDC observation-based extraction: intake QuestionnaireResponse → Observations.

Follows hl7.org/fhir/uv/sdc/extraction.html (observation-based): an item marked
with ``sdc-questionnaire-observationExtract`` yields one Observation per answer;
``item.code`` becomes ``Observation.code``; subject and effective time come from
the response; ``derivedFrom`` points at the response; an unanswered item yields
nothing. The rules are driven by the Questionnaire (data), not by this code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from symfhir.mapping.context import MappingContext
from symfhir.mapping.derived import Derived
from symfhir.mapping.refs import Entry, digest, entry, identifier

OBSERVATION_EXTRACT = (
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-observationExtract"
)
CATEGORY_EXTENSIONS = (
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-observation-extract-category",
)
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"

# answer[x] → Observation.value[x]
_VALUE = {
    "valueCoding": lambda v: ("valueCodeableConcept", {"coding": [v], "text": v.get("display")}),
    "valueString": lambda v: ("valueString", v),
    "valueBoolean": lambda v: ("valueBoolean", v),
    "valueInteger": lambda v: ("valueInteger", v),
    "valueDecimal": lambda v: ("valueQuantity", {"value": v}),
    "valueDate": lambda v: ("valueDateTime", v),
    "valueDateTime": lambda v: ("valueDateTime", v),
    "valueQuantity": lambda v: ("valueQuantity", v),
}


def _extension_value(item: dict[str, Any], urls: tuple[str, ...]) -> Any:
    for ext in item.get("extension", []):
        if ext.get("url") in urls:
            for key, value in ext.items():
                if key.startswith("value"):
                    return value
    return None


def _extracts(item: dict[str, Any], inherited: bool) -> bool:
    flag = _extension_value(item, (OBSERVATION_EXTRACT,))
    return inherited if flag is None else bool(flag)


def _walk(
    q_items: list[dict[str, Any]], r_items: list[dict[str, Any]], inherited: bool
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    by_link = {}
    for q_item in q_items:
        by_link[q_item["linkId"]] = q_item
    for r_item in r_items:
        q_item = by_link.get(r_item["linkId"])
        if q_item is None:
            continue
        flag = _extracts(q_item, inherited)
        if "item" in r_item:
            yield from _walk(q_item.get("item", []), r_item["item"], flag)
        if flag and q_item.get("code") and r_item.get("answer"):
            yield q_item, r_item


def _category(q_item: dict[str, Any], ctx: MappingContext) -> list[dict[str, Any]]:
    value = _extension_value(q_item, CATEGORY_EXTENSIONS)
    if isinstance(value, dict):
        return [value]
    by_item = ctx.terminology.valuesets.get("observation_item_category", {})
    key = by_item.get(q_item["linkId"], {}).get("code", "survey")
    return [{"coding": [{"system": CATEGORY_SYSTEM, "code": key}]}]


@dataclass(frozen=True)
class _Step:
    """One Questionnaire item as the extraction walk meets it."""

    item: dict[str, Any]
    parent: str | None  # linkId of the enclosing item, None at the top
    extracts: bool  # the observationExtract flag, inheritance applied


class _Plan:
    """Each item of a Questionnaire by linkId, with its extraction flag worked out once.

    linkIds are unique within a Questionnaire (invariant que-2), so a response item is
    found by linkId alone; ``parent`` keeps the walk's rule that an item only counts
    under the item it belongs to. The plan is built from the Questionnaire once, not
    walked again for every client's response.
    """

    def __init__(self, questionnaire: dict[str, Any]) -> None:
        self.steps: dict[str, _Step] = {}
        self.unique = True
        self.root_flag = _extracts(questionnaire, False)
        self._add(questionnaire.get("item", []), None, self.root_flag)

    def _add(self, items: list[dict[str, Any]], parent: str | None, inherited: bool) -> None:
        for item in items:
            link = item["linkId"]
            if link in self.steps:
                self.unique = False
            flag = _extracts(item, inherited)
            self.steps[link] = _Step(item, parent, flag)
            self._add(item.get("item", []), link, flag)

    def walk(
        self, r_items: list[dict[str, Any]], parent: str | None
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        steps = self.steps
        for r_item in r_items:
            step = steps.get(r_item["linkId"])
            if step is None or step.parent != parent:
                continue
            if "item" in r_item:
                yield from self.walk(r_item["item"], r_item["linkId"])
            q_item = step.item
            if step.extracts and q_item.get("code") and r_item.get("answer"):
                yield q_item, r_item


_plans: Derived[dict[str, Any], _Plan] = Derived(_Plan, limit=8)


def _pairs(
    questionnaire: dict[str, Any], response: dict[str, Any]
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(Questionnaire item, response item) for each answered item marked for extraction."""
    plan = _plans(questionnaire)
    if plan.unique:
        return plan.walk(response.get("item", []), None)
    # Duplicate linkIds break the Questionnaire's own rules: match level by level.
    return _walk(questionnaire.get("item", []), response.get("item", []), plan.root_flag)


def observations(
    questionnaire: dict[str, Any],
    response: dict[str, Any],
    response_entry: Entry,
    client_id: str,
    ctx: MappingContext,
) -> list[Entry]:
    """Observations extracted from ``response``: one per answer of each marked item."""
    out: list[Entry] = []
    for q_item, r_item in _pairs(questionnaire, response):
        for answer in r_item["answer"]:
            kind, raw = next((k, v) for k, v in answer.items() if k.startswith("value"))
            convert = _VALUE.get(kind)
            if convert is None:
                continue
            value_key, value = convert(raw)
            if value_key == "valueCodeableConcept" and value["text"] is None:
                del value["text"]
            answer_key = raw.get("code", "") if isinstance(raw, dict) else str(raw)
            ident = identifier(
                ctx,
                "observation",
                digest(client_id, response["authored"], q_item["linkId"], answer_key),
            )
            resource: dict[str, Any] = {
                "resourceType": "Observation",
                "identifier": [ident],
                "status": "final",
                "category": _category(q_item, ctx),
                "code": {"coding": list(q_item["code"]), "text": q_item.get("text")},
                "subject": response["subject"],
                "effectiveDateTime": response["authored"],
                "performer": [response["author"]] if response.get("author") else [],
                value_key: value,
                "derivedFrom": [response_entry.reference],
            }
            if resource["code"]["text"] is None:
                del resource["code"]["text"]
            if not resource["performer"]:
                del resource["performer"]
            out.append(entry(resource, ident))
    return out
