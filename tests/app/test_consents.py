"""The Consents page against a fake FHIR server: the page, capture (one transaction with a
Consent and its Provenance), withdrawal (If-Match update), CSRF and read-only sessions."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image, ImageDraw
from werkzeug import Request, Response

from smart_app.consents import bp as consents_bp
from smart_app.consents import consents_batch
from tests.app.conftest import launch
from tests.app.fake_ehr import FHIR_JSON, FakeEhr

pytestmark = pytest.mark.unit

KIND = "http://symfhir.org/fhir/CodeSystem/consent-kind"
SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"


@pytest.fixture
def app(app: Flask) -> Flask:
    # The lead registers the blueprint in create_app; until then the tests do it.
    if "consents" not in app.blueprints:
        app.register_blueprint(consents_bp)
    return app


class Transactions:
    """Answers transaction Bundles POSTed to the fake's base (batches go to the fake)."""

    def __init__(self, fake: FakeEhr) -> None:
        self.fake = fake
        self.bundles: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail_status: int | None = None
        (handler,) = [
            h
            for h in fake.server.handlers
            if h.matcher.uri == "/fhir" and h.matcher.method == "POST"
        ]
        batch = handler.request_handler
        assert batch is not None

        def dispatch(request: Request) -> Response:
            body = json.loads(request.get_data())
            if body.get("type") != "transaction":
                return batch(request)
            return self._transaction(request, body)

        handler.respond_with_handler(dispatch)

    def _transaction(self, request: Request, body: dict[str, Any]) -> Response:
        self.bundles.append(body)
        self.headers.append(dict(request.headers))
        if self.fail_status:
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "conflict", "diagnostics": "version"}],
            }
            return Response(json.dumps(outcome), status=self.fail_status, content_type=FHIR_JSON)
        entries = []
        for index, item in enumerate(body["entry"]):
            resource = dict(item["resource"])
            method = item["request"]["method"]
            if method == "PUT":
                resource["meta"] = {"versionId": "4"}
                self.fake.resources = [
                    r
                    for r in self.fake.resources
                    if not (r["resourceType"] == "Consent" and r.get("id") == resource["id"])
                ] + [resource]
                entries.append({"response": {"status": "200 OK"}})
                continue
            resource["id"] = f"new{len(self.bundles)}-{index}"
            resource["meta"] = {"versionId": "1"}
            if resource["resourceType"] == "Consent":
                self.fake.resources.append(resource)
            entries.append({"response": {"status": "201 Created"}})
        answer = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
        return Response(json.dumps(answer), content_type=FHIR_JSON)


@pytest.fixture
def tx(fake_ehr: FakeEhr) -> Transactions:
    for index, resource in enumerate(fake_ehr.resources):
        if resource["resourceType"] == "Consent":
            resource["id"] = f"c{index}"
            resource["meta"] = {"versionId": "3"}
    fake_ehr.resources.append(
        {
            "resourceType": "Consent",
            "id": "sms1",
            "meta": {"versionId": "3"},
            "status": "active",
            "patient": {"reference": f"Patient/{fake_ehr.patient_id}"},
            "dateTime": "2026-10-01T10:00:00-05:00",
            "scope": {"coding": [{"system": SCOPE, "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": KIND, "code": "marketing_sms"}]}],
            "policy": [{"uri": "http://symfhir.org/fhir/policy/marketing-consent/2026-01-01"}],
            "provision": {"type": "permit", "period": {"start": "2026-10-01"}},
        }
    )
    return Transactions(fake_ehr)


@pytest.fixture
def page(launched: FlaskClient, tx: Transactions) -> Iterator[FlaskClient]:
    yield launched


def csrf(client: FlaskClient) -> str:
    text = client.get("/consents").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert match
    return match.group(1)


def drawn_png(size: tuple[int, int] = (600, 200)) -> str:
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(20, 150), (200, 40), (400, 160)], fill=(0, 0, 0, 255), width=3)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def capture_form(token: str, **fields: str) -> dict[str, str]:
    return {
        "csrf_token": token,
        "kind": "research",
        "decision": "given",
        "signer": "client",
        "signer_name": "Ada Testperson",
        "typed_signature": "Ada Testperson",
        **fields,
    }


def test_page_lists_every_kind_with_status_and_history(page):
    response = page.get("/consents")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert 'id="consent-status"' in text
    assert len(re.findall(r'<tr id="kind-', text)) == 12
    assert 'id="kind-treatment" data-status="given"' in text
    assert 'id="kind-photos_website" data-status="declined"' in text
    assert 'id="kind-marketing_email" data-status="withdrawn"' in text
    assert 'id="kind-research" data-status="never asked"' in text
    assert 'id="withdraw-marketing_sms"' in text and 'id="withdraw-research"' not in text
    assert 'id="history-marketing_email"' in text
    for element in ('id="capture-form"', 'id="signature-pad"', 'id="signature-data"'):
        assert element in text
    assert "<script>" not in text and "style=" not in text  # CSP: no inline script or style
    assert 'id="minor-notice"' not in text


def test_page_reads_with_one_batch_and_audits(page, fake_ehr):
    before = len(fake_ehr.requests_to("/fhir"))
    page.get("/consents")
    sent = [(r.method, r.path) for r in fake_ehr.requests_to("/fhir")[before:]]
    assert sent == [("POST", "/fhir"), ("POST", "/fhir/AuditEvent")]


def test_consents_batch_urls():
    urls = [e["request"]["url"] for e in consents_batch("p1")["entry"]]
    assert urls == ["Patient/p1", "Consent?patient=Patient/p1&_count=200&_sort=-date"]


def test_capture_writes_one_transaction(page, tx, fake_ehr):
    token = csrf(page)
    response = page.post("/consents/capture", data=capture_form(token))
    assert response.status_code == 303, response.get_data(as_text=True)
    assert "saved=given" in response.headers["Location"]
    (bundle,) = tx.bundles
    assert bundle["type"] == "transaction"
    consent, provenance = (e["resource"] for e in bundle["entry"])
    assert consent["resourceType"] == "Consent" and consent["status"] == "active"
    assert consent["patient"] == {"reference": "Patient/p1"}
    attachment = consent["sourceAttachment"]
    data = base64.b64decode(attachment["data"])
    assert attachment["contentType"] == "image/png" and attachment["size"] == len(data)
    digest = base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()
    assert attachment["hash"] == digest
    assert Image.open(io.BytesIO(data)).format == "PNG"
    assert provenance["target"] == [{"reference": bundle["entry"][0]["fullUrl"]}]
    assert provenance["agent"][0]["who"] == {"reference": "Practitioner/dr1"}
    assert all(e["request"].get("ifNoneExist") for e in bundle["entry"])
    assert fake_ehr.audit_events[-1]["subtype"][0]["code"] == "create"
    after = page.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="consent-saved"' in after and "Research and case studies: consent" in after
    assert 'id="kind-research" data-status="given"' in after


def test_capture_with_a_drawn_signature(page, tx):
    token = csrf(page)
    form = capture_form(token, typed_signature="", signature_data=drawn_png())
    assert page.post("/consents/capture", data=form).status_code == 303
    consent = tx.bundles[0]["entry"][0]["resource"]
    assert "typed" not in consent["sourceAttachment"]["title"]


@pytest.mark.parametrize(
    ("fields", "error_id"),
    [
        ({"kind": "nope"}, "err-kind"),
        ({"decision": "maybe"}, "err-decision"),
        ({"signer": "friend"}, "err-signer"),
        ({"signer": "guardian", "signer_name": ""}, "err-signer-name"),
        ({"typed_signature": ""}, "err-signature"),
        (
            {"typed_signature": "", "signature_data": "data:image/gif;base64,R0lGOD"},
            "err-signature",
        ),
        ({"policy_version": "a b/c"}, "err-policy-version"),
    ],
)
def test_capture_errors_are_shown_next_to_the_field(page, tx, fields, error_id):
    token = csrf(page)
    response = page.post("/consents/capture", data=capture_form(token, **fields))
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert re.search(rf'id="{error_id}" class="error-text" role="alert">[^<]+<', text)
    assert tx.bundles == []


def test_a_minor_must_be_signed_for_by_the_guardian(page, tx, fake_ehr):
    patient = next(r for r in fake_ehr.resources if r["resourceType"] == "Patient")
    patient["birthDate"] = "2012-01-01"
    assert 'id="minor-notice"' in page.get("/consents").get_data(as_text=True)
    token = csrf(page)
    response = page.post("/consents/capture", data=capture_form(token))
    assert response.status_code == 400
    assert "guardian must sign" in response.get_data(as_text=True)
    form = capture_form(token, signer="guardian", signer_name="Grace Testperson")
    assert page.post("/consents/capture", data=form).status_code == 303
    performer = tx.bundles[0]["entry"][0]["resource"]["performer"]
    assert performer == [
        {"type": "RelatedPerson", "display": "Grace Testperson (parent or guardian)"}
    ]


def test_withdraw_updates_with_if_match(page, tx, fake_ehr):
    token = csrf(page)
    form = {"csrf_token": token, "kind": "marketing_sms", "consent_id": "sms1", "version": "3"}
    response = page.post("/consents/withdraw", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)
    (bundle,) = tx.bundles
    put, prov = bundle["entry"]
    assert put["request"] == {"method": "PUT", "url": "Consent/sms1", "ifMatch": 'W/"3"'}
    assert put["resource"]["status"] == "inactive"
    assert put["resource"]["provision"]["period"]["end"]
    assert prov["resource"]["target"][0] == {"reference": "Consent/sms1"}
    assert prov["resource"]["activity"]["coding"][0]["code"] == "UPDATE"
    assert fake_ehr.audit_events[-1]["subtype"][0]["code"] == "update"
    after = page.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="kind-marketing_sms" data-status="withdrawn"' in after


def test_withdraw_conflict_says_reload(page, tx):
    tx.fail_status = 412
    token = csrf(page)
    form = {"csrf_token": token, "kind": "marketing_sms", "consent_id": "sms1", "version": "3"}
    response = page.post("/consents/withdraw", data=form)
    assert response.status_code == 409
    assert "changed meanwhile" in response.get_data(as_text=True)


def test_withdraw_of_a_stale_page_says_reload(page, tx):
    token = csrf(page)
    form = {"csrf_token": token, "kind": "marketing_sms", "consent_id": "sms1", "version": "2"}
    response = page.post("/consents/withdraw", data=form)
    assert response.status_code == 409 and tx.bundles == []


@pytest.mark.parametrize("kind", ["research", "photos_website", "marketing_email", "nope"])
def test_withdrawing_what_is_not_given_is_refused(page, tx, kind):
    token = csrf(page)
    response = page.post("/consents/withdraw", data={"csrf_token": token, "kind": kind})
    assert response.status_code == 400
    assert 'id="withdraw-error"' in response.get_data(as_text=True)
    assert tx.bundles == []


@pytest.mark.parametrize("path", ["/consents/capture", "/consents/withdraw"])
def test_posts_without_csrf_are_refused(page, tx, path):
    response = page.post(path, data={"kind": "marketing_sms"})
    assert response.status_code == 400
    assert 'data-error-code="csrf_failed"' in response.get_data(as_text=True)
    assert tx.bundles == []


def test_read_only_session(client, fake_ehr, tx):
    fake_ehr.granted_scope = "openid fhirUser launch patient/Patient.r patient/Consent.rs"
    assert launch(client, fake_ehr).status_code == 303
    text = client.get("/consents").get_data(as_text=True)
    assert 'id="read-only-notice"' in text
    assert re.search(r"<fieldset disabled>", text)
    assert re.search(r'id="withdraw-marketing_sms" type="submit" disabled', text)
    token = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)
    for path, data in (
        ("/consents/capture", capture_form(token)),
        ("/consents/withdraw", {"csrf_token": token, "kind": "marketing_sms"}),
    ):
        response = client.post(path, data=data)
        assert response.status_code == 403
        assert 'data-error-code="read_only"' in response.get_data(as_text=True)
    assert tx.bundles == []


def test_another_patient_is_refused(page, tx):
    assert page.get("/consents?patient=Patient/other").status_code == 403
