"""Field types shared by the record model: coded keys, free text, phones, emails, dates.

Validators read their context (``today``, ``terminology``, ``card_numbers``)
from pydantic's validation context so the model stays pure: no clock reads, no
file reads beyond the cached code tables.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from typing import Annotated, Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BeforeValidator, ValidationInfo

from symfhir.cardnumbers import CARD_MIN_LENGTH, has_card_number, mask_card_numbers
from symfhir.terminology import Terminology, load_terminology

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_KEY_SPACES = re.compile(r"[\s\-/]+")
SHORT_TEXT_MAX = 500
LONG_TEXT_MAX = 20_000


def context(info: ValidationInfo) -> dict[str, Any]:
    return info.context or {}


def terminology_of(info: ValidationInfo) -> Terminology:
    return context(info).get("terminology") or load_terminology()


def today_of(info: ValidationInfo) -> date:
    today = context(info).get("today")
    if today is None:
        raise ValueError("validation needs a 'today' date in its context")
    return today


def normalize_key(value: Any) -> Any:
    """``"Left Oblique"`` → ``left_oblique``; the code tables use such keys."""
    if isinstance(value, str):
        return _normalized(value)
    return value


@lru_cache(maxsize=4096)
def _normalized(text: str) -> str:
    # Coded cells repeat ("female", "IV", "given"): each spelling is worked out once.
    return _KEY_SPACES.sub("_", text.strip()).lower()


def code_key(valueset: str, *, keep_case: bool = False) -> Any:
    """An Annotated str that must be a key of ``valueset`` in the terminology."""

    def check(value: str, info: ValidationInfo) -> str:
        terms = terminology_of(info)
        if not terms.has(valueset, value):
            allowed = ", ".join(sorted(terms.keys(valueset)))
            raise ValueError(f"unknown {valueset} code; allowed: {allowed}")
        return value

    before = BeforeValidator(_strip if keep_case else normalize_key)
    return Annotated[str, before, AfterValidator(check)]


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _clean_text(value: Any, info: ValidationInfo, limit: int) -> Any:
    if not isinstance(value, str):
        return value
    # Runs on every free-text cell: the checks below are skipped only when they cannot
    # find anything (no non-printable character, fewer characters than a card number).
    if not value.isprintable():
        value = _CONTROL.sub("", value)
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if len(value) > limit:
        raise ValueError(f"too long ({len(value)} characters, at most {limit})")
    if len(value) >= CARD_MIN_LENGTH and has_card_number(value):
        if context(info).get("card_numbers") != "mask":
            raise ValueError(
                "contains a payment card number; card numbers are never stored "
                "(remove it, or run with --mask-card-numbers)"
            )
        value, count = mask_card_numbers(value)
        masked = context(info).get("masked")
        if masked is not None:
            masked.append(count)
    return value


def _short_text(value: Any, info: ValidationInfo) -> Any:
    return _clean_text(value, info, SHORT_TEXT_MAX)


def _long_text(value: Any, info: ValidationInfo) -> Any:
    return _clean_text(value, info, LONG_TEXT_MAX)


# Free text is where a card number could hide, so it is checked (and masked on request).
ShortText = Annotated[str, BeforeValidator(_short_text)]
LongText = Annotated[str, BeforeValidator(_long_text)]


def _identifier(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}", value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-'")
    return value


Identifier = Annotated[str, BeforeValidator(_identifier)]


def _phone(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str):
        return value
    region = context(info).get("phone_region", "US")
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    # The spa's own region first: is_valid_number tries every region sharing the country
    # code (25 for +1) and was the costliest check of reading a client; same verdict.
    if not (
        phonenumbers.is_valid_number_for_region(parsed, region)
        or phonenumbers.is_valid_number(parsed)
    ):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


Phone = Annotated[str, BeforeValidator(_phone)]


def _email(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValueError("not a valid email address") from None


Email = Annotated[str, BeforeValidator(_email)]


def _past_date(value: date, info: ValidationInfo) -> date:
    if value > today_of(info):
        raise ValueError("is in the future")
    if value.year < 1900:
        raise ValueError("is before 1900")
    return value


PastDate = Annotated[date, AfterValidator(_past_date)]

_PARTIAL_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def _partial_date(value: Any, info: ValidationInfo) -> Any:
    """``2024``, ``2024-06`` or ``2024-06-30``: clients remember treatments roughly."""
    if isinstance(value, date):
        value = value.isoformat()
    if not isinstance(value, str):
        return value
    value = value.strip()
    match = _PARTIAL_DATE.fullmatch(value)
    if not match:
        raise ValueError("must be YYYY, YYYY-MM or YYYY-MM-DD")
    year, month, day = match.groups()
    try:
        first = date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        raise ValueError("is not a real date") from None
    _past_date(first, info)
    return value


PartialDate = Annotated[str, BeforeValidator(_partial_date)]
