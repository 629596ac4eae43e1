import base64
import json

import pytest
from fhir.resources.R4B import get_fhir_model_class

from symfhir.mapping import extract
from symfhir.mapping.bundle import client_entries, transaction
from symfhir.mapping.refs import Entry
from symfhir.model import SpaRecord
from tests.conftest import make_record_dict

pytestmark = pytest.mark.unit


@pytest.fixture
def record(record_context):
    return SpaRecord.model_validate(make_record_dict(), context=record_context)


@pytest.fixture
def bundle(record, ctx):
    return transaction(client_entries(record, ctx, "clients.csv row 2"))


def by_type(bundle, kind):
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_every_resource_validates_with_r4b(bundle):
    for item in bundle["entry"]:
        resource = item["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    get_fhir_model_class("Bundle").model_validate(bundle)


def test_bundle_is_a_replayable_transaction(bundle):
    assert bundle["type"] == "transaction"
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))
    assert all(u.startswith("urn:uuid:") for u in urls)
    for item in bundle["entry"]:
        request = item["request"]
        assert request["method"] == "POST"
        assert request["url"] == item["resource"]["resourceType"]
        assert request["ifNoneExist"].startswith(("identifier=", "_tag="))
    local = set(urls)
    text = json.dumps(bundle)
    for ref in {part.split('"')[0] for part in text.split('"urn:uuid:')[1:]}:
        assert f"urn:uuid:{ref}" in local


def test_output_is_deterministic(record, ctx):
    first = transaction(client_entries(record, ctx, "clients.csv row 2"))
    second = transaction(client_entries(record, ctx, "clients.csv row 2"))
    assert first == second


def test_no_health_words_in_conditional_create_queries(bundle):
    queries = " ".join(e["request"]["ifNoneExist"] for e in bundle["entry"])
    for word in ("lidocaine", "migraine", "fish", "melasma", "anticoagulant"):
        assert word not in queries.lower()


def test_patient(bundle):
    (patient,) = by_type(bundle, "Patient")
    assert patient["identifier"][0]["value"] == "C9001"
    assert patient["birthDate"] == "1985-04-12"
    assert patient["gender"] == "female"
    assert {"system": "phone", "value": "+13375550101", "use": "mobile"} in patient["telecom"]
    assert patient["communication"][0]["preferred"] is True


def test_emergency_contact_is_a_related_person(bundle):
    (person,) = by_type(bundle, "RelatedPerson")
    assert person["name"] == [{"text": "Rowan Quillfeather"}]
    assert person["patient"]["reference"].startswith("urn:uuid:")


def test_observations_are_extracted_from_the_intake(bundle):
    qr_url = next(
        e["fullUrl"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "QuestionnaireResponse"
    )
    observations = by_type(bundle, "Observation")
    # skin type, 2 concerns, pregnancy, breastfeeding, smoking, 1 contraindication
    assert len(observations) == 7
    for obs in observations:
        assert obs["derivedFrom"] == [{"reference": qr_url}]
        assert obs["effectiveDateTime"] == "2026-03-02"
    codes = {c["code"] for o in observations for c in o["code"]["coding"]}
    assert {"82810-3", "63895-7", "72166-2"} <= codes


def test_unanswered_items_are_left_out(record_context, ctx):
    data = make_record_dict(health__pregnancy=None, health__breastfeeding=None)
    record = SpaRecord.model_validate(data, context=record_context)
    bundle = transaction(client_entries(record, ctx, "row"))
    codes = {c["code"] for o in by_type(bundle, "Observation") for c in o["code"]["coding"]}
    assert "82810-3" not in codes
    (qr,) = by_type(bundle, "QuestionnaireResponse")
    assert "safety.pregnancy" not in json.dumps(qr)


def test_health_history(bundle):
    (allergy,) = by_type(bundle, "AllergyIntolerance")
    assert allergy["code"] == {"text": "lidocaine"}
    assert allergy["reaction"][0]["severity"] == "severe"
    (med,) = by_type(bundle, "MedicationStatement")
    assert med["dosage"] == [{"text": "1000 mg"}]
    (condition,) = by_type(bundle, "Condition")
    assert condition["code"] == {"text": "migraine"}


def test_procedures(bundle):
    procedures = by_type(bundle, "Procedure")
    prior = [p for p in procedures if p.get("asserter")]
    ours = [p for p in procedures if not p.get("asserter")]
    assert prior[0]["performedDateTime"] == "2025-06"
    assert ours[0]["performedDateTime"] == "2026-03-02T10:30:00-06:00"
    product = ours[0]["extension"][0]["extension"]
    assert {"url": "lot", "valueString": "LOT1"} in product
    assert ours[0]["performer"][0]["actor"]["display"] == "Alex Rivera, RN"


def test_consents_keep_declined_and_withdrawn(bundle):
    consents = {
        c["provision"]["period"]["start"] + c["status"]: c for c in by_type(bundle, "Consent")
    }
    statuses = sorted(c["status"] for c in consents.values())
    assert statuses == ["active", "inactive", "rejected"]
    declined = next(c for c in consents.values() if c["status"] == "rejected")
    assert declined["provision"]["type"] == "deny"
    withdrawn = next(c for c in consents.values() if c["status"] == "inactive")
    assert withdrawn["provision"]["period"]["end"] == "2026-06-01"
    for consent in consents.values():
        assert consent["policy"][0]["uri"].endswith("/2026-01-01")


def test_consultation_note(bundle):
    (doc,) = by_type(bundle, "DocumentReference")
    text = base64.b64decode(doc["content"][0]["attachment"]["data"]).decode()
    assert text == "Goals discussed."
    assert doc["date"] == "2026-03-02T00:00:00-06:00"


def test_provenance_targets_everything(bundle):
    (prov,) = by_type(bundle, "Provenance")
    others = [e["fullUrl"] for e in bundle["entry"][1:-1]]
    assert [t["reference"] for t in prov["target"]] == others
    assert prov["recorded"] == "2026-11-25T09:30:00-06:00"
    assert prov["entity"][0]["what"]["identifier"]["value"] == "clients.csv row 2"


def _extraction_questionnaire(duplicate: bool = False) -> dict:
    marked = {"url": extract.OBSERVATION_EXTRACT, "valueBoolean": True}
    code = [{"system": "http://loinc.org", "code": "72166-2"}]
    inner = {"linkId": "smoking", "type": "boolean", "code": code}
    other = {"linkId": "notes", "type": "group", "item": [{"linkId": "free", "type": "string"}]}
    if duplicate:
        other["item"].append(dict(inner))
    return {
        "resourceType": "Questionnaire",
        "extension": [marked],
        "item": [{"linkId": "habits", "type": "group", "item": [inner]}, other],
    }


def _response(*groups: tuple[str, str]) -> dict:
    items = [
        {"linkId": group, "item": [{"linkId": link, "answer": [{"valueBoolean": True}]}]}
        for group, link in groups
    ]
    return {
        "resourceType": "QuestionnaireResponse",
        "subject": {"reference": "urn:uuid:6f1b7d9e-3c1a-5b8e-9a57-2f4c0d7e8a11"},
        "authored": "2026-03-02",
        "item": items,
    }


@pytest.mark.parametrize("duplicate", [False, True], ids=["unique linkIds", "duplicate linkIds"])
def test_extraction_matches_items_only_under_their_own_group(ctx, duplicate):
    questionnaire = _extraction_questionnaire(duplicate)
    qr_entry = Entry({}, "urn:uuid:0e5c6c1e-3a47-5b8e-8a57-2f4c0d7e8a11", "")
    placed = extract.observations(
        questionnaire, _response(("habits", "smoking")), qr_entry, "C1", ctx
    )
    assert [o.resource["valueBoolean"] for o in placed] == [True]
    # the same question answered under a group it does not belong to is not extracted
    misplaced = _response(("notes", "smoking"))
    found = extract.observations(questionnaire, misplaced, qr_entry, "C1", ctx)
    assert len(found) == (1 if duplicate else 0)  # a duplicate linkId makes it belong there
    # the plan is rebuilt for a new Questionnaire object, never reused by a stale id
    unmarked = _extraction_questionnaire(duplicate)
    unmarked["extension"] = []
    assert (
        extract.observations(unmarked, _response(("habits", "smoking")), qr_entry, "C1", ctx) == []
    )


def test_consents_of_one_kind_share_no_objects(record_context, ctx):
    first = transaction(
        client_entries(
            SpaRecord.model_validate(make_record_dict(), context=record_context), ctx, "r"
        )
    )
    consent = by_type(first, "Consent")[0]
    consent["scope"]["coding"][0]["code"] = "changed"
    consent["provision"]["action"][0]["coding"].clear()
    again = transaction(
        client_entries(
            SpaRecord.model_validate(make_record_dict(), context=record_context), ctx, "r"
        )
    )
    assert by_type(again, "Consent")[0]["scope"]["coding"][0]["code"] != "changed"
    assert by_type(again, "Consent")[0]["provision"]["action"][0]["coding"]


def test_derived_values_are_keyed_by_the_object_itself():
    from symfhir.mapping.derived import Derived

    built = []
    derive = Derived(lambda source: built.append(source) or len(built), limit=2)
    first, equal_twin = {"a": 1}, {"a": 1}
    assert derive(first) == derive(first) == 1  # built once
    assert derive(equal_twin) == 2  # an equal but different object is its own source
    derive({"b": 2})  # over the limit: the cache starts over
    assert derive(first) == 4
