"""The Consents page against a fake FHIR server: the page, capture (one transaction with a
Consent and its Provenance; for a minor, the guardian on file or a new RelatedPerson as the
performer), withdrawal (If-Match update), CSRF and read-only sessions."""

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
from symfhir.workspace.consents.recording import consents_batch
from tests.app.capabilities import Capabilities
from tests.app.conftest import launch
from tests.app.fake_ehr import FHIR_JSON, FakeEhr
from tests.app.resources import guardian_resources

pytestmark = pytest.mark.unit

KIND = "http://symfhir.org/fhir/CodeSystem/consent-kind"
SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
RELATED_SCOPE = "patient/RelatedPerson.crs"


@pytest.fixture
def fake_ehr(fake_ehr: FakeEhr) -> FakeEhr:
    # The app's default scopes ask for RelatedPerson (the guardians who sign for a minor).
    fake_ehr.granted_scope = f"{fake_ehr.granted_scope} {RELATED_SCOPE}"
    fake_ehr.resources += guardian_resources(fake_ehr.patient_id)
    return fake_ehr


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
        self.capabilities = Capabilities(fake.server)
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
        # As a server does: urn:uuid references of the Bundle become the new resources' ids.
        assigned = {
            item["fullUrl"]: f"{item['resource']['resourceType']}/new{len(self.bundles)}-{index}"
            for index, item in enumerate(body["entry"])
            if item.get("fullUrl")
        }
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
            resource = json.loads(_resolve(json.dumps(resource), assigned))
            resource["id"] = f"new{len(self.bundles)}-{index}"
            resource["meta"] = {"versionId": "1"}
            if resource["resourceType"] in ("Consent", "RelatedPerson"):
                self.fake.resources.append(resource)
            entries.append({"response": {"status": "201 Created"}})
        answer = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
        return Response(json.dumps(answer), content_type=FHIR_JSON)


def _resolve(text: str, assigned: dict[str, str]) -> str:
    for urn, ref in assigned.items():
        text = text.replace(f'"{urn}"', f'"{ref}"')
    return text


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
    assert urls == [
        "Patient/p1",
        "Consent?patient=Patient/p1&_count=200&_sort=-date",
        "RelatedPerson?patient=Patient/p1&_count=50",
    ]
    without = [e["request"]["url"] for e in consents_batch("p1", related=False)["entry"]]
    assert without == urls[:2]


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
        ({"signer": "guardian", "signer_name": ""}, "err-guardian"),
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


def _minor(fake: FakeEhr) -> None:
    patient = next(r for r in fake.resources if r["resourceType"] == "Patient")
    patient["birthDate"] = "2012-01-01"


def test_a_minor_must_be_signed_for_by_the_guardian(page, tx, fake_ehr):
    _minor(fake_ehr)
    assert 'id="minor-notice"' in page.get("/consents").get_data(as_text=True)
    token = csrf(page)
    response = page.post("/consents/capture", data=capture_form(token))
    assert response.status_code == 400
    assert "guardian must sign" in response.get_data(as_text=True)
    form = capture_form(token, signer="guardian", guardian="RelatedPerson/rp-mother")
    assert page.post("/consents/capture", data=form).status_code == 303
    (bundle,) = tx.bundles
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Consent", "Provenance"]
    performer = bundle["entry"][0]["resource"]["performer"]
    assert performer == [
        {
            "type": "RelatedPerson",
            "display": "Grace Testperson (parent or guardian)",
            "reference": "RelatedPerson/rp-mother",
        }
    ]


def test_the_guardians_on_file_are_offered(page, fake_ehr):
    _minor(fake_ehr)
    text = page.get("/consents").get_data(as_text=True)
    assert re.search(
        r'id="guardian-rp-mother" name="guardian" value="RelatedPerson/rp-mother"', text
    )
    assert "Grace Testperson" in text and "(guardian, mother)" in text
    for absent in ("rp-spouse", "rp-old", "rp-other"):  # not a parent, inactive, not theirs
        assert f"guardian-{absent}" not in text
    assert 'id="guardian-new"' in text and 'id="no-guardian-on-file"' not in text
    assert not re.search(r'id="guardian-new"[^>]*checked', text)  # no choice made for them


@pytest.mark.parametrize(
    ("fields", "error_id"),
    [
        ({}, "err-guardian"),
        ({"guardian": "RelatedPerson/rp-other"}, "err-guardian"),  # another patient's
        ({"guardian": "RelatedPerson/rp-spouse"}, "err-guardian"),  # not a parent
        ({"guardian": "RelatedPerson/rp-old"}, "err-guardian"),  # inactive
        ({"guardian": "RelatedPerson/nope"}, "err-guardian"),  # never read
        ({"guardian": "new", "guardian_relationship": "parent"}, "err-guardian-name"),
        ({"guardian": "new", "guardian_name": "Ann Testperson"}, "err-guardian-relationship"),
    ],
)
def test_guardian_errors_are_shown_next_to_the_field(page, tx, fake_ehr, fields, error_id):
    _minor(fake_ehr)
    token = csrf(page)
    form = capture_form(token, signer="guardian", **fields)
    response = page.post("/consents/capture", data=form)
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert re.search(rf'id="{error_id}" class="error-text" role="alert">[^<]+<', text)
    assert tx.bundles == []


def new_guardian_form(token: str, relationship: str, **fields: str) -> dict:
    """A consent signed by a guardian not on file, Ann Testperson."""
    return capture_form(
        token,
        signer="guardian",
        guardian="new",
        guardian_name="Ann Testperson",
        guardian_relationship=relationship,
        **fields,
    )


def test_someone_else_becomes_a_related_person_in_the_same_transaction(page, tx, fake_ehr):
    _minor(fake_ehr)
    token = csrf(page)
    form = new_guardian_form(token, "parent", typed_signature="Ann Testperson")
    response = page.post("/consents/capture", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)
    (bundle,) = tx.bundles
    related, consent, provenance = bundle["entry"]
    assert related["request"]["method"] == "POST" and related["request"]["url"] == "RelatedPerson"
    assert related["request"]["ifNoneExist"].startswith("identifier=")
    person = related["resource"]
    assert person["patient"] == {"reference": "Patient/p1"}
    assert person["name"] == [{"text": "Ann Testperson"}]
    assert {c["code"] for r in person["relationship"] for c in r["coding"]} == {"GUARD", "PRN"}
    assert consent["resource"]["performer"][0]["reference"] == related["fullUrl"]
    assert related["fullUrl"] in [t["reference"] for t in provenance["resource"]["target"]]
    assert "RelatedPerson" in fake_ehr.audit_events[-1]["outcomeDesc"]
    # The next consent offers them from the list.
    after = page.get(response.headers["Location"]).get_data(as_text=True)
    assert 'value="RelatedPerson/new1-0"' in after and "Ann Testperson" in after


def test_a_minor_without_a_guardian_on_file(page, tx, fake_ehr):
    _minor(fake_ehr)
    fake_ehr.resources = [r for r in fake_ehr.resources if r["resourceType"] != "RelatedPerson"]
    text = page.get("/consents").get_data(as_text=True)
    assert 'id="no-guardian-on-file"' in text
    assert re.search(r'id="guardian-new"[^>]*checked', text)
    token = csrf(page)
    form = new_guardian_form(token, "guardian")
    assert page.post("/consents/capture", data=form).status_code == 303
    kinds = [e["resource"]["resourceType"] for e in tx.bundles[0]["entry"]]
    assert kinds == ["RelatedPerson", "Consent", "Provenance"]


def test_a_launch_without_related_person_scopes(client, fake_ehr, tx):
    _minor(fake_ehr)
    fake_ehr.granted_scope = fake_ehr.granted_scope.replace(RELATED_SCOPE, "").strip()
    assert launch(client, fake_ehr).status_code == 303
    before = len(fake_ehr.requests_to("/fhir"))
    text = client.get("/consents").get_data(as_text=True)
    (batch,) = [r for r in fake_ehr.requests_to("/fhir")[before:] if r.path == "/fhir"]
    assert "RelatedPerson" not in batch.get_data(as_text=True)  # not even asked for
    assert 'id="guardians-unread"' in text and 'id="guardian-new-refused"' in text
    assert 'id="partial-notice"' not in text
    token = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)
    form = new_guardian_form(token, "parent")
    response = client.post("/consents/capture", data=form)
    assert response.status_code == 400
    assert "may not add" in response.get_data(as_text=True)
    assert tx.bundles == []


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


def _patient(fake_ehr: FakeEhr) -> dict[str, Any]:
    return next(r for r in fake_ehr.resources if r["resourceType"] == "Patient")


def test_physician_sharing_names_the_practitioner_on_file(page, tx, fake_ehr):
    doctor = {"reference": "Practitioner/doc7", "display": "Dr. Dana Ashgrove"}
    _patient(fake_ehr)["generalPractitioner"] = [{"display": "an old note"}, doctor]
    token = csrf(page)
    response = page.post("/consents/capture", data=capture_form(token, kind="physician_sharing"))
    assert response.status_code == 303, response.get_data(as_text=True)
    consent = tx.bundles[0]["entry"][0]["resource"]
    (actor,) = consent["provision"]["actor"]
    assert actor["role"]["coding"][0]["code"] == "IRCP"
    assert actor["reference"] == doctor


def test_physician_sharing_without_a_practitioner_on_file_needs_one(page, tx, fake_ehr):
    _patient(fake_ehr).pop("generalPractitioner", None)
    token = csrf(page)
    text = page.get("/consents?capture=physician_sharing").get_data(as_text=True)
    assert 'id="no-physician-on-file"' in text
    assert re.search(r'<option value="physician_sharing" selected>', text)
    response = page.post("/consents/capture", data=capture_form(token, kind="physician_sharing"))
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert re.search(r'id="err-physician-name"[^>]*role="alert">No physician is on file', text)
    assert tx.bundles == []


def test_a_declined_physician_sharing_consent_needs_no_physician(page, tx, fake_ehr):
    _patient(fake_ehr).pop("generalPractitioner", None)
    form = capture_form(csrf(page), kind="physician_sharing", decision="declined")
    assert page.post("/consents/capture", data=form).status_code == 303
    consent = tx.bundles[0]["entry"][0]["resource"]
    assert consent["status"] == "rejected"
    assert "dataPeriod" not in consent["provision"]


PHYSICIAN_SCOPES = "user/Practitioner.crs user/PractitionerRole.crs"
NEW_PHYSICIAN = {
    "kind": "physician_sharing",
    "share_scope_intake": "yes",
    "share_scope_photos": "yes",
    "share_start": "2026-01-01",
    "share_end": "2026-06-30",
    "physician_name": "Dr. Olamide Sorrel",
    "physician_npi": "1234567893",
    "physician_organization": "Bayou Family Medicine",
    "physician_phone": "(337) 555-0199",
    "physician_email": "sorrel@clinic.example.org",
}


@pytest.fixture
def may_add_physician(fake_ehr: FakeEhr) -> FakeEhr:
    fake_ehr.granted_scope = f"{fake_ehr.granted_scope} {PHYSICIAN_SCOPES}"
    _patient(fake_ehr).pop("generalPractitioner", None)
    return fake_ehr


def test_a_physician_entered_at_capture_is_written_with_the_consent(may_add_physician, page, tx):
    response = page.post("/consents/capture", data=capture_form(csrf(page), **NEW_PHYSICIAN))
    assert response.status_code == 303, response.get_data(as_text=True)
    (bundle,) = tx.bundles
    entries = bundle["entry"]
    types = [e["resource"]["resourceType"] for e in entries]
    assert types == ["Practitioner", "PractitionerRole", "Consent", "Provenance"]
    doctor, role, consent, provenance = (e["resource"] for e in entries)
    # Conditional create on the NPI: a physician the EHR holds already is reused.
    assert entries[0]["request"]["ifNoneExist"] == (
        "identifier=http://hl7.org/fhir/sid/us-npi|1234567893"
    )
    assert doctor["name"] == [{"text": "Dr. Olamide Sorrel"}]
    assert {t["system"]: t["value"] for t in doctor["telecom"]} == {
        "phone": "+13375550199",
        "email": "sorrel@clinic.example.org",
    }
    assert role["organization"] == {"display": "Bayou Family Medicine"}
    (actor,) = consent["provision"]["actor"]
    assert actor["role"]["coding"][0]["code"] == "IRCP"
    assert actor["reference"]["reference"] == entries[0]["fullUrl"]
    scopes = [c["coding"][0]["code"] for c in consent["provision"]["code"]]
    assert scopes == ["summary", "intake", "photos"]
    assert all(
        c["coding"][0]["system"] == "http://symfhir.org/fhir/CodeSystem/share-scope"
        for c in consent["provision"]["code"]
    )
    classes = {c["code"] for c in consent["provision"]["class"]}
    assert {"Patient", "QuestionnaireResponse", "Media", "AllergyIntolerance"} <= classes
    assert not {"Task", "AuditEvent", "Binary", "DocumentReference"} & classes
    assert consent["provision"]["dataPeriod"] == {"start": "2026-01-01", "end": "2026-06-30"}
    targets = {t["reference"] for t in provenance["target"]}
    assert entries[0]["fullUrl"] in targets and entries[2]["fullUrl"] in targets


def test_the_gate_reads_back_what_the_capture_wrote(may_add_physician, page, tx, fake_ehr):
    from datetime import date

    from symfhir.sharing.gate import consent_scopes, data_period, recipient_reference
    from symfhir.spa import load_spa

    assert (
        page.post("/consents/capture", data=capture_form(csrf(page), **NEW_PHYSICIAN)).status_code
        == 303
    )
    stored = next(
        r
        for r in fake_ehr.resources
        if r["resourceType"] == "Consent" and r["id"].startswith("new")
    )
    assert consent_scopes(stored) == {"summary", "intake", "photos"}
    assert data_period(stored, load_spa().zone) == (date(2026, 1, 1), date(2026, 6, 30))
    assert recipient_reference(stored) == "Practitioner/new1-0"


@pytest.mark.parametrize(
    ("fields", "error_id", "says"),
    [
        ({"physician_npi": "1234567890"}, "physician-npi", "check digit"),
        ({"physician_npi": "12345"}, "physician-npi", "10 digits"),
        ({"physician_email": "not-an-address"}, "physician-email", "email"),
        ({"physician_name": ""}, "physician-name", "name"),
        ({"physician_name": "4111 1111 1111 1111"}, "physician-name", "card"),
        ({"share_start": "2026-13-01"}, "share-start", "YYYY-MM-DD"),
        ({"share_start": "1800-01-01"}, "share-start", "1900"),
        ({"share_end": "2025-12-31"}, "share-end", "before the start"),
        ({"share_scope_everything": "yes"}, "share-scopes", "listed scopes"),
    ],
)
def test_sharing_errors_name_the_field(may_add_physician, page, tx, fields, error_id, says):
    form = capture_form(csrf(page), **{**NEW_PHYSICIAN, **fields})
    response = page.post("/consents/capture", data=form)
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    found = re.search(rf'id="err-{error_id}"[^>]*role="alert">([^<]*)<', text)
    assert found and says.lower() in found.group(1).lower(), found
    assert "4111" not in text.split('id="err-physician-name"')[1][:200]
    assert tx.bundles == []


def test_a_session_that_may_not_add_a_physician_is_told_so(page, tx, fake_ehr):
    _patient(fake_ehr).pop("generalPractitioner", None)
    response = page.post("/consents/capture", data=capture_form(csrf(page), **NEW_PHYSICIAN))
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert re.search(r'id="err-physician-name"[^>]*role="alert">This session may not add', text)
    assert tx.bundles == []


@pytest.fixture
def may_add_practitioner_only(fake_ehr: FakeEhr) -> FakeEhr:
    fake_ehr.granted_scope = f"{fake_ehr.granted_scope} user/Practitioner.crs"
    _patient(fake_ehr).pop("generalPractitioner", None)
    return fake_ehr


def test_a_practice_needs_practitioner_role_create(may_add_practitioner_only, page, tx):
    response = page.post("/consents/capture", data=capture_form(csrf(page), **NEW_PHYSICIAN))
    assert response.status_code == 400
    assert 'id="err-physician-organization" class="error-text" role="alert"' in (
        response.get_data(as_text=True)
    )
    form = capture_form(csrf(page), **{**NEW_PHYSICIAN, "physician_organization": ""})
    assert page.post("/consents/capture", data=form).status_code == 303
    types = [e["resource"]["resourceType"] for e in tx.bundles[0]["entry"]]
    assert types == ["Practitioner", "Consent", "Provenance"]


def test_another_choice_of_scopes_is_a_new_consent(page, tx, fake_ehr):
    doctor = {"reference": "Practitioner/doc7", "display": "Dr. Dana Ashgrove"}
    _patient(fake_ehr)["generalPractitioner"] = [doctor]
    for extra in ({}, {"share_scope_full": "yes"}):
        form = capture_form(csrf(page), kind="physician_sharing", **extra)
        assert page.post("/consents/capture", data=form).status_code == 303
    first, second = (b["entry"][0] for b in tx.bundles)
    assert first["request"]["ifNoneExist"] != second["request"]["ifNoneExist"]
    assert [c["coding"][0]["code"] for c in second["resource"]["provision"]["code"]] == [
        "summary",
        "full",
    ]


def _given_sharing_consent(fake_ehr: FakeEhr) -> None:
    fake_ehr.resources.append(
        {
            "resourceType": "Consent",
            "id": "share1",
            "meta": {"versionId": "2"},
            "status": "active",
            "patient": {"reference": f"Patient/{fake_ehr.patient_id}"},
            "dateTime": "2026-10-02T10:00:00-05:00",
            "scope": {"coding": [{"system": SCOPE, "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": KIND, "code": "physician_sharing"}]}],
            "policy": [
                {"uri": "http://symfhir.org/fhir/policy/physician-sharing-consent/2026-01-01"}
            ],
            "provision": {"type": "permit", "period": {"start": "2026-10-02"}},
        }
    )


def _active_link(store, patient_id: str) -> str:
    from datetime import UTC, datetime, timedelta

    from symfhir.sharing.gate import Recipient, SharePlan
    from symfhir.sharing.links import create_link
    from symfhir.sharing.package import SharedFile, SharePackage

    now = datetime.now(UTC)
    plan = SharePlan(
        patient_id,
        "Consent/share1",
        Recipient("Practitioner/doc7", "Dr. A"),
        frozenset({"summary"}),
        frozenset({"Patient"}),
        False,
        None,
        None,
    )
    document = b'{"resourceType": "Bundle", "type": "document"}'
    files = (SharedFile("patient-summary.json", "application/fhir+json", lambda: document),)
    link = create_link(
        store,
        SharePackage(plan, files, {"Patient": 1}, 0),
        label="For Dr. A",
        passcode=None,
        expires_at=now + timedelta(days=3),
        max_accesses=None,
        single_file=False,
        created_by="Practitioner/dr1",
        links_base="http://links.example",
        viewer_base="http://links.example/view",
        now=now,
    )
    return link.link_id


def test_withdrawing_physician_sharing_stops_every_active_link(app, page, tx, fake_ehr, store):
    from symfhir.sharing.links import links_of

    _given_sharing_consent(fake_ehr)
    app.config["SYMFHIR_STORE"] = store
    first = _active_link(store, fake_ehr.patient_id)
    second = _active_link(store, fake_ehr.patient_id)
    other = _active_link(store, "someone-else")
    token = csrf(page)
    response = page.post(
        "/consents/withdraw", data={"csrf_token": token, "kind": "physician_sharing"}
    )
    assert response.status_code == 303
    assert "stopped=2" in response.headers["Location"]
    statuses = {r.link_id: r.status for r in links_of(store, fake_ehr.patient_id)}
    assert statuses[first] != "active" and statuses[second] != "active"
    assert [r.status for r in links_of(store, "someone-else") if r.link_id == other] == ["active"]
    text = page.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="links-stopped"' in text and "2 shared links" in text


def test_withdrawing_another_kind_stops_no_link(app, page, tx, fake_ehr, store):
    from symfhir.sharing.links import links_of

    _given_sharing_consent(fake_ehr)
    app.config["SYMFHIR_STORE"] = store
    link = _active_link(store, fake_ehr.patient_id)
    token = csrf(page)
    response = page.post("/consents/withdraw", data={"csrf_token": token, "kind": "marketing_sms"})
    assert response.status_code == 303 and "stopped" not in response.headers["Location"]
    assert [r.status for r in links_of(store, fake_ehr.patient_id) if r.link_id == link] == [
        "active"
    ]


def test_withdrawing_physician_sharing_without_a_store_still_withdraws(app, page, tx, fake_ehr):
    _given_sharing_consent(fake_ehr)
    app.config["SYMFHIR_STORE"] = None
    token = csrf(page)
    response = page.post(
        "/consents/withdraw", data={"csrf_token": token, "kind": "physician_sharing"}
    )
    assert response.status_code == 303
    assert tx.bundles[0]["entry"][0]["resource"]["status"] == "inactive"


@pytest.mark.parametrize("birth", [None, "2008"])
def test_capture_is_refused_until_the_birth_date_settles_the_age(page, tx, fake_ehr, birth):
    patient = _patient(fake_ehr)
    patient.pop("birthDate", None)
    if birth:
        patient["birthDate"] = birth
    token = csrf(page)
    text = page.get("/consents").get_data(as_text=True)
    assert 'id="age-unknown-notice"' in text
    response = page.post("/consents/capture", data=capture_form(token))
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert re.search(
        r'id="err-signer"[^>]*role="alert">[^<]*Date of birth', text.replace("&#34;", '"')
    )
    assert tx.bundles == []


def test_capture_on_a_server_without_consent_keeps_a_document_and_says_so(page, tx):
    tx.capabilities.creatable.discard("Consent")
    response = page.post("/consents/capture", data=capture_form(csrf(page)))
    assert response.status_code == 303, response.get_data(as_text=True)
    (bundle,) = tx.bundles
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types == ["DocumentReference", "Provenance"]
    after = page.get(response.headers["Location"]).get_data(as_text=True)
    assert "kept as a document (DocumentReference)" in after


# ── Back to the Sharing tab after a capture opened there ─────────────────────


def _doctor_on_file(fake_ehr: FakeEhr) -> None:
    doctor = {"reference": "Practitioner/doc7", "display": "Dr. Dana Ashgrove"}
    _patient(fake_ehr)["generalPractitioner"] = [doctor]


def test_a_capture_opened_from_sharing_goes_back_to_it(page, tx, fake_ehr):
    _doctor_on_file(fake_ehr)
    text = page.get("/consents?capture=physician_sharing&return=sharing").get_data(as_text=True)
    assert '<input type="hidden" name="return" value="sharing">' in text
    form = capture_form(csrf(page), kind="physician_sharing", **{"return": "sharing"})
    response = page.post("/consents/capture", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert re.fullmatch(
        r"/sharing/?\?saved=consent-given#sharing-consent", response.headers["Location"]
    )
    assert len(tx.bundles) == 1  # the consent was written first


def test_a_declined_consent_goes_back_saying_so(page, tx, fake_ehr):
    form = capture_form(
        csrf(page), kind="physician_sharing", decision="declined", **{"return": "sharing"}
    )
    response = page.post("/consents/capture", data=form)
    assert response.status_code == 303
    assert "saved=consent-declined" in response.headers["Location"]


def test_a_refused_capture_keeps_the_way_back(page, tx, fake_ehr):
    _patient(fake_ehr).pop("generalPractitioner", None)
    form = capture_form(csrf(page), kind="physician_sharing", **{"return": "sharing"})
    response = page.post("/consents/capture", data=form)
    assert response.status_code == 400
    assert '<input type="hidden" name="return" value="sharing">' in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example", "/sharing", "sharing.index", "Sharing", ""],
)
def test_a_return_outside_the_allowlist_is_ignored(page, tx, target):
    text = page.get("/consents", query_string={"return": target}).get_data(as_text=True)
    assert 'name="return"' not in text
    form = capture_form(csrf(page), **{"return": target})
    response = page.post("/consents/capture", data=form)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.match(r"/consents/?\?saved=given", location), location
    assert "evil" not in location


def test_a_consent_kept_as_a_document_stays_to_say_so(page, tx):
    tx.capabilities.creatable.discard("Consent")
    form = capture_form(csrf(page), **{"return": "sharing"})
    response = page.post("/consents/capture", data=form)
    assert response.status_code == 303
    assert "kept=document" in response.headers["Location"]
    assert response.headers["Location"].startswith("/consents")
