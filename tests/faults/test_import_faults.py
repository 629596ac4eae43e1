"""`symfhir import` against a misbehaving server: bursts of 503, an HTML error page, a server
without Media and Consent. Each ends with the data written once or a clear stop."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from werkzeug import Request, Response

from symfhir.cli import main
from tests.conftest import AS_OF, SAMPLE

pytestmark = pytest.mark.faults

TYPES = [
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "RelatedPerson",
    "QuestionnaireResponse",
    "Observation",
    "AllergyIntolerance",
    "MedicationStatement",
    "Condition",
    "Procedure",
    "DocumentReference",
    "Consent",
    "Media",
    "Binary",
    "Provenance",
]


def statement(*types: str) -> Response:
    interactions = [{"code": c} for c in ("read", "create", "update", "search-type")]
    body = {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "rest": [
            {
                "mode": "server",
                "resource": [{"type": t, "interaction": interactions} for t in types],
                "interaction": [{"code": "transaction"}],
            }
        ],
    }
    return Response(json.dumps(body), 200, content_type="application/fhir+json")


class FhirStandIn:
    """Answers transactions like a server holding what it was sent (keyed by fullUrl)."""

    def __init__(self, failures: list[Response] | None = None) -> None:
        self.failures = list(failures or [])
        self.stored: dict[str, str] = {}
        self.types: set[str] = set()
        self.posts = 0

    def __call__(self, request: Request) -> Response:
        self.posts += 1
        if self.failures:
            return self.failures.pop(0)
        bundle = json.loads(request.get_data())
        answers = []
        for entry in bundle["entry"]:
            new = entry["fullUrl"] not in self.stored
            self.stored.setdefault(entry["fullUrl"], entry["resource"]["resourceType"])
            self.types.add(entry["resource"]["resourceType"])
            status = "201 Created" if new else "200 OK"
            answers.append({"response": {"status": status, "etag": 'W/"1"'}})
        reply = {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}
        return Response(json.dumps(reply), 200, content_type="application/fhir+json")


def run(httpserver, tmp_path: Path, *extra: str) -> int:
    return main(
        [
            "import",
            str(SAMPLE / "clients.csv"),
            "--server",
            httpserver.url_for("/fhir"),
            "--config",
            str(tmp_path / "symfhir.toml"),
            "--checkpoint",
            str(tmp_path / "checkpoint.json"),
            "--rejects",
            str(tmp_path / "rejects.csv"),
            "--as-of",
            AS_OF,
            "--quiet",
            *extra,
        ]
    )


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "symfhir.toml"
    path.write_text(
        "[server]\nread_timeout = 2\nretries = 4\nbackoff_factor = 0.001\nbackoff_max = 0.01\n",
        encoding="utf-8",
    )
    return path


def test_503_bursts_are_ridden_out_and_everything_lands_once(httpserver, tmp_path, config_file):
    busy = Response("busy", 503, headers={"Retry-After": "0"})
    server = FhirStandIn([busy, busy, busy])
    httpserver.expect_request("/fhir/metadata").respond_with_response(statement(*TYPES))
    httpserver.expect_request("/fhir", method="POST").respond_with_handler(server)
    assert run(httpserver, tmp_path, "--workers", "1") == 1  # the sample's invalid rows
    assert server.posts == 2 + 3  # two batches of 20 and 10 clients, three 503s retried
    patients = [u for u, t in server.stored.items() if t == "Patient"]
    assert len(patients) == 30
    point = json.loads((tmp_path / "checkpoint.json").read_text())
    assert point["complete"] is True
    assert point["imported"] == 30


def test_an_html_error_page_stops_the_run_clearly_and_resume_finishes(
    httpserver, tmp_path, config_file, capsys
):
    class Flaky(FhirStandIn):
        def __call__(self, request: Request) -> Response:
            if self.posts == 1:  # the second transaction meets a proxy's HTML page
                self.posts += 1
                page = "<html><h1>502 Bad Gateway</h1></html>"
                return Response(page, 502, content_type="text/html")
            return super().__call__(request)

    flaky = Flaky()
    httpserver.expect_request("/fhir/metadata").respond_with_response(statement(*TYPES))
    httpserver.expect_request("/fhir", method="POST").respond_with_handler(flaky)
    # 502 is retried; with retries = 0 the page reaches us at once.
    config_file.write_text("[server]\nretries = 0\nread_timeout = 2\n", encoding="utf-8")
    capsys.readouterr()
    assert run(httpserver, tmp_path, "--workers", "1") == 2
    err = capsys.readouterr().err
    assert "import stopped" in err
    assert "<html" not in err
    assert "--resume" in err
    point = json.loads((tmp_path / "checkpoint.json").read_text())
    assert point["complete"] is False
    assert point["imported"] == 20

    assert run(httpserver, tmp_path, "--workers", "1", "--resume") == 1
    point = json.loads((tmp_path / "checkpoint.json").read_text())
    assert point["complete"] is True
    assert point["imported"] == 30
    assert len([u for u, t in flaky.stored.items() if t == "Patient"]) == 30


def test_a_server_without_media_and_consent_gets_document_references(
    httpserver, tmp_path, config_file, capsys
):
    server = FhirStandIn()
    lacking = [t for t in TYPES if t not in ("Media", "Consent")]
    httpserver.expect_request("/fhir/metadata").respond_with_response(statement(*lacking))
    httpserver.expect_request("/fhir", method="POST").respond_with_handler(server)
    capsys.readouterr()
    code = main(
        [
            "import",
            str(SAMPLE / "clients.csv"),
            "--photos",
            str(SAMPLE / "photos.csv"),
            "--server",
            httpserver.url_for("/fhir"),
            "--config",
            str(config_file),
            "--checkpoint",
            str(tmp_path / "checkpoint.json"),
            "--rejects",
            str(tmp_path / "rejects.csv"),
            "--as-of",
            AS_OF,
            "--quiet",
        ]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "fallback: the server cannot create Media; 20 written as DocumentReference" in out
    assert "fallback: the server cannot create Consent" in out
    assert "Media" not in server.types
    assert "Consent" not in server.types
    assert "DocumentReference" in server.types


def test_a_server_that_cannot_take_patients_is_refused_before_sending(
    httpserver, tmp_path, config_file, capsys
):
    server = FhirStandIn()
    lacking = [t for t in TYPES if t != "Patient"]
    httpserver.expect_request("/fhir/metadata").respond_with_response(statement(*lacking))
    httpserver.expect_request("/fhir", method="POST").respond_with_handler(server)
    capsys.readouterr()
    assert run(httpserver, tmp_path) == 2
    assert "cannot create Patient" in capsys.readouterr().err
    assert server.posts == 0
    with (tmp_path / "rejects.csv").open(encoding="utf-8", newline="") as fh:
        assert all(row["_record"] for row in csv.DictReader(fh))
