"""The Privacy tab (/privacy): the launched client's requests by due date (overdue in red) and
"New privacy request" taken at the desk with the identity verified in person; a read-only
session records nothing; another client is refused."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from werkzeug import Request, Response

from symfhir.privacy.model import Requester
from symfhir.privacy.requests import NewRequest, submit_request
from symfhir.workspace.actor import Actor
from tests.app.conftest import launch
from tests.app.fake_ehr import FHIR_JSON, FakeEhr
from tests.unit.fake_fhir import Trail
from tests.unit.privacy_fake import FakeServer

ZONE = ZoneInfo("America/Chicago")
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
