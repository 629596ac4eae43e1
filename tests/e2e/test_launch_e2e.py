"""In real headless Chromium: the sandbox EHR launches symfhir for a client, the practitioner
sees the client's summary, and the FHIR server holds the audit trail of that view."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

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


def _audit_count(fhir: str, patient: str) -> int:
    answer = requests.get(
        f"{fhir}/AuditEvent",
        params={"entity": f"Patient/{patient}", "_summary": "count"},
        timeout=30,
    )
    answer.raise_for_status()
    return int(answer.json()["total"])


def test_a_launch_without_write_rights_runs_read_only_and_is_still_audited(stack, browser):
    patient = _patient_id(stack["fhir"], "C0002")
    before = _audit_count(stack["fhir"], patient)
    read_only = "openid fhirUser launch offline_access patient/*.rs"
    browser.get(_launch_url(stack, patient, scope=read_only))
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "summary-title")))
    shot(browser, "03-read-only")
    assert browser.find_element(By.ID, "read-only-notice").is_displayed()
    # No AuditEvent create in the launch: written through the app's Backend Services channel.
    assert _audit_count(stack["fhir"], patient) == before + 1


def _client_with_a_name_of_its_own(fhir: str) -> tuple[str, str]:
    """A copy of a sample client under a family name no other patient has: a server that
    already holds thousands of synthetic clients (benchmarks) shares the sample's names."""
    template = requests.get(f"{fhir}/Patient/{_patient_id(fhir, 'C0004')}", timeout=30).json()
    family = f"Standalone{uuid.uuid4().hex[:10]}"
    copy = {k: v for k, v in template.items() if k not in ("id", "meta", "text")}
    copy["identifier"] = [{"system": CLIENT_SYSTEM, "value": f"E2E-{family}"}]
    copy["name"] = [{**template["name"][0], "family": family}]
    answer = requests.post(f"{fhir}/Patient", json=copy, timeout=30)
    answer.raise_for_status()
    return answer.json()["id"], family


def test_standalone_launch_signs_in_at_the_ehr_and_picks_the_client(stack, browser):
    patient, family = _client_with_a_name_of_its_own(stack["fhir"])
    browser.get(f"{stack['app']}/launch")
    wait = WebDriverWait(browser, 30)
    wait.until(ec.element_to_be_clickable((By.ID, "launch-server-1"))).click()
    wait.until(ec.presence_of_element_located((By.ID, "sign-in")))
    browser.find_element(By.ID, "sandbox-patient-name").send_keys(family)
    browser.find_element(By.ID, "find-patient-submit").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "sandbox-patient"), family))
    Select(browser.find_element(By.ID, "sandbox-patient")).select_by_value(patient)
    shot(browser, "05-standalone-sign-in")
    browser.find_element(By.ID, "sign-in-submit").click()
    wait.until(ec.presence_of_element_located((By.ID, "summary-title")))
    assert browser.current_url.startswith(stack["app"])
    assert family in browser.find_element(By.ID, "patient-banner").text


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
