"""Validate a FHIR JSON or NDJSON file for ``symfhir validate FILE``, streaming NDJSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from symfhir.validation.fast import FastValidator
from symfhir.validation.rules import bundle_rules
from symfhir.validation.structural import Problem

_NDJSON_SUFFIXES = frozenset({".ndjson", ".jsonl"})


class FileValidation:
    """Iterates ``(location, Problem)`` for one file; counts what it saw as it goes.

    ``location`` is the file name for a JSON file and ``line N`` for NDJSON. After
    iteration, ``resource_count`` (top-level resources and Bundle entries),
    ``bundle_count``, ``invalid_count`` (top-level items with a problem) and
    ``problem_count`` summarise the file.
    """

    def __init__(self, path: Path, validator: FastValidator | None = None) -> None:
        self.path = path
        self.validator = validator or FastValidator()
        self.resource_count = 0
        self.bundle_count = 0
        self.invalid_count = 0
        self.problem_count = 0
        self._problems = self._run()

    def __iter__(self) -> Iterator[tuple[str, Problem]]:
        return self

    def __next__(self) -> tuple[str, Problem]:
        item = next(self._problems)
        self.problem_count += 1
        return item

    def _run(self) -> Iterator[tuple[str, Problem]]:
        if self.path.suffix.lower() in _NDJSON_SUFFIXES or _looks_like_ndjson(self.path):
            yield from self._ndjson()
        else:
            yield from self._json()

    def _json(self) -> Iterator[tuple[str, Problem]]:
        text = self.path.read_text(encoding="utf-8-sig", errors="strict")
        try:
            item = json.loads(text)
        except json.JSONDecodeError as exc:
            self.invalid_count += 1
            yield self.path.name, _json_problem(exc)
            return
        yield from ((self.path.name, p) for p in self._item(item))

    def _ndjson(self) -> Iterator[tuple[str, Problem]]:
        # One line at a time: memory stays flat however long the export is.
        with self.path.open(encoding="utf-8-sig") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"line {number}"
                try:
                    item = json.loads(line)
                except json.JSONDecodeError as exc:
                    self.invalid_count += 1
                    yield where, Problem("", f"malformed JSON at column {exc.colno}: {exc.msg}")
                    continue
                yield from ((where, p) for p in self._item(item))

    def _item(self, item: Any) -> list[Problem]:
        problems = self._check(item)
        if problems:
            self.invalid_count += 1
        return problems

    def _check(self, item: Any) -> list[Problem]:
        if not isinstance(item, dict):
            self.resource_count += 1
            return [Problem("", "expected a JSON object (a resource or a Bundle)")]
        if item.get("resourceType") != "Bundle":
            self.resource_count += 1
            return self.validator.validate(item)
        self.bundle_count += 1
        entries = item.get("entry")
        if isinstance(entries, list):
            self.resource_count += sum(
                1 for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)
            )
        problems = self.validator.validate(item)
        if item.get("type") == "transaction":
            problems += [p for p in bundle_rules(item) if p not in problems]
        return problems


def validate_file(path: Path) -> FileValidation:
    """Problems in a FHIR JSON file (a resource or a Bundle) or NDJSON file (one per line).

    Iterate the result for ``(location, Problem)`` pairs; malformed JSON is a Problem
    with its line and column, never an exception. Raises ``OSError`` if the file
    cannot be read and ``UnicodeDecodeError`` if it is not UTF-8.
    """
    return FileValidation(Path(path))


def _json_problem(exc: json.JSONDecodeError) -> Problem:
    return Problem("", f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")


def _looks_like_ndjson(path: Path) -> bool:
    """A ``.json`` file whose first two non-blank lines each hold a whole JSON value."""
    seen = 0
    with path.open(encoding="utf-8-sig") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                json.loads(line)
            except json.JSONDecodeError:
                return False
            seen += 1
            if seen == 2:
                return True
    return False
