"""The intake page against a fake FHIR server: pre-fill, validation, the one transaction
(QuestionnaireResponse + extracted Observations + Provenance), CSRF and read-only refusal."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from smart_app.intake import bp as intake_bp
from tests.app.conftest import launch
from tests.app.fake_ehr import FHIR_JSON, FakeEhr

pytestmark = pytest.mark.unit

WRITE_SCOPE = (
    "openid fhirUser launch offline_access patient/Patient.r patient/Observation.crs "
    "patient/QuestionnaireResponse.crs patient/Provenance.cr patient/AuditEvent.c"
)
Q_URL = "http://symfhir.org/fhir/Questionnaire/spa-intake"
SKIN_II = "403222003"
SKIN_IV = "403231003"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class IntakeServer:
    """QuestionnaireResponse search and transaction endpoints added to the fake EHR."""

    def __init__(self, server: HTTPServer, patient_id: str) -> None:
        self.server = server
        self.patient_id = patient_id
        self.latest: dict[str, Any] | None = None
        self.searches: list[dict[str, str]] = []
        self.transactions: list[dict[str, Any]] = []
        server.expect_request("/fhir/QuestionnaireResponse", method="GET").respond_with_handler(
            self._search
        )

    def _search(self, request: Request) -> Response:
        self.searches.append(dict(request.args))
        entries = [{"resource": self.latest, "search": {"mode": "match"}}] if self.latest else []
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
        return Response(json.dumps(bundle), content_type=FHIR_JSON)

    def expect_transaction(self, status: int = 200) -> None:
        # A oneshot handler is matched before the fake EHR's permanent batch handler.
        handler = self._transaction if status == 200 else self._refuse(status)
        self.server.expect_oneshot_request("/fhir", method="POST").respond_with_handler(handler)

    def _refuse(self, status: int):
        def refuse(request: Request) -> Response:
            self.transactions.append(json.loads(request.get_data()))
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "processing"}],
            }
            return Response(json.dumps(outcome), status=status, content_type=FHIR_JSON)

        return refuse

    def _transaction(self, request: Request) -> Response:
        bundle = json.loads(request.get_data())
        self.transactions.append(bundle)
        entries = [
            {
                "response": {
                    "status": "201 Created",
                    "location": f"{e['request']['url']}/{i}/_history/1",
                }
            }
            for i, e in enumerate(bundle["entry"])
        ]
        answer = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
        return Response(json.dumps(answer), content_type=FHIR_JSON)


@pytest.fixture
def app(app: Flask) -> Flask:
    if "intake" not in app.blueprints:  # until the factory registers it
        app.register_blueprint(intake_bp)
    return app


@pytest.fixture
def server(fake_ehr: FakeEhr) -> IntakeServer:
    return IntakeServer(fake_ehr.server, fake_ehr.patient_id)


@pytest.fixture
def writer(client: FlaskClient, fake_ehr: FakeEhr, server: IntakeServer) -> FlaskClient:
    fake_ehr.granted_scope = WRITE_SCOPE
    assert launch(client, fake_ehr).status_code == 303
    return client


def previous_response(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": "qr1",
        "questionnaire": f"{Q_URL}|1.0.0",
        "status": "completed",
        "subject": {"reference": f"Patient/{pid}"},
        "authored": "2026-01-02",
        "item": [
            {
                "linkId": "client",
                "item": [
                    {"linkId": "client.given", "answer": [{"valueString": "Ada"}]},
                    {"linkId": "client.family", "answer": [{"valueString": "Testperson"}]},
                    {"linkId": "client.birth_date", "answer": [{"valueDate": "1990-04-05"}]},
                ],
            },
            {
                "linkId": "history",
                "item": [
                    {
                        "linkId": "history.medications",
                        "item": [
                            {"linkId": "medication.name", "answer": [{"valueString": "Zinc"}]}
                        ],
                    },
                    {
                        "linkId": "history.prior_treatments",
                        "item": [{"linkId": "prior.when", "answer": [{"valueDate": "2024"}]}],
                    },
                ],
            },
            {
                "linkId": "skin",
                "item": [
                    {
                        "linkId": "skin.type",
                        "answer": [
                            {"valueCoding": {"system": "http://snomed.info/sct", "code": SKIN_II}}
                        ],
                    }
                ],
            },
        ],
    }


def token(page: str) -> str:
    match = CSRF.search(page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def good_form(csrf: str) -> dict[str, Any]:
    return {
        "csrf_token": csrf,
        "client.given": "Ada",
        "client.family": "Testperson",
        "client.birth_date": "1990-04-05",
        "skin.type": SKIN_IV,
        "skin.concerns": ["acne", "melasma"],
        "medication.name[0]": "Zinc",
        "medication.kind[0]": "supplement",
    }


def test_form_is_prefilled_from_the_latest_response(writer, server, fake_ehr):
    server.latest = previous_response(fake_ehr.patient_id)
    response = writer.get("/intake")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert server.searches[-1] == {
        "subject": "Patient/p1",
        "questionnaire": Q_URL,
        "_sort": "-authored",
        "_count": "1",
    }
    assert 'id="intake-form"' in page and 'id="intake-submit"' in page
    assert 'id="q-client-given" name="client.given" value="Ada"' in page
    assert 'id="q-client-birth_date" name="client.birth_date" value="1990-04-05"' in page
    assert f'<option value="{SKIN_II}" selected>' in page
    assert 'id="q-medication-name-0" name="medication.name[0]" value="Zinc"' in page
    assert 'id="q-medication-name-1"' in page  # one empty row to add another
    # a year-only date is shown as text: a date input would drop it
    assert '<input type="text" id="q-prior-when-0" name="prior.when[0]" value="2024"' in page
    assert '<label for="q-client-given">' in page
    assert 'id="intake-saved"' not in page
    assert any(e["outcomeDesc"].startswith("intake form read") for e in fake_ehr.audit_events)


def test_form_renders_every_item_kind_without_a_previous_response(writer):
    page = writer.get("/intake").get_data(as_text=True)
    assert "<legend>About you</legend>" in page
    assert 'type="date" id="q-client-birth_date"' in page
    assert '<select id="q-skin-type" name="skin.type"' in page
    assert 'type="checkbox" id="q-skin-concerns-0" name="skin.concerns"' in page
    assert '<textarea id="q-history-conditions"' in page
    assert 'required aria-required="true"' in page
    assert 'id="read-only-notice"' not in page


def test_submit_sends_one_transaction_naming_the_patient(writer, server, fake_ehr):
    csrf = token(writer.get("/intake").get_data(as_text=True))
    server.expect_transaction()
    response = writer.post("/intake", data=good_form(csrf))
    assert response.status_code == 303
    assert response.headers["Location"] == "/intake?saved=1"
    (bundle,) = server.transactions
    assert bundle["type"] == "transaction"
    resources = [e["resource"] for e in bundle["entry"]]
    types = [r["resourceType"] for r in resources]
    assert types[0] == "QuestionnaireResponse" and types[-1] == "Provenance"
    assert types.count("Observation") == 3  # skin type + two skin concerns
    qr = resources[0]
    assert qr["status"] == "completed"
    assert qr["subject"] == {"reference": "Patient/p1"}
    assert qr["author"] == {"reference": "Practitioner/dr1"}
    assert qr["questionnaire"] == f"{Q_URL}|1.0.0"
    for obs in resources[1:-1]:
        assert obs["subject"] == {"reference": "Patient/p1"}
        assert obs["derivedFrom"] == [{"reference": bundle["entry"][0]["fullUrl"]}]
    codes = {o["valueCodeableConcept"]["coding"][0]["code"] for o in resources[1:-1]}
    assert codes == {SKIN_IV, "acne", "melasma"}
    provenance = resources[-1]
    full_urls = {e["fullUrl"] for e in bundle["entry"][:-1]}
    assert {t["reference"] for t in provenance["target"]} == full_urls
    assert {"reference": "Practitioner/dr1"} in [a["who"] for a in provenance["agent"]]
    assert all(e["request"]["method"] == "POST" for e in bundle["entry"])
    assert any(e["subtype"][0]["code"] == "create" for e in fake_ehr.audit_events)
    saved = writer.get("/intake?saved=1").get_data(as_text=True)
    assert 'id="intake-saved"' in saved


def test_a_refused_transaction_keeps_the_answers(writer, server, fake_ehr):
    csrf = token(writer.get("/intake").get_data(as_text=True))
    server.expect_transaction(status=422)
    response = writer.post("/intake", data=good_form(csrf))
    page = response.get_data(as_text=True)
    assert response.status_code == 502
    assert 'id="intake-failed"' in page and 'id="intake-saved"' not in page
    assert f'<option value="{SKIN_IV}" selected>' in page
    assert len(server.transactions) == 1
    assert fake_ehr.audit_events[-1]["outcome"] == "4"


def test_errors_are_shown_next_to_each_field_and_nothing_is_sent(writer, server):
    csrf = token(writer.get("/intake").get_data(as_text=True))
    form = good_form(csrf) | {
        "client.given": "",
        "client.birth_date": "2999-01-01",
        "skin.type": "not-a-code",
        "medication.kind[0]": "poison",
    }
    response = writer.post("/intake", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert '<span id="err-client-given" class="field-error">This answer is required.' in page
    assert 'id="err-client-birth_date" class="field-error">The date cannot be in the future' in page
    assert 'id="err-skin-type" class="field-error">Choose one of the listed answers.' in page
    assert 'id="err-medication-kind-0"' in page
    assert 'aria-describedby="err-skin-type"' in page
    assert 'value="Testperson"' in page  # what was entered is kept
    assert 'value="2999-01-01"' in page
    assert 'id="intake-errors"' in page
    assert server.transactions == []


def test_submit_without_csrf_is_refused(writer, server):
    response = writer.post("/intake", data=good_form("wrong"))
    assert response.status_code == 400
    assert 'data-error-code="csrf_failed"' in response.get_data(as_text=True)
    assert server.transactions == []


def test_read_only_session_shows_a_disabled_form_and_refuses_a_post(client, fake_ehr, server):
    fake_ehr.granted_scope = "openid fhirUser launch patient/*.rs"
    launch(client, fake_ehr)
    page = client.get("/intake").get_data(as_text=True)
    assert 'id="read-only-notice"' in page
    assert '<fieldset class="form-body" disabled>' in page
    response = client.post("/intake", data=good_form(token(page)))
    assert response.status_code == 403
    assert 'data-error-code="read_only"' in response.get_data(as_text=True)
    assert server.transactions == []


def test_missing_create_scope_is_refused_before_writing(client, fake_ehr, server):
    fake_ehr.granted_scope = WRITE_SCOPE.replace(
        "patient/Observation.crs", "patient/Observation.rs"
    )
    launch(client, fake_ehr)
    csrf = token(client.get("/intake").get_data(as_text=True))
    response = client.post("/intake", data=good_form(csrf))
    assert response.status_code == 403
    assert "Observation" in response.get_data(as_text=True)
    assert server.transactions == []


def test_another_patient_is_refused(writer, server):
    response = writer.get("/intake?patient=Patient/other")
    assert response.status_code == 403
    assert server.searches == []
