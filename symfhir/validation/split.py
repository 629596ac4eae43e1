"""Validate a QuestionnaireResponse item by item, so the shape cache can do its work.

A response's shape depends on how many answers and repeated groups a client gave, so
nearly every response is a shape never seen before and costs a full R4B validation.
R4B checks a response element by element — required ``status``/``linkId``, one
``value[x]`` per answer, the type of each value — with no rule that spans items. So
the response is valid exactly when the response without its items is valid and each
item, stripped of its child items and wrapped alone in a minimal response, is valid.
Those small units repeat across clients and hit the cache.

Responses repeat in shape more than this suggests (a spa's intake gives a few dozen shapes
per thousand clients), so once a response is accepted unit by unit its whole shape is
cached too, and the next response of that exact shape is checked in one walk.

Units whose answers are all coded (a coding, a boolean, a number: what value sets and
yes/no questions give) repeat not only in shape but in content — every client who answers
"Fitzpatrick IV" gives the same unit — so the verdict on a valid one is remembered by its
exact serialization. Units with free text or dates never enter that memo.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from symfhir.validation.fast import FastValidator
from symfhir.validation.structural import Problem

SPLIT_TYPES = frozenset({"QuestionnaireResponse"})


def _children(node: dict[str, Any]) -> list[Any] | None:
    """The ``item`` list of ``node``; None when absent. Raises ValueError when unsplittable."""
    if "item" not in node:
        return None
    items = node["item"]
    if type(items) is not list or not items or any(type(i) is not dict for i in items):
        raise ValueError("not a plain, non-empty list of items")
    return items


def _units(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        answers = item.get("answer")
        if "answer" in item and (
            type(answers) is not list or any(type(a) is not dict for a in answers)
        ):
            raise ValueError("answers are not a list of objects")
        nested = [a for a in answers if "item" in a] if answers else ()
        if "item" in item or nested:
            alone = {k: v for k, v in item.items() if k != "item"}
            if nested:
                alone["answer"] = [{k: v for k, v in a.items() if k != "item"} for a in answers]
        else:
            alone = item  # a question without child items is its own unit, as it is
        yield {"resourceType": "QuestionnaireResponse", "status": "completed", "item": [alone]}
        children = _children(item)
        if children:
            yield from _units(children)
        for answer in nested:
            children = _children(answer)
            if children:
                yield from _units(children)


_CODED_ANSWERS = frozenset({"valueCoding", "valueBoolean", "valueInteger", "valueDecimal"})
_MEMO_MAX = 8192


class _ValidUnits:
    """Serializations of coded units already found valid (bounded; cleared when full)."""

    def __init__(self) -> None:
        self.known: set[str] = set()

    def key(self, unit: dict[str, Any]) -> str | None:
        """The memo key of a coded unit; None for a unit with free text, dates or odd values."""
        (item,) = unit["item"]
        for answer in item.get("answer", ()):
            if not answer.keys() <= _CODED_ANSWERS:
                return None
        try:
            # As str: orjson's bytes keep a 4 KiB buffer each, 10x what the memo needs.
            return orjson.dumps(unit).decode()
        except TypeError:  # not plain JSON: let the validator say what is wrong
            return None

    def add(self, key: str) -> None:
        if len(self.known) >= _MEMO_MAX:
            self.known.clear()
        self.known.add(key)


_valid_units = _ValidUnits()


def _unit_problems(validator: FastValidator, unit: dict[str, Any]) -> list[Problem]:
    key = _valid_units.key(unit)
    if key is not None and key in _valid_units.known:
        return []
    problems = validator.validate_fhir_json(unit)
    if key is not None and not problems:
        _valid_units.add(key)
    return problems


def validate_split(validator: FastValidator, resource: dict[str, Any]) -> list[Problem]:
    """Problems in ``resource`` exactly as ``validator.validate_fhir_json`` reports them.

    Responses are checked unit by unit; on any failure, or a shape that cannot be
    split, the whole resource is validated so the problems are the real ones.
    """
    if resource.get("resourceType") not in SPLIT_TYPES:
        return validator.validate_fhir_json(resource)
    known = validator.known_shape_problems(resource)
    if known is not None:
        return known
    try:
        items = _children(resource)
        head = {k: v for k, v in resource.items() if k != "item"}
        if validator.validate_fhir_json(head):
            return validator.validate_fhir_json(resource)
        for unit in _units(items or []):
            if _unit_problems(validator, unit):
                return validator.validate_fhir_json(resource)
    except ValueError:
        return validator.validate_fhir_json(resource)
    # Accepted unit by unit, so accepted whole: later responses of this exact shape
    # (same items, same answer counts) take the one-walk path above.
    validator.learn_accepted(resource)
    return []
