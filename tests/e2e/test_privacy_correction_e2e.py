"""In real headless Chromium, a correction (HIPAA amendment) end to end: the client asks on the
public portal to correct their phone (the form's correction fields), confirms the codes read
from the local SMTP server and the SMS outbox, the privacy officer matches and processes the
request in the SMART app (a standalone user-level launch, the request's page), and a
practitioner launched for that client accepts it on the Privacy tab through the sandbox's
proxy (the EHR's real token): the Patient on HAPI has the new phone as a new version, with a
Provenance, and the requester's status page says done. Then a second correction is denied on
the request page's generic Deny, which carries the client's rights, and the Privacy tab offers
the client's statement of disagreement."""

from __future__ import annotations

import secrets
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from symfhir.fhir import FhirClient, ServerConfig
from symfhir.privacy.model import Requester, Verification
from symfhir.privacy.requests import NewRequest, submit_request
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor
from tests.e2e.conftest import shot
from tests.e2e.test_launch_e2e import _launch_url
from tests.e2e.test_privacy_portal_e2e import (  # noqa: F401 - portal is a fixture
    _fill_form,
    _officer_processes,
    _patient,
    _status,
    _task_of,
    _unique_phone,
    _verify_in_portal,
    _wait_for,
    portal,
)
from tests.unit.fake_fhir import Trail

pytestmark = pytest.mark.e2e


def _inputs(task: dict[str, Any]) -> dict[str, str]:
    return {i["type"]["text"]: i.get("valueString", "") for i in task.get("input", [])}


def _privacy_tab(browser: Any, stack: dict[str, str], patient: str) -> None:
    """A practitioner's EHR launch for the client (the sandbox's real token), then the tab."""
    browser.get(_launch_url(stack, patient))
    _wait_for(browser, "summary-title")
    browser.find_element(By.ID, "nav-privacy").click()
    _wait_for(browser, "new-request-form")


def test_a_phone_correction_from_the_portal_to_the_amended_record(
    portal: dict,  # noqa: F811 - the fixture imported above
    browser: Any,
) -> None:
    email = f"robin.{uuid.uuid4().hex[:10]}@example.com"
    shown, number = _unique_phone()
    new_shown, new_number = _unique_phone()
    while new_number == number:
        new_shown, new_number = _unique_phone()
    birth = "1981-05-1" + str(secrets.randbelow(10))
    with FhirClient(ServerConfig(base_url=portal["fhir"])) as fhir:
        patient = _patient(fhir, email, shown, birth)
        before = fhir.read("Patient", patient)["meta"]["versionId"]

    # The portal: the correction's fields appear with the kind (a static script).
    _fill_form(browser, "correction", "Robin Portalwright", birth, email, shown)
    fields = browser.find_element(By.ID, "correction-fields")
    assert fields.is_displayed()
    Select(browser.find_element(By.ID, "correction_field")).select_by_value("telecom")
    browser.find_element(By.ID, "proposed").send_keys(new_shown)
    browser.find_element(By.ID, "reason").send_keys("I changed my mobile number.")
    shot(browser, "correction-01-form")
    Select(browser.find_element(By.ID, "kind")).select_by_value("access")
    assert not fields.is_displayed()  # another kind hides them
    Select(browser.find_element(By.ID, "kind")).select_by_value("correction")
    status_link = _verify_in_portal(browser, portal, email, number, "correction")
    task = _task_of(portal["fhir"], "correction", email)
    assert _status(task) == "identity-verified"
    assert _inputs(task)["resource"] == "Patient.telecom"
    assert _inputs(task)["proposed"] == new_shown

    # The officer matches and processes it: the proposal awaits the practitioner.
    _officer_processes(browser, portal, task["id"], patient, "correction")
    assert browser.find_element(By.ID, "request-status").text == "in-progress"

    # The practitioner, launched for the client, accepts it on the Privacy tab.
    _privacy_tab(browser, portal, patient)
    article = _wait_for(browser, f"correction-{task['id']}")
    assert "Patient.telecom" in article.text and new_shown in article.text
    shot(browser, "correction-02-review")
    browser.find_element(By.ID, f"accept-{task['id']}").click()
    answered = _wait_for(browser, "correction-answered")
    assert "accepted: the record was amended" in answered.text
    shot(browser, "correction-03-accepted")

    with FhirClient(ServerConfig(base_url=portal["fhir"])) as fhir:
        amended = fhir.read("Patient", patient)
        done = fhir.read("Task", task["id"])
        provenances = fhir.search_all("Provenance", {"target": f"Patient/{patient}"})
    phones = [t["value"] for t in amended["telecom"] if t["system"] == "phone"]
    assert phones == [new_number]
    assert int(amended["meta"]["versionId"]) > int(before)  # a new version; the old is history
    assert [t["value"] for t in amended["telecom"] if t["system"] == "email"] == [email]
    assert _status(done) == "completed"
    (provenance,) = provenances
    authors = [a["who"].get("reference", "") for a in provenance["agent"]]
    assert any(a.startswith("Practitioner/") for a in authors)  # the practitioner launched
    assert any(e["what"]["reference"] == f"Task/{task['id']}" for e in provenance["entity"])

    # The requester's status page says done.
    browser.get(status_link)
    _wait_for(browser, "status")
    assert browser.find_element(By.ID, "status-words").text == "Done"
    assert "We corrected your record" in browser.find_element(By.ID, "status-summary").text
    assert "Patient.telecom" not in browser.page_source  # plain words, no FHIR paths
    shot(browser, "correction-04-status")


def test_a_denied_correction_carries_the_clients_rights(
    portal: dict,  # noqa: F811 - the fixture imported above
    browser: Any,
) -> None:
    zone = load_spa().zone
    received = datetime.now(zone) - timedelta(hours=2)
    email = f"robin.{uuid.uuid4().hex[:10]}@example.com"
    shown, _ = _unique_phone()
    with FhirClient(ServerConfig(base_url=portal["fhir"])) as fhir:
        patient = _patient(fhir, email, shown, "1981-06-01")
        new = NewRequest(
            "correction",
            Requester("Robin Portalwright", date(1981, 6, 1), email),
            inputs={
                "resource": "Patient.birthDate",
                "proposed": "1981-06-02",
                "reason": "My birth certificate says the 2nd.",
            },
            reference=uuid.uuid4().hex,
            verifications=(Verification("in-person", "Practitioner/desk", received),),
        )
        task_id = submit_request(fhir, Actor(None), new, now=received, audit=Trail())
        task_id = task_id.request.task_id

    _officer_processes(browser, portal, task_id, patient, "correction-denied")
    # The officer denies it on the request's page: the generic Deny of a correction is
    # deny_correction, so the denial carries the client's rights.
    form = browser.find_element(By.ID, "deny-reason")
    form.send_keys("Our record matches the identity document you showed at intake.")
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, "deny").click()
    # The Process step's page also had an action-done: wait for the Deny's page to replace it.
    WebDriverWait(browser, 15).until(ec.staleness_of(page))
    done = _wait_for(browser, "action-done")
    assert "rights" in done.text
    assert browser.find_element(By.ID, "request-status").text == "denied"
    shot(browser, "correction-05-denied")

    answer = requests.get(f"{portal['fhir']}/Task/{task_id}", timeout=30)
    outputs = {o["type"]["text"]: o.get("valueString") for o in answer.json()["output"]}
    assert outputs["denial-reason"].startswith("Our record matches")
    assert "statement disagreeing" in outputs["disagreement-rights"]
    assert "complain" in outputs["disagreement-rights"]

    # The desk: the Privacy tab offers the client's statement of disagreement.
    _privacy_tab(browser, portal, patient)
    article = _wait_for(browser, f"denied-{task_id}")
    assert "File a statement of disagreement" in article.text
    assert browser.find_element(By.ID, f"statement-{task_id}").is_enabled()
    shot(browser, "correction-06-disagreement-form")
    WebDriverWait(browser, 5).until(ec.element_to_be_clickable((By.ID, f"disagree-{task_id}")))

    browser.find_element(By.ID, f"statement-{task_id}").send_keys(
        "My birth certificate shows the 2nd of June; please keep this with my record."
    )
    browser.find_element(By.ID, f"confirm-{task_id}").click()
    browser.find_element(By.ID, f"disagree-{task_id}").click()
    answered = _wait_for(browser, "correction-answered")
    assert "disputed" in answered.text
    statements = requests.get(
        f"{portal['fhir']}/DocumentReference",
        params={"subject": f"Patient/{patient}"},
        timeout=30,
    ).json()["entry"]
    related = [r["reference"] for r in statements[0]["resource"]["context"]["related"]]
    assert f"Task/{task_id}" in related
    browser.get(_launch_url(portal, patient))
    _wait_for(browser, "summary-title")
    assert "disputed by the client" in browser.find_element(By.ID, "patient-disputed").text
    shot(browser, "correction-07-disputed")
