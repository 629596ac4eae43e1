"""The Bundles `symfhir map` writes are accepted as-is by a real FHIR R4 server, and replays
create nothing (conditional creates on business identifiers and tags)."""

from __future__ import annotations

import json

import pytest
import requests

from tests.conftest import map_sample
from tests.integration.conftest import BASE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("map") / "bundles.ndjson"
    code = map_sample(out)
    assert code == 1  # the sample holds deliberately invalid rows
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def post(session: requests.Session, bundle: dict) -> list[str]:
    response = session.post(BASE, data=json.dumps(bundle).encode("utf-8"))
    assert response.status_code == 200, response.text[:2000]
    reply = response.json()
    assert reply["type"] == "transaction-response"
    return [entry["response"]["status"] for entry in reply["entry"]]


def count(session: requests.Session, resource_type: str) -> int:
    response = session.get(f"{BASE}/{resource_type}", params={"_summary": "count"})
    response.raise_for_status()
    return response.json()["total"]


KINDS = ("Patient", "Consent", "Observation", "Media", "Binary", "Provenance", "Organization")


def test_server_accepts_every_sample_bundle_and_replays_create_nothing(fhir, bundles):
    assert len(bundles) == 30
    for bundle in bundles:
        statuses = post(fhir, bundle)
        assert len(statuses) == len(bundle["entry"])
        assert all(s.startswith(("201", "200")) for s in statuses), statuses
    before = {kind: count(fhir, kind) for kind in KINDS}
    for bundle in bundles:
        statuses = post(fhir, bundle)
        assert all(s.startswith("200") for s in statuses), statuses
    assert {kind: count(fhir, kind) for kind in KINDS} == before


def test_media_points_at_its_binary_on_the_server(fhir, bundles):
    for bundle in bundles:
        post(fhir, bundle)
    media_bundle = next(
        b for b in bundles if any(e["resource"]["resourceType"] == "Media" for e in b["entry"])
    )
    identifier = next(
        e["resource"]["identifier"][0]
        for e in media_bundle["entry"]
        if e["resource"]["resourceType"] == "Media"
    )
    found = fhir.get(
        f"{BASE}/Media", params={"identifier": f"{identifier['system']}|{identifier['value']}"}
    ).json()
    (media,) = [e["resource"] for e in found["entry"]]
    url = media["content"]["url"]
    assert url.startswith("Binary/") or "/Binary/" in url
    binary = fhir.get(
        f"{BASE}/{url.split('/fhir/')[-1]}", headers={"Accept": "application/fhir+json"}
    )
    assert binary.status_code == 200
    assert binary.json()["contentType"] == media["content"]["contentType"]
