"""symfhir.privacy.restriction: what a restriction request may change, and when it is refused
before anything is read or written."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from symfhir.errors import PrivacyRequestError
from symfhir.privacy import restriction
from symfhir.privacy.model import (
    DENIED,
    IDENTITY_VERIFIED,
    RECEIVED,
    PrivacyRequest,
    Requester,
    Verification,
)
from symfhir.workspace.actor import Actor

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))
ACTOR = Actor("Practitioner/officer1")


class NoServer:
    """A client that fails the test if the handler talks to the server."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the server was used: {name}")


def request(**overrides: object) -> PrivacyRequest:
    fields: dict = {
        "task_id": "t1",
        "kind": "restriction",
        "requester": Requester("Avery Quillfeather"),
        "received": NOW,
        "due": date(2026, 12, 25),
        "business_status": IDENTITY_VERIFIED,
        "patient_id": "p1",
        "inputs": {"consents": "photos_website"},
        "verifications": (Verification("in-person", "Practitioner/officer1", NOW),),
    }
    fields.update(overrides)
    return PrivacyRequest(**fields)


def handle(req: PrivacyRequest):
    return restriction.handle(NoServer(), ACTOR, req, now=NOW, audit=lambda *a, **k: None)


@pytest.mark.parametrize(
    ("raw", "kinds"),
    [
        ("photos_website", ["photos_website"]),
        (
            " marketing_email , marketing_sms,, marketing_email ",
            ["marketing_email", "marketing_sms"],
        ),
    ],
)
def test_the_consents_input_is_a_comma_separated_list(raw, kinds):
    assert restriction.requested_kinds(request(inputs={"consents": raw})) == kinds


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"patient_id": None}, "not matched"),
        ({"business_status": RECEIVED}, "not verified"),
        ({"verifications": ()}, "not verified"),
        ({"business_status": "completed"}, "not verified"),
        ({"inputs": {}}, "names the consents"),
        ({"inputs": {"consents": " , "}}, "names the consents"),
    ],
)
def test_refused_before_the_server_is_used(overrides, message):
    with pytest.raises(PrivacyRequestError, match=message):
        handle(request(**overrides))


def test_denied_when_no_name_is_a_consent_kind():
    outcome = handle(request(inputs={"consents": "everything,<script>"}))
    assert outcome.business_status == DENIED
    report, reason = outcome.outputs
    assert report.text == "2 other names: not a consent kind"  # the requester's text not echoed
    assert reason.label == "denial-reason"
