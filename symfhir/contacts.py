"""E-mail addresses and phone numbers: the one normal form of each, and the clients a contact
belongs to.

One normal form everywhere — a verification code's rate limit, matching a privacy request to
a client, a marketing opt-out by text — so that ``Ann@Example.com`` and ``ann@example.com``,
or ``(337) 555-0101`` and ``+13375550101``, are the same contact. Errors name the field and
never quote the value (no PHI in messages).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from symfhir.errors import RecordError

if TYPE_CHECKING:
    from symfhir.fhir import FhirClient

#: Where a verification code or a message goes.
CHANNELS = ("email", "sms")

#: The spellings a phone may be stored under on a server: its token search is an exact
#: string, so each is asked for and every answer compared normalized.
_PHONE_FORMATS = (
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
)


def normalize_email(value: str, *, record: str = "address") -> str:
    """The address validated and lower-cased (the local part too: no spa's mail provider
    tells case apart, and a rate limit must not be dodged by it). Raises RecordError."""
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except (EmailNotValidError, AttributeError):
        raise RecordError(record, "email", "is not a valid e-mail address") from None


def normalize_phone(value: str, region: str | None = None, *, record: str = "address") -> str:
    """The number in E.164; a national number is read in ``region`` (default the spa's).
    Raises RecordError."""
    if region is None:
        from symfhir.spa import load_spa

        region = load_spa().phone_region
    try:
        parsed = phonenumbers.parse(value, region)
    except (phonenumbers.NumberParseException, TypeError):
        raise RecordError(record, "phone", "is not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise RecordError(record, "phone", "is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize(kind: str, value: str, *, record: str = "address") -> str:
    """The normal form of ``value`` as an ``email``, or as a phone (``sms``/``phone``).
    Raises RecordError."""
    if kind == "email":
        return normalize_email(value, record=record)
    if kind in ("sms", "phone"):
        return normalize_phone(value, record=record)
    raise RecordError(record, "channel", "must be email, sms or phone")


def normal_or_none(kind: str, value: str) -> str | None:
    """The normal form of ``value``, or None when it is not a valid one."""
    try:
        return normalize(kind, value)
    except RecordError:
        return None


def channel_of(address: str) -> str:
    """``email`` for anything with an ``@``, else ``sms``."""
    return "email" if "@" in address else "sms"


def _points(patient: Mapping[str, Any], telecom: str) -> list[Mapping[str, Any]]:
    return [
        p
        for p in patient.get("telecom") or []
        if isinstance(p, Mapping) and p.get("system") == telecom and isinstance(p.get("value"), str)
    ]


def contact_of(patient: Mapping[str, Any], telecom: str) -> str | None:
    """The client's ``telecom`` contact (``email`` | ``phone``), normalized: the first one in
    use (no ``period.end``, not ``old``), a mobile first for a phone; None when none is."""
    points = [
        p
        for p in _points(patient, telecom)
        if not (p.get("period") or {}).get("end") and p.get("use") != "old"
    ]
    points.sort(key=lambda p: 0 if p.get("use") == "mobile" else 1)
    for point in points:
        value = normal_or_none(telecom, str(point["value"]))
        if value:
            return value
    return None


def contacts_of(patient: Mapping[str, Any], telecom: str) -> set[str]:
    """Every ``telecom`` contact of the client, normalized (ones no one could type, dropped)."""
    found = (normal_or_none(telecom, str(p["value"])) for p in _points(patient, telecom))
    return {value for value in found if value}


def has_contact(patient: Mapping[str, Any], telecom: str, wanted: str) -> bool:
    """True when any of the client's ``telecom`` contacts normalizes to ``wanted``."""
    return wanted in contacts_of(patient, telecom)


def _spellings(telecom: str, normal: str, given: str) -> list[str]:
    if telecom == "email":
        # The server's token search is exact, case included: the address as given, too.
        return list(dict.fromkeys([normal, given.strip()]))
    parsed = phonenumbers.parse(normal)
    national = phonenumbers.national_significant_number(parsed)
    forms = [phonenumbers.format_number(parsed, f) for f in _PHONE_FORMATS]
    return list(dict.fromkeys([*forms, national, f"{national[:3]}-{national[3:6]}-{national[6:]}"]))


def patients_with_contact(client: FhirClient, telecom: str, value: str) -> list[str]:
    """The ids of the Patients whose ``telecom`` contact is ``value`` after normalizing
    (searched by every usual spelling, then compared normalized); [] for a value that is not
    a phone number or e-mail address."""
    normal = normal_or_none(telecom, value)
    if normal is None:
        return []
    found: dict[str, None] = {}
    params = [(telecom, ",".join(_spellings(telecom, normal, value))), ("_count", "50")]
    for patient in client.search("Patient", params):
        pid = patient.get("id")
        if patient.get("resourceType") != "Patient" or not isinstance(pid, str):
            continue
        if has_contact(patient, telecom, normal):
            found[pid] = None
    return list(found)
