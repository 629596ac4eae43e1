"""Item-by-item validation of QuestionnaireResponses decides exactly as whole-resource R4B."""

import copy

import pytest

from symfhir.mapping.bundle import client_entries
from symfhir.model import SpaRecord
from symfhir.validation.fast import FastValidator
from symfhir.validation.split import validate_split
from symfhir.validation.structural import validate_resource
from tests.conftest import make_record_dict
from tests.unit.test_validation_fast import MUTATIONS as VALUES
from tests.unit.test_validation_fast import _leaf_paths

pytestmark = pytest.mark.unit


@pytest.fixture
def response(record_context, ctx):
    record = SpaRecord.model_validate(make_record_dict(), context=record_context)
    (qr,) = [
        e.resource
        for e in client_entries(record, ctx, "row")
        if e.resource["resourceType"] == "QuestionnaireResponse"
    ]
    return qr


def nested_leaf(qr):
    """The first answered item two levels down (history.allergies → allergy.substance)."""
    history = next(i for i in qr["item"] if i["linkId"] == "history")
    allergies = next(i for i in history["item"] if i["linkId"] == "history.allergies")
    return allergies["item"][0]


MUTATIONS = {
    "bad date in a nested answer": lambda qr: nested_leaf(qr)["answer"][0].update(
        valueString=None, valueDate="2026-02-30"
    ),
    "two value[x] in one answer": lambda qr: nested_leaf(qr)["answer"][0].update(valueBoolean=True),
    "nested item without linkId": lambda qr: nested_leaf(qr).pop("linkId"),
    "unknown key in a nested item": lambda qr: nested_leaf(qr).update(colour="red"),
    "int where a string belongs": lambda qr: nested_leaf(qr).update(text=5),
    "empty string answer": lambda qr: nested_leaf(qr)["answer"][0].update(valueString=""),
    "empty status": lambda qr: qr.update(status=""),
    "answer is not a list": lambda qr: nested_leaf(qr).update(answer={"valueString": "x"}),
    "empty item list": lambda qr: nested_leaf(qr).update(item=[]),
    "item list holds a string": lambda qr: qr["item"].append("oops"),
    "nested answer item with bad date": lambda qr: nested_leaf(qr)["answer"][0].update(
        item=[{"linkId": "x", "answer": [{"valueDate": "2026-13-01"}]}]
    ),
}


def clean(qr):
    """Drop the keys a mutation set to None (JSON has no such value here)."""
    if isinstance(qr, dict):
        return {k: clean(v) for k, v in qr.items() if v is not None}
    if isinstance(qr, list):
        return [clean(v) for v in qr]
    return qr


def test_valid_response_passes_split_and_r4b(response):
    validator = FastValidator()
    assert validate_split(validator, response) == []
    assert validate_resource(response) == []


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_invalid_responses_are_refused_exactly_as_a_whole(response, name):
    validator = FastValidator()
    validate_split(validator, response)  # warm the cache with the valid units
    bad = copy.deepcopy(response)
    MUTATIONS[name](bad)
    bad = clean(bad)
    split = validate_split(validator, bad)
    whole = FastValidator().validate_fhir_json(bad)
    assert split == whole
    assert split, f"{name} should be refused"


def test_units_are_shared_between_clients(response):
    validator = FastValidator()
    validate_split(validator, response)
    misses = validator.misses
    other = copy.deepcopy(response)
    history = next(i for i in other["item"] if i["linkId"] == "history")
    history["item"].append(copy.deepcopy(history["item"][0]))  # one more repeated group
    assert validate_split(validator, other) == []
    assert validator.misses == misses  # a new response shape, but no new unit shape


def skin_type_item(qr):
    skin = next(i for i in qr["item"] if i["linkId"] == "skin")
    return next(i for i in skin["item"] if i["linkId"] == "skin.type")


class CountingValidator(FastValidator):
    def __init__(self):
        super().__init__()
        self.seen: list[dict] = []

    def validate_fhir_json(self, resource):
        self.seen.append(resource)
        return super().validate_fhir_json(resource)


def _units_validated(validator, link_id):
    return [u for u in validator.seen if u.get("item") and u["item"][0]["linkId"] == link_id]


def _with_more_groups(response, extra: int):
    """The response with ``extra`` more repeated history groups: a shape of its own."""
    other = copy.deepcopy(response)
    history = next(i for i in other["item"] if i["linkId"] == "history")
    history["item"] += [copy.deepcopy(history["item"][0]) for _ in range(extra)]
    return other


def _item(qr, link_id):
    for item in qr.get("item", []):
        if item["linkId"] == link_id:
            return item
        found = _item(item, link_id)
        if found:
            return found
    return None


def test_a_valid_coded_answer_is_validated_once_across_responses(response):
    from symfhir.validation import split

    split._valid_units.known.clear()
    validator = CountingValidator()
    for extra in range(3):  # three shapes, so each response is checked unit by unit
        assert validate_split(validator, _with_more_groups(response, extra)) == []
    assert len(_units_validated(validator, "skin.type")) == 1  # coded: remembered
    assert len(_units_validated(validator, "client.family")) == 3  # free text: every time


def test_a_response_of_a_known_shape_is_checked_in_one_walk(response):
    validator = CountingValidator()
    assert validate_split(validator, copy.deepcopy(response)) == []
    units = len(validator.seen)
    again = copy.deepcopy(response)
    _item(again, "client.family")["answer"][0]["valueString"] = "Brightwater"
    _item(again, "client.birth_date")["answer"][0]["valueDate"] = "1971-08-09"
    assert validate_split(validator, again) == []
    assert len(validator.seen) == units  # no unit checked: the whole shape was known
    for value in ("1971-02-30", ""):  # same shape, a value R4B refuses
        bad = copy.deepcopy(response)
        _item(bad, "client.birth_date")["answer"][0]["valueDate"] = value
        assert validate_split(validator, bad) == FastValidator().validate_fhir_json(bad) != []


def test_an_invalid_coded_answer_is_never_remembered(response):
    from symfhir.validation import split

    split._valid_units.known.clear()
    bad = copy.deepcopy(response)
    skin_type_item(bad)["answer"][0]["valueCoding"]["code"] = 12  # a code must be a string
    for _ in range(2):
        assert validate_split(FastValidator(), bad) == validate_resource(bad) != []
    assert validate_split(FastValidator(), response) == []


def test_random_values_in_a_known_shape_agree_with_r4b(response):
    import random

    rnd = random.Random(7)
    validator = FastValidator()
    assert validate_split(validator, response) == []  # caches the whole shape
    paths = list(_leaf_paths(response))
    for _ in range(200):
        path = rnd.choice(paths)
        bad = copy.deepcopy(response)
        target = bad
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = rnd.choice(VALUES)
        # a fresh validator knows no shape: R4B itself decides, plus FHIR JSON's own rules
        assert validate_split(validator, bad) == FastValidator().validate_fhir_json(bad), path
