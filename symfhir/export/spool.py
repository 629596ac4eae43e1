"""The client's resources staged on disk while an export is written: one NDJSON file per
resource type in a private temporary folder, so every output format is produced by reading
them back line by line and memory stays constant whatever the record's size."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from symfhir.export.output import sweep_stale
from symfhir.fhir.paths import check_type

PREFIX = "symfhir-export-"


class Spool:
    """Per-type NDJSON files in a temporary folder (mode 0700), removed on ``close``.

    Use it as a context manager. ``add`` ignores a resource already added (same type and id),
    since $everything pages may repeat one.
    """

    def __init__(self) -> None:
        # PHI on disk for the export's duration only: a private folder, deleted on close
        # (and, should the process be killed, by a later export's sweep).
        sweep_stale(Path(tempfile.gettempdir()), f"{PREFIX}*")
        self._dir = Path(tempfile.mkdtemp(prefix=PREFIX))
        self._files: dict[str, IO[bytes]] = {}
        self._seen: set[str] = set()
        self.counts: dict[str, int] = {}

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for stream in self._files.values():
            stream.close()
        self._files.clear()
        shutil.rmtree(self._dir, ignore_errors=True)

    def add(self, resource: dict[str, Any]) -> bool:
        """Stage ``resource``; False when it was staged already. Raises FhirRequestError
        for a resource without a valid type."""
        resource_type = check_type(str(resource.get("resourceType", "")))
        key = f"{resource_type}/{resource.get('id', '')}"
        if key in self._seen:
            return False
        self._seen.add(key)
        stream = self._files.get(resource_type)
        if stream is None:
            stream = (self._dir / f"{resource_type}.ndjson").open("w+b")
            self._files[resource_type] = stream
        stream.write(orjson.dumps(resource) + b"\n")
        self.counts[resource_type] = self.counts.get(resource_type, 0) + 1
        return True

    def has(self, key: str) -> bool:
        """Whether ``Type/id`` was staged."""
        return key in self._seen

    def types(self) -> list[str]:
        """The staged types: Patient first, then by name."""
        return sorted(self.counts, key=lambda t: (t != "Patient", t))

    def lines(self, resource_type: str) -> Iterator[bytes]:
        """The staged resources of one type as NDJSON lines (each ending in a newline)."""
        stream = self._files.get(resource_type)
        if stream is None:
            return
        stream.flush()
        with (self._dir / f"{resource_type}.ndjson").open("rb") as reader:
            yield from reader

    def resources(self, resource_type: str) -> Iterator[dict[str, Any]]:
        """The staged resources of one type, parsed one at a time."""
        for line in self.lines(resource_type):
            yield orjson.loads(line)

    def copy_ndjson(self, resource_type: str, dest: IO[bytes]) -> None:
        """Copy one type's NDJSON file into ``dest`` in chunks."""
        stream = self._files.get(resource_type)
        if stream is None:
            return
        stream.flush()
        with (self._dir / f"{resource_type}.ndjson").open("rb") as reader:
            shutil.copyfileobj(reader, dest, 1024 * 1024)
