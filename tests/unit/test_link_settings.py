"""The link service's settings (mappings/links.yaml) and its sliding-window rate limits."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from smart_app.links.rate_limits import SlidingWindow
from symfhir.errors import ConfigError
from symfhir.sharing.link_settings import Window, load_link_settings, parse_link_settings
from symfhir.terminology import MAPPINGS_DIR, read_mapping_file

pytestmark = pytest.mark.unit


@pytest.fixture
def data() -> dict[str, Any]:
    return read_mapping_file(MAPPINGS_DIR / "links.yaml", "link settings")


def test_the_shipped_settings(data: dict[str, Any]) -> None:
    settings = load_link_settings()
    assert settings == parse_link_settings(data)
    assert settings.max_failures == 5
    assert (settings.argon2.memory_kib, settings.argon2.time_cost) == (19456, 2)
    assert settings.argon2.parallelism == 1
    assert settings.ticket_lifetime == timedelta(seconds=60)
    assert settings.label_max == 80 and settings.recipient_max == 200
    assert settings.default_expiry == timedelta(days=30)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("passcode", "argon2id", "memory_kib"),
            8192,
            "memory_kib must be a whole number >= 19456",
        ),
        (("passcode", "argon2id", "time_cost"), 1, "time_cost must be"),
        (("passcode", "max_failures"), 0, "max_failures must be"),
        (("passcode", "max_failures"), True, "max_failures must be"),
        (("links", "label_max"), 81, "cannot exceed the spec's 80"),
        (("expiry", "max_days"), 7, "max_days is below"),
        (("manifest", "ticket_seconds"), "60", "ticket_seconds must be"),
        (("rate_limits", "per_link"), None, "a per_link block is needed"),
    ],
)
def test_unsafe_or_malformed_settings_are_refused(
    data: dict[str, Any], path: tuple[str, ...], value: Any, message: str
) -> None:
    bad = copy.deepcopy(data)
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ConfigError, match=message):
        parse_link_settings(bad)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_sliding_window_refuses_past_its_count_and_says_how_long_to_wait() -> None:
    clock = FakeClock()
    window = SlidingWindow(Window(requests=3, seconds=60), clock)
    hits = []
    for _ in range(3):
        hits.append(window.hit("a"))
        clock.now += 10
    assert hits == [None, None, None]
    assert window.hit("a") == 30  # the first hit (at 0 s, now 30 s) leaves in 30 s
    assert window.hit("b") is None  # keys apart
    clock.now += 30
    assert window.hit("a") is None  # the first one left: room for one more
    assert window.hit("a") == 10  # the second leaves at 70 s


def test_idle_keys_are_dropped() -> None:
    clock = FakeClock()
    window = SlidingWindow(Window(requests=1, seconds=5), clock)
    for n in range(100):
        window.hit(f"k{n}")
    clock.now += 6
    window.hit("fresh")
    assert set(window._hits) == {"fresh"}
