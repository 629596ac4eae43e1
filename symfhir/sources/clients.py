"""Read a spa's client export (CSV, JSON or NDJSON) into validated SpaRecords or rejects."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from symfhir.consent_kinds import ConsentKinds
from symfhir.errors import PhotoError, RecordError
from symfhir.model import SignedForm, SpaRecord
from symfhir.photos.files import ImageLimits
from symfhir.sources.fieldmap import FieldMap, row_to_record_dict
from symfhir.sources.rejects import Reject
from symfhir.terminology import Terminology

# Big enough for a long consultation note; the model caps text length itself.
CSV_FIELD_LIMIT = 4 * 1024 * 1024
_SURROGATE = re.compile(r"[\udc80-\udcff]")


@dataclass(frozen=True)
class Accepted:
    """A row that became a valid record."""

    record: str
    row: dict[str, Any]
    value: SpaRecord
    masked_card_numbers: int = 0


@dataclass(frozen=True)
class ReadOptions:
    today: date
    terminology: Terminology
    consent_kinds: ConsentKinds
    card_numbers: str = "reject"
    phone_region: str = "US"
    limits: ImageLimits = field(default_factory=ImageLimits)


def iter_rows(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV, JSON array or NDJSON file with their row numbers.

    CSV rows count as a spreadsheet does (header is row 1); JSON items and
    NDJSON lines count from 1. Undecodable bytes survive as surrogates so the
    row holding them can be rejected alone instead of failing the whole file.
    Columns whose name starts with ``_`` (a rejects file's reasons) are dropped.
    """
    suffix = path.suffix.lower()
    if suffix == ".json":
        with path.open(encoding=encoding, errors="surrogateescape") as fh:
            data = json.load(fh)
        if not isinstance(data, list):
            data = [data]
        for number, item in enumerate(data, start=1):
            yield number, _visible(item) if isinstance(item, dict) else {"_invalid": item}
        return
    if suffix in (".ndjson", ".jsonl"):
        with path.open(encoding=encoding, errors="surrogateescape") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, {"_invalid": f"not valid JSON ({exc.msg})"}
                    continue
                yield number, _visible(item) if isinstance(item, dict) else {"_invalid": item}
        return
    csv.field_size_limit(CSV_FIELD_LIMIT)
    with path.open(encoding=encoding, errors="surrogateescape", newline="") as fh:
        if encoding.lower().replace("-", "") == "utf8":
            head = fh.read(1)
            if head != "\ufeff":
                fh.seek(0)
        reader = csv.DictReader(fh)
        hide: bool | None = None
        number = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                number += 1
                yield number, {"_invalid": f"unreadable CSV ({exc})"}
                continue
            number += 1
            extra = row.pop(None, None)  # type: ignore[call-overload]
            if extra:
                row = {**row, "_invalid": "the row has more cells than the header"}
            if hide is None:  # the header is read with the first row
                hide = _hides_columns(reader.fieldnames or [])
            # Every row has the header's columns: filter only when some are hidden.
            yield number, _visible(row) if extra or hide else row


def count_records(path: Path, encoding: str = "utf-8") -> int:
    """How many records ``read_clients`` will yield for ``path`` (one quick pass)."""
    return sum(1 for _ in iter_rows(path, encoding))


def _hides_columns(names: list[str]) -> bool:
    """Whether ``_visible`` drops any of these columns (``_name``, other than ``_invalid``)."""
    return any(k.startswith("_") and k != "_invalid" for k in names)


def _visible(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not (k.startswith("_") and k != "_invalid")}


def _bad_encoding_column(row: dict[str, Any]) -> str | None:
    # Undecodable bytes arrive as lone surrogates (surrogateescape), which UTF-8 cannot
    # encode: one encode of the whole row clears nearly every row, in C.
    try:
        text = "\x00".join([*row, *row.values()])
    except TypeError:  # JSON input: not every key or value is a string
        text = "\x00".join(
            [k for k in row if isinstance(k, str)] + [v for v in row.values() if isinstance(v, str)]
        )
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError:
        pass
    for key, value in row.items():
        if isinstance(value, str) and _SURROGATE.search(value):
            return key
        if isinstance(key, str) and _SURROGATE.search(key):
            return key
    return None


def read_clients(
    path: Path, fmap: FieldMap, options: ReadOptions, base_dir: Path | None = None
) -> Iterator[Accepted | Reject]:
    """Each row of ``path`` as an Accepted record or a Reject, in input order.

    File cells (signed forms) are resolved against ``base_dir`` (default: the
    input's folder) and may not point outside it.

    Valid rows are never held back by invalid ones. A client id seen twice is
    rejected the second time, naming the row that had it first.
    """
    seen: dict[str, str] = {}
    for number, row in iter_rows(path, fmap.encoding):
        record = f"{path.name} row {number}"
        try:
            accepted = read_row(row, record, fmap, options, base_dir=base_dir or path.parent)
        except RecordError as err:
            yield Reject.from_error(err, row)
            continue
        client_id = accepted.value.client.client_id
        if client_id in seen:
            column = fmap.column_of("client.client_id") or "client_id"
            reason = f"duplicate client id: already read at {seen[client_id]}"
            yield Reject(record, column, reason, row)
            continue
        seen[client_id] = record
        yield accepted


def read_row(
    row: dict[str, Any], record: str, fmap: FieldMap, options: ReadOptions, base_dir: Path
) -> Accepted:
    """One row to a validated SpaRecord. Raises RecordError naming column and reason."""
    if "_invalid" in row:
        raise RecordError(record, "row", str(row["_invalid"]))
    bad = _bad_encoding_column(row)
    if bad is not None:
        raise RecordError(
            record, _safe(bad), f"not valid {fmap.encoding} text; save the export as UTF-8"
        )
    data, files = row_to_record_dict(row, fmap, record)
    for path_key, name in files.items():
        _put_form(data, path_key, _load_form(name, base_dir, record, fmap, path_key, options))
    masked: list[int] = []
    context = {
        "today": options.today,
        "terminology": options.terminology,
        "consent_kinds": options.consent_kinds,
        "card_numbers": options.card_numbers,
        "phone_region": options.phone_region,
        "masked": masked,
    }
    try:
        value = SpaRecord.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_to_record_error(exc, record, fmap) from None
    return Accepted(record, row, value, sum(masked))


def _safe(column: str) -> str:
    return _SURROGATE.sub("?", column)


def _put_form(data: dict[str, Any], path_key: str, form: SignedForm) -> None:
    keys = path_key.split(".")
    target = data
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = form


def _load_form(
    name: str, base_dir: Path, record: str, fmap: FieldMap, path_key: str, options: ReadOptions
) -> SignedForm:
    column = fmap.column_of(path_key) or path_key
    candidate = (base_dir / name).resolve()
    if not candidate.is_relative_to(base_dir.resolve()):
        raise RecordError(record, column, "the file path leaves the input folder")
    try:
        raw = candidate.read_bytes()
    except OSError:
        raise RecordError(record, column, "the signed form file cannot be read") from None
    try:
        # Imported here: Pillow is only needed once a signed form is loaded (see files.py).
        from symfhir.photos.clean import clean_signed_form

        doc = clean_signed_form(raw, record=record, limits=options.limits)
    except PhotoError as err:
        raise RecordError(record, column, err.reason) from None
    return SignedForm(
        content_type=doc.content_type, data=doc.data, size=doc.size, sha1_b64=doc.sha1_b64
    )


def validation_to_record_error(exc: ValidationError, record: str, fmap: FieldMap) -> RecordError:
    """The first problem of a pydantic error as column + reason; never echoes input values."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if message == "Field required":
            message = "is required but empty"
        loc = ".".join(str(p) for p in error["loc"])
        if not loc and ": " in message:
            loc, message = message.split(": ", 1)
        problems.append((_column_for(loc, fmap), message))
    field, reason = problems[0]
    if len(problems) > 1:
        others = ", ".join(sorted({f for f, _ in problems[1:]} - {field}))
        more = len(problems) - 1
        reason = f"{reason} (and {more} more problem{'s' if more > 1 else ''}"
        reason += f": {others})" if others else ")"
    return RecordError(record, field, reason)


def _column_for(loc: str, fmap: FieldMap) -> str:
    """``health.allergies.0.severity`` → ``allergies[1].severity`` using the map's columns.

    Positions are shown 1-based, as a person counts items in a cell.
    """
    parts = loc.split(".") if loc else []
    names = [p for p in parts if not p.isdigit()]
    for cut in range(len(names), 0, -1):
        prefix = ".".join(names[:cut])
        column = fmap.column_of(prefix) or _first_column_under(prefix, fmap)
        if column:
            break
    else:
        return loc or "record"
    out, seen = column, 0
    for part in parts:
        if part.isdigit():
            if seen >= cut:
                out += f"[{int(part) + 1}]"
            continue
        seen += 1
        if seen > cut:
            out += f".{part}"
    return out


def _first_column_under(prefix: str, fmap: FieldMap) -> str | None:
    for spec in fmap.fields:
        if spec.path.startswith(f"{prefix}."):
            return spec.column
    return None
