"""A privacy request's "Transfer to another provider" (smart_app.request_transfer): offered on
a verified, matched, open portability request, on the officer's dashboard and the client's
Privacy tab; a push (https base URL, a token never echoed) or a long-term link shown once
(QR code, viewer URL, shlink); field errors by name; CSRF; a read-only session and another
client's request refused.

``symfhir.sharing.transfer.transfer_request`` is replaced by a recorder (it has its own tests,
tests/unit/test_share_workflow.py): these tests prove what the views parse, pass on, refuse
and render. The recorder closes the Task as the workflow does."""

from __future__ import annotations

import base64
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

import smart_app.request_transfer as views
import symfhir.sharing.transfer as transfer_module
from smart_app.config import DEFAULTS
from symfhir.errors import PrivacyRequestError, PushError, SharingError
from symfhir.privacy.model import COMPLETED, Outcome, Requester, Verification
from symfhir.privacy.requests import NewRequest, complete, submit_request
from symfhir.sharing.links import NewLink
from symfhir.sharing.push import PushReport
from symfhir.sharing.transfer import Transfer
from symfhir.smart.scopes import allows
from symfhir.workspace.actor import Actor
from tests.app.fake_ehr import FakeEhr
from tests.app.test_privacy import SCOPE, TaskEndpoint
from tests.app.test_privacy_dashboard import _officer_launch
from tests.unit.fake_fhir import Trail

pytestmark = pytest.mark.unit

ZONE = ZoneInfo("America/Chicago")
PNG = b"\x89PNG\r\n\x1a\nfake-qr"
SVG = '<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>'
TOKEN = "provider-bearer-token-4821"  # made up for the test
PASSCODE = "long-passcode-77"
PROVIDER = "Bayou Family Medicine"
SHLINK = "shlink:/eyJ1cmwiOiJodHRwOi8vbGlua3MuZXhhbXBsZSJ9"


@dataclass
class Transfers:
    """``transfer_request`` as the view calls it: what it was given, and the Task closed."""

    tasks: TaskEndpoint
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail: Exception | None = None

    def __call__(self, client: Any, actor: Any, task_id: str, **kwargs: Any) -> Transfer:
        self.calls.append({"task_id": task_id, **kwargs})
        if self.fail:
            raise self.fail
        done = Outcome(COMPLETED, summary=f"Record transferred to {kwargs['recipient']}")
        closed = complete(
            self.tasks.store, Actor(None), task_id, done, now=kwargs["now"], audit=Trail()
        )
        if kwargs["target"] is not None:
            report = PushReport(
                target=kwargs["target"].base_url,
                mode=kwargs["mode"],
                recipient=kwargs["recipient"],
                sent={"Bundle": 1, "Observation": 4},
                ids={},
            )
            return Transfer(closed, report=report)
        link = NewLink(
            link_id="T1",
            manifest_url="http://links.example/shl/m/x",
            payload={"label": f"Records for {kwargs['recipient']}"},
            viewer_url=f"http://links.example/view#{SHLINK}",
            shlink=SHLINK,
            qr_png=PNG,
            qr_svg=SVG,
            expires_at=kwargs["expires_at"],
            flags="LP" if kwargs["passcode"] else "L",
        )
        return Transfer(closed, link=link)


@pytest.fixture
def tasks(fake_ehr: FakeEhr) -> TaskEndpoint:
    return TaskEndpoint(fake_ehr)


@pytest.fixture
def transfers(monkeypatch: pytest.MonkeyPatch, app, store, tasks: TaskEndpoint) -> Transfers:
    recorder = Transfers(tasks)
    monkeypatch.setattr(views, "transfer_request", recorder)
    app.config["SYMFHIR_STORE"] = store
    app.config["SYMFHIR_LINKS_BASE_URL"] = "http://links.example"
    return recorder


@pytest.fixture
def officer(client: FlaskClient, fake_ehr: FakeEhr, tasks: TaskEndpoint, transfers) -> FlaskClient:
    _officer_launch(client, fake_ehr)
    return client


def seed(
    tasks: TaskEndpoint,
    patient_id: str | None = "p1",
    *,
    kind: str = "portability",
    verified: bool = True,
    provider: str | None = PROVIDER,
) -> str:
    when = datetime.now(ZONE) - timedelta(hours=1)
    new = NewRequest(
        kind,
        Requester("Ada Testperson", date(1990, 4, 1), "ada.t@example.com"),
        inputs={"transfer-to": provider} if provider else {},
        reference=uuid.uuid4().hex,
        patient_id=patient_id,
        verifications=(Verification("in-person", "Practitioner/desk", when),) if verified else (),
    )
    return submit_request(tasks.store, Actor(None), new, now=when, audit=Trail()).request.task_id


def page(client: FlaskClient, url: str) -> tuple[str, str]:
    html = client.get(url).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token
    return html, token[1]


def push_form(csrf_value: str, **fields: str) -> dict[str, str]:
    return {
        "csrf_token": csrf_value,
        "provider": PROVIDER,
        "how": "push",
        "base_url": "https://fhir.bayou.example/r4/",
        "token": TOKEN,
        "mode": "transaction",
        "passcode": "",
        "expires_days": "365",
        **fields,
    }


def link_form(csrf_value: str, **fields: str) -> dict[str, str]:
    link = {"how": "link", "base_url": "", "token": "", "passcode": PASSCODE}
    return push_form(csrf_value, **{**link, **fields})


def field_error(html: str, name: str) -> str:
    found = re.search(rf'<span id="err-{name}" class="error-text" role="alert">([^<]*)<', html)
    return found[1] if found else ""


def status_of(tasks: TaskEndpoint, task_id: str) -> str:
    return tasks.store.read("Task", task_id)["businessStatus"]["coding"][0]["code"]


OFFICER = "/privacy-dashboard/requests"


# ── The form ─────────────────────────────────────────────────────────────────


def test_the_form_is_offered_with_the_provider_the_client_named(officer, tasks) -> None:
    task_id = seed(tasks)
    html, _ = page(officer, f"{OFFICER}/{task_id}")
    assert f'action="{OFFICER}/{task_id}/transfer"' in html
    assert re.search(rf'id="transfer-provider"[^>]*value="{PROVIDER}"', html)
    assert re.search(r'id="transfer-token" name="token" type="password"', html)
    assert re.search(r'id="transfer-passcode" name="passcode" type="password"', html)
    assert re.search(r'id="transfer-how-push"[^>]*checked', html)
    assert 'id="transfer-expires-days"' in html


@pytest.mark.parametrize(
    "made",
    [
        {"kind": "access"},
        {"verified": False},
        {"patient_id": None},
    ],
    ids=["another-kind", "not-verified", "not-matched"],
)
def test_no_form_unless_a_verified_matched_portability_request(officer, tasks, made) -> None:
    html, _ = page(officer, f"{OFFICER}/{seed(tasks, **made)}")
    assert 'id="transfer-form"' not in html


def test_a_closed_request_has_no_form(officer, tasks) -> None:
    task_id = seed(tasks)
    complete(
        tasks.store,
        Actor(None),
        task_id,
        Outcome(COMPLETED, summary="Done at the desk"),
        now=datetime.now(ZONE),
        audit=Trail(),
    )
    html, _ = page(officer, f"{OFFICER}/{task_id}")
    assert 'id="transfer-form"' not in html


# ── Push ─────────────────────────────────────────────────────────────────────


def test_a_push_transfers_and_shows_the_report(officer, tasks, transfers, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    task_id = seed(tasks)
    _, token = page(officer, f"{OFFICER}/{task_id}")
    response = officer.post(f"{OFFICER}/{task_id}/transfer", data=push_form(token))
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    (call,) = transfers.calls
    assert call["task_id"] == task_id
    assert call["target"].base_url == "https://fhir.bayou.example/r4"
    assert call["target"].bearer_token == TOKEN
    assert call["mode"] == "transaction"
    assert call["recipient"] == PROVIDER
    assert call["store"] is None and call["links"] is None  # no link is made
    assert 'id="transfer-pushed"' in html and 'id="push-report"' in html
    assert "pushed to https://fhir.bayou.example/r4 as a transaction" in html
    assert '<tr data-type="Observation"><td>Observation</td><td>4</td></tr>' in html
    assert 'id="transfer-form"' not in html  # the request is closed
    assert status_of(tasks, task_id) == "completed"
    assert TOKEN not in html  # the token is never shown, logged or kept
    assert TOKEN not in caplog.text
    assert TOKEN not in str(tasks.store.read("Task", task_id))


def test_a_push_to_a_server_on_this_machine_may_use_http(officer, tasks, transfers) -> None:
    task_id = seed(tasks)
    _, token = page(officer, f"{OFFICER}/{task_id}")
    form = push_form(token, base_url="http://localhost:8081/fhir", mode="document")
    assert officer.post(f"{OFFICER}/{task_id}/transfer", data=form).status_code == 200
    assert transfers.calls[0]["target"].base_url == "http://localhost:8081/fhir"
    assert transfers.calls[0]["mode"] == "document"


def test_a_refused_push_says_why_and_keeps_the_request_open(officer, tasks, transfers) -> None:
    transfers.fail = PushError("target: the server refused the transaction (403)")
    task_id = seed(tasks)
    _, token = page(officer, f"{OFFICER}/{task_id}")
    response = officer.post(f"{OFFICER}/{task_id}/transfer", data=push_form(token))
    html = response.get_data(as_text=True)
    assert response.status_code == 502
    assert re.search(r'id="err-transfer"[^>]*>The server refused the transaction \(403\)\.<', html)
    assert 'id="transfer-form"' in html  # may be sent again
    assert 'value="https://fhir.bayou.example/r4/"' in html  # the URL is kept, not the token
    assert TOKEN not in html
    assert status_of(tasks, task_id) == "identity-verified"


# ── Long-term link ───────────────────────────────────────────────────────────


def test_a_link_is_made_and_shown_once(officer, tasks, transfers, store) -> None:
    task_id = seed(tasks)
    _, token = page(officer, f"{OFFICER}/{task_id}")
    response = officer.post(
        f"{OFFICER}/{task_id}/transfer", data=link_form(token, expires_days="90")
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 201
    (call,) = transfers.calls
    assert call["target"] is None
    assert call["recipient"] == PROVIDER
    assert call["store"] is store
    assert call["links"].links_base == "http://links.example"
    assert call["links"].viewer_base == "http://links.example/view"
    assert call["passcode"] == PASSCODE
    assert timedelta(days=89, hours=23) < call["expires_at"] - call["now"] <= timedelta(days=90)
    assert 'id="transfer-link-created"' in html and "tell it to the provider" in html
    assert f'id="link-label">Records for {PROVIDER}<' in html
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in html
    svg = base64.b64encode(SVG.encode()).decode()
    assert f'href="data:image/svg+xml;base64,{svg}" download="transfer-link-qr.svg"' in html
    assert f">http://links.example/view#{SHLINK}<" in html
    assert f">{SHLINK}<" in html
    assert 'id="print-link"' in html and "sharing.js" in html
    assert PASSCODE not in html
    assert response.headers["Cache-Control"] == "no-store"
    again = officer.get(f"{OFFICER}/{task_id}").get_data(as_text=True)
    assert SHLINK not in again and 'id="link-handout"' not in again  # kept nowhere


def test_a_link_without_passcode(officer, tasks, transfers) -> None:
    task_id = seed(tasks)
    _, token = page(officer, f"{OFFICER}/{task_id}")
    response = officer.post(f"{OFFICER}/{task_id}/transfer", data=link_form(token, passcode=""))
    assert response.status_code == 201
    assert transfers.calls[0]["passcode"] is None
    assert "tell it to the provider" not in response.get_data(as_text=True)


def test_the_provider_typed_wins_over_the_requests(officer, tasks, transfers) -> None:
    task_id = seed(tasks, provider=None)
    html, token = page(officer, f"{OFFICER}/{task_id}")
    assert re.search(r'id="transfer-provider"[^>]*value=""', html)
    form = link_form(token, provider="Dr. Ines Varga")
    assert officer.post(f"{OFFICER}/{task_id}/transfer", data=form).status_code == 201
    assert transfers.calls[0]["recipient"] == "Dr. Ines Varga"


# ── Bad input ────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("make", "fields", "name", "words"),
    [
        (push_form, {"provider": ""}, "transfer_provider", "Name the provider"),
        (push_form, {"provider": "x" * 201}, "transfer_provider", "At most 200"),
        (push_form, {"how": "fax"}, "transfer_how", "Choose a sending"),
        (push_form, {"base_url": "http://fhir.bayou.example"}, "transfer_base_url", "https://"),
        (push_form, {"base_url": "ftp://x"}, "transfer_base_url", "https://"),
        (push_form, {"token": ""}, "transfer_token", "access token"),
        (push_form, {"mode": "carrier-pigeon"}, "transfer_mode", "Choose what to send"),
        (link_form, {"passcode": "abc"}, "transfer_passcode", "characters"),
        (link_form, {"expires_days": "0"}, "transfer_expires_days", "from 1 to 365"),
        (link_form, {"expires_days": "366"}, "transfer_expires_days", "from 1 to 365"),
        (link_form, {"expires_days": "soon"}, "transfer_expires_days", "whole number"),
    ],
)
def test_bad_input_names_the_field_and_nothing_is_sent(
    officer, tasks, transfers, make, fields, name, words
) -> None:
    task_id = seed(tasks)
    _, token = page(officer, f"{OFFICER}/{task_id}")
    response = officer.post(f"{OFFICER}/{task_id}/transfer", data=make(token, **fields))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert words in field_error(html, name)
    assert transfers.calls == []
    assert TOKEN not in html and PASSCODE not in html
    assert status_of(tasks, task_id) == "identity-verified"


@pytest.mark.parametrize(
    ("error", "name", "words"),
    [
        (SharingError("recipient: name the provider"), "transfer_provider", "Name the provider."),
        (SharingError("expires_at: at most 365 days ahead"), "transfer_expires_days", "At most"),
        (SharingError("something odd"), "transfer", "Something odd."),
    ],
)
def test_the_workflows_refusal_is_shown_on_its_field(
    officer, tasks, transfers, error, name, words
) -> None:
    transfers.fail = error
    task_id = seed(tasks)
    _, token = page(officer, f"{OFFICER}/{task_id}")
    response = officer.post(f"{OFFICER}/{task_id}/transfer", data=link_form(token))
    assert response.status_code == 400
    assert words in field_error(response.get_data(as_text=True), name) or (
        name == "transfer" and f">{words}<" in response.get_data(as_text=True)
    )


def test_a_request_the_workflow_refuses_says_why(officer, tasks, transfers) -> None:
    transfers.fail = PrivacyRequestError("Task/x: no client matched yet")
    task_id = seed(tasks)
    _, token = page(officer, f"{OFFICER}/{task_id}")
    response = officer.post(f"{OFFICER}/{task_id}/transfer", data=push_form(token))
    assert response.status_code == 400
    assert "Task/x: no client matched yet." in response.get_data(as_text=True)


@pytest.mark.parametrize("made", [{"kind": "access"}, {"verified": False}, {"patient_id": None}])
def test_a_request_that_cannot_be_transferred_is_refused(officer, tasks, transfers, made) -> None:
    # A crafted POST to a request the page offers no form for.
    task_id = seed(tasks, **made)
    _, token = page(officer, f"{OFFICER}/{task_id}")
    response = officer.post(f"{OFFICER}/{task_id}/transfer", data=push_form(token))
    assert response.status_code == 400
    assert "Only an open portability request" in response.get_data(as_text=True)
    assert transfers.calls == []


def test_no_such_request_is_404(officer, transfers) -> None:
    _, token = page(officer, "/privacy-dashboard/")
    response = officer.post(f"{OFFICER}/nope/transfer", data=push_form(token))
    assert response.status_code == 404
    assert transfers.calls == []


# ── CSRF, read-only, another client ──────────────────────────────────────────


@pytest.mark.parametrize("forged", ["", "forged"])
def test_a_post_without_the_csrf_token_is_refused(officer, tasks, transfers, forged) -> None:
    task_id = seed(tasks)
    page(officer, f"{OFFICER}/{task_id}")
    response = officer.post(f"{OFFICER}/{task_id}/transfer", data=push_form(forged))
    assert response.status_code == 400
    assert 'data-error-code="csrf_failed"' in response.get_data(as_text=True)
    assert transfers.calls == []


def test_a_read_only_session_transfers_nothing(client, fake_ehr, tasks, transfers) -> None:
    _officer_launch(client, fake_ehr, granted="openid fhirUser launch user/*.rs user/AuditEvent.c")
    task_id = seed(tasks)
    html, token = page(client, f"{OFFICER}/{task_id}")
    assert 'id="read-only-notice"' in html and 'id="transfer-form"' not in html
    response = client.post(f"{OFFICER}/{task_id}/transfer", data=push_form(token))
    assert response.status_code == 403
    assert "read-only" in response.get_data(as_text=True)
    assert transfers.calls == []


def test_the_privacy_tab_transfers_its_clients_request(
    client, fake_ehr: FakeEhr, tasks, transfers
) -> None:
    from tests.app.conftest import launch

    fake_ehr.granted_scope = SCOPE
    assert launch(client, fake_ehr).status_code == 303
    task_id = seed(tasks, fake_ehr.patient_id)
    html, token = page(client, f"/privacy/requests/{task_id}")
    assert f'action="/privacy/requests/{task_id}/transfer"' in html
    response = client.post(f"/privacy/requests/{task_id}/transfer", data=link_form(token))
    assert response.status_code == 201
    assert transfers.calls[0]["task_id"] == task_id


def test_another_clients_request_is_refused_and_audited(
    client, fake_ehr: FakeEhr, tasks, transfers
) -> None:
    from tests.app.conftest import launch

    fake_ehr.granted_scope = SCOPE
    assert launch(client, fake_ehr).status_code == 303
    mine = seed(tasks, fake_ehr.patient_id)
    theirs = seed(tasks, "someone-else")
    _, token = page(client, f"/privacy/requests/{mine}")
    before = len(fake_ehr.audit_events)
    response = client.post(f"/privacy/requests/{theirs}/transfer", data=push_form(token))
    assert response.status_code == 403
    assert transfers.calls == []
    refused = [e for e in fake_ehr.audit_events[before:] if e.get("outcome") != "0"]
    assert any("Patient/someone-else" in str(e.get("entity")) for e in refused)
    assert status_of(tasks, theirs) == "identity-verified"


def test_the_officers_scopes_cover_a_transfer() -> None:
    # Reading the whole record (photos too), stepping the Task, writing the disclosure's
    # AuditEvent: the officer's session already holds all three.
    scopes = DEFAULTS["SYMFHIR_OFFICER_SCOPES"].split()
    for rtype in ("Patient", "Observation", "Procedure", "Media", "Binary", "Consent"):
        assert allows(scopes, rtype, "r") and allows(scopes, rtype, "s"), rtype
    assert allows(scopes, "Task", "u")
    assert allows(scopes, "AuditEvent", "c")


# ── With the real workflow (only the package and the push replaced) ─────────


@pytest.fixture
def workflow(monkeypatch: pytest.MonkeyPatch, app, store, client, fake_ehr, tasks) -> list:
    """The officer's session calling the real ``transfer_request`` (the Task is read, put in
    progress and closed on the fake EHR); the link and the push it makes are recorded."""
    made: list[dict[str, Any]] = []

    def link_plan(client, actor, plan, **kwargs):
        made.append({"plan": plan, **kwargs})
        new = NewLink(
            link_id="T9",
            manifest_url="http://links.example/shl/m/y",
            payload={"label": kwargs["label"]},
            viewer_url=f"http://links.example/view#{SHLINK}",
            shlink=SHLINK,
            qr_png=PNG,
            qr_svg=SVG,
            expires_at=kwargs["expires_at"],
            flags="L",
        )
        return SimpleNamespace(link=new, resources=12, photos=2)

    def push_plan(client, actor, plan, **kwargs):
        made.append({"plan": plan, **kwargs})
        target = kwargs["target"].base_url
        return PushReport(target, kwargs["mode"], plan.recipient.name, {"Patient": 1}, {})

    monkeypatch.setattr(transfer_module, "link_plan", link_plan)
    monkeypatch.setattr(transfer_module, "push_plan", push_plan)
    app.config["SYMFHIR_STORE"] = store
    app.config["SYMFHIR_LINKS_BASE_URL"] = "http://links.example"
    _officer_launch(client, fake_ehr)
    return made


def test_the_real_workflow_closes_the_request_with_the_link(client, tasks, workflow) -> None:
    task_id = seed(tasks)
    _, token = page(client, f"{OFFICER}/{task_id}")
    response = client.post(f"{OFFICER}/{task_id}/transfer", data=link_form(token))
    assert response.status_code == 201, response.get_data(as_text=True)
    (made,) = workflow
    assert made["plan"].basis == f"Task/{task_id}"
    assert made["plan"].patient_id == "p1"
    assert made["plan"].recipient.name == PROVIDER
    assert made["long_term"] is True and made["passcode"] == PASSCODE
    assert made["label"] == f"Records for {PROVIDER}"
    task = tasks.store.read("Task", task_id)
    assert task["businessStatus"]["coding"][0]["code"] == "completed"
    outputs = str(task.get("output"))
    assert "T9" in outputs and SHLINK not in outputs and PASSCODE not in str(task)
    assert SHLINK in response.get_data(as_text=True)


def test_the_real_workflow_closes_the_request_with_the_push(client, tasks, workflow) -> None:
    task_id = seed(tasks)
    _, token = page(client, f"{OFFICER}/{task_id}")
    response = client.post(f"{OFFICER}/{task_id}/transfer", data=push_form(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    (made,) = workflow
    assert made["target"].bearer_token == TOKEN and made["purpose"] == "PATRQT"
    task = tasks.store.read("Task", task_id)
    assert task["businessStatus"]["coding"][0]["code"] == "completed"
    assert "https://fhir.bayou.example/r4" in str(task.get("output"))
    assert TOKEN not in str(task)
