"""The Privacy tab (/privacy): the launched client's requests by due date (overdue in red) and
"New privacy request" taken at the desk with the identity verified in person; a read-only
session records nothing; another client is refused."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from werkzeug import Request, Response

from symfhir.errors import FhirConflictError, FhirNotFoundError
from symfhir.privacy import processing
from symfhir.privacy.model import COMPLETED, Outcome, Requester, TaskOutput, Verification
from symfhir.privacy.requests import NewRequest, complete, extend, submit_request
from symfhir.workspace.actor import Actor
from tests.app.conftest import launch
from tests.app.fake_ehr import FHIR_JSON, FakeEhr
from tests.unit.fake_fhir import Trail
from tests.unit.privacy_fake import FakeServer

ZONE = ZoneInfo("America/Chicago")
NOT_FOUND = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "not-found"}],
}
CONFLICT = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "conflict"}],
}
SCOPE = (
    "openid fhirUser launch offline_access patient/Patient.r patient/Task.crus patient/AuditEvent.c"
)


class TaskEndpoint:
    """/fhir/Task on the fake EHR, backed by the in-memory server of the workflow tests."""

    def __init__(self, fake: FakeEhr) -> None:
        self.store = FakeServer()
        self.queries: list[list[tuple[str, str]]] = []
        fake.server.expect_request("/fhir/Task", method="GET").respond_with_handler(self._search)
        fake.server.expect_request("/fhir/Task", method="POST").respond_with_handler(self._create)
        one = re.compile(r"^/fhir/Task/[A-Za-z0-9.-]+$")
        fake.server.expect_request(one, method="GET").respond_with_handler(self._read)
        fake.server.expect_request(one, method="PUT").respond_with_handler(self._update)

    def _read(self, request: Request) -> Response:
        try:
            task = self.store.read("Task", request.path.rsplit("/", 1)[1])
        except FhirNotFoundError:
            return Response(json.dumps(NOT_FOUND), status=404, content_type=FHIR_JSON)
        return Response(json.dumps(task), content_type=FHIR_JSON)

    def _update(self, request: Request) -> Response:
        task = json.loads(request.get_data())
        try:
            written = self.store.update(task, request.headers.get("If-Match"))
        except FhirConflictError:
            return Response(json.dumps(CONFLICT), status=412, content_type=FHIR_JSON)
        return Response(json.dumps(written.resource), content_type=FHIR_JSON)

    def _search(self, request: Request) -> Response:
        pairs = parse_qsl(request.query_string.decode())
        self.queries.append(pairs)
        found = list(self.store.search("Task", pairs))
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in found],
        }
        return Response(json.dumps(bundle), content_type=FHIR_JSON)

    def _create(self, request: Request) -> Response:
        task = json.loads(request.get_data())
        written = self.store.create(task, request.headers.get("If-None-Exist"))
        return Response(
            json.dumps(written.resource),
            status=201 if written.status == "created" else 200,
            content_type=FHIR_JSON,
            headers={"Location": f"Task/{written.id}/_history/1"},
        )

    def seed(self, patient_id: str, received: datetime, reference: str) -> str:
        new = NewRequest("access", Requester("Ada Testperson"), reference=reference)
        new = NewRequest(**{**new.__dict__, "patient_id": patient_id})
        submitted = submit_request(self.store, Actor(None), new, now=received, audit=Trail())
        return submitted.request.task_id


@pytest.fixture
def tasks(fake_ehr: FakeEhr) -> TaskEndpoint:
    return TaskEndpoint(fake_ehr)


@pytest.fixture
def desk(client: FlaskClient, fake_ehr: FakeEhr, tasks: TaskEndpoint) -> FlaskClient:
    fake_ehr.granted_scope = SCOPE
    assert launch(client, fake_ehr).status_code == 303
    return client


def _csrf(client: FlaskClient) -> str:
    text = client.get("/privacy").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert found
    return found[1]


def _form(token: str, **fields: str) -> dict[str, str]:
    now = datetime.now(ZONE) - timedelta(minutes=5)
    return {
        "csrf_token": token,
        "kind": "deletion",
        "name": "Ada Testperson",
        "birth_date": "1985-04-12",
        "email": "ada.t@example.com",
        "phone": "(337) 555-0102",
        "details": "Please delete my marketing photos.",
        "verified_with": "photo-id",
        "verified_at": now.strftime("%Y-%m-%dT%H:%M"),
        "confirm": "yes",
        **fields,
    }


def test_the_tab_lists_this_clients_requests_overdue_in_red(desk, fake_ehr, tasks) -> None:
    now = datetime.now(ZONE)
    late = tasks.seed(fake_ehr.patient_id, now - timedelta(days=40), "late")
    fresh = tasks.seed(fake_ehr.patient_id, now, "fresh")
    other = tasks.seed("someone-else", now, "other")
    page = desk.get("/privacy")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="nav-privacy"' in html
    assert html.index(f"request-{late}") < html.index(f"request-{fresh}")
    assert re.search(rf'id="request-{late}" class="overdue"', html)
    assert "overdue-flag" in html
    assert f"request-{other}" not in html
    assert ("patient", f"Patient/{fake_ehr.patient_id}") in tasks.queries[-1]


def test_a_new_request_verified_in_person_at_the_desk(desk, fake_ehr, tasks) -> None:
    response = desk.post("/privacy/new", data=_form(_csrf(desk)))
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/privacy/?saved=")
    [task] = tasks.store.of_type("Task")
    assert task["for"] == {"reference": f"Patient/{fake_ehr.patient_id}"}
    assert task["businessStatus"]["coding"][0]["code"] == "identity-verified"
    assert task["note"][0]["authorReference"] == {"reference": fake_ehr.fhir_user}
    inputs = {i["type"]["text"]: i.get("valueString") for i in task["input"]}
    assert inputs["verified-with"] == "Government photo ID"
    assert inputs["requester.phone"] == "+13375550102"
    assert task["restriction"]["period"]["end"] == (date.today() + timedelta(days=30)).isoformat()
    assert "privacy request received" in [e.get("outcomeDesc") for e in fake_ehr.audit_events]
    shown = desk.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="request-saved"' in shown and f"request-{task['id']}" in shown


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"kind": ""}, "kind", "Choose the kind"),
        ({"confirm": ""}, "confirm", "Confirm that you checked"),
        ({"verified_with": "a-hunch"}, "verified_with", "how the requester"),
        ({"verified_at": "yesterday"}, "verified_at", "when the identity"),
        ({"birth_date": "12/04/1985"}, "birth_date", "YYYY-MM-DD"),
        ({"email": "not-an-email"}, "email", "not a valid e-mail address"),
        ({"name": ""}, "name", "is required"),
        ({"details": "card 4111 1111 1111 1111"}, "details", "payment card"),
    ],
)
def test_bad_input_is_shown_with_the_reason_and_nothing_written(
    desk, tasks, fields, field, message
) -> None:
    response = desk.post("/privacy/new", data=_form(_csrf(desk), **fields))
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    error = re.search(rf'<span id="err-{field}" class="error-text" role="alert">([^<]*)<', html)
    assert error and message in error[1]
    assert "4111 1111" not in html.split('id="details"')[0]
    assert tasks.store.of_type("Task") == []


def test_a_verification_in_the_future_is_refused(desk, tasks) -> None:
    later = (datetime.now(ZONE) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = desk.post("/privacy/new", data=_form(_csrf(desk), verified_at=later))
    assert response.status_code == 400
    assert tasks.store.of_type("Task") == []


def test_another_client_is_refused(desk, tasks) -> None:
    response = desk.post("/privacy/new", data=_form(_csrf(desk), patient="someone-else"))
    assert response.status_code == 403
    assert tasks.store.of_type("Task") == []


def test_a_read_only_session_records_nothing(client, fake_ehr, tasks) -> None:
    fake_ehr.granted_scope = "openid fhirUser launch patient/*.rs"
    assert launch(client, fake_ehr).status_code == 303
    page = client.get("/privacy").get_data(as_text=True)
    assert 'id="read-only-notice"' in page
    response = client.post("/privacy/new", data=_form(_csrf(client)))
    assert response.status_code == 403
    assert tasks.store.of_type("Task") == []


# -- a request's page and its actions (smart_app.request_page) --------------------------------


def _seed_request(
    tasks: TaskEndpoint,
    patient_id: str | None,
    *,
    kind: str = "access",
    verified: bool = True,
    email: str | None = "ada.t@example.com",
) -> str:
    now = datetime.now(ZONE) - timedelta(hours=1)
    verifications = (Verification("in-person", "Practitioner/desk", now),) if verified else ()
    new = NewRequest(
        kind,
        Requester("Ada Testperson", date(1990, 4, 1), email),
        reference=uuid.uuid4().hex,
        patient_id=patient_id,
        verifications=verifications,
    )
    return submit_request(tasks.store, Actor(None), new, now=now, audit=Trail()).request.task_id


def _page(client: FlaskClient, url: str) -> tuple[str, str, str]:
    """The page's HTML, its CSRF token and the Task version its forms carry."""
    html = client.get(url).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    version = re.search(r'name="version" value="([^"]*)"', html)
    assert token
    return html, token[1], version[1] if version else ""


def _task(tasks: TaskEndpoint, task_id: str) -> dict:
    return tasks.store.read("Task", task_id)


def _status(tasks: TaskEndpoint, task_id: str) -> str:
    return _task(tasks, task_id)["businessStatus"]["coding"][0]["code"]


def test_each_row_opens_the_requests_page(desk, fake_ehr, tasks) -> None:
    task_id = _seed_request(tasks, fake_ehr.patient_id)
    listing = desk.get("/privacy").get_data(as_text=True)
    assert f'id="open-{task_id}" href="/privacy/requests/{task_id}"' in listing
    html, _, version = _page(desk, f"/privacy/requests/{task_id}")
    assert 'id="request-kind">Right of access<' in html
    assert "Ada Testperson" in html and "ada.t@example.com" in html
    assert "in-person by Practitioner/desk" in html
    assert version == "1"
    assert 'id="process"' in html and 'id="extend"' in html and 'id="deny"' in html
    assert 'id="verify"' not in html  # already verified
    assert 'id="download-package"' not in html  # nothing to hand over yet


def test_another_clients_request_is_refused_and_audited(desk, fake_ehr, tasks) -> None:
    other = _seed_request(tasks, "someone-else")
    unmatched = _seed_request(tasks, None)
    _, token, _ = _page(desk, "/privacy")
    for task_id in (other, unmatched):
        assert desk.get(f"/privacy/requests/{task_id}").status_code == 403
        response = desk.post(
            f"/privacy/requests/{task_id}/deny",
            data={"csrf_token": token, "reason": "no", "version": "1"},
        )
        assert response.status_code == 403
        assert _status(tasks, task_id) != "denied"
        assert (
            desk.post(
                f"/privacy/requests/{task_id}/package", data={"csrf_token": token}
            ).status_code
            == 403
        )
    refused = [e for e in fake_ehr.audit_events if e.get("outcome") != "0"]
    descriptions = [e.get("outcomeDesc", "") for e in refused]
    assert sum("outside the launch context" in d for d in descriptions) >= 3
    assert sum("not matched to the launched client" in d for d in descriptions) >= 3


def test_verify_in_person_names_the_signed_in_practitioner(desk, fake_ehr, tasks) -> None:
    task_id = _seed_request(tasks, fake_ehr.patient_id, verified=False)
    html, token, version = _page(desk, f"/privacy/requests/{task_id}")
    assert 'id="verify"' in html and 'id="process"' not in html
    when = (datetime.now(ZONE) - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M")
    form = {"csrf_token": token, "version": version, "verified_at": when, "verified_with": "known"}
    refused = desk.post(f"/privacy/requests/{task_id}/verify", data=form)
    assert refused.status_code == 400
    assert re.search(r'id="err-confirm" class="error-text" role="alert">Confirm', refused.text)
    done = desk.post(f"/privacy/requests/{task_id}/verify", data={**form, "confirm": "yes"})
    assert done.status_code == 303
    assert done.headers["Location"] == f"/privacy/requests/{task_id}?done=verify#action-done"
    task = _task(tasks, task_id)
    assert task["businessStatus"]["coding"][0]["code"] == "identity-verified"
    [note] = task["note"]
    assert note["authorReference"] == {"reference": fake_ehr.fhir_user}
    assert "Known to staff" in note["text"]
    assert 'id="action-done"' in desk.get(done.headers["Location"]).text


def test_every_action_needs_the_csrf_token(desk, fake_ehr, tasks) -> None:
    task_id = _seed_request(tasks, fake_ehr.patient_id)
    for action in ("verify", "process", "extend", "deny", "complete", "package"):
        response = desk.post(f"/privacy/requests/{task_id}/{action}", data={"reason": "x"})
        assert response.status_code == 400
        assert 'data-error-code="csrf_failed"' in response.text
    assert _task(tasks, task_id)["meta"]["versionId"] == "1"
    assert desk.get(f"/privacy/requests/{task_id}/package").status_code == 405


def test_a_stale_page_is_refused_and_shown_as_it_is_now(desk, fake_ehr, tasks) -> None:
    task_id = _seed_request(tasks, fake_ehr.patient_id)
    _, token, version = _page(desk, f"/privacy/requests/{task_id}")
    extend(tasks.store, Actor(None), task_id, "Records in storage", now=datetime.now(ZONE),
           audit=Trail())  # fmt: skip
    for action, data in (("deny", {"reason": "Not ours"}), ("process", {})):
        response = desk.post(
            f"/privacy/requests/{task_id}/{action}",
            data={"csrf_token": token, "version": version, **data},
        )
        assert response.status_code == 409
        assert (
            'id="stale-notice"' in response.text and "changed since you opened it" in response.text
        )
        assert "Records in storage" in response.text  # the request as it is now
    assert _status(tasks, task_id) == "identity-verified"


def test_extend_once_and_the_requester_is_emailed(
    desk, fake_ehr, tasks, smtp_catcher, monkeypatch
) -> None:
    for key, value in smtp_catcher.config().items():
        monkeypatch.setenv(f"SYMFHIR_SMTP_{key.upper()}", str(value))
    task_id = _seed_request(tasks, fake_ehr.patient_id)
    _, token, version = _page(desk, f"/privacy/requests/{task_id}")
    empty = desk.post(
        f"/privacy/requests/{task_id}/extend",
        data={"csrf_token": token, "version": version, "reason": "  "},
    )
    assert empty.status_code == 400 and "Give the reason" in empty.text
    done = desk.post(
        f"/privacy/requests/{task_id}/extend",
        data={"csrf_token": token, "version": version, "reason": "Archived photos to retrieve"},
    )
    assert done.status_code == 303 and "done=extend#" in done.headers["Location"]
    [mail] = smtp_catcher.wait_for(1)
    assert mail.to == ["ada.t@example.com"] or "ada.t@example.com" in str(mail.to)
    assert "Archived photos to retrieve" in mail.text
    assert (
        _task(tasks, task_id)["restriction"]["period"]["end"]
        == (date.today() + timedelta(days=60)).isoformat()
    )
    html, _, version = _page(desk, f"/privacy/requests/{task_id}")
    assert 'id="extend"' not in html and "Archived photos to retrieve" in html
    again = desk.post(
        f"/privacy/requests/{task_id}/extend",
        data={"csrf_token": token, "version": version, "reason": "More"},
    )
    assert again.status_code == 400 and 'id="action-error"' in again.text


def test_close_as_denied_or_completed_by_hand(desk, fake_ehr, tasks) -> None:
    denied = _seed_request(tasks, fake_ehr.patient_id)
    _, token, version = _page(desk, f"/privacy/requests/{denied}")
    empty = desk.post(
        f"/privacy/requests/{denied}/deny", data={"csrf_token": token, "version": version}
    )
    assert empty.status_code == 400 and 'id="err-deny_reason"' in empty.text
    response = desk.post(
        f"/privacy/requests/{denied}/deny",
        data={"csrf_token": token, "version": version, "reason": "Not a client of the spa"},
    )
    assert response.status_code == 303
    task = _task(tasks, denied)
    assert task["businessStatus"]["coding"][0]["code"] == "denied"
    assert task["output"][0]["valueString"] == "Not a client of the spa"
    closed = desk.get(f"/privacy/requests/{denied}").text
    assert 'id="request-actions"' not in closed

    by_hand = _seed_request(tasks, fake_ehr.patient_id)
    _, token, version = _page(desk, f"/privacy/requests/{by_hand}")
    form = {"csrf_token": token, "version": version, "close_as": "partially-completed"}
    assert desk.post(f"/privacy/requests/{by_hand}/complete", data=form).status_code == 400
    form["summary"] = "Paper copy of the intake handed over"
    assert desk.post(f"/privacy/requests/{by_hand}/complete", data=form).status_code == 303
    task = _task(tasks, by_hand)
    assert task["businessStatus"]["coding"][0]["code"] == "partially-completed"
    assert {"type": {"text": "summary"}, "valueString": form["summary"]} in task["output"]


def test_an_unknown_action_or_task(desk, fake_ehr, tasks) -> None:
    task_id = _seed_request(tasks, fake_ehr.patient_id)
    _, token, _ = _page(desk, f"/privacy/requests/{task_id}")
    response = desk.post(f"/privacy/requests/{task_id}/explode", data={"csrf_token": token})
    assert response.status_code == 404
    assert desk.get("/privacy/requests/nope").status_code == 404


def _package(folder: Path, task_id: str) -> tuple[str, bytes]:
    name = f"access-{task_id}-20261201T101500-{secrets.token_hex(8)}.zip"
    content = b"PK\x05\x06" + bytes(18)  # an empty ZIP
    (folder / name).write_bytes(content)
    return name, content


def _access_handler(folder: Path, name: str):
    def handle(client, actor, request, *, now, audit):
        attachment = {"contentType": "application/zip", "url": name, "title": "Access package"}
        return Outcome(
            COMPLETED,
            (TaskOutput("access-package", attachment=attachment),),
            "Access package ready: 3 records, 0 photos",
        )

    return handle


def test_process_then_hand_the_package_over_at_the_desk(
    desk, fake_ehr, tasks, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("SYMFHIR_EXPORT_DIR", str(tmp_path))
    task_id = _seed_request(tasks, fake_ehr.patient_id)
    name, content = _package(tmp_path, task_id)
    monkeypatch.setattr(processing, "handler_for", lambda kind, handlers: _access_handler(
        tmp_path, name))  # fmt: skip
    _, token, version = _page(desk, f"/privacy/requests/{task_id}")
    done = desk.post(
        f"/privacy/requests/{task_id}/process", data={"csrf_token": token, "version": version}
    )
    assert done.status_code == 303
    html = desk.get(done.headers["Location"]).text
    assert "Access package ready: 3 records" in html
    assert 'id="request-status">completed' in html
    assert 'id="download-package"' in html

    response = desk.post(f"/privacy/requests/{task_id}/package", data={"csrf_token": token})
    assert response.status_code == 200
    assert response.data == content
    assert response.headers["Content-Type"] == "application/zip"
    assert response.headers["Content-Disposition"] == f"attachment; filename={name}"
    assert response.headers["Cache-Control"] == "no-store"
    response.close()  # the streamed file
    [disclosure] = [e for e in fake_ehr.audit_events if e.get("subtype", [{}])[0].get("code")
                    == "Disclosure" or e.get("type", {}).get("code") == "110106"]  # fmt: skip
    recipient = [a for a in disclosure["agent"] if a.get("requestor") is False][-1]
    assert recipient["who"] == {"reference": f"Patient/{fake_ehr.patient_id}"}
    assert disclosure["purposeOfEvent"][0]["coding"][0]["code"] == "PATRQT"
    assert "access package handed over: desk" in json.dumps(disclosure)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "access-x.zip", "gone"])
def test_the_desk_hands_over_only_a_package_symfhir_wrote(
    desk, fake_ehr, tasks, tmp_path, monkeypatch, name
) -> None:
    monkeypatch.setenv("SYMFHIR_EXPORT_DIR", str(tmp_path / "packages"))
    (tmp_path / "packages").mkdir()
    task_id = _seed_request(tasks, fake_ehr.patient_id)
    if name == "gone":  # the right shape, but the file is no longer there
        name = f"access-{task_id}-20261201T101500-{secrets.token_hex(8)}.zip"
    output = Outcome(COMPLETED, (TaskOutput("access-package", attachment={"url": name}),), "done")
    complete(tasks.store, Actor(None), task_id, output, now=datetime.now(ZONE), audit=Trail())
    _, token, _ = _page(desk, f"/privacy/requests/{task_id}")
    response = desk.post(f"/privacy/requests/{task_id}/package", data={"csrf_token": token})
    assert response.status_code == 404
    assert 'id="action-error"' in response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert not [e for e in fake_ehr.audit_events if e.get("type", {}).get("code") == "110106"]
