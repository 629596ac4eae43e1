"""In real headless Chromium, the whole path of a privacy request from the public portal: the
form, the codes read from a local SMTP server (aiosmtpd) and the SMS outbox, the request as a
Task on HAPI, the officer processing it on the request page of the SMART app's dashboard (a
standalone user-level launch), and the requester downloading the access package from the
status page the e-mailed link opens; the same for a deletion, which the officer processes on
the same page (the default officer scopes grant the deletes, updates and `$expunge` it needs)
and whose report, shown to the requester, follows the retention rules; and an SMS STOP posted
to the portal's webhook with a valid signature."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from symfhir.consent_kinds import load_consent_kinds
from symfhir.errors import FhirAuthError
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.fhir.auth import make_auth
from symfhir.marketing.sms_optout import SIGNATURE_HEADER, expected_signature
from symfhir.notify.catcher import MailCatcher
from symfhir.notify.sms import read_outbox
from symfhir.privacy.task import KIND_SYSTEM
from tests.e2e.conftest import SHOTS, _start, _wait, shot
from tests.integration.test_deletion_hapi import GOES_NOW, KEPT_7_YEARS, make_client

pytestmark = pytest.mark.e2e

PORTAL_PORT = int(os.environ.get("E2E_PORTAL_PORT", "5210"))
PORTAL = f"http://localhost:{PORTAL_PORT}"
SMS_TOKEN = secrets.token_urlsafe(24)
CODE = re.compile(r"code is (\d{6})")
STATUS_LINK = re.compile(re.escape(PORTAL) + r"/status/[A-Za-z0-9_-]{43}")


@pytest.fixture(scope="module")
def portal(stack: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The portal served as `make demo` serves it, its mail caught by a local SMTP server
    and its texts written to an outbox file; access packages in the app's folder."""
    tmp = tmp_path_factory.mktemp("portal")
    with MailCatcher(tmp / "mail") as catcher:
        env = {
            "SYMFHIR_PORTAL_BASE_URL": PORTAL,
            # Through the sandbox EHR's proxy with a Backend Services token of the least
            # system scopes (conftest's registration), never straight at HAPI.
            "SYMFHIR_CONFIG": stack["portal_config"],
            "FHIR_BASE_URL": "",  # would win over the file's base_url
            "SYMFHIR_SMTP_HOST": catcher.host,
            "SYMFHIR_SMTP_PORT": str(catcher.port),
            "SYMFHIR_SMTP_SECURITY": "none",
            "SYMFHIR_SMTP_FROM": "privacy@example.com",
            "SYMFHIR_SMS_SENDER": "outbox",
            "SYMFHIR_SMS_OUTBOX": str(tmp / "sms-outbox.jsonl"),
            "SYMFHIR_SMS_AUTH_TOKEN": SMS_TOKEN,
            "SYMFHIR_STORE_URL": f"sqlite:///{tmp / 'portal.db'}",
            "SYMFHIR_STORE_KEYS": Fernet.generate_key().decode(),
            "SYMFHIR_MARKETING_KEY": secrets.token_urlsafe(48),
        }
        log = tmp / "portal.log"
        proc = _start("portal", env, log)
        try:
            _wait(f"{PORTAL}/request", proc, "portal", log)
            yield {"mail": catcher, "outbox": tmp / "sms-outbox.jsonl", "log": log, **stack}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_for(browser: Any, element_id: str) -> Any:
    return WebDriverWait(browser, 60).until(ec.presence_of_element_located((By.ID, element_id)))


def _mail_to(catcher: MailCatcher, address: str, pattern: re.Pattern[str]) -> str:
    """The newest match of ``pattern`` in mail caught for ``address``."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for message in catcher.messages():
            found = pattern.search(message.text)
            if address in message.to and found:
                return found[1] if pattern.groups else found[0]
        time.sleep(0.1)
    raise AssertionError(f"no message for {address} matching {pattern.pattern}")


def _text_to(outbox: Path, number: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if outbox.exists():
            for message in reversed(read_outbox(outbox)):
                found = CODE.search(message.get("body", ""))
                if message.get("to") == number and found:
                    return found[1]
        time.sleep(0.1)
    raise AssertionError("no text message with a code")


def _fill_form(browser: Any, kind: str, name: str, birth: str, email: str, phone: str) -> None:
    browser.get(f"{PORTAL}/request")
    _wait_for(browser, "request-form")
    Select(browser.find_element(By.ID, "kind")).select_by_value(kind)
    browser.find_element(By.ID, "name").send_keys(name)
    browser.execute_script(
        "arguments[0].value = arguments[1]", browser.find_element(By.ID, "birth_date"), birth
    )
    browser.find_element(By.ID, "email").send_keys(email)
    if phone:
        browser.find_element(By.ID, "phone").send_keys(phone)
    browser.find_element(By.ID, "details").send_keys("Synthetic end-to-end request.")


def _enter_code(browser: Any, contact: str, code: str) -> None:
    field = browser.find_element(By.ID, f"code-{contact}")
    field.send_keys(code)
    browser.find_element(By.ID, f"check-{contact}").click()


def _task_of(fhir: str, kind: str, email: str) -> dict[str, Any]:
    """The request's Task on HAPI, found by the e-mail the requester gave."""
    answer = requests.get(
        f"{fhir}/Task",
        params={"code": f"{KIND_SYSTEM}|{kind}", "_sort": "-_lastUpdated", "_count": "50"},
        timeout=30,
    )
    answer.raise_for_status()
    for entry in answer.json().get("entry", []):
        task = entry["resource"]
        if email in json.dumps(task.get("input", [])):
            return task
    raise AssertionError("the request's Task is not on the server")


def _status(task: dict[str, Any]) -> str:
    return task["businessStatus"]["coding"][0]["code"]


def _patient(fhir: FhirClient, email: str, phone: str, birth: str) -> str:
    written = fhir.create(
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:example:e2e-portal", "value": uuid.uuid4().hex}],
            "name": [{"family": "Portalwright", "given": ["Robin"]}],
            "birthDate": birth,
            "telecom": [
                {"system": "email", "value": email},
                {"system": "phone", "value": phone, "use": "mobile"},
            ],
        }
    )
    return written.id


def _unique_phone() -> tuple[str, str]:
    """A fictional (555-01xx) mobile number in a random area code: shown and E.164."""
    area = secrets.choice(["212", "312", "415", "617", "713", "206", "303", "404", "512"])
    line = f"01{secrets.randbelow(100):02d}"
    return f"({area}) 555-{line}", f"+1{area}555{line}"


def _verify_in_portal(browser: Any, portal: dict, email: str, number: str | None, step: str) -> str:
    browser.find_element(By.ID, "submit-request").click()
    _wait_for(browser, "verify")
    shot(browser, f"portal-{step}-02-codes")
    _enter_code(browser, "email", _mail_to(portal["mail"], email, CODE))
    if number:
        _wait_for(browser, "verified-email")
        _enter_code(browser, "phone", _text_to(portal["outbox"], number))
    _wait_for(browser, "verified")
    shot(browser, f"portal-{step}-03-verified")
    return _mail_to(portal["mail"], email, STATUS_LINK)


def _officer_processes(browser: Any, portal: dict, task_id: str, patient: str, step: str) -> None:
    """The officer: a standalone user-level launch (signing in unless the EHR remembers the
    sign-in), then the request's own page (found directly, however many requests the server
    holds): Match, then Process."""
    browser.get(f"{portal['app']}/privacy-dashboard/launch?iss={portal['iss']}")
    WebDriverWait(browser, 60).until(
        lambda d: d.find_elements(By.ID, "sign-in") or d.find_elements(By.ID, "dashboard-title")
    )
    if browser.find_elements(By.ID, "sign-in"):
        browser.find_element(By.ID, "sign-in-submit").click()
    _wait_for(browser, "dashboard-title")
    browser.get(f"{portal['app']}/privacy-dashboard/requests/{task_id}")
    _wait_for(browser, "request-title")
    browser.find_element(By.ID, "match").click()
    _wait_for(browser, "action-done")
    assert f"Patient/{patient}" in browser.find_element(By.ID, "request-client").text
    browser.find_element(By.ID, "process").click()
    _wait_for(browser, "action-done")
    shot(browser, f"portal-{step}-04-officer")


def test_an_access_request_from_the_portal_to_the_download(portal: dict, browser: Any) -> None:
    email = f"robin.{uuid.uuid4().hex[:10]}@example.com"
    shown, number = _unique_phone()
    birth = "1979-03-0" + str(1 + secrets.randbelow(9))
    with FhirClient(ServerConfig(base_url=portal["fhir"])) as fhir:
        patient = _patient(fhir, email, shown, birth)

    _fill_form(browser, "access", "Robin Portalwright", birth, email, shown)
    shot(browser, "portal-access-01-form")
    status_link = _verify_in_portal(browser, portal, email, number, "access")
    task = _task_of(portal["fhir"], "access", email)
    assert _status(task) == "identity-verified" and "for" not in task
    notes = " ".join(n["text"] for n in task["note"])
    assert "email-code" in notes and "sms-code" in notes

    browser.get(status_link)
    _wait_for(browser, "status")
    assert "Identity confirmed" in browser.find_element(By.ID, "status-words").text
    assert not browser.find_elements(By.ID, "download-link")  # nothing before it is done

    _officer_processes(browser, portal, task["id"], patient, "access")
    assert browser.find_element(By.ID, "request-status").text == "completed"

    # The requester downloads the package from the status page, in the browser.
    downloads = SHOTS / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    for old in downloads.glob("*"):
        old.unlink()
    browser.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    browser.get(status_link)
    _wait_for(browser, "download-link")
    assert browser.find_element(By.ID, "status-words").text == "Done"
    shot(browser, "portal-access-05-status")
    browser.find_element(By.ID, "download-link").click()
    package = downloads / "access-package.zip"
    deadline = time.monotonic() + 60
    while not package.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert package.exists(), "the package was not downloaded"
    with zipfile.ZipFile(package) as archive:
        bundle = json.loads(archive.read("bundle.json"))
    assert bundle["resourceType"] == "Bundle"
    ids = {
        e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    }
    assert ids == {patient}
    # The download is a disclosure to the requester in the client's accounting.
    events = requests.get(
        f"{portal['fhir']}/AuditEvent",
        params={"entity": f"Patient/{patient}", "_count": "100"},
        timeout=30,
    ).json()
    described = [e["resource"].get("outcomeDesc") for e in events.get("entry", [])]
    assert "access package handed over: portal download" in described


def test_a_deletion_request_follows_the_retention_rules(portal: dict, browser: Any) -> None:
    email = f"del.{uuid.uuid4().hex[:10]}@example.com"
    birth = "1981-07-1" + str(secrets.randbelow(10))
    with FhirClient(ServerConfig(base_url=portal["fhir"])) as fhir:
        ids = make_client(fhir, birth_date=birth)
        patient = fhir.read(*ids["patient"].split("/"))
        patient["telecom"] = [{"system": "email", "value": email}]
        fhir.update(patient)

    _fill_form(browser, "deletion", "Avery Quillfeather", birth, email, "")
    shot(browser, "portal-deletion-01-form")
    status_link = _verify_in_portal(browser, portal, email, None, "deletion")
    task = _task_of(portal["fhir"], "deletion", email)
    assert _status(task) == "identity-verified"

    # The officer processes it in the app: retention keeps the medical records.
    _officer_processes(browser, portal, task["id"], ids["patient"].split("/")[1], "deletion")
    assert browser.find_element(By.ID, "request-status").text == "partially-completed"
    on_page = browser.find_element(By.CSS_SELECTOR, "#request-outputs .output-summary").text

    browser.get(status_link)
    _wait_for(browser, "status-summary")
    shot(browser, "portal-deletion-05-status")
    summary = browser.find_element(By.ID, "status-summary").text
    with FhirClient(ServerConfig(base_url=portal["fhir"])) as fhir:
        done = fhir.read("Task", task["id"])
    outputs = {o["type"]["text"]: o for o in done["output"]}
    report = json.loads(outputs["deletion-report"]["valueString"])
    assert summary == outputs["summary"]["valueString"]
    assert summary in on_page  # the request page shows the same outcome
    # The officer's session erased what went ($expunge), not only deleted it.
    assert report["historyErased"] is True
    assert summary.startswith(f"{report['deleted']} deleted, {report['kept']} kept")
    outcome = {item["resource"]: item for item in report["items"]}
    for label in GOES_NOW:
        assert outcome[ids[label]]["outcome"] == "deleted", label
    # Medical records stay 7 years after the last treatment (2025-06-01).
    for label in KEPT_7_YEARS:
        assert outcome[ids[label]]["outcome"] == "kept", label
        assert outcome[ids[label]]["until"] == "2032-06-01", label
    assert f"next deletion on or after {report['scheduled']}" in summary
    assert "Avery" not in summary and email not in summary  # no PHI on the page


def test_an_sms_stop_to_the_portal_withdraws_the_marketing_consent(portal: dict) -> None:
    shown, number = _unique_phone()
    template = load_consent_kinds().kinds["marketing_sms"].template

    def concept(coding: Any) -> dict[str, Any]:
        return {"coding": coding if isinstance(coding, list) else [coding]}

    with FhirClient(ServerConfig(base_url=portal["fhir"])) as fhir:
        patient = _patient(fhir, f"stop.{uuid.uuid4().hex[:10]}@example.com", shown, "1990-01-01")
        provision = template["provision"]
        consent = fhir.create(
            {
                "resourceType": "Consent",
                "status": "active",
                "scope": concept(template["scope"]),
                "category": [concept(c) for c in template["category"]],
                "patient": {"reference": f"Patient/{patient}"},
                "dateTime": date.today().isoformat(),
                "policyRule": concept(template["policy_rule"]),
                "provision": {
                    "type": "permit",
                    "action": [concept(a) for a in provision["action"]],
                    "purpose": provision["purpose"],
                },
            }
        )
    form = {"MessageSid": "SM" + secrets.token_hex(16), "From": number, "To": "+13375550100"}
    form["Body"] = "STOP"
    url = f"{PORTAL}/sms/inbound"
    signature = expected_signature(SMS_TOKEN, url, list(form.items()))
    unsigned = requests.post(url, data=form, timeout=30)
    assert unsigned.status_code == 403
    answer = requests.post(url, data=form, headers={SIGNATURE_HEADER: signature}, timeout=60)
    assert answer.status_code == 200
    assert answer.text.count("<Message>") == 1  # one confirmation text
    with FhirClient(ServerConfig(base_url=portal["fhir"])) as fhir:
        assert fhir.read("Consent", consent.id)["status"] == "inactive"
    again = requests.post(url, data=form, headers={SIGNATURE_HEADER: signature}, timeout=60)
    assert again.status_code == 200 and "<Message>" not in again.text


def test_the_portal_reaches_the_ehr_only_through_the_sandbox_with_its_system_scopes(
    portal: dict,
) -> None:
    """The portal's own config file (the one it runs with) gets a Backend Services token from
    the sandbox and reads Tasks through its proxy; a resource its scopes leave out is refused
    by the proxy, and a token with more than its registration is refused at /token."""
    with FhirClient.from_config(config_path=Path(portal["portal_config"]), environ={}) as fhir:
        config = fhir.config
        assert (config.base_url, config.auth) == (portal["iss"], "backend-services")
        assert fhir.resource_count("Task", {"_id": "not-there"}) == 0
        with pytest.raises(FhirAuthError):
            fhir.read("Observation", "any")
    greedy = replace(config, scope=f"{config.scope} system/Patient.cruds")
    with (
        FhirClient(greedy, make_auth(greedy)) as fhir,
        pytest.raises(FhirAuthError, match="invalid_scope"),
    ):
        fhir.resource_count("Task", {"_id": "not-there"})


def test_the_portal_log_holds_no_address_and_no_trace(portal: dict) -> None:
    assert requests.get(f"{PORTAL}/status/{'x' * 43}", timeout=30).status_code == 404
    log = Path(portal["log"]).read_text()
    assert "Traceback" not in log and "@example.com" not in log


def test_bad_input_is_shown_beside_each_field(portal: dict, browser: Any) -> None:
    _fill_form(browser, "access", "Robin Portalwright", "2999-01-01", "not-an-address", "12")
    browser.find_element(By.ID, "agent_name").send_keys("Jordan Agent")
    browser.find_element(By.ID, "submit-request").click()
    _wait_for(browser, "form-errors")
    shot(browser, "portal-00-bad-input")
    reasons = {
        field: browser.find_element(By.ID, f"{field}-error").text
        for field in ("birth_date", "email", "phone", "agent_name")
    }
    assert "real past date of birth" in reasons["birth_date"]
    assert "not a valid e-mail address" in reasons["email"]
    assert "not a valid phone number" in reasons["phone"]
    assert "California (CCPA)" in reasons["agent_name"]
    # What was typed stays in the form, to be corrected.
    assert browser.find_element(By.ID, "name").get_attribute("value") == "Robin Portalwright"
