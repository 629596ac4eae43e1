"""The portal's opt-out endpoints with Flask's test client over an in-memory FHIR server:
the unsubscribe page (confirm with a CSRF-protected button; RFC 8058 one-click without a
token), tampered and expired links refused without echoing them, the SMS webhook refusing
unsigned or tampered posts before reading anything, one confirmation text per opt-out."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from smart_app.portal import create_app
from symfhir.consent_kinds import load_consent_kinds
from symfhir.marketing.sms_optout import expected_signature
from symfhir.marketing.unsubscribe import make_token
from tests.unit.fake_fhir import FakeFhir

BASE = "https://portal.example.com"
SMS_TOKEN = "sms-auth-token-for-tests"
PHONE = "+13375550142"


class PortalFhir(FakeFhir):
    """FakeFhir with the plain ``search`` the marketing workflows call, closed per request."""

    closed: int = 0

    def close(self) -> None:
        self.closed += 1

    def search(self, resource_type: str, params: Any = None) -> Iterator[dict[str, Any]]:
        for bundle in self.search_bundles(resource_type, dict(params or {})):
            for entry in bundle["entry"]:
                yield entry["resource"]


def marketing_consent(pid: str, kind: str, status: str = "active") -> dict[str, Any]:
    template = load_consent_kinds().kinds[kind].template

    def concept(coding: Any) -> dict[str, Any]:
        return {"coding": coding if isinstance(coding, list) else [coding]}

    provision = template["provision"]
    return {
        "resourceType": "Consent",
        "id": f"consent-{pid}-{kind.replace('_', '-')}",
        "meta": {"versionId": "1"},
        "status": status,
        "scope": concept(template["scope"]),
        "category": [concept(c) for c in template["category"]],
        "patient": {"reference": f"Patient/{pid}"},
        "dateTime": "2026-03-02",
        "policyRule": concept(template["policy_rule"]),
        "provision": {
            "type": "permit",
            "action": [concept(a) for a in provision["action"]],
            "purpose": provision["purpose"],
        },
    }


@pytest.fixture
def fhir() -> PortalFhir:
    return PortalFhir(
        [
            {
                "resourceType": "Patient",
                "id": "p1",
                "birthDate": "1985-04-12",
                "telecom": [
                    {"system": "phone", "value": "(337) 555-0142", "use": "mobile"},
                    {"system": "email", "value": "avery.q@example.com"},
                ],
            },
            marketing_consent("p1", "marketing_sms"),
            marketing_consent("p1", "marketing_email"),
        ]
    )


@pytest.fixture
def key() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture
def app(fhir: PortalFhir, key: str) -> Flask:
    return create_app(
        {
            "SYMFHIR_PORTAL_BASE_URL": BASE,
            "SYMFHIR_MARKETING_KEY": key,
            "SYMFHIR_SMS_AUTH_TOKEN": SMS_TOKEN,
            "SYMFHIR_PORTAL_CLIENT": lambda: fhir,
            "SECRET_KEY": "test-secret",
        }
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def link(key: str, channel: str = "email", when: datetime | None = None) -> str:
    token = make_token(key.encode(), "p1", channel, now=when or datetime.now(UTC))
    return f"/unsubscribe/{token}"


def withdrawn(fhir: PortalFhir) -> list[str]:
    """The kinds of the Consents the transactions wrote as inactive."""
    return [
        c["category"][1]["coding"][0]["code"]
        for c in fhir.written("Consent")
        if c["status"] == "inactive"
    ]


def test_the_link_shows_a_confirmation_with_a_protected_button(
    client: FlaskClient, fhir: PortalFhir, key: str
) -> None:
    page = client.get(link(key))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="unsubscribe-form"' in html and 'name="csrf_token"' in html
    assert "marketing e-mails" in html
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'self'" in page.headers["Content-Security-Policy"]
    assert fhir.transactions == []  # showing the page changes nothing


def test_the_button_needs_its_csrf_token(client: FlaskClient, fhir: PortalFhir, key: str) -> None:
    url = link(key)
    client.get(url)
    refused = client.post(url, data={"csrf_token": "forged"})
    assert refused.status_code == 400
    assert 'data-error-code="csrf_failed"' in refused.get_data(as_text=True)
    assert fhir.transactions == []
    with client.session_transaction() as session:
        token = session["csrf"]
    done = client.post(url, data={"csrf_token": token})
    assert done.status_code == 200
    assert 'id="unsubscribed"' in done.get_data(as_text=True)
    assert withdrawn(fhir) == ["marketing_email"]


def test_one_click_post_needs_no_token_or_cookie(app: Flask, fhir: PortalFhir, key: str) -> None:
    # A mail client's RFC 8058 POST: a fresh client, no cookie, only the one-click body.
    answer = app.test_client().post(
        link(key),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.status_code == 200
    assert withdrawn(fhir) == ["marketing_email"]
    # Each withdrawal is a versioned update (If-Match), never a delete.
    (put,) = [e for t in fhir.transactions for e in t["entry"] if e["request"]["method"] == "PUT"]
    assert put["request"]["ifMatch"] == 'W/"1"'
    assert all(e["request"]["method"] != "DELETE" for t in fhir.transactions for e in t["entry"])
    # The client asked: the AuditEvent's requestor and the Provenance's agent are the client.
    (event,) = [r for r in fhir.resources if r["resourceType"] == "AuditEvent"]
    assert event["agent"][0]["who"] == {"reference": "Patient/p1"}
    assert (
        event["outcomeDesc"]
        == "marketing opt-out (email-link) withdrew the marketing_email Consent"
    )
    assert event["entity"][0]["what"] == {"reference": "Patient/p1"}
    (provenance,) = fhir.written("Provenance")
    assert provenance["agent"][0]["who"] == {"reference": "Patient/p1"}
    # Only what the portal's least scope allows is read (no RelatedPerson, no documents).
    urls = [e["request"]["url"] for b in fhir.batches for e in b["entry"]]
    assert {u.split("?")[0].split("/")[0] for u in urls} == {"Patient", "Consent"}


def test_a_link_for_text_messages_withdraws_that_channel(
    app: Flask, fhir: PortalFhir, key: str
) -> None:
    app.test_client().post(link(key, "sms"), data={"List-Unsubscribe": "One-Click"})
    assert withdrawn(fhir) == ["marketing_sms"]


@pytest.mark.parametrize("method", ["get", "post"])
def test_tampered_and_expired_links_are_refused_without_echo(
    client: FlaskClient, fhir: PortalFhir, key: str, method: str
) -> None:
    good = link(key)
    old = link(key, when=datetime.now(UTC) - timedelta(days=91))
    for url, words in ((good[:-2] + "xx", "not valid"), (old, "expired")):
        answer = getattr(client, method)(url, data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 400
        html = answer.get_data(as_text=True)
        assert 'data-error-code="unsubscribe_link_refused"' in html and words in html
        assert url.rsplit("/", 1)[1] not in html
    assert fhir.transactions == [] and fhir.batches == []


def signed(form: dict[str, str], url: str = f"{BASE}/sms/inbound") -> dict[str, str]:
    return {"X-Twilio-Signature": expected_signature(SMS_TOKEN, url, list(form.items()))}


def sms(body: str, sender: str = PHONE) -> dict[str, str]:
    return {"MessageSid": "SM" + "0" * 32, "From": sender, "To": "+13375550100", "Body": body}


def test_stop_withdraws_once_and_confirms_once(client: FlaskClient, fhir: PortalFhir) -> None:
    form = sms("Stop")
    first = client.post("/sms/inbound", data=form, headers=signed(form))
    assert first.status_code == 200 and first.mimetype == "text/xml"
    assert "<Message>" in first.get_data(as_text=True)
    assert withdrawn(fhir) == ["marketing_sms"]
    # The server now holds the withdrawn Consent: a repeated STOP gets no second text.
    fhir.resources[1] = {**fhir.resources[1], "status": "inactive"}
    again = client.post("/sms/inbound", data=form, headers=signed(form))
    assert again.status_code == 200
    assert again.get_data(as_text=True).endswith("<Response></Response>")
    assert len(fhir.transactions) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Twilio-Signature": ""},
        {"X-Twilio-Signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ="},
    ],
    ids=["missing", "empty", "wrong"],
)
def test_unsigned_webhooks_are_refused_before_anything_is_read(
    client: FlaskClient, fhir: PortalFhir, headers: dict[str, str]
) -> None:
    answer = client.post("/sms/inbound", data=sms("STOP"), headers=headers)
    assert answer.status_code == 403
    assert fhir.batches == [] and fhir.transactions == []


def test_a_tampered_webhook_is_refused(client: FlaskClient, fhir: PortalFhir) -> None:
    form = sms("Hello")
    headers = signed(form)
    answer = client.post("/sms/inbound", data={**form, "Body": "STOP"}, headers=headers)
    assert answer.status_code == 403
    # Signed for another URL (a query added on the way) is refused too.
    form = sms("STOP")
    answer = client.post("/sms/inbound?x=1", data=form, headers=signed(form))
    assert answer.status_code == 403
    assert fhir.transactions == []


def test_the_signed_url_keeps_its_query(client: FlaskClient, fhir: PortalFhir) -> None:
    form = sms("STOP")
    headers = signed(form, f"{BASE}/sms/inbound?account=spa")
    assert client.post("/sms/inbound?account=spa", data=form, headers=headers).status_code == 200
    assert withdrawn(fhir) == ["marketing_sms"]


def test_ordinary_replies_and_unknown_numbers_change_nothing(
    client: FlaskClient, fhir: PortalFhir
) -> None:
    for form in (sms("Can I cancel my appointment?"), sms("STOP", sender="+13375550199")):
        answer = client.post("/sms/inbound", data=form, headers=signed(form))
        assert answer.status_code == 200
        assert answer.get_data(as_text=True).endswith("<Response></Response>")
    assert fhir.transactions == []


def test_without_an_auth_token_every_webhook_is_refused(fhir: PortalFhir, key: str) -> None:
    app = create_app(
        {"SYMFHIR_MARKETING_KEY": key, "SYMFHIR_PORTAL_CLIENT": lambda: fhir, "SECRET_KEY": "s"}
    )
    form = sms("STOP")
    answer = app.test_client().post("/sms/inbound", data=form, headers=signed(form))
    assert answer.status_code == 403
