"""The one normal form of e-mail addresses and phone numbers (symfhir/contacts.py)."""

from __future__ import annotations

import pytest

from symfhir.contacts import (
    channel_of,
    contact_of,
    contacts_of,
    normalize,
    normalize_email,
    normalize_phone,
)
from symfhir.errors import RecordError

pytestmark = pytest.mark.unit


def test_email_is_lower_cased_whole() -> None:
    assert normalize_email(" Ann.Q@Example.COM ") == "ann.q@example.com"


def test_phone_is_e164_in_the_spas_region() -> None:
    assert normalize_phone("(337) 555-0142") == "+13375550142"
    assert normalize_phone("020 7946 0018", "GB") == "+442079460018"


@pytest.mark.parametrize(
    ("kind", "value", "field"),
    [("email", "avery", "email"), ("sms", "12", "phone"), ("phone", "call me", "phone")],
)
def test_errors_name_the_record_and_field_never_the_value(kind, value, field) -> None:
    with pytest.raises(RecordError) as caught:
        normalize(kind, value, record="privacy request")
    assert (caught.value.record, caught.value.field) == ("privacy request", field)
    assert value not in str(caught.value)


def test_unknown_channel_is_refused() -> None:
    with pytest.raises(RecordError, match="channel"):
        normalize("fax", "+13375550142")


def test_channel_of() -> None:
    assert channel_of("a@example.com") == "email"
    assert channel_of("+13375550142") == "sms"


def test_contacts_of_a_patient() -> None:
    patient = {
        "telecom": [
            {"system": "phone", "value": "(337) 555-0101", "use": "home"},
            {"system": "phone", "value": "337.555.0102", "use": "mobile"},
            {"system": "phone", "value": "(337) 555-0103", "use": "old"},
            {"system": "phone", "value": "not a number"},
            {"system": "email", "value": "Avery.Q@Example.com"},
        ]
    }
    # A mobile first; an old number is never the one to use, but still the client's.
    assert contact_of(patient, "phone") == "+13375550102"
    assert contacts_of(patient, "phone") == {"+13375550101", "+13375550102", "+13375550103"}
    assert contact_of(patient, "email") == "avery.q@example.com"
    assert contact_of({}, "email") is None
