"""Rejected input rows: the reason, and the row as read, so it can be fixed and re-run."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symfhir.errors import RecordError


@dataclass(frozen=True)
class Reject:
    """One input row that was not mapped.

    ``record`` names it (``clients.csv row 12``), ``field`` and ``reason`` say
    why; ``row`` is the row exactly as read so the rejects file can be edited
    and fed back as input.
    """

    record: str
    field: str
    reason: str
    row: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_error(cls, err: RecordError, row: dict[str, Any]) -> Reject:
        return cls(err.record, err.field, err.reason, row)


REJECT_COLUMNS = ("_record", "_field", "_reason")


def write_rejects(path: Path, rejects: Iterable[Reject], columns: list[str] | None = None) -> int:
    """Write rejects as CSV (same columns as the input, plus the reason) or JSON.

    The format follows the file suffix: ``.json`` writes a JSON array, anything
    else CSV. Returns the number written.
    """
    items = list(rejects)
    if path.suffix.lower() == ".json":
        payload = [
            {"_record": r.record, "_field": r.field, "_reason": r.reason, **r.row} for r in items
        ]
        text = json.dumps(payload, ensure_ascii=False, indent=2)
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        return len(items)
    cols = list(columns or [])
    for r in items:
        for key in r.row:
            if key not in cols:
                cols.append(key)
    # Undecodable input bytes go back out unchanged, so the row can be fixed in place.
    with path.open("w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*REJECT_COLUMNS, *cols], extrasaction="ignore")
        writer.writeheader()
        for r in items:
            values = {k: ("" if v is None else v) for k, v in r.row.items()}
            writer.writerow({"_record": r.record, "_field": r.field, "_reason": r.reason, **values})
    return len(items)
