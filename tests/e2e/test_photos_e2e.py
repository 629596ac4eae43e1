"""In real headless Chromium: the practitioner opens a client's Photos page, uploads a phone
photo carrying GPS EXIF through the file input, sees it in the gallery, compares a before and
an after photo, and the FHIR server (read directly) holds a Media and a Binary with no EXIF."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
import requests
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from symfhir.photos.clean import clean_image
from tests.e2e.conftest import shot
from tests.e2e.test_launch_e2e import _launch_url, _patient_id

pytestmark = pytest.mark.e2e

PHOTO_SYSTEM = "http://symfhir.org/fhir/sid/symetrie-studio-spa/photo"
GPS_IFD = 0x8825


def phone_photo() -> bytes:
    """A fixed JPEG with camera and GPS EXIF (fixed, so a re-run finds it already stored)."""
    image = Image.new("RGB", (320, 240))
    image.putdata([((x * 3) % 256, (y * 5) % 256, 128) for y in range(240) for x in range(320)])
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x0110] = "Model X"
    exif[GPS_IFD] = {1: "N", 2: (29.0, 57.0, 12.0), 3: "W", 4: (90.0, 4.0, 30.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes(), quality=90)
    return out.getvalue()


def _loaded(driver, element) -> bool:
    return bool(
        driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", element)
    )


def test_upload_gallery_compare_and_the_stored_photo_has_no_exif(stack, browser, tmp_path: Path):
    fhir = stack["fhir"]
    patient = _patient_id(fhir, "C0001")
    wait = WebDriverWait(browser, 30)
    browser.get(_launch_url(stack, patient))
    wait.until(ec.presence_of_element_located((By.ID, "summary-title")))

    browser.get(f"{stack['app']}/photos")
    wait.until(ec.presence_of_element_located((By.ID, "photos-title")))
    shot(browser, "photos-01-gallery")
    assert browser.find_elements(By.CSS_SELECTOR, "ul#gallery li.photo")  # the sample's photos

    raw = phone_photo()
    assert Image.open(io.BytesIO(raw)).getexif().get_ifd(GPS_IFD)
    path = tmp_path / "IMG_0001.jpg"
    path.write_bytes(raw)
    browser.find_element(By.ID, "photo-files").send_keys(str(path))
    # photos.js (allowed by the CSP as a file of the app) lists the chosen files.
    listed = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#selected-files li")))
    assert listed.text == "IMG_0001.jpg"
    Select(browser.find_element(By.ID, "body-site")).select_by_value("cheeks")
    Select(browser.find_element(By.ID, "view")).select_by_value("left_oblique")
    Select(browser.find_element(By.ID, "phase")).select_by_value("progress")
    assert browser.find_element(By.ID, "taken-at").get_attribute("value")  # defaults to now
    shot(browser, "photos-02-upload-form")
    browser.find_element(By.ID, "upload-submit").click()
    result = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#upload-result li.upload-ok"))
    )
    shot(browser, "photos-03-uploaded")
    assert "IMG_0001.jpg" in result.text
    assert not browser.find_elements(By.CSS_SELECTOR, "#upload-result li.upload-error")

    # The Media the upload made (its identifier is the cleaned image's SHA-1).
    digest = base64.b64decode(clean_image(raw, record="e2e").sha1_b64).hex()
    found = requests.get(
        f"{fhir}/Media", params={"identifier": f"{PHOTO_SYSTEM}|C0001-{digest}"}, timeout=30
    ).json()
    (entry,) = found["entry"]
    item = entry["resource"]
    photo = browser.find_element(
        By.CSS_SELECTOR, f'ul#gallery li.photo[data-media-id="{item["id"]}"]'
    )
    assert photo.get_attribute("data-body-site") == "cheeks"
    assert photo.get_attribute("data-phase") == "progress"
    assert photo.find_element(By.CSS_SELECTOR, 'span.badge[data-use="clinical"]')
    thumbnail = photo.find_element(By.TAG_NAME, "img")
    browser.execute_script("arguments[0].scrollIntoView()", thumbnail)
    wait.until(lambda d: _loaded(d, thumbnail))
    shot(browser, "photos-04-in-gallery")

    browser.find_element(By.ID, "compare-link").click()
    wait.until(ec.presence_of_element_located((By.ID, "compare")))
    before = browser.find_element(By.ID, "before-image")
    after = browser.find_element(By.ID, "after-image")
    wait.until(lambda d: _loaded(d, before) and _loaded(d, after))
    shot(browser, "photos-05-compare")
    sides = browser.find_elements(By.CSS_SELECTOR, "#compare figure")
    assert "Before" in sides[0].text and "After" in sides[1].text

    # The server, read independently of the app: Media and Binary exist, no EXIF is left.
    assert item["subject"]["reference"] == f"Patient/{patient}"
    assert item["content"]["hash"] == clean_image(raw, record="e2e").sha1_b64
    binary_ref = item["content"]["url"]
    assert binary_ref.startswith("Binary/")
    binary = requests.get(
        f"{fhir}/{binary_ref}", headers={"Accept": "application/fhir+json"}, timeout=30
    ).json()
    assert binary["securityContext"]["reference"] == f"Patient/{patient}"
    data = base64.b64decode(binary["data"])
    stored = Image.open(io.BytesIO(data))
    assert dict(stored.getexif()) == {}
    assert not stored.getexif().get_ifd(GPS_IFD)
    assert b"PhoneMaker" not in data and b"Exif" not in data
    assert stored.size == (320, 240)
