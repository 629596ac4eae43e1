"""The privacy-request workflows against an in-memory server: submit (conditional), verify,
match, start, extend, close, list; versioned writes and an AuditEvent per step."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from symfhir.errors import FhirConflictError, NotAllowedError, PrivacyRequestError, RecordError
from symfhir.privacy.matching import AUTOMATIC, assign_patient, match_patient
from symfhir.privacy.model import (
    COMPLETED,
    DENIED,
    IDENTITY_VERIFIED,
    IN_PROGRESS,
    PARTIALLY_COMPLETED,
    RECEIVED,
    Outcome,
    Requester,
    TaskOutput,
    Verification,
)
from symfhir.privacy.requests import (
    NewRequest,
    complete,
    deny,
    extend,
    get_request,
    list_requests,
    record_verification,
    start,
    submit_request,
)
from symfhir.workspace.actor import Actor
from tests.unit.fake_fhir import Trail
from tests.unit.privacy_fake import FakeServer

OFFICER = Actor("Practitioner/officer-1", "Dana Officer")
AVERY = Requester("Avery Quillfeather", date(1985, 4, 12), "Avery.Q@Example.com", "(337) 555-0101")


@pytest.fixture
def server() -> FakeServer:
    fake = FakeServer()
    fake.add(
        {
            "resourceType": "Patient",
            "id": "avery",
            "name": [{"family": "Quillfeather", "given": ["Avery"]}],
            "birthDate": "1985-04-12",
            "telecom": [
                {"system": "email", "value": "avery.q@example.com"},
                {"system": "phone", "value": "+13375550101"},
            ],
        }
    )
    return fake


@pytest.fixture
def trail() -> Trail:
    return Trail()


def _submit(server: FakeServer, trail: Trail, now: datetime, **changes: object) -> str:
    new = NewRequest(**{"kind": "access", "requester": AVERY, "reference": "R-1", **changes})
    return submit_request(server, OFFICER, new, now=now, audit=trail).request.task_id


def _verify(server: FakeServer, trail: Trail, now: datetime, task_id: str, *methods: str) -> None:
    for method in methods:
        by = OFFICER.fhir_user if method == "in-person" else None
        verification = Verification(method, by, now)
        record_verification(server, OFFICER, task_id, verification, now=now, audit=trail)


def test_submit_writes_a_received_task_due_in_30_days(server, trail, now) -> None:
    submitted = submit_request(
        server,
        OFFICER,
        NewRequest("access", AVERY, details="A copy, please.", reference="R-1"),
        now=now,
        audit=trail,
    )
    assert submitted.created
    request = submitted.request.request
    assert request.business_status == RECEIVED
    assert request.due == date(2026, 12, 25)
    assert request.requester.email == "avery.q@example.com"  # symfhir.contacts normal form
    assert request.requester.phone == "+13375550101"
    task = server.read("Task", submitted.request.task_id)
    assert task["status"] == "requested"
    assert trail.events == [
        ("create", True, "privacy request received", (f"Task/{submitted.request.task_id}",))
    ]


def test_submit_again_with_the_same_reference_writes_nothing(server, trail, now) -> None:
    first = _submit(server, trail, now)
    again = submit_request(
        server, OFFICER, NewRequest("access", AVERY, reference="R-1"), now=now, audit=trail
    )
    assert not again.created
    assert again.request.task_id == first
    assert len(server.of_type("Task")) == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kind": "everything"}, "kind"),
        ({"requester": Requester("  ")}, "name"),
        ({"requester": Requester("Sam", email="not-an-email")}, "email"),
        ({"requester": Requester("Sam", phone="12")}, "phone"),
        ({"requester": Requester("Sam", birth_date=date(2030, 1, 1))}, "birth_date"),
        ({"details": "card 4111 1111 1111 1111"}, "details"),
        ({"details": "x" * 4001}, "details"),
        ({"inputs": {"requester.name": "x"}}, "inputs"),
        ({"requester": Requester("Sam\x00Doe")}, "name"),
    ],
)
def test_bad_fields_are_refused_with_the_field_named(server, trail, now, changes, field) -> None:
    with pytest.raises(RecordError) as caught:
        _submit(server, trail, now, **changes)
    assert caught.value.field == field
    assert "4111" not in str(caught.value)
    assert server.of_type("Task") == []


def test_the_desk_submits_verified_in_person_for_the_launched_client(server, trail, now) -> None:
    seen = Verification("in-person", "Practitioner/officer-1", now - timedelta(minutes=2))
    submitted = submit_request(
        server,
        OFFICER,
        NewRequest("deletion", AVERY, patient_id="avery", verifications=(seen,)),
        now=now,
        audit=trail,
    )
    request = submitted.request.request
    assert request.business_status == IDENTITY_VERIFIED
    assert request.patient_id == "avery"
    assert request.verifications == (seen,)


def test_in_person_must_name_who_verified(server, trail, now) -> None:
    with pytest.raises(PrivacyRequestError, match="names who verified"):
        _submit(server, trail, now, verifications=(Verification("in-person", None, now),))


def test_every_contact_must_be_verified(server, trail, now) -> None:
    task_id = _submit(server, trail, now)
    _verify(server, trail, now, task_id, "email-code")
    view = get_request(server, OFFICER, task_id, now=now, audit=trail)
    assert view.request.business_status == RECEIVED
    assert server.read("Task", task_id)["status"] == "received"  # partly verified
    _verify(server, trail, now, task_id, "sms-code")
    view = get_request(server, OFFICER, task_id, now=now, audit=trail)
    assert view.request.business_status == IDENTITY_VERIFIED
    assert [v.method for v in view.request.verifications] == ["email-code", "sms-code"]


def test_a_code_for_a_contact_not_given_is_refused(server, trail, now) -> None:
    task_id = _submit(server, trail, now, requester=Requester("Sam Doe", email="sam@example.com"))
    with pytest.raises(PrivacyRequestError, match="no phone"):
        _verify(server, trail, now, task_id, "sms-code")


def test_a_future_verification_is_refused(server, trail, now) -> None:
    task_id = _submit(server, trail, now)
    later = Verification("email-code", None, now + timedelta(hours=1))
    with pytest.raises(PrivacyRequestError, match="past"):
        record_verification(server, OFFICER, task_id, later, now=now, audit=trail)


def test_automatic_match_on_verified_contact_and_birth_date(server, trail, now) -> None:
    task_id = _submit(server, trail, now)
    with pytest.raises(PrivacyRequestError, match="verify"):
        match_patient(server, OFFICER, task_id, now=now, audit=trail)
    _verify(server, trail, now, task_id, "email-code", "sms-code")
    result = match_patient(server, OFFICER, task_id, now=now, audit=trail)
    assert result.matched == "avery"
    task = server.read("Task", task_id)
    assert task["for"] == {"reference": "Patient/avery"}
    assert task["note"][-1]["authorString"] == AUTOMATIC
    assert "email and phone and birth date" in task["note"][-1]["text"]
    assert trail.events[-1][3] == (f"Task/{task_id}", "Patient/avery")


def test_a_different_birth_date_is_not_matched_automatically(server, trail, now) -> None:
    other = Requester("Avery Quillfeather", date(1990, 1, 1), "avery.q@example.com")
    task_id = _submit(server, trail, now, requester=other)
    _verify(server, trail, now, task_id, "email-code")
    result = match_patient(server, OFFICER, task_id, now=now, audit=trail)
    assert result.matched is None
    assert [(c.patient_id, c.matches) for c in result.candidates] == [("avery", ("email",))]
    assert "for" not in server.read("Task", task_id)


def test_two_clients_sharing_an_address_need_a_person(server, trail, now) -> None:
    twin = server.read("Patient", "avery") | {"id": "twin", "name": [{"family": "Twin"}]}
    server.resources[("Patient", "twin")] = twin
    task_id = _submit(server, trail, now, requester=Requester(**{**AVERY.__dict__, "phone": None}))
    _verify(server, trail, now, task_id, "email-code")
    result = match_patient(server, OFFICER, task_id, now=now, audit=trail)
    assert result.matched is None
    assert {c.patient_id for c in result.candidates} == {"avery", "twin"}
    chosen = assign_patient(server, OFFICER, task_id, "twin", now=now, audit=trail)
    assert chosen.request.patient_id == "twin"
    note = server.read("Task", task_id)["note"][-1]
    assert note["authorReference"] == {"reference": "Practitioner/officer-1"}
    assert note["text"] == "Matched to Patient/twin by Practitioner/officer-1"
    with pytest.raises(PrivacyRequestError, match="already matched"):
        assign_patient(server, OFFICER, task_id, "avery", now=now, audit=trail)


def test_an_unverified_contact_does_not_match(server, trail, now) -> None:
    # Only the e-mail is verified (in a request giving only an e-mail): the phone is not used.
    requester = Requester("Avery Quillfeather", date(1985, 4, 12), "someone.else@example.com")
    task_id = _submit(server, trail, now, requester=requester)
    _verify(server, trail, now, task_id, "email-code")
    result = match_patient(server, OFFICER, task_id, now=now, audit=trail)
    assert result.matched is None
    assert [(c.patient_id, c.matches) for c in result.candidates] == [("avery", ("birth date",))]


def test_a_manual_match_names_who_chose(server, trail, now) -> None:
    task_id = _submit(server, trail, now)
    _verify(server, trail, now, task_id, "email-code", "sms-code")
    with pytest.raises(PrivacyRequestError, match="names who chose"):
        assign_patient(server, Actor(None), task_id, "avery", now=now, audit=trail)


def _ready(server: FakeServer, trail: Trail, now: datetime) -> str:
    task_id = _submit(server, trail, now)
    _verify(server, trail, now, task_id, "in-person")
    match_patient(server, OFFICER, task_id, now=now, audit=trail)
    return task_id


def test_nothing_starts_before_verification_and_match(server, trail, now) -> None:
    task_id = _submit(server, trail, now)
    with pytest.raises(PrivacyRequestError, match="not verified"):
        start(server, OFFICER, task_id, now=now, audit=trail)
    _verify(server, trail, now, task_id, "in-person")
    with pytest.raises(PrivacyRequestError, match="no client matched"):
        start(server, OFFICER, task_id, now=now, audit=trail)
    match_patient(server, OFFICER, task_id, now=now, audit=trail)
    started = start(server, OFFICER, task_id, now=now, audit=trail)
    assert started.request.business_status == IN_PROGRESS
    assert server.read("Task", task_id)["executionPeriod"]["start"] == now.isoformat()


def test_extend_once_with_a_reason(server, trail, now) -> None:
    task_id = _ready(server, trail, now)
    extended = extend(server, OFFICER, task_id, "Photo archive restore", now=now, audit=trail)
    assert extended.request.due == date(2027, 1, 24)
    assert extended.request.extended_reason == "Photo archive restore"
    with pytest.raises(PrivacyRequestError, match="already extended"):
        extend(server, OFFICER, task_id, "Again", now=now, audit=trail)


def test_complete_puts_outputs_and_status_on_the_task(server, trail, now) -> None:
    task_id = _ready(server, trail, now)
    outcome = Outcome(
        PARTIALLY_COMPLETED,
        (TaskOutput("deletion-report", text="3 deleted, 12 kept until 2033-11-25"),),
        "Deleted what the retention rules allow.",
    )
    closed = complete(server, OFFICER, task_id, outcome, now=now, audit=trail)
    assert closed.request.business_status == PARTIALLY_COMPLETED
    assert [o.label for o in closed.request.outputs] == ["deletion-report", "summary"]
    task = server.read("Task", task_id)
    assert task["status"] == "completed"
    assert task["executionPeriod"]["end"] == now.isoformat()
    with pytest.raises(PrivacyRequestError, match="closed"):
        deny(server, OFFICER, task_id, "too late", now=now, audit=trail)


def test_an_outcome_that_does_not_close_is_refused(server, trail, now) -> None:
    task_id = _ready(server, trail, now)
    with pytest.raises(PrivacyRequestError, match="closes a request"):
        complete(server, OFFICER, task_id, Outcome(IN_PROGRESS), now=now, audit=trail)


def test_deny_with_a_reason_even_before_verification(server, trail, now) -> None:
    task_id = _submit(server, trail, now)
    with pytest.raises(PrivacyRequestError, match="needs a reason"):
        deny(server, OFFICER, task_id, "  ", now=now, audit=trail)
    denied = deny(server, OFFICER, task_id, "Identity could not be verified", now=now, audit=trail)
    assert denied.request.business_status == DENIED
    assert denied.request.outputs[0].label == "denial-reason"
    assert server.read("Task", task_id)["status"] == "rejected"


def test_two_officers_never_overwrite_each_other(server, trail, now) -> None:
    task_id = _ready(server, trail, now)
    seen = get_request(server, OFFICER, task_id, now=now, audit=trail)
    extend(server, OFFICER, task_id, "Archive", now=now, audit=trail, version=seen.version)
    with pytest.raises(FhirConflictError, match="version conflict"):
        deny(server, OFFICER, task_id, "Stale view", now=now, audit=trail, version=seen.version)
    assert get_request(server, OFFICER, task_id, now=now, audit=trail).request.is_open


def test_a_read_only_session_writes_nothing(server, trail, now) -> None:
    task_id = _submit(server, trail, now)
    read_only = Actor("Practitioner/1", writable=False)
    with pytest.raises(NotAllowedError):
        deny(server, read_only, task_id, "no", now=now, audit=trail)
    assert get_request(server, read_only, task_id, now=now, audit=trail).request.is_open


def test_list_sorted_by_due_date_with_filters_and_pages(server, trail, now) -> None:
    days = {"late": -40, "soon": -25, "fresh": 0, "older": -10}
    for reference, delta in days.items():
        _submit(server, trail, now + timedelta(days=delta), reference=reference)
    closed = _submit(server, trail, now - timedelta(days=50), reference="closed")
    deny(server, OFFICER, closed, "withdrawn by the requester", now=now, audit=trail)
    server.add({"resourceType": "Task", "status": "requested", "intent": "order"})
    # A privacy-request Task without a due date is not one symfhir can read: left out.
    unreadable = server.read("Task", closed) | {"status": "requested"}
    unreadable.pop("restriction")
    unreadable.pop("id")
    server.add(unreadable)

    every = list_requests(server, OFFICER, now=now, audit=trail)
    assert [t.reference for t in every.items] == ["late", "soon", "older", "fresh"]
    assert every.total == 4
    overdue = list_requests(server, OFFICER, now=now, audit=trail, overdue=True)
    assert [t.reference for t in overdue.items] == ["late"]
    assert overdue.items[0].days_left == -10
    due_soon = list_requests(server, OFFICER, now=now, audit=trail, due_soon=True)
    assert [t.reference for t in due_soon.items] == ["soon"]
    both = list_requests(server, OFFICER, now=now, audit=trail, due_soon=True, overdue=True)
    assert [t.reference for t in both.items] == ["late", "soon"]
    second = list_requests(server, OFFICER, now=now, audit=trail, page=2, page_size=3)
    assert [t.reference for t in second.items] == ["fresh"]
    assert (second.total, second.pages) == (4, 2)
    with pytest.raises(ValueError, match="page"):
        list_requests(server, OFFICER, now=now, audit=trail, page=0)
    assert trail.events[-2][:3] == ("search", True, "privacy requests listed")


def test_list_for_one_client(server, trail, now) -> None:
    _ready(server, trail, now)
    _submit(server, trail, now, reference="R-2")
    mine = list_requests(server, OFFICER, now=now, audit=trail, patient_id="avery")
    assert [t.reference for t in mine.items] == ["R-1"]


def test_every_step_is_audited(server, trail, now) -> None:
    task_id = _ready(server, trail, now)
    complete(server, OFFICER, task_id, Outcome(COMPLETED, (), "Sent."), now=now, audit=trail)
    descriptions = [e[2] for e in trail.events]
    assert descriptions == [
        "privacy request received",
        "identity verification recorded: in-person",
        "privacy request: client match searched",
        "privacy request matched to its client automatically",
        "privacy request closed: completed",
    ]
    assert trail.events[-1][3] == (f"Task/{task_id}", "Patient/avery")
