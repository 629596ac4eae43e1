"""The privacy officer's dashboard: a user-level launch without a patient (EHR or standalone),
every open request by due date with the overdue in red, paging, PHI-free AuditEvents, no
patient page in such a session, and the officer's scopes: enough to answer a deletion (checked
against mappings/retention.yaml, and run for real against the fake EHR), and a session
granted less told which scopes it lacks."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from werkzeug import Request, Response

from smart_app.config import DEFAULTS
from symfhir.privacy import processing
from symfhir.privacy.model import COMPLETED, Outcome, Requester, Verification
from symfhir.privacy.requests import NewRequest, deny, record_verification, submit_request
from symfhir.privacy.retention import CONSENT_KIND_SYSTEM
from symfhir.privacy.retention_rules import load_retention
from symfhir.workspace.actor import Actor
from tests.app.fake_ehr import FHIR_JSON, FakeEhr
from tests.app.test_privacy import TaskEndpoint
from tests.unit.fake_fhir import Trail

ZONE = ZoneInfo("America/Chicago")
OFFICER_SCOPE = DEFAULTS["SYMFHIR_OFFICER_SCOPES"]
#: What the officer's session could do before it answered deletions: read, step requests.
READ_ONLY_OFFICER = "openid fhirUser launch user/*.rs user/Task.u user/AuditEvent.c"


@pytest.fixture
def tasks(fake_ehr: FakeEhr) -> TaskEndpoint:
    return TaskEndpoint(fake_ehr)


def _officer_launch(
    client: FlaskClient, fake: FakeEhr, launch: str | None = "L2", granted: str = OFFICER_SCOPE
) -> str:
    fake.patient_id = None
    fake.granted_scope = granted
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
    assert {"user/*.rs", "user/Task.u", "user/AuditEvent.c", "launch"} <= set(scopes)
    assert "launch/patient" not in scopes
    assert not any(s.startswith("patient/") for s in scopes)
    # Never a wildcard write: requests and the audit trail are not deleted, and nothing but
    # AuditEvents and Provenances (of consent withdrawals) is created.
    writes = _writes(scopes)
    assert "*" not in writes
    assert writes["Task"] == "u" and writes["AuditEvent"] == "c"
    assert {rtype for rtype, letters in writes.items() if "c" in letters} == {
        "AuditEvent",
        "Provenance",
    }


def _writes(scopes: list[str]) -> dict[str, str]:
    """Resource type -> the write letters (of c, u, d) its user/ scopes grant."""
    out: dict[str, str] = {}
    for scope in scopes:
        match = re.fullmatch(r"user/(\*|[A-Za-z]+)\.([cruds]+)", scope)
        if match and set(match[2]) & set("cud"):
            letters = out.get(match[1], "") + "".join(c for c in match[2] if c in "cud")
            out[match[1]] = "".join(sorted(set(letters)))
    return out


def test_the_officer_may_do_what_deletions_and_withdrawals_need_and_no_more() -> None:
    policy = load_retention()
    # A deletion deletes (and $expunges) every type the rules let go, now or once its years
    # have passed; updates what it keeps but unlinks, minimizes or strips, and tags the
    # Patient ($meta-add/$meta-delete). Restriction and opt-out: a Consent update and its
    # Provenance. The requests themselves: Task updates; every step: an AuditEvent.
    needed: dict[str, set[str]] = {}
    for rule in policy.rules:
        for rtype in rule.types if not rule.keep.forever else ():
            needed.setdefault(rtype, set()).add("d")
    for rtype in [*policy.unlink, *policy.minimize, *policy.strip, "Patient", "Consent"]:
        needed.setdefault(rtype, set()).add("u")
    needed["Provenance"].add("c")
    needed |= {"Task": {"u"}, "AuditEvent": {"c"}}
    granted = _writes(OFFICER_SCOPE.split())
    assert granted == {rtype: "".join(sorted(letters)) for rtype, letters in needed.items()}
    # What the rules keep forever is never deleted, whatever the officer does.
    forever = {rtype for rule in policy.rules if rule.keep.forever for rtype in rule.types}
    assert forever == {"Task", "AuditEvent"}
    assert not any("d" in granted[rtype] for rtype in forever)


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


# -- a request's page and its actions in the officer's session --------------------------------


def _unmatched(tasks: TaskEndpoint, email: str = "ada.t@example.com") -> str:
    when = datetime.now(ZONE) - timedelta(hours=2)
    new = NewRequest(
        "access",
        Requester("Ada Testperson", date(1990, 4, 1), email),
        reference=uuid.uuid4().hex,
        verifications=(Verification("in-person", "Practitioner/desk", when),),
    )
    return submit_request(tasks.store, Actor(None), new, now=when, audit=Trail()).request.task_id


def _form(client: FlaskClient, task_id: str) -> tuple[str, dict[str, str]]:
    html = client.get(f"/privacy-dashboard/requests/{task_id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    version = re.search(r'name="version" value="([^"]*)"', html)
    assert token
    return html, {"csrf_token": token[1], "version": version[1] if version else ""}


@pytest.fixture
def patient_reads(fake_ehr: FakeEhr) -> None:
    def read(request: Request) -> Response:
        wanted = request.path.rsplit("/", 1)[1]
        found = [r for r in fake_ehr.resources if r.get("id") == wanted]
        if not found:
            return Response("{}", status=404, content_type=FHIR_JSON)
        return Response(json.dumps(found[0]), content_type=FHIR_JSON)

    fake_ehr.server.expect_request(
        re.compile(r"^/fhir/Patient/[A-Za-z0-9.-]+$"), method="GET"
    ).respond_with_handler(read)


def test_each_row_opens_the_requests_page_unmatched_too(officer, tasks) -> None:
    task_id = _unmatched(tasks)
    listing = officer.get("/privacy-dashboard/").get_data(as_text=True)
    assert f'id="open-{task_id}" href="/privacy-dashboard/requests/{task_id}"' in listing
    html, _ = _form(officer, task_id)
    assert 'id="request-client">not matched yet' in html
    assert 'id="match"' in html and 'id="process"' not in html
    assert 'id="download-package"' not in html  # handed over only at the desk


def test_match_is_automatic_when_verified_details_fit_one_client(officer, fake_ehr, tasks) -> None:
    fake_ehr.resources[0]["telecom"] = [{"system": "email", "value": "Ada.T@example.com"}]
    task_id = _unmatched(tasks)
    _, form = _form(officer, task_id)
    response = officer.post(f"/privacy-dashboard/requests/{task_id}/match", data=form)
    assert response.status_code == 303 and "done=match" in response.headers["Location"]
    task = tasks.store.read("Task", task_id)
    assert task["for"] == {"reference": f"Patient/{fake_ehr.patient_id or 'p1'}"}
    html, _ = _form(officer, task_id)
    assert 'id="process"' in html and 'id="match"' not in html


def test_a_person_picks_among_the_candidates_and_the_choice_is_recorded(
    officer, fake_ehr, tasks, patient_reads
) -> None:
    task_id = _unmatched(tasks, email="someone.else@example.com")
    _, form = _form(officer, task_id)
    shown = officer.post(f"/privacy-dashboard/requests/{task_id}/match", data=form)
    assert shown.status_code == 200
    html = shown.get_data(as_text=True)
    assert 'id="assign-form"' in html
    assert 'name="patient_id" value="p1"' in html and "matches birth date" in html
    assert "for" not in tasks.store.read("Task", task_id)
    none = officer.post(f"/privacy-dashboard/requests/{task_id}/assign", data=form)
    assert none.status_code == 400 and 'id="err-patient_id"' in none.get_data(as_text=True)
    picked = officer.post(
        f"/privacy-dashboard/requests/{task_id}/assign", data={**form, "patient_id": "p1"}
    )
    assert picked.status_code == 303
    task = tasks.store.read("Task", task_id)
    assert task["for"] == {"reference": "Patient/p1"}
    assert task["note"][-1]["text"] == f"Matched to Patient/p1 by {fake_ehr.fhir_user}"
    assert task["note"][-1]["authorReference"] == {"reference": fake_ehr.fhir_user}


def test_the_officer_processes_a_request(officer, fake_ehr, tasks, monkeypatch) -> None:
    task_id = _seed(tasks, 3, uuid.uuid4().hex, patient="p1")
    record_verification(
        tasks.store,
        Actor(None),
        task_id,
        Verification("in-person", "Practitioner/desk", datetime.now(ZONE)),
        now=datetime.now(ZONE),
        audit=Trail(),
    )
    seen = []

    def handle(client, actor, request, *, now, audit):
        seen.append((request.task_id, request.patient_id, actor.fhir_user))
        return Outcome(COMPLETED, summary="Answered: 12 records")

    monkeypatch.setattr(processing, "handler_for", lambda kind, handlers: handle)
    _, form = _form(officer, task_id)
    response = officer.post(f"/privacy-dashboard/requests/{task_id}/process", data=form)
    assert response.status_code == 303
    assert seen == [(task_id, "p1", fake_ehr.fhir_user)]
    html = officer.get(response.headers["Location"]).get_data(as_text=True)
    assert "Processed: the outcome is below." in html and "Answered: 12 records" in html
    assert 'id="request-status">completed' in html and 'id="request-actions"' not in html


def test_a_read_only_officer_session_acts_on_nothing(client, fake_ehr, tasks) -> None:
    # The EHR granted reading Tasks and writing AuditEvents, nothing else.
    _officer_launch(
        client, fake_ehr, granted="openid fhirUser launch user/Task.rs user/AuditEvent.c"
    )
    task_id = _unmatched(tasks)
    html, form = _form(client, task_id)
    assert 'id="read-only-notice"' in html and 'id="request-actions"' not in html
    response = client.post(
        f"/privacy-dashboard/requests/{task_id}/deny", data={**form, "reason": "No"}
    )
    assert response.status_code == 403
    assert "the EHR did not grant Task.u" in response.get_data(as_text=True)
    assert tasks.store.read("Task", task_id)["meta"]["versionId"] == "1"


def test_a_patient_launch_cannot_reach_the_officers_pages(client, launched, tasks) -> None:
    task_id = _unmatched(tasks)
    assert client.get(f"/privacy-dashboard/requests/{task_id}").status_code == 401


def test_the_requests_page_shows_overdue_in_red_and_due_soon(officer, tasks) -> None:
    late = _seed(tasks, 35, uuid.uuid4().hex)
    soon = _seed(tasks, 26, uuid.uuid4().hex)
    late_html, _ = _form(officer, late)
    assert re.search(r'id="request-due" class="overdue">[0-9-]+ <strong', late_html)
    assert "5 days overdue" in late_html
    soon_html, _ = _form(officer, soon)
    assert 'id="request-due" class="due-soon"' in soon_html and "(due in 4 days)" in soon_html


def test_a_kind_needing_writes_the_session_lacks_says_which(
    client, fake_ehr, tasks, monkeypatch
) -> None:
    _officer_launch(client, fake_ehr, granted=READ_ONLY_OFFICER)
    officer = client
    task_id = _seed(tasks, 3, uuid.uuid4().hex, patient="p1")
    record_verification(
        tasks.store,
        Actor(None),
        task_id,
        Verification("in-person", "Practitioner/desk", datetime.now(ZONE)),
        now=datetime.now(ZONE),
        audit=Trail(),
    )

    def handle(client, actor, request, *, now, audit):
        actor.require([("Observation", "d"), ("Task", "u")])  # as the deletion handler does
        raise AssertionError("not reached")

    monkeypatch.setattr(processing, "handler_for", lambda kind, handlers: handle)
    _, form = _form(officer, task_id)
    response = officer.post(f"/privacy-dashboard/requests/{task_id}/process", data=form)
    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert "This session may not do this: the EHR did not grant Observation.d." in html
    assert 'id="request-status">in-progress' in html  # run it again once granted


# -- a deletion processed in the officer's session, on the fake EHR ---------------------------


class RecordEndpoint:
    """A client's record on the fake EHR, as a FHIR server keeps it: reads, searches (every
    resource of the type: a deletion keeps only what is the client's), versioned updates,
    deletes, and the instance operations a deletion uses. Routes the fake EHR and the Task
    endpoint already answer (Task, AuditEvent create, Patient search) stay theirs."""

    def __init__(self, fake: FakeEhr) -> None:
        self.fake = fake
        self.stored: dict[str, dict] = {}
        self.deleted: list[str] = []
        self.expunged: list[str] = []
        self.updated: list[str] = []
        path = re.compile(r"^/fhir/[A-Z][A-Za-z]+(/[A-Za-z0-9.-]+(/\$[a-z-]+)?)?$")
        fake.server.expect_request(path).respond_with_handler(self._handle)

    def add(self, resource: dict) -> str:
        ref = f"{resource['resourceType']}/{resource['id']}"
        self.stored[ref] = {**resource, "meta": {"versionId": "1"}}
        return ref

    def _handle(self, request: Request) -> Response:
        parts = request.path.split("/")[2:]
        ref = "/".join(parts[:2])
        if request.method == "GET" and len(parts) == 1:
            return self._answer(self._searchset(parts[0]))
        if (
            len(parts) == 3
            and request.method == "POST"
            and ref in self.stored | dict.fromkeys(self.deleted)
        ):
            return self._operation(ref, parts[2], json.loads(request.get_data()))
        current = self.stored.get(ref)
        if current is None or len(parts) != 2:
            return self._answer({"resourceType": "OperationOutcome"}, 404)
        if request.method == "GET":
            return self._answer(current)
        if request.method == "DELETE":
            self.deleted.append(ref)
            del self.stored[ref]
            return self._answer({"resourceType": "OperationOutcome"})
        if request.method == "PUT":
            if request.headers.get("If-Match") != f'W/"{current["meta"]["versionId"]}"':
                return self._answer({"resourceType": "OperationOutcome"}, 412)
            version = str(int(current["meta"]["versionId"]) + 1)
            body = json.loads(request.get_data())
            self.stored[ref] = {**body, "meta": {**body.get("meta", {}), "versionId": version}}
            self.updated.append(ref)
            return self._answer(self.stored[ref])
        return self._answer({"resourceType": "OperationOutcome"}, 405)

    def _searchset(self, resource_type: str) -> dict:
        if resource_type == "AuditEvent":  # those the app wrote, as the server keeps them
            found = [{**e, "id": f"a{n}"} for n, e in enumerate(self.fake.audit_events)]
        else:
            found = [r for r in self.stored.values() if r["resourceType"] == resource_type]
        entries = [{"resource": r, "search": {"mode": "match"}} for r in found]
        return {"resourceType": "Bundle", "type": "searchset", "entry": entries}

    def _operation(self, ref: str, name: str, parameters: dict) -> Response:
        if name == "$expunge":
            self.expunged.append(ref)
        elif name in ("$meta-add", "$meta-delete"):
            tags = parameters["parameter"][0]["valueMeta"]["tag"]
            meta = self.stored[ref]["meta"]
            kept = [t for t in meta.get("tag", []) if t not in tags]
            meta["tag"] = kept + tags if name == "$meta-add" else kept
        else:
            return self._answer({"resourceType": "OperationOutcome"}, 400)
        return self._answer({"resourceType": "Parameters"})

    @staticmethod
    def _answer(document: dict, status: int = 200) -> Response:
        return Response(json.dumps(document), status=status, content_type=FHIR_JSON)


@pytest.fixture
def record(fake_ehr: FakeEhr, tasks: TaskEndpoint) -> RecordEndpoint:
    """Client p9: contact details, a recent treatment (kept 7 years), a marketing consent and
    an emergency contact (both may go now)."""
    endpoint = RecordEndpoint(fake_ehr)
    p9 = {"reference": "Patient/p9"}
    endpoint.add(
        {
            "resourceType": "Patient",
            "id": "p9",
            "birthDate": "1984-02-03",
            "telecom": [{"system": "email", "value": "del.p9@example.com"}],
        }
    )
    endpoint.add(
        {
            "resourceType": "Procedure",
            "id": "proc9",
            "status": "completed",
            "subject": p9,
            "performedDateTime": "2025-06-01T14:00:00-05:00",
        }
    )
    endpoint.add(
        {
            "resourceType": "Consent",
            "id": "mail9",
            "status": "active",
            "category": [{"coding": [{"system": CONSENT_KIND_SYSTEM, "code": "marketing_email"}]}],
            "patient": p9,
            "dateTime": "2025-05-01",
        }
    )
    endpoint.add({"resourceType": "RelatedPerson", "id": "rp9", "patient": p9})
    return endpoint


def _deletion(tasks: TaskEndpoint) -> str:
    when = datetime.now(ZONE) - timedelta(days=2)
    new = NewRequest(
        "deletion",
        Requester("Avery Testperson", date(1984, 2, 3), "del.p9@example.com"),
        reference=uuid.uuid4().hex,
        patient_id="p9",
        verifications=(Verification("in-person", "Practitioner/desk", when),),
    )
    return submit_request(tasks.store, Actor(None), new, now=when, audit=Trail()).request.task_id


def test_the_officer_completes_a_deletion_within_the_retention_rules(
    officer, fake_ehr, tasks, record
) -> None:
    task_id = _deletion(tasks)
    _, form = _form(officer, task_id)
    response = officer.post(f"/privacy-dashboard/requests/{task_id}/process", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)
    html = officer.get(response.headers["Location"]).get_data(as_text=True)
    assert "Processed: the outcome is below." in html
    assert 'id="request-status">partially-completed' in html
    task = tasks.store.read("Task", task_id)
    outputs = {o["type"]["text"]: o.get("valueString") for o in task["output"]}
    summary = outputs["summary"]
    assert summary.startswith("2 deleted, ") and "2032-06-01" in summary
    assert summary in html and "del.p9@example.com" not in summary
    report = json.loads(outputs["deletion-report"])
    outcome = {item["resource"]: item["outcome"] for item in report["items"]}
    assert outcome["Consent/mail9"] == "deleted" and outcome["RelatedPerson/rp9"] == "deleted"
    assert outcome["Procedure/proc9"] == "kept"
    # What went is deleted and its history erased; the client stays, without contact
    # details, tagged for the retention run; nothing else was touched.
    assert sorted(record.deleted) == ["Consent/mail9", "RelatedPerson/rp9"]
    assert {"Consent/mail9", "RelatedPerson/rp9", "Patient/p9"} <= set(record.expunged)
    patient = record.stored["Patient/p9"]
    assert "telecom" not in patient and patient["meta"]["tag"]
    assert record.stored["Procedure/proc9"]["meta"]["versionId"] == "1"
    assert record.updated == ["Patient/p9"]


def test_a_session_without_the_write_scopes_is_told_which_and_changes_nothing(
    client, fake_ehr, tasks, record
) -> None:
    _officer_launch(client, fake_ehr, granted=READ_ONLY_OFFICER)
    task_id = _deletion(tasks)
    _, form = _form(client, task_id)
    response = client.post(f"/privacy-dashboard/requests/{task_id}/process", data=form)
    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert "This session may not do this: the EHR did not grant " in html
    assert "Consent.d" in html and "RelatedPerson.d" in html
    assert 'id="request-status">in-progress' in html  # run it again once granted
    assert record.deleted == [] and record.updated == [] and record.expunged == []
    assert "telecom" in record.stored["Patient/p9"]
