"""What every mapping function needs besides the record: clock, codes, spa settings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

from symfhir import __version__
from symfhir.consent_kinds import ConsentKinds, load_consent_kinds
from symfhir.errors import ConfigError
from symfhir.spa import Spa, load_spa
from symfhir.terminology import MAPPINGS_DIR, Terminology, load_terminology

SYMFHIR_VERSION = __version__


@dataclass(frozen=True)
class MappingContext:
    """Inputs of the pure mapping functions; ``now`` is passed in, never read."""

    now: datetime
    spa: Spa
    terminology: Terminology
    consent_kinds: ConsentKinds
    questionnaire: dict[str, Any]

    @classmethod
    def load(cls, now: datetime) -> MappingContext:
        """The bundled mappings. Raises ConfigError if ``now`` has no time zone."""
        if now.tzinfo is None:
            raise ConfigError("the mapping clock must be timezone-aware")
        return cls(
            now=now,
            spa=load_spa(),
            terminology=load_terminology(),
            consent_kinds=load_consent_kinds(),
            questionnaire=load_questionnaire(),
        )

    @property
    def today(self) -> date:
        return self.now.astimezone(self.spa.zone).date()

    def instant(self, value: date | datetime) -> str:
        """An aware ISO timestamp; dates become local midnight, naive times local time."""
        if isinstance(value, datetime) and value.tzinfo is not None:
            # Not cached: aware datetimes at the same instant compare equal across zones.
            return value.isoformat()
        return _local_instant(value, self.spa.zone)

    def coding(self, valueset: str, key: str) -> dict[str, str]:
        return self.terminology.coding(valueset, key)

    def concept(self, valueset: str, key: str) -> dict[str, Any]:
        coding = self.coding(valueset, key)
        return {"coding": [coding], "text": coding.get("display", key)}


@lru_cache(maxsize=4)
def load_questionnaire(path: Path | None = None) -> dict[str, Any]:
    """The intake Questionnaire (``mappings/intake-questionnaire.json``). Raises ConfigError."""
    path = path or MAPPINGS_DIR / "intake-questionnaire.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the intake questionnaire {path.name}: {exc}") from exc


@lru_cache(maxsize=1024)
def _local_instant(value: date | datetime, zone: tzinfo) -> str:
    # Cached: a record's consents and answers share a few dates, and the zone's UTC offset
    # lookup is the costly part. Only dates and naive datetimes come here.
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return value.replace(tzinfo=zone).isoformat()
