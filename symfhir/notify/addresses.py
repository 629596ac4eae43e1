"""The one normal form of an e-mail address or a phone number, so that a rate limit or a
lookup sees ``Ann@Example.com`` and ``ann@example.com`` (or ``(337) 555-0101`` and
``+13375550101``) as the same address."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from symfhir.errors import RecordError

CHANNELS = ("email", "sms")


def normalize_email(address: str) -> str:
    """The address lower-cased (the local part too: no spa's mail provider tells case apart,
    and a rate limit must not be dodged by it). Raises RecordError, never quoting it."""
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized.lower()
    except (EmailNotValidError, AttributeError):
        raise RecordError("address", "email", "not a valid e-mail address") from None


def normalize_phone(number: str, region: str | None = None) -> str:
    """The number in E.164 (national numbers read in ``region``, default the spa's).
    Raises RecordError, never quoting it."""
    if region is None:
        from symfhir.spa import load_spa

        region = load_spa().phone_region
    try:
        parsed = phonenumbers.parse(number, region)
    except (phonenumbers.NumberParseException, TypeError):
        raise RecordError("address", "phone", "not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise RecordError("address", "phone", "not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def channel_of(address: str) -> str:
    """``email`` for anything with an ``@``, else ``sms``."""
    return "email" if "@" in address else "sms"


def normalize(channel: str, address: str) -> str:
    """The normal form of ``address`` on ``channel`` (``email`` or ``sms``). Raises RecordError."""
    if channel == "email":
        return normalize_email(address)
    if channel == "sms":
        return normalize_phone(address)
    raise RecordError("address", "channel", "must be email or sms")
