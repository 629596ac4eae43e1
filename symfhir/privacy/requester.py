"""What a requester typed, checked and normalized before a request is written: name, birth date,
e-mail, phone, agent, details and the kind's inputs. Pure; errors name the field and the reason
and never quote the value (RecordError)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

from symfhir.cardnumbers import has_card_number
from symfhir.contacts import normalize_email, normalize_phone
from symfhir.errors import RecordError
from symfhir.privacy.model import KINDS, Requester
from symfhir.privacy.task import RESERVED_INPUTS

RECORD = "privacy request"
MAX_NAME = 200
MAX_DETAILS = 4000
MAX_INPUTS = 20
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_INPUT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


def _text(field: str, value: str | None, limit: int, *, required: bool = False) -> str | None:
    text = " ".join((value or "").split()) if field != "details" else (value or "").strip()
    if not text:
        if required:
            raise RecordError(RECORD, field, "is required")
        return None
    if len(text) > limit:
        raise RecordError(RECORD, field, f"is longer than {limit} characters")
    if _CONTROL.search(text):
        raise RecordError(RECORD, field, "holds control characters")
    if has_card_number(text):
        raise RecordError(RECORD, field, "holds what looks like a payment card number")
    return text


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise RecordError(RECORD, "kind", f"must be one of {', '.join(KINDS)}")
    return kind


def check_requester(requester: Requester, *, today: date, phone_region: str) -> Requester:
    """The requester with each field checked and normalized. Raises RecordError naming the
    first bad field: a name is required, a birth date is in the past (after 1900)."""
    name = _text("name", requester.name, MAX_NAME, required=True)
    birth = requester.birth_date
    if birth is not None and not date(1900, 1, 1) <= birth <= today:
        raise RecordError(RECORD, "birth_date", "must be a past date after 1900")
    return Requester(
        name=str(name),
        birth_date=birth,
        email=normalize_email(requester.email, record=RECORD) if requester.email else None,
        phone=(
            normalize_phone(requester.phone, phone_region, record=RECORD)
            if requester.phone
            else None
        ),
        agent=_text("agent", requester.agent, MAX_NAME),
    )


def check_details(details: str) -> str:
    return _text("details", details, MAX_DETAILS) or ""


def check_inputs(inputs: Mapping[str, str]) -> dict[str, str]:
    """The kind's own inputs: at most 20, names lower-case words (not a reserved name),
    values free text checked like the details."""
    if len(inputs) > MAX_INPUTS:
        raise RecordError(RECORD, "inputs", f"more than {MAX_INPUTS} inputs")
    checked = {}
    for name, value in inputs.items():
        if not _INPUT_NAME.match(name) or name in RESERVED_INPUTS:
            raise RecordError(RECORD, "inputs", "an input name is not allowed")
        checked[name] = _text(f"inputs.{name}", value, MAX_DETAILS, required=True) or ""
    return checked
