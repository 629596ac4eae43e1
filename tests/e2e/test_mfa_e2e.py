"""In real headless Chromium, with staff MFA required (SYMFHIR_REQUIRE_MFA): the sandbox EHR
launches symfhir once after a password-only sign-in (refused, with the MFA page) and once
after a sign-in with a second factor (the client's summary opens)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import _start, _wait, shot

pytestmark = pytest.mark.e2e

SANDBOX_PORT = int(os.environ.get("E2E_MFA_SANDBOX_PORT", "5112"))
APP_PORT = int(os.environ.get("E2E_MFA_APP_PORT", "5012"))
SANDBOX = f"http://localhost:{SANDBOX_PORT}"
APP = f"http://localhost:{APP_PORT}"
ISS = f"{SANDBOX}/fhir"
CLIENT_SYSTEM = "http://symfhir.org/fhir/sid/symetrie-studio-spa/client-id"


@pytest.fixture(scope="module")
def mfa_stack(seeded: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A sandbox and an app that requires MFA, on their own ports."""
    logs = tmp_path_factory.mktemp("mfa-logs")
    registration = {
        "client_id": "symfhir",
        "redirect_uris": [f"{APP}/callback"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": f"{APP}/.well-known/jwks.json",
        # As the demo registers it: the app also asks for the physician a sharing consent
        # names (user/Practitioner, user/PractitionerRole).
        "scope": "openid fhirUser launch offline_access patient/*.cruds user/*.cruds",
        "system_scopes": "system/AuditEvent.c",
    }
    env = {
        "SANDBOX_BASE_URL": SANDBOX,
        "SANDBOX_FHIR_UPSTREAM": seeded,
        "SANDBOX_CLIENTS": json.dumps([registration]),
        "SYMFHIR_BASE_URL": APP,
        "SYMFHIR_TRUSTED_ISS": ISS,
        "SYMFHIR_EHR_ORIGINS": SANDBOX,
        "SYMFHIR_REQUIRE_MFA": "true",
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_start("sandbox", env, logs / "sandbox.log"))
        _wait(f"{ISS}/.well-known/smart-configuration", procs[0], "sandbox", logs / "sandbox.log")
        procs.append(_start("app", env, logs / "app.log"))
        _wait(f"{APP}/.well-known/jwks.json", procs[1], "app", logs / "app.log")
        yield seeded
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _launch_url(fhir: str, **extra: object) -> str:
    answer = requests.get(
        f"{fhir}/Patient", params={"identifier": f"{CLIENT_SYSTEM}|C0001"}, timeout=30
    )
    answer.raise_for_status()
    patient = answer.json()["entry"][0]["resource"]["id"]
    launch = requests.post(
        f"{SANDBOX}/api/launch",
        json={"patient": patient, "launch_url": f"{APP}/launch", **extra},
        timeout=30,
    )
    launch.raise_for_status()
    return launch.json()["url"]


def test_a_password_only_sign_in_is_refused(mfa_stack, browser):
    browser.get(_launch_url(mfa_stack))
    page = WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "error")))
    shot(browser, "mfa-refused")
    assert page.get_attribute("data-error-code") == "mfa_required"
    assert "multi-factor authentication" in page.text
    assert not browser.find_elements(By.ID, "summary-title")


def test_a_sign_in_with_a_second_factor_opens_the_summary(mfa_stack, browser):
    browser.get(_launch_url(mfa_stack, mfa=True))
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "summary-title")))
    shot(browser, "mfa-accepted")
    assert browser.current_url.startswith(APP)
