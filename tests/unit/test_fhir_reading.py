"""symfhir.fhir.reading: one answer for what a concept says, its codes, the id a reference
names, a person's name and what a batch read. The cases are those where the three former
copies of ``concept_text`` (summary, contraindications, gallery) disagreed or crashed."""

from __future__ import annotations

import pytest

from symfhir.fhir.reading import (
    batch_resources,
    codings,
    concept_text,
    concept_texts,
    human_name,
    read_batch,
    reference_id,
    status_code,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("concept", "expected"),
    [
        ({"text": "Botox", "coding": [{"code": "x", "display": "X"}]}, "Botox"),
        ({"text": "", "coding": [{"code": "x", "display": "X"}]}, "X"),
        # The first coding with a display wins over an earlier code-only coding.
        ({"coding": [{"code": "a"}, {"code": "b", "display": "Bee"}]}, "Bee"),
        # A code-only concept shows its code (the gallery showed nothing).
        ({"coding": [{"system": "s", "code": "glabella"}]}, "glabella"),
        # The first coding *with* a code (summary and contraindications read coding[0] only).
        ({"coding": [{"system": "s"}, {"code": "forehead"}]}, "forehead"),
        # A null code is no code (the summary showed "None").
        ({"coding": [{"code": None}]}, ""),
        # Malformed input is no text (the contraindications copy raised AttributeError).
        ({"coding": ["not a coding", {"display": "Kept"}]}, "Kept"),
        ({"coding": "nope"}, ""),
        (None, ""),
        ("text", ""),
        ({}, ""),
    ],
)
def test_concept_text(concept, expected):
    assert concept_text(concept) == expected


def test_concept_texts_lists_text_then_every_display():
    concept = {"text": "T", "coding": [{"display": "A"}, {"code": "c"}, {"display": "B"}]}
    assert concept_texts(concept) == ["T", "A", "B"]


def test_codings_and_status_code():
    concept = {"coding": [{"system": "s", "code": "1"}, {"code": "2"}, "junk"]}
    assert codings(concept) == {("s", "1"), ("None", "2")}
    assert codings(None) == set()
    resource = {"clinicalStatus": {"coding": [{"code": "active"}, {"code": "other"}]}}
    assert status_code(resource, "clinicalStatus") == "active"
    assert status_code({"clinicalStatus": {"coding": []}}, "clinicalStatus") == ""
    assert status_code({}, "verificationStatus") == ""


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Procedure/7", "7"),
        ({"reference": "Procedure/7"}, "7"),
        ("Procedure/7/_history/2", "7"),
        ("https://ehr.example.org/fhir/Procedure/7", "7"),
        ("https://ehr.example.org/fhir/Procedure/7/_history/3", "7"),
        ("Patient/7", None),
        ("Procedure/", None),
        ("x/Procedure/7", None),  # a relative path of more segments is not a reference
        ("urn:uuid:0b1c", None),
        ({"display": "a treatment"}, None),
        (None, None),
        (7, None),
    ],
)
def test_reference_id(reference, expected):
    assert reference_id(reference, "Procedure") == expected


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (
            [
                {"use": "usual", "text": "Jo"},
                {"use": "official", "given": ["Joanna"], "family": "Li"},
            ],
            "Joanna Li",
        ),
        ([{"given": ["Ana", "Maria"], "family": "Diaz"}], "Ana Maria Diaz"),
        ([{"use": "official", "given": []}, {"text": "  Sam   Lee "}], "Sam Lee"),
        ([{"family": "Ng"}], "Ng"),
        ([{"given": [None, "Al"]}], "Al"),
        ([], ""),
        (None, ""),
        (["junk"], ""),
    ],
)
def test_human_name(names, expected):
    assert human_name(names) == expected


def test_batch_resources():
    answer = {
        "entry": [
            {"response": {"status": "200 OK"}, "resource": {"resourceType": "Patient", "id": "p"}},
            {
                "response": {"status": "200 OK"},
                "resource": {
                    "resourceType": "Bundle",
                    "link": [{"relation": "next", "url": "x"}],
                    "entry": [
                        {"resource": {"resourceType": "Consent", "id": "c"}},
                        {
                            "resource": {"resourceType": "OperationOutcome"},
                            "search": {"mode": "outcome"},
                        },
                    ],
                },
            },
            {"response": {"status": "403 Forbidden"}, "resource": {"resourceType": "X"}},
            "junk",
        ]
    }
    found = batch_resources(answer, ["Patient", "Consent", "RelatedPerson"])
    assert [r["id"] for r in found.resources] == ["p", "c"]
    assert found.failed == ["RelatedPerson", "entry 4"]
    assert found.truncated is True
    assert batch_resources({}, []).resources == []


def test_read_batch_keeps_order():
    bundle = read_batch(["Patient/A", "Observation?patient=Patient/A"])
    assert bundle["type"] == "batch"
    assert [e["request"] for e in bundle["entry"]] == [
        {"method": "GET", "url": "Patient/A"},
        {"method": "GET", "url": "Observation?patient=Patient/A"},
    ]
