"""Rejected input rows: the reason, and the row as read, so it can be fixed and re-run.

The row goes out as read except for payment card numbers, masked in every value (the privacy
policy promises they are never stored): the masked text is ordinary text, so the row can be
fixed and fed back as input all the same.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symfhir.cardnumbers import masked, masked_values
from symfhir.errors import ConfigError, RecordError


@dataclass(frozen=True)
class Reject:
    """One input row that was not mapped.

    ``record`` names it (``clients.csv row 12``), ``field`` and ``reason`` say
    why; ``row`` is the row as read so the rejects file can be edited and fed
    back as input (``line`` masks card numbers on the way out).
    """

    record: str
    field: str
    reason: str
    row: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_error(cls, err: RecordError, row: dict[str, Any]) -> Reject:
        return cls(err.record, err.field, err.reason, row)

    def line(self, none: Any = "") -> dict[str, Any]:
        """The rejects file's line: ``_record``, ``_field``, ``_reason``, then the row's
        values (None as ``none``), card numbers masked everywhere."""
        values = {k: (none if v is None else v) for k, v in masked_values(self.row).items()}
        why = {"_field": masked(self.field), "_reason": masked(self.reason)}
        return {"_record": self.record, **why, **values}


REJECT_COLUMNS = ("_record", "_field", "_reason")


def write_rejects(path: Path, rejects: Iterable[Reject], columns: list[str] | None = None) -> int:
    """Write rejects as CSV (same columns as the input, plus the reason) or JSON.

    The format follows the file suffix: ``.json`` writes a JSON array, anything
    else CSV. Returns the number written.
    """
    items = list(rejects)
    if path.suffix.lower() == ".json":
        payload = [r.line(none=None) for r in items]
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
            writer.writerow(r.line())
    return len(items)


class RejectsLog:
    """Rejects appended as they are found (CSV, or NDJSON for ``.ndjson``/``.jsonl``).

    Used by the import, which may be killed at any point: every reject is on disk
    before its record counts as settled. With ``append`` an earlier run's file is
    continued, and a record already in it (same ``_record``) is not written twice.
    """

    def __init__(self, path: Path, columns: list[str], append: bool = False) -> None:
        suffix = path.suffix.lower()
        if suffix == ".json":
            raise ConfigError(f"{path}: rejects of an import are written as .csv or .ndjson")
        self.path = path
        self.ndjson = suffix in (".ndjson", ".jsonl")
        self.columns = [*REJECT_COLUMNS, *columns]
        self.seen: set[str] = set()
        exists = append and path.exists() and path.stat().st_size > 0
        if exists:
            self.seen = self._records_in(path)
            self.columns = self._header(path) or self.columns
        self.fh = path.open(
            "a" if exists else "w", encoding="utf-8", errors="surrogateescape", newline=""
        )
        self.writer = csv.DictWriter(self.fh, fieldnames=self.columns, extrasaction="ignore")
        if not exists and not self.ndjson:
            self.writer.writeheader()
            self.fh.flush()
        self.written = 0

    def write(self, reject: Reject) -> None:
        if reject.record in self.seen:
            return
        self.seen.add(reject.record)
        line = reject.line()
        if self.ndjson:
            self.fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        else:
            self.writer.writerow(line)
        self.fh.flush()
        self.written += 1

    def close(self) -> None:
        self.fh.close()

    def _records_in(self, path: Path) -> set[str]:
        with path.open(encoding="utf-8", errors="surrogateescape", newline="") as fh:
            if self.ndjson:
                return {json.loads(line).get("_record", "") for line in fh if line.strip()}
            return {row.get("_record", "") for row in csv.DictReader(fh)}

    def _header(self, path: Path) -> list[str] | None:
        if self.ndjson:
            return None
        with path.open(encoding="utf-8", errors="surrogateescape", newline="") as fh:
            return next(csv.reader(fh), None)
