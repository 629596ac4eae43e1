"""Exports, access packages and their handover are recorded as disclosures on the local HAPI
FHIR server, so the accounting of disclosures lists their recipient and purpose."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from symfhir.cli import main
from symfhir.export.access_request import handle, record_handover
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.privacy.audit import RequestAuditTrail
from symfhir.privacy.disclosures import accounting_of_disclosures
from symfhir.privacy.model import COMPLETED, PrivacyRequest, Requester
from symfhir.spa import load_spa
from tests.integration.conftest import synthetic_patient, synthetic_practitioner
from tests.unit.fake_fhir import Trail

pytestmark = pytest.mark.integration


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


def accounting_rows(fhir_base: str, patient_id: str, user: str, capsys) -> list[dict[str, str]]:
    capsys.readouterr()
    args = ["disclosures", "--patient", patient_id, "--format", "csv"]
    assert main([*args, "--server", fhir_base, "--user", user]) == 0
    return list(csv.DictReader(capsys.readouterr().out.splitlines()))


def test_an_export_with_a_recipient_is_listed_with_recipient_and_purpose(
    client: FhirClient, fhir_base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nurse = synthetic_practitioner(client)
    physician = synthetic_practitioner(client)
    patient_id = synthetic_patient(client, birthDate="1990-04-01")
    server = ["--server", fhir_base, "--user", str(nurse.fhir_user)]
    export = ["export", "--patient", patient_id, "--format", "bundle", *server]
    assert main([*export, "-o", str(tmp_path / "own.json")]) == 0
    assert (
        main(
            [
                *export,
                *("-o", str(tmp_path / "doctor.json")),
                *("--recipient", "Dr. Dana Ashgrove", "--purpose", "TREAT"),
                *("--recipient-ref", str(physician.fhir_user)),
            ]
        )
        == 0
    )
    own, doctor = accounting_rows(fhir_base, patient_id, str(nurse.fhir_user), capsys)
    assert (own["recipient"], own["recipient_reference"]) == (
        "the client (patient request)",
        f"Patient/{patient_id}",
    )
    assert (own["purpose_code"], own["purpose"]) == ("PATRQT", "patient requested")
    assert (doctor["recipient"], doctor["recipient_reference"]) == (
        "Dr. Dana Ashgrove",
        physician.fhir_user,
    )
    assert (doctor["purpose_code"], doctor["purpose"]) == ("TREAT", "treatment")
    assert own["disclosed"] == "Patient"
    # The second export carries the first one's AuditEvent (the client's record includes it).
    assert doctor["disclosed"].split(";") == ["AuditEvent", "Patient", "Practitioner"]
    assert doctor["by"] == nurse.fhir_user
    # As stored by the server: the R4 disclosure shape, the export's description kept.
    stored = client.read("AuditEvent", doctor["event"].split("/", 1)[1])
    AuditEvent.model_validate(stored)
    assert stored["type"]["code"] == "110106"
    assert stored["outcomeDesc"].startswith("export bundle: 3 resources (AuditEvent 1, Patient 1")


def test_an_unknown_purpose_is_refused_before_anything_is_written(
    fhir_base: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.json"
    with pytest.raises(SystemExit):
        main(["export", "--patient", "p1", "--purpose", "HMARKT", "-o", str(out)])
    assert "invalid choice" in capsys.readouterr().err
    code = main(
        [
            *("export", "--patient", "p1", "-o", str(out), "--server", fhir_base),
            *("--recipient-ref", "not a reference"),
        ]
    )
    assert code == 2
    assert "--recipient-ref" in capsys.readouterr().err
    assert not out.exists()


def test_the_access_package_and_its_handover_go_to_the_requester(
    client: FhirClient,
    fhir_base: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    officer = synthetic_practitioner(client)
    patient_id = synthetic_patient(client, birthDate="1990-04-01")
    monkeypatch.setenv("SYMFHIR_EXPORT_DIR", str(tmp_path))
    now = datetime.now(load_spa().zone)
    request = PrivacyRequest(
        task_id="t1",
        kind="access",
        requester=Requester(name="Avery Quillfeather", email="avery.q@example.com"),
        received=now,
        due=date(2026, 12, 25),
        patient_id=patient_id,
    )
    # The trail `symfhir privacy process` uses: bound to no client until a step names one.
    trail = RequestAuditTrail(client, officer.fhir_user)
    outcome = handle(client, officer, request, now=now, audit=trail)
    assert outcome.business_status == COMPLETED
    record_handover(trail, request, via="desk")
    today = now.date()
    accounting = accounting_of_disclosures(
        client, officer, patient_id, start=today, end=today, now=now, audit=Trail()
    )
    package, handover = accounting.disclosures
    for item in (package, handover):
        assert (item.recipient, item.recipient_reference) == (
            "Avery Quillfeather",
            f"Patient/{patient_id}",
        )
        assert item.purpose_code == "PATRQT"
        assert item.by == officer.fhir_user
    assert package.disclosed == ("Patient",)
    stored = client.read("AuditEvent", handover.event_id)
    assert stored["outcomeDesc"] == "access package handed over: desk"
    AuditEvent.model_validate(stored)
