"""The privacy officer's dashboard: a user-level launch without a patient (EHR or standalone),
every open request by due date with the overdue in red, paging, PHI-free AuditEvents, and no
patient page in such a session."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from symfhir.privacy.model import Requester
from symfhir.privacy.requests import NewRequest, deny, submit_request
from symfhir.workspace.actor import Actor
from tests.app.fake_ehr import FakeEhr
from tests.app.test_privacy import TaskEndpoint
from tests.unit.fake_fhir import Trail

ZONE = ZoneInfo("America/Chicago")
OFFICER_SCOPE = "openid fhirUser launch user/Task.rs user/AuditEvent.c"


@pytest.fixture
def tasks(fake_ehr: FakeEhr) -> TaskEndpoint:
    return TaskEndpoint(fake_ehr)


def _officer_launch(client: FlaskClient, fake: FakeEhr, launch: str | None = "L2") -> str:
    fake.patient_id = None
    fake.granted_scope = OFFICER_SCOPE
    query = {"iss": fake.iss} | ({"launch": launch} if launch else {})
    response = client.get("/privacy-dashboard/launch?" + urlencode(query))
    assert response.status_code == 302, response.data
    location = response.headers["Location"]
    code, params = fake.authorize(location)
    done = client.get("/callback?" + urlencode({"code": code, "state": params["state"]}))
    assert done.status_code == 303, done.data
    assert done.headers["Location"] == "/privacy-dashboard/"
    return location


@pytest.fixture
def officer(client: FlaskClient, fake_ehr: FakeEhr, tasks: TaskEndpoint) -> FlaskClient:
    _officer_launch(client, fake_ehr)
    return client


def _seed(tasks: TaskEndpoint, days_ago: int, reference: str, patient: str | None = None) -> str:
    received = datetime.now(ZONE) - timedelta(days=days_ago)
    new = NewRequest("access", Requester("Ada Testperson"), reference=reference)
    new = NewRequest(**{**new.__dict__, "patient_id": patient})
    return submit_request(
        tasks.store, Actor(None), new, now=received, audit=Trail()
    ).request.task_id


def test_the_launch_asks_for_user_scopes_and_no_patient(client, fake_ehr, tasks) -> None:
    location = _officer_launch(client, fake_ehr)
    scopes = parse_qs(urlsplit(location).query)["scope"][0].split()
    assert "user/Task.rs" in scopes and "launch" in scopes
    assert "launch/patient" not in scopes
    assert not any(s.startswith("patient/") for s in scopes)


def test_a_standalone_launch_picks_no_patient(client, fake_ehr, tasks) -> None:
    location = _officer_launch(client, fake_ehr, launch=None)
    scopes = parse_qs(urlsplit(location).query)["scope"][0].split()
    assert "launch" not in scopes and "launch/patient" not in scopes


def test_every_open_request_by_due_date_overdue_in_red(officer, fake_ehr, tasks) -> None:
    late = _seed(tasks, 35, "late", patient="p7")
    fresh = _seed(tasks, 1, "fresh")
    soon = _seed(tasks, 26, "soon")
    closed = _seed(tasks, 40, "closed")
    deny(tasks.store, Actor(None), closed, "withdrawn", now=datetime.now(ZONE), audit=Trail())
    html = officer.get("/privacy-dashboard/").get_data(as_text=True)
    positions = [html.index(f'id="request-{t}"') for t in (late, soon, fresh)]
    assert positions == sorted(positions)
    assert f'id="request-{late}" class="overdue"' in html
    assert "5 days overdue" in html
    assert f'id="request-{soon}" class="due-soon"' in html
    assert f"request-{closed}" not in html
    assert "Patient/p7" in html and "Ada Testperson" not in html
    assert 'id="nav-privacy-dashboard"' in html and 'id="nav-summary-page"' not in html
    query = dict(tasks.queries[-1])
    assert "patient" not in query and query["status"] == "requested,received,accepted,in-progress"


def test_pages_of_fifty(officer, tasks) -> None:
    for number in range(55):
        _seed(tasks, number % 30, f"r{number}")
    first = officer.get("/privacy-dashboard/").get_data(as_text=True)
    assert first.count('<tr id="request-') == 50 and 'id="page-next"' in first
    second = officer.get("/privacy-dashboard/?page=2").get_data(as_text=True)
    assert second.count('<tr id="request-') == 5 and 'id="page-previous"' in second
    assert officer.get("/privacy-dashboard/?page=x").status_code == 200


def test_the_listing_is_audited_without_a_patient(officer, fake_ehr, tasks) -> None:
    _seed(tasks, 3, "one")
    officer.get("/privacy-dashboard/")
    [event] = [
        e for e in fake_ehr.audit_events if e.get("outcomeDesc") == "privacy requests listed"
    ]
    assert "entity" not in event
    assert event["agent"][0]["who"] == {"reference": fake_ehr.fhir_user}


def test_no_patient_page_opens_in_an_officer_session(officer) -> None:
    assert officer.get("/").status_code == 401
    assert officer.get("/privacy").status_code == 401


def test_the_dashboard_needs_a_user_level_launch(client, launched) -> None:
    assert client.get("/privacy-dashboard/").status_code == 401
