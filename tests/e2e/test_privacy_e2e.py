"""In real headless Chromium: at the desk, the practitioner records a privacy request for the
launched client (identity verified in person) on the Privacy tab, and the request is a Task on
the FHIR server; the privacy officer signs in without a client (a standalone user-level launch)
and sees every open request by due date, an overdue one in red; the officer processes an
access request from its page (the real access handler, through the sandbox's proxy, on HAPI)
and the client's Privacy tab shows it completed with the "Download package" button."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta

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
from tests.e2e.test_launch_e2e import CLIENT_SYSTEM, _launch_url, _patient_id
from tests.unit.fake_fhir import Trail

pytestmark = pytest.mark.e2e


def _wait_for(browser, element_id: str):
    return WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, element_id)))


def test_the_desk_records_a_request_on_the_privacy_tab(stack, browser) -> None:
    patient = _patient_id(stack["fhir"], "C0003")
    browser.get(_launch_url(stack, patient))
    _wait_for(browser, "summary-title")
    browser.find_element(By.ID, "nav-privacy").click()
    _wait_for(browser, "new-request-form")
    Select(browser.find_element(By.ID, "kind")).select_by_value("access")
    browser.find_element(By.ID, "name").send_keys("Avery Quillfeather")
    browser.execute_script(
        "arguments[0].value = '1985-04-12'", browser.find_element(By.ID, "birth_date")
    )
    browser.find_element(By.ID, "email").send_keys(f"desk.{uuid.uuid4().hex[:8]}@example.com")
    browser.find_element(By.CSS_SELECTOR, "input[name=verified_with][value=photo-id]").click()
    browser.find_element(By.ID, "confirm").click()
    browser.find_element(By.ID, "submit-request").click()
    saved = _wait_for(browser, "request-saved")
    shot(browser, "privacy-01-tab")
    task_id = re.search(r"Task/(\S+)\)", saved.text)[1]
    assert browser.find_element(By.ID, f"request-{task_id}")

    with FhirClient(ServerConfig(base_url=stack["fhir"])) as fhir:
        task = fhir.read("Task", task_id)
    assert task["for"] == {"reference": f"Patient/{patient}"}
    assert task["businessStatus"]["coding"][0]["code"] == "identity-verified"
    assert task["note"][0]["authorReference"]["reference"].startswith("Practitioner/")


def test_the_officer_dashboard_shows_the_overdue_in_red(stack, browser) -> None:
    zone = load_spa().zone
    long_ago = datetime.now(zone) - timedelta(days=5 * 365)
    with FhirClient(ServerConfig(base_url=stack["fhir"])) as fhir:
        new = NewRequest(
            "deletion",
            Requester("Officer Test", date(1980, 1, 1), "late@example.com"),
            reference=uuid.uuid4().hex,
        )
        late = submit_request(fhir, Actor(None), new, now=long_ago, audit=Trail())
    late_id = late.request.task_id

    browser.get(f"{stack['app']}/privacy-dashboard/launch?iss={stack['iss']}")
    _wait_for(browser, "sign-in")
    assert not browser.find_elements(By.ID, "sandbox-patient")  # no client is picked
    browser.find_element(By.ID, "sign-in-submit").click()
    _wait_for(browser, "dashboard-title")
    shot(browser, "privacy-02-dashboard")
    row = browser.find_element(By.ID, f"request-{late_id}")
    assert "overdue" in row.get_attribute("class")
    color = row.find_element(By.TAG_NAME, "td").value_of_css_property("color")
    assert color in ("rgba(176, 0, 32, 1)", "rgb(176, 0, 32)")
    assert "Officer Test" not in browser.page_source
    # The site navigation only (a busy server adds the list's own paging links).
    nav = [a.get_attribute("id") for a in browser.find_elements(By.CSS_SELECTOR, "nav a[id^=nav-]")]
    assert nav == ["nav-privacy-dashboard"]


def test_the_officer_processes_an_access_request_and_the_desk_can_hand_it_over(
    stack, browser
) -> None:
    zone = load_spa().zone
    received = datetime.now(zone) - timedelta(days=2)
    with FhirClient(ServerConfig(base_url=stack["fhir"])) as fhir:
        # A client of this test's own (HAPI is shared): a small record, exported for real.
        patient = fhir.create(
            {
                "resourceType": "Patient",
                "identifier": [{"system": CLIENT_SYSTEM, "value": f"E2E-{uuid.uuid4().hex}"}],
                "name": [{"family": "Ellery", "given": ["Rowan"]}],
                "birthDate": "1979-03-03",
            }
        ).id
        new = NewRequest(
            "access",
            Requester("Rowan Ellery", date(1979, 3, 3), f"e2e.{uuid.uuid4().hex[:8]}@example.com"),
            reference=uuid.uuid4().hex,
            patient_id=patient,
            verifications=(Verification("in-person", "Practitioner/desk", received),),
        )
        task_id = submit_request(
            fhir, Actor(None), new, now=received, audit=Trail()
        ).request.task_id

    # The officer: the EHR launches the dashboard with no patient (the launcher's "Open the
    # privacy dashboard"), then the request's page from the dashboard.
    answer = requests.post(
        f"{stack['sandbox']}/api/launch",
        json={"launch_url": f"{stack['app']}/privacy-dashboard/launch"},
        timeout=30,
    )
    answer.raise_for_status()
    browser.get(answer.json()["url"])
    _wait_for(browser, "dashboard-title")
    # HAPI is shared: the request may be on a later page of the list, so open it by its URL.
    browser.get(f"{stack['app']}/privacy-dashboard/requests/{task_id}")
    _wait_for(browser, "request-title")
    assert "identity-verified" in browser.find_element(By.ID, "request-status").text
    browser.find_element(By.ID, "process").click()
    WebDriverWait(browser, 180).until(ec.presence_of_element_located((By.ID, "action-done")))
    shot(browser, "privacy-03-processed")
    assert browser.find_element(By.ID, "request-status").text == "completed"
    assert "Access package ready" in browser.find_element(By.ID, "request-outputs").text
    assert not browser.find_elements(By.ID, "download-package")  # handed over at the desk

    with FhirClient(ServerConfig(base_url=stack["fhir"])) as fhir:
        task = fhir.read("Task", task_id)
    assert task["businessStatus"]["coding"][0]["code"] == "completed"
    [package] = [o for o in task["output"] if o["type"]["text"] == "access-package"]
    assert package["valueAttachment"]["contentType"] == "application/zip"

    # The desk: the client's chart, the Privacy tab, the request completed with its package.
    browser.get(_launch_url(stack, patient))
    _wait_for(browser, "summary-title")
    browser.find_element(By.ID, "nav-privacy").click()
    _wait_for(browser, f"open-{task_id}").click()
    _wait_for(browser, "request-title")
    assert browser.find_element(By.ID, "request-status").text == "completed"
    button = browser.find_element(By.ID, "download-package")
    assert button.text == "Download package"
    shot(browser, "privacy-04-desk-package")
