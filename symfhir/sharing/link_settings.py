"""The link service's settings: ``mappings/links.yaml`` (passcode cap and hashing, expiry,
tickets, embedding, request limits, rate limits)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.errors import ConfigError
from symfhir.sharing.shl import LABEL_MAX
from symfhir.terminology import MAPPINGS_DIR, read_mapping_file

#: OWASP's minimum for Argon2id; weaker settings are refused.
_ARGON2_MIN = {"memory_kib": 19456, "time_cost": 2, "parallelism": 1}


@dataclass(frozen=True)
class Argon2Params:
    memory_kib: int
    time_cost: int
    parallelism: int


@dataclass(frozen=True)
class Window:
    """At most ``requests`` within any ``seconds``."""

    requests: int
    seconds: int


@dataclass(frozen=True)
class LinkServiceSettings:
    max_failures: int
    passcode_min: int
    passcode_max: int
    argon2: Argon2Params
    default_expiry: timedelta
    max_expiry: timedelta
    label_max: int
    recipient_max: int
    ticket_lifetime: timedelta
    embedded_default: int
    embedded_max: int
    request_bytes: int
    per_link: Window
    per_client: Window
    files_per_client: Window


def _block(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, dict):
        raise ConfigError(f"link settings: a {key} block is needed")
    return value


def _whole(block: dict[str, Any], key: str, *, minimum: int, what: str) -> int:
    value = block.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"link settings: {what}.{key} must be a whole number >= {minimum}")
    return value


def _window(block: dict[str, Any], key: str) -> Window:
    spec = _block(block, key)
    what = f"rate_limits.{key}"
    return Window(
        requests=_whole(spec, "requests", minimum=1, what=what),
        seconds=_whole(spec, "seconds", minimum=1, what=what),
    )


def parse_link_settings(data: dict[str, Any]) -> LinkServiceSettings:
    """The settings of a links.yaml mapping. Raises ConfigError naming the bad key."""
    passcode = _block(data, "passcode")
    argon = _block(passcode, "argon2id")
    params = Argon2Params(
        **{
            key: _whole(argon, key, minimum=floor, what="passcode.argon2id")
            for key, floor in _ARGON2_MIN.items()
        }
    )
    expiry = _block(data, "expiry")
    links = _block(data, "links")
    manifest = _block(data, "manifest")
    limits = _block(data, "rate_limits")
    settings = LinkServiceSettings(
        max_failures=_whole(passcode, "max_failures", minimum=1, what="passcode"),
        passcode_min=_whole(passcode, "min_length", minimum=4, what="passcode"),
        passcode_max=_whole(passcode, "max_length", minimum=4, what="passcode"),
        argon2=params,
        default_expiry=timedelta(days=_whole(expiry, "default_days", minimum=1, what="expiry")),
        max_expiry=timedelta(days=_whole(expiry, "max_days", minimum=1, what="expiry")),
        label_max=_whole(links, "label_max", minimum=1, what="links"),
        recipient_max=_whole(links, "recipient_max", minimum=1, what="links"),
        ticket_lifetime=timedelta(
            seconds=_whole(manifest, "ticket_seconds", minimum=1, what="manifest")
        ),
        embedded_default=_whole(manifest, "embedded_default", minimum=0, what="manifest"),
        embedded_max=_whole(manifest, "embedded_max", minimum=0, what="manifest"),
        request_bytes=_whole(manifest, "request_bytes", minimum=256, what="manifest"),
        per_link=_window(limits, "per_link"),
        per_client=_window(limits, "per_client"),
        files_per_client=_window(limits, "files_per_client"),
    )
    if settings.label_max > LABEL_MAX:
        raise ConfigError(f"link settings: links.label_max cannot exceed the spec's {LABEL_MAX}")
    if settings.passcode_max < settings.passcode_min:
        raise ConfigError("link settings: passcode.max_length is below passcode.min_length")
    if settings.max_expiry < settings.default_expiry:
        raise ConfigError("link settings: expiry.max_days is below expiry.default_days")
    if settings.embedded_default > settings.embedded_max:
        raise ConfigError("link settings: manifest.embedded_default is above embedded_max")
    return settings


@lru_cache(maxsize=8)
def load_link_settings(path: Path | None = None) -> LinkServiceSettings:
    """The settings of ``mappings/links.yaml`` (or ``path``). Raises ConfigError."""
    path = path or MAPPINGS_DIR / "links.yaml"
    return parse_link_settings(read_mapping_file(path, "link settings"))
