"""The spa client: identity, contact details, emergency contact, guardian, physician."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

from symfhir.cardnumbers import luhn_valid
from symfhir.model.fields import (
    Email,
    Identifier,
    PastDate,
    Phone,
    ShortText,
    code_key,
)

PhoneUse = Literal["mobile", "home", "work"]

# The NPI check digit is the Luhn digit of the number prefixed with 80840 (the card-issuer
# prefix of US health applications), per the CMS NPI check-digit standard.
NPI_PREFIX = "80840"


def _npi(value: Any) -> Any:
    if isinstance(value, str):
        if not re.fullmatch(r"[12]\d{9}", value):
            raise ValueError("an NPI is 10 digits starting with 1 or 2")
        if not luhn_valid(NPI_PREFIX + value):
            raise ValueError("not a valid NPI (its check digit does not match)")
    return value


NPI = Annotated[Identifier, AfterValidator(_npi)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Address(_Model):
    lines: list[ShortText] = []
    city: ShortText | None = None
    state: ShortText | None = None
    postal_code: ShortText | None = None
    country: ShortText = "US"


class ContactPerson(_Model):
    """An emergency contact or a guardian."""

    name: ShortText
    relationship: code_key("relationship")  # type: ignore[valid-type]
    phone: Phone | None = None
    email: Email | None = None


class Physician(_Model):
    """The client's own physician, with whom records may be shared on consent."""

    name: ShortText
    organization: ShortText | None = None
    phone: Phone | None = None
    email: Email | None = None
    npi: NPI | None = None


class Client(_Model):
    client_id: Identifier
    given_name: ShortText
    family_name: ShortText
    birth_date: PastDate
    sex: code_key("sex") | None = None  # type: ignore[valid-type]
    gender_identity: ShortText | None = None
    email: Email | None = None
    phones: dict[PhoneUse, Phone] = {}
    address: Address | None = None
    preferred_language: code_key("language") | None = None  # type: ignore[valid-type]
    emergency_contact: ContactPerson | None = None
    guardian: ContactPerson | None = None
    physician: Physician | None = None
