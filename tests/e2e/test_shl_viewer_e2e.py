"""In real headless Chromium, the physician's viewer of a SMART Health Link against the link
service run as ``make demo`` runs it (gunicorn, ``scripts/serve links``): a wrong passcode
shows the attempts left, the right one shows the summary's sections, the records and the
photos decrypted in the browser (one photo embedded in the manifest, one behind a short-lived
location URL); a revoked link says it is no longer active; an expired payload says so without
asking the service; a narrative carrying ``<script>`` and ``onerror`` runs nothing; and the
key never reaches the service (neither its access log nor any request the browser sent).

Links are made with the link store's ``create_link`` from a synthetic package: a hand-made
IPS-style document, a records Bundle and two generated PNG photos, for a synthetic client with
a physician-sharing Consent on HAPI (the service re-checks it before every disclosure).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from symfhir.fhir import FhirClient, ServerConfig
from symfhir.sharing import shl
from symfhir.sharing.gate import Recipient, SharePlan
from symfhir.sharing.link_settings import load_link_settings
from symfhir.sharing.links import NewLink, create_link, revoke_link
from symfhir.sharing.package import SharedFile, SharePackage
from symfhir.workspace.consents.status import KIND_SYSTEM
from tests.e2e.conftest import CHROMEDRIVER, SHOTS, chromium_options
from tests.e2e.links_stack import LinksService, serve_links
from tests.integration.conftest import synthetic_patient

pytestmark = pytest.mark.e2e

FHIR_JSON = "application/fhir+json"
PASSCODE = "harbor-lantern-42"
RECIPIENT = "Dr. Imani Synthetic, Lakeside Clinic"
PHYSICIAN = Recipient(reference=None, name="Dr. Imani Synthetic", organization="Lakeside Clinic")
#: What a hostile narrative tries: an inline script, an image error handler, a javascript:
#: link with a click handler, an inline style. None may run or survive into the page.
EVIL_NARRATIVE = (
    '<div xmlns="http://www.w3.org/1999/xhtml"><p>Latex <b>severe</b></p>'
    '<img src="x-missing.png" onerror="window.__pwned = \'img\'"/>'
    "<script>window.__pwned = 'script'</script>"
    "<a href=\"javascript:window.__pwned='href'\" onclick=\"window.__pwned='click'\">more</a>"
    '<table><tr><td colspan="2" style="color:red" onmouseover="window.__pwned=\'td\'">'
    "Penicillin: hives</td></tr></table></div>"
)
WAIT = 30


# ── The synthetic package ─────────────────────────────────────────────────────


def _png(size: tuple[int, int], *, noise: bool = False) -> bytes:
    """A PNG made now: a flat colour, or random noise (it does not compress, so the photo's
    file is larger than what the viewer asks to have embedded and comes by location URL)."""
    if noise:
        image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        image = Image.new("RGB", size, (196, 128, 96))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _document(patient_id: str) -> dict[str, Any]:
    """An IPS-style document Bundle: the Composition first, a section with a hostile
    narrative, one with entries and no narrative, one empty with its reason."""
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    medication_url = f"urn:uuid:{uuid.uuid4()}"
    loinc = "http://loinc.org"
    return {
        "resourceType": "Bundle",
        "type": "document",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "timestamp": "2026-12-04T10:00:00Z",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Composition",
                    "status": "final",
                    "type": {"coding": [{"system": loinc, "code": "60591-5"}]},
                    "subject": {"reference": patient_url},
                    "date": "2026-12-04T10:00:00Z",
                    "author": [{"display": "Symetrie Studio Spa"}],
                    "title": "Patient summary",
                    "section": [
                        {
                            "title": "Allergies and intolerances",
                            "code": {"coding": [{"system": loinc, "code": "48765-2"}]},
                            "text": {"status": "generated", "div": EVIL_NARRATIVE},
                        },
                        {
                            "title": "Medication summary",
                            "code": {"coding": [{"system": loinc, "code": "10160-0"}]},
                            "entry": [{"reference": medication_url}],
                        },
                        {
                            "title": "Problem list",
                            "code": {"coding": [{"system": loinc, "code": "11450-4"}]},
                            "emptyReason": {"text": "Nothing recorded"},
                        },
                    ],
                },
            },
            {
                "fullUrl": patient_url,
                "resource": {
                    "resourceType": "Patient",
                    "id": patient_id,
                    "name": [{"family": "Quillfeather", "given": ["Avery"]}],
                    "birthDate": "1991-03-14",
                },
            },
            {
                "fullUrl": medication_url,
                "resource": {
                    "resourceType": "MedicationStatement",
                    "status": "active",
                    "subject": {"reference": patient_url},
                    "medicationCodeableConcept": {"text": "Tretinoin cream 0.025%"},
                    "dosage": [{"text": "at night"}],
                },
            },
        ],
    }


def _records(patient_id: str) -> dict[str, Any]:
    subject = {"reference": f"Patient/{patient_id}"}
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Condition",
                    "subject": subject,
                    "code": {"text": "Rosacea"},
                    "onsetDateTime": "2024-05-01",
                }
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "subject": subject,
                    "code": {"text": "Fitzpatrick skin type"},
                    "valueString": "III",
                }
            },
        ],
    }


def _photo(patient_id: str, media_id: str, png: bytes, site: str) -> dict[str, Any]:
    return {
        "resourceType": "Media",
        "id": media_id,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "bodySite": {"text": site},
        "createdDateTime": "2026-11-20",
        "content": {"contentType": "image/png", "data": base64.b64encode(png).decode()},
    }


def _file(name: str, resource: dict[str, Any]) -> SharedFile:
    data = json.dumps(resource).encode()
    read: Callable[[], bytes] = lambda: data  # noqa: E731 - the package's lazy reader
    return SharedFile(name=name, content_type=FHIR_JSON, read=read)


def _package(patient_id: str, consent_id: str) -> SharePackage:
    plan = SharePlan(
        patient_id=patient_id,
        basis=f"Consent/{consent_id}",
        recipient=PHYSICIAN,
        scopes=frozenset({"summary", "intake", "photos"}),
        types=frozenset({"Condition", "Observation", "Media"}),
        photos=True,
        start=None,
        end=None,
    )
    files = (
        _file("patient-summary.json", _document(patient_id)),
        _file("records.json", _records(patient_id)),
        _file("photo-cheek.json", _photo(patient_id, "cheek", _png((40, 30)), "Left cheek")),
        _file(
            "photo-brow.json",
            _photo(patient_id, "brow", _png((600, 600), noise=True), "Forehead"),
        ),
    )
    counts = {"Composition": 1, "Condition": 1, "Observation": 1, "Media": 2}
    return SharePackage(plan=plan, files=files, counts=counts, photos=2)


@pytest.fixture(scope="module")
def consented(links_service: LinksService) -> tuple[str, str]:
    """A synthetic client on HAPI with an active physician-sharing Consent: (patient, consent)."""
    with FhirClient(ServerConfig(base_url=links_service.fhir)) as client:
        patient_id = synthetic_patient(client)
        consent = client.create(
            {
                "resourceType": "Consent",
                "status": "active",
                "scope": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                            "code": "patient-privacy",
                        }
                    ]
                },
                "category": [{"coding": [{"system": KIND_SYSTEM, "code": "physician_sharing"}]}],
                "patient": {"reference": f"Patient/{patient_id}"},
                "dateTime": datetime.now(UTC).isoformat(timespec="seconds"),
                "provision": {"type": "permit"},
            }
        )
    return patient_id, consent.id


def _link(service: LinksService, consented: tuple[str, str], *, passcode: str | None) -> NewLink:
    patient_id, consent_id = consented
    now = datetime.now(UTC)
    return create_link(
        service.store,
        _package(patient_id, consent_id),
        label="Summary for Dr. Synthetic",
        passcode=passcode,
        expires_at=now + timedelta(days=1),
        max_accesses=None,
        single_file=False,
        created_by="Practitioner/e2e",
        links_base=service.base,
        viewer_base=service.viewer,
        now=now,
    )


# ── The browser, with its network log ─────────────────────────────────────────


@pytest.fixture(scope="module")
def viewer_browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium like conftest's ``browser``, with the DevTools network log on: every
    request the page sends (URL, headers, body) can be read back."""
    options = chromium_options()
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def _sent(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """The requests the browser sent since the last call (DevTools Network.requestWillBeSent):
    each one's URL, method, headers and body."""
    out = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            out.append(message["params"]["request"])
    return out


def _visible(driver: webdriver.Chrome, element_id: str) -> Any:
    return WebDriverWait(driver, WAIT).until(ec.visibility_of_element_located((By.ID, element_id)))


def _problem(driver: webdriver.Chrome) -> str:
    return str(_visible(driver, "problem").text)


def _open(driver: webdriver.Chrome, passcode: str | None) -> None:
    _visible(driver, "access")
    name = driver.find_element(By.ID, "recipient")
    name.clear()
    name.send_keys(RECIPIENT)
    if passcode is not None:
        field = driver.find_element(By.ID, "passcode")
        field.clear()
        field.send_keys(passcode)
    driver.find_element(By.ID, "open").click()


def _images_loaded(driver: webdriver.Chrome) -> list[int]:
    """The natural widths of the photos shown, once every one has loaded."""

    def loaded(d: webdriver.Chrome) -> list[int] | bool:
        widths = d.execute_script(
            "return Array.from(document.querySelectorAll('#photos img'))"
            ".map(i => i.complete ? i.naturalWidth : -1)"
        )
        return sorted(widths) if widths and -1 not in widths else False

    return WebDriverWait(driver, WAIT).until(loaded)


def _shot(driver: webdriver.Chrome, name: str) -> None:
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


# ── The cases ─────────────────────────────────────────────────────────────────


def test_passcode_then_summary_photos_and_records(
    links_service: LinksService,
    consented: tuple[str, str],
    viewer_browser: webdriver.Chrome,
) -> None:
    driver = viewer_browser
    link = _link(links_service, consented, passcode=PASSCODE)
    manifest_path = link.manifest_url.removeprefix(links_service.base)
    _sent(driver)  # start the network log afresh

    driver.get(link.viewer_url)
    _visible(driver, "access")
    assert driver.find_element(By.ID, "link-label").text == "Summary for Dr. Synthetic"
    assert driver.find_element(By.ID, "passcode-field").is_displayed()
    _shot(driver, "shl-viewer-1-passcode")

    _open(driver, "not-the-passcode")
    assert "4 attempts left" in _problem(driver)
    assert not driver.find_element(By.ID, "record").is_displayed()
    _shot(driver, "shl-viewer-2-wrong-passcode")

    _open(driver, PASSCODE)
    _visible(driver, "record")
    page = driver.find_element(By.ID, "record").text
    for expected in (
        "Patient summary",
        "Avery Quillfeather",
        "Allergies and intolerances",
        "Latex severe",
        "Penicillin: hives",
        "Medication summary",
        "Tretinoin cream 0.025%",
        "Problem list",
        "Nothing recorded",
        "Problems and conditions (1)",
        "Rosacea",
        "Fitzpatrick skin type",
        "Left cheek",
        "Forehead",
    ):
        assert expected in page, expected
    # Both photos decoded: the small one came embedded, the large one by location URL.
    assert _images_loaded(driver) == [40, 600]
    _shot(driver, "shl-viewer-3-summary")

    # The hostile narrative: nothing ran, and nothing executable reached the page.
    driver.find_element(By.CSS_SELECTOR, ".narrative td").click()
    assert driver.execute_script("return window.__pwned === undefined")
    narrative = driver.find_element(By.CSS_SELECTOR, ".narrative")
    assert narrative.find_elements(By.CSS_SELECTOR, "script, img, a, [style], [href]") == []
    handlers = driver.execute_script(
        "return Array.from(document.querySelectorAll('#summary *'))"
        ".flatMap(e => Array.from(e.attributes).map(a => a.name))"
        ".filter(n => n.startsWith('on'))"
    )
    assert handlers == []

    # The key never left the browser: not in any request sent (URL, headers, body), not in
    # the service's log; the recipient's name, which is sent, is found (the log works).
    sent = _sent(driver)
    key = link.payload["key"]
    encoded = link.shlink.removeprefix(shl.PREFIX)
    posts = [r for r in sent if r["method"] == "POST" and r["url"].endswith(manifest_path)]
    assert len(posts) == 2
    assert all(RECIPIENT in r.get("postData", "") for r in posts)
    files = [r for r in sent if "/shl/f/" in r["url"]]
    assert len(files) == 1  # the large photo
    for request in sent:
        # What goes on the wire: DevTools keeps the fragment apart (urlFragment), never sent.
        seen = json.dumps([request["url"], request.get("headers"), request.get("postData")])
        assert key not in seen and encoded not in seen, request["url"]
        assert not request.get("headers", {}).get("Referer"), request["url"]
    # The access log holds the method and status only (a manifest id is a bearer secret).
    log = links_service.log_text()
    assert '"POST" 401' in log and '"POST" 200' in log and '"GET" 200' in log
    assert key not in log and encoded not in log and manifest_path not in log

    # The access is a disclosure on HAPI, naming who received it.
    assert _disclosure_names(links_service.fhir, consented[0], RECIPIENT)


def _disclosure_names(fhir: str, patient_id: str, recipient: str) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        bundle = requests.get(
            f"{fhir}/AuditEvent",
            params={"entity": f"Patient/{patient_id}", "_count": "50"},
            headers={"Accept": FHIR_JSON},
            timeout=30,
        ).json()
        if any(recipient in json.dumps(e["resource"]) for e in bundle.get("entry", [])):
            return True
        time.sleep(0.5)
    return False


def test_revoked_link_is_no_longer_active(
    links_service: LinksService,
    consented: tuple[str, str],
    viewer_browser: webdriver.Chrome,
) -> None:
    driver = viewer_browser
    link = _link(links_service, consented, passcode=None)
    revoke_link(
        links_service.store,
        consented[0],
        link.link_id,
        reason="revoked by a practitioner",
        now=datetime.now(UTC),
    )
    # Opened the other way: the viewer without a fragment and the link pasted in its box.
    driver.get(links_service.viewer)
    box = _visible(driver, "paste-link")
    box.send_keys("not a link at all")
    driver.find_element(By.ID, "paste-open").click()
    assert "not a SMART Health Link" in _problem(driver)
    elsewhere = shl.link_payload(
        f"https://links.example.org/shl/m/{shl.new_manifest_id()}",
        shl.new_key(),
        exp=None,
        flags="",
        label=None,
    )
    box.clear()
    box.send_keys(shl.shlink(elsewhere))
    driver.find_element(By.ID, "paste-open").click()
    assert "belongs to another service (links.example.org)" in _problem(driver)
    box.clear()
    box.send_keys(link.viewer_url)
    driver.find_element(By.ID, "paste-open").click()
    assert not driver.find_element(By.ID, "passcode-field").is_displayed()
    _open(driver, None)
    assert "no longer active" in _problem(driver)
    assert not driver.find_element(By.ID, "record").is_displayed()
    _shot(driver, "shl-viewer-4-revoked")


def test_expired_payload_says_expired_without_asking(
    links_service: LinksService,
    consented: tuple[str, str],
    viewer_browser: webdriver.Chrome,
) -> None:
    driver = viewer_browser
    link = _link(links_service, consented, passcode=PASSCODE)
    yesterday = int((datetime.now(UTC) - timedelta(days=1)).timestamp())
    stale = shl.viewer_url(links_service.viewer, shl.shlink({**link.payload, "exp": yesterday}))
    _sent(driver)
    driver.get(stale)
    assert "expired" in _problem(driver)
    assert not driver.find_element(By.ID, "access").is_displayed()
    manifest_path = link.manifest_url.removeprefix(links_service.base)
    assert not any(manifest_path in r["url"] for r in _sent(driver))
    _shot(driver, "shl-viewer-5-expired")


def test_single_file_link_opens_without_a_manifest(
    links_service: LinksService,
    consented: tuple[str, str],
    viewer_browser: webdriver.Chrome,
) -> None:
    """A U link (the summary alone): the viewer GETs the file itself with ?recipient=."""
    driver = viewer_browser
    patient_id, consent_id = consented
    package = _package(patient_id, consent_id)
    now = datetime.now(UTC)
    link = create_link(
        links_service.store,
        SharePackage(plan=package.plan, files=package.files[:1], counts={}, photos=0),
        label=None,
        passcode=None,
        expires_at=now + timedelta(hours=1),
        max_accesses=None,
        single_file=True,
        created_by="Practitioner/e2e",
        links_base=links_service.base,
        viewer_base=links_service.viewer,
        now=now,
    )
    assert link.flags == "U"
    _sent(driver)
    driver.get(link.viewer_url)
    assert not _visible(driver, "access").find_element(By.ID, "passcode-field").is_displayed()
    _open(driver, None)
    _visible(driver, "record")
    assert "Tretinoin cream 0.025%" in driver.find_element(By.ID, "summary").text
    assert not driver.find_element(By.ID, "photos").is_displayed()
    gets = [r for r in _sent(driver) if r["url"].startswith(link.manifest_url + "?")]
    assert [r["method"] for r in gets] == ["GET"]
    assert "recipient=" in gets[0]["url"] and link.payload["key"] not in gets[0]["url"]


def test_viewer_page_is_static_under_the_csp(links_service: LinksService) -> None:
    """The page carries no data and no inline script or style; the CSP allows only the
    service's own script and fetches."""
    answer = requests.get(links_service.viewer, timeout=10)
    assert answer.status_code == 200
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    page = answer.text
    assert re.findall(r"<script\b[^>]*>", page) == ['<script src="/static/viewer.js" defer>']
    assert "<style" not in page and not re.search(r"<[^>]*\s(style|on\w+)\s*=", page, re.I)
    assert requests.get(f"{links_service.base}/static/viewer.js", timeout=10).ok


def test_rate_limited_manifest_says_how_long_to_wait(
    stack: dict[str, str],
    consented: tuple[str, str],
    viewer_browser: webdriver.Chrome,
    tmp_path: Path,
) -> None:
    """Past the per-link rate limit the viewer says how long to wait. A service of its own
    with one worker (the limit is counted per process) on a free port, on the same store."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base = f"http://localhost:{probe.getsockname()[1]}"
    with serve_links(stack, base, tmp_path / "links.log", SYMFHIR_WORKERS="1") as service:
        driver = viewer_browser
        link = _link(service, consented, passcode=None)
        limit = load_link_settings().per_link.requests
        # Malformed requests (400) count against the link's window like any other.
        answers = [
            requests.post(link.manifest_url, json={}, timeout=10).status_code for _ in range(limit)
        ]
        assert set(answers) == {400}
        driver.get(link.viewer_url)
        _open(driver, None)
        message = _problem(driver)
        assert re.search(r"Too many attempts\. Wait \d+ seconds", message), message
        assert not driver.find_element(By.ID, "open").is_enabled()
        _shot(driver, "shl-viewer-6-rate-limited")
