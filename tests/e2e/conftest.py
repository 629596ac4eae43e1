"""The whole stack for browser tests: HAPI (tests/integration), the sandbox EHR and the app as
real processes on their own ports, served by gunicorn exactly as `make demo` serves them
(scripts/serve), seeded with the synthetic sample, and headless Chromium from Debian's packages
driven by Selenium. Screenshots of each step go to out/e2e/."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from symfhir.marketing.self_service import SELF_SERVICE_SCOPE
from symfhir.privacy.portal_requests import PORTAL_SCOPE
from symfhir.smart.assertion import ClientKey
from tests.conftest import AS_OF, SAMPLE
from tests.integration.conftest import ROOT, fhir_base  # noqa: F401 - the session fixture

SANDBOX_PORT = int(os.environ.get("E2E_SANDBOX_PORT", "5110"))
APP_PORT = int(os.environ.get("E2E_APP_PORT", "5010"))
LINKS_PORT = int(os.environ.get("E2E_LINKS_PORT", "5310"))
SANDBOX = f"http://localhost:{SANDBOX_PORT}"
APP = f"http://localhost:{APP_PORT}"
#: The public link service of physician sharing: the app writes links into the store below and
#: puts this base in them; a test that opens links starts the service on it with that store.
LINKS = f"http://localhost:{LINKS_PORT}"
ISS = f"{SANDBOX}/fhir"
SHOTS = ROOT / "out" / "e2e"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _wait(url: str, proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited ({proc.returncode}):\n{log.read_text()}", pytrace=False)
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        # gunicorn listens before its worker has booted: a connection may wait unanswered.
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.2)
    pytest.fail(f"{name} did not answer at {url}:\n{log.read_text()}", pytrace=False)


def _start(which: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(
            [str(ROOT / "scripts" / "serve"), which],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture(scope="session")
def seeded(fhir_base: str, tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: F811
    """The synthetic sample imported into HAPI (idempotent: a re-run creates nothing)."""
    from symfhir.cli import main

    tmp = tmp_path_factory.mktemp("seed")
    code = main(
        [
            "import",
            str(SAMPLE / "clients.csv"),
            "--photos",
            str(SAMPLE / "photos.csv"),
            "--server",
            fhir_base,
            "--checkpoint",
            str(tmp / "checkpoint.json"),
            "--rejects",
            str(tmp / "rejects.csv"),
            "--as-of",
            AS_OF,
            "--quiet",
        ]
    )
    assert code == 1  # the sample's invalid rows are rejected on purpose
    return fhir_base


# The client privacy portal's Backend Services client: exactly the system scopes of its
# requests (PORTAL_SCOPE) and its opt-outs (SELF_SERVICE_SCOPE), nothing more.
PORTAL_CLIENT_ID = "symfhir-portal"
PORTAL_SYSTEM_SCOPES = " ".join(dict.fromkeys((PORTAL_SCOPE + " " + SELF_SERVICE_SCOPE).split()))


def write_portal_config(folder: Path) -> tuple[Path, dict[str, object]]:
    """A fresh ES384 key for the portal (mode 600) and its config file pointing at the
    sandbox's FHIR base and token endpoint; returns the file and the sandbox registration."""
    key = ClientKey.generate()
    key_path = folder / "portal-key.pem"
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.key.as_pem(private=True))
    config = folder / "portal.toml"
    config.write_text(
        "[server]\n"
        f'base_url = "{ISS}"\n'
        'auth = "backend-services"\n'
        f'token_url = "{SANDBOX}/token"\n'
        f'client_id = "{PORTAL_CLIENT_ID}"\n'
        f'private_key_path = "{key_path}"\n'
        f'key_id = "{key.kid}"\n'
        f'algorithm = "{key.alg}"\n'
        f'scope = "{PORTAL_SYSTEM_SCOPES}"\n'
    )
    registration = {
        "client_id": PORTAL_CLIENT_ID,
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": key.jwks(),
        "system_scopes": PORTAL_SYSTEM_SCOPES,
    }
    return config, registration


@pytest.fixture(scope="session")
def stack(seeded: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    logs = tmp_path_factory.mktemp("logs")
    registration = {
        "client_id": "symfhir",
        "redirect_uris": [f"{APP}/callback"],
        # The EHR launch, and the privacy officer's dashboard (launched with no patient).
        "launch_urls": [f"{APP}/launch", f"{APP}/privacy-dashboard/launch"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": f"{APP}/.well-known/jwks.json",
        "scope": "openid fhirUser launch launch/patient offline_access online_access "
        "patient/*.cruds user/*.cruds",
        # The app's audit channel (Backend Services) for launches without AuditEvent create.
        "system_scopes": "system/AuditEvent.c",
    }
    portal_config, portal_registration = write_portal_config(tmp_path_factory.mktemp("portal"))
    store_url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'symfhir.db'}"
    store_keys = Fernet.generate_key().decode()
    env = {
        "SANDBOX_BASE_URL": SANDBOX,
        "SANDBOX_FHIR_UPSTREAM": seeded,
        "SANDBOX_CLIENTS": json.dumps([registration, portal_registration]),
        "SYMFHIR_BASE_URL": APP,
        "SYMFHIR_TRUSTED_ISS": ISS,
        "SYMFHIR_EHR_ORIGINS": SANDBOX,
        "SYMFHIR_STORE_URL": store_url,
        "SYMFHIR_STORE_KEYS": store_keys,
        "SYMFHIR_LINKS_BASE_URL": LINKS,
    }
    sandbox = _start("sandbox", env, logs / "sandbox.log")
    app = _start("app", env, logs / "app.log")
    try:
        _wait(f"{ISS}/.well-known/smart-configuration", sandbox, "sandbox", logs / "sandbox.log")
        _wait(f"{APP}/.well-known/jwks.json", app, "app", logs / "app.log")
        yield {
            "sandbox": SANDBOX,
            "app": APP,
            "iss": ISS,
            "fhir": seeded,
            "logs": str(logs),
            "portal_config": str(portal_config),
            "store_url": store_url,
            "store_keys": store_keys,
            "links": LINKS,
        }
    finally:
        for proc in (app, sandbox):
            proc.terminate()
        for proc in (app, sandbox):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def chromium_options() -> webdriver.ChromeOptions:
    """Headless Chromium from Debian's packages, quiet (no background network, no updates);
    fails the test when it is not installed."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Chromium is not installed: run scripts/install-browser", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    return options


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    options = chromium_options()
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: webdriver.Chrome, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


# The link service of physician sharing (one process on the links port for the whole session):
# defined beside the stack it runs on, and made a fixture of every e2e module here, so that
# two modules using it share the one process instead of each starting its own on the same port.
from tests.e2e.links_stack import links_service  # noqa: E402, F401
