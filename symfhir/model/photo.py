"""One entry of a photo manifest: whose photo, which file, when, where on the body, which view.

Validation reads its context: ``tz`` (a zoneinfo name for times given without
an offset; default America/Chicago), ``now`` (an aware datetime no photo may
be taken after; default the current time) and ``terminology``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, field_validator

from symfhir.errors import ConfigError
from symfhir.model.fields import Identifier, code_key, context

DEFAULT_TZ = "America/Chicago"
EARLIEST_YEAR = 1900
PATH_MAX = 1024
Phase = Literal["before", "after", "progress"]

_DATE_SHAPE = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?"
)
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")


def _relative_path(value: Any) -> Any:
    """A path below the manifest's folder, with ``/`` separators; never absolute, never ``..``."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    if len(text) > PATH_MAX or "\x00" in text:
        raise ValueError("is not a usable file path")
    text = text.replace("\\", "/")
    if text.startswith("/") or _WINDOWS_DRIVE.match(text):
        raise ValueError("must be a path relative to the manifest's folder, not an absolute path")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError("must not contain '..' (the file must be inside the manifest's folder)")
    if not parts or text.endswith("/"):
        raise ValueError("names a folder, not a file")
    return str(PurePosixPath(*parts))


def _optional_id(value: Any) -> Any:
    # A CSV has no null: an empty cell means "no treatment".
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


def _phase(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


RelativePath = Annotated[str, BeforeValidator(_relative_path)]


class Photo(BaseModel):
    """A photo manifest entry; the image itself is read and cleaned separately."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: Identifier
    file: RelativePath
    taken_at: datetime
    body_site: code_key("body_site")  # type: ignore[valid-type]
    view: code_key("photo_view")  # type: ignore[valid-type]
    phase: Annotated[Phase, BeforeValidator(_phase)]
    treatment_id: Annotated[Identifier | None, BeforeValidator(_optional_id)] = None

    @field_validator("taken_at", mode="before")
    @classmethod
    def _parse_taken_at(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        elif isinstance(value, str):
            moment = _parse_moment(value.strip())
        else:
            raise ValueError("must be a date or date-time string")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=time_zone(context(info).get("tz") or DEFAULT_TZ))
        return moment

    @field_validator("taken_at")
    @classmethod
    def _not_in_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        now = context(info).get("now") or datetime.now(UTC)
        if now.tzinfo is None:
            raise ConfigError("the validation context's 'now' must be timezone-aware")
        if value > now:
            raise ValueError("is in the future")
        if value.year < EARLIEST_YEAR:
            raise ValueError(f"is before {EARLIEST_YEAR}")
        return value


def _parse_moment(text: str) -> datetime:
    if not text:
        raise ValueError("must not be empty")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    if _DATE_SHAPE.fullmatch(text):
        raise ValueError("is not a real date or time")
    raise ValueError(
        "must be an ISO 8601 date or date-time: 2026-03-01, 2026-03-01 14:30 "
        "or 2026-03-01T14:30:00-06:00"
    )


def time_zone(name: str) -> ZoneInfo:
    """The zone called ``name``. Raises ConfigError for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}") from None
