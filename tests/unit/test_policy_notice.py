"""symfhir.privacy.policy_notice: who is told of a significant policy change, where, and that a
client is e-mailed once per version, against a small in-memory server."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from symfhir.errors import DeliveryError, NotAllowedError
from symfhir.fhir.writes import Written
from symfhir.policy_versions import PolicyHistory, PolicyVersion
from symfhir.privacy.policy_notice import clients_behind, notice_text, policy_notice
from symfhir.workspace.actor import Actor

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))
KIND = "http://symfhir.org/fhir/CodeSystem/consent-kind"
HISTORY = PolicyHistory(
    (
        PolicyVersion("2026-01-01", date(2026, 1, 1), False, ""),
        PolicyVersion("2026-11-01", date(2026, 11, 1), True, "Photos may appear on social media."),
    )
)


def consent(pid: str, kind: str, version: str, status: str = "active", **extra: Any) -> dict:
    return {
        "resourceType": "Consent",
        "id": f"{pid}-{kind}-{version}",
        "status": status,
        "patient": {"reference": f"Patient/{pid}"},
        "dateTime": f"{version}T10:00:00Z",
        "category": [{"coding": [{"system": KIND, "code": kind}]}],
        "policy": [{"uri": f"http://symfhir.org/fhir/policy/doc/{version}"}],
        "provision": {"type": "permit"},
        **extra,
    }


def patient(pid: str, email: str | None = None, **extra: Any) -> dict:
    telecom = [{"system": "email", "value": email}] if email else []
    return {"resourceType": "Patient", "id": pid, "telecom": telecom, **extra}


class Server:
    """Just enough of FhirClient: searches by type (params ignored but recorded), creates."""

    def __init__(self, resources: list[dict]) -> None:
        self.resources = resources
        self.searches: list[tuple[str, dict]] = []
        self.created: list[tuple[dict, str | None]] = []

    def search(self, resource_type: str, params: dict) -> list[dict]:
        self.searches.append((resource_type, params))
        return [r for r in self.resources if r["resourceType"] == resource_type]

    def create(self, resource: dict, if_none_exist: str | None = None) -> Written:
        self.created.append((resource, if_none_exist))
        self.resources.append({**resource, "id": f"c{len(self.created)}"})
        return Written("Communication", f"c{len(self.created)}", "1", "created", None)


class Outbox:
    def __init__(self, fail_for: str = "") -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.fail_for = fail_for

    def __call__(self, to: str, subject: str, text: str) -> str:
        if to == self.fail_for:
            raise DeliveryError("email", "mail.example.com:587", "recipient refused (550)")
        self.sent.append((to, subject, text))
        return "<id@example.com>"


def world() -> Server:
    return Server(
        [
            # Told by e-mail: consents under the old version, marketing e-mail withdrawn.
            consent("a", "treatment", "2026-01-01"),
            consent("a", "marketing_email", "2026-01-01", status="inactive"),
            patient("a", "Ann.Q@Example.com"),
            # Re-consented under the new version: nobody to tell.
            consent("b", "treatment", "2026-01-01"),
            consent("b", "treatment", "2026-11-01"),
            patient("b", "b@example.com"),
            # No e-mail in use: told in person.
            consent("c", "photos_website", "2026-01-01"),
            patient(
                "c", None, telecom=[{"system": "email", "value": "c@example.com", "use": "old"}]
            ),
            # Deceased: never e-mailed.
            consent("d", "treatment", "2026-01-01"),
            patient("d", "d@example.com", deceasedBoolean=True),
            # Declined only: nothing relied on.
            consent("e", "research", "2026-01-01", status="rejected"),
            patient("e", "e@example.com"),
        ]
    )


def trails() -> tuple[dict[str, list], Any]:
    calls: dict[str, list] = {}

    def audit_for(pid: str):
        return lambda subtype, **kw: calls.setdefault(pid, []).append((subtype, kw))

    return calls, audit_for


def test_clients_behind_follow_the_summary_rule():
    assert clients_behind(
        [r for r in world().resources if r["resourceType"] == "Consent"], HISTORY
    ) == {
        "a": ("treatment",),
        "c": ("photos_website",),
        "d": ("treatment",),
    }


def test_dry_run_lists_and_sends_nothing():
    server = world()
    calls, audit_for = trails()
    notice = policy_notice(server, Actor(None), now=NOW, audit=audit_for, history=HISTORY)
    assert notice.dry_run and notice.change == HISTORY.versions[1]
    got = {(t.patient_id, t.email, t.status) for t in notice.targets}
    assert got == {
        ("a", "ann.q@example.com", "to-send"),
        ("c", None, "in-person"),
        ("d", None, "in-person"),
    }
    assert server.created == []
    assert not any(t == "Communication" for t, _ in server.searches)
    assert set(calls) == {"a", "c", "d"}  # each client listed: one audited read of their record
    consent_search = next(p for t, p in server.searches if t == "Consent")
    assert (
        "provision" in consent_search["_elements"]
        and "sourceAttachment" not in consent_search["_elements"]
    )


def test_sending_emails_once_and_records_it():
    server = world()
    outbox = Outbox()
    _, audit_for = trails()
    notice = policy_notice(
        server, Actor(None), now=NOW, audit=audit_for, send=outbox, dry_run=False, history=HISTORY
    )
    assert [(t.patient_id, t.status) for t in notice.targets if t.email] == [("a", "sent")]
    ((to, subject, text),) = outbox.sent
    assert to == "ann.q@example.com"  # a marketing opt-out does not stop a service notice
    assert subject == "Symetrie Studio Spa: changes to our privacy policy"
    assert "Photos may appear on social media." in text and "not marketing" in text
    ((record, condition),) = server.created
    assert record["resourceType"] == "Communication"
    assert record["subject"] == {"reference": "Patient/a"}
    assert record["identifier"][0]["system"].endswith("/policy-notice/2026-11-01")
    assert condition == f"identifier={record['identifier'][0]['system']}|a"

    # The recorded Communication is found again: a second run e-mails nobody.
    again = policy_notice(
        server, Actor(None), now=NOW, audit=audit_for, send=outbox, dry_run=False, history=HISTORY
    )
    assert [(t.patient_id, t.status) for t in again.targets if t.email] == [("a", "already-sent")]
    assert len(outbox.sent) == 1


def test_a_failed_email_is_reported_and_not_recorded():
    server = world()
    _, audit_for = trails()
    notice = policy_notice(
        server,
        Actor(None),
        now=NOW,
        audit=audit_for,
        send=Outbox(fail_for="ann.q@example.com"),
        dry_run=False,
        history=HISTORY,
    )
    assert notice.count("failed") == 1
    assert server.created == []


def test_nobody_to_tell_without_a_significant_change():
    server = world()
    minor = PolicyHistory((PolicyVersion("2026-01-01", date(2026, 1, 1), False, ""),))
    notice = policy_notice(server, Actor(None), now=NOW, audit=trails()[1], history=minor)
    assert notice.change is None and notice.targets == ()
    assert server.searches == []


def test_refusals():
    with pytest.raises(ValueError, match="sender"):
        policy_notice(
            world(), Actor(None), now=NOW, audit=trails()[1], dry_run=False, history=HISTORY
        )
    no_comm = Actor("Practitioner/x", permits=lambda t, i: t != "Communication")
    with pytest.raises(NotAllowedError):
        policy_notice(
            world(),
            no_comm,
            now=NOW,
            audit=trails()[1],
            send=Outbox(),
            dry_run=False,
            history=HISTORY,
        )
    # Listing needs no Communication.
    assert policy_notice(world(), no_comm, now=NOW, audit=trails()[1], history=HISTORY).targets


def test_notice_text_carries_no_record():
    _, text = notice_text(HISTORY.versions[1], "Spa")
    assert "2026-11-01" in text and "Patient" not in text and "@" not in text


def related(rid: str, pid: str, code: str, email: str) -> dict:
    return {
        "resourceType": "RelatedPerson",
        "id": rid,
        "patient": {"reference": f"Patient/{pid}"},
        "relationship": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": code}
                ]
            }
        ],
        "name": [{"text": f"Person {rid}"}],
        "telecom": [{"system": "email", "value": email}],
    }


def test_a_minors_notice_goes_to_a_parent_or_guardian_on_file():
    server = Server(
        [
            # A minor with their own e-mail, a friend (not a guardian) and a parent on file.
            consent("m", "treatment", "2026-01-01"),
            patient("m", "teen@example.com", birthDate="2012-05-01"),
            related("friend", "m", "FRND", "friend@example.com"),
            related("mom", "m", "PRN", "parent@example.com"),
            # A minor with no guardian e-mail: told in person, never at their own address.
            consent("n", "treatment", "2026-01-01"),
            patient("n", "kid@example.com", birthDate="2011-02-03"),
        ]
    )
    notice = policy_notice(server, Actor(None), now=NOW, audit=trails()[1], history=HISTORY)
    got = {(t.patient_id, t.email, t.status) for t in notice.targets}
    assert got == {("m", "parent@example.com", "to-send"), ("n", None, "in-person")}
    # Without leave to read RelatedPersons, no guardian is found: nobody is e-mailed.
    no_related = Actor(None, permits=lambda t, i: t != "RelatedPerson")
    notice = policy_notice(server, no_related, now=NOW, audit=trails()[1], history=HISTORY)
    assert {t.status for t in notice.targets} == {"in-person"}
