"""The push's transaction (pure): new urns, references kept inside the package, nothing else
named, every POST conditional (so a retry after a 429 or 503 cannot duplicate), photos as
Binary + Media or inline, and one Provenance naming the spa as the source."""

from __future__ import annotations

import base64
import hashlib
import itertools
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from symfhir.errors import PushError
from symfhir.fhir.retry import bundle_is_idempotent
from symfhir.sharing.push_bundle import Source, condition_of, push_transaction, resources_of

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))
SOURCE = Source("Bayou Glow Spa", "urn:spa", "bayou", "https://spa.example.org/id")
PNG = b"\x89PNG synthetic bytes"


def _urns() -> Any:
    counter = itertools.count(1)
    return lambda: f"urn:uuid:00000000-0000-0000-0000-{next(counter):012d}"


def _patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "3", "lastUpdated": "2026-01-01T00:00:00Z", "tag": [{"code": "x"}]},
        "identifier": [{"system": "https://spa.example.org/id/client-id", "value": "C1"}],
        "generalPractitioner": [{"reference": "Practitioner/doc1", "display": "Dr. Ashgrove"}],
    }


def _observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "weight"},
        "subject": {"reference": "Patient/p1"},
        "performer": [{"reference": "Practitioner/nurse9"}],
        "encounter": {"reference": "https://ehr.example.org/fhir/Encounter/e1"},
    }


def _photo() -> dict[str, Any]:
    return {
        "resourceType": "Media",
        "id": "m1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "content": {"contentType": "image/png", "data": base64.b64encode(PNG).decode()},
    }


def _build(binary: bool = True, entries: Any = None, photos: Any = None) -> Any:
    if entries is None:
        entries = [(None, _patient()), (None, _observation())]
    return push_transaction(
        entries,
        [_photo()] if photos is None else photos,
        source=SOURCE,
        now=NOW,
        binary=binary,
        push_id="push1",
        new_urn=_urns(),
    )


def _by_type(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_references_inside_the_package_point_at_urns_and_others_keep_only_a_display() -> None:
    bundle = _build().bundle
    (patient,) = _by_type(bundle, "Patient")
    (observation,) = _by_type(bundle, "Observation")
    obs = observation["resource"]
    assert obs["subject"] == {"reference": patient["fullUrl"]}
    assert obs["performer"] == [{"display": "Practitioner (not shared)"}]
    assert obs["encounter"] == {"display": "Encounter (not shared)"}
    assert patient["resource"]["generalPractitioner"] == [{"display": "Dr. Ashgrove"}]
    assert "id" not in obs and "id" not in patient["resource"]
    # Server meta goes, the record's own tags stay.
    assert patient["resource"]["meta"] == {"tag": [{"code": "x"}]}


def test_every_post_is_conditional_so_the_client_layer_may_retry_it() -> None:
    bundle = _build().bundle
    assert all(e["request"]["method"] == "POST" for e in bundle["entry"])
    assert all(e["request"].get("ifNoneExist") for e in bundle["entry"])
    assert bundle_is_idempotent(bundle)
    (patient,) = _by_type(bundle, "Patient")
    # Conditional on the resource it was made from; its business identifier goes along.
    assert patient["request"]["ifNoneExist"] == (
        "identifier=https%3A%2F%2Fspa.example.org%2Fid%2Fshared-resource%7CPatient-p1"
    )
    assert {"system": "https://spa.example.org/id/client-id", "value": "C1"} in patient["resource"][
        "identifier"
    ]
    (observation,) = _by_type(bundle, "Observation")
    # No identifier of its own: the spa's shared-resource identifier names where it came from.
    assert observation["resource"]["identifier"] == [
        {"system": "https://spa.example.org/id/shared-resource", "value": "Observation-o1"}
    ]


def test_records_sharing_a_business_identifier_are_created_apart() -> None:
    # A withdrawn Consent and the one given again carry one identifier: in one transaction,
    # creates on the same criteria would collapse into one and the answer would not match.
    first, second = _observation(), _observation()
    second["id"] = "o2"
    for obs in (first, second):
        obs["identifier"] = [{"system": "https://spa.example.org/id/obs", "value": "same"}]
    bundle = _build(entries=[(None, _patient()), (None, first), (None, second)]).bundle
    conditions = [e["request"]["ifNoneExist"] for e in _by_type(bundle, "Observation")]
    assert len(set(conditions)) == 2


def test_a_photo_goes_up_as_a_binary_the_media_points_at_with_size_and_hash() -> None:
    bundle = _build(binary=True).bundle
    (binary,) = _by_type(bundle, "Binary")
    (media,) = _by_type(bundle, "Media")
    assert base64.b64decode(binary["resource"]["data"]) == PNG
    assert binary["resource"]["contentType"] == "image/png"
    content = media["resource"]["content"]
    assert "data" not in content
    assert content["url"] == binary["fullUrl"]
    assert content["size"] == len(PNG)
    assert content["hash"] == base64.b64encode(hashlib.sha1(PNG).digest()).decode()
    assert binary["request"]["ifNoneExist"].startswith("_tag=")


def test_without_binary_create_the_photo_stays_inline() -> None:
    bundle = _build(binary=False).bundle
    assert _by_type(bundle, "Binary") == []
    (media,) = _by_type(bundle, "Media")
    assert base64.b64decode(media["resource"]["content"]["data"]) == PNG


def test_one_provenance_names_the_spa_as_source_and_targets_every_resource() -> None:
    transaction = _build()
    bundle = transaction.bundle
    (provenance,) = _by_type(bundle, "Provenance")
    resource = provenance["resource"]
    targets = {t["reference"] for t in resource["target"]}
    expected = {e["fullUrl"] for e in bundle["entry"]} - {provenance["fullUrl"]}
    expected -= {e["fullUrl"] for e in _by_type(bundle, "Binary")}
    assert targets == expected
    assert resource["agent"][0]["who"]["display"] == "Bayou Glow Spa"
    assert resource["entity"][0]["role"] == "source"
    assert resource["recorded"] == "2026-11-25T09:30:00-06:00"
    assert transaction.sources[-1] == "Provenance"
    assert "Media/m1" in transaction.sources and "Binary for Media/m1" in transaction.sources


def test_a_resource_named_twice_is_sent_once_and_a_document_composition_not_at_all() -> None:
    document = {
        "resourceType": "Bundle",
        "type": "document",
        "entry": [
            {"fullUrl": "urn:uuid:c", "resource": {"resourceType": "Composition", "id": "c"}},
            {"fullUrl": "urn:uuid:pp", "resource": _patient()},
            {
                "fullUrl": "urn:uuid:oo",
                "resource": {**_observation(), "subject": {"reference": "urn:uuid:pp"}},
            },
        ],
    }
    records = [(None, _patient()), (None, _observation())]
    bundle = _build(entries=resources_of(document) + records, photos=[]).bundle
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["Patient", "Observation", "Provenance"]
    (patient,) = _by_type(bundle, "Patient")
    (observation,) = _by_type(bundle, "Observation")
    # The document's own urn references are followed to the same new resource.
    assert observation["resource"]["subject"]["reference"] == patient["fullUrl"]


@pytest.mark.parametrize(
    "photo",
    [
        {"resourceType": "Observation", "id": "x"},
        {"resourceType": "Media", "id": "m2", "content": {"contentType": "image/png"}},
        {"resourceType": "Media", "content": {"data": "AA=="}},
    ],
)
def test_a_photo_that_is_not_an_inline_media_is_refused(photo: dict[str, Any]) -> None:
    with pytest.raises(PushError):
        _build(photos=[photo])


def test_condition_prefers_an_identifier_then_a_tag() -> None:
    assert condition_of({"identifier": {"system": "s", "value": "v"}}) == "identifier=s%7Cv"
    assert condition_of({"meta": {"tag": [{"system": "t", "code": "c"}]}}) == "_tag=t%7Cc"
    assert condition_of({"identifier": [{"value": "no system"}]}) is None


def test_the_callers_resources_are_not_changed() -> None:
    observation = _observation()
    photo = _photo()
    _build(entries=[(None, _patient()), (None, observation)], photos=[photo])
    assert observation == _observation()
    assert photo == _photo()


def test_a_reference_element_that_is_itself_a_reference_is_followed() -> None:
    consent = {
        "resourceType": "Consent",
        "id": "c1",
        "patient": {"reference": "Patient/p1"},
        "provision": {"actor": [{"reference": {"reference": "Practitioner/doc1"}}]},
    }
    bundle = _build(entries=[(None, _patient()), (None, consent)], photos=[]).bundle
    (sent,) = _by_type(bundle, "Consent")
    (patient,) = _by_type(bundle, "Patient")
    assert sent["resource"]["patient"] == {"reference": patient["fullUrl"]}
    assert sent["resource"]["provision"]["actor"][0]["reference"] == {
        "display": "Practitioner (not shared)"
    }
