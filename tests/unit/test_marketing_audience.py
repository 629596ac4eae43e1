"""Marketing lists, deny by default: only a given, in-force consent of the channel's kind lists a
client (declined, withdrawn, expired, not yet begun, draft, other kinds and unknowns never do),
only the contact leaves, each listed client is audited; photos only with a consent given on or
before the day they were taken."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from symfhir.errors import ConfigError
from symfhir.marketing.audience import marketing_audience, marketing_photos
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.status import KIND_SYSTEM
from tests.unit.fake_fhir import Trail

pytestmark = pytest.mark.unit


@dataclass
class ListFhir:
    """Searches by Consent category, Patient _id and Media subject, as the lists ask."""

    resources: list[dict[str, Any]] = field(default_factory=list)
    searches: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)

    def search(self, resource_type: str, params: list[tuple[str, str]]) -> Iterator[dict]:
        self.searches.append((resource_type, params))
        query = dict(params)
        for r in self.resources:
            if r["resourceType"] != resource_type:
                continue
            if "category" in query:
                system, code = query["category"].split("|")
                codings = [c for cat in r.get("category", []) for c in cat.get("coding", [])]
                if {"system": system, "code": code} not in codings:
                    continue
            if "_id" in query and r.get("id") not in query["_id"].split(","):
                continue
            if "subject" in query and (r.get("subject") or {}).get("reference") not in query[
                "subject"
            ].split(","):
                continue
            yield r


def consent(
    pid: str | None,
    kind: str,
    *,
    status: str = "active",
    when: str = "2026-03-02",
    provision: dict[str, Any] | None = None,
    cid: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": cid or f"c-{pid}-{kind}-{when}-{status}",
        "status": status,
        "dateTime": when,
        "category": [{"coding": [{"system": KIND_SYSTEM, "code": kind}]}],
        "provision": provision or {"type": "permit"},
    }
    if pid is not None:
        resource["patient"] = {"reference": f"Patient/{pid}"}
    return resource


def patient(pid: str, email: str | None = None, phone: str | None = None, **extra: Any) -> dict:
    telecom = []
    if email:
        telecom.append({"system": "email", "value": email})
    if phone:
        telecom.append({"system": "phone", "value": phone, "use": "mobile"})
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"given": ["Avery"], "family": f"Test{pid}"}],
        "birthDate": "1985-04-12",
        "telecom": telecom,
        **extra,
    }


EMAIL = "marketing_email"


@pytest.fixture
def server() -> ListFhir:
    people = [
        patient(f"p{i}", email=f"Client.P{i}@Example.com", phone="(337) 555-0101")
        for i in range(1, 13)
    ]
    people[7] = patient("p8")  # no contact at all
    people[8] = patient("p9", email="p9@example.com", active=False)
    people[9] = patient("p10", email="p10@example.com", deceasedBoolean=True)
    consents = [
        consent("p1", EMAIL),  # given: listed
        consent("p2", EMAIL, status="rejected", provision={"type": "deny"}),
        consent("p3", EMAIL),
        consent("p3", EMAIL, status="inactive", when="2026-06-01"),  # withdrawn since
        consent(  # expired
            "p4", EMAIL, provision={"type": "permit", "period": {"end": "2026-10-31"}}
        ),
        consent(  # not begun
            "p5", EMAIL, provision={"type": "permit", "period": {"start": "2027-01-01"}}
        ),
        consent("p6", EMAIL, status="rejected", provision={"type": "deny"}),
        consent("p6", EMAIL, when="2026-07-01"),  # declined, then given: listed
        consent("p7", "marketing_sms"),  # another channel only
        consent("p8", EMAIL),  # given, no e-mail on file
        consent("p9", EMAIL),  # given, record inactive
        consent("p10", EMAIL),  # given, deceased
        consent("p11", EMAIL, status="draft"),
        consent("p12", EMAIL, status="entered-in-error"),
        consent(None, EMAIL, cid="orphan"),  # names no patient
        consent("ghost", EMAIL),  # names a Patient the server lacks
        consent("p13", EMAIL, status="active", provision={"type": "deny"}),
    ]
    return ListFhir(people + consents)


def test_audience_lists_only_given_consents_in_force(server: ListFhir, now: datetime) -> None:
    trail = Trail()
    audience = marketing_audience(server, Actor(None), "email", now=now, audit=trail)
    assert [(c.patient_id, c.contact) for c in audience.contacts] == [
        ("p1", "client.p1@example.com"),
        ("p6", "client.p6@example.com"),
    ]
    assert audience.contacts[0].name == "Avery Testp1"
    # p8 (no e-mail), p9 (inactive), p10 (deceased), ghost (no such Patient).
    assert audience.without_contact == 4
    assert [e[3] for e in trail.events] == [("Patient/p1",), ("Patient/p6",)]
    assert all(e[0] == "search" and e[1] for e in trail.events)


def test_sms_lists_the_phone_in_e164(server: ListFhir, now: datetime) -> None:
    audience = marketing_audience(server, Actor(None), "sms", now=now, audit=Trail())
    assert [(c.patient_id, c.contact) for c in audience.contacts] == [("p7", "+13375550101")]


def test_nobody_consented_lists_nobody(now: datetime) -> None:
    server = ListFhir([patient("p1", email="a@example.com")])
    audience = marketing_audience(server, Actor(None), "phone", now=now, audit=Trail())
    assert audience.contacts == ()


def test_unknown_channels_and_uses_are_refused(server: ListFhir, now: datetime) -> None:
    with pytest.raises(ConfigError):
        marketing_audience(server, Actor(None), "fax", now=now, audit=Trail())
    with pytest.raises(ConfigError):
        marketing_photos(server, Actor(None), "billboard", now=now, audit=Trail())
    assert server.searches == []


def media(mid: str, pid: str, taken: str, status: str = "completed") -> dict[str, Any]:
    return {
        "resourceType": "Media",
        "id": mid,
        "status": status,
        "subject": {"reference": f"Patient/{pid}"},
        "createdDateTime": taken,
        "content": {"contentType": "image/jpeg", "url": f"Binary/b-{mid}"},
    }


def test_photos_need_a_use_consent_given_before_they_were_taken(now: datetime) -> None:
    server = ListFhir(
        [
            consent("p1", "photos_website", when="2026-03-01"),
            media("m1", "p1", "2026-03-05T10:00:00-06:00"),  # after the consent: listed
            media("m2", "p1", "2026-02-01T10:00:00-06:00"),  # before it: not
            media("m3", "p1", "2026-04-01T10:00:00-06:00", status="entered-in-error"),
            consent("p2", "photos_website", when="2026-03-01"),
            consent("p2", "photos_website", status="inactive", when="2026-05-01"),
            media("m4", "p2", "2026-03-05T10:00:00-06:00"),  # withdrawn: not
            consent("p3", "photos_social", when="2026-03-01"),
            media("m5", "p3", "2026-03-05T10:00:00-06:00"),  # social only
            consent("p4", "research", when="2026-03-01"),
            media("m6", "p4", "2026-03-06T10:00:00-06:00"),  # case studies only
            media("m7", "p5", "2026-03-06T10:00:00-06:00"),  # no consent at all
        ]
    )
    trail = Trail()
    website = marketing_photos(server, Actor(None), "website", now=now, audit=trail)
    assert [(p.media_id, p.patient_id, p.taken) for p in website.photos] == [
        ("m1", "p1", "2026-03-05")
    ]
    assert website.photos[0].url == "Binary/b-m1"
    assert [e[3] for e in trail.events] == [("Patient/p1",)]
    social = marketing_photos(server, Actor(None), "social", now=now, audit=Trail())
    assert [p.media_id for p in social.photos] == ["m5"]
    cases = marketing_photos(server, Actor(None), "case-study", now=now, audit=Trail())
    assert [p.media_id for p in cases.photos] == ["m6"]
