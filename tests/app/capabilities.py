"""A CapabilityStatement for the fake EHR: the types its FHIR server can create. Writes fall
back to DocumentReference for a type left out, as on a server without Media or Consent."""

from __future__ import annotations

import json

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

FHIR_JSON = "application/fhir+json"
EVERYTHING = frozenset(
    {
        "Binary",
        "Consent",
        "DocumentReference",
        "Media",
        "Practitioner",
        "PractitionerRole",
        "Provenance",
        "RelatedPerson",
    }
)


class Capabilities:
    def __init__(self, server: HTTPServer, creatable: frozenset[str] = EVERYTHING) -> None:
        self.creatable = set(creatable)
        server.expect_request("/fhir/metadata").respond_with_handler(self._metadata)

    def _metadata(self, _: Request) -> Response:
        resources = [
            {"type": t, "interaction": [{"code": "create"}, {"code": "read"}]}
            for t in sorted(self.creatable)
        ]
        statement = {
            "resourceType": "CapabilityStatement",
            "fhirVersion": "4.0.1",
            "rest": [{"mode": "server", "resource": resources}],
        }
        return Response(json.dumps(statement), content_type=FHIR_JSON)
