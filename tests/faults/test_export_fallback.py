"""The export against a pytest-httpserver FHIR stand-in: a server whose CapabilityStatement
lacks $everything is read by one search per compartment type, following ``next`` links;
what a search answers that is not the client's is left out; a Practitioner the record
references is read; a failing photo leaves no file behind."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from symfhir.errors import FhirServerError
from symfhir.export import export_patient
from symfhir.fhir import FhirClient
from symfhir.fhir.compartment import load_compartment
from symfhir.workspace.actor import Actor

pytestmark = pytest.mark.faults

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))
FHIR_JSON = "application/fhir+json"


def _statement(everything: bool) -> dict[str, Any]:
    resources = []
    for name in [*load_compartment(), "Practitioner"]:
        entry: dict[str, Any] = {
            "type": name,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
        }
        if name == "Patient" and everything:
            entry["operation"] = [{"name": "everything", "definition": "x"}]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{"mode": "server", "resource": resources}],
    }


def _bundle(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def _obs(oid: str, patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"text": f"obs {oid}"},
        "subject": {"reference": f"Patient/{patient}"},
        "performer": [{"reference": "Practitioner/n1"}],
    }


class FakeServer:
    """A FHIR server without $everything holding client p1's record over two pages."""

    def __init__(self, base: str, everything: bool = False) -> None:
        self.base = base
        self.everything = everything
        self.paths: list[str] = []

    def __call__(self, request: Request) -> Response:
        path = request.path.removeprefix("/fhir/")
        self.paths.append(request.full_path)
        args = request.args
        if path == "metadata":
            return self._json(_statement(self.everything))
        if path == "Patient/p1":
            return self._json({"resourceType": "Patient", "id": "p1", "name": [{"text": "A"}]})
        if path == "Practitioner/n1":
            return self._json({"resourceType": "Practitioner", "id": "n1"})
        if path == "Binary/b1":
            return Response(b"not found", status=404)
        if path == "Observation" and args.get("patient") == "Patient/p1":
            if args.get("page") == "2":
                return self._json(_bundle([_obs("o3", "p1"), _obs("o4", "p2")]))
            page2 = f"{self.base}/Observation?patient=Patient/p1&page=2"
            return self._json(_bundle([_obs("o1", "p1"), _obs("o2", "p1")], page2))
        if re.fullmatch(r"[A-Z][A-Za-z]+", path):
            return self._json(_bundle([]))
        return Response(b"unexpected", status=400)

    @staticmethod
    def _json(body: dict[str, Any]) -> Response:
        return Response(json.dumps(body), content_type=FHIR_JSON)


def test_without_everything_each_type_is_searched_and_paged(
    httpserver: HTTPServer, client: FhirClient, tmp_path: Path
) -> None:
    server = FakeServer(client.base_url)
    httpserver.expect_request(re.compile("/fhir/.*")).respond_with_handler(server)
    out = tmp_path / "record.ndjson"
    result = export_patient(client, Actor(None), "p1", out, fmt="ndjson", now=NOW, audit=_none)

    assert result.method == "per-type searches"
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [(r["resourceType"], r["id"]) for r in lines]
    assert ids[0] == ("Patient", "p1")
    assert ("Observation", "o3") in ids  # the second page was read
    assert ("Observation", "o4") not in ids  # another client's, though the search said so
    assert ("Practitioner", "n1") in ids  # referenced by the record: read on its own
    assert result.dropped == 1
    searched = {p.split("?")[0].removeprefix("/fhir/") for p in server.paths if "?" in p}
    expected = {t for t in load_compartment() if t not in ("Patient", "Binary")}
    assert expected <= searched
    assert not any("$everything" in p for p in server.paths)


def test_with_everything_it_is_used(
    httpserver: HTTPServer, client: FhirClient, tmp_path: Path
) -> None:
    server = FakeServer(client.base_url, everything=True)

    def everything(request: Request) -> Response:
        if request.path.endswith("/$everything"):
            return FakeServer._json(_bundle([_obs("o1", "p1"), _obs("o9", "p2")]))
        return server(request)

    httpserver.expect_request(re.compile("/fhir/.*")).respond_with_handler(everything)
    result = export_patient(
        client, Actor(None), "p1", tmp_path / "r.ndjson", fmt="ndjson", now=NOW, audit=_none
    )
    assert result.method == "$everything"
    assert result.counts == {"Patient": 1, "Observation": 1, "Practitioner": 1}


def test_a_type_the_user_may_not_read_is_left_out_and_named(
    httpserver: HTTPServer, client: FhirClient, tmp_path: Path
) -> None:
    server = FakeServer(client.base_url)
    httpserver.expect_request(re.compile("/fhir/.*")).respond_with_handler(server)
    actor = Actor(None, permits=lambda kind, _: kind != "Observation")
    result = export_patient(
        client, actor, "p1", tmp_path / "r.ndjson", fmt="ndjson", now=NOW, audit=_none
    )
    assert "Observation" in result.not_read
    assert "Observation" not in result.counts
    assert not any(p.startswith("/fhir/Observation") for p in server.paths)


def test_a_photo_that_cannot_be_read_leaves_no_file(
    httpserver: HTTPServer, client: FhirClient, tmp_path: Path
) -> None:
    server = FakeServer(client.base_url)
    media = {
        "resourceType": "Media",
        "id": "m1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "content": {"contentType": "image/jpeg", "url": "Binary/b1"},
    }

    def with_media(request: Request) -> Response:
        if request.path == "/fhir/Media":
            return FakeServer._json(_bundle([media]))
        return server(request)

    httpserver.expect_request(re.compile("/fhir/.*")).respond_with_handler(with_media)
    events: list[tuple[str, bool]] = []

    def audit(subtype: str, *, success: bool = True, **_: Any) -> None:
        events.append((subtype, success))

    out = tmp_path / "record.zip"
    with pytest.raises(FhirServerError):
        export_patient(client, Actor(None), "p1", out, fmt="zip", now=NOW, audit=audit)
    assert list(tmp_path.iterdir()) == []
    assert ("export", False) in events


def _none(subtype: str, **_: Any) -> None:
    return None


def test_ndjson_to_a_folder_is_one_file_per_type(
    httpserver: HTTPServer, client: FhirClient, tmp_path: Path
) -> None:
    import hashlib

    server = FakeServer(client.base_url)
    httpserver.expect_request(re.compile("/fhir/.*")).respond_with_handler(server)
    folder = tmp_path / "bulk"
    folder.mkdir()
    result = export_patient(client, Actor(None), "p1", folder, fmt="ndjson", now=NOW, audit=_none)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["Observation.ndjson", "Patient.ndjson", "Practitioner.ndjson"]
    for name in names:
        kinds = {
            json.loads(line)["resourceType"] for line in (folder / name).read_text().splitlines()
        }
        assert kinds == {name.removesuffix(".ndjson")}
    whole = b"".join((folder / f"{t}.ndjson").read_bytes() for t in result.counts)
    assert result.size == len(whole)
    ordered = b"".join(
        (folder / f"{t}.ndjson").read_bytes() for t in ("Patient", "Observation", "Practitioner")
    )
    assert result.sha256 == hashlib.sha256(ordered).hexdigest()
