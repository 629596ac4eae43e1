"""symfhir.workspace.consents.guardians and the capture with a guardian: who is offered, the
choice checked, and the Consent's performer by reference to a RelatedPerson on file or new."""

from __future__ import annotations

from typing import Any

import pytest

from symfhir.mapping import patient as patient_mapping
from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import Entry
from symfhir.model import ContactPerson
from symfhir.model.client import Client
from symfhir.validation import FastValidator
from symfhir.workspace import consents as ws

pytestmark = pytest.mark.unit

ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"


def _imported(ctx: MappingContext, rid: str, name: str, relationship: str, role: str, pid="p1"):
    """A RelatedPerson as the import writes it, as the server returns it (with an id)."""
    client = Client.model_construct(client_id=f"C-{rid}")
    person = ContactPerson(name=name, relationship=relationship)
    built = patient_mapping.related_person(
        person, role, client, Entry({}, f"Patient/{pid}", ""), ctx
    )
    return {**built.resource, "id": rid}


@pytest.fixture
def on_file(ctx: MappingContext) -> list[dict[str, Any]]:
    return [
        _imported(ctx, "rp-mother", "Elodie Testperson", "mother", "guardian"),
        _imported(ctx, "rp-spouse", "Camille Testperson", "spouse", "emergency"),
        _imported(ctx, "rp-father", "Bruno Testperson", "father", "emergency"),
        _imported(ctx, "rp-other", "Zed Elsewhere", "mother", "guardian", pid="p2"),
        {**_imported(ctx, "rp-old", "Old Guardian", "guardian", "guardian"), "active": False},
        {
            "resourceType": "Patient",
            "id": "p1",
        },
    ]


def form(**fields: str) -> dict[str, str]:
    return {
        "kind": "research",
        "decision": "given",
        "signer": "guardian",
        "signer_name": "",
        "typed_signature": "Elodie Testperson",
        **fields,
    }


def test_guardians_on_file_are_the_patients_parents_and_guardians(ctx, on_file):
    guardians = ws.guardians_on_file(on_file, "p1", ctx)
    # By name; the spouse (not a parent), another patient's and an inactive one are left out;
    # an emergency contact who is the father may sign.
    assert [(g.id, g.name) for g in guardians] == [
        ("rp-father", "Bruno Testperson"),
        ("rp-mother", "Elodie Testperson"),
    ]
    mother = guardians[1]
    assert mother.on_file and mother.choice == "RelatedPerson/rp-mother"
    assert mother.relationship == "guardian, mother"


def test_a_name_in_parts_and_an_absolute_patient_reference(ctx):
    resource = {
        "resourceType": "RelatedPerson",
        "id": "rp9",
        "patient": {"reference": "https://ehr.example.org/fhir/Patient/p1"},
        "relationship": [{"coding": [{"system": ROLE, "code": "PRN"}]}],
        "name": [{"given": ["Ana", "Maria"], "family": "Lopez"}],
    }
    (guardian,) = ws.guardians_on_file([resource], "p1", ctx)
    assert guardian.name == "Ana Maria Lopez" and guardian.id == "rp9"
    assert ws.guardians_on_file([resource], "p11", ctx) == []


def test_a_guardian_chosen_from_the_list(ctx, on_file):
    guardians = ws.guardians_on_file(on_file, "p1", ctx)
    capture, errors = ws.parse_capture(
        form(guardian="RelatedPerson/rp-mother"), ctx.consent_kinds, ctx, 15, guardians
    )
    assert errors == {} and capture is not None
    assert capture.guardian is not None and capture.guardian.id == "rp-mother"
    assert capture.signer_name == "Elodie Testperson"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "guardian"),  # no choice at all
        ({"guardian": "RelatedPerson/rp-other"}, "guardian"),  # another patient's
        ({"guardian": "RelatedPerson/rp-spouse"}, "guardian"),  # on record, not a guardian
        ({"guardian": "RelatedPerson/rp-old"}, "guardian"),  # inactive
        ({"guardian": "rp-mother"}, "guardian"),  # not the form's value
        ({"guardian": "new", "guardian_relationship": "parent"}, "guardian-name"),
        (
            {"guardian": "new", "guardian_name": "a\x00b", "guardian_relationship": "parent"},
            "guardian-name",
        ),
        ({"guardian": "new", "guardian_name": "Grace Testperson"}, "guardian-relationship"),
        (
            {
                "guardian": "new",
                "guardian_name": "Grace Testperson",
                "guardian_relationship": "friend",
            },
            "guardian-relationship",
        ),
    ],
)
def test_guardian_choice_errors(ctx, on_file, fields, field):
    guardians = ws.guardians_on_file(on_file, "p1", ctx)
    capture, errors = ws.parse_capture(form(**fields), ctx.consent_kinds, ctx, 15, guardians)
    assert capture is None and field in errors


def test_a_new_guardian_may_be_refused_by_the_session(ctx):
    fields = form(guardian="new", guardian_name="Grace Testperson", guardian_relationship="parent")
    capture, errors = ws.parse_capture(fields, ctx.consent_kinds, ctx, 15, may_add_guardian=False)
    assert capture is None and "may not add" in errors["guardian"]
    capture, errors = ws.parse_capture(fields, ctx.consent_kinds, ctx, 15)
    assert errors == {} and capture is not None


def test_the_client_signing_ignores_the_guardian_fields(ctx):
    kinds = ctx.consent_kinds
    plain = {**form(signer="client", signer_name="Ada Testperson"), "typed_signature": "Ada"}
    extra = {**plain, "guardian": "new", "guardian_name": "X", "guardian_relationship": "parent"}
    first, _ = ws.parse_capture(plain, kinds, ctx, 36)
    second, _ = ws.parse_capture(extra, kinds, ctx, 36)
    assert first is not None and second is not None and second.guardian is None
    a = ws.capture_entries(first, "p1", None, kinds, ctx)
    b = ws.capture_entries(second, "p1", None, kinds, ctx)
    assert len(b) == 2 and a[0].if_none_exist == b[0].if_none_exist
    assert b[0].resource["performer"][0]["reference"] == "Patient/p1"


def test_entries_with_a_guardian_on_file(ctx, on_file):
    kinds = ctx.consent_kinds
    guardians = ws.guardians_on_file(on_file, "p1", ctx)
    capture, _ = ws.parse_capture(
        form(guardian="RelatedPerson/rp-mother"), kinds, ctx, 15, guardians
    )
    assert capture is not None
    consent, prov = ws.capture_entries(capture, "p1", "Practitioner/dr1", kinds, ctx)
    assert consent.resource["performer"] == [
        {
            "type": "RelatedPerson",
            "display": "Elodie Testperson (parent or guardian)",
            "reference": "RelatedPerson/rp-mother",
        }
    ]
    assert prov.resource["target"] == [{"reference": consent.full_url}]
    # Another guardian signing the same form is another Consent.
    father, _ = ws.parse_capture(
        form(guardian="RelatedPerson/rp-father"), kinds, ctx, 15, guardians
    )
    assert father is not None
    other = ws.capture_entries(father, "p1", "Practitioner/dr1", kinds, ctx)
    assert other[0].if_none_exist != consent.if_none_exist


@pytest.mark.parametrize(
    ("relationship", "codes"), [("parent", ["GUARD", "PRN"]), ("guardian", ["GUARD"])]
)
def test_entries_with_a_new_guardian(ctx, relationship, codes):
    kinds = ctx.consent_kinds
    fields = form(
        guardian="new", guardian_name="Grace Testperson", guardian_relationship=relationship
    )
    capture, errors = ws.parse_capture(fields, kinds, ctx, 15)
    assert errors == {} and capture is not None
    related, consent, prov = ws.capture_entries(capture, "p1", "Practitioner/dr1", kinds, ctx)
    person = related.resource
    assert person["resourceType"] == "RelatedPerson" and person["active"] is True
    assert person["patient"] == {"reference": "Patient/p1"}
    assert person["name"] == [{"text": "Grace Testperson"}]
    assert [c["code"] for concept in person["relationship"] for c in concept["coding"]] == codes
    (ident,) = person["identifier"]
    assert ident["system"] == f"{ctx.spa.identifier_base}/related-person"
    assert ident["value"].startswith("p1-guardian-") and "grace" not in ident["value"].lower()
    assert related.if_none_exist == f"identifier={ident['system']}|{ident['value']}"
    assert consent.resource["performer"] == [
        {
            "type": "RelatedPerson",
            "display": "Grace Testperson (parent or guardian)",
            "reference": related.full_url,
        }
    ]
    assert related.full_url.startswith("urn:uuid:")
    assert prov.resource["target"] == [{"reference": consent.full_url}, related.reference]
    validator = FastValidator()
    assert all(validator.validate(e.resource) == [] for e in (related, consent, prov))
    bundle = ws.capture_bundle([related, consent, prov])
    first = bundle["entry"][0]
    assert first["fullUrl"] == related.full_url
    assert first["request"]["method"] == "POST" and first["request"]["url"] == "RelatedPerson"
    assert first["request"]["ifNoneExist"] == related.if_none_exist
    # The same person entered again is the same RelatedPerson (conditional create).
    again = ws.capture_entries(capture, "p1", "Practitioner/dr1", kinds, ctx)
    assert again[0].if_none_exist == related.if_none_exist
    elsewhere = ws.guardian_entry(capture.guardian, "p2", ctx)
    assert elsewhere.if_none_exist != related.if_none_exist
