"""The intake page against a fake FHIR server: pre-fill, validation, the one transaction
(QuestionnaireResponse + extracted Observations + history resources + versioned updates +
Provenance), CSRF and read-only refusal."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pytest_httpserver import HTTPServer, RequestMatcher
from pytest_httpserver.httpserver import HandlerType
from werkzeug import Request, Response

from smart_app.intake import bp as intake_bp
from symfhir.mapping import history
from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import Entry
from symfhir.model.health import Allergy, Medication, PriorTreatment
from tests.app.conftest import launch
from tests.app.fake_ehr import FHIR_JSON, FakeEhr

pytestmark = pytest.mark.unit

WRITE_SCOPE = (
    "openid fhirUser launch offline_access patient/Patient.r patient/Observation.crs "
    "patient/QuestionnaireResponse.crs patient/Provenance.cr patient/AuditEvent.c "
    "patient/AllergyIntolerance.crus patient/MedicationStatement.crus patient/Condition.crus "
    "patient/Procedure.crs"
)
Q_URL = "http://symfhir.org/fhir/Questionnaire/spa-intake"
SKIN_II = "403222003"
SKIN_IV = "403231003"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class TransactionMatcher(RequestMatcher):
    """POST /fhir with a transaction Bundle only: batches (the history reads) go on to the fake
    EHR's batch handler."""

    def difference(self, request: Request) -> list[tuple[str, Any, Any]]:
        found = super().difference(request)
        try:
            kind = json.loads(request.get_data()).get("type")
        except ValueError:
            kind = None
        if kind != "transaction":
            found.append(("bundle type", kind, "transaction"))
        return found


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
        matcher = TransactionMatcher("/fhir", method="POST")
        self.server.expect(matcher, HandlerType.ONESHOT).respond_with_handler(handler)

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
        "_sort": "-authored,-_lastUpdated",
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
    assert types.count("MedicationStatement") == 1  # the supplement row
    qr = resources[0]
    assert qr["status"] == "completed"
    assert qr["subject"] == {"reference": "Patient/p1"}
    assert qr["author"] == {"reference": "Practitioner/dr1"}
    assert qr["questionnaire"] == f"{Q_URL}|1.0.0"
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    for obs in observations:
        assert obs["subject"] == {"reference": "Patient/p1"}
        assert obs["derivedFrom"] == [{"reference": bundle["entry"][0]["fullUrl"]}]
    codes = {o["valueCodeableConcept"]["coding"][0]["code"] for o in observations}
    assert codes == {SKIN_IV, "acne", "melasma"}
    (statement,) = [r for r in resources if r["resourceType"] == "MedicationStatement"]
    assert statement["medicationCodeableConcept"] == {"text": "Zinc"}
    assert statement["category"]["coding"][0]["code"] == "supplement"
    assert statement["derivedFrom"] == [{"reference": bundle["entry"][0]["fullUrl"]}]
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


# -- history: definition-based extraction, matched by the importer's identifiers ---------------

CLIENT_ID = "C0042"
SPA = "http://symfhir.org/fhir/sid/symetrie-studio-spa"
PATIENT = Entry({}, "Patient/p1", "")
INTAKE_DAY = date(2025, 3, 4)


@pytest.fixture
def ctx() -> MappingContext:
    return MappingContext.load(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))


@pytest.fixture
def spa_patient(fake_ehr: FakeEhr) -> dict[str, Any]:
    """The launched Patient carries the spa client id the importer gave it."""
    patient = next(r for r in fake_ehr.resources if r["resourceType"] == "Patient")
    patient["identifier"] = [{"use": "usual", "system": f"{SPA}/client-id", "value": CLIENT_ID}]
    return patient


def stored(item: Entry, rid: str, version: str = "3", **changes: Any) -> dict[str, Any]:
    """A resource as the importer wrote it and the server answers it: id, meta, no urn refs."""
    resource = json.loads(json.dumps(item.resource))
    resource.pop("derivedFrom", None)
    return {**resource, "id": rid, "meta": {"versionId": version}, **changes}


def imported_allergy(ctx: MappingContext, substance: str = "Penicillin", **kw: Any) -> Entry:
    return history.allergy(Allergy(substance=substance, **kw), CLIENT_ID, INTAKE_DAY, PATIENT, ctx)


def post(writer: FlaskClient, server: IntakeServer, form: dict[str, Any]) -> Any:
    csrf = token(writer.get("/intake").get_data(as_text=True))
    server.expect_transaction()
    return writer.post("/intake", data={**form, "csrf_token": csrf})


def by_type(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def basic_form() -> dict[str, Any]:
    return {"client.given": "Ada", "client.family": "Testperson", "client.birth_date": "1990-04-05"}


def history_response(pid: str, rows: dict[str, list[dict[str, str]]], conditions=()) -> dict:
    """A previous intake listing ``rows`` (group linkId → [{child linkId: text}]) and
    ``conditions``."""
    items: list[dict[str, Any]] = []
    if conditions:
        answers = [{"valueString": c} for c in conditions]
        items.append({"linkId": "history.conditions", "answer": answers})
    for group, instances in rows.items():
        for instance in instances:
            children = [
                {"linkId": link, "answer": [{"valueString": text}]}
                for link, text in instance.items()
            ]
            items.append({"linkId": group, "item": children})
    qr = previous_response(pid)
    qr["item"] = [qr["item"][0], {"linkId": "history", "item": items}]
    return qr


def test_an_allergy_entered_in_the_form_becomes_an_allergy_intolerance(
    writer, server, fake_ehr, spa_patient, ctx
):
    form = basic_form() | {
        "allergy.substance[0]": "Penicillin",
        "allergy.reaction[0]": "hives",
        "allergy.severity[0]": "severe",
        "history.conditions": "Eczema",
        "prior.what[0]": "Botox",
        "prior.when[0]": "2024",
    }
    assert post(writer, server, form).status_code == 303
    (bundle,) = server.transactions
    (allergy,) = by_type(bundle, "AllergyIntolerance")
    expected = imported_allergy(ctx, reaction="hives", severity="severe")
    # The importer's identifier and conditional create for the same client and substance.
    assert allergy["resource"]["identifier"] == expected.resource["identifier"]
    assert allergy["request"] == {
        "method": "POST",
        "url": "AllergyIntolerance",
        "ifNoneExist": expected.if_none_exist,
    }
    assert "Penicillin" not in allergy["request"]["ifNoneExist"]
    assert allergy["resource"]["patient"] == {"reference": "Patient/p1"}
    assert allergy["resource"]["reaction"] == [
        {"manifestation": [{"text": "hives"}], "severity": "severe"}
    ]
    assert allergy["resource"]["recordedDate"] == bundle["entry"][0]["resource"]["authored"][:10]
    (condition,) = by_type(bundle, "Condition")
    assert condition["resource"]["code"] == {"text": "Eczema"}
    (procedure,) = by_type(bundle, "Procedure")
    assert procedure["resource"]["performedDateTime"] == "2024"
    provenance = bundle["entry"][-1]["resource"]
    targets = {t["reference"] for t in provenance["target"]}
    assert {allergy["fullUrl"], condition["fullUrl"], procedure["fullUrl"]} <= targets
    # The history reads: one batch with the Patient and symfhir's identifiers per type.
    (batch,) = [
        json.loads(r.get_data())
        for r in fake_ehr.requests_to("/fhir")
        if r.path == "/fhir" and json.loads(r.get_data())["type"] == "batch"
    ]
    urls = [e["request"]["url"] for e in batch["entry"]]
    assert urls[0] == "Patient/p1"
    assert any(u.startswith("AllergyIntolerance?patient=Patient%2Fp1&identifier=") for u in urls)


def test_an_allergy_the_importer_wrote_is_matched_not_duplicated(
    writer, server, fake_ehr, spa_patient, ctx
):
    fake_ehr.resources.append(stored(imported_allergy(ctx), "a1"))
    form = basic_form() | {"allergy.substance[0]": " Penicillin "}
    assert post(writer, server, form).status_code == 303
    (bundle,) = server.transactions
    assert by_type(bundle, "AllergyIntolerance") == []  # already there, unchanged
    assert [e["request"]["method"] for e in bundle["entry"]] == ["POST", "POST"]  # QR, Provenance


def test_without_a_spa_client_id_the_patient_id_keys_the_identifiers(writer, server, ctx):
    form = basic_form() | {"allergy.substance[0]": "Latex"}
    assert post(writer, server, form).status_code == 303
    (allergy,) = by_type(server.transactions[0], "AllergyIntolerance")
    expected = history.allergy(Allergy(substance="Latex"), "p1", INTAKE_DAY, PATIENT, ctx)
    assert allergy["resource"]["identifier"] == expected.resource["identifier"]


def test_items_removed_since_the_previous_intake_are_ended_with_if_match(
    writer, server, fake_ehr, spa_patient, ctx
):
    allergy = imported_allergy(ctx)
    zinc = history.medication(
        Medication(name="Zinc", kind="supplement"), CLIENT_ID, INTAKE_DAY, PATIENT, PATIENT, ctx
    )
    eczema = history.condition("Eczema", CLIENT_ID, INTAKE_DAY, PATIENT, ctx)
    botox = history.prior_treatment(PriorTreatment(what="Botox"), CLIENT_ID, PATIENT, ctx)
    kept = history.condition("Asthma", CLIENT_ID, INTAKE_DAY, PATIENT, ctx)
    fake_ehr.resources += [
        stored(allergy, "a1", "3"),
        stored(zinc, "m1", "2"),
        stored(eczema, "c1", "5"),
        stored(botox, "pr1", "1"),
        stored(kept, "c2", "1"),
    ]
    server.latest = history_response(
        fake_ehr.patient_id,
        {
            "history.allergies": [{"allergy.substance": "Penicillin"}],
            "history.medications": [{"medication.name": "Zinc"}],
            "history.prior_treatments": [{"prior.what": "Botox"}],
        },
        conditions=["Eczema", "Asthma"],
    )
    assert post(writer, server, basic_form() | {"history.conditions": "Asthma"}).status_code == 303
    (bundle,) = server.transactions
    puts = {e["request"]["url"]: e for e in bundle["entry"] if e["request"]["method"] == "PUT"}
    assert set(puts) == {"AllergyIntolerance/a1", "MedicationStatement/m1", "Condition/c1"}
    assert puts["AllergyIntolerance/a1"]["request"]["ifMatch"] == 'W/"3"'
    assert puts["MedicationStatement/m1"]["request"]["ifMatch"] == 'W/"2"'
    assert puts["Condition/c1"]["request"]["ifMatch"] == 'W/"5"'
    ended_allergy = puts["AllergyIntolerance/a1"]["resource"]
    assert ended_allergy["clinicalStatus"]["coding"][0]["code"] == "inactive"
    assert ended_allergy["verificationStatus"] == allergy.resource["verificationStatus"]
    assert ended_allergy["code"] == {"text": "Penicillin"} and "meta" not in ended_allergy
    assert puts["MedicationStatement/m1"]["resource"]["status"] == "stopped"
    ended_condition = puts["Condition/c1"]["resource"]
    assert ended_condition["clinicalStatus"]["coding"][0]["code"] == "resolved"
    assert ended_condition["verificationStatus"]["coding"][0]["code"] == "unconfirmed"
    # Prior treatments are history; the condition still listed is neither ended nor recreated.
    assert by_type(bundle, "Procedure") == []
    assert all("c2" not in e["request"]["url"] for e in bundle["entry"])
    assert [e["resource"]["code"] for e in by_type(bundle, "Condition")] == [{"text": "Eczema"}]
    provenance = bundle["entry"][-1]["resource"]
    targets = {t["reference"] for t in provenance["target"]}
    assert set(puts) <= targets
    revisions = {e["what"]["reference"]: e["what"]["display"] for e in provenance["entity"][1:]}
    assert revisions == {
        "AllergyIntolerance/a1/_history/3": (
            "AllergyIntolerance/a1 clinicalStatus inactive: removed from the intake"
        ),
        "MedicationStatement/m1/_history/2": (
            "MedicationStatement/m1 status stopped: removed from the intake"
        ),
        "Condition/c1/_history/5": "Condition/c1 clinicalStatus resolved: removed from the intake",
    }
    assert {e["role"] for e in provenance["entity"][1:]} == {"revision"}
    assert any(e["subtype"][0]["code"] == "update" for e in fake_ehr.audit_events)


def test_an_allergy_listed_again_is_made_active_again(writer, server, fake_ehr, spa_patient, ctx):
    inactive = {"coding": [{"system": history.ALLERGY_CLINICAL, "code": "inactive"}]}
    fake_ehr.resources.append(stored(imported_allergy(ctx), "a1", "4", clinicalStatus=inactive))
    assert (
        post(writer, server, basic_form() | {"allergy.substance[0]": "Penicillin"}).status_code
        == 303
    )
    (bundle,) = server.transactions
    (put,) = [e for e in bundle["entry"] if e["request"]["method"] == "PUT"]
    assert put["request"] == {"method": "PUT", "url": "AllergyIntolerance/a1", "ifMatch": 'W/"4"'}
    assert put["resource"]["clinicalStatus"]["coding"][0]["code"] == "active"
    assert by_type(bundle, "AllergyIntolerance") == [put]  # no second AllergyIntolerance


def test_an_allergy_row_without_a_substance_is_shown_next_to_the_field(writer, server):
    csrf = token(writer.get("/intake").get_data(as_text=True))
    form = basic_form() | {
        "csrf_token": csrf,
        "allergy.substance[0]": "Latex",
        "allergy.severity[1]": "mild",
    }
    response = writer.post("/intake", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert (
        '<span id="err-allergy-substance-1" class="field-error">Required: this row has other '
        "answers.</span>" in page
    )
    assert 'aria-describedby="err-allergy-substance-1"' in page
    assert 'id="intake-errors"' in page
    assert server.transactions == []


def test_missing_update_scope_is_refused_before_writing(client, fake_ehr, server, spa_patient, ctx):
    fake_ehr.granted_scope = WRITE_SCOPE.replace(
        "patient/AllergyIntolerance.crus", "patient/AllergyIntolerance.crs"
    )
    launch(client, fake_ehr)
    fake_ehr.resources.append(stored(imported_allergy(ctx), "a1"))
    server.latest = history_response(
        fake_ehr.patient_id, {"history.allergies": [{"allergy.substance": "Penicillin"}]}
    )
    csrf = token(client.get("/intake").get_data(as_text=True))
    response = client.post("/intake", data=basic_form() | {"csrf_token": csrf})
    assert response.status_code == 403
    assert "AllergyIntolerance (update)" in response.get_data(as_text=True)
    assert server.transactions == []


def test_a_failed_history_read_saves_nothing(writer, server, fake_ehr, spa_patient):
    fake_ehr.failing_types = {"AllergyIntolerance"}
    csrf = token(writer.get("/intake").get_data(as_text=True))
    server.expect_transaction()
    form = basic_form() | {"csrf_token": csrf, "allergy.substance[0]": "Latex"}
    response = writer.post("/intake", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 502
    assert 'id="intake-failed"' in page and 'value="Latex"' in page
    assert server.transactions == []


def test_a_version_conflict_saves_nothing_and_keeps_the_answers(
    writer, server, fake_ehr, spa_patient, ctx
):
    fake_ehr.resources.append(stored(imported_allergy(ctx), "a1"))
    server.latest = history_response(
        fake_ehr.patient_id, {"history.allergies": [{"allergy.substance": "Penicillin"}]}
    )
    csrf = token(writer.get("/intake").get_data(as_text=True))
    server.expect_transaction(status=412)
    response = writer.post("/intake", data=basic_form() | {"csrf_token": csrf})
    assert response.status_code == 502
    assert 'id="intake-failed"' in response.get_data(as_text=True)
    (bundle,) = server.transactions  # one attempt, all in one transaction
    assert [e["request"]["method"] for e in bundle["entry"]] == ["POST", "PUT", "POST"]


def test_after_saving_the_form_shows_the_saved_allergy(writer, server, spa_patient):
    form = basic_form() | {"allergy.substance[0]": "Latex", "allergy.severity[0]": "mild"}
    assert post(writer, server, form).status_code == 303
    server.latest = server.transactions[0]["entry"][0]["resource"]
    page = writer.get("/intake?saved=1").get_data(as_text=True)
    assert 'id="intake-saved"' in page
    assert 'name="allergy.substance[0]" value="Latex"' in page
    assert '<option value="mild" selected>' in page


def test_a_minor_without_a_guardian_is_not_saved(writer, server):
    # The import refuses the same record: one rule for minors (privacy policy §9).
    csrf = token(writer.get("/intake").get_data(as_text=True))
    form = good_form(csrf) | {"client.birth_date": "2012-05-05"}
    response = writer.post("/intake", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="err-guardian-name" class="field-error">The client is under 18' in page
    assert 'id="err-guardian-relationship" class="field-error">The client is under 18' in page
    assert server.transactions == []


def test_contact_answers_with_a_card_number_are_not_saved(writer, server):
    csrf = token(writer.get("/intake").get_data(as_text=True))
    form = good_form(csrf) | {"emergency.name": "Rowan 4111 1111 1111 1111"}
    response = writer.post("/intake", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="err-emergency-name" class="field-error">Remove the payment card number' in page
    assert server.transactions == []
