"""In real headless Chromium: the practitioner records consents for client C0001 with a typed
and a drawn signature and withdraws one; the FHIR server, read independently, holds the
Consents with their signed PNG forms and the withdrawal as status inactive. For the minor
C0007, the guardian on file signs: the Consent's performer references that RelatedPerson."""

from __future__ import annotations

import base64
import hashlib
import io
from datetime import datetime

import pytest
import requests
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from symfhir.spa import load_spa
from tests.e2e.conftest import shot
from tests.e2e.test_launch_e2e import _launch_url, _patient_id

pytestmark = pytest.mark.e2e

KIND = "http://symfhir.org/fhir/CodeSystem/consent-kind"


def _row_status(browser, kind: str) -> str:
    return browser.find_element(By.ID, f"kind-{kind}").get_attribute("data-status")


def _capture(browser, kind: str) -> None:
    Select(browser.find_element(By.ID, "kind")).select_by_value(kind)
    browser.find_element(By.ID, "decision-given").click()
    Select(browser.find_element(By.ID, "signer")).select_by_value("client")
    name = browser.find_element(By.ID, "signer-name")
    name.clear()
    name.send_keys("Avery Quillfeather")


def _saved(browser) -> None:
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "consent-saved")))


def _consents(fhir: str, patient: str, kind: str) -> list[dict]:
    answer = requests.get(
        f"{fhir}/Consent",
        params={"patient": f"Patient/{patient}", "_count": 200},
        headers={"Cache-Control": "no-cache"},
        timeout=30,
    )
    answer.raise_for_status()
    found = [e["resource"] for e in answer.json().get("entry", [])]
    return [
        c
        for c in found
        if any(
            coding.get("system") == KIND and coding.get("code") == kind
            for category in c.get("category", [])
            for coding in category.get("coding", [])
        )
    ]


def _newest(consents: list[dict]) -> dict:
    return max(consents, key=lambda c: (c.get("dateTime", ""), c["meta"]["lastUpdated"]))


def _check_signed_form(consent: dict) -> Image.Image:
    attachment = consent["sourceAttachment"]
    data = base64.b64decode(attachment["data"])
    assert attachment["contentType"] == "image/png" and attachment["size"] == len(data)
    digest = base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()
    assert attachment["hash"] == digest
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    return image


def test_capture_and_withdraw_consents(stack, browser):
    fhir = stack["fhir"]
    patient = _patient_id(fhir, "C0001")
    browser.get(_launch_url(stack, patient))
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "summary-title")))
    browser.get(f"{stack['app']}/consents")
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "consent-status")))
    shot(browser, "consents-01-page")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#consent-status tr[id^=kind-]")) == 12

    # 1. Research, given, with a typed signature.
    _capture(browser, "research")
    typed = browser.find_element(By.ID, "typed-signature")
    typed.clear()
    typed.send_keys("Avery Quillfeather")
    shot(browser, "consents-02-typed-filled")
    browser.find_element(By.ID, "capture-submit").click()
    _saved(browser)
    shot(browser, "consents-03-typed-saved")
    assert _row_status(browser, "research") == "given"

    # 2. Testimonials, given, with a signature drawn on the pad.
    _capture(browser, "testimonials")
    browser.find_element(By.ID, "typed-signature").clear()
    pad = browser.find_element(By.ID, "signature-pad")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", pad)
    (
        ActionChains(browser)
        .move_to_element_with_offset(pad, -200, 20)
        .click_and_hold()
        .move_by_offset(60, -40)
        .move_by_offset(60, 50)
        .move_by_offset(80, -30)
        .move_by_offset(90, 40)
        .release()
        .perform()
    )
    value = browser.find_element(By.ID, "signature-data").get_attribute("value")
    assert value.startswith("data:image/png;base64,")
    shot(browser, "consents-04-drawn")
    browser.find_element(By.ID, "capture-submit").click()
    _saved(browser)
    shot(browser, "consents-05-drawn-saved")
    assert _row_status(browser, "testimonials") == "given"

    # 3. Withdraw research.
    browser.find_element(By.ID, "withdraw-research").click()
    _saved(browser)
    shot(browser, "consents-06-withdrawn")
    assert _row_status(browser, "research") == "withdrawn"
    assert "withdrawn" in browser.find_element(By.ID, "consent-saved").text.lower()

    # 4. The server, read directly: the signed forms and the withdrawal.
    drawn = _newest(_consents(fhir, patient, "testimonials"))
    assert drawn["status"] == "active" and drawn["provision"]["type"] == "permit"
    image = _check_signed_form(drawn)
    assert image.size == (600, 200)
    assert image.getchannel("A").getextrema()[1] == 255  # ink was drawn
    withdrawn = _newest(_consents(fhir, patient, "research"))
    assert withdrawn["status"] == "inactive"
    today = datetime.now(load_spa().zone).date().isoformat()
    assert withdrawn["provision"]["period"]["end"] == today
    assert "typed" in withdrawn["sourceAttachment"]["title"]
    _check_signed_form(withdrawn)
    provenance = requests.get(
        f"{fhir}/Provenance",
        params={"target": f"Consent/{withdrawn['id']}"},
        headers={"Cache-Control": "no-cache"},
        timeout=30,
    ).json()
    activities = {
        e["resource"]["activity"]["coding"][0]["code"] for e in provenance.get("entry", [])
    }
    assert {"CREATE", "UPDATE"} <= activities


def _guardian_id(fhir: str, patient: str) -> str:
    """The id of the guardian the import wrote for C0007 (read independently of the app)."""
    answer = requests.get(
        f"{fhir}/RelatedPerson",
        params={"patient": f"Patient/{patient}"},
        headers={"Cache-Control": "no-cache"},
        timeout=30,
    )
    answer.raise_for_status()
    (guardian,) = [
        e["resource"]
        for e in answer.json().get("entry", [])
        if any(i.get("value") == "C0007-guardian" for i in e["resource"].get("identifier", []))
    ]
    return guardian["id"]


def test_a_minors_consent_signed_by_the_guardian_on_file(stack, browser):
    fhir = stack["fhir"]
    patient = _patient_id(fhir, "C0007")  # born 2011; guardian Elodie Oakhollow, mother
    guardian = _guardian_id(fhir, patient)
    browser.get(_launch_url(stack, patient))
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "summary-title")))
    browser.get(f"{stack['app']}/consents")
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "consent-status")))
    assert browser.find_elements(By.ID, "minor-notice")
    offered = browser.find_elements(By.CSS_SELECTOR, "#guardian-choice input[name=guardian]")
    values = [o.get_attribute("value") for o in offered]
    # The guardian is offered; the emergency contact (a spouse) is not.
    assert f"RelatedPerson/{guardian}" in values
    assert "Camille Oakhollow" not in browser.find_element(By.ID, "guardian-choice").text

    Select(browser.find_element(By.ID, "kind")).select_by_value("photos_clinical")
    browser.find_element(By.ID, "decision-given").click()
    Select(browser.find_element(By.ID, "signer")).select_by_value("guardian")
    choice = browser.find_element(By.ID, f"guardian-{guardian}")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", choice)
    choice.click()
    shot(browser, "consents-07-guardian-chosen")
    typed = browser.find_element(By.ID, "typed-signature")
    typed.clear()
    typed.send_keys("Elodie Oakhollow")
    browser.find_element(By.ID, "capture-submit").click()
    _saved(browser)
    shot(browser, "consents-08-guardian-saved")
    assert _row_status(browser, "photos_clinical") == "given"

    # The server, read directly: the Consent's performer is that RelatedPerson.
    consent = _newest(_consents(fhir, patient, "photos_clinical"))
    assert consent["status"] == "active"
    (performer,) = consent["performer"]
    assert performer["reference"] == f"RelatedPerson/{guardian}"
    assert performer["display"] == "Elodie Oakhollow (parent or guardian)"
    assert "typed" in consent["sourceAttachment"]["title"]
    _check_signed_form(consent)
