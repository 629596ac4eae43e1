"""Project rules for transaction Bundles, and serialization of validated dicts."""

from __future__ import annotations

import copy
import json

import pytest
from fhir.resources.R4B import get_fhir_model_class

from symfhir.errors import FhirValidationError
from symfhir.validation.fast import FastValidator
from symfhir.validation.rules import bundle_rules
from symfhir.validation.serialize import dumps, dumps_checked
from symfhir.validation.structural import validate_resource

pytestmark = pytest.mark.unit

PAT = "urn:uuid:e6044d18-b996-561e-b17e-ee5ff1006cc3"
BIN = "urn:uuid:5b0ec6bb-8b56-5ec8-a288-754a6888ffac"
TAG = "http://symfhir.org/fhir/CodeSystem/source-key"
SID = "http://example.org/sid"


def _bundle() -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": PAT,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": SID, "value": "C1"}],
                },
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={SID}|C1",
                },
            },
            {
                "fullUrl": BIN,
                "resource": {
                    "resourceType": "Binary",
                    "contentType": "image/png",
                    "data": "aGk=",
                    "meta": {"tag": [{"system": TAG, "code": "b1"}]},
                },
                "request": {"method": "POST", "url": "Binary", "ifNoneExist": f"_tag={TAG}|b1"},
            },
            {
                "fullUrl": "urn:uuid:a1dd2d19-ada5-59e9-9c95-5755643e5054",
                "resource": {
                    "resourceType": "Media",
                    "status": "completed",
                    "identifier": [{"system": SID, "value": "M1"}],
                    "subject": {"reference": PAT},
                    "content": {
                        "contentType": "image/png",
                        "url": BIN,
                        "size": 2,
                        "hash": "2jmj7l5rSw0yVb/vlWAYkK/YBwk=",
                    },
                },
                "request": {
                    "method": "POST",
                    "url": "Media",
                    "ifNoneExist": f"identifier={SID}|M1",
                },
            },
            {
                "fullUrl": "urn:uuid:24948a7c-34ff-5fc1-b96a-c1b076cdf6de",
                "resource": {
                    "resourceType": "Consent",
                    "status": "active",
                    "identifier": [{"system": SID, "value": "K1"}],
                    "scope": {"text": "treatment"},
                    "category": [{"text": "treatment"}],
                    "patient": {"reference": PAT},
                    "policyRule": {"text": "spa policy"},
                },
                "request": {
                    "method": "POST",
                    "url": "Consent",
                    "ifNoneExist": f"identifier={SID}|K1",
                },
            },
        ],
    }


def _broken(change) -> dict:
    bundle = _bundle()
    change(bundle)
    return bundle


def test_good_bundle_keeps_the_rules_and_validates():
    assert bundle_rules(_bundle()) == []
    assert validate_resource(_bundle()) == []


CASES = {
    "not a transaction": (lambda b: b.update(type="batch"), "Bundle.type"),
    "fullUrl not urn:uuid": (
        lambda b: b["entry"][0].update(fullUrl="Patient/1"),
        "Bundle.entry[0].fullUrl",
    ),
    "fullUrl uppercase": (
        lambda b: b["entry"][3].update(
            fullUrl=b["entry"][3]["fullUrl"].upper().replace("URN:UUID", "urn:uuid")
        ),
        "Bundle.entry[3].fullUrl",
    ),
    "duplicate fullUrl": (lambda b: b["entry"][3].update(fullUrl=PAT), "Bundle.entry[3].fullUrl"),
    # two valid urn:uuids in one fullUrl, split by a newline: one string, still wrong
    "fullUrl of two lines": (
        lambda b: b["entry"][3].update(fullUrl=f"{b['entry'][3]['fullUrl']}\n{BIN}x"[:-1]),
        "Bundle.entry[3].fullUrl",
    ),
    "fullUrl not text": (lambda b: b["entry"][2].update(fullUrl=7), "Bundle.entry[2].fullUrl"),
    "entry without fullUrl": (lambda b: b["entry"][1].pop("fullUrl"), "Bundle.entry[1].fullUrl"),
    "method PUT": (
        lambda b: b["entry"][0]["request"].update(method="PUT"),
        "Bundle.entry[0].request.method",
    ),
    "url mismatch": (
        lambda b: b["entry"][0]["request"].update(url="Person"),
        "Bundle.entry[0].request.url",
    ),
    "no ifNoneExist": (
        lambda b: b["entry"][0]["request"].pop("ifNoneExist"),
        "Bundle.entry[0].request.ifNoneExist",
    ),
    "tag where identifier exists": (
        lambda b: b["entry"][0]["request"].update(ifNoneExist=f"_tag={TAG}|x"),
        "Bundle.entry[0].request.ifNoneExist",
    ),
    "identifier not on resource": (
        lambda b: b["entry"][0]["request"].update(ifNoneExist=f"identifier={SID}|C2"),
        "Bundle.entry[0].request.ifNoneExist",
    ),
    "binary tag missing": (
        lambda b: b["entry"][1]["resource"].pop("meta"),
        "Bundle.entry[1].request.ifNoneExist",
    ),
    "dangling reference": (
        lambda b: b["entry"][2]["resource"]["subject"].update(
            reference="urn:uuid:00000000-0000-4000-8000-000000000000"
        ),
        "Bundle.entry[2].resource.subject.reference",
    ),
    "dangling attachment url": (
        lambda b: b["entry"][2]["resource"]["content"].update(
            url="urn:uuid:00000000-0000-4000-8000-000000000001"
        ),
        "Bundle.entry[2].resource.content.url",
    ),
    "attachment without hash": (
        lambda b: b["entry"][2]["resource"]["content"].pop("hash"),
        "Bundle.entry[2].resource.content.hash",
    ),
    "attachment without size": (
        lambda b: b["entry"][2]["resource"]["content"].pop("size"),
        "Bundle.entry[2].resource.content.size",
    ),
    "consent without policy": (
        lambda b: b["entry"][3]["resource"].pop("policyRule"),
        "Bundle.entry[3].resource.policy",
    ),
    "card number in text": (
        lambda b: b["entry"][3]["resource"].update(
            text={"status": "generated", "div": "<div>paid 4111-1111-1111-1111</div>"}
        ),
        "Bundle.entry[3].resource.text.div",
    ),
}


@pytest.mark.parametrize(("change", "path"), list(CASES.values()), ids=list(CASES))
def test_each_rule_is_reported_at_its_path(change, path):
    problems = bundle_rules(_broken(change))
    assert path in [p.path for p in problems], problems


def test_card_number_message_does_not_quote_it():
    bundle = _broken(
        lambda b: b["entry"][0]["resource"].update(name=[{"text": "4111 1111 1111 1111"}])
    )
    problems = bundle_rules(bundle)
    assert problems and all("4111" not in p.message for p in problems)


def test_non_luhn_digits_and_uuids_are_fine():
    bundle = _broken(
        lambda b: b["entry"][0]["resource"].update(name=[{"text": "order 4111 1111 1111 1112"}])
    )
    assert bundle_rules(bundle) == []


def test_document_reference_attachment_rules():
    bundle = _bundle()
    bundle["entry"][2]["resource"] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "identifier": [{"system": SID, "value": "M1"}],
        "content": [{"attachment": {"url": BIN, "contentType": "image/png"}}],
    }
    bundle["entry"][2]["request"]["url"] = "DocumentReference"
    paths = {p.path for p in bundle_rules(bundle)}
    assert paths == {
        "Bundle.entry[2].resource.content[0].attachment.size",
        "Bundle.entry[2].resource.content[0].attachment.hash",
    }


def test_dumps_round_trips_and_validates_identically():
    validator = FastValidator()
    for resource in [_bundle(), *[e["resource"] for e in _bundle()["entry"]]]:
        text = dumps(resource)
        back = json.loads(text)
        assert back == resource
        assert validator.validate(back) == validate_resource(back) == []
        assert dumps_checked(resource, validator) == text


def test_dumps_keeps_decimal_precision_and_instants_unlike_r4b():
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "issued": "2026-03-02T10:30:00.000Z",
        "valueQuantity": {"value": 1.50},
    }
    obs["valueQuantity"]["value"] = json.loads("1.50")  # a float: 1.5 either way
    assert '"issued":"2026-03-02T10:30:00.000Z"' in dumps(obs)
    r4b = get_fhir_model_class("Observation").model_validate(obs).model_dump_json()
    assert '"issued":"2026-03-02T10:30:00Z"' in r4b  # R4B drops the given precision


def test_dumps_refuses_nan_and_non_fhir_json():
    with pytest.raises(ValueError):
        dumps({"resourceType": "Basic", "x": float("nan")})
    lax = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "valueInteger": "5",
    }
    validator = FastValidator()
    assert validator.validate(lax) == []  # R4B accepts a string here
    with pytest.raises(FhirValidationError) as caught:
        dumps_checked(copy.deepcopy(lax), validator)
    assert caught.value.problems[0][0] == "Observation.valueInteger"


def test_identifiers_that_happen_to_pass_luhn_are_not_card_numbers():
    from symfhir.cardnumbers import has_card_number
    from symfhir.validation.rules import bundle_rules

    value = "B000002-2026-01-03"
    assert has_card_number(value)  # its 14 digits pass the Luhn check by chance
    url = "urn:uuid:6f1b7d9e-3c1a-5b8e-9a57-2f4c0d7e8a11"
    system = "http://symfhir.org/fhir/sid/x/intake"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": url,
                "resource": {
                    "resourceType": "Basic",
                    "identifier": [{"system": system, "value": value}],
                    "code": {"text": "x"},
                },
                "request": {
                    "method": "POST",
                    "url": "Basic",
                    "ifNoneExist": f"identifier={system}|{value}",
                },
            }
        ],
    }
    assert bundle_rules(bundle) == []
    bundle["entry"][0]["resource"]["code"]["text"] = "card 4111 1111 1111 1111"
    assert [p.message for p in bundle_rules(bundle)] == ["contains a payment card number"]


@pytest.mark.parametrize("encoded", [False, True], ids=["text", "utf-8 bytes"])
def test_text_pass_finds_what_the_walk_finds(record_context, ctx, encoded):
    import json as _json

    def serialized(bundle: dict) -> str | bytes:
        text = _json.dumps(bundle, ensure_ascii=False)
        return text.encode() if encoded else text

    from symfhir.mapping.bundle import client_entries, transaction
    from symfhir.model import SpaRecord
    from symfhir.validation.rules import bundle_rules
    from tests.conftest import make_record_dict

    record = SpaRecord.model_validate(make_record_dict(), context=record_context)
    bundle = transaction(client_entries(record, ctx, "row"))
    assert bundle_rules(bundle, serialized(bundle)) == []
    bundle["entry"][3]["resource"]["patient"] = {
        "reference": "urn:uuid:00000000-0000-4000-8000-000000000000"
    }
    walked = bundle_rules(bundle)
    assert walked
    assert bundle_rules(bundle, serialized(bundle)) == walked
    del bundle["entry"][2]["request"]["ifNoneExist"]
    assert bundle_rules(bundle, serialized(bundle)) == bundle_rules(bundle)
