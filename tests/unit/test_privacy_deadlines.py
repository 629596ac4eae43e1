"""The 30-day clock: the due date in the spa's local days, one extension only, due soon and
overdue; and the settings file it reads."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from symfhir.errors import ConfigError, PrivacyRequestError
from symfhir.privacy.deadlines import (
    days_left,
    due_date,
    extended_due,
    is_due_soon,
    is_overdue,
)
from symfhir.privacy.model import COMPLETED, PrivacyRequest, Requester
from symfhir.privacy.policy import load_policy, parse_policy

ZONE = ZoneInfo("America/Chicago")
POLICY = parse_policy(
    {
        "response_days": 30,
        "extension_days": 30,
        "due_soon_days": 7,
        "privacy_officer_email": "privacy@example.com",
    }
)


def _request(due: date, **changes: object) -> PrivacyRequest:
    request = PrivacyRequest(
        None, "access", Requester("Sam Doe"), datetime(2026, 11, 1, 9, tzinfo=ZONE), due
    )
    return replace(request, **changes)


def test_the_bundled_settings_promise_30_days() -> None:
    policy = load_policy()
    assert policy.response_days == 30
    assert policy.extension_days == 30
    assert policy.privacy_officer_email.endswith("@example.com")
    assert policy.handlers["access"] == "symfhir.export.access_request:handle"


def test_due_date_counts_from_the_spas_local_date() -> None:
    # 23:30 in Chicago on 1 March is already 2 March in UTC: the spa received it on 1 March.
    late = datetime(2026, 3, 2, 5, 30, tzinfo=UTC)
    assert due_date(late, POLICY, ZONE) == date(2026, 3, 31)
    assert due_date(datetime(2026, 11, 25, 9, 30, tzinfo=ZONE), POLICY, ZONE) == date(2026, 12, 25)


def test_due_date_needs_an_offset() -> None:
    with pytest.raises(ValueError, match="offset"):
        due_date(datetime(2026, 3, 1, 12), POLICY, ZONE)


def test_one_extension_then_refused() -> None:
    request = _request(date(2026, 12, 1))
    assert extended_due(request, "Archive being restored", POLICY) == date(2026, 12, 31)
    extended = replace(request, extended_reason="Archive being restored")
    with pytest.raises(PrivacyRequestError, match="already extended once"):
        extended_due(extended, "Again", POLICY)


@pytest.mark.parametrize("reason", ["", "   ", "x" * 1001])
def test_an_extension_needs_a_usable_reason(reason: str) -> None:
    with pytest.raises(PrivacyRequestError, match="reason"):
        extended_due(_request(date(2026, 12, 1)), reason, POLICY)


def test_a_closed_request_is_not_extended() -> None:
    with pytest.raises(PrivacyRequestError, match="closed"):
        extended_due(_request(date(2026, 12, 1), business_status=COMPLETED), "why", POLICY)


@pytest.mark.parametrize(
    ("due", "left", "soon", "overdue"),
    [
        (date(2026, 12, 10), 15, False, False),
        (date(2026, 12, 2), 7, True, False),
        (date(2026, 11, 25), 0, True, False),  # due today: still on time
        (date(2026, 11, 24), -1, False, True),
    ],
)
def test_due_soon_and_overdue(due: date, left: int, soon: bool, overdue: bool) -> None:
    now = datetime(2026, 11, 25, 23, 59, tzinfo=ZONE)
    request = _request(due)
    assert days_left(request, now, ZONE) == left
    assert is_due_soon(request, now, POLICY, ZONE) is soon
    assert is_overdue(request, now, ZONE) is overdue


def test_a_closed_request_is_never_overdue() -> None:
    request = _request(date(2026, 1, 1), business_status=COMPLETED)
    assert not is_overdue(request, datetime(2026, 11, 25, tzinfo=ZONE), ZONE)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"response_days": 0}, "response_days"),
        ({"extension_days": "30"}, "extension_days"),
        ({"due_soon_days": True}, "due_soon_days"),
        ({"privacy_officer_email": "nobody"}, "privacy_officer_email"),
        ({"handlers": {"everything": "a.b:c"}}, "unknown kind"),
        ({"handlers": {"access": "not dotted"}}, "module:function"),
    ],
)
def test_bad_settings_are_refused(change: dict, message: str) -> None:
    data = {
        "response_days": 30,
        "extension_days": 30,
        "due_soon_days": 7,
        "privacy_officer_email": "privacy@example.com",
        **change,
    }
    with pytest.raises(ConfigError, match=message):
        parse_policy(data)


def test_a_settings_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "privacy.yaml"
    path.write_text("- 30\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_policy(path)
