"""In real headless Chromium: the practitioner opens the intake of client C0001, changes the
skin type and saves; the FHIR server then holds the new QuestionnaireResponse and the
Observation extracted from it, both about that client."""

from __future__ import annotations

import uuid

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.e2e.conftest import shot
from tests.e2e.test_launch_e2e import _launch_url, _patient_id

pytestmark = pytest.mark.e2e

Q_URL = "http://symfhir.org/fhir/Questionnaire/spa-intake"
SKIN_II, SKIN_IV = "403222003", "403231003"


def _latest_response(fhir: str, patient: str) -> dict:
    answer = requests.get(
        f"{fhir}/QuestionnaireResponse",
        params={
            "subject": f"Patient/{patient}",
            "questionnaire": Q_URL,
            "_sort": "-_lastUpdated",
            "_count": 1,
        },
        timeout=30,
    )
    answer.raise_for_status()
    (entry,) = answer.json()["entry"]
    return entry["resource"]


def _answer(response: dict, link_id: str) -> list[dict]:
    for item in response.get("item", []):
        if item["linkId"] == link_id:
            return item.get("answer", [])
        found = _answer(item, link_id)
        if found:
            return found
    return []


def test_intake_change_is_saved_with_its_extracted_observation(stack, browser):
    patient = _patient_id(stack["fhir"], "C0001")
    browser.get(_launch_url(stack, patient))
    wait = WebDriverWait(browser, 30)
    wait.until(ec.presence_of_element_located((By.ID, "summary-title")))
    shot(browser, "intake-01-summary")

    browser.get(f"{stack['app']}/intake")
    wait.until(ec.presence_of_element_located((By.ID, "intake-form")))
    shot(browser, "intake-02-form")
    assert browser.find_element(By.ID, "q-client-family").get_attribute("value") == "Quillfeather"
    element = browser.find_element(By.ID, "q-skin-type")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    skin = Select(element)
    before = skin.first_selected_option.get_attribute("value")
    wanted = SKIN_IV if before != SKIN_IV else SKIN_II
    skin.select_by_value(wanted)
    shot(browser, "intake-03-changed")

    browser.find_element(By.ID, "intake-submit").click()
    saved = wait.until(ec.presence_of_element_located((By.ID, "intake-saved")))
    shot(browser, "intake-04-saved")
    assert "saved" in saved.text
    selected = Select(browser.find_element(By.ID, "q-skin-type")).first_selected_option
    assert selected.get_attribute("value") == wanted  # the form now shows the new response

    # Read the server directly, not through the app.
    response = _latest_response(stack["fhir"], patient)
    assert response["status"] == "completed"
    assert response["subject"]["reference"] == f"Patient/{patient}"
    assert response["author"]["reference"].startswith("Practitioner/")
    assert _answer(response, "skin.type")[0]["valueCoding"]["code"] == wanted
    assert _answer(response, "client.family") == [{"valueString": "Quillfeather"}]
    assert _answer(response, "prior.when") == [{"valueDate": "2024"}]  # a partial date survives
    observations = requests.get(
        f"{stack['fhir']}/Observation",
        params={"derived-from": f"QuestionnaireResponse/{response['id']}", "_count": 50},
        timeout=30,
    ).json()
    found = [e["resource"] for e in observations.get("entry", [])]
    assert found, "no Observation extracted from the new QuestionnaireResponse"
    assert all(o["subject"]["reference"] == f"Patient/{patient}" for o in found)
    codes = {c["code"] for o in found for c in o.get("valueCodeableConcept", {}).get("coding", [])}
    assert wanted in codes
    provenance = requests.get(
        f"{stack['fhir']}/Provenance",
        params={"target": f"QuestionnaireResponse/{response['id']}"},
        timeout=30,
    ).json()
    assert provenance.get("entry"), "no Provenance for the new QuestionnaireResponse"


def _allergies(fhir: str, patient: str, text: str) -> list[dict]:
    found = requests.get(
        f"{fhir}/AllergyIntolerance",
        params={"patient": f"Patient/{patient}", "_count": 200},
        timeout=30,
    ).json()
    return [
        e["resource"]
        for e in found.get("entry", [])
        if e["resource"].get("code", {}).get("text") == text
    ]


def test_an_allergy_added_then_removed_in_the_form(stack, browser):
    """Added: an AllergyIntolerance (SDC definition-based extraction); removed at the next
    intake: the same resource, now inactive. A name of its own per run, so a re-run against
    the same server starts clean."""
    substance = f"Chlorhexidine e2e {uuid.uuid4().hex[:6]}"
    patient = _patient_id(stack["fhir"], "C0001")
    browser.get(_launch_url(stack, patient))
    wait = WebDriverWait(browser, 30)
    wait.until(ec.presence_of_element_located((By.ID, "summary-title")))
    browser.get(f"{stack['app']}/intake")
    wait.until(ec.presence_of_element_located((By.ID, "intake-form")))
    # The first empty allergy row (the form always offers one after the answered ones).
    rows = browser.find_elements(By.CSS_SELECTOR, "input[name^='allergy.substance[']")
    empty = next(r for r in rows if not r.get_attribute("value"))
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", empty)
    empty.send_keys(substance)
    shot(browser, "intake-05-allergy-added")
    browser.find_element(By.ID, "intake-submit").click()
    wait.until(ec.presence_of_element_located((By.ID, "intake-saved")))
    shot(browser, "intake-06-allergy-saved")
    (allergy,) = _allergies(stack["fhir"], patient, substance)
    assert allergy["clinicalStatus"]["coding"][0]["code"] == "active"

    rows = browser.find_elements(By.CSS_SELECTOR, "input[name^='allergy.substance[']")
    (row,) = [r for r in rows if r.get_attribute("value") == substance]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    row.clear()
    browser.find_element(By.ID, "intake-submit").click()
    wait.until(ec.presence_of_element_located((By.ID, "intake-saved")))
    (after,) = _allergies(stack["fhir"], patient, substance)
    assert after["id"] == allergy["id"]
    assert after["clinicalStatus"]["coding"][0]["code"] == "inactive"
