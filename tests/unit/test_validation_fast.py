"""FastValidator decides exactly as the R4B reference, with its cache warmed by valid twins."""

from __future__ import annotations

import copy
import random

import pytest

from symfhir.validation.fast import FastValidator
from symfhir.validation.structural import Problem, validate_resource

pytestmark = pytest.mark.unit

OBS = {
    "resourceType": "Observation",
    "id": "obs-1",
    "identifier": [{"system": "http://example.org/sid/obs", "value": "3d7ec557e03c9a45"}],
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "HR"}]},
    "subject": {"reference": "urn:uuid:e6044d18-b996-561e-b17e-ee5ff1006cc3"},
    "effectiveDateTime": "2026-03-02T10:30:00-06:00",
    "issued": "2026-03-02T10:30:00.000Z",
    "valueQuantity": {"value": 72.5, "unit": "/min", "system": "http://unitsofmeasure.org"},
    "component": [{"code": {"text": "count"}, "valueInteger": 3}],
}
PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "active": True,
    "name": [{"family": "Quill", "given": ["Avery", "J"]}],
    "gender": "female",
    "birthDate": "1985-04-12",
    "multipleBirthInteger": 2,
    "telecom": [{"system": "phone", "value": "(337) 555-0101", "rank": 1}],
    "photo": [
        {
            "contentType": "image/png",
            "data": "aGVsbG8=",
            "size": 5,
            "url": "https://example.org/p.png",
        }
    ],
    "contained": [{"resourceType": "Organization", "id": "org", "name": "Spa"}],
}
CONSENT = {
    "resourceType": "Consent",
    "status": "active",
    "scope": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}
        ]
    },
    "category": [{"text": "treatment"}],
    "patient": {"reference": "Patient/p1"},
    "dateTime": "2026-03-02",
    "policyRule": {"text": "spa policy 2026-01-01"},
    "provision": {"type": "permit", "period": {"start": "2026-03-02", "end": "2027-03-02"}},
}
BUNDLE = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "fullUrl": "urn:uuid:e6044d18-b996-561e-b17e-ee5ff1006cc3",
            "resource": PATIENT,
            "request": {"method": "POST", "url": "Patient"},
        },
        {"resource": OBS, "request": {"method": "POST", "url": "Observation"}},
    ],
}
VALID = {"Observation": OBS, "Patient": PATIENT, "Consent": CONSENT, "Bundle": BUNDLE}


def _set(base: dict, path: tuple, value: object) -> dict:
    """A copy of ``base`` with ``path`` set (``...`` as value deletes the key)."""
    doc = copy.deepcopy(base)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


# (name, base, path, bad value, valid value of the same Python type for warming)
SAME_SHAPE = [
    ("date Feb 30", PATIENT, ("birthDate",), "2025-02-30", "2025-02-28"),
    ("date month 13", PATIENT, ("birthDate",), "2025-13-01", "2025-12-01"),
    ("date with time", PATIENT, ("birthDate",), "2025-01-01T10:00:00Z", "2025-01-01"),
    ("date year 0000", PATIENT, ("birthDate",), "0000", "1999"),
    ("dateTime no zone", OBS, ("effectiveDateTime",), "2026-03-02T10:30:00", "2026-03-02"),
    (
        "dateTime offset +15",
        OBS,
        ("effectiveDateTime",),
        "2026-03-02T10:30:00+15:00",
        "2026-03-02T10:30:00+14:00",
    ),
    ("dateTime Feb 29 non-leap", OBS, ("effectiveDateTime",), "2025-02-29", "2024-02-29"),
    (
        "dateTime hour 24",
        OBS,
        ("effectiveDateTime",),
        "2026-03-02T24:00:00Z",
        "2026-03-02T23:00:00Z",
    ),
    ("instant without zone", OBS, ("issued",), "2026-03-02T10:30:00", "2026-03-02T10:30:00Z"),
    ("instant date only", OBS, ("issued",), "2026-03-02", "2026-03-02T00:00:00Z"),
    ("empty string", OBS, ("code", "coding", 0, "display"), "", "x"),
    ("empty code", OBS, ("status",), "", "final"),
    ("whitespace code", OBS, ("status",), "   ", "final"),
    ("code with double space", OBS, ("code", "coding", 0, "code"), "8867  4", "8867 4"),
    ("code leading space", OBS, ("code", "coding", 0, "code"), " 8867-4", "8867-4"),
    ("code with tab and space", PATIENT, ("gender",), "fe\t male", "male"),
    ("decimal NaN", OBS, ("valueQuantity", "value"), "NaN", "7"),
    ("decimal float inf", OBS, ("valueQuantity", "value"), float("inf"), 7.25),
    ("id with underscore", OBS, ("id",), "obs_1", "obs-1"),
    ("id too long", OBS, ("id",), "a" * 256, "a" * 255),
    ("id empty", OBS, ("id",), "", "a"),
    ("decimal string", OBS, ("valueQuantity", "value"), "1.5e", "1.5"),
    ("decimal leading zero", OBS, ("valueQuantity", "value"), "01.5", "1.50"),
    ("integer float", OBS, ("component", 0, "valueInteger"), 1.5, 2.0),
    ("integer too big", OBS, ("component", 0, "valueInteger"), 2**31, 2**31 - 1),
    ("integer text", OBS, ("component", 0, "valueInteger"), "three", "3"),
    ("negative positiveInt", PATIENT, ("telecom", 0, "rank"), -1, 1),
    ("zero positiveInt", PATIENT, ("telecom", 0, "rank"), 0, 5),
    ("negative unsignedInt", PATIENT, ("photo", 0, "size"), -5, 0),
    ("boolean 2", PATIENT, ("active",), 2, 1),
    ("boolean text", PATIENT, ("active",), "maybe", "true"),
    ("bad base64", PATIENT, ("photo", 0, "data"), "a%b=", "aGk="),
    ("base64 bad padding", PATIENT, ("photo", 0, "data"), "aGVsbG8", "aGVsbA=="),
    ("given empty item", PATIENT, ("name", 0, "given", 1), "", "K"),
    ("reference empty", OBS, ("subject", "reference"), "", "Patient/1"),
    ("consent period date", CONSENT, ("provision", "period", "end"), "2027-02-30", "2027-02-28"),
    (
        "bundle entry date",
        BUNDLE,
        ("entry", 0, "resource", "birthDate"),
        "1985-02-31",
        "1985-01-31",
    ),
    ("bundle type code", BUNDLE, ("type",), "trans action  ", "batch"),
]

# Invalid by shape: no valid twin exists, the fast path must still say no.
SHAPE = [
    ("unknown element", _set(OBS, ("colour",), "red")),
    ("missing status", _set(OBS, ("status",), ...)),
    ("missing code", _set(OBS, ("code",), ...)),
    ("two choice values", _set(OBS, ("valueString",), "72")),
    ("bool where object", _set(OBS, ("code",), True)),
    ("list where object", _set(OBS, ("code",), [{"text": "x"}])),
    ("object where list", _set(OBS, ("identifier",), {"value": "x"})),
    ("null in complex list", _set(OBS, ("identifier",), [None])),
    ("empty primitive extension", _set(OBS, ("_status",), {})),
    ("reference shape", _set(OBS, ("subject",), "Patient/1")),
    ("reference object shape", _set(OBS, ("subject",), {"reference": {"id": "x"}})),
    ("nested wrong resourceType", _set(OBS, ("subject", "resourceType"), "Patient")),
    ("no resourceType", _set(OBS, ("resourceType",), ...)),
    ("data type as resource", {"resourceType": "Coding", "code": "x"}),
    ("abstract resource", {"resourceType": "DomainResource"}),
    ("consent without status", _set(CONSENT, ("status",), ...)),
    # resourceType values select the model, so they are part of the shape
    ("nested resource type", _set(PATIENT, ("contained", 0, "resourceType"), "Coding")),
    ("nested unknown resource", _set(PATIENT, ("contained", 0, "resourceType"), "Nope")),
    ("root type mismatch", _set(CONSENT, ("resourceType",), "Observation")),
    ("bundle entry unknown key", _set(BUNDLE, ("entry", 0, "resource", "shoeSize"), 9)),
    ("bundle entry wrong type", _set(BUNDLE, ("entry", 1, "resource", "resourceType"), "Basic")),
]


@pytest.fixture
def fast() -> FastValidator:
    validator = FastValidator()
    for resource in VALID.values():
        assert validator.validate(copy.deepcopy(resource)) == []
    return validator


@pytest.mark.parametrize("name", list(VALID))
def test_valid_resources_are_accepted_by_both(name, fast):
    resource = VALID[name]
    assert validate_resource(resource) == []
    assert fast.validate(resource) == []
    assert fast.hits >= 1


@pytest.mark.parametrize(
    ("base", "path", "bad", "good"), [c[1:] for c in SAME_SHAPE], ids=[c[0] for c in SAME_SHAPE]
)
def test_value_errors_are_caught_on_the_warm_fast_path(base, path, bad, good, fast):
    twin = _set(base, path, good)
    assert validate_resource(twin) == []
    assert fast.validate(twin) == []  # warms the exact shape of the bad resource
    hits = fast.hits
    bad_doc = _set(base, path, bad)
    reference = validate_resource(bad_doc)
    assert reference, "R4B must reject this"
    assert fast.validate(bad_doc) == reference
    assert fast.hits > hits, "the cached plan was consulted"


@pytest.mark.parametrize("doc", [c[1] for c in SHAPE], ids=[c[0] for c in SHAPE])
def test_shape_errors_are_rejected_by_both(doc, fast):
    reference = validate_resource(doc)
    assert reference
    assert all(isinstance(p, Problem) and p.path for p in reference)
    assert fast.validate(doc) == reference
    assert fast.validate(doc) == reference  # and again, in case anything got cached


def test_problem_paths_are_fhirpath_like():
    doc = _set(OBS, ("code", "coding", 0, "code"), "a  b")
    assert validate_resource(doc) == [
        Problem("Observation.code.coding[0].code", validate_resource(doc)[0].message)
    ]


def test_messages_never_echo_values():
    secret = "Quillfeather-1985"
    for doc in [
        _set(PATIENT, ("gender",), secret + " x  y"),
        _set(PATIENT, ("birthDate",), secret),
        _set(PATIENT, ("name",), secret),
        _set(PATIENT, ("resourceType",), secret),
        _set(PATIENT, ("contained", 0, "resourceType"), secret),
    ]:
        for problem in validate_resource(doc):
            assert secret not in problem.message


def test_lenient_r4b_inputs_are_accepted_exactly_like_r4b(fast):
    # R4B (pydantic lax mode) takes these; the fast path must agree, not be stricter.
    for path, value in [
        (("component", 0, "valueInteger"), True),
        (("component", 0, "valueInteger"), "7"),
        (("code", "coding", 0, "display"), "   "),
        (("valueQuantity", "value"), "1.50"),
    ]:
        doc = _set(OBS, path, value)
        assert validate_resource(doc) == []
        assert fast.validate(doc) == []
        assert fast.validate(doc) == []


def test_json_string_in_complex_position_falls_back_to_r4b(fast):
    # fhir_core parses a str given for an element as JSON: never decide it from shape
    good = _set(OBS, ("code",), '{"text": "x"}')
    bad = _set(OBS, ("code",), '{"text": 5}')
    assert fast.validate(good) == validate_resource(good) == []
    assert fast.validate(bad) == validate_resource(bad) != []


def test_fhir_json_problems_beyond_r4b(fast):
    doc = _set(OBS, ("component", 0, "valueInteger"), "7")
    doc["category"] = []
    doc["status__ext"] = {"id": "x"}
    assert fast.validate(doc) == []
    messages = {p.path: p.message for p in fast.validate_fhir_json(doc)}
    assert "Observation.component[0].valueInteger" in messages
    assert "Observation.category" in messages
    assert "Observation.status__ext" in messages
    assert fast.validate_fhir_json(OBS) == []


def test_cache_is_bounded():
    validator = FastValidator(max_shapes=8)
    for i in range(40):
        doc = copy.deepcopy(OBS)
        doc["identifier"] = [{"value": str(n)} for n in range(i + 1)]
        assert validator.validate(doc) == []
    assert validator.cache_size() <= 8


def test_bundle_entries_are_cached_as_their_own_units(fast):
    bigger = copy.deepcopy(BUNDLE)
    bigger["entry"].append(copy.deepcopy(bigger["entry"][1]))
    misses = fast.misses
    assert fast.validate(bigger) == []
    # the new Bundle shape is one miss; its resources were already known
    assert fast.misses == misses + 1


MUTATIONS = [
    "",
    " ",
    "x y",
    "2025-02-30",
    "2024-02-29",
    "2025-13",
    "2025-01-01T10:00:00Z",
    "1.5",
    "-0",
    "01",
    "aGk=",
    "a b c",
    "urn:uuid:x",
    "final",
    "\t",
    "0000",
    True,
    False,
    0,
    1,
    -1,
    2**31,
    1.5,
    1e308,
    None,
]


def _leaf_paths(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            if key != "resourceType":
                yield from _leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaf_paths(item, (*path, index))
    else:
        yield path


@pytest.mark.parametrize("name", list(VALID))
def test_random_leaf_mutations_agree_with_r4b(name, fast):
    rnd = random.Random(name)
    base = VALID[name]
    paths = list(_leaf_paths(base))
    for _ in range(150):
        path = rnd.choice(paths)
        value = rnd.choice(MUTATIONS)
        same_type = [m for m in MUTATIONS if type(m) is type(value)]
        # warm with a same-typed neighbour first when R4B accepts one
        for warm in rnd.sample(same_type, min(3, len(same_type))):
            fast.validate(_set(base, path, warm))
        doc = _set(base, path, value)
        assert (fast.validate(doc) == []) == (validate_resource(doc) == []), (path, value)


def test_remembered_dates_never_let_an_invalid_one_through(fast):
    # dateTime is checked by Python code in fhir_core, so valid strings are remembered
    for day in ("2026-03-02", "2026-03-03", "2026-03-02"):
        assert fast.validate(_set(OBS, ("effectiveDateTime",), day)) == []
    for bad in ("2026-02-30", "2026-02-30", "2026-03-02 ", "2026-3-02"):
        doc = _set(OBS, ("effectiveDateTime",), bad)
        assert fast.validate(doc) == validate_resource(doc) != []


def test_remembered_values_are_bounded_and_short():
    from symfhir.validation import plans

    validator = FastValidator()
    big = "aGVsbG8=" * 100  # base64Binary is Python-checked too
    assert validator.validate(_set(PATIENT, ("photo", 0, "data"), big)) == []
    for n in range(plans._KNOWN_MAX + 50):
        instant = f"2026-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
        assert validator.validate(_set(OBS, ("issued",), instant)) == []
    memos = [m for m in plans._KNOWN.values() if m is not None]
    assert memos and all(len(m.known) <= plans._KNOWN_MAX for m in memos)
    assert all(len(v) <= plans._KNOWN_LEN for m in memos for v in m.known)


def test_gc_pause_nests_across_threads_and_restores_the_collector_state():
    import gc
    import threading

    from symfhir.validation.structural import gc_paused

    inside, leave = threading.Event(), threading.Event()

    def other_thread() -> None:
        with gc_paused():
            inside.set()
            leave.wait(5)

    assert gc.isenabled()
    worker = threading.Thread(target=other_thread)
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner exit leaves it to the outer one
        worker.start()
        assert inside.wait(5)
    assert not gc.isenabled()  # the other thread's pause is still open
    leave.set()
    worker.join(5)
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a collector that was off stays off
    finally:
        gc.enable()


def test_validating_builds_classes_with_the_collector_back_on_afterwards():
    import gc

    assert FastValidator().validate(copy.deepcopy(CONSENT)) == []
    assert gc.isenabled()
