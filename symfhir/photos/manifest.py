"""Read a photo manifest (CSV or JSON) into validated entries and rejects, and load their images.

A manifest lists one photo per row: ``client_id, file, taken_at, body_site,
view, phase, treatment_id``. Every row ends as an entry or a reject, so the
counts always add up. Columns whose name starts with ``_`` (the reasons a
rejects file adds) are ignored, so a fixed rejects file can be read again.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from symfhir.errors import ConfigError, PhotoError, RecordError
from symfhir.model.photo import Photo, time_zone
from symfhir.photos.files import CleanImage, ImageLimits, size_problem
from symfhir.sources.rejects import Reject
from symfhir.terminology import Terminology, load_terminology

COLUMNS = ("client_id", "file", "taken_at", "body_site", "view", "phase", "treatment_id")
REQUIRED = frozenset(COLUMNS) - {"treatment_id"}
CSV_FIELD_LIMIT = 64 * 1024
DEFAULT_LIMITS = ImageLimits()
# Field names in messages come from the file; keep them short and printable.
NAME_MAX = 64


@dataclass
class ManifestEntry:
    """An accepted manifest row: where it came from and the validated photo details."""

    row: int
    photo: Photo
    record: str


@dataclass
class ManifestResult:
    entries: list[ManifestEntry] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def read_manifest(
    path: Path,
    *,
    now: datetime,
    tz: str = "America/Chicago",
    terminology: Terminology | None = None,
) -> ManifestResult:
    """Every row of the manifest at ``path`` as a ManifestEntry or a Reject, in file order.

    ``.json`` files hold a JSON array of objects; anything else is read as
    CSV. Times without an offset are local to ``tz``; no photo may be taken
    after ``now``. A second row for the same client and file is rejected.

    Raises ConfigError for a naive ``now`` or an unknown ``tz``, and
    RecordError(file name, ...) when the file as a whole cannot be read: not
    UTF-8, not a JSON array, or a CSV header missing required columns.
    """
    if now.tzinfo is None:
        raise ConfigError("the manifest clock 'now' must be timezone-aware")
    time_zone(tz)
    terms = terminology or load_terminology()
    text = _read_text(path)
    rows = _json_rows(text, path.name) if path.suffix.lower() == ".json" else _csv_rows(text, path)
    context = {"tz": tz, "now": now, "terminology": terms}
    result = ManifestResult()
    seen: dict[tuple[str, str], str] = {}
    for number, row in rows:
        record = f"{path.name} row {number}"
        visible = {k: v for k, v in row.items() if not k.startswith("_")}
        if "_invalid" in row:
            result.rejects.append(Reject(record, "row", row["_invalid"], visible))
            continue
        try:
            photo = Photo.model_validate(visible, context=context)
        except ValidationError as exc:
            result.rejects.append(Reject(record, *_first_problem(exc), visible))
            continue
        key = (photo.client_id, photo.file)
        if key in seen:
            reason = f"the same client and file are already listed at {seen[key]}"
            result.rejects.append(Reject(record, "file", reason, visible))
            continue
        seen[key] = record
        result.entries.append(ManifestEntry(number, photo, record))
    return result


def load_photo(
    entry: ManifestEntry, base_dir: Path, limits: ImageLimits = DEFAULT_LIMITS
) -> CleanImage:
    """Read the entry's file below ``base_dir`` and clean it.

    Symbolic links are resolved first, so neither ``..`` nor a link can reach
    a file outside ``base_dir``. The file size is checked before it is read.

    Raises PhotoError(entry.record, "file", reason) for a path outside
    ``base_dir``, a missing or unreadable file, and everything ``clean_image`` refuses.
    """
    name = entry.photo.file
    root = base_dir.resolve()
    candidate = (root / name).resolve()
    if not candidate.is_relative_to(root):
        raise PhotoError(entry.record, "file", f"{name} leads outside the manifest's folder")
    try:
        if not candidate.is_file():
            raise PhotoError(entry.record, "file", f"{name} does not exist or is not a file")
        # Refuse before reading: the file may be far bigger than memory should hold.
        problem = size_problem(candidate.stat().st_size, limits)
        if problem:
            raise PhotoError(entry.record, "file", problem)
        raw = candidate.read_bytes()
    except OSError:
        raise PhotoError(entry.record, "file", f"{name} cannot be read") from None
    # Imported here: Pillow is only needed once a photo is actually loaded (see files.py).
    from symfhir.photos.clean import clean_image

    return clean_image(raw, record=entry.record, limits=limits)


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RecordError(path.name, "file", f"cannot be read ({exc.strerror})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RecordError(path.name, "file", "is UTF-16 text; save the manifest as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecordError(
            path.name,
            "file",
            f"is not UTF-8 text (first bad byte at offset {exc.start}); save the manifest as UTF-8",
        ) from None


def _json_rows(text: str, name: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(
            name, "file", f"is not valid JSON ({exc.msg}, line {exc.lineno})"
        ) from None
    if not isinstance(data, list):
        raise RecordError(name, "file", "must be a JSON array of objects")
    rows = []
    for number, item in enumerate(data, start=1):
        if isinstance(item, dict):
            rows.append((number, {str(k): v for k, v in item.items()}))
        else:
            rows.append((number, {"_invalid": "not a JSON object"}))
    return rows


def _csv_rows(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [cell.strip() for cell in next(reader)]
    except StopIteration:
        return []
    except csv.Error as exc:
        raise RecordError(path.name, "file", f"the header is unreadable CSV ({exc})") from None
    _check_header(header, path.name)
    rows: list[tuple[int, dict[str, Any]]] = []
    # Spreadsheet numbering: the header is row 1.
    number = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return rows
        except csv.Error as exc:
            number += 1
            rows.append((number, {"_invalid": f"unreadable CSV ({exc})"}))
            continue
        number += 1
        if not cells:
            continue  # a blank line is not a row
        row: dict[str, Any] = dict(zip(header, cells, strict=False))
        for column in header[len(cells) :]:
            row[column] = ""
        if len(cells) > len(header):
            row["_invalid"] = "the row has more cells than the header"
        rows.append((number, row))


def _check_header(header: list[str], name: str) -> None:
    columns = [c for c in header if not c.startswith("_")]
    missing = sorted(REQUIRED - set(columns))
    if missing:
        raise RecordError(name, "header", f"missing column(s): {', '.join(missing)}")
    unknown = sorted({c for c in columns if c not in COLUMNS})
    if unknown:
        shown = ", ".join(_printable(c) for c in unknown)
        raise RecordError(name, "header", f"unknown column(s): {shown}")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise RecordError(name, "header", f"repeated column(s): {', '.join(duplicated)}")


def _first_problem(exc: ValidationError) -> tuple[str, str]:
    """The first error's field and message; input values are never echoed (they may be PHI)."""
    errors = exc.errors(include_input=False, include_url=False)
    first = errors[0]
    loc = first["loc"]
    field_name = _printable(str(loc[0])) if loc else "row"
    reason = str(first["msg"]).removeprefix("Value error, ")
    if len(errors) > 1:
        others = sorted(
            {_printable(str(e["loc"][0])) for e in errors[1:] if e["loc"]} - {field_name}
        )
        reason += f" (+{len(errors) - 1} more"
        reason += f": {', '.join(others)})" if others else ")"
    return field_name, reason


def _printable(name: str) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in name)
    return text if len(text) <= NAME_MAX else text[: NAME_MAX - 1] + "…"
