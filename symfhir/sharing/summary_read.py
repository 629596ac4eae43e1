"""Reading what the patient summary needs — the Patient, its allergies, medications, conditions,
procedures, observations and consents — in at most a few FHIR requests, whatever the size of
the record.

One batch reads the Patient and the first page of every search, with its total
(``_total=accurate``); one more batch reads every remaining page at once, addressed by
``_offset`` (HAPI FHIR pages this way; its largest page is 200, server/…/RestServerConfig.java)
with a stable ``_sort=_id``. A client with 2,000 such resources takes 2 requests; only a record
that changes while it is read takes a third or fourth. A server that ignores ``_offset``
(its pages repeat) is read the long way, by its ``next`` links: complete before quick.

https://hl7.org/fhir/R4/http.html#transaction (batch), https://hl7.org/fhir/R4/search.html
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from symfhir.errors import NotAllowedError, SharingError
from symfhir.fhir import FhirClient
from symfhir.fhir.compartment import in_compartment
from symfhir.fhir.paths import check_id
from symfhir.fhir.reading import read_batch
from symfhir.workspace.actor import Actor

#: (type, the search parameter naming the patient) of every summary search.
SEARCHES = (
    ("AllergyIntolerance", "patient"),
    ("MedicationStatement", "subject"),
    ("Condition", "subject"),
    ("Procedure", "subject"),
    ("Observation", "subject"),
    ("Consent", "patient"),
)
PAGE_SIZE = 200  # HAPI's maximum page size (a larger _count is cut to it)
MAX_RESOURCES = 20_000  # a summary beyond this is not a summary: refused, not truncated
MAX_ROUNDS = 4  # a stable record takes 2; more only when it changes while it is read


@dataclass
class _Search:
    resource_type: str
    url: str
    total: int | None = None  # as the last first page counted it
    fetched: int = 0  # the next offset to read
    done: bool = False
    restart: bool = False  # shrank while read: read again from the first page


def summary_needs() -> tuple[tuple[str, str], ...]:
    """The (type, interaction) pairs reading the summary needs."""
    return (("Patient", "r"), *((t, "s") for t, _ in SEARCHES))


def read_summary_resources(
    client: FhirClient, actor: Actor, patient_id: str
) -> list[dict[str, Any]]:
    """The Patient ``patient_id`` and its summary resources (only those in its compartment),
    in 2 FHIR requests for a record that does not change while it is read.

    The record is read as its first request finds it: a resource created after it may be
    missing, as with any read. One deleted while it is read would shift the later pages
    under their offsets: the type is then read again from its first page (a third request).

    Raises NotAllowedError before any request when ``actor`` may not read the Patient or
    search one of the types (a summary silently missing allergies would mislead),
    FhirRequestError for an id that is not one, FhirServerError when a batch fails,
    SharingError when an entry of it fails (naming the type), when the record holds more than
    MAX_RESOURCES summary resources, or when it keeps changing while it is read.
    """
    missing = tuple(n for n in summary_needs() if not actor.may(*n))
    if missing:
        raise NotAllowedError(missing)
    pid = check_id(patient_id)
    searches = [
        _Search(t, f"{t}?{p}=Patient/{pid}&_sort=_id&_count={PAGE_SIZE}") for t, p in SEARCHES
    ]
    found: dict[str, dict[str, Any]] = {}
    answer = client.batch(read_batch([f"Patient/{pid}", *(_page_url(s, 0) for s in searches)]))
    entries = _entries(answer)
    patient = _resource(entries[0], "Patient")
    if patient.get("resourceType") != "Patient":
        raise SharingError("Patient: the read did not answer a Patient")
    found[f"Patient/{patient.get('id')}"] = patient
    for search, entry in zip(searches, entries[1:], strict=True):
        _take(search, 0, _resource(entry, search.resource_type), found)
    _check_size(searches)
    rounds = 1
    while any(not s.done for s in searches):
        if rounds >= MAX_ROUNDS:
            raise SharingError("record: it kept changing while it was read; try again")
        rounds += 1
        _next_round(client, pid, searches, found)
    return [r for r in found.values() if in_compartment(r, pid)]


def _page_url(search: _Search, offset: int) -> str:
    # a first page counts the matches: the total says which pages are left
    return f"{search.url}&_total=accurate" if offset == 0 else f"{search.url}&_offset={offset}"


def _next_round(
    client: FhirClient, pid: str, searches: list[_Search], found: dict[str, dict[str, Any]]
) -> None:
    """One batch of every page still to read: all of them when the total is known."""
    wanted: list[tuple[_Search, int]] = []
    for search in searches:
        if search.done:
            continue
        if search.restart:
            search.restart, search.fetched = False, 0
            for key in [
                k for k, r in found.items() if r.get("resourceType") == search.resource_type
            ]:
                del found[key]
        end = search.total if search.total is not None else search.fetched + PAGE_SIZE
        end = max(end, search.fetched + 1)
        wanted += [(search, offset) for offset in range(search.fetched, end, PAGE_SIZE)]
    entries = _entries(client.batch(read_batch([_page_url(s, o) for s, o in wanted])))
    for (search, offset), entry in zip(wanted, entries, strict=True):
        if search.done or search.restart:
            continue
        bundle = _resource(entry, search.resource_type)
        items = _matches(bundle)
        if offset and items and all(_key(r) in found for r in items):
            # the same page again: this server ignores _offset; read it by its next links
            _read_all(client, pid, search, found)
            continue
        _take(search, offset, bundle, found)


def _take(
    search: _Search, offset: int, bundle: Mapping[str, Any], found: dict[str, dict[str, Any]]
) -> None:
    """Keep a page's matches; decide whether the search is done or must start again."""
    items = _matches(bundle)
    if offset == 0:
        total = bundle.get("total")
        search.total = total if isinstance(total, int) and not isinstance(total, bool) else None
    for item in items:
        found.setdefault(_key(item), item)
    search.fetched = offset + len(items)
    if len(items) < PAGE_SIZE:
        # a short page before the counted total: something was deleted meanwhile
        search.restart = search.total is not None and search.fetched < search.total
        search.done = not search.restart
    else:
        search.done = search.total is not None and search.fetched >= search.total


def _read_all(
    client: FhirClient, pid: str, search: _Search, found: dict[str, dict[str, Any]]
) -> None:
    parameter = dict(SEARCHES)[search.resource_type]
    params = {parameter: f"Patient/{pid}", "_sort": "_id", "_count": str(PAGE_SIZE)}
    for item in client.search(search.resource_type, params):
        if item.get("resourceType") == search.resource_type:
            found.setdefault(_key(item), item)
    search.done = True


def _check_size(searches: list[_Search]) -> None:
    total = sum(s.total or 0 for s in searches)
    if total > MAX_RESOURCES:
        raise SharingError(
            f"record: {total} summary resources, more than the {MAX_RESOURCES} a summary holds"
        )


def _entries(answer: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    entries = answer.get("entry")
    return (
        [e if isinstance(e, Mapping) else {} for e in entries] if isinstance(entries, list) else []
    )


def _resource(entry: Mapping[str, Any], label: str) -> dict[str, Any]:
    """The entry's resource; SharingError naming ``label`` (a type) when the entry failed."""
    status = str((entry.get("response") or {}).get("status", ""))
    resource = entry.get("resource")
    if not status.startswith("2") or not isinstance(resource, dict):
        code = status.split(" ")[0] or "no status"
        raise SharingError(f"{label}: could not be read for the summary ({code})")
    return resource


def _matches(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A searchset's matches (not its included resources or OperationOutcome)."""
    out = []
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, Mapping):
            continue
        resource = entry.get("resource")
        mode = (entry.get("search") or {}).get("mode")
        if isinstance(resource, dict) and mode in (None, "match"):
            out.append(resource)
    return out


def _key(resource: Mapping[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"
