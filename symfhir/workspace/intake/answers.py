"""One item's posted answers, checked against the item: required, type, allowed answers."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from symfhir.cardnumbers import CARD_MIN_LENGTH, has_card_number
from symfhir.workspace.intake.questionnaire import ValueSets, options

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
CARD_NUMBER = "Remove the payment card number: card numbers are never stored."


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
    # Every free-text answer, contact and guardian ones included: the policy stores no card
    # number anywhere, and an open-choice "other" answer comes here too.
    if len(value) >= CARD_MIN_LENGTH and has_card_number(value):
        return {}, CARD_NUMBER
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
