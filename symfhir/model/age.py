"""Whether a client is an adult, a minor, or of unknown age on a given day: one rule for the
import, the intake form and consent capture (privacy policy §9: services are for adults; a
minor only with a parent's or guardian's consent).

A birth date may be partial (``1990``, ``2008-06``), as FHIR and people allow: it decides
the status when every day it can mean gives the same answer (``1980`` is an adult today),
and is ``unknown`` otherwise, as is an absent or unreadable one. Unknown is never adult.
"""

from __future__ import annotations

import calendar
import re
from datetime import date
from typing import Literal

ADULT_AGE = 18

AgeStatus = Literal["adult", "minor", "unknown"]
ADULT: AgeStatus = "adult"
MINOR: AgeStatus = "minor"
UNKNOWN: AgeStatus = "unknown"

_FHIR_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def age_on(birth_date: date, day: date) -> int:
    years = day.year - birth_date.year
    return years - ((day.month, day.day) < (birth_date.month, birth_date.day))


def birth_range(birth: date | str | None) -> tuple[date, date] | None:
    """The first and last day a birth date (a date, or FHIR text YYYY[-MM[-DD]]) can mean;
    None when absent or unreadable."""
    if isinstance(birth, date):
        return birth, birth
    if not isinstance(birth, str):
        return None
    match = _FHIR_DATE.fullmatch(birth.strip())
    if not match:
        return None
    year, month, day = int(match[1]), match[2], match[3]
    try:
        if day is not None:
            exact = date(year, int(month), int(day))
            return exact, exact
        if month is not None:
            last = calendar.monthrange(year, int(month))[1]
            return date(year, int(month), 1), date(year, int(month), last)
        return date(year, 1, 1), date(year, 12, 31)
    except ValueError:
        return None


def age_status(birth: date | str | None, day: date) -> AgeStatus:
    """adult, minor or unknown on ``day`` (see the module docstring)."""
    span = birth_range(birth)
    if span is None:
        return UNKNOWN
    first, last = span
    if age_on(last, day) >= ADULT_AGE:  # even born on the last day it can mean
        return ADULT
    if age_on(first, day) < ADULT_AGE:  # even born on the first day
        return MINOR
    return UNKNOWN


def youngest_age(birth: date | str | None, day: date) -> int | None:
    """The age on ``day`` of one born on the last day ``birth`` can mean (the age that
    decides the status); None when the status is unknown."""
    span = birth_range(birth)
    if span is None or age_status(birth, day) == UNKNOWN:
        return None
    return age_on(span[1], day)
