"""FHIR date, dateTime and instant values as instants and as the spa's local calendar day.

Consents captured in the app carry a UTC date-time, imported ones a local date (or local
midnight with an offset): text comparison of the two orders them wrongly, and the first ten
characters of a UTC time are tomorrow's date for an evening in the Americas.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

#: Sorts before every real instant (absent or unreadable values).
EARLIEST = datetime.min.replace(tzinfo=UTC)


def instant_of(value: object, zone: tzinfo) -> datetime | None:
    """An aware datetime; a value without a time (or without an offset) is read in ``zone``,
    a partial date (YYYY, YYYY-MM) as the start of its year or month. None when absent or
    unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if len(text) in (4, 7):
        text = (text + "-01-01")[:10]
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def sort_key(value: object, zone: tzinfo) -> datetime:
    """``instant_of``, with EARLIEST for what has none: a key for newest-first ordering."""
    return instant_of(value, zone) or EARLIEST


def local_day(value: object, zone: tzinfo) -> str:
    """The spa's local date (YYYY-MM-DD) of a FHIR date or dateTime; "" when unreadable."""
    moment = instant_of(value, zone)
    return moment.astimezone(zone).date().isoformat() if moment else ""
