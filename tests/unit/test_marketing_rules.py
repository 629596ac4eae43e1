"""The marketing rules data (deny by default, checked against the consent kinds and photo
uses), contact normalizing, and the opt-out / CCPA no-sale handler's refusals."""

from __future__ import annotations

import copy
from datetime import date, datetime
from typing import Any

import pytest

from symfhir.contacts import contact_of, has_contact, normal_or_none
from symfhir.errors import ConfigError
from symfhir.marketing import optout
from symfhir.marketing.rules import load_marketing_rules, parse_marketing_rules
from symfhir.privacy.model import DENIED, PARTIALLY_COMPLETED, PrivacyRequest, Requester
from symfhir.terminology import MAPPINGS_DIR, read_mapping_file
from symfhir.workspace.actor import Actor
from tests.unit.fake_fhir import FakeFhir, Trail

pytestmark = pytest.mark.unit


@pytest.fixture
def data() -> dict[str, Any]:
    return read_mapping_file(MAPPINGS_DIR / "marketing.yaml", "marketing rules")


def test_the_bundled_rules_load() -> None:
    rules = load_marketing_rules()
    assert {k: c.consent_kind for k, c in rules.channels.items()} == {
        "email": "marketing_email",
        "sms": "marketing_sms",
        "phone": "marketing_phone",
    }
    assert rules.photo_uses["case-study"].consent_kind == "research"
    assert {"stop", "stopall", "opt out", "cancel", "unsubscribe"} <= rules.sms.keywords
    with pytest.raises(ConfigError):
        rules.channel("fax")
    with pytest.raises(ConfigError):
        rules.photo_use("billboard")


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["channels"]["email"].update(consent_kind="marketing_fax"),
        lambda d: d["channels"]["sms"].update(telecom="pager"),
        lambda d: d["photo_uses"]["website"].update(use="billboard"),
        lambda d: d["unsubscribe"].update(max_age_days=7),
        lambda d: d["sms"].update(phrases=["(unclosed"]),
        lambda d: d["sms"].update(keywords="stop"),
        lambda d: d.pop("channels"),
    ],
    ids=[
        "unknown-kind",
        "unknown-telecom",
        "unknown-use",
        "short-links",
        "bad-regex",
        "not-list",
        "missing",
    ],
)
def test_bad_rules_are_refused(data: dict[str, Any], change) -> None:
    broken = copy.deepcopy(data)
    change(broken)
    with pytest.raises(ConfigError):
        parse_marketing_rules(broken)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("(337) 555-0142", "+13375550142"),
        ("337.555.0142", "+13375550142"),
        ("+1 337 555 0142", "+13375550142"),
        ("555-0142", None),
        ("not a phone", None),
        ("", None),
    ],
)
def test_phones_normalize_to_e164(given: str, expected: str | None) -> None:
    assert normal_or_none("phone", given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (" Avery.Q@Example.COM ", "avery.q@example.com"),
        ("avery", None),
        ("a@b", None),
        ("a,b@example.com", None),
        ("a@example.com|x", None),
        ("a@b@example.com", None),
    ],
)
def test_emails_normalize_or_are_refused(given: str, expected: str | None) -> None:
    assert normal_or_none("email", given) == expected


def test_the_contact_is_one_in_use_a_mobile_first() -> None:
    patient = {
        "telecom": [
            {"system": "phone", "value": "(337) 555-0100", "use": "home"},
            {"system": "phone", "value": "(337) 555-0101", "use": "old"},
            {"system": "phone", "value": "(337) 555-0102", "period": {"end": "2025-01-01"}},
            {"system": "phone", "value": "(337) 555-0103", "use": "mobile"},
            {"system": "email", "value": "nope"},
        ]
    }
    assert contact_of(patient, "phone") == "+13375550103"
    assert contact_of(patient, "email") is None
    assert has_contact(patient, "phone", "+13375550100")
    assert not has_contact(patient, "phone", "+13375550199")


def request(kind: str, patient_id: str | None = "p1", **inputs: str) -> PrivacyRequest:
    return PrivacyRequest(
        task_id="t1",
        kind=kind,
        requester=Requester("Avery Quillfeather"),
        received=datetime(2026, 11, 20, 9, 0),
        due=date(2026, 12, 20),
        patient_id=patient_id,
        inputs=inputs,
    )


def test_the_handler_refuses_other_kinds_and_unmatched_requests(now: datetime) -> None:
    fhir, trail = FakeFhir(), Trail()
    with pytest.raises(ValueError):
        optout.handle(fhir, Actor(None), request("deletion"), now=now, audit=trail)
    outcome = optout.handle(fhir, Actor(None), request("opt-out", None), now=now, audit=trail)
    assert outcome.business_status == DENIED
    assert outcome.outputs[0].label == "denial-reason"
    assert fhir.transactions == [] and trail.events == []


def test_unknown_channels_make_the_answer_partial(now: datetime) -> None:
    fhir = FakeFhir([{"resourceType": "Patient", "id": "p1"}])
    outcome = optout.handle(
        fhir, Actor(None), request("opt-out", channels="sms, fax"), now=now, audit=Trail()
    )
    assert outcome.business_status == PARTIALLY_COMPLETED
    assert [o.text for o in outcome.outputs] == [
        "marketing by sms (marketing_sms): nothing to withdraw (not given)",
        "unknown channels left alone: fax",
    ]


def test_no_sale_changes_nothing_unless_asked(now: datetime) -> None:
    fhir, trail = FakeFhir([{"resourceType": "Patient", "id": "p1"}]), Trail()
    outcome = optout.handle(
        fhir, Actor(None), request("ccpa-opt-out-of-sale"), now=now, audit=trail
    )
    (answer,) = outcome.outputs
    assert answer.text == load_marketing_rules().ccpa_no_sale
    assert fhir.batches == [] and fhir.transactions == []
    assert trail.events == [
        (
            "update",
            True,
            "CCPA opt-out of sale or sharing recorded (nothing is sold or shared)",
            ("Patient/p1",),
        )
    ]
