"""A client's marketing contact on Patient.telecom, and the clients a phone number or e-mail
address belongs to (exact match after normalizing: E.164 phones, casefolded e-mails)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import phonenumbers

from symfhir.fhir import FhirClient
from symfhir.spa import load_spa

#: The spellings a phone may be stored under on the server; the search is a token search
#: (an exact string), so each is asked for and every answer is compared normalized.
_PHONE_FORMATS = (
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.NATIONAL,
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
)


def normalize_phone(value: str, region: str | None = None) -> str | None:
    """The number in E.164 (``+13375550101``), read in the spa's region when it has no
    country code; None for anything that is not a valid phone number."""
    try:
        parsed = phonenumbers.parse(value, region or load_spa().phone_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str) -> str | None:
    """The address trimmed and casefolded; None when it is not ``local@domain``."""
    value = value.strip().casefold()
    local, at, domain = value.partition("@")
    # No separator a FHIR search value gives a meaning to (",", "|", "$", "\\").
    if not at or not local or "." not in domain or "@" in domain or re.search(r"[\s,|$\\]", value):
        return None
    return value


def normalize(telecom: str, value: str) -> str | None:
    return normalize_phone(value) if telecom == "phone" else normalize_email(value)


def contact_of(patient: Mapping[str, Any], telecom: str) -> str | None:
    """The client's contact of ``telecom`` (email | phone), normalized: the first one in
    use (no ``period.end``), a mobile first for a phone; None when there is none."""
    points = [
        p
        for p in patient.get("telecom") or []
        if isinstance(p, Mapping)
        and p.get("system") == telecom
        and isinstance(p.get("value"), str)
        and not (p.get("period") or {}).get("end")
        and p.get("use") != "old"
    ]
    points.sort(key=lambda p: 0 if p.get("use") == "mobile" else 1)
    for point in points:
        value = normalize(telecom, str(point["value"]))
        if value:
            return value
    return None


def has_contact(patient: Mapping[str, Any], telecom: str, wanted: str) -> bool:
    """True when any of the client's ``telecom`` contacts normalizes to ``wanted``."""
    return any(
        isinstance(p, Mapping)
        and p.get("system") == telecom
        and isinstance(p.get("value"), str)
        and normalize(telecom, p["value"]) == wanted
        for p in patient.get("telecom") or []
    )


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
    normal = normalize(telecom, value)
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
