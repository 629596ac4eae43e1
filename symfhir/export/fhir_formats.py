"""The machine-readable formats: a FHIR Bundle of type ``collection`` (JSON) and NDJSON as
the Bulk Data specification writes it (one resource per line, one type per file), both
written from the Spool a line at a time.

https://hl7.org/fhir/R4/bundle.html and https://hl7.org/fhir/uv/bulkdata/export.html
"""

from __future__ import annotations

from datetime import datetime
from typing import IO

import orjson

from symfhir.export.spool import Spool


def write_bundle(
    spool: Spool, dest: IO[bytes], *, bundle_id: str, base_url: str, now: datetime
) -> None:
    """The staged resources as one collection Bundle, Patient first; each entry's
    ``fullUrl`` is the resource's URL on the server it came from."""
    head = {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "collection",
        "timestamp": now.isoformat(timespec="seconds"),
    }
    # The head is closed by hand so that entries can follow without building the list.
    dest.write(orjson.dumps(head)[:-1] + b',"entry":[')
    base = base_url.rstrip("/")
    first = True
    for resource_type in spool.types():
        for line in spool.lines(resource_type):
            resource = line.rstrip(b"\n")
            resource_id = orjson.loads(resource).get("id", "")
            full_url = orjson.dumps(f"{base}/{resource_type}/{resource_id}")
            dest.write(b"" if first else b",")
            dest.write(b'\n{"fullUrl":' + full_url + b',"resource":' + resource + b"}")
            first = False
    dest.write(b"\n]}\n")


def write_ndjson(spool: Spool, dest: IO[bytes]) -> None:
    """Every staged resource, one per line, grouped by type (Patient first)."""
    for resource_type in spool.types():
        spool.copy_ndjson(resource_type, dest)
