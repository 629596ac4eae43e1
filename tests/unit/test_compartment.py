"""The one patient-compartment check (symfhir/fhir/compartment.py) and its data file."""

from __future__ import annotations

from pathlib import Path

import pytest

from symfhir.errors import ConfigError
from symfhir.fhir.compartment import (
    compartment_search_params,
    in_compartment,
    load_compartment,
    owner_field,
    owner_ids,
    owner_references,
    parse_compartment,
    patient_id_of,
    search_binds,
)

pytestmark = pytest.mark.unit


def ref(value: str) -> dict[str, str]:
    return {"reference": value}


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/A", "A"),
        ("Patient/A/_history/3", "A"),
        ("http://ehr.example/fhir/Patient/A", "A"),
        ("http://ehr.example/fhir/Patient/A/_history/1", "A"),
        ("Group/A", None),
        ("Observation/Patient/A", None),
        ("Patient/", None),
        ("A", None),
        ("", None),
        (None, None),
        ("urn:uuid:6c1c5d0e-0000-4000-8000-000000000001", None),
    ],
)
def test_patient_id_of(reference: object, expected: str | None) -> None:
    assert patient_id_of(reference) == expected


def test_owner_field_per_type() -> None:
    assert owner_field("Observation") == "subject"
    assert owner_field("Consent") == "patient"
    assert owner_field("AllergyIntolerance") == "patient"
    assert owner_field("Task") == "for"
    assert owner_field("Provenance") == "target"
    assert owner_field("AuditEvent") == "entity.what"
    assert owner_field("Binary") == "securityContext"
    # Deny by default: a type the data does not list belongs to nobody.
    assert owner_field("Organization") is None
    assert owner_ids({"resourceType": "Organization", "id": "A"}) == set()


def test_only_the_owner_element_counts() -> None:
    # An Observation *about* B that names A as performer is B's record, not A's.
    observation = {
        "resourceType": "Observation",
        "subject": ref("Patient/B"),
        "performer": [ref("Patient/A")],
    }
    assert owner_ids(observation) == {"B"}
    assert not in_compartment(observation, "A")
    assert in_compartment(observation, "B")


def test_a_field_of_another_type_does_not_count() -> None:
    # `subject` is not Consent's owner element: a Consent naming B as patient is B's.
    consent = {"resourceType": "Consent", "patient": ref("Patient/B"), "subject": ref("Patient/A")}
    assert not in_compartment(consent, "A")
    condition = {"resourceType": "Condition", "patient": ref("Patient/A")}
    assert owner_ids(condition) == set()


def test_lists_and_nested_paths() -> None:
    event = {
        "resourceType": "AuditEvent",
        "entity": [{"what": ref("Patient/A")}, {"what": ref("Observation/9")}],
    }
    assert in_compartment(event, "A")
    event["entity"].append({"what": ref("Patient/B")})
    assert owner_ids(event) == {"A", "B"}
    assert not in_compartment(event, "A")  # names another patient too
    provenance = {"resourceType": "Provenance", "target": [ref("Observation/1")]}
    assert not in_compartment(provenance, "A")  # nobody's until it names a patient


def test_patient_and_binary() -> None:
    assert in_compartment({"resourceType": "Patient", "id": "A"}, "A")
    assert not in_compartment({"resourceType": "Patient", "id": "B"}, "A")
    assert not in_compartment({"resourceType": "Patient"}, "A")
    binary = {"resourceType": "Binary", "securityContext": ref("Patient/A")}
    assert in_compartment(binary, "A")
    assert not in_compartment({"resourceType": "Binary"}, "A")


def test_aliases_of_a_transaction() -> None:
    urn = "urn:uuid:6c1c5d0e-0000-4000-8000-000000000001"
    observation = {"resourceType": "Observation", "subject": ref(urn)}
    assert not in_compartment(observation, "A")
    assert in_compartment(observation, "A", {urn: "A"})


def test_owner_references() -> None:
    provenance = {
        "resourceType": "Provenance",
        "target": [ref("Media/1"), {"identifier": {"value": "x"}}, ref("Binary/2")],
        "agent": [{"who": ref("Practitioner/3")}],
    }
    assert owner_references(provenance) == ["Media/1", "Binary/2"]
    assert owner_references({"resourceType": "Patient", "id": "A"}) == []
    assert owner_references({"resourceType": "Practitioner", "id": "3"}) == []


def test_identifier_only_reference_names_nobody() -> None:
    observation = {"resourceType": "Observation", "subject": {"identifier": {"value": "A"}}}
    assert not in_compartment(observation, "A")
    assert not in_compartment({"resourceType": "Observation", "subject": "Patient/A"}, "A")


def test_empty_patient_id_is_never_in() -> None:
    assert not in_compartment({"resourceType": "Patient", "id": ""}, "")


@pytest.mark.parametrize(
    ("resource_type", "name", "value", "binds"),
    [
        ("Observation", "patient", "A", True),
        ("Observation", "patient", "Patient/A", True),
        ("Observation", "subject", "Patient/A", True),
        ("Observation", "subject", "A", False),  # could be any type's id
        ("Observation", "patient", "A,B", False),
        ("Observation", "patient", "A,A", True),
        ("Observation", "patient", "", False),
        ("Observation", "subject.link", "Patient/A", False),
        ("Observation", "patient:Patient", "A", False),
        ("Observation", "performer", "Patient/A", False),
        ("Patient", "_id", "A", True),
        ("Patient", "_id:not", "A", False),
        ("Patient", "patient", "A", False),
        ("Consent", "subject", "Patient/A", False),  # not a Consent parameter
        ("Organization", "patient", "A", False),
    ],
)
def test_search_binds(resource_type: str, name: str, value: str, binds: bool) -> None:
    assert search_binds(resource_type, name, value, "A") is binds


def test_search_params() -> None:
    assert compartment_search_params("Observation") == ("patient", "subject")
    assert compartment_search_params("Patient") == ("_id",)
    assert compartment_search_params("Nope") == ()


def test_bundled_data_loads() -> None:
    rules = load_compartment()
    assert "Observation" in rules and "Media" in rules


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{}", "'types' table"),
        ("types: {Observation: {search: [patient]}}", "Observation needs an 'owner'"),
        ("types: {Observation: {owner: subject, search: patient}}", "must be a list"),
        ("types: {Observation: {owner: subject, search: ['subject:Patient']}}", "not a plain"),
    ],
)
def test_bad_data_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "compartment.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_compartment(path)


def test_parse_accepts_minimal() -> None:
    rules = parse_compartment({"types": {"Observation": {"owner": "subject"}}})
    assert rules["Observation"].search == ()
