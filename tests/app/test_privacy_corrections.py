"""The Privacy tab's correction section: a proposal awaiting review is shown with Accept and
Deny (reason), each a CSRF-protected POST of the Task version shown calling one workflow of
symfhir.privacy.correction_review, then the requester e-mailed; another client's request and
a read-only session are refused; the summary marks a disputed record."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from smart_app import privacy_corrections
from symfhir.privacy.correction import AWAITING, AWAITING_TARGET
from symfhir.privacy.correction_review import CorrectionResult
from symfhir.privacy.model import IN_PROGRESS, Outcome, Requester, TaskOutput, Verification
from symfhir.privacy.notices import Notice
from symfhir.privacy.requests import NewRequest, record_progress, submit_request
from symfhir.workspace.actor import Actor
from symfhir.workspace.disputes import DISAGREEMENT_CODE, DOCUMENT_SYSTEM
from tests.app.conftest import launch
from tests.app.fake_ehr import FakeEhr
from tests.app.test_privacy import SCOPE, ZONE, TaskEndpoint
from tests.unit.fake_fhir import Trail


@pytest.fixture
def tasks(fake_ehr: FakeEhr) -> TaskEndpoint:
    return TaskEndpoint(fake_ehr)


@pytest.fixture
def desk(client: FlaskClient, fake_ehr: FakeEhr, tasks: TaskEndpoint) -> FlaskClient:
    fake_ehr.granted_scope = SCOPE
    assert launch(client, fake_ehr).status_code == 303
    return client


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """The workflows the routes call, recorded; the e-mail sent, recorded."""
    made: list[tuple[str, dict[str, Any]]] = []

    def workflow(name: str):
        def run(client, actor, task_id, **kw):
            made.append((name, {"task_id": task_id, "actor": actor.fhir_user, **kw}))
            notice = Notice("ada.t@example.com", f"Your correction request: {name}", "text")
            return CorrectionResult(None, None, notice)  # type: ignore[arg-type]

        return run

    monkeypatch.setattr(privacy_corrections, "accept_correction", workflow("accept"))
    monkeypatch.setattr(privacy_corrections, "deny_correction", workflow("deny"))
    monkeypatch.setattr(
        "symfhir.privacy.commands.send_email",
        lambda to, subject, text: made.append(("email", {"to": to, "subject": subject})),
    )
    return made


def seed(tasks: TaskEndpoint, patient_id: str, resource: str = "Patient.telecom") -> str:
    now = datetime.now(ZONE) - timedelta(hours=1)
    new = NewRequest(
        "correction",
        Requester("Ada Testperson", date(1990, 4, 1), "ada.t@example.com"),
        inputs={"resource": resource, "proposed": "(337) 555-0142", "reason": "new number"},
        reference=uuid.uuid4().hex,
        patient_id=patient_id,
        verifications=(Verification("in-person", "Practitioner/desk", now),),
    )
    task_id = submit_request(tasks.store, Actor(None), new, now=now, audit=Trail()).request.task_id
    outcome = Outcome(
        IN_PROGRESS, (TaskOutput("correction-target", reference=f"Patient/{patient_id}"),), AWAITING
    )
    record_progress(tasks.store, Actor(None), task_id, outcome, now=now, audit=Trail())
    return task_id


def tab(client: FlaskClient) -> tuple[str, str]:
    html = client.get("/privacy").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token
    return html, token[1]


def test_a_proposal_is_shown_with_accept_and_deny(desk, fake_ehr, tasks) -> None:
    task_id = seed(tasks, fake_ehr.patient_id)
    html, _ = tab(desk)
    section = html.split('id="corrections"')[1]
    assert f'id="correction-{task_id}"' in section
    assert "Patient.telecom" in section and "(337) 555-0142" in section
    assert f'id="accept-{task_id}"' in section and f'id="deny-{task_id}"' in section
    version = tasks.store.read("Task", task_id)["meta"]["versionId"]
    assert f'name="version" value="{version}"' in section


def test_accept_calls_the_workflow_and_tells_the_requester(desk, fake_ehr, tasks, calls) -> None:
    task_id = seed(tasks, fake_ehr.patient_id)
    _, token = tab(desk)
    response = desk.post(
        f"/privacy/corrections/{task_id}/accept",
        data={"csrf_token": token, "version": "2", "value": "337-555-0142"},
    )
    assert response.status_code == 303
    assert "correction=accept-emailed" in response.headers["Location"]
    (name, kw), (sent, mail) = calls
    assert name == "accept" and sent == "email"
    assert kw["task_id"] == task_id and kw["version"] == "2"
    assert kw["change"].value == "337-555-0142" and kw["change"].action is None
    assert kw["actor"] == fake_ehr.fhir_user
    assert mail["to"] == "ada.t@example.com"
    shown = desk.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="correction-answered"' in shown and "e-mailed the outcome" in shown


def test_deny_needs_a_reason(desk, fake_ehr, tasks, calls) -> None:
    task_id = seed(tasks, fake_ehr.patient_id)
    _, token = tab(desk)
    refused = desk.post(
        f"/privacy/corrections/{task_id}/deny", data={"csrf_token": token, "reason": " "}
    )
    assert refused.status_code == 400 and calls == []
    response = desk.post(
        f"/privacy/corrections/{task_id}/deny",
        data={"csrf_token": token, "reason": "Accurate and complete."},
    )
    assert response.status_code == 303
    assert calls[0][0] == "deny" and calls[0][1]["reason"] == "Accurate and complete."


def test_without_the_csrf_token_nothing_is_called(desk, fake_ehr, tasks, calls) -> None:
    task_id = seed(tasks, fake_ehr.patient_id)
    response = desk.post(f"/privacy/corrections/{task_id}/accept", data={"version": "2"})
    assert response.status_code == 400 and calls == []


def test_another_clients_correction_is_refused(desk, tasks, calls) -> None:
    task_id = seed(tasks, "someone-else")
    html, token = tab(desk)
    assert f"correction-{task_id}" not in html
    response = desk.post(f"/privacy/corrections/{task_id}/accept", data={"csrf_token": token})
    assert response.status_code == 403 and calls == []


def test_the_real_workflow_refuses_a_read_only_session(client, fake_ehr, tasks) -> None:
    fake_ehr.granted_scope = "openid fhirUser launch patient/*.rs"
    assert launch(client, fake_ehr).status_code == 303
    task_id = seed(tasks, fake_ehr.patient_id)
    html, token = tab(client)
    assert f'id="correction-{task_id}"' in html
    response = client.post(f"/privacy/corrections/{task_id}/accept", data={"csrf_token": token})
    assert response.status_code == 403
    assert tasks.store.read("Task", task_id)["businessStatus"]["coding"][0]["code"] == IN_PROGRESS


def test_the_summary_marks_a_disputed_record(client, fake_ehr) -> None:
    fake_ehr.granted_scope += " patient/DocumentReference.rs"
    assert launch(client, fake_ehr).status_code == 303
    fake_ehr.resources.append(
        {
            "resourceType": "DocumentReference",
            "id": "statement-1",
            "status": "current",
            "type": {"coding": [{"system": DOCUMENT_SYSTEM, "code": DISAGREEMENT_CODE}]},
            "subject": {"reference": f"Patient/{fake_ehr.patient_id}"},
            "context": {
                "related": [
                    {"reference": f"Patient/{fake_ehr.patient_id}"},
                    {"reference": "AllergyIntolerance/a-1"},
                ]
            },
        }
    )
    fake_ehr.resources.append(
        {
            "resourceType": "AllergyIntolerance",
            "id": "a-1",
            "patient": {"reference": f"Patient/{fake_ehr.patient_id}"},
            "code": {"text": "Lidocaine"},
        }
    )
    page = client.get("/").get_data(as_text=True)
    assert 'id="patient-disputed"' in page and "disputed by" in page
    allergies = page.split('id="allergies"')[1].split("</section>")[0]
    assert 'data-ref="AllergyIntolerance/a-1">disputed by the client</strong>' in allergies


def test_a_request_in_free_text_asks_the_practitioner_for_the_record(
    desk, fake_ehr, tasks, calls
) -> None:
    now = datetime.now(ZONE) - timedelta(hours=1)
    new = NewRequest(
        "correction",
        Requester("Ada Testperson", date(1990, 4, 1), "ada.t@example.com"),
        details="My phone number is now (337) 555-0142.",
        reference=uuid.uuid4().hex,
        patient_id=fake_ehr.patient_id,
        verifications=(Verification("in-person", "Practitioner/desk", now),),
    )
    task_id = submit_request(tasks.store, Actor(None), new, now=now, audit=Trail()).request.task_id
    outcome = Outcome(IN_PROGRESS, (), AWAITING_TARGET)
    record_progress(tasks.store, Actor(None), task_id, outcome, now=now, audit=Trail())
    html, token = tab(desk)
    section = html.split(f'id="correction-{task_id}"')[1].split("</article>")[0]
    assert "not named by the requester" in section
    assert "My phone number is now (337) 555-0142." in section
    assert f'id="target-{task_id}"' in section
    response = desk.post(
        f"/privacy/corrections/{task_id}/accept",
        data={"csrf_token": token, "value": "337-555-0142", "target": "Patient.telecom"},
    )
    assert response.status_code == 303
    assert calls[0][1]["change"].target == "Patient.telecom"


# -- a denied correction: the client's statement of disagreement, typed at the desk ----------


def denied(tasks: TaskEndpoint, patient_id: str) -> str:
    from symfhir.privacy.correction_review import deny_correction

    task_id = seed(tasks, patient_id)
    now = datetime.now(ZONE) - timedelta(minutes=30)
    deny_correction(
        tasks.store, Actor(None), task_id, version=None, reason="Accurate.", now=now, audit=Trail()
    )
    return task_id


@pytest.fixture
def filed(monkeypatch: pytest.MonkeyPatch, calls: list) -> list[tuple[str, dict[str, Any]]]:
    def run(client, actor, task_id, statement, **kw):
        calls.append(("disagree", {"task_id": task_id, "statement": statement, **kw}))
        notice = Notice("ada.t@example.com", "Your statement of disagreement", "text")
        return CorrectionResult(None, "DocumentReference/s1", notice)  # type: ignore[arg-type]

    monkeypatch.setattr(privacy_corrections, "file_disagreement", run)
    return calls


def test_a_denied_correction_offers_a_statement_of_disagreement(desk, fake_ehr, tasks) -> None:
    task_id = denied(tasks, fake_ehr.patient_id)
    html, _ = tab(desk)
    assert f'id="correction-{task_id}"' not in html  # no longer awaiting review
    section = html.split('id="denied-corrections"')[1].split("</section>")[0]
    assert f'id="denied-{task_id}"' in section and "Accurate." in section
    assert "File a statement of disagreement" in section
    assert f'id="statement-{task_id}"' in section and f'id="disagree-{task_id}"' in section


def test_filing_the_statement_calls_the_workflow_and_tells_the_requester(
    desk, fake_ehr, tasks, filed
) -> None:
    task_id = denied(tasks, fake_ehr.patient_id)
    _, token = tab(desk)
    url = f"/privacy/corrections/{task_id}/disagree"
    for data in ({"statement": " ", "confirm": "yes"}, {"statement": "It is wrong."}):
        refused = desk.post(url, data={"csrf_token": token, **data})
        assert refused.status_code == 400 and filed == []
    done = desk.post(
        url,
        data={"csrf_token": token, "version": "3", "statement": "It is wrong.", "confirm": "yes"},
    )
    assert done.status_code == 303 and "correction=disagree-emailed" in done.headers["Location"]
    (name, kw), (sent, mail) = filed
    assert name == "disagree" and kw["task_id"] == task_id
    assert kw["statement"] == "It is wrong." and kw["version"] == "3"
    assert sent == "email" and mail["to"] == "ada.t@example.com"
    shown = desk.get(done.headers["Location"]).get_data(as_text=True)
    assert "disputed: the client" in shown
    assert "statement of disagreement is kept with the record" in shown


def test_a_statement_for_another_clients_request_is_refused(desk, tasks, filed) -> None:
    task_id = denied(tasks, "someone-else")
    html, token = tab(desk)
    assert f"denied-{task_id}" not in html
    response = desk.post(
        f"/privacy/corrections/{task_id}/disagree",
        data={"csrf_token": token, "statement": "x", "confirm": "yes"},
    )
    assert response.status_code == 403 and filed == []


def test_the_real_workflow_names_the_scope_a_session_lacks(desk, fake_ehr, tasks) -> None:
    # SCOPE grants no DocumentReference.c: the statement cannot be kept, and the page says
    # which grant is missing rather than failing halfway.
    task_id = denied(tasks, fake_ehr.patient_id)
    _, token = tab(desk)
    response = desk.post(
        f"/privacy/corrections/{task_id}/disagree",
        data={"csrf_token": token, "statement": "It is wrong.", "confirm": "yes"},
    )
    assert response.status_code == 403
    assert "did not grant DocumentReference.c" in response.get_data(as_text=True)
    task = tasks.store.read("Task", task_id)
    assert "statement-of-disagreement" not in str(task)


def test_the_request_pages_deny_of_a_correction_carries_the_clients_rights(
    desk, fake_ehr, tasks, calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real deny_correction (not the recorded one): the page's generic Deny.
    from symfhir.privacy import correction_review

    monkeypatch.setattr(privacy_corrections, "deny_correction", correction_review.deny_correction)
    sent: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        "symfhir.privacy.commands.send_email",
        lambda to, subject, text: sent.append((to, subject, text)),
    )
    task_id = seed(tasks, fake_ehr.patient_id)
    page = desk.get(f"/privacy/requests/{task_id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    version = tasks.store.read("Task", task_id)["meta"]["versionId"]
    done = desk.post(
        f"/privacy/requests/{task_id}/deny",
        data={"csrf_token": token, "version": version, "reason": "Our record is accurate."},
    )
    assert done.status_code == 303 and "done=deny-correction#" in done.headers["Location"]
    task = tasks.store.read("Task", task_id)
    assert task["businessStatus"]["coding"][0]["code"] == "denied"
    outputs = {o["type"]["text"]: o.get("valueString") for o in task["output"]}
    assert outputs["denial-reason"] == "Our record is accurate."
    assert "written statement disagreeing" in outputs["disagreement-rights"]
    assert "complain" in outputs["disagreement-rights"]
    ((to, subject, text),) = sent
    assert to == "ada.t@example.com" and subject == "Your correction request: denied"
    assert "Our record is accurate." in text and "statement disagreeing" in text
    shown = desk.get(done.headers["Location"]).get_data(as_text=True)
    assert "e-mailed the reason and their rights" in shown
