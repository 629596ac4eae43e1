"""Marketing opt-outs against the local HAPI FHIR server: a client with an active
marketing-by-text consent sends STOP to the portal's webhook, the consent is withdrawn on the
server (a new version, the given one kept) and the audience no longer lists them; a number
shared by two clients changes nothing; the one-click e-mail link, the desk's command and the
opt-out / CCPA no-sale requests."""

from __future__ import annotations

import csv
import logging
import random
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import phonenumbers
import pytest
from flask import Flask

from smart_app.portal import create_app
from symfhir.audit import ClientAuditTrail
from symfhir.cli import main
from symfhir.contacts import patients_with_contact
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.marketing import optout
from symfhir.marketing.audience import marketing_audience
from symfhir.marketing.sms_optout import expected_signature
from symfhir.marketing.unsubscribe import marketing_headers, read_token
from symfhir.privacy.model import COMPLETED, IDENTITY_VERIFIED, PrivacyRequest, Requester
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.recording import capture_consent, read_consents
from tests.integration.conftest import synthetic_patient, synthetic_practitioner

pytestmark = pytest.mark.integration

PORTAL = "https://portal.example.com"
SMS_TOKEN = "sms-token-for-the-hapi-tests"


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


@pytest.fixture
def actor(client: FhirClient) -> Actor:
    return synthetic_practitioner(client)


@pytest.fixture
def key() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture
def portal(fhir_base: str, key: str) -> Flask:
    return create_app(
        {
            "SYMFHIR_PORTAL_BASE_URL": PORTAL,
            "SYMFHIR_MARKETING_KEY": key,
            "SYMFHIR_SMS_AUTH_TOKEN": SMS_TOKEN,
            "SYMFHIR_PORTAL_CLIENT": lambda: FhirClient(ServerConfig(base_url=fhir_base)),
            "SECRET_KEY": "test",
        }
    )


def unused_phone(client: FhirClient) -> str:
    """A synthetic 555-01xx number no Patient on this (shared) server has yet, in E.164."""
    rng = random.SystemRandom()
    while True:
        number = f"+1{rng.randint(201, 989)}5550{rng.randint(100, 199)}"
        parsed = phonenumbers.parse(number)
        if phonenumbers.is_valid_number(parsed) and not patients_with_contact(
            client, "phone", number
        ):
            return number


def national(number: str) -> str:
    return phonenumbers.format_number(
        phonenumbers.parse(number), phonenumbers.PhoneNumberFormat.NATIONAL
    )


def client_with(client: FhirClient, actor: Actor, phone: str, *kinds: str) -> str:
    email = f"avery.{secrets.token_hex(4)}@example.com"
    patient_id = synthetic_patient(
        client,
        birthDate="1985-04-12",
        telecom=[
            {"system": "phone", "value": national(phone), "use": "mobile"},
            {"system": "email", "value": email},
        ],
    )
    trail = ClientAuditTrail(client, patient_id, actor.fhir_user)
    for kind in kinds:
        form = {
            "kind": kind,
            "decision": "given",
            "signer": "client",
            "signer_name": "Avery Quillfeather",
            "typed_signature": "Avery Quillfeather",
        }
        earlier = datetime.now(UTC) - timedelta(hours=2)
        saved = capture_consent(client, actor, patient_id, form, audit=trail, now=earlier)
        assert saved.outcome == "saved", saved.errors
    return patient_id


def status_of(client: FhirClient, actor: Actor, patient_id: str) -> dict[str, str]:
    trail = ClientAuditTrail(client, patient_id, actor.fhir_user)
    record = read_consents(client, actor, patient_id, audit=trail, now=datetime.now(UTC))
    return {k.key: k.status for k in record.overview}


def listed(client: FhirClient, channel: str) -> dict[str, str]:
    audience = marketing_audience(
        client, Actor(None), channel, now=datetime.now(UTC), audit=lambda *a, **k: None
    )
    return {c.patient_id: c.contact for c in audience.contacts}


def text(portal: Flask, sender: str, body: str) -> str:
    form = {"MessageSid": "SM" + secrets.token_hex(16), "From": sender, "Body": body}
    signature = expected_signature(SMS_TOKEN, f"{PORTAL}/sms/inbound", list(form.items()))
    answer = portal.test_client().post(
        "/sms/inbound", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def test_sms_stop_withdraws_the_consent_and_leaves_the_audience(
    client: FhirClient, actor: Actor, portal: Flask
) -> None:
    phone = unused_phone(client)
    patient_id = client_with(client, actor, phone, "marketing_sms", "marketing_email")
    assert listed(client, "sms")[patient_id] == phone

    reply = text(portal, phone, "Stop!")

    assert "<Message>" in reply and "no more marketing texts" in reply
    assert status_of(client, actor, patient_id)["marketing_sms"] == "withdrawn"
    assert status_of(client, actor, patient_id)["marketing_email"] == "given"
    assert patient_id not in listed(client, "sms")
    assert patient_id in listed(client, "email")
    # A new version of the same Consent; the given version is kept.
    (consent,) = client.search_all(
        "Consent",
        [
            ("patient", f"Patient/{patient_id}"),
            ("category", "http://symfhir.org/fhir/CodeSystem/consent-kind|marketing_sms"),
        ],
    )
    assert consent["status"] == "inactive" and consent["meta"]["versionId"] == "2"
    assert client.vread("Consent", consent["id"], "1")["status"] == "active"
    # The AuditEvent names the client as the one who asked.
    events = client.search_all("AuditEvent", [("patient", f"Patient/{patient_id}")])
    mine = [e for e in events if "marketing opt-out (sms)" in e.get("outcomeDesc", "")]
    assert len(mine) == 1
    assert mine[0]["agent"][0]["who"] == {"reference": f"Patient/{patient_id}"}

    # A repeated STOP: nothing changes and no second confirmation text.
    assert text(portal, phone, "STOP").endswith("<Response></Response>")
    assert (
        consent["meta"]["versionId"] == client.read("Consent", consent["id"])["meta"]["versionId"]
    )


def test_a_number_shared_by_two_clients_changes_nothing(
    client: FhirClient,
    actor: Actor,
    portal: Flask,
    caplog: pytest.LogCaptureFixture,
) -> None:
    phone = unused_phone(client)
    first = client_with(client, actor, phone, "marketing_sms")
    second = client_with(client, actor, phone, "marketing_sms")

    with caplog.at_level(logging.WARNING, logger="symfhir.marketing.withdraw"):
        reply = text(portal, phone, "unsubscribe")

    assert reply.endswith("<Response></Response>")
    for pid in (first, second):
        assert status_of(client, actor, pid)["marketing_sms"] == "given"
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "symfhir.marketing.withdraw"]
    assert f"Patient/{first}" in warning and f"Patient/{second}" in warning
    assert phone not in warning and national(phone) not in warning
    events = client.search_all("AuditEvent", [("patient", f"Patient/{first}")])
    assert any(
        e["outcome"] == "4" and "shared by 2 clients" in e.get("outcomeDesc", "") for e in events
    )


def test_one_click_unsubscribe_link(
    client: FhirClient, actor: Actor, portal: Flask, key: str
) -> None:
    patient_id = client_with(client, actor, unused_phone(client), "marketing_email")
    assert patient_id in listed(client, "email")
    headers = marketing_headers(
        PORTAL, patient_id, "email", now=datetime.now(UTC), key=key.encode()
    )
    url = headers["List-Unsubscribe"].split(">")[0].lstrip("<")
    answer = portal.test_client().post(
        url.removeprefix(PORTAL), data={"List-Unsubscribe": "One-Click"}
    )
    assert answer.status_code == 200
    assert status_of(client, actor, patient_id)["marketing_email"] == "withdrawn"
    assert patient_id not in listed(client, "email")


def request_for(patient_id: str, kind: str, **inputs: str) -> PrivacyRequest:
    now = datetime.now(UTC)
    return PrivacyRequest(
        task_id=None,
        kind=kind,
        requester=Requester("Avery Quillfeather", email="avery.q@example.com"),
        received=now,
        due=date.today() + timedelta(days=30),
        business_status=IDENTITY_VERIFIED,
        patient_id=patient_id,
        inputs=dict(inputs),
    )


def test_opt_out_and_no_sale_requests(client: FhirClient, actor: Actor) -> None:
    phone = unused_phone(client)
    kinds = ("marketing_email", "marketing_sms", "photos_website")
    patient_id = client_with(client, actor, phone, *kinds)
    trail = ClientAuditTrail(client, patient_id, actor.fhir_user)
    now = datetime.now(UTC)

    no_sale = optout.handle(
        client, actor, request_for(patient_id, "ccpa-opt-out-of-sale"), now=now, audit=trail
    )
    assert no_sale.business_status == COMPLETED
    (answer,) = no_sale.outputs
    assert answer.label == "ccpa-no-sale" and "does not sell" in (answer.text or "")
    # Nothing else changed: the client did not ask to stop marketing.
    assert status_of(client, actor, patient_id)["marketing_email"] == "given"

    done = optout.handle(client, actor, request_for(patient_id, "opt-out"), now=now, audit=trail)
    assert done.business_status == COMPLETED
    (report,) = done.outputs
    assert report.text == (
        "marketing by email (marketing_email): withdrawn; "
        "marketing by sms (marketing_sms): withdrawn; "
        "marketing by phone (marketing_phone): nothing to withdraw (not given)"
    )
    status = status_of(client, actor, patient_id)
    assert (status["marketing_email"], status["marketing_sms"]) == ("withdrawn", "withdrawn")
    assert status["photos_website"] == "given"  # not a marketing message channel
    # Processing it again withdraws nothing more and still completes.
    again = optout.handle(client, actor, request_for(patient_id, "opt-out"), now=now, audit=trail)
    assert again.business_status == COMPLETED
    assert "withdrawn" not in (again.outputs[0].text or "").replace("nothing to withdraw", "")


def test_the_commands_list_and_opt_out(
    client: FhirClient, actor: Actor, fhir_base: str, tmp_path: Path
) -> None:
    phone = unused_phone(client)
    patient_id = client_with(client, actor, phone, "marketing_phone")
    out = tmp_path / "phone.csv"
    assert (
        main(["marketing", "audience", "--channel", "phone", "--server", fhir_base, "-o", str(out)])
        == 0
    )
    with out.open(encoding="utf-8") as handle:
        rows = {row["patient_id"]: row for row in csv.DictReader(handle)}
    assert rows[patient_id]["phone"] == phone
    assert set(rows[patient_id]) == {"patient_id", "name", "phone"}  # the contact only

    code = main(
        [
            "marketing",
            "opt-out",
            "--patient",
            patient_id,
            "--channel",
            "phone",
            "--server",
            fhir_base,
        ]
    )
    assert code == 0
    assert status_of(client, actor, patient_id)["marketing_phone"] == "withdrawn"
    assert (
        main(["marketing", "audience", "--channel", "phone", "--server", fhir_base, "-o", str(out)])
        == 0
    )
    with out.open(encoding="utf-8") as handle:
        assert patient_id not in {row["patient_id"] for row in csv.DictReader(handle)}


def test_the_email_list_carries_each_clients_unsubscribe_headers(
    client: FhirClient,
    actor: Actor,
    fhir_base: str,
    tmp_path: Path,
    key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patient_id = client_with(client, actor, unused_phone(client), "marketing_email")
    monkeypatch.setenv("SYMFHIR_MARKETING_KEY", key)
    out = tmp_path / "email.csv"
    args = ["marketing", "audience", "--channel", "email", "--server", fhir_base]
    assert main([*args, "--unsubscribe-url", PORTAL, "-o", str(out)]) == 0
    with out.open(encoding="utf-8") as handle:
        row = {r["patient_id"]: r for r in csv.DictReader(handle)}[patient_id]
    assert row["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
    token = row["list_unsubscribe"].split(">")[0].rsplit("/", 1)[1]
    claim = read_token(key.encode(), token, now=datetime.now(UTC))
    assert (claim.patient_id, claim.channel) == (patient_id, "email")
