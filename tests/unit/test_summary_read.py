"""symfhir.sharing.summary_read with a paging stand-in server: pages addressed by _offset, a
server that ignores _offset, a record that grows while it is read, failed entries, the
size cap, and the actor's permissions."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import parse_qsl

import pytest

from symfhir.errors import NotAllowedError, SharingError
from symfhir.sharing import summary_read
from symfhir.sharing.summary_read import read_summary_resources
from symfhir.workspace.actor import Actor

pytestmark = pytest.mark.unit

PID = "p1"
OWNER = {
    "AllergyIntolerance": "patient",
    "MedicationStatement": "subject",
    "Condition": "subject",
    "Procedure": "subject",
    "Observation": "subject",
    "Consent": "patient",
}


def make(kind: str, i: int, pid: str = PID) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "id": f"{kind[:3]}{i:05d}",
        OWNER[kind]: {"reference": f"Patient/{pid}"},
    }


class PagingServer:
    """Answers batches of reads and searches like HAPI: _count capped at 200, _offset, _sort=_id,
    _total=accurate. ``ignore_offset`` answers every page as the first; after the first batch,
    ``grow`` adds resources and ``drop`` deletes those of these ids."""

    def __init__(self, resources, *, ignore_offset=False, grow=(), drop=(), totals=True, fail=()):
        self.resources = list(resources)
        self.ignore_offset = ignore_offset
        self.grow = list(grow)
        self.drop = set(drop)
        self.totals = totals
        self.fail = set(fail)
        self.batches: list[list[str]] = []
        self.searches: list[str] = []

    def _matches(self, kind, query):
        parameter = OWNER.get(kind)
        wanted = query.get(parameter)
        found = [
            r
            for r in self.resources
            if r["resourceType"] == kind and (r.get(parameter) or {}).get("reference") == wanted
        ]
        return sorted(found, key=lambda r: r["id"])

    def batch(self, bundle):
        urls = [e["request"]["url"] for e in bundle["entry"]]
        self.batches.append(urls)
        entries = []
        for url in urls:
            path, _, q = url.partition("?")
            query = dict(parse_qsl(q))
            kind = path.split("/")[0]
            if kind in self.fail:
                entries.append({"response": {"status": "403 Forbidden"}})
            elif "/" in path:
                found = [r for r in self.resources if f"{r['resourceType']}/{r['id']}" == path]
                entries.append(
                    {"resource": found[0], "response": {"status": "200 OK"}}
                    if found
                    else {"response": {"status": "404 Not Found"}}
                )
            else:
                matches = self._matches(kind, query)
                count = min(int(query.get("_count", 20)), 200)
                offset = 0 if self.ignore_offset else int(query.get("_offset", 0))
                page = matches[offset : offset + count]
                result = {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "entry": [{"resource": r, "search": {"mode": "match"}} for r in page],
                }
                if self.totals and query.get("_total") == "accurate":
                    result["total"] = len(matches)
                entries.append({"resource": result, "response": {"status": "200 OK"}})
        if len(self.batches) == 1:
            self.resources = [r for r in self.resources if r["id"] not in self.drop] + self.grow
        return {"resourceType": "Bundle", "type": "batch-response", "entry": entries}

    def search(self, kind, params):
        self.searches.append(kind)
        yield from self._matches(kind, params)


def record(observations=450, procedures=30, other=True):
    resources = [{"resourceType": "Patient", "id": PID}]
    resources += [make("Observation", i) for i in range(observations)]
    resources += [make("Procedure", i) for i in range(procedures)]
    resources += [make("AllergyIntolerance", i) for i in range(3)]
    if other:
        resources += [{"resourceType": "Patient", "id": "p2"}, make("Condition", 1, "p2")]
    return resources


def counts(found):
    return Counter(r["resourceType"] for r in found)


def test_pages_by_offset_in_two_requests():
    server = PagingServer(record())
    found = read_summary_resources(server, Actor(None), PID)
    assert len(server.batches) == 2
    assert counts(found) == Counter(
        {"Patient": 1, "Observation": 450, "Procedure": 30, "AllergyIntolerance": 3}
    )
    # the second batch asks only for what is left, all at once
    assert sorted(u.rsplit("_offset=", 1)[1] for u in server.batches[1]) == ["200", "400"]
    assert all("_sort=_id" in u for u in server.batches[1])


def test_two_thousand_resources_take_two_requests():
    server = PagingServer(record(observations=1500, procedures=497, other=False))
    found = read_summary_resources(server, Actor(None), PID)
    assert len(found) == 2001
    assert len(server.batches) == 2


def test_a_small_record_takes_one_request():
    server = PagingServer(record(observations=5, procedures=2))
    read_summary_resources(server, Actor(None), PID)
    assert len(server.batches) == 1


def test_another_clients_resources_are_left_out():
    server = PagingServer(record())
    found = read_summary_resources(server, Actor(None), PID)
    assert not [r for r in found if r["resourceType"] == "Condition"]
    # even when a server wrongly answers with them
    server.resources.append(
        make("Observation", 99999, "p2") | {"subject": {"reference": "Patient/p2"}}
    )
    server._matches = lambda kind, query: [r for r in server.resources if r["resourceType"] == kind]
    found = read_summary_resources(server, Actor(None), PID)
    assert all(r.get("id") != "Obs99999" for r in found)
    assert [r["id"] for r in found if r["resourceType"] == "Patient"] == [PID]


def test_a_record_is_read_as_the_first_request_finds_it():
    grow = [make("Observation", 1000 + i) for i in range(5)]
    server = PagingServer(record(observations=400), grow=grow)
    found = read_summary_resources(server, Actor(None), PID)
    assert counts(found)["Observation"] == 400  # created after the read began
    assert len(server.batches) == 2


def test_a_deletion_while_read_reads_the_type_again():
    # one of the first page is deleted: every later page shifts by one under its offset
    server = PagingServer(record(observations=450), drop={"Obs00010"})
    found = read_summary_resources(server, Actor(None), PID)
    ids = {r["id"] for r in found if r["resourceType"] == "Observation"}
    assert ids == {f"Obs{i:05d}" for i in range(450)} - {"Obs00010"}
    assert len(server.batches) == 3 <= summary_read.MAX_ROUNDS
    assert "_total=accurate" in server.batches[2][0]


def test_a_record_that_keeps_changing_is_refused(monkeypatch):
    server = PagingServer(record(observations=450), drop={"Obs00010"})
    monkeypatch.setattr(summary_read, "MAX_ROUNDS", 2)
    with pytest.raises(SharingError, match="kept changing"):
        read_summary_resources(server, Actor(None), PID)


def test_without_totals_pages_are_read_one_round_each():
    server = PagingServer(record(observations=450), totals=False)
    found = read_summary_resources(server, Actor(None), PID)
    assert counts(found)["Observation"] == 450
    assert len(server.batches) == 3


def test_a_server_ignoring_offset_is_read_by_its_pages():
    server = PagingServer(record(observations=450), ignore_offset=True)
    found = read_summary_resources(server, Actor(None), PID)
    assert counts(found)["Observation"] == 450
    assert server.searches == ["Observation"]


def test_too_large_a_record_is_refused(monkeypatch):
    monkeypatch.setattr(summary_read, "MAX_RESOURCES", 100)
    server = PagingServer(record())
    with pytest.raises(SharingError, match="more than the 100"):
        read_summary_resources(server, Actor(None), PID)
    assert len(server.batches) == 1


def test_a_failed_entry_names_its_type():
    server = PagingServer(record(), fail={"Consent"})
    with pytest.raises(SharingError, match=r"^Consent: could not be read for the summary \(403\)"):
        read_summary_resources(server, Actor(None), PID)


def test_a_missing_patient_is_refused():
    server = PagingServer(record())
    with pytest.raises(SharingError, match="Patient"):
        read_summary_resources(server, Actor(None), "nobody")


def test_permissions_are_checked_before_any_request():
    server = PagingServer(record())
    denied = {("Observation", "s"), ("Patient", "r")}
    actor = Actor(None, permits=lambda kind, what: (kind, what) not in denied)
    with pytest.raises(NotAllowedError) as caught:
        read_summary_resources(server, actor, PID)
    assert set(caught.value.missing) == denied
    assert server.batches == []


@pytest.mark.parametrize("bad", ["../Patient", "a b", "x?y=1", ""])
def test_malformed_ids_are_refused_before_any_request(bad):
    server = PagingServer(record())
    with pytest.raises(Exception) as caught:
        read_summary_resources(server, Actor(None), bad)
    assert type(caught.value).__name__ in {"FhirRequestError", "SharingError"}
    assert server.batches == []
