"""The Photos page against a fake FHIR server: gallery and badges, thumbnails through the app,
upload (one transaction, Binary with securityContext, EXIF gone), refusals (non-image,
no consent, CSRF, read-only, too large) and another patient's photo."""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from smart_app import photos as photos_view
from smart_app.photos import bp as photos_bp
from symfhir.mapping.photos import PHASE_EXTENSION
from symfhir.photos.files import sha1_b64
from symfhir.workspace.photos import uploading
from tests.app.capabilities import Capabilities
from tests.app.conftest import launch
from tests.app.fake_ehr import FHIR_JSON, FakeEhr

pytestmark = pytest.mark.unit

WRITE_SCOPE = (
    "openid fhirUser launch offline_access patient/Patient.r patient/Procedure.rs "
    "patient/Consent.rs patient/Media.crs patient/Binary.cr patient/Provenance.cr "
    "patient/AuditEvent.c"
)
READ_SCOPE = "openid fhirUser launch patient/*.rs"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
KIND = "http://symfhir.org/fhir/CodeSystem/consent-kind"
SNOMED = "http://snomed.info/sct"
LIPS = "48477009"
FACE = "89545001"
GPS_IFD = 0x8825


def consent(pid: str, kind: str, status: str, when: str, deny: bool = False) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": status,
        "patient": {"reference": f"Patient/{pid}"},
        "dateTime": when,
        "category": [{"coding": [{"system": KIND, "code": kind}]}],
        "provision": {"type": "deny" if deny else "permit"},
    }


def media(mid: str, pid: str, phase: str, site: str, when: str, binary: str) -> dict[str, Any]:
    return {
        "resourceType": "Media",
        "id": mid,
        "status": "completed",
        "extension": [{"url": PHASE_EXTENSION, "valueCoding": {"code": phase}}],
        "subject": {"reference": f"Patient/{pid}"},
        "createdDateTime": when,
        "bodySite": {"coding": [{"system": SNOMED, "code": site}]},
        "partOf": [{"reference": "Procedure/t1"}],
        "content": {"contentType": "image/jpeg", "url": f"Binary/{binary}"},
    }


def jpeg(color: str = "red", gps: bool = False, size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", size, color)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    if gps:
        exif[GPS_IFD] = {1: "N", 2: (29.0, 57.0, 0.0), 3: "W", 4: (90.0, 4.0, 0.0)}
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


class PhotoServer:
    """Media and Binary reads and the transaction endpoint added to the fake EHR."""

    def __init__(self, fake: FakeEhr) -> None:
        self.fake = fake
        self.server: HTTPServer = fake.server
        self.binaries: dict[str, tuple[str, bytes]] = {}
        self.transactions: list[dict[str, Any]] = []
        self.refuse_next = False
        self.capabilities = Capabilities(self.server)
        self.server.expect_request(
            re.compile(r"^/fhir/Media/[^/]+$"), method="GET"
        ).respond_with_handler(self._read_media)
        self.server.expect_request(
            re.compile(r"^/fhir/Binary/[^/]+$"), method="GET"
        ).respond_with_handler(self._read_binary)

    def _read_media(self, request: Request) -> Response:
        mid = request.path.rsplit("/", 1)[1]
        for resource in self.fake.resources:
            if resource["resourceType"] == "Media" and resource.get("id") == mid:
                return Response(json.dumps(resource), content_type=FHIR_JSON)
        return Response(json.dumps({"resourceType": "OperationOutcome"}), status=404)

    def _read_binary(self, request: Request) -> Response:
        found = self.binaries.get(request.path.rsplit("/", 1)[1])
        if found is None:
            return Response(json.dumps({"resourceType": "OperationOutcome"}), status=404)
        return Response(found[1], content_type=found[0])

    def expect_transaction(self) -> None:
        # A oneshot handler is matched before the fake EHR's permanent batch handler.
        self.server.expect_oneshot_request("/fhir", method="POST").respond_with_handler(
            self._transaction
        )

    def _transaction(self, request: Request) -> Response:
        bundle = json.loads(request.get_data())
        if bundle["type"] == "batch":  # a read before the write: still expect the write
            self.expect_transaction()
            return self.fake._batch(request)
        assert bundle["type"] == "transaction"
        if self.refuse_next:
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "processing", "diagnostics": "no"}],
            }
            return Response(json.dumps(outcome), status=422, content_type=FHIR_JSON)
        self.transactions.append(bundle)
        ids = {}
        for index, entry in enumerate(bundle["entry"]):
            ids[entry["fullUrl"]] = f"{entry['resource']['resourceType']}/n{index}"
        answers = []
        for entry in bundle["entry"]:
            resource = json.loads(json.dumps(entry["resource"]))
            kind, rid = ids[entry["fullUrl"]].split("/")
            resource["id"] = rid
            if kind == "Binary":
                data = base64.b64decode(resource["data"])
                self.binaries[rid] = (resource["contentType"], data)
            if kind == "Media":
                resource["content"]["url"] = ids[resource["content"]["url"]]
                self.fake.resources.append(resource)
            answers.append(
                {"response": {"status": "201 Created", "location": f"{kind}/{rid}/_history/1"}}
            )
        answer = {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}
        return Response(json.dumps(answer), content_type=FHIR_JSON)


@pytest.fixture
def app(app: Flask) -> Flask:
    if "photos" not in app.blueprints:  # until the factory registers it
        app.register_blueprint(photos_bp)
    return app


@pytest.fixture
def server(fake_ehr: FakeEhr) -> PhotoServer:
    pid = fake_ehr.patient_id
    fake_ehr.resources = [
        {
            "resourceType": "Patient",
            "id": pid,
            "identifier": [
                {
                    "system": "http://symfhir.org/fhir/sid/symetrie-studio-spa/client-id",
                    "value": "C9",
                }
            ],
        },
        {
            "resourceType": "Procedure",
            "id": "t1",
            "status": "completed",
            "subject": {"reference": f"Patient/{pid}"},
            "code": {"text": "Dermal filler injection"},
            "performedDateTime": "2026-03-06",
        },
        consent(pid, "photos_clinical", "active", "2026-01-10T00:00:00-06:00"),
        consent(pid, "photos_social", "active", "2026-03-01T00:00:00-06:00"),
        consent(pid, "photos_website", "rejected", "2026-01-10T00:00:00-06:00", deny=True),
        media("m1", pid, "before", LIPS, "2026-03-06T09:20:00-06:00", "b1"),
        media("m2", pid, "after", LIPS, "2026-03-06T09:58:00-06:00", "b2"),
        media("m3", pid, "before", FACE, "2026-02-01T09:00:00-06:00", "b3"),
        media("m9", "other", "before", LIPS, "2026-03-06T09:20:00-06:00", "b9"),
    ]
    photo_server = PhotoServer(fake_ehr)
    photo_server.binaries.update(
        {"b1": ("image/jpeg", jpeg("red")), "b9": ("image/jpeg", jpeg("blue"))}
    )
    return photo_server


@pytest.fixture
def writer(client: FlaskClient, fake_ehr: FakeEhr, server: PhotoServer) -> FlaskClient:
    fake_ehr.granted_scope = WRITE_SCOPE
    assert launch(client, fake_ehr).status_code == 303
    return client


def token(page: str) -> str:
    match = CSRF.search(page)
    assert match
    return match.group(1)


def form(csrf: str, files: list[tuple[bytes, str]], **fields: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "csrf_token": csrf,
        "body_site": "lips",
        "view": "close_up",
        "phase": "after",
        "treatment": "t1",
        "taken_at": "2026-03-07T10:00",
    }
    data.update(fields)
    data["photos"] = [(io.BytesIO(raw), name) for raw, name in files]
    return data


def gallery_items(page: str) -> dict[str, str]:
    """media id → the li's HTML."""
    items = re.findall(r'(<li class="photo" data-media-id="([^"]+)".*?</li>)', page, re.S)
    return {mid: html for html, mid in items}


def test_gallery_lists_own_photos_with_allowed_use_badges(writer: FlaskClient, fake_ehr):
    response = writer.get("/photos")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    items = gallery_items(page)
    assert set(items) == {"m1", "m2", "m3"}  # never the other patient's m9
    assert 'data-phase="before" data-body-site="lips"' in items["m1"]
    # Clinical consent from January: clinical for every photo; social from March 1 only.
    assert re.findall(r'data-use="(\w+)"', items["m1"]) == ["clinical", "social"]
    assert re.findall(r'data-use="(\w+)"', items["m3"]) == ["clinical"]
    assert "Not for marketing" in items["m3"]
    assert 'data-use="website"' not in page  # declined
    assert 'src="/photos/m1/image?size=thumb"' in items["m1"]
    assert 'id="compare-link" href="/photos/compare?before=m1&amp;after=m2"' in page
    assert "Dermal filler injection · 2026-03-06" in page
    (listed,) = _audited(fake_ehr, "photos view read Patient, Media, Procedure, Consent")
    assert sorted(listed) == ["Media/m1", "Media/m2", "Media/m3", f"Patient/{fake_ehr.patient_id}"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("body_site=lips", {"m1", "m2"}),
        ("body_site=face", {"m3"}),
        ("treatment=t1&body_site=face", {"m3"}),
        ("treatment=nope", set()),
    ],
)
def test_gallery_filters(writer: FlaskClient, query: str, expected: set[str]):
    page = writer.get(f"/photos?{query}").get_data(as_text=True)
    assert set(gallery_items(page)) == expected


def test_image_streams_the_binary_without_caching(writer: FlaskClient, server: PhotoServer):
    response = writer.get("/photos/m1/image")
    assert response.status_code == 200
    assert response.mimetype == "image/jpeg"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data == server.binaries["b1"][1]


def test_gallery_previews_are_small_jpegs_of_the_photo(writer: FlaskClient, server: PhotoServer):
    server.binaries["b1"] = ("image/jpeg", jpeg("red", size=(1600, 1200)))
    response = writer.get("/photos/m1/image?size=thumb")
    assert response.status_code == 200
    assert response.mimetype == "image/jpeg"
    assert response.headers["Cache-Control"] == "no-store"
    preview = Image.open(io.BytesIO(response.data))
    assert preview.size == (480, 360)
    assert preview.getpixel((240, 180))[0] > 200  # still the red photo
    assert len(response.data) < len(server.binaries["b1"][1])


def test_an_unknown_image_size_is_refused_before_any_read(writer: FlaskClient, fake_ehr):
    before = len(fake_ehr.server.log)
    response = writer.get("/photos/m1/image?size=huge")
    assert response.status_code == 400
    assert "Unknown image size" in response.get_data(as_text=True)
    assert len(fake_ehr.server.log) == before


def _audited(fake_ehr: FakeEhr, description: str) -> list[list[str]]:
    """The entity references of each AuditEvent with ``description``."""
    return [
        [e["what"]["reference"] for e in event["entity"] if "what" in e]
        for event in fake_ehr.audit_events
        if event.get("outcomeDesc") == description
    ]


def test_each_image_read_is_audited_with_its_media_and_binary(
    writer: FlaskClient, fake_ehr: FakeEhr
):
    assert writer.get("/photos/m1/image").status_code == 200
    assert writer.get("/photos/m1/image").status_code == 200
    expected = [f"Patient/{fake_ehr.patient_id}", "Media/m1", "Binary/b1"]
    assert _audited(fake_ehr, "photo image read") == [expected, expected]


def test_image_of_another_patient_is_refused(writer: FlaskClient, fake_ehr: FakeEhr):
    response = writer.get("/photos/m9/image")
    assert response.status_code == 404
    assert 'data-error-code="photo_not_found"' in response.get_data(as_text=True)
    assert fake_ehr.requests_to("/fhir/Binary") == []
    assert any(e["outcome"] == "4" for e in fake_ehr.audit_events)


def test_image_never_follows_a_url_to_another_server(writer: FlaskClient, fake_ehr: FakeEhr):
    fake_ehr.resources[5]["content"]["url"] = "https://evil.example/Binary/b1"
    response = writer.get("/photos/m1/image")
    assert response.status_code == 404
    assert fake_ehr.requests_to("/fhir/Binary") == []


def test_compare_shows_both_photos(writer: FlaskClient, fake_ehr: FakeEhr):
    response = writer.get("/photos/compare?before=m1&after=m2")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="before-image" src="/photos/m1/image"' in page
    assert 'id="after-image" src="/photos/m2/image"' in page
    assert 'id="site-mismatch"' not in page
    assert _audited(fake_ehr, "photos compare read Media") == [
        [f"Patient/{fake_ehr.patient_id}", "Media/m1", "Media/m2"]
    ]


def test_compare_of_different_sites_says_so_and_refuses_other_patients(writer: FlaskClient):
    page = writer.get("/photos/compare?before=m3&after=m2").get_data(as_text=True)
    assert 'id="site-mismatch"' in page
    response = writer.get("/photos/compare?before=m1&after=m9")
    assert response.status_code == 404


def test_upload_writes_one_transaction_with_clean_images(writer: FlaskClient, server, fake_ehr):
    csrf = token(writer.get("/photos").get_data(as_text=True))
    server.expect_transaction()
    raw = jpeg("green", gps=True)
    assert Image.open(io.BytesIO(raw)).getexif().get_ifd(GPS_IFD)  # the input has GPS
    response = writer.post(
        "/photos/upload",
        data=form(
            csrf, [(raw, "IMG_1.jpg"), (jpeg("yellow"), "IMG_2.jpg"), (b"%PDF-1.4", "x.pdf")]
        ),
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert re.search(
        r'<li class="upload-ok"><span class="file-name">IMG_1.jpg</span>: stored', page
    )
    assert re.search(r'<li class="upload-error"><span class="file-name">x.pdf</span>: not an', page)
    (bundle,) = server.transactions
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds == ["Binary", "Media", "Binary", "Media", "Provenance"]
    binary, item = bundle["entry"][0]["resource"], bundle["entry"][1]["resource"]
    assert binary["securityContext"] == {"reference": "Patient/p1"}
    data = base64.b64decode(binary["data"])
    assert data != raw
    stored = Image.open(io.BytesIO(data))
    assert not stored.getexif()
    assert b"Exif" not in data and b"PhoneMaker" not in data
    assert item["subject"] == {"reference": "Patient/p1"}
    assert item["partOf"] == [{"reference": "Procedure/t1"}]
    assert item["content"]["url"] == bundle["entry"][0]["fullUrl"]
    assert item["content"]["size"] == len(data)
    assert item["content"]["hash"] == sha1_b64(data)
    assert item["createdDateTime"] == "2026-03-07T10:00:00-06:00"
    assert item["identifier"][0]["value"].startswith("C9-")
    provenance = bundle["entry"][4]["resource"]
    assert {t["reference"] for t in provenance["target"]} == {
        e["fullUrl"] for e in bundle["entry"][:4]
    }
    assert provenance["agent"][0]["who"] == {"reference": "Practitioner/dr1"}
    assert all(e["request"]["ifNoneExist"] for e in bundle["entry"])
    assert any(e["subtype"][0]["code"] == "create" for e in fake_ehr.audit_events)
    # The new photos are in the gallery.
    assert len(gallery_items(page)) == 5


def test_upload_of_only_non_images_writes_nothing(writer: FlaskClient, server: PhotoServer):
    csrf = token(writer.get("/photos").get_data(as_text=True))
    response = writer.post(
        "/photos/upload",
        data=form(csrf, [(b"<svg></svg>", "a.svg"), (b"hello", "b.txt")]),
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert page.count('class="upload-error"') == 2
    assert server.transactions == []


@pytest.mark.parametrize(
    ("field", "value", "error_id"),
    [
        ("body_site", "elbow", "body-site-error"),
        ("phase", "during", "phase-error"),
        ("treatment", "t99", "treatment-error"),
        ("taken_at", "2099-01-01T10:00", "taken-at-error"),
        ("taken_at", "", "taken-at-error"),
    ],
)
def test_bad_fields_are_shown_next_to_the_field(writer, server, field, value, error_id):
    csrf = token(writer.get("/photos").get_data(as_text=True))
    response = writer.post(
        "/photos/upload",
        data=form(csrf, [(jpeg(), "a.jpg")], **{field: value}),
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert f'id="{error_id}"' in response.get_data(as_text=True)
    assert server.transactions == []


def test_photos_taken_before_clinical_consent_are_refused(writer, server):
    csrf = token(writer.get("/photos").get_data(as_text=True))
    response = writer.post(
        "/photos/upload",
        data=form(csrf, [(jpeg(), "a.jpg")], taken_at="2026-01-09T10:00"),
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="upload-error"' in page and "before the client consented" in page
    assert server.transactions == []


def test_no_clinical_consent_refuses_the_upload(writer, server, fake_ehr):
    fake_ehr.resources = [r for r in fake_ehr.resources if r["resourceType"] != "Consent"]
    page = writer.get("/photos").get_data(as_text=True)
    assert 'id="consent-notice"' in page
    response = writer.post(
        "/photos/upload",
        data=form(token(page), [(jpeg(), "a.jpg")]),
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "never asked for consent" in response.get_data(as_text=True)
    assert server.transactions == []


def test_upload_without_csrf_is_refused(writer: FlaskClient, server: PhotoServer):
    response = writer.post(
        "/photos/upload",
        data=form("wrong", [(jpeg(), "a.jpg")]),
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert 'data-error-code="csrf_failed"' in response.get_data(as_text=True)
    assert server.transactions == []


def test_read_only_session_disables_upload_and_refuses_a_post(client, fake_ehr, server):
    fake_ehr.granted_scope = READ_SCOPE
    launch(client, fake_ehr)
    page = client.get("/photos").get_data(as_text=True)
    assert 'id="read-only-notice"' in page
    assert "<fieldset disabled>" in page
    response = client.post(
        "/photos/upload",
        data=form(token(page), [(jpeg(), "a.jpg")]),
        content_type="multipart/form-data",
    )
    assert response.status_code == 403
    assert 'data-error-code="read_only"' in response.get_data(as_text=True)
    assert server.transactions == []


def test_too_large_request_gets_a_clear_413_page(writer, server, monkeypatch):
    csrf = token(writer.get("/photos").get_data(as_text=True))
    monkeypatch.setattr(photos_view, "MAX_UPLOAD_BYTES", 10_000)
    response = writer.post(
        "/photos/upload",
        data=form(csrf, [(jpeg(size=(400, 400)) + b"\0" * 20_000, "big.jpg")]),
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert 'data-error-code="upload_too_large"' in response.get_data(as_text=True)
    assert server.transactions == []


def test_too_many_files_are_refused(writer, server, monkeypatch):
    monkeypatch.setattr(uploading, "MAX_FILES", 2)
    csrf = token(writer.get("/photos").get_data(as_text=True))
    files = [(jpeg(c), f"{c}.jpg") for c in ("red", "blue", "green")]
    response = writer.post(
        "/photos/upload", data=form(csrf, files), content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert 'id="photos-error"' in response.get_data(as_text=True)
    assert server.transactions == []


def test_missing_create_scope_disables_upload_and_refuses_a_post(client, fake_ehr, server):
    fake_ehr.granted_scope = WRITE_SCOPE.replace("patient/Binary.cr", "patient/Binary.r")
    launch(client, fake_ehr)
    page = client.get("/photos").get_data(as_text=True)
    assert 'id="scope-notice"' in page and "<fieldset disabled>" in page
    response = client.post(
        "/photos/upload",
        data=form(token(page), [(jpeg(), "a.jpg")]),
        content_type="multipart/form-data",
    )
    assert response.status_code == 403
    assert 'data-error-code="missing_scope"' in response.get_data(as_text=True)
    assert server.transactions == []


def test_a_transaction_the_server_refuses_is_reported_per_file(writer, server):
    csrf = token(writer.get("/photos").get_data(as_text=True))
    server.refuse_next = True
    server.expect_transaction()
    response = writer.post(
        "/photos/upload",
        data=form(csrf, [(jpeg(), "a.jpg")]),
        content_type="multipart/form-data",
    )
    assert response.status_code == 502
    page = response.get_data(as_text=True)
    assert 'id="upload-error"' in page and "nothing was stored" in page
    assert '<li class="upload-error"><span class="file-name">a.jpg</span>' in page


def test_upload_on_a_server_without_media_stores_documents_and_says_so(client, fake_ehr, server):
    server.capabilities.creatable.discard("Media")
    fake_ehr.granted_scope = WRITE_SCOPE + " patient/DocumentReference.crs"
    assert launch(client, fake_ehr).status_code == 303
    writer = client
    csrf = token(writer.get("/photos").get_data(as_text=True))
    server.expect_transaction()
    response = writer.post(
        "/photos/upload",
        data=form(csrf, [(jpeg("green"), "IMG_1.jpg")]),
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "IMG_1.jpg</span>: stored as a DocumentReference" in response.get_data(as_text=True)
    (bundle,) = server.transactions
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types == ["Binary", "DocumentReference", "Provenance"]
