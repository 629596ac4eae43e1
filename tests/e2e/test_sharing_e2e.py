"""In real headless Chromium, physician sharing end to end, as the issue's "Done means": from
the chart of a copy of synthetic client C0011 made for this run (a clinical-photo consent and a
photo on file, a physician on file; a copy, so that withdrawing its consent leaves the sample
as imported for the tests that compare it), the practitioner records a physician-sharing
consent covering the photos, creates a passcode-protected SMART Health Link and sees its QR
code; the physician opens the viewer URL,
fails the passcode (the attempts left are shown), then sees the summary and the photo,
decrypted in the browser; the practitioner sees the access on the Sharing tab and revokes the
link; the link then gives 404 (the viewer says it is no longer active, a direct manifest POST
answers 404); and the accounting of disclosures (``symfhir disclosures``) lists the access.
A push from the chart lands the summary document on a second HAPI (the physician's server).

The link service runs as ``make demo`` runs it (``scripts/serve links``) on the stack's store;
the link is also opened with the independent decoder written from the specification
(tests/shl_decoder.py). The viewer showing the summary is saved to
docs/images/physician-view.png for the README when it is missing or E2E_UPDATE_DOCS_IMAGES
is set.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from symfhir.cli import main
from tests import shl_decoder
from tests.e2e.conftest import shot
from tests.e2e.links_stack import LinksService
from tests.e2e.test_launch_e2e import _launch_url, _patient_id
from tests.integration.conftest import ROOT, empty_fhir_base  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e

SAMPLE_CLIENT = "C0011"
CLIENT_NAME = "Priya Pellham"  # the client, who signs the consent (the sample's C0011)
PHYSICIAN = "Umberfield"  # Dr. Tomás Umberfield, the sample's physician on file for C0011
PASSCODE = "lagoon-cedar-17"
RECIPIENT = "Dr. Imani Synthetic, Bayou Family Medicine"
LABEL = "Summary and photos for your physician"
README_IMAGE = ROOT / "docs" / "images" / "physician-view.png"


@pytest.fixture(scope="module")
def client(stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The id of a copy of the sample's C0011 imported for this run: every id-bearing cell
    (the client's, its treatments', its consents') renamed, the files kept."""
    new = f"E2E{uuid.uuid4().hex[:8].upper()}"
    folder = tmp_path_factory.mktemp("client-copy") / "sample"
    shutil.copytree(ROOT / "tests" / "data" / "sample", folder)
    for name in ("clients.csv", "photos.csv"):
        with (folder / name).open(newline="", encoding="utf-8") as source:
            reader = csv.DictReader(source)
            fields = list(reader.fieldnames or [])
            rows = [row for row in reader if row["client_id"] == SAMPLE_CLIENT]
        for row in rows:
            for key, value in row.items():
                if key != "file" and value:
                    row[key] = value.replace(SAMPLE_CLIENT, new)
        with (folder / name).open("w", newline="", encoding="utf-8") as target:
            writer = csv.DictWriter(target, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    code = main(
        [
            "import",
            str(folder / "clients.csv"),
            "--photos",
            str(folder / "photos.csv"),
            "--server",
            stack["fhir"],
            "--rejects",
            str(folder / "rejects.csv"),
            "--checkpoint",
            str(folder / "checkpoint.json"),
            "--quiet",
        ]
    )
    assert code == 0, (folder / "rejects.csv").read_text(encoding="utf-8")
    return new


def _wait(browser, seconds: int = 30) -> WebDriverWait:
    return WebDriverWait(browser, seconds)


def _loaded(driver, element) -> bool:
    return bool(
        driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", element)
    )


def _capture_sharing_consent(browser) -> None:
    """On the Consents page (reached from the Sharing tab's link): the physician-sharing
    consent, given by the client, covering the summary, intake and the clinical photos."""
    _wait(browser).until(ec.presence_of_element_located((By.ID, "capture-form")))
    kind = Select(browser.find_element(By.ID, "kind"))
    assert kind.first_selected_option.get_attribute("value") == "physician_sharing"  # preselected
    browser.find_element(By.ID, "decision-given").click()
    Select(browser.find_element(By.ID, "signer")).select_by_value("client")
    name = browser.find_element(By.ID, "signer-name")
    name.clear()
    name.send_keys(CLIENT_NAME)
    for scope in ("intake", "photos"):
        box = browser.find_element(By.ID, f"share-scope-{scope}")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
        if not box.is_selected():
            box.click()
    typed = browser.find_element(By.ID, "typed-signature")
    typed.clear()
    typed.send_keys(CLIENT_NAME)
    shot(browser, "sharing-02-consent-form")
    browser.find_element(By.ID, "capture-submit").click()
    # The capture was opened from the Sharing tab: it comes back there, the consent in force.
    _wait(browser).until(ec.presence_of_element_located((By.ID, "consent-saved")))
    assert browser.find_element(By.ID, "sharing-title")
    assert "Active" in browser.find_element(By.ID, "consent-state").text


def _viewer_open(browser, viewer_url: str, passcode: str) -> None:
    browser.get("about:blank")  # a new document: the viewer starts from the fragment again
    browser.get(viewer_url)
    _wait(browser).until(ec.visibility_of_element_located((By.ID, "access-form")))
    recipient = browser.find_element(By.ID, "recipient")
    recipient.clear()
    recipient.send_keys(RECIPIENT)
    field = browser.find_element(By.ID, "passcode")
    field.clear()
    field.send_keys(passcode)
    browser.find_element(By.ID, "open").click()


def _problem(browser) -> str:
    element = _wait(browser).until(ec.visibility_of_element_located((By.ID, "problem")))
    _wait(browser).until(lambda d: element.text.strip())
    return element.text


def test_share_with_the_physician_from_the_chart_to_the_viewer_and_revoke(
    stack,
    browser,
    links_service: LinksService,
    client: str,
    tmp_path: Path,
) -> None:
    app, fhir = stack["app"], stack["fhir"]
    started = datetime.now(UTC).replace(microsecond=0)
    patient = _patient_id(fhir, client)
    browser.get(_launch_url(stack, patient))
    _wait(browser).until(ec.presence_of_element_located((By.ID, "summary-title")))

    # 1. The Sharing tab. A consent left by an earlier run is withdrawn first (on the Consents
    #    page), so that the tab offers its capture; then it is recorded, covering the photos.
    browser.find_element(By.ID, "nav-sharing").click()
    _wait(browser).until(ec.presence_of_element_located((By.ID, "sharing-title")))
    if browser.find_elements(By.ID, "consent-facts"):
        browser.find_element(By.ID, "nav-consents").click()
        withdraw = _wait(browser).until(
            ec.presence_of_element_located((By.ID, "withdraw-physician_sharing"))
        )
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", withdraw)
        withdraw.click()
        _wait(browser).until(ec.presence_of_element_located((By.ID, "consent-saved")))
        browser.find_element(By.ID, "nav-sharing").click()
        _wait(browser).until(ec.presence_of_element_located((By.ID, "sharing-title")))
    assert browser.find_elements(By.ID, "no-sharing-consent")
    assert not browser.find_elements(By.ID, "create-link-form")  # deny by default
    shot(browser, "sharing-01-no-consent")
    browser.find_element(By.ID, "capture-sharing-consent").click()
    _capture_sharing_consent(browser)
    browser.find_element(By.ID, "nav-sharing").click()
    _wait(browser).until(ec.presence_of_element_located((By.ID, "consent-facts")))
    assert "Active" in browser.find_element(By.ID, "consent-state").text
    assert PHYSICIAN in browser.find_element(By.ID, "consent-physician").text
    scopes = [
        e.get_attribute("data-scope")
        for e in browser.find_elements(By.CSS_SELECTOR, "#consent-scopes .scope")
    ]
    assert {"summary", "photos"} <= set(scopes)
    assert browser.find_element(By.ID, "consent-photos").text == "Given"

    # 2. Create a passcode-protected link with the photos; its QR code is shown.
    photos = browser.find_element(By.ID, "link-scope-photos")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", photos)
    if not photos.is_selected():
        photos.click()
    browser.find_element(By.ID, "label").send_keys(LABEL)
    browser.find_element(By.ID, "passcode").send_keys(PASSCODE)
    days = browser.find_element(By.ID, "expires_days")
    days.clear()
    days.send_keys("7")
    shot(browser, "sharing-03-create-form")
    browser.find_element(By.ID, "create-link-submit").click()
    _wait(browser, 60).until(ec.presence_of_element_located((By.ID, "link-created")))
    qr = browser.find_element(By.ID, "qr-image")
    _wait(browser).until(lambda d: _loaded(d, qr))
    assert browser.execute_script("return arguments[0].naturalWidth", qr) >= 100
    shot(browser, "sharing-04-link-created")
    link_id = browser.find_element(By.ID, "link-created").get_attribute("data-link")
    viewer_url = browser.find_element(By.ID, "viewer-url").get_attribute("value").strip()
    shlink = browser.find_element(By.ID, "shlink").get_attribute("value").strip()
    assert viewer_url == f"{links_service.viewer}#{shlink}"
    payload = shl_decoder.parse(shlink)
    assert payload["flag"] == "P" and payload["label"] == LABEL
    assert payload["url"].startswith(f"{links_service.base}/")
    svg = browser.find_element(By.ID, "download-qr-svg").get_attribute("href")
    assert svg.startswith("data:image/svg+xml;base64,")

    # 3. The physician: a wrong passcode shows the attempts left.
    _viewer_open(browser, viewer_url, "not-the-passcode")
    assert "4 attempts left" in _problem(browser)
    shot(browser, "sharing-05-viewer-wrong-passcode")

    # 4. The right passcode: the summary and the photo, decrypted in the browser.
    _viewer_open(browser, viewer_url, PASSCODE)
    summary = _wait(browser, 60).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "#summary h2, #summary h3"))
    )
    assert summary.text
    text = browser.find_element(By.ID, "summary").text
    assert "Allerg" in text and "Medication" in text
    photo = _wait(browser).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#photos-body figure.photo img"))
    )
    _wait(browser).until(lambda d: _loaded(d, photo))
    browser.execute_script("window.scrollTo(0, 0)")
    viewed = shot(browser, "sharing-06-viewer-summary")
    # The README's picture: made when missing, or remade on request (a run does not dirty
    # the work tree with a new PNG each time).
    if not README_IMAGE.exists() or os.environ.get("E2E_UPDATE_DOCS_IMAGES"):
        README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(viewed, README_IMAGE)
    # The key stayed in the browser: the service's log never saw it.
    assert payload["key"] not in links_service.log_text()

    # The same link, opened by software written from the specification, not by our code.
    files = shl_decoder.open_link(payload, recipient=RECIPIENT, passcode=PASSCODE)
    documents = [json.loads(data) for _, data in files]
    assert documents[0]["resourceType"] == "Bundle" and documents[0]["type"] == "document"
    media = [d for d in documents if d.get("resourceType") == "Media"]
    assert media and all(m["content"]["contentType"].startswith("image/") for m in media)

    # 5. The chart lists the accesses (recipient, time, the passcode failure); revoke.
    browser.get(f"{app}/sharing")
    row = _wait(browser).until(ec.presence_of_element_located((By.ID, f"link-{link_id}")))
    assert row.get_attribute("data-status") == "active"
    outcomes = [
        e.get_attribute("data-outcome") for e in row.find_elements(By.CSS_SELECTOR, "li.access")
    ]
    assert outcomes.count("wrong-passcode") == 1 and outcomes.count("ok") == 2
    assert RECIPIENT in row.text
    assert row.find_element(By.CSS_SELECTOR, ".passcode-failures").text == "1 of 5"
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", row)
    shot(browser, "sharing-07-accesses")
    row.find_element(By.ID, f"revoke-{link_id}").click()
    _wait(browser).until(ec.presence_of_element_located((By.ID, "link-revoked")))
    row = browser.find_element(By.ID, f"link-{link_id}")
    assert row.get_attribute("data-status") == "revoked"
    assert not row.find_elements(By.ID, f"revoke-{link_id}")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", row)
    shot(browser, "sharing-08-revoked")

    # 6. The link now gives 404: the viewer says so, and a direct POST gets 404.
    _viewer_open(browser, viewer_url, PASSCODE)
    assert "no longer active" in _problem(browser)
    shot(browser, "sharing-09-viewer-inactive")
    answer = requests.post(
        payload["url"], json={"recipient": RECIPIENT, "passcode": PASSCODE}, timeout=30
    )
    assert answer.status_code == 404

    # 7. The accounting of disclosures lists the accesses: to the physician, for treatment.
    out = tmp_path / "disclosures.csv"
    code = main(
        ["disclosures", "--patient", patient, "--server", fhir, "--format", "csv", "-o", str(out)]
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    opened = [
        r
        for r in rows
        if r["purpose_code"] == "TREAT"
        and PHYSICIAN in r["recipient"]
        and datetime.fromisoformat(r["date"]) >= started
    ]
    assert len(opened) >= 2, rows  # the viewer's and the decoder's
    assert all(r["outcome"] == "completed" for r in opened)


def _push(browser, base_url: str, mode: str) -> dict[str, str]:
    """Fill "Send to the physician's FHIR server" and send; the report's rows by type."""
    form = browser.find_element(By.ID, "push-form")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", form)
    for scope in ("intake", "photos"):
        boxes = browser.find_elements(By.ID, f"push-scope-{scope}")
        if boxes and boxes[0].is_enabled() and not boxes[0].is_selected():
            boxes[0].click()
    url = browser.find_element(By.ID, "base_url")
    url.clear()
    url.send_keys(base_url)
    browser.find_element(By.ID, "token").send_keys("synthetic-bearer-token")
    browser.find_element(By.ID, f"mode-{mode}").click()
    browser.find_element(By.ID, "push-submit").click()
    _wait(browser, 120).until(
        lambda d: d.find_elements(By.ID, "push-report") or d.find_elements(By.ID, "err-push")
    )
    refused = browser.find_elements(By.ID, "err-push")
    assert not refused, refused[0].text
    report = browser.find_element(By.ID, "push-report")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", report)
    assert "synthetic-bearer-token" not in browser.page_source  # never sent back
    return {
        row.get_attribute("data-type"): row.find_elements(By.TAG_NAME, "td")[1].text
        for row in report.find_elements(By.CSS_SELECTOR, "#push-sent tbody tr")
    }


def test_push_from_the_chart_lands_on_the_physicians_server(
    stack,
    browser,
    empty_fhir_base: str,  # noqa: F811 - the fixture imported above
    client: str,
) -> None:
    """The push, from the chart, to a second HAPI standing in for the physician's server: the
    summary document lands there and is read back; then the shared resources as a transaction
    (the faults are tested with the push itself, tests/faults/test_push_faults.py)."""
    fhir = stack["fhir"]
    patient = _patient_id(fhir, client)
    browser.get(_launch_url(stack, patient))
    _wait(browser).until(ec.presence_of_element_located((By.ID, "summary-title")))
    browser.find_element(By.ID, "nav-sharing").click()
    _wait(browser).until(ec.presence_of_element_located((By.ID, "push-form")))

    sent = _push(browser, empty_fhir_base, "document")
    shot(browser, "sharing-10-pushed-document")
    assert sent["Composition"] == "1" and sent["Patient"] == "1"
    found = requests.get(
        f"{empty_fhir_base}/Bundle", params={"type": "document", "_count": 50}, timeout=30
    ).json()
    documents = [e["resource"] for e in found.get("entry", [])]
    assert any(
        r["resource"].get("resourceType") == "Patient"
        and r["resource"]["name"][0]["family"] == "Pellham"
        for d in documents
        for r in d.get("entry", [])
    )

    sent = _push(browser, empty_fhir_base, "transaction")
    shot(browser, "sharing-11-pushed-transaction")
    assert sent["Patient"] == "1" and "Composition" not in sent
    landed = requests.get(
        f"{empty_fhir_base}/Patient",
        params={"family": "Pellham", "_revinclude": "Provenance:target"},
        timeout=30,
    ).json()
    kinds = [e["resource"]["resourceType"] for e in landed.get("entry", [])]
    assert "Patient" in kinds and "Provenance" in kinds, kinds
