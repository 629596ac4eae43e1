"""In real headless Chromium: the sandbox EHR launches symfhir for a client, the practitioner
sees the client's summary, and the FHIR server holds the audit trail of that view."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import shot

pytestmark = pytest.mark.e2e

CLIENT_SYSTEM = "http://symfhir.org/fhir/sid/symetrie-studio-spa/client-id"


def _patient_id(fhir: str, client_id: str) -> str:
    answer = requests.get(
        f"{fhir}/Patient", params={"identifier": f"{CLIENT_SYSTEM}|{client_id}"}, timeout=30
    )
    answer.raise_for_status()
    (entry,) = answer.json()["entry"]
    return entry["resource"]["id"]


def _launch_url(stack: dict[str, str], patient: str, **extra: str) -> str:
    answer = requests.post(
        f"{stack['sandbox']}/api/launch",
        json={"patient": patient, "launch_url": f"{stack['app']}/launch", **extra},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()["url"]


def test_ehr_launch_shows_the_clients_summary(stack, browser):
    patient = _patient_id(stack["fhir"], "C0001")
    browser.get(_launch_url(stack, patient))
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "summary-title")))
    shot(browser, "01-summary")
    assert browser.current_url.startswith(stack["app"])
    assert "Quillfeather" in browser.find_element(By.ID, "patient-banner").text
    consents = browser.find_elements(By.CSS_SELECTOR, "#consents tr[id^=consent-]")
    assert len(consents) == 12  # every consent kind, including "never asked"
    statuses = {row.get_attribute("data-status") for row in consents}
    assert "given" in statuses
    # The app wrote an AuditEvent for the view, on the server, about this client.
    audits = requests.get(
        f"{stack['fhir']}/AuditEvent",
        params={"entity": f"Patient/{patient}", "_count": 50},
        timeout=30,
    ).json()
    assert audits.get("total", len(audits.get("entry", []))) >= 1


def test_a_launch_from_an_untrusted_iss_is_refused_without_contacting_it(stack, browser):
    browser.get(f"{stack['app']}/launch?iss=https://evil.example/fhir&launch=abc")
    error = WebDriverWait(browser, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "section#error"))
    )
    shot(browser, "02-untrusted-iss")
    assert error.get_attribute("data-error-code") == "untrusted_iss"
    assert browser.current_url.startswith(stack["app"])


def test_a_launch_without_write_rights_runs_read_only(stack, browser):
    patient = _patient_id(stack["fhir"], "C0002")
    read_only = "openid fhirUser launch offline_access patient/*.rs"
    browser.get(_launch_url(stack, patient, scope=read_only))
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "summary-title")))
    shot(browser, "03-read-only")
    assert browser.find_element(By.ID, "read-only-notice").is_displayed()


def test_launch_inside_the_ehr_frame(stack, browser):
    """The EHR shows the app in an iframe: the launch, the session cookie and the app's
    frame-ancestors CSP must all work framed by the EHR's origin."""
    patient = _patient_id(stack["fhir"], "C0003")
    url = _launch_url(stack, patient)
    browser.get(f"{stack['sandbox']}/ehr?{urlencode({'app': url})}")
    frame = WebDriverWait(browser, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "iframe"))
    )
    browser.switch_to.frame(frame)
    try:
        WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "summary-title")))
        assert browser.find_element(By.ID, "patient-banner").is_displayed()
    finally:
        browser.switch_to.default_content()
    shot(browser, "04-in-ehr-frame")
