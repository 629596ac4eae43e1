"""The spa's own settings (``mappings/spa.yaml``): name, identifier, clock, namespace."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from symfhir.errors import ConfigError
from symfhir.terminology import MAPPINGS_DIR
from symfhir.yamlfile import YAMLError, parse_yaml


@dataclass(frozen=True)
class Spa:
    name: str
    identifier_system: str
    identifier_value: str
    timezone: str
    phone_region: str
    identifier_base: str
    privacy_policy_version: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@lru_cache(maxsize=8)
def load_spa(path: Path | None = None) -> Spa:
    """Load ``mappings/spa.yaml`` (or ``path``). Raises ConfigError."""
    path = path or MAPPINGS_DIR / "spa.yaml"
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
        spa = Spa(
            name=str(data["name"]),
            identifier_system=str(data["identifier"]["system"]),
            identifier_value=str(data["identifier"]["value"]),
            timezone=str(data.get("timezone", "UTC")),
            phone_region=str(data.get("phone_region", "US")),
            identifier_base=str(data["identifier_base"]).rstrip("/"),
            privacy_policy_version=str(data.get("privacy_policy_version", "")),
        )
        spa.zone  # noqa: B018 - fail early on an unknown zone
    except (OSError, YAMLError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read spa settings {path.name}: {exc}") from exc
    except ZoneInfoNotFoundError:
        raise ConfigError(f"spa settings: unknown timezone {data.get('timezone')!r}") from None
    return spa
