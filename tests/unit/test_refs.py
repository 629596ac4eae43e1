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
