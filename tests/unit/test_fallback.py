"""Media and Consent fall back to DocumentReference: same content, valid R4, same Bundle shape."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.documentreference import DocumentReference

from symfhir.errors import FhirCapabilityError, FhirValidationError
from symfhir.mapping.fallback import (
    CONSENT_DETAILS,
    CONSENT_TAG,
    FALLBACK_SYSTEM,
    MEDIA_DETAILS,
    MEDIA_TAG,
    adapt_bundle,
    consent_from_document_reference,
    consent_to_document_reference,
    media_from_document_reference,
    media_to_document_reference,
)
from symfhir.mapping.photos import PHASE_EXTENSION
from symfhir.validation import FastValidator, bundle_rules
from tests.conftest import map_sample

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out: Path = tmp_path_factory.mktemp("fallback") / "bundles.ndjson"
    assert map_sample(out) == 1  # the sample holds deliberately invalid rows
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def resources(bundles: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [
        e["resource"] for b in bundles for e in b["entry"] if e["resource"]["resourceType"] == kind
    ]


def details(doc: dict[str, Any], url: str) -> dict[str, list[Any]]:
    """The sub-extensions of ``url`` as name → values."""
    (extension,) = [e for e in doc["extension"] if e["url"] == url]
    out: dict[str, list[Any]] = {}
    for item in extension["extension"]:
        (value,) = [v for k, v in item.items() if k.startswith("value")]
        out.setdefault(item["url"], []).append(value)
    return out


def embedded(doc: dict[str, Any]) -> dict[str, Any]:
    (json_content,) = [
        c["attachment"]
        for c in doc["content"]
        if c["attachment"]["contentType"].startswith("application/fhir+json")
    ]
    return json.loads(base64.b64decode(json_content["data"]))


def cannot(*kinds: str) -> Any:
    return lambda resource_type: resource_type not in kinds


@pytest.fixture(scope="module")
def media_with_treatment(bundles: list[dict[str, Any]]) -> dict[str, Any]:
    return next(m for m in resources(bundles, "Media") if m.get("partOf"))


def consent_of(bundles: list[dict[str, Any]], **wanted: Any) -> dict[str, Any]:
    def matches(consent: dict[str, Any]) -> bool:
        return all(
            consent.get(key) == value
            if key != "with_form"
            else ("sourceAttachment" in consent) == value
            for key, value in wanted.items()
        )

    return next(c for c in resources(bundles, "Consent") if matches(c))


# -- Media ----------------------------------------------------------------------------------


def test_media_content_is_kept_field_by_field(media_with_treatment):
    media = media_with_treatment
    doc = media_to_document_reference(media)
    assert doc["resourceType"] == "DocumentReference"
    assert doc["identifier"] == media["identifier"]
    assert doc["status"] == "current"
    assert doc["docStatus"] == "final"
    assert doc["type"] == media["type"]
    assert doc["subject"] == media["subject"]
    assert doc["date"] == media["createdDateTime"]
    (content,) = doc["content"]
    attachment = content["attachment"]
    assert attachment == media["content"]
    for key in ("url", "hash", "size", "contentType", "creation", "title"):
        assert attachment[key] == media["content"][key]
    assert attachment["url"].startswith("urn:uuid:")  # still the Binary's full URL
    assert doc["context"]["related"] == media["partOf"]  # the treatment Procedure
    extra = details(doc, MEDIA_DETAILS)
    assert extra["bodySite"] == [media["bodySite"]]
    assert extra["view"] == [media["view"]]
    assert extra["height"] == [media["height"]]
    assert extra["width"] == [media["width"]]
    assert "deviceName" not in media and "deviceName" not in extra  # camera never kept
    assert extra["status"] == ["completed"]
    (phase,) = [e for e in doc["extension"] if e["url"] == PHASE_EXTENSION]
    assert phase == media["extension"][0]
    assert doc["meta"]["tag"] == [MEDIA_TAG]


def test_every_sample_media_round_trips(bundles):
    media = resources(bundles, "Media")
    assert len(media) == 20
    for item in media:
        assert media_from_document_reference(media_to_document_reference(item)) == item


def test_media_elements_without_a_document_reference_home():
    media = {
        "resourceType": "Media",
        "meta": {"tag": [{"system": "urn:x", "code": "k"}], "versionId": "3"},
        "identifier": [{"system": "urn:x", "value": "1"}],
        "basedOn": [{"reference": "ServiceRequest/1"}],
        "status": "in-progress",
        "type": {"coding": [{"system": "urn:x", "code": "video"}]},
        "modality": {"text": "phone camera"},
        "subject": {"reference": "Patient/1"},
        "encounter": {"reference": "Encounter/1"},
        "createdDateTime": "2026-03-06",  # not an instant: DocumentReference.date cannot hold it
        "issued": "2026-03-07T10:00:00Z",
        "operator": {"reference": "Practitioner/1"},
        "reasonCode": [{"text": "follow-up"}, {"text": "baseline"}],
        "device": {"display": "Camera"},
        "deviceName": "a Media written by another system",
        "frames": 2,
        "duration": 1.5,
        "note": [{"text": "lighting poor"}],
        "content": {"contentType": "video/mp4", "data": "AAAA"},
    }
    doc = media_to_document_reference(media)
    assert "date" not in doc
    assert doc["docStatus"] == "preliminary"
    assert doc["author"] == [media["operator"]]
    assert doc["context"]["encounter"] == [media["encounter"]]
    assert doc["meta"] == {"tag": [media["meta"]["tag"][0], MEDIA_TAG]}
    extra = details(doc, MEDIA_DETAILS)
    assert extra["createdDateTime"] == ["2026-03-06"]
    assert extra["reasonCode"] == media["reasonCode"]
    assert extra["basedOn"] == media["basedOn"]
    assert extra["duration"] == [1.5]
    assert extra["deviceName"] == [media["deviceName"]]
    assert not FastValidator().validate_fhir_json(doc)
    back = media_from_document_reference(doc)
    assert back == {**media, "meta": {"tag": media["meta"]["tag"]}}  # versionId is the server's


def test_media_created_period_goes_to_context_period():
    period = {"start": "2026-03-06T09:00:00-06:00", "end": "2026-03-06T09:05:00-06:00"}
    media = {
        "resourceType": "Media",
        "status": "completed",
        "createdPeriod": period,
        "content": {"contentType": "image/jpeg", "data": "AAAA"},
    }
    doc = media_to_document_reference(media)
    assert doc["context"]["period"] == period
    assert media_from_document_reference(doc) == media


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        (
            {"modifierExtension": [{"url": "urn:x", "valueBoolean": True}]},
            "Media.modifierExtension",
        ),
        ({"implicitRules": "urn:rules"}, "Media.implicitRules"),
        ({"bodysite": {"text": "typo"}}, "Media.bodysite"),
    ],
)
def test_media_elements_that_cannot_ride_along_are_refused(extra, path):
    media = {"resourceType": "Media", "status": "completed", "content": {"data": "AAAA"}, **extra}
    with pytest.raises(FhirValidationError) as caught:
        media_to_document_reference(media)
    assert caught.value.problems[0][0] == path


def test_media_without_content_is_refused():
    with pytest.raises(FhirValidationError, match=r"Media\.content"):
        media_to_document_reference({"resourceType": "Media", "status": "completed"})


# -- Consent --------------------------------------------------------------------------------


def test_consent_decision_kind_policy_and_period_are_kept(bundles):
    consent = consent_of(bundles, status="active", with_form=True)
    doc = consent_to_document_reference(consent)
    assert doc["identifier"] == consent["identifier"]
    assert doc["status"] == "current"
    assert doc["docStatus"] == "final"
    assert doc["type"] == {
        "coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]
    }
    assert doc["category"] == consent["category"]  # LOINC + the consent-kind coding
    kinds = [c for cat in doc["category"] for c in cat["coding"] if "consent-kind" in c["system"]]
    assert len(kinds) == 1
    assert doc["subject"] == consent["patient"]
    assert doc["date"] == consent["dateTime"]
    assert doc["author"] == consent["performer"]
    assert doc["custodian"] == consent["organization"][0]
    assert doc["context"]["period"] == consent["provision"]["period"]
    extra = details(doc, CONSENT_DETAILS)
    assert extra["status"] == ["active"]
    assert extra["provisionType"] == ["permit"]
    assert extra["policy"] == [p["uri"] for p in consent["policy"]]
    assert extra["policyRule"] == [consent["policyRule"]]
    assert extra["scope"] == [consent["scope"]]
    assert doc["meta"]["tag"] == [CONSENT_TAG]
    # the signed form first, as it was; then the Consent itself
    assert doc["content"][0]["attachment"] == consent["sourceAttachment"]
    assert len(doc["content"]) == 2


def test_declined_and_withdrawn_consents_keep_their_decision(bundles):
    declined = consent_to_document_reference(consent_of(bundles, status="rejected"))
    assert details(declined, CONSENT_DETAILS)["status"] == ["rejected"]
    assert details(declined, CONSENT_DETAILS)["provisionType"] == ["deny"]
    assert declined["status"] == "current"  # the record of a refusal is itself current
    withdrawn_consent = consent_of(bundles, status="inactive")
    withdrawn = consent_to_document_reference(withdrawn_consent)
    assert details(withdrawn, CONSENT_DETAILS)["status"] == ["inactive"]
    assert withdrawn["context"]["period"]["end"] == withdrawn_consent["provision"]["period"]["end"]


def test_release_of_information_consent_keeps_its_own_loinc_type(bundles):
    consent = next(
        c
        for c in resources(bundles, "Consent")
        if any(cd["code"] == "64292-6" for cat in c["category"] for cd in cat["coding"])
    )
    doc = consent_to_document_reference(consent)
    assert doc["type"]["coding"][0]["code"] == "64292-6"


def test_consent_json_is_a_lossless_copy(bundles):
    consents = resources(bundles, "Consent")
    assert len(consents) == 297
    assert sum("sourceAttachment" in c for c in consents) == 10
    for consent in consents:
        doc = consent_to_document_reference(consent)
        without_form = {k: v for k, v in consent.items() if k != "sourceAttachment"}
        assert embedded(doc) == without_form  # the form is not stored twice
        assert consent_from_document_reference(doc) == consent
        attachment = doc["content"][-1]["attachment"]
        raw = base64.b64decode(attachment["data"])
        assert attachment["size"] == len(raw)
        assert attachment["hash"] == base64.b64encode(hashlib.sha1(raw).digest()).decode()
        assert attachment["contentType"] == "application/fhir+json; fhirVersion=4.0"


def test_consent_without_instant_date_or_with_source_reference():
    consent = {
        "resourceType": "Consent",
        "status": "proposed",
        "scope": {"text": "treatment"},
        "category": [{"text": "consent"}],
        "dateTime": "2026-01-02",
        "sourceReference": {"reference": "QuestionnaireResponse/1"},
        "policyRule": {"text": "opt in"},
    }
    doc = consent_to_document_reference(consent)
    assert "date" not in doc
    assert details(doc, CONSENT_DETAILS)["dateTime"] == ["2026-01-02"]
    assert doc["docStatus"] == "preliminary"
    assert doc["context"]["related"] == [consent["sourceReference"]]
    assert doc["type"]["coding"][0]["code"] == "59284-0"  # no LOINC category: Patient Consent
    assert len(doc["content"]) == 1
    assert consent_from_document_reference(doc) == consent
    assert not FastValidator().validate_fhir_json(doc)


def test_consent_entered_in_error_stays_entered_in_error():
    consent = {"resourceType": "Consent", "status": "entered-in-error", "scope": {"text": "x"}}
    doc = consent_to_document_reference(consent)
    assert (doc["status"], doc["docStatus"]) == ("entered-in-error", "entered-in-error")


def test_consent_modifier_extension_is_refused():
    consent = {"resourceType": "Consent", "modifierExtension": [{"url": "urn:x"}]}
    with pytest.raises(FhirValidationError, match="modifierExtension"):
        consent_to_document_reference(consent)


def test_a_document_reference_without_consent_json_cannot_convert_back():
    with pytest.raises(FhirValidationError, match="no embedded Consent JSON"):
        consent_from_document_reference({"resourceType": "DocumentReference", "content": []})


# -- validity over the whole sample ---------------------------------------------------------


def test_every_fallback_of_the_sample_is_valid_r4(bundles):
    validator = FastValidator()
    docs = [media_to_document_reference(m) for m in resources(bundles, "Media")]
    docs += [consent_to_document_reference(c) for c in resources(bundles, "Consent")]
    assert len(docs) == 20 + 297
    for doc in docs:
        assert validator.validate_fhir_json(doc) == []
        DocumentReference.model_validate(doc)


def test_every_adapted_sample_bundle_keeps_the_transaction_rules(bundles):
    validator = FastValidator()
    for bundle in bundles:
        adapted, _ = adapt_bundle(bundle, cannot("Media", "Consent"))
        assert bundle_rules(adapted) == []
        for item in adapted["entry"]:
            assert validator.validate_fhir_json(item["resource"]) == []


# -- adapt_bundle ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "missing", [("Media",), ("Consent",), ("Media", "Consent")], ids=lambda m: "+".join(m)
)
def test_adapt_bundle_replaces_only_what_the_server_cannot_create(bundles, missing):
    totals: Counter[str] = Counter()
    for bundle in bundles:
        before = copy.deepcopy(bundle)
        adapted, counts = adapt_bundle(bundle, cannot(*missing))
        assert bundle == before  # the input is untouched
        totals.update(counts)
        assert set(counts) <= set(missing)
        assert [e["fullUrl"] for e in adapted["entry"]] == [e["fullUrl"] for e in bundle["entry"]]
        for old, new in zip(bundle["entry"], adapted["entry"], strict=True):
            kind = old["resource"]["resourceType"]
            if kind == "Provenance" and counts:
                # keyed apart from the Provenance of the same client written without fallbacks
                key = old["request"]["ifNoneExist"]
                assert new["request"]["ifNoneExist"] == f"{key}-fallback"
                assert new["resource"]["target"] == old["resource"]["target"]
                continue
            if kind not in missing:
                assert new == old
                continue
            assert new["resource"]["resourceType"] == "DocumentReference"
            assert new["request"]["url"] == "DocumentReference"
            assert new["request"]["method"] == "POST"
            # the same identifier search, now on DocumentReference
            assert new["request"]["ifNoneExist"] == old["request"]["ifNoneExist"]
            system, value = new["request"]["ifNoneExist"].removeprefix("identifier=").split("|")
            assert {"system": system, "value": value} in new["resource"]["identifier"]
            tag = new["resource"]["meta"]["tag"][-1]
            assert tag["system"] == FALLBACK_SYSTEM
            assert tag["code"] == kind.lower()
        kinds = {e["resource"]["resourceType"] for e in adapted["entry"]}
        assert not kinds & set(missing)
    expected = {"Media": 20, "Consent": 297}
    assert dict(totals) == {kind: expected[kind] for kind in missing}


def test_adapt_bundle_keeps_references_to_the_replaced_entries(bundles):
    bundle = next(b for b in bundles if resources([b], "Media"))
    adapted, _ = adapt_bundle(bundle, cannot("Media", "Consent"))
    kinds = {e["fullUrl"]: e["resource"]["resourceType"] for e in adapted["entry"]}
    (provenance,) = resources([adapted], "Provenance")
    targets = [kinds[t["reference"]] for t in provenance["target"]]
    assert "DocumentReference" in targets
    assert "Media" not in targets
    assert "Consent" not in targets


def test_embedded_consent_names_its_targets_by_identifier(bundles):
    bundle = bundles[0]
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    adapted, _ = adapt_bundle(bundle, cannot("Consent"))
    doc = next(
        e["resource"]
        for e in adapted["entry"]
        if CONSENT_TAG in e["resource"].get("meta", {}).get("tag", [])
    )
    consent = embedded(doc)
    patient = by_url[doc["subject"]["reference"]]
    assert consent["patient"] == {
        "type": "Patient",
        "identifier": {k: patient["identifier"][0][k] for k in ("system", "value")},
    }
    organization = by_url[doc["custodian"]["reference"]]
    assert consent["organization"][0]["identifier"] == organization["identifier"][0]
    assert "urn:uuid:" not in json.dumps(consent)  # nothing the server would leave dangling


def test_adapt_bundle_returns_the_input_when_nothing_falls_back(bundles):
    bundle = bundles[0]
    adapted, counts = adapt_bundle(bundle, lambda _: True)
    assert adapted is bundle
    assert counts == {}


def test_adapt_bundle_asks_once_per_type(bundles):
    asked: Counter[str] = Counter()

    def can_create(resource_type: str) -> bool:
        asked[resource_type] += 1
        return resource_type != "Media"

    bundle = next(b for b in bundles if len(resources([b], "Media")) > 1)
    adapt_bundle(bundle, can_create)
    assert set(asked.values()) == {1}
    assert "DocumentReference" in asked


def test_a_missing_type_without_fallback_is_refused_clearly(bundles):
    with pytest.raises(FhirCapabilityError) as caught:
        adapt_bundle(bundles[0], cannot("Patient", "Observation"))
    error = caught.value
    assert error.operation == "import"
    assert error.reason == "server cannot create Observation, Patient (needed to import clients)"
    assert str(error) == f"import: {error.reason}"


def test_a_fallback_without_document_reference_is_refused_naming_both(bundles):
    bundle = next(b for b in bundles if resources([b], "Media"))
    with pytest.raises(FhirCapabilityError) as caught:
        adapt_bundle(bundle, cannot("Media", "DocumentReference"), purpose="store photos")
    reason = caught.value.reason
    assert reason.startswith("server cannot create DocumentReference, Media (needed to store")
    assert "Media would fall back to DocumentReference" in reason


def test_document_reference_missing_alone_names_it_without_fallback_talk(bundles):
    bundle = next(b for b in bundles if resources([b], "DocumentReference"))
    with pytest.raises(FhirCapabilityError) as caught:
        adapt_bundle(bundle, cannot("DocumentReference"))
    assert caught.value.reason == (
        "server cannot create DocumentReference (needed to import clients)"
    )


def _bundle(*entries: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": url,
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
            for url, resource in entries
        ],
    }


PATIENT_URL = "urn:uuid:00000000-0000-5000-8000-000000000001"
MEDIA_URL = "urn:uuid:00000000-0000-5000-8000-000000000002"
OTHER_URL = "urn:uuid:00000000-0000-5000-8000-000000000003"
MEDIA = {
    "resourceType": "Media",
    "status": "completed",
    "subject": {"reference": PATIENT_URL},
    "content": {"contentType": "image/jpeg", "data": "AAAA"},
}


def test_an_element_that_needs_a_media_blocks_the_fallback():
    report = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"text": "photo review"},
        "media": [{"link": {"reference": MEDIA_URL}}],
    }
    bundle = _bundle(
        (PATIENT_URL, {"resourceType": "Patient"}), (MEDIA_URL, MEDIA), (OTHER_URL, report)
    )
    with pytest.raises(FhirCapabilityError) as caught:
        adapt_bundle(bundle, cannot("Media"))
    assert "DiagnosticReport.media.link (a DocumentReference; R4 allows Media)" in (
        caught.value.reason
    )


def test_a_media_subject_no_document_reference_may_have_blocks_the_fallback():
    media = {**MEDIA, "subject": {"reference": OTHER_URL}}
    bundle = _bundle((OTHER_URL, {"resourceType": "Location"}), (MEDIA_URL, media))
    with pytest.raises(FhirCapabilityError, match=r"DocumentReference\.subject \(a Location"):
        adapt_bundle(bundle, cannot("Media"))
    relative = {**MEDIA, "subject": {"reference": "Location/12"}}
    with pytest.raises(FhirCapabilityError, match=r"DocumentReference\.subject \(a Location"):
        adapt_bundle(_bundle((MEDIA_URL, relative)), cannot("Media"))


def test_a_conditional_update_url_is_rewritten_to_document_reference():
    bundle = _bundle((PATIENT_URL, {"resourceType": "Patient"}), (MEDIA_URL, MEDIA))
    bundle["entry"][1]["request"] = {"method": "PUT", "url": "Media?identifier=urn:x|1"}
    adapted, counts = adapt_bundle(bundle, cannot("Media"))
    assert counts == {"Media": 1}
    assert adapted["entry"][1]["request"] == {
        "method": "PUT",
        "url": "DocumentReference?identifier=urn:x|1",
    }
