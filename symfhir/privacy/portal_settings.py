"""The settings of the portal's verification codes and links: the ``verification:`` and
``links:`` blocks of ``mappings/privacy.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir.errors import ConfigError
from symfhir.terminology import MAPPINGS_DIR, read_mapping_file


@dataclass(frozen=True)
class RateLimit:
    """At most ``codes`` codes within any ``window``."""

    codes: int
    window: timedelta


@dataclass(frozen=True)
class CodeSettings:
    digits: int
    lifetime: timedelta
    max_tries: int
    per_address: RateLimit
    per_requester: RateLimit


@dataclass(frozen=True)
class LinkKind:
    """A link kind's lifetime and how many times one opens (None: no limit)."""

    lifetime: timedelta
    max_uses: int | None


def _whole(data: Any, key: str, *, minimum: int, what: str) -> int:
    value = data.get(key) if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"privacy settings: {what}.{key} must be a whole number >= {minimum}")
    return value


def _limit(data: dict[str, Any], key: str) -> RateLimit:
    block = data.get(key)
    what = f"verification.{key}"
    return RateLimit(
        codes=_whole(block, "codes", minimum=1, what=what),
        window=timedelta(minutes=_whole(block, "minutes", minimum=1, what=what)),
    )


def parse_code_settings(data: dict[str, Any]) -> CodeSettings:
    """The ``verification:`` block. Raises ConfigError on a bad shape."""
    block = data.get("verification")
    if not isinstance(block, dict):
        raise ConfigError("privacy settings: a verification block is needed")
    return CodeSettings(
        digits=_whole(block, "digits", minimum=6, what="verification"),
        lifetime=timedelta(minutes=_whole(block, "code_minutes", minimum=1, what="verification")),
        max_tries=_whole(block, "max_tries", minimum=1, what="verification"),
        per_address=_limit(block, "per_address"),
        per_requester=_limit(block, "per_requester"),
    )


def parse_link_kinds(data: dict[str, Any]) -> dict[str, LinkKind]:
    """The ``links:`` block: kind -> LinkKind. Raises ConfigError on a bad shape."""
    block = data.get("links")
    if not isinstance(block, dict) or not block:
        raise ConfigError("privacy settings: a links block naming each link kind is needed")
    kinds = {}
    for kind, spec in block.items():
        what = f"links.{kind}"
        hours = _whole(spec, "hours", minimum=1, what=what)
        uses = spec.get("max_uses")
        if uses is not None:
            uses = _whole(spec, "max_uses", minimum=1, what=what)
        kinds[str(kind)] = LinkKind(lifetime=timedelta(hours=hours), max_uses=uses)
    return kinds


@lru_cache(maxsize=8)
def load_code_settings(path: Path | None = None) -> CodeSettings:
    """The code settings of ``mappings/privacy.yaml`` (or ``path``). Raises ConfigError."""
    path = path or MAPPINGS_DIR / "privacy.yaml"
    return parse_code_settings(read_mapping_file(path, "privacy settings"))


@lru_cache(maxsize=8)
def load_link_kinds(path: Path | None = None) -> dict[str, LinkKind]:
    """The link kinds of ``mappings/privacy.yaml`` (or ``path``). Raises ConfigError."""
    path = path or MAPPINGS_DIR / "privacy.yaml"
    return parse_link_kinds(read_mapping_file(path, "privacy settings"))
