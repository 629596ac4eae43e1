"""The 30-day clock of a privacy request (policy §6; HIPAA 164.524(b)(2)): the due date, the
one extension, and which open requests are due soon or overdue. Pure: ``now`` is passed in.

Days are the spa's local calendar days (``mappings/spa.yaml`` timezone): a request received
at 23:30 in Chicago on 1 March is received on 1 March, whatever the server's clock says.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from symfhir.errors import PrivacyRequestError
from symfhir.privacy.model import PrivacyRequest
from symfhir.privacy.policy import PrivacyPolicy

#: Longest reason kept for an extension (it is sent to the requester).
MAX_REASON = 1000


def local_date(moment: datetime, zone: ZoneInfo) -> date:
    """The spa's calendar date at ``moment`` (which must carry an offset)."""
    if moment.tzinfo is None:
        raise ValueError("a moment without a UTC offset has no local date")
    return moment.astimezone(zone).date()


def due_date(received: datetime, policy: PrivacyPolicy, zone: ZoneInfo) -> date:
    """The date an answer is due: the local date of receipt plus ``response_days``."""
    return local_date(received, zone) + timedelta(days=policy.response_days)


def extended_due(request: PrivacyRequest, reason: str, policy: PrivacyPolicy) -> date:
    """The new due date after the one extension allowed (``extension_days`` later).

    Raises PrivacyRequestError when the request was already extended, is closed, or the
    reason is empty or too long.
    """
    if not request.is_open:
        raise PrivacyRequestError("a closed request cannot be extended")
    if request.extended_reason is not None:
        raise PrivacyRequestError("this request was already extended once; no second extension")
    text = reason.strip()
    if not text:
        raise PrivacyRequestError("an extension needs a reason (it is sent to the requester)")
    if len(text) > MAX_REASON:
        raise PrivacyRequestError(f"the extension's reason is over {MAX_REASON} characters")
    return request.due + timedelta(days=policy.extension_days)


def days_left(request: PrivacyRequest, now: datetime, zone: ZoneInfo) -> int:
    """Days from today (local) to the due date: 0 on the due date, negative once past it."""
    return (request.due - local_date(now, zone)).days


def is_overdue(request: PrivacyRequest, now: datetime, zone: ZoneInfo) -> bool:
    """Open and past its due date (the due date itself still counts as on time)."""
    return request.is_open and days_left(request, now, zone) < 0


def is_due_soon(
    request: PrivacyRequest, now: datetime, policy: PrivacyPolicy, zone: ZoneInfo
) -> bool:
    """Open, not overdue, and due within ``due_soon_days``."""
    return request.is_open and 0 <= days_left(request, now, zone) <= policy.due_soon_days
