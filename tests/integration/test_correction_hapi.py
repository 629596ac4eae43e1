"""Correction requests against the local HAPI FHIR server: a phone corrected end to end (the
proposal processed, accepted as a new Patient version with its Provenance, the Task
completed), a denial followed by a statement of disagreement linked to the disputed record,
and a proposal naming another client's record refused."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from symfhir.cli import main
from symfhir.errors import FhirConflictError, PrivacyRequestError
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.privacy.audit import RequestAuditTrail
from symfhir.privacy.correction import AWAITING, Change
from symfhir.privacy.correction_review import (
    accept_correction,
    deny_correction,
    file_disagreement,
)
from symfhir.privacy.model import COMPLETED, DENIED, IN_PROGRESS, Requester, Verification
from symfhir.privacy.processing import process_request
from symfhir.privacy.requests import NewRequest, get_request, submit_request
from symfhir.workspace.actor import Actor
from tests.integration.conftest import synthetic_patient, synthetic_practitioner

pytestmark = pytest.mark.integration


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


@pytest.fixture
def actor(client: FhirClient) -> Actor:
    return synthetic_practitioner(client)


def correction(
    client: FhirClient, actor: Actor, patient_id: str, inputs: dict[str, str], now: datetime
) -> str:
    trail = RequestAuditTrail(client, actor.fhir_user, clock=lambda: now)
    new = NewRequest(
        "correction",
        Requester("Avery Quillfeather", date(1990, 4, 1), "avery.q@example.com"),
        inputs=inputs,
        patient_id=patient_id,
        verifications=(Verification("in-person", actor.fhir_user, now - timedelta(minutes=1)),),
    )
    return str(submit_request(client, actor, new, now=now, audit=trail).request.task_id)


def outputs(task: dict) -> dict[str, str]:
    return {
        o["type"]["text"]: o.get("valueString") or o.get("valueReference", {}).get("reference")
        for o in task.get("output", [])
    }


def test_a_phone_corrected_end_to_end(client: FhirClient, actor: Actor) -> None:
    now = datetime.now(UTC)
    trail = RequestAuditTrail(client, actor.fhir_user, clock=lambda: now)
    patient_id = synthetic_patient(
        client,
        birthDate="1990-04-01",
        telecom=[
            {"system": "phone", "value": "+13125550100", "use": "mobile"},
            {"system": "email", "value": "avery.q@example.com"},
        ],
    )
    task_id = correction(
        client,
        actor,
        patient_id,
        {"resource": "Patient.telecom", "proposed": "(312) 555-0142", "reason": "new number"},
        now,
    )

    processed = process_request(client, actor, task_id, now=now, audit=trail)
    assert processed.outcome.business_status == IN_PROGRESS
    assert processed.outcome.summary == AWAITING
    assert client.read("Patient", patient_id)["meta"]["versionId"] == "1"  # nothing changed yet

    seen = get_request(client, actor, task_id, now=now, audit=trail)
    result = accept_correction(
        client,
        actor,
        task_id,
        version=seen.version,
        change=Change("(312) 555-0142"),
        now=now,
        audit=trail,
    )

    patient = client.read("Patient", patient_id)
    assert patient["meta"]["versionId"] == "2"
    assert {"system": "phone", "value": "+13125550142", "use": "mobile"} in patient["telecom"]
    assert {"system": "email", "value": "avery.q@example.com"} in patient["telecom"]
    assert client.vread("Patient", patient_id, "1")["telecom"][0]["value"] == "+13125550100"
    assert result.target == f"Patient/{patient_id}/_history/2"

    task = client.read("Task", task_id)
    assert task["businessStatus"]["coding"][0]["code"] == COMPLETED
    done = outputs(task)
    assert done["corrected"] == f"Patient/{patient_id}/_history/2"
    provenance = client.read("Provenance", done["correction-provenance"].split("/")[1])
    assert provenance["target"] == [{"reference": f"Patient/{patient_id}"}]
    assert provenance["activity"]["coding"][0]["code"] == "UPDATE"
    assert provenance["reason"][0]["coding"][0]["code"] == "PATRQT"
    assert provenance["agent"][0]["who"] == {"reference": actor.fhir_user}
    assert {"role": "source", "what": {"reference": f"Task/{task_id}"}} in provenance["entity"]
    revision = next(e for e in provenance["entity"] if e["role"] == "revision")
    assert revision["what"]["display"] == "version 1, as it was before the correction"
    assert result.notice is not None and "accepted" in result.notice.subject
    assert "555" not in result.notice.text  # the corrected value is not e-mailed

    with pytest.raises(PrivacyRequestError, match="closed"):
        accept_correction(
            client, actor, task_id, version=None, change=Change("x"), now=now, audit=trail
        )


def test_an_answer_on_a_stale_version_writes_nothing(client: FhirClient, actor: Actor) -> None:
    now = datetime.now(UTC)
    trail = RequestAuditTrail(client, actor.fhir_user, clock=lambda: now)
    patient_id = synthetic_patient(client, birthDate="1990-04-01")
    task_id = correction(
        client, actor, patient_id, {"resource": "Patient.birthDate", "proposed": "1990-04-02"}, now
    )
    stale = get_request(client, actor, task_id, now=now, audit=trail).version
    process_request(client, actor, task_id, now=now, audit=trail)

    with pytest.raises(FhirConflictError):
        accept_correction(
            client, actor, task_id, version=stale, change=Change("1990-04-02"), now=now, audit=trail
        )
    assert client.read("Patient", patient_id)["birthDate"] == "1990-04-01"
    assert client.read("Patient", patient_id)["meta"]["versionId"] == "1"


def test_a_denial_then_a_statement_of_disagreement(client: FhirClient, actor: Actor) -> None:
    now = datetime.now(UTC)
    trail = RequestAuditTrail(client, actor.fhir_user, clock=lambda: now)
    patient_id = synthetic_patient(client, birthDate="1990-04-01")
    allergy = client.create(
        {
            "resourceType": "AllergyIntolerance",
            "patient": {"reference": f"Patient/{patient_id}"},
            "code": {"text": "Lidocaine"},
        }
    )
    task_id = correction(
        client,
        actor,
        patient_id,
        {"resource": f"AllergyIntolerance/{allergy.id}", "proposed": "I am not allergic"},
        now,
    )
    process_request(client, actor, task_id, now=now, audit=trail)

    denied = deny_correction(
        client,
        actor,
        task_id,
        version=None,
        reason="The record is accurate: the reaction was observed here.",
        now=now,
        audit=trail,
    )
    assert denied.request.request.business_status == DENIED
    assert denied.notice is not None
    assert "statement disagreeing" in denied.notice.text
    assert "Health and Human Services" in denied.notice.text

    filed = file_disagreement(
        client, actor, task_id, "I was never allergic to lidocaine.", now=now, audit=trail
    )
    assert filed.target is not None and filed.target.startswith("DocumentReference/")
    document = client.read("DocumentReference", filed.target.split("/")[1])
    assert document["subject"] == {"reference": f"Patient/{patient_id}"}
    related = [r["reference"] for r in document["context"]["related"]]
    assert related == [f"AllergyIntolerance/{allergy.id}", f"Task/{task_id}"]
    text = base64.b64decode(document["content"][0]["attachment"]["data"]).decode()
    assert text == "I was never allergic to lidocaine."
    found = list(
        client.search("DocumentReference", [("related", f"AllergyIntolerance/{allergy.id}")])
    )
    assert [d["id"] for d in found] == [document["id"]]
    task = client.read("Task", task_id)
    assert task["businessStatus"]["coding"][0]["code"] == DENIED
    assert outputs(task)["statement-of-disagreement"] == f"DocumentReference/{document['id']}"
    assert client.read("AllergyIntolerance", allergy.id)["meta"]["versionId"] == "1"

    with pytest.raises(PrivacyRequestError, match="on file"):
        file_disagreement(client, actor, task_id, "Again.", now=now, audit=trail)


def test_a_proposal_on_another_clients_record_is_refused(client: FhirClient, actor: Actor) -> None:
    now = datetime.now(UTC)
    trail = RequestAuditTrail(client, actor.fhir_user, clock=lambda: now)
    patient_id = synthetic_patient(client, birthDate="1990-04-01")
    other_id = synthetic_patient(client, birthDate="1979-02-02")
    theirs = client.create(
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{other_id}"},
            "code": {"text": "Rosacea"},
        }
    )
    task_id = correction(
        client,
        actor,
        patient_id,
        {"resource": f"Condition/{theirs.id}", "proposed": "No rosacea"},
        now,
    )

    with pytest.raises(PrivacyRequestError, match="not a record of this client"):
        process_request(client, actor, task_id, now=now, audit=trail)

    task = client.read("Task", task_id)
    assert "correction-target" not in outputs(task)
    with pytest.raises(PrivacyRequestError, match="not awaiting review"):
        accept_correction(
            client, actor, task_id, version=None, change=Change("x"), now=now, audit=trail
        )
    assert client.read("Condition", theirs.id)["meta"]["versionId"] == "1"


def test_the_command_line_accepts_denies_and_files_a_disagreement(
    client: FhirClient,
    actor: Actor,
    fhir_base: str,
    smtp_catcher,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in smtp_catcher.config().items():
        monkeypatch.setenv(f"SYMFHIR_SMTP_{key.upper()}", str(value))

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([*argv[:2], "--server", fhir_base, f"--user={actor.fhir_user}", *argv[2:]])
        out, err = capsys.readouterr()
        return code, out, err

    patient_id = synthetic_patient(client, birthDate="1990-04-01")
    code, out, _ = run(
        "privacy",
        "new",
        "--kind=correction",
        "--name=Avery Quillfeather",
        "--email=avery.cli@example.com",
        f"--patient={patient_id}",
        "--verified-in-person",
        "--input=resource=Patient.address",
        "--input=proposed=12 Elm Street, Springfield, IL 62701",
    )
    task = out.split("Task/")[1].split()[0]
    assert run("privacy", "process", task)[0] == 0
    code, out, err = run("correction", "accept", task)
    assert code == 0, err
    assert f"Patient/{patient_id}/_history/2" in out
    assert client.read("Patient", patient_id)["address"] == [
        {"text": "12 Elm Street, Springfield, IL 62701"}
    ]
    [accepted] = smtp_catcher.wait_for(1)
    assert accepted.to == "avery.cli@example.com" and "accepted" in accepted.subject
    assert "Elm" not in accepted.text

    code, out, _ = run(
        "privacy",
        "new",
        "--kind=correction",
        "--name=Avery Quillfeather",
        "--email=avery.cli@example.com",
        f"--patient={patient_id}",
        "--verified-in-person",
        "--input=resource=Patient.birthDate",
        "--input=proposed=1990-04-02",
    )
    task = out.split("Task/")[1].split()[0]
    assert run("privacy", "process", task)[0] == 0
    code, out, err = run("correction", "deny", task, "--reason=Matches your ID seen at the desk.")
    assert code == 0 and "denied" in out, err
    code, out, err = run("correction", "disagree", task, "--statement=My birthday is the 2nd.")
    assert code == 0 and "DocumentReference/" in out, err
    code, _, err = run("correction", "accept", task)
    assert code == 2 and "closed" in err
    mails = smtp_catcher.wait_for(3)
    assert {m.subject for m in mails[:2]} == {
        "Your correction request: denied",
        "Your statement of disagreement: received",
    }


def test_a_request_in_free_text_is_amended_where_the_practitioner_names(
    client: FhirClient, actor: Actor
) -> None:
    now = datetime.now(UTC)
    trail = RequestAuditTrail(client, actor.fhir_user, clock=lambda: now)
    patient_id = synthetic_patient(client, birthDate="1990-04-01")
    condition = client.create(
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{patient_id}"},
            "code": {"text": "Melasma"},
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "code": "confirmed",
                    }
                ]
            },
        }
    )
    new = NewRequest(
        "correction",
        Requester("Avery Quillfeather", date(1990, 4, 1), "avery.q@example.com"),
        details="The melasma on my record was never diagnosed.",
        patient_id=patient_id,
        verifications=(Verification("in-person", actor.fhir_user, now - timedelta(minutes=1)),),
    )
    task_id = str(submit_request(client, actor, new, now=now, audit=trail).request.task_id)
    processed = process_request(client, actor, task_id, now=now, audit=trail)
    assert processed.outcome.summary.startswith(AWAITING)

    accept_correction(
        client,
        actor,
        task_id,
        version=None,
        change=Change(
            "Not diagnosed here; recorded in error.",
            "entered-in-error",
            f"Condition/{condition.id}",
        ),
        now=now,
        audit=trail,
    )

    amended = client.read("Condition", condition.id)
    assert amended["meta"]["versionId"] == "2"
    assert amended["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert amended["code"] == {"text": "Melasma"}  # never rewritten
    assert "recorded in error" in amended["note"][0]["text"]
    assert amended["note"][0]["authorReference"] == {"reference": actor.fhir_user}
    done = outputs(client.read("Task", task_id))
    assert done["correction-target"] == f"Condition/{condition.id}"
    assert done["corrected"] == f"Condition/{condition.id}/_history/2"
