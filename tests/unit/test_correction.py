"""Correction requests without a server: the rules of mappings/corrections.yaml (deny by
default), the change built on a copy of the record, and the review workflows against an
in-memory server that records each transaction."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from symfhir.errors import (
    ConfigError,
    FhirConflictError,
    NotAllowedError,
    PrivacyRequestError,
    RecordError,
)
from symfhir.privacy.correction import (
    AWAITING,
    AWAITING_TARGET,
    Change,
    Target,
    amended,
    handle,
    parse_target,
)
from symfhir.privacy.correction_review import (
    accept_correction,
    deny_correction,
    file_disagreement,
)
from symfhir.privacy.correction_rules import load_rules, parse_rules
from symfhir.privacy.model import (
    COMPLETED,
    DENIED,
    IDENTITY_VERIFIED,
    IN_PROGRESS,
    PrivacyRequest,
    Requester,
    Verification,
)
from symfhir.privacy.processing import process_request
from symfhir.privacy.requests import NewRequest, submit_request
from symfhir.workspace.actor import Actor
from tests.unit.fake_fhir import Trail
from tests.unit.privacy_fake import FakeServer

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=ZoneInfo("America/Chicago"))
DOCTOR = Actor("Practitioner/dr-1")
RULES = load_rules()


@dataclass
class TransactionServer(FakeServer):
    """The privacy fake plus transactions: all entries or none, If-Match checked first,
    ``urn:uuid`` references resolved, every bundle kept."""

    bundles: list[dict[str, Any]] = field(default_factory=list)

    def transaction(self, bundle: dict[str, Any]) -> dict[str, Any]:
        self.bundles.append(copy.deepcopy(bundle))
        for entry in bundle["entry"]:
            match = entry["request"].get("ifMatch")
            if match:
                type_, id_ = entry["request"]["url"].split("/")
                if self.resources[(type_, id_)]["meta"]["versionId"] != match.strip('W/"'):
                    raise FhirConflictError("transaction", "version conflict", status=412)
        ids: dict[str, str] = {}
        for entry in bundle["entry"]:
            if entry["request"]["method"] == "POST":
                ids[entry["fullUrl"]] = f"{entry['resource']['resourceType']}/f{self.next_id}"
                self.next_id += 1
        text = json.dumps(bundle)
        for urn, ref in ids.items():
            text = text.replace(urn, ref)
        answers = []
        for sent, entry in zip(bundle["entry"], json.loads(text)["entry"], strict=True):
            resource = entry["resource"]
            if entry["request"]["method"] == "POST":
                resource["id"] = ids[sent["fullUrl"]].split("/")[1]
            key = (resource["resourceType"], resource["id"])
            previous = self.resources.get(key, {}).get("meta", {}).get("versionId", "0")
            resource["meta"] = {"versionId": str(int(previous) + 1)}
            self.resources[key] = resource
            location = f"{key[0]}/{key[1]}/_history/{resource['meta']['versionId']}"
            status = "201 Created" if previous == "0" else "200 OK"
            answers.append({"response": {"status": status, "location": location}})
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}


@pytest.fixture
def server() -> TransactionServer:
    fake = TransactionServer()
    fake.add(
        {
            "resourceType": "Patient",
            "id": "avery",
            "birthDate": "1985-04-12",
            "name": [{"use": "official", "family": "Quillfeathr", "given": ["Avery"]}],
            "telecom": [
                {"system": "phone", "value": "+13125550100", "use": "mobile"},
                {"system": "email", "value": "avery.q@example.com"},
            ],
        }
    )
    fake.add(
        {
            "resourceType": "AllergyIntolerance",
            "id": "lido",
            "patient": {"reference": "Patient/avery"},
            "code": {"text": "Lidocaine"},
        }
    )
    fake.add(
        {
            "resourceType": "Consent",
            "id": "photo",
            "patient": {"reference": "Patient/avery"},
            "status": "active",
        }
    )
    return fake


def requested(server: FakeServer, inputs: dict[str, str], *, process: bool = True) -> str:
    verified = Verification("in-person", DOCTOR.fhir_user, NOW)
    new = NewRequest(
        "correction",
        Requester("Avery Quillfeather", date(1985, 4, 12), "avery.q@example.com"),
        inputs=inputs,
        patient_id="avery",
        verifications=(verified,),
    )
    task_id = str(submit_request(server, DOCTOR, new, now=NOW, audit=Trail()).request.task_id)
    if process:
        process_request(server, DOCTOR, task_id, now=NOW, audit=Trail())
    return task_id


def request_of(inputs: dict[str, str]) -> PrivacyRequest:
    return PrivacyRequest(
        task_id="t1",
        kind="correction",
        requester=Requester("Avery Quillfeather"),
        received=NOW,
        due=date(2026, 12, 20),
        business_status=IDENTITY_VERIFIED,
        patient_id="avery",
        inputs=inputs,
        verifications=(Verification("in-person", DOCTOR.fhir_user, NOW),),
    )


# -- the rules ---------------------------------------------------------------------------


def test_the_bundled_rules_list_demographics_and_clinical_types_only() -> None:
    assert set(RULES.patient_fields) == {"telecom", "name", "address", "birthDate"}
    assert set(RULES.types) == {
        "AllergyIntolerance",
        "Condition",
        "MedicationStatement",
        "Observation",
        "Procedure",
    }


@pytest.mark.parametrize(
    "text",
    [
        "Patient.identifier",  # not listed: deny by default
        "Patient.gender",
        "Consent/photo",  # a signed decision: a restriction request withdraws it
        "QuestionnaireResponse/1",
        "Media/1",
        "AuditEvent/1",
        "Provenance/1",
        "Patient/avery",  # the client's details are named by field
        "Condition",
        "Condition/../Patient/1",
        "",
    ],
)
def test_a_target_the_rules_do_not_list_is_refused(text: str) -> None:
    with pytest.raises(PrivacyRequestError):
        parse_target(text, "avery", RULES)


def test_a_field_target_is_the_clients_own_patient() -> None:
    assert parse_target(" Patient.telecom ", "avery", RULES) == Target(
        "Patient", "avery", "telecom"
    )
    assert parse_target("Condition/c-1", "avery", RULES) == Target("Condition", "c-1")


@pytest.mark.parametrize(
    "data",
    [
        {"patient": {"telecom": {"as": "anything"}}},
        {"resources": {"Condition": {"actions": ["rewrite"]}}},
        {"resources": {"Condition": {"actions": ["entered-in-error"]}}},  # no status element
        {"resources": {"Patient": {"actions": ["note"]}}},
        {"patient": ["telecom"]},
    ],
)
def test_bad_rules_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        parse_rules(data)


def test_empty_rules_allow_nothing() -> None:
    rules = parse_rules({})
    with pytest.raises(PrivacyRequestError):
        parse_target("Patient.telecom", "avery", rules)
    with pytest.raises(PrivacyRequestError):
        parse_target("Condition/1", "avery", rules)


# -- the change (pure) -------------------------------------------------------------------


def change(resource: dict[str, Any], target: Target, value: str, action: str | None = None):
    return amended(
        resource,
        target,
        Change(value, action),
        RULES,
        note="Amended at the client's request (Task/t1).",
        author=DOCTOR.fhir_user,
        now=NOW,
        phone_region="US",
    )


def test_a_name_replaces_the_official_name_and_keeps_the_rest(server: FakeServer) -> None:
    patient = server.read("Patient", "avery")
    new, action = change(patient, Target("Patient", "avery", "name"), "Avery Jo Quillfeather")
    assert action == "replace"
    assert new["name"] == [{"use": "official", "family": "Quillfeather", "given": ["Avery", "Jo"]}]
    assert new["telecom"] == patient["telecom"]
    assert "meta" not in new


def test_an_email_correction_replaces_only_the_email(server: FakeServer) -> None:
    patient = server.read("Patient", "avery")
    new, _ = change(patient, Target("Patient", "avery", "telecom"), " Avery.Q2@Example.com ")
    assert new["telecom"] == [
        {"system": "phone", "value": "+13125550100", "use": "mobile"},
        {"system": "email", "value": "avery.q2@example.com"},
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [("telecom", "not a phone"), ("birthDate", "12/04/1985"), ("name", "Avery")],
)
def test_a_value_the_field_cannot_take_is_refused(
    server: FakeServer, field: str, value: str
) -> None:
    with pytest.raises(RecordError):
        change(server.read("Patient", "avery"), Target("Patient", "avery", field), value)


def test_a_clinical_record_gets_a_note_never_a_rewrite(server: FakeServer) -> None:
    allergy = server.read("AllergyIntolerance", "lido")
    new, action = change(allergy, Target("AllergyIntolerance", "lido"), "Mild redness only")
    assert action == "note"
    assert new["code"] == allergy["code"]
    assert new["note"] == [
        {
            "time": "2026-11-20T10:00:00-06:00",
            "text": "Amended at the client's request (Task/t1).\nCorrected text: Mild redness only",
            "authorReference": {"reference": "Practitioner/dr-1"},
        }
    ]


def test_entered_in_error_sets_the_types_status_element(server: FakeServer) -> None:
    allergy = server.read("AllergyIntolerance", "lido")
    new, action = change(
        allergy, Target("AllergyIntolerance", "lido"), "Wrong client", "entered-in-error"
    )
    assert action == "entered-in-error"
    assert new["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert len(new["note"]) == 1
    procedure = {"resourceType": "Procedure", "id": "p", "status": "completed"}
    marked, _ = change(procedure, Target("Procedure", "p"), "Never done", "entered-in-error")
    assert marked["status"] == "entered-in-error"


def test_a_field_cannot_be_noted_nor_a_record_replaced(server: FakeServer) -> None:
    with pytest.raises(PrivacyRequestError):
        change(server.read("Patient", "avery"), Target("Patient", "avery", "name"), "A B", "note")
    with pytest.raises(PrivacyRequestError):
        change(
            server.read("AllergyIntolerance", "lido"),
            Target("AllergyIntolerance", "lido"),
            "x",
            "replace",
        )


@pytest.mark.parametrize("value", ["", "   ", "a\x07b", "x" * 1001, "card 4111 1111 1111 1111"])
def test_an_unusable_corrected_text_is_refused(server: FakeServer, value: str) -> None:
    with pytest.raises(RecordError):
        change(
            server.read("AllergyIntolerance", "lido"), Target("AllergyIntolerance", "lido"), value
        )


# -- the handler -------------------------------------------------------------------------


def test_the_handler_changes_nothing_and_awaits_review(server: TransactionServer) -> None:
    trail = Trail()
    outcome = handle(
        server,
        DOCTOR,
        request_of({"resource": "AllergyIntolerance/lido", "proposed": "No allergy"}),
        now=NOW,
        audit=trail,
    )
    assert outcome.business_status == IN_PROGRESS
    assert outcome.summary == AWAITING
    assert [(o.label, o.reference) for o in outcome.outputs] == [
        ("correction-target", "AllergyIntolerance/lido")
    ]
    assert server.bundles == []
    assert server.read("AllergyIntolerance", "lido")["meta"]["versionId"] == "1"


@pytest.mark.parametrize(
    "inputs",
    [
        {"resource": "AllergyIntolerance/missing", "proposed": "x"},
        {"resource": "Consent/photo", "proposed": "x"},
        {"resource": "Patient.identifier", "proposed": "x"},
        {"resource": "Patient.telecom", "proposed": ""},
    ],
)
def test_the_handler_refuses_what_it_may_not_propose(
    server: TransactionServer, inputs: dict[str, str]
) -> None:
    with pytest.raises((PrivacyRequestError, RecordError)):
        handle(server, DOCTOR, request_of(inputs), now=NOW, audit=Trail())


def test_the_handler_refuses_another_clients_record(server: TransactionServer) -> None:
    server.add(
        {
            "resourceType": "Condition",
            "id": "theirs",
            "subject": {"reference": "Patient/someone-else"},
        }
    )
    with pytest.raises(PrivacyRequestError, match="not a record of this client"):
        handle(
            server,
            DOCTOR,
            request_of({"resource": "Condition/theirs", "proposed": "x"}),
            now=NOW,
            audit=Trail(),
        )


# -- the review workflows ----------------------------------------------------------------


def test_accept_is_one_transaction_with_if_match_and_provenance(server: TransactionServer) -> None:
    task_id = requested(server, {"resource": "Patient.telecom", "proposed": "312-555-0142"})
    task_version = server.read("Task", task_id)["meta"]["versionId"]

    result = accept_correction(
        server,
        DOCTOR,
        task_id,
        version=task_version,
        change=Change("312-555-0142"),
        now=NOW,
        audit=Trail(),
    )

    (bundle,) = server.bundles
    methods = [(e["request"]["method"], e["request"]["url"]) for e in bundle["entry"]]
    assert methods == [("PUT", "Patient/avery"), ("POST", "Provenance"), ("PUT", f"Task/{task_id}")]
    assert bundle["entry"][0]["request"]["ifMatch"] == 'W/"1"'
    assert bundle["entry"][2]["request"]["ifMatch"] == f'W/"{task_version}"'
    provenance = bundle["entry"][1]["resource"]
    assert provenance["target"] == [{"reference": "Patient/avery"}]
    assert provenance["activity"]["coding"][0]["code"] == "UPDATE"
    assert provenance["agent"][0]["who"] == {"reference": "Practitioner/dr-1"}
    assert provenance["reason"][0]["coding"][0]["code"] == "PATRQT"
    assert {"role": "source", "what": {"reference": f"Task/{task_id}"}} in provenance["entity"]
    assert server.read("Patient", "avery")["telecom"][0]["value"] == "+13125550142"
    assert result.target == "Patient/avery/_history/2"
    assert result.request.request.business_status == COMPLETED
    outputs = {o.label: o.text or o.reference for o in result.request.request.outputs}
    assert outputs["corrected"] == "Patient/avery/_history/2"
    assert outputs["correction-provenance"].startswith("Provenance/")
    assert result.notice is not None and result.notice.to == "avery.q@example.com"


def test_accept_on_a_stale_task_version_writes_nothing(server: TransactionServer) -> None:
    task_id = requested(server, {"resource": "AllergyIntolerance/lido", "proposed": "x"})
    with pytest.raises(FhirConflictError):
        accept_correction(
            server, DOCTOR, task_id, version="1", change=Change("x"), now=NOW, audit=Trail()
        )
    assert server.read("AllergyIntolerance", "lido")["meta"]["versionId"] == "1"
    assert server.read("Task", task_id)["businessStatus"]["coding"][0]["code"] == IN_PROGRESS


def test_accept_before_processing_is_refused(server: TransactionServer) -> None:
    task_id = requested(server, {"resource": "Patient.telecom", "proposed": "x"}, process=False)
    with pytest.raises(PrivacyRequestError, match="not awaiting review"):
        accept_correction(
            server, DOCTOR, task_id, version=None, change=Change("x"), now=NOW, audit=Trail()
        )
    assert server.bundles == []


def test_a_read_only_session_cannot_accept(server: TransactionServer) -> None:
    task_id = requested(server, {"resource": "Patient.telecom", "proposed": "x"})
    with pytest.raises(NotAllowedError):
        accept_correction(
            server,
            Actor("Practitioner/dr-1", writable=False),
            task_id,
            version=None,
            change=Change("x"),
            now=NOW,
            audit=Trail(),
        )


def test_deny_keeps_the_basis_and_the_rights(server: TransactionServer) -> None:
    task_id = requested(server, {"resource": "AllergyIntolerance/lido", "proposed": "x"})
    with pytest.raises(PrivacyRequestError, match="basis"):
        deny_correction(server, DOCTOR, task_id, version=None, reason="  ", now=NOW, audit=Trail())

    result = deny_correction(
        server,
        DOCTOR,
        task_id,
        version=None,
        reason="Accurate and complete.",
        now=NOW,
        audit=Trail(),
    )

    assert result.request.request.business_status == DENIED
    outputs = {o.label: o.text for o in result.request.request.outputs}
    assert outputs["denial-reason"] == "Accurate and complete."
    assert "statement disagreeing" in outputs["disagreement-rights"]
    assert result.notice is not None
    assert "Reason: Accurate and complete." in result.notice.text
    assert "Lidocaine" not in result.notice.text
    assert server.read("AllergyIntolerance", "lido")["meta"]["versionId"] == "1"


def test_a_disagreement_is_kept_with_the_disputed_record(server: TransactionServer) -> None:
    task_id = requested(server, {"resource": "AllergyIntolerance/lido", "proposed": "x"})
    with pytest.raises(PrivacyRequestError, match="follows a denial"):
        file_disagreement(server, DOCTOR, task_id, "I disagree.", now=NOW, audit=Trail())
    deny_correction(
        server, DOCTOR, task_id, version=None, reason="Accurate.", now=NOW, audit=Trail()
    )

    result = file_disagreement(server, DOCTOR, task_id, "I disagree.", now=NOW, audit=Trail())

    bundle = server.bundles[-1]
    document = bundle["entry"][0]["resource"]
    assert document["resourceType"] == "DocumentReference"
    assert document["type"]["coding"][0]["code"] == "statement-of-disagreement"
    assert document["author"] == [{"reference": "Patient/avery"}]
    assert document["context"]["related"] == [
        {"reference": "AllergyIntolerance/lido"},
        {"reference": f"Task/{task_id}"},
    ]
    assert bundle["entry"][0]["request"]["ifNoneExist"].endswith(f"|{task_id}")
    assert result.target is not None and result.target.startswith("DocumentReference/")
    assert result.request.request.business_status == DENIED
    assert result.notice is not None and "received" in result.notice.subject
    with pytest.raises(RecordError):
        file_disagreement(server, DOCTOR, task_id, "  ", now=NOW, audit=Trail())


def test_no_email_no_notice(server: TransactionServer) -> None:
    new = NewRequest(
        "correction",
        Requester("Avery Quillfeather", phone="312-555-0100"),
        inputs={"resource": "AllergyIntolerance/lido", "proposed": "x"},
        patient_id="avery",
        verifications=(Verification("in-person", DOCTOR.fhir_user, NOW),),
    )
    task_id = str(submit_request(server, DOCTOR, new, now=NOW, audit=Trail()).request.task_id)
    result = deny_correction(
        server, DOCTOR, task_id, version=None, reason="Accurate.", now=NOW, audit=Trail()
    )
    assert result.notice is None


def test_only_a_correction_is_answered_here(server: TransactionServer) -> None:
    new = NewRequest(
        "access",
        Requester("Avery Quillfeather", email="avery.q@example.com"),
        patient_id="avery",
        verifications=(Verification("in-person", DOCTOR.fhir_user, NOW),),
    )
    task_id = str(submit_request(server, DOCTOR, new, now=NOW, audit=Trail()).request.task_id)
    with pytest.raises(PrivacyRequestError, match="not a correction"):
        deny_correction(server, DOCTOR, task_id, version=None, reason="x", now=NOW, audit=Trail())


# -- a request naming no record (the portal's and the desk's free text) -------------------


def test_a_request_in_free_text_awaits_the_practitioner_naming_the_record(
    server: TransactionServer,
) -> None:
    free_text = replace(request_of({}), details="My phone number is now 312-555-0142.")
    outcome = handle(server, DOCTOR, free_text, now=NOW, audit=Trail())
    assert outcome.business_status == IN_PROGRESS
    assert outcome.outputs == () and outcome.summary == AWAITING_TARGET


def details_only(server: TransactionServer) -> str:
    new = NewRequest(
        "correction",
        Requester("Avery Quillfeather", email="avery.q@example.com"),
        details="My phone number is now 312-555-0142.",
        patient_id="avery",
        verifications=(Verification("in-person", DOCTOR.fhir_user, NOW),),
    )
    task_id = str(submit_request(server, DOCTOR, new, now=NOW, audit=Trail()).request.task_id)
    process_request(server, DOCTOR, task_id, now=NOW, audit=Trail())
    return task_id


def test_the_practitioner_names_the_record_when_the_request_did_not(
    server: TransactionServer,
) -> None:
    task_id = details_only(server)
    with pytest.raises(PrivacyRequestError, match="name the record"):
        accept_correction(
            server, DOCTOR, task_id, version=None, change=Change("x"), now=NOW, audit=Trail()
        )
    with pytest.raises(PrivacyRequestError, match="cannot be amended"):
        accept_correction(
            server,
            DOCTOR,
            task_id,
            version=None,
            change=Change("x", target="Consent/photo"),
            now=NOW,
            audit=Trail(),
        )
    result = accept_correction(
        server,
        DOCTOR,
        task_id,
        version=None,
        change=Change("312-555-0142", target="Patient.telecom"),
        now=NOW,
        audit=Trail(),
    )
    assert server.read("Patient", "avery")["telecom"][0]["value"] == "+13125550142"
    outputs = {o.label: o.text or o.reference for o in result.request.request.outputs}
    assert outputs["correction-target"] == "Patient/avery"
    assert outputs["correction-field"] == "telecom"


def test_a_practitioner_cannot_swap_the_record_the_request_named(
    server: TransactionServer,
) -> None:
    task_id = requested(server, {"resource": "AllergyIntolerance/lido", "proposed": "x"})
    with pytest.raises(PrivacyRequestError, match="another record"):
        accept_correction(
            server,
            DOCTOR,
            task_id,
            version=None,
            change=Change("x", target="Patient.telecom"),
            now=NOW,
            audit=Trail(),
        )
    assert server.bundles == []
