"""A real R4 server accepts the DocumentReference fallbacks of Media and Consent as they are.

The sample's identifiers are fixed, so an earlier run (or test_sample_bundles) may have written
the same resources already: every assertion holds whether this run creates them or finds them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from symfhir.mapping.fallback import CONSENT_TAG, FALLBACK_SYSTEM, MEDIA_TAG, adapt_bundle
from tests.conftest import map_sample

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def adapted(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The sample Bundles holding photos, adapted for a server without Media and Consent."""
    out = tmp_path_factory.mktemp("fallback") / "bundles.ndjson"
    assert map_sample(out) == 1  # the sample holds deliberately invalid rows
    bundles = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    chosen = []
    for bundle in bundles:
        if any(e["resource"]["resourceType"] == "Media" for e in bundle["entry"]):
            result, counts = adapt_bundle(bundle, lambda t: t not in ("Media", "Consent"))
            assert counts["Media"] >= 1
            assert counts["Consent"] >= 1
            chosen.append(result)
    assert len(chosen) >= 2
    return chosen


def post(session: requests.Session, base: str, bundle: dict[str, Any]) -> list[str]:
    response = session.post(base, data=json.dumps(bundle).encode("utf-8"))
    assert response.status_code == 200, response.text[:2000]
    reply = response.json()
    assert reply["type"] == "transaction-response"
    return [entry["response"]["status"] for entry in reply["entry"]]


def fallbacks(bundle: dict[str, Any], tag: dict[str, str]) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle["entry"]
        if tag in e["resource"].get("meta", {}).get("tag", [])
    ]


def find(
    session: requests.Session, base: str, resource_type: str, **params: str
) -> list[dict[str, Any]]:
    response = session.get(f"{base}/{resource_type}", params={**params, "_count": "100"})
    response.raise_for_status()
    return [e["resource"] for e in response.json().get("entry", [])]


def search_key(identifier: dict[str, str]) -> str:
    return f"{identifier['system']}|{identifier['value']}"


def test_server_stores_the_fallbacks_and_replays_create_nothing(fhir, fhir_base, adapted):
    for bundle in adapted:
        statuses = post(fhir, fhir_base, bundle)
        assert len(statuses) == len(bundle["entry"])
        assert all(s.startswith(("201", "200")) for s in statuses), statuses
    for bundle in adapted:
        statuses = post(fhir, fhir_base, bundle)
        assert all(s.startswith("200") for s in statuses), statuses


def test_photo_fallbacks_point_at_their_binary(fhir, fhir_base, adapted):
    for bundle in adapted:
        post(fhir, fhir_base, bundle)
        for sent in fallbacks(bundle, MEDIA_TAG):
            key = search_key(sent["identifier"][0])
            (stored,) = find(fhir, fhir_base, "DocumentReference", identifier=key)
            attachment = stored["content"][0]["attachment"]
            sent_attachment = sent["content"][0]["attachment"]
            for field in ("contentType", "size", "hash", "title", "creation"):
                assert attachment[field] == sent_attachment[field]
            url = attachment["url"]
            assert url.startswith("Binary/") or "/Binary/" in url, url
            binary = fhir.get(f"{fhir_base}/Binary/{url.rsplit('Binary/', 1)[1]}")
            assert binary.status_code == 200
            assert binary.json()["contentType"] == sent_attachment["contentType"]
            assert stored["subject"]["reference"].startswith("Patient/")
            if "context" in sent:  # the photo belongs to a treatment
                related = stored["context"]["related"][0]["reference"]
                assert related.startswith("Procedure/"), related


def test_consent_fallbacks_keep_the_form_and_the_consent(fhir, fhir_base, adapted):
    for bundle in adapted:
        post(fhir, fhir_base, bundle)
    sent = [doc for bundle in adapted for doc in fallbacks(bundle, CONSENT_TAG)]
    with_form = next(doc for doc in sent if len(doc["content"]) == 2)
    for doc in (sent[0], with_form):
        (stored,) = find(
            fhir, fhir_base, "DocumentReference", identifier=search_key(doc["identifier"][0])
        )
        assert stored["subject"]["reference"].startswith("Patient/")
        assert stored["custodian"]["reference"].startswith("Organization/")
        assert [c["attachment"]["hash"] for c in stored["content"]] == [
            c["attachment"]["hash"] for c in doc["content"]
        ]
        consent = json.loads(base64.b64decode(stored["content"][-1]["attachment"]["data"]))
        assert consent["resourceType"] == "Consent"
        assert consent["identifier"] == doc["identifier"]


@pytest.mark.parametrize("tag", [MEDIA_TAG, CONSENT_TAG], ids=["media", "consent"])
def test_the_fallback_tag_finds_them(fhir, fhir_base, adapted, tag):
    for bundle in adapted:
        post(fhir, fhir_base, bundle)
    sent = [doc for bundle in adapted for doc in fallbacks(bundle, tag)]
    assert sent
    for doc in sent[:10]:
        found = find(
            fhir,
            fhir_base,
            "DocumentReference",
            _tag=f"{FALLBACK_SYSTEM}|{tag['code']}",
            identifier=search_key(doc["identifier"][0]),
        )
        assert len(found) == 1
    response = fhir.get(
        f"{fhir_base}/DocumentReference",
        params={"_tag": f"{FALLBACK_SYSTEM}|{tag['code']}", "_summary": "count"},
    )
    response.raise_for_status()
    assert response.json()["total"] >= len(sent)
