"""The portal's privacy-request flow with Flask's test client over an in-memory FHIR server, a
real local SMTP server and a recording SMS sender: every field validated with its reason shown,
CSRF, a code to every contact (nothing recorded before each is verified; an agent's request
needs the client's own), 5 tries also under parallel guesses, rate limits, no enumeration, and
the status and download links refused when tampered, expired, replayed or of another kind."""

from __future__ import annotations

import re
import statistics
import threading
import time
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from smart_app.portal import create_app
from symfhir.notify.catcher import MailCatcher
from symfhir.notify.email import EmailSender
from symfhir.notify.sms import SmsSender
from symfhir.privacy.links import create_link
from symfhir.privacy.model import COMPLETED, DENIED, Outcome, Requester, TaskOutput, Verification
from symfhir.privacy.portal_requests import PortalServices
from symfhir.privacy.requests import NewRequest, complete, extend, submit_request
from symfhir.store import Store
from symfhir.workspace.actor import Actor
from tests.unit.fake_fhir import Trail
from tests.unit.privacy_fake import FakeServer

BASE = "https://portal.example.com"
CODE = re.compile(r"code is (\d{6})")
STATUS_LINK = re.compile(re.escape(BASE) + r"(/status/[A-Za-z0-9_-]{43})")


class PortalServer(FakeServer):
    def close(self) -> None:
        pass


class RecordingSms(SmsSender):
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, body: str) -> str:
        self.sent.append((to, body))
        return f"m{len(self.sent)}"


@pytest.fixture
def server() -> PortalServer:
    fake = PortalServer()
    fake.add(
        {
            "resourceType": "Patient",
            "id": "p1",
            "birthDate": "1985-04-12",
            "name": [{"family": "Quillfeather", "given": ["Avery"]}],
            "telecom": [{"system": "email", "value": "a.exists@example.com"}],
        }
    )
    return fake


@pytest.fixture
def sms() -> RecordingSms:
    return RecordingSms()


@pytest.fixture
def services(store: Store, smtp_catcher: MailCatcher, sms: RecordingSms) -> PortalServices:
    email = EmailSender.from_config(smtp_catcher.config(), env={})
    return PortalServices(store, email, sms, BASE, "Symetrie Studio Spa")


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "packages"
    folder.mkdir()
    monkeypatch.setenv("SYMFHIR_EXPORT_DIR", str(folder))
    return folder


@pytest.fixture
def app(server: PortalServer, services: PortalServices, packages: Path) -> Flask:
    return create_app(
        {
            "SYMFHIR_PORTAL_BASE_URL": BASE,
            "SYMFHIR_MARKETING_KEY": "k" * 48,
            "SYMFHIR_PORTAL_CLIENT": lambda: server,
            "SYMFHIR_PORTAL_SERVICES": services,
            "SECRET_KEY": "test-secret",
        }
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf(client: FlaskClient) -> str:
    client.get("/request")
    with client.session_transaction() as session:
        return str(session["csrf"])


def form(**changes: str) -> dict[str, str]:
    data = {
        "kind": "access",
        "name": "Avery Quillfeather",
        "birth_date": "1985-04-12",
        "email": "a.exists@example.com",
        "phone": "",
        "details": "A copy of my treatment records, please.",
        "agent_name": "",
        "agent_email": "",
    }
    data.update(changes)
    return data


def submit(client: FlaskClient, **changes: str) -> Any:
    return client.post("/request", data={**form(**changes), "csrf_token": csrf(client)})


def tasks(server: PortalServer) -> list[dict[str, Any]]:
    return server.of_type("Task")


def status_of(task: dict[str, Any]) -> str:
    return task["businessStatus"]["coding"][0]["code"]


def codes_to(catcher: MailCatcher, address: str) -> list[str]:
    """Codes e-mailed to ``address``, newest first."""
    return [m for m in (CODE.search(x.text) for x in catcher.messages() if address in x.to) if m]


def last_code(catcher: MailCatcher, address: str) -> str:
    found = codes_to(catcher, address)
    assert found, f"no code for {address}"
    return found[0][1]


def enter(client: FlaskClient, contact: str, code: str) -> Any:
    with client.session_transaction() as session:
        token = str(session["csrf"])
    return client.post(
        "/request/verify", data={"contact": contact, "code": code, "csrf_token": token}
    )


def test_the_form_offers_every_kind_in_plain_words(client: FlaskClient) -> None:
    page = client.get("/request")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'name="csrf_token"' in html
    for code in ("access", "deletion", "ccpa-opt-out-of-sale", "correction"):
        assert f'value="{code}"' in html
    assert "See a copy of my information" in html
    assert page.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("kind", "everything", "Choose what you are asking for"),
        ("name", "", "Your name is required"),
        ("name", "A" * 201, "longer than 200 characters"),
        ("name", "Avery\x07Q", "control characters"),
        ("birth_date", "", "Give your date of birth"),
        ("birth_date", "12/04/1985", "real past date of birth"),
        ("birth_date", "2999-01-01", "real past date of birth"),
        ("birth_date", "1850-01-01", "real past date of birth"),
        ("email", "not-an-address", "not a valid e-mail address"),
        ("phone", "12", "not a valid phone number"),
        ("details", "my card 4111 1111 1111 1111", "payment card number"),
        ("details", "x" * 4001, "longer than 4000 characters"),
        ("agent_name", "Agent Smith", "only a California (CCPA) request"),
        ("agent_email", "bad@", "not a valid e-mail address"),
    ],
)
def test_each_field_is_checked_with_its_reason_beside_it(
    client: FlaskClient, server: PortalServer, field: str, value: str, words: str
) -> None:
    answer = submit(client, **{field: value})
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    error = re.search(rf'id="{field}-error">([^<]*)<', html)
    assert error and words in error[1]
    assert 'aria-invalid="true"' in html and "Traceback" not in html
    assert tasks(server) == []


def test_no_contact_and_an_agent_without_an_email_are_refused(
    client: FlaskClient, server: PortalServer
) -> None:
    html = submit(client, email="", phone="").get_data(as_text=True)
    assert 'id="email-error">Give an e-mail address or a phone number' in html
    html = submit(client, kind="ccpa-know", agent_name="Agent Smith").get_data(as_text=True)
    assert 'id="agent_email-error">Give the agent' in html
    assert tasks(server) == []


def test_the_form_needs_its_csrf_token(client: FlaskClient, server: PortalServer) -> None:
    client.get("/request")
    refused = client.post("/request", data={**form(), "csrf_token": "forged"})
    assert refused.status_code == 400
    assert 'data-error-code="csrf_failed"' in refused.get_data(as_text=True)
    assert tasks(server) == []


def test_a_code_to_every_contact_and_nothing_recorded_before_each_is_verified(
    client: FlaskClient, server: PortalServer, smtp_catcher: MailCatcher, sms: RecordingSms
) -> None:
    answer = submit(client, phone="(337) 555-0143")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/request/verify")
    (task,) = tasks(server)
    assert status_of(task) == "received" and "for" not in task
    mail_code = last_code(smtp_catcher, "a.exists@example.com")
    ((to, body),) = sms.sent
    assert to == "+13375550143"
    text_code = CODE.search(body)[1]

    page = client.get("/request/verify").get_data(as_text=True)
    assert "a•••@example.com" in page and "•••0143" in page
    assert "a.exists@example.com" not in page  # the page shows no address in full

    right = enter(client, "email", mail_code)
    assert right.status_code == 200 and 'id="verified-email"' in right.get_data(as_text=True)
    (task,) = tasks(server)
    assert status_of(task) == "received" and not task.get("note")  # the phone is not verified

    done = enter(client, "phone", text_code)
    assert 'id="verified"' in done.get_data(as_text=True)
    (task,) = tasks(server)
    assert status_of(task) == "identity-verified"
    notes = " ".join(n["text"] for n in task["note"])
    assert "email-code" in notes and "sms-code" in notes
    # The status link goes to the requester's e-mail, and opens the status page.
    link = STATUS_LINK.search(smtp_catcher.messages()[0].text)[1]
    status = client.get(link)
    html = status.get_data(as_text=True)
    assert status.status_code == 200 and "Identity confirmed" in html
    assert "See a copy of my information" in html and 'id="status-due"' in html
    # The request being verified is no longer in the session: a replayed code does nothing.
    assert client.get("/request/verify").status_code == 404
    # Every step is an AuditEvent, none naming the requester's addresses.
    events = server.of_type("AuditEvent")
    described = [e.get("outcomeDesc", "") for e in events]
    assert "privacy request received" in described
    assert described.count("portal code for email: right") == 1
    assert all("example.com" not in str(e) and "0143" not in str(e) for e in events)


def test_wrong_codes_count_down_then_the_code_is_dead_and_a_new_one_works(
    client: FlaskClient, server: PortalServer, smtp_catcher: MailCatcher
) -> None:
    submit(client)
    code = last_code(smtp_catcher, "a.exists@example.com")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1):
        answer = enter(client, "email", wrong)
        assert answer.status_code == 400
        assert f"{left} {'try' if left == 1 else 'tries'} left" in answer.get_data(as_text=True)
    dead = enter(client, "email", wrong).get_data(as_text=True)
    assert "can no longer be used" in dead
    assert "can no longer be used" in enter(client, "email", code).get_data(as_text=True)
    assert status_of(tasks(server)[0]) == "received"

    with client.session_transaction() as session:
        token = str(session["csrf"])
    again = client.post("/request/resend", data={"contact": "email", "csrf_token": token})
    assert "We sent a new code" in again.get_data(as_text=True)
    fresh = last_code(smtp_catcher, "a.exists@example.com")
    assert 'id="verified"' in enter(client, "email", fresh).get_data(as_text=True)
    assert status_of(tasks(server)[0]) == "identity-verified"


def _guess_in_parallel(app: Flask, pending: dict[str, Any], codes: list[str]) -> list[int]:
    """Each code posted at once by an attacker holding the pending request's cookie."""
    statuses: list[int] = []
    start = threading.Barrier(len(codes))

    def guess(code: str) -> None:
        attacker = app.test_client()
        with attacker.session_transaction() as session:
            session.update(pending)
        start.wait()
        answer = attacker.post(
            "/request/verify",
            data={"contact": "email", "code": code, "csrf_token": pending["csrf"]},
        )
        statuses.append(answer.status_code)

    threads = [threading.Thread(target=guess, args=(code,)) for code in codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def _wrong(code: str, n: int) -> str:
    return f"{(int(code) + 1 + n) % 10**6:06d}"


@pytest.mark.parametrize(("guesses", "then_right"), [(12, False), (4, True)])
def test_parallel_guesses_never_get_more_than_five_tries(
    app: Flask,
    client: FlaskClient,
    server: PortalServer,
    smtp_catcher: MailCatcher,
    guesses: int,
    then_right: bool,
) -> None:
    submit(client)
    code = last_code(smtp_catcher, "a.exists@example.com")
    with client.session_transaction() as session:
        pending = dict(session)
    statuses = _guess_in_parallel(app, pending, [_wrong(code, n) for n in range(guesses)])
    assert statuses == [400] * guesses
    # 12 at once use the 5 tries and no more: the right code is then refused; 4 at once
    # leave exactly one try, and the right code takes it.
    answer = enter(client, "email", code).get_data(as_text=True)
    if then_right:
        assert 'id="verified"' in answer
        assert status_of(tasks(server)[0]) == "identity-verified"
    else:
        assert "can no longer be used" in answer
        assert status_of(tasks(server)[0]) == "received"


def test_new_codes_are_rate_limited_with_retry_after(
    client: FlaskClient, smtp_catcher: MailCatcher
) -> None:
    submit(client)
    with client.session_transaction() as session:
        token = str(session["csrf"])
    for _ in range(4):  # 5 codes an hour for one address: the first came with the form
        answer = client.post("/request/resend", data={"contact": "email", "csrf_token": token})
        assert answer.status_code == 200
    refused = client.post("/request/resend", data={"contact": "email", "csrf_token": token})
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert 'id="rate-limited"' in refused.get_data(as_text=True)
    assert len(smtp_catcher.messages()) == 5


def test_an_agents_request_needs_the_clients_own_verification(
    client: FlaskClient, server: PortalServer, smtp_catcher: MailCatcher
) -> None:
    answer = submit(
        client, kind="ccpa-know", agent_name="Jordan Agent", agent_email="agent@example.com"
    )
    assert answer.status_code == 303
    agent_code = last_code(smtp_catcher, "agent@example.com")
    client_code = last_code(smtp_catcher, "a.exists@example.com")
    enter(client, "agent-email", agent_code)
    (task,) = tasks(server)
    assert status_of(task) == "received"  # the agent alone proves nothing of the client
    assert 'id="verified"' in enter(client, "email", client_code).get_data(as_text=True)
    (task,) = tasks(server)
    assert status_of(task) == "identity-verified"
    # The agent asked: the status link goes to the agent.
    assert "/status/" in smtp_catcher.messages()[0].text
    assert "agent@example.com" in smtp_catcher.messages()[0].to


def _page(client: FlaskClient, email: str) -> tuple[int, str, str, float]:
    started = time.perf_counter()
    answer = submit(client, email=email, name="Avery Quillfeather")
    took = time.perf_counter() - started
    verify = client.get("/request/verify").get_data(as_text=True)
    with client.session_transaction() as session:
        token = str(session["csrf"])
    return answer.status_code, answer.headers["Location"], verify.replace(token, "T"), took


def test_no_enumeration_a_stranger_is_answered_as_a_client(
    app: Flask, server: PortalServer
) -> None:
    known = [_page(app.test_client(), "a.exists@example.com") for _ in range(3)]
    stranger = [_page(app.test_client(), f"a.nobody{n}@example.com") for n in range(3)]
    assert {k[:3] for k in known} == {s[:3] for s in stranger}  # same status, redirect, page
    # Nothing looks for the client at submission: matching comes later.
    assert not [s for s in server.searches if s[0] == "Patient"]
    fast, slow = sorted(
        [statistics.median(k[3] for k in known), statistics.median(s[3] for s in stranger)]
    )
    assert slow < fast * 5  # the same work either way: same order of magnitude


def _closed_request(
    server: PortalServer, now: datetime, outcome: Outcome | None, kind: str = "access"
) -> str:
    new = NewRequest(
        kind,
        Requester("Avery Quillfeather", date(1985, 4, 12), "a.exists@example.com"),
        patient_id="p1",
        verifications=(Verification("in-person", "Practitioner/1", now),),
        reference=f"ref-{kind}-{now.timestamp()}",
    )
    task_id = submit_request(server, Actor(None), new, now=now, audit=Trail()).request.task_id
    if outcome:
        complete(server, Actor(None), task_id, outcome, now=now, audit=Trail())
    return task_id


def _package(packages: Path, task_id: str) -> tuple[str, bytes]:
    name = f"access-{task_id}-20261204T120000-0123456789abcdef.zip"
    with zipfile.ZipFile(packages / name, "w") as archive:
        archive.writestr("bundle.json", '{"resourceType": "Bundle"}')
    return name, (packages / name).read_bytes()


def test_download_streams_the_package_once_per_use(
    client: FlaskClient, server: PortalServer, services: PortalServices, packages: Path
) -> None:
    now = datetime.now(UTC)
    task_id = _closed_request(server, now, None)
    name, data = _package(packages, task_id)
    attachment = {"contentType": "application/zip", "url": name, "title": "Access package"}
    done = Outcome(COMPLETED, (TaskOutput("access-package", attachment=attachment),), "ready")
    complete(server, Actor(None), task_id, done, now=now, audit=Trail())
    token = create_link(services.store, "status", f"Task/{task_id}", now=now)

    html = client.get(f"/status/{token}").get_data(as_text=True)
    assert "Done" in html and name not in html  # the file's name is never shown
    href = re.search(r'id="download-link" class="button" href="([^"]+)"', html)[1]
    for _ in range(3):  # the download kind allows 3 uses
        with client.get(href) as answer:  # streamed: the file closes with the response
            assert answer.status_code == 200 and answer.data == data
            assert answer.headers["Content-Type"] == "application/zip"
            assert answer.headers["Content-Disposition"].startswith("attachment;")
            assert answer.headers["Cache-Control"] == "no-store"
    # Each download is a disclosure to the requester in the client's accounting.
    handed = [
        e
        for e in server.of_type("AuditEvent")
        if e.get("outcomeDesc") == "access package handed over: portal download"
    ]
    assert len(handed) == 3
    replayed = client.get(href)
    assert replayed.status_code == 404
    assert 'data-error-code="not_found"' in replayed.get_data(as_text=True)
    # A status token is not a download token, nor the other way round.
    assert client.get(f"/download/{token}").status_code == 404
    assert client.get(f"/status/{href.rsplit('/', 1)[1]}").status_code == 404


def test_tampered_expired_and_unknown_links_are_a_plain_404(
    client: FlaskClient, server: PortalServer, services: PortalServices
) -> None:
    now = datetime.now(UTC)
    task_id = _closed_request(server, now, None)
    good = create_link(services.store, "status", f"Task/{task_id}", now=now)
    old = create_link(services.store, "status", f"Task/{task_id}", now=now - timedelta(days=91))
    tampered = good[:-1] + ("A" if good[-1] != "A" else "B")
    pages = set()
    for token in (tampered, old, "x" * 43, "short", "../../etc/passwd"):
        answer = client.get(f"/status/{token}")
        assert answer.status_code == 404
        pages.add(answer.get_data(as_text=True))
    assert len(pages) == 1 and task_id not in pages.pop()  # nothing else said
    assert client.get(f"/status/{good}").status_code == 200


def test_the_status_page_shows_a_deletion_summary_and_a_denial_reason(
    client: FlaskClient, server: PortalServer, services: PortalServices
) -> None:
    now = datetime.now(UTC)
    summary = "4 deleted, 6 kept; next deletion on or after 2033-03-02"
    deletion = _closed_request(server, now, Outcome(COMPLETED, (), summary), kind="deletion")
    token = create_link(services.store, "status", f"Task/{deletion}", now=now)
    html = client.get(f"/status/{token}").get_data(as_text=True)
    assert f'id="status-summary">{summary}<' in html
    assert "7 years" in html
    assert 'id="download-link"' not in html
    denied = _closed_request(
        server,
        now,
        Outcome(DENIED, (TaskOutput("denial-reason", text="We hold no record of you."),)),
        kind="correction",
    )
    token = create_link(services.store, "status", f"Task/{denied}", now=now)
    html = client.get(f"/status/{token}").get_data(as_text=True)
    assert "Declined" in html and "We hold no record of you." in html


@pytest.mark.parametrize("keys", [True, False], ids=["store-keys-set", "key-made-at-start"])
def test_the_store_and_senders_come_from_the_environment(
    server: PortalServer,
    smtp_catcher: MailCatcher,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keys: bool,
) -> None:
    from cryptography.fernet import Fernet

    config = smtp_catcher.config()
    for name, value in {
        "SYMFHIR_SMTP_HOST": config["host"],
        "SYMFHIR_SMTP_PORT": str(config["port"]),
        "SYMFHIR_SMTP_SECURITY": config["security"],
        "SYMFHIR_SMTP_FROM": config["from"],
        "SYMFHIR_STORE_URL": f"sqlite:///{tmp_path / 'env-store.db'}",
        "SYMFHIR_STORE_KEYS": Fernet.generate_key().decode() if keys else "",
    }.items():
        monkeypatch.setenv(name, value)
    app = create_app(
        {
            "SYMFHIR_PORTAL_BASE_URL": BASE,
            "SYMFHIR_MARKETING_KEY": "k" * 48,
            "SYMFHIR_PORTAL_CLIENT": lambda: server,
            "SECRET_KEY": "test-secret",
        }
    )
    client = app.test_client()
    assert submit(client).status_code == 303
    code = last_code(smtp_catcher, "a.exists@example.com")
    assert 'id="verified"' in enter(client, "email", code).get_data(as_text=True)
    assert (tmp_path / "env-store.db").exists()
    app.extensions["symfhir_portal_services"].store.dispose()


def test_the_status_page_shows_an_extension_and_its_reason(
    client: FlaskClient, server: PortalServer, services: PortalServices
) -> None:
    now = datetime.now(UTC)
    task_id = _closed_request(server, now, None, kind="correction")
    reason = "Your records are held in two systems; we need to check both."
    extended = extend(server, Actor(None), task_id, reason, now=now, audit=Trail())
    token = create_link(services.store, "status", f"Task/{task_id}", now=now)
    html = client.get(f"/status/{token}").get_data(as_text=True)
    assert f'id="status-extension">{reason}<' in html
    assert f'id="status-due">{extended.request.due.isoformat()}<' in html
    assert "Identity confirmed" in html and 'id="download-link"' not in html


def _inputs(task: dict[str, Any]) -> dict[str, str]:
    return {i["type"]["text"]: i.get("valueString", "") for i in task.get("input", [])}


def test_a_correction_offers_what_the_rules_let_a_client_amend(client: FlaskClient) -> None:
    html = client.get("/request").get_data(as_text=True)
    fieldset = html[html.index('id="correction-fields"') : html.index('class="agent"')]
    assert "For corrections only" in fieldset
    choices = re.findall(r'<option value="([^"]*)"', fieldset)
    assert choices == ["", "telecom", "name", "address", "birthDate", "other"]
    assert "My contact details" in fieldset and "Something else in my record" in fieldset
    # Shown with the kind by a static script (the CSP forbids inline ones).
    assert re.search(r'<script src="/static/request_form\.js" defer>', html)
    assert "<script>" not in html and " onchange=" not in html
    script = client.get("/static/request_form.js")
    assert script.status_code == 200 and b'"correction"' in script.data
    script.close()


def test_a_correction_is_written_with_the_inputs_its_handler_reads(
    client: FlaskClient, server: PortalServer
) -> None:
    answer = submit(
        client,
        kind="correction",
        details="",
        correction_field="telecom",
        proposed="(337) 555-0177",
        reason="I changed my mobile number in March.",
    )
    assert answer.status_code == 303
    (task,) = tasks(server)
    inputs = _inputs(task)
    assert inputs["resource"] == "Patient.telecom"
    assert inputs["proposed"] == "(337) 555-0177"
    assert inputs["reason"] == "I changed my mobile number in March."


def test_something_else_names_no_record_and_needs_the_details(
    client: FlaskClient, server: PortalServer
) -> None:
    html = submit(
        client, kind="correction", details="", correction_field="other", proposed="x", reason="y"
    ).get_data(as_text=True)
    assert 'id="details-error">Tell us which information in your record is wrong.' in html
    assert tasks(server) == []
    answer = submit(
        client,
        kind="correction",
        details="My allergy list says latex; I am not allergic to latex.",
        correction_field="other",
        proposed="No latex allergy.",
        reason="Tested by my doctor in 2024.",
    )
    assert answer.status_code == 303
    (task,) = tasks(server)
    assert "resource" not in _inputs(task)  # the practitioner names the record
    assert _inputs(task)["proposed"] == "No latex allergy."


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"correction_field": ""}, "correction_field", "Choose what is wrong."),
        ({"correction_field": "gender"}, "correction_field", "Choose what is wrong."),
        ({"proposed": ""}, "proposed", "Give the corrected information."),
        ({"proposed": "not-a-contact"}, "proposed", "Give one valid e-mail address or phone"),
        ({"correction_field": "name", "proposed": "Avery"}, "proposed", "given name and family"),
        ({"correction_field": "birthDate", "proposed": "12/04/1985"}, "proposed", "YYYY-MM-DD"),
        ({"proposed": "4111 1111 1111 1111"}, "proposed", "payment card number"),
        ({"reason": "  "}, "reason", "Tell us why the information is wrong."),
        ({"reason": "x" * 1001}, "reason", "longer than 1000 characters"),
    ],
)
def test_each_correction_field_is_checked_with_its_reason_beside_it(
    client: FlaskClient, server: PortalServer, changes: dict[str, str], field: str, words: str
) -> None:
    typed = {
        "kind": "correction",
        "correction_field": "telecom",
        "proposed": "new.address@example.com",
        "reason": "My e-mail changed.",
        **changes,
    }
    answer = submit(client, **typed)
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    error = re.search(rf'id="{field}-error">([^<]*)<', html)
    assert error and words in error[1]
    assert tasks(server) == []
    # What was typed is kept (the choice too), so nothing need be typed again.
    if typed["correction_field"] in ("telecom", "name", "birthDate"):
        assert f'value="{typed["correction_field"]}" selected' in html


def test_correction_fields_are_ignored_for_another_kind(
    client: FlaskClient, server: PortalServer
) -> None:
    answer = submit(client, kind="access", correction_field="name", proposed="", reason="")
    assert answer.status_code == 303
    (task,) = tasks(server)
    assert not {"resource", "proposed", "reason"} & set(_inputs(task))


def _verified_request(client: FlaskClient, catcher: MailCatcher, sms: RecordingSms) -> str:
    """A request whose e-mail and phone are both verified; its reference, as the page shows."""
    submit(client, phone="(337) 555-0143")
    enter(client, "email", last_code(catcher, "a.exists@example.com"))
    done = enter(client, "phone", CODE.search(sms.sent[-1][1])[1]).get_data(as_text=True)
    found = re.search(r'id="verified-reference">([0-9a-f]{32})<', done)
    assert found, "the verified page shows the reference"
    return found[1]


def _ask_link(client: FlaskClient, reference: str, contact: str) -> Any:
    client.get("/request/status-link")
    with client.session_transaction() as session:
        token = str(session["csrf"])
    return client.post(
        "/request/status-link",
        data={"reference": reference, "contact": contact, "csrf_token": token},
    )


def _status_links(catcher: MailCatcher) -> list[str]:
    return [m[1] for m in (STATUS_LINK.search(x.text) for x in catcher.messages()) if m]


def test_the_status_link_is_sent_again_only_to_a_verified_contact(
    client: FlaskClient, server: PortalServer, smtp_catcher: MailCatcher, sms: RecordingSms
) -> None:
    reference = _verified_request(client, smtp_catcher, sms)
    (first,) = _status_links(smtp_catcher)
    assert reference in smtp_catcher.messages()[0].text  # the message names the reference

    answer = _ask_link(client, reference, "A.Exists@Example.com")
    assert answer.status_code == 200
    assert 'id="status-link-answer"' in answer.get_data(as_text=True)
    again = _status_links(smtp_catcher)
    assert len(again) == 2 and again[0] != first
    assert client.get(again[0]).status_code == 200
    assert client.get(first).status_code == 404  # the lost link no longer works

    texts = len(sms.sent)
    _ask_link(client, reference, "337-555-0143")  # the phone, typed another way
    assert len(sms.sent) == texts + 1 and "/status/" in sms.sent[-1][1]
    assert sms.sent[-1][0] == "+13375550143"
    described = [e.get("outcomeDesc", "") for e in server.of_type("AuditEvent")]
    assert any(d.startswith("status link re-sent to email") for d in described)
    assert any(d.startswith("status link re-sent to phone") for d in described)


def test_sending_the_link_again_answers_the_same_whatever_is_typed(
    app: Flask, server: PortalServer, smtp_catcher: MailCatcher, sms: RecordingSms
) -> None:
    reference = _verified_request(app.test_client(), smtp_catcher, sms)
    # A second request, its e-mail not verified yet: nothing goes out for it either.
    pending = app.test_client()
    submit(pending, email="b.pending@example.com", name="Blair Pending")
    pending_ref = next(
        i["value"]
        for t in tasks(server)
        for i in t["identifier"]
        if "Blair" in str(t) and i["value"] != reference
    )

    took: list[tuple[bool, float]] = []

    def page(reference: str, contact: str) -> tuple[int, str]:
        fresh = app.test_client()
        before = len(smtp_catcher.messages())
        started = time.perf_counter()
        answer = _ask_link(fresh, reference, contact)
        took.append((len(smtp_catcher.messages()) > before, time.perf_counter() - started))
        with fresh.session_transaction() as session:
            token = str(session["csrf"])
        return answer.status_code, answer.get_data(as_text=True).replace(token, "T")

    mails, texts = len(smtp_catcher.messages()), len(sms.sent)
    refused = {
        page("0" * 32, "a.exists@example.com"),  # no such request
        page(reference, "someone.else@example.com"),  # not the request's contact
        page(reference, "not an address"),
        page("", ""),
        page(pending_ref, "b.pending@example.com"),  # not verified yet
        page(reference + "' OR 1=1", "a.exists@example.com"),
    }
    assert len(refused) == 1
    assert len(smtp_catcher.messages()) == mails and len(sms.sent) == texts
    assert page(reference, "a.exists@example.com") in refused  # the same when it is sent
    assert len(smtp_catcher.messages()) == mails + 1
    # The same order of magnitude (measured: about 20 ms sent, 8-14 ms refused): the reference
    # is a secret to begin with, so what a sending adds reveals little.
    sent = [t for s, t in took if s]
    assert sent and sent[0] < 10 * statistics.median(t for s, t in took if not s)


def test_sending_the_link_again_is_rate_limited_whatever_it_names(
    client: FlaskClient, smtp_catcher: MailCatcher, sms: RecordingSms
) -> None:
    reference = _verified_request(client, smtp_catcher, sms)
    for n in range(5):  # 5 an hour per typed reference
        assert _ask_link(client, reference, f"x{n}@example.com").status_code == 200
    refused = _ask_link(client, reference, "a.exists@example.com")
    assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 3600
    assert "Too many tries" in refused.get_data(as_text=True)
    # Per typed contact too, for references that do not even exist.
    for n in range(5):
        assert _ask_link(client, f"{n:032x}", "c.stranger@example.com").status_code == 200
    assert _ask_link(client, "f" * 32, "C.Stranger@example.com").status_code == 429
    assert len(_status_links(smtp_catcher)) == 1  # only the first, at verification


def test_a_denied_correction_shows_the_requesters_rights(
    client: FlaskClient, server: PortalServer, services: PortalServices
) -> None:
    from symfhir.privacy.correction_notices import DISAGREEMENT_RIGHTS

    now = datetime.now(UTC)
    outputs = (
        TaskOutput("denial-reason", text="Our record is accurate."),
        TaskOutput("disagreement-rights", text=DISAGREEMENT_RIGHTS),
    )
    denied = _closed_request(server, now, Outcome(DENIED, outputs), kind="correction")
    token = create_link(services.store, "status", f"Task/{denied}", now=now)
    html = client.get(f"/status/{token}").get_data(as_text=True)
    assert 'id="status-denial">Our record is accurate.<' in html
    rights = re.search(r'id="status-rights">([^<]*)<', html)
    assert rights and "statement disagreeing" in rights[1] and "complain" in rights[1]


def test_an_accepted_correction_reads_in_plain_words(
    client: FlaskClient, server: PortalServer, services: PortalServices
) -> None:
    now = datetime.now(UTC)
    outcome = Outcome(COMPLETED, (), "Patient.telecom amended (replace)")
    done = _closed_request(server, now, outcome, kind="correction")
    token = create_link(services.store, "status", f"Task/{done}", now=now)
    html = client.get(f"/status/{token}").get_data(as_text=True)
    assert "We corrected your record as you asked." in html
    assert "Patient.telecom" not in html
