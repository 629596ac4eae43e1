"""Extending a request and telling the requester (symfhir.privacy.extension), and the desk's
hand-over of an access package refused for anything but a package symfhir wrote for this
client's completed access request (symfhir.privacy.handover), on the in-memory server."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from symfhir.errors import DeliveryError, ExportError, FhirConflictError, PrivacyRequestError
from symfhir.privacy.extension import extend_and_notify
from symfhir.privacy.handover import hand_over_package
from symfhir.privacy.model import COMPLETED, Outcome, Requester, TaskOutput, Verification
from symfhir.privacy.requests import NewRequest, complete, get_request, submit_request
from symfhir.workspace.actor import Actor
from tests.unit.fake_fhir import Trail
from tests.unit.privacy_fake import FakeServer

DESK = Actor("Practitioner/desk-1")
NAME = "access-f1-20261125T093000-0123456789abcdef.zip"


def _request(server: FakeServer, now: datetime, email: str | None = "avery.q@example.com") -> str:
    new = NewRequest(
        "access",
        Requester("Avery Quillfeather", date(1985, 4, 12), email),
        patient_id="avery",
        verifications=(Verification("in-person", DESK.fhir_user, now),),
    )
    return submit_request(server, DESK, new, now=now, audit=Trail()).request.task_id


def test_the_requester_is_emailed_the_reason_and_the_new_date(now) -> None:
    server, trail, sent = FakeServer(), Trail(), []
    task_id = _request(server, now)
    done = extend_and_notify(
        server, DESK, task_id, "Records in storage", send=lambda *m: sent.append(m),
        now=now, audit=trail,
    )  # fmt: skip
    assert done.emailed and done.request.request.extended_reason == "Records in storage"
    [(to, subject, text)] = sent
    assert to == "avery.q@example.com"
    assert str(now.date() + timedelta(days=60)) in subject
    assert "Reason: Records in storage" in text
    assert trail.events[-1][2] == "privacy request: extension notice e-mailed to the requester"


@pytest.mark.parametrize("email", [None, "avery.q@example.com"])
def test_the_extension_stands_when_no_mail_can_go(now, email) -> None:
    server = FakeServer()
    task_id = _request(server, now, email)

    def refuse(*_: str) -> None:
        raise DeliveryError("email", "smtp.example.com:587", "connection refused")

    done = extend_and_notify(
        server, DESK, task_id, "Records in storage", send=refuse, now=now, audit=Trail()
    )
    assert not done.emailed and done.not_sent
    assert get_request(server, DESK, task_id, now=now, audit=Trail()).request.extended_reason


def test_a_stale_version_extends_nothing(now) -> None:
    server = FakeServer()
    task_id = _request(server, now)
    with pytest.raises(FhirConflictError):
        extend_and_notify(
            server, DESK, task_id, "Late", send=print, now=now, audit=Trail(), version="7"
        )


def _completed(server: FakeServer, now: datetime, url: str = NAME) -> str:
    task_id = _request(server, now)
    outcome = Outcome(COMPLETED, (TaskOutput("access-package", attachment={"url": url}),))
    complete(server, DESK, task_id, outcome, now=now, audit=Trail())
    return task_id


def test_the_desk_hands_over_the_named_package_after_recording_it(now, tmp_path: Path) -> None:
    server, trail = FakeServer(), Trail()
    task_id = _completed(server, now)
    (tmp_path / NAME).write_bytes(b"PK")
    package = hand_over_package(
        server, DESK, task_id, patient_id="avery", now=now, audit=trail, directory=tmp_path
    )
    assert package.path == (tmp_path / NAME).resolve() and package.size == 2
    [to] = [d for d in trail.disclosures if d is not None]
    assert to.recipient == "Avery Quillfeather" and to.recipient_reference == "Patient/avery"


@pytest.mark.parametrize(
    ("url", "patient", "error"),
    [
        (NAME, "someone-else", PrivacyRequestError),
        ("../" + NAME, "avery", ExportError),
        ("/etc/passwd", "avery", ExportError),
        (NAME.replace(".zip", ".exe"), "avery", ExportError),
        ("access-f1-20261125T093000-fedcba9876543210.zip", "avery", ExportError),  # not on file
    ],
)
def test_anything_else_is_refused_and_nothing_recorded(now, tmp_path, url, patient, error) -> None:
    server, trail = FakeServer(), Trail()
    task_id = _completed(server, now, url)
    (tmp_path / NAME).write_bytes(b"PK")
    with pytest.raises(error):
        hand_over_package(
            server, DESK, task_id, patient_id=patient, now=now, audit=trail, directory=tmp_path
        )
    assert not [d for d in trail.disclosures if d is not None]


def test_an_open_request_has_nothing_to_hand_over(now, tmp_path) -> None:
    server = FakeServer()
    task_id = _request(server, now)
    with pytest.raises(PrivacyRequestError, match="no access package"):
        hand_over_package(
            server, DESK, task_id, patient_id="avery", now=now, audit=Trail(), directory=tmp_path
        )
