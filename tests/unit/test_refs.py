"""Full URLs of mapped resources: stable urn:uuids, exactly uuid5 of "system|value"."""

from __future__ import annotations

import random
import uuid

import pytest

from symfhir.mapping.refs import _NAMESPACE, full_url_for

pytestmark = pytest.mark.unit


def test_full_url_is_uuid5_of_system_and_value():
    rnd = random.Random(7)
    alphabet = "abcXYZ019|-_ .é€😀/"
    for _ in range(2000):
        system = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 40)))
        value = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 40)))
        expected = f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{system}|{value}')}"
        assert full_url_for(system, value) == expected


def test_full_url_is_a_version_5_uuid():
    parsed = uuid.UUID(full_url_for("http://example.org/sid", "C0001").removeprefix("urn:uuid:"))
    assert parsed.version == 5
    assert parsed.variant == uuid.RFC_4122


def test_instants_keep_their_own_offset(ctx):
    """Aware datetimes at the same instant compare equal: each keeps its own offset."""
    from datetime import UTC, date, datetime
    from zoneinfo import ZoneInfo

    utc = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    chicago = utc.astimezone(ZoneInfo("America/Chicago"))
    assert ctx.instant(utc) == "2026-03-01T15:00:00+00:00"
    assert ctx.instant(chicago) == "2026-03-01T09:00:00-06:00"
    assert ctx.instant(date(2026, 7, 1)) == "2026-07-01T00:00:00-05:00"
    assert ctx.instant(datetime(2026, 7, 1)) == "2026-07-01T00:00:00-05:00"
    assert ctx.instant(date(2026, 1, 1)) == "2026-01-01T00:00:00-06:00"
