"""The privacy-request settings of ``mappings/privacy.yaml``: deadlines, the privacy officer,
and the handler of each request kind."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email

from symfhir.errors import ConfigError
from symfhir.privacy.model import KINDS
from symfhir.terminology import MAPPINGS_DIR, read_mapping_file

_DOTTED = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class PrivacyPolicy:
    """``response_days`` from receipt to the due date, ``extension_days`` added by the one
    extension allowed, ``due_soon_days`` before the due date a request shows as due soon,
    the officer's e-mail, and ``handlers``: kind -> "module:function"."""

    response_days: int
    extension_days: int
    due_soon_days: int
    privacy_officer_email: str
    handlers: dict[str, str] = field(default_factory=dict)


def _days(data: dict[str, Any], key: str, *, minimum: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"privacy settings: {key} must be a whole number >= {minimum}")
    return value


def parse_policy(data: dict[str, Any]) -> PrivacyPolicy:
    """Build the settings from the YAML document. Raises ConfigError on a bad shape."""
    try:
        email = validate_email(
            str(data.get("privacy_officer_email", "")), check_deliverability=False
        ).normalized
    except EmailNotValidError:
        raise ConfigError("privacy settings: privacy_officer_email is not an e-mail") from None
    handlers = data.get("handlers") or {}
    if not isinstance(handlers, dict):
        raise ConfigError("privacy settings: handlers must be a mapping kind -> module:function")
    for kind, target in handlers.items():
        if kind not in KINDS:
            raise ConfigError(f"privacy settings: handlers names an unknown kind {kind!r}")
        if not isinstance(target, str) or not _DOTTED.match(target):
            raise ConfigError(f"privacy settings: handler of {kind} must be module:function")
    return PrivacyPolicy(
        response_days=_days(data, "response_days", minimum=1),
        extension_days=_days(data, "extension_days", minimum=1),
        due_soon_days=_days(data, "due_soon_days", minimum=0),
        privacy_officer_email=email,
        handlers={str(k): str(v) for k, v in handlers.items()},
    )


@lru_cache(maxsize=8)
def load_policy(path: Path | None = None) -> PrivacyPolicy:
    """Load ``mappings/privacy.yaml`` (or ``path``). Raises ConfigError."""
    path = path or MAPPINGS_DIR / "privacy.yaml"
    return parse_policy(read_mapping_file(path, "privacy settings"))
