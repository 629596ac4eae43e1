"""The accounting of disclosures against the local HAPI FHIR server: of a new client's three
AuditEvents (two disclosures, one ordinary read), the accounting lists exactly the two, by
the workflow and by ``symfhir disclosures``."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from symfhir.audit import audit_event, disclosure_event
from symfhir.cli import main
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.privacy.disclosures import accounting_of_disclosures
from symfhir.workspace.actor import Actor
from tests.integration.conftest import synthetic_patient, synthetic_practitioner

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("America/Chicago")


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


@pytest.fixture
def written(client: FhirClient) -> tuple[str, Actor, list[str]]:
    """A new client with two disclosures and one read recorded in November 2026."""
    nurse = synthetic_practitioner(client)
    physician = synthetic_practitioner(client)
    patient_id = synthetic_patient(client, birthDate="1990-04-01")
    events = [
        disclosure_event(
            patient_id,
            recipient="Avery Quillfeather",
            recipient_reference=f"Patient/{patient_id}",
            purpose="PATRQT",
            disclosed=["Observation", "Media", "Consent"],
            fhir_user=nurse.fhir_user,
            now=datetime(2026, 11, 3, 10, 15, tzinfo=ZONE),
        ),
        audit_event(
            "read", patient_id, nurse.fhir_user, now=datetime(2026, 11, 4, 9, 0, tzinfo=ZONE)
        ),
        disclosure_event(
            patient_id,
            recipient="Dr. Dana Ashgrove",
            recipient_reference=physician.fhir_user,
            purpose="TREAT",
            disclosed=["AllergyIntolerance", "MedicationStatement"],
            fhir_user=nurse.fhir_user,
            now=datetime(2026, 11, 20, 16, 45, tzinfo=ZONE),
        ),
    ]
    ids = [client.create(event).id for event in events]
    return patient_id, nurse, ids


def test_the_accounting_lists_exactly_the_two_disclosures(client, written):
    patient_id, nurse, (first, _read, second) = written
    calls: list[str] = []
    accounting = accounting_of_disclosures(
        client,
        nurse,
        patient_id,
        start=date(2026, 11, 1),
        end=date(2026, 11, 30),
        now=datetime(2026, 11, 25, 9, 30, tzinfo=ZONE),
        audit=lambda subtype, **_: calls.append(subtype),
    )
    assert [d.event_id for d in accounting.disclosures] == [first, second]
    patient_request, sharing = accounting.disclosures
    assert (patient_request.recipient, patient_request.purpose_code) == (
        "Avery Quillfeather",
        "PATRQT",
    )
    assert patient_request.disclosed == ("Observation", "Media", "Consent")
    assert patient_request.when == datetime(2026, 11, 3, 10, 15, tzinfo=ZONE)
    assert (sharing.recipient, sharing.purpose_code) == ("Dr. Dana Ashgrove", "TREAT")
    assert sharing.by == nurse.fhir_user
    assert calls == ["search"]

    # A range that holds only the first one.
    only_first = accounting_of_disclosures(
        client,
        nurse,
        patient_id,
        start=date(2026, 11, 3),
        end=date(2026, 11, 19),
        now=datetime(2026, 11, 25, 9, 30, tzinfo=ZONE),
        audit=lambda subtype, **_: None,
    )
    assert [d.event_id for d in only_first.disclosures] == [first]


def test_the_command_writes_csv_and_bundle(fhir_base, written, tmp_path: Path, capsys):
    patient_id, nurse, (first, _, second) = written
    common = ["disclosures", "--patient", patient_id, "--from", "2026-11-01"]
    common += ["--to", "2026-11-30", "--server", fhir_base, "--user", str(nurse.fhir_user)]
    out_csv = tmp_path / "accounting.csv"
    assert main([*common, "--format", "csv", "-o", str(out_csv)]) == 0
    with out_csv.open(encoding="utf-8", newline="") as text:
        rows = list(csv.DictReader(text))
    assert [r["event"] for r in rows] == [f"AuditEvent/{first}", f"AuditEvent/{second}"]
    assert [r["purpose_code"] for r in rows] == ["PATRQT", "TREAT"]
    assert "2 disclosures" in capsys.readouterr().err

    assert main([*common, "--format", "bundle"]) == 0
    bundle = json.loads(capsys.readouterr().out)
    assert [e["resource"]["id"] for e in bundle["entry"]] == [first, second]
    assert bundle["entry"][0]["fullUrl"] == f"{fhir_base}/AuditEvent/{first}"

    assert main([*common, "--format", "html"]) == 0
    page = capsys.readouterr().out
    assert page.count("<tr><td>") == 2 and "Dr. Dana Ashgrove" in page


def test_the_command_refuses_a_backwards_range(fhir_base, capsys):
    code = main(
        [
            *("disclosures", "--patient", "x1", "--from", "2026-11-02", "--to", "2026-11-01"),
            *("--server", fhir_base),
        ]
    )
    assert code == 2
    assert "ends before it starts" in capsys.readouterr().err


def test_an_export_by_the_app_is_in_the_accounting(client, fhir_base, tmp_path, capsys):
    nurse = synthetic_practitioner(client)
    patient_id = synthetic_patient(client, birthDate="1990-04-01")
    server = ["--server", fhir_base, "--user", str(nurse.fhir_user)]
    out = tmp_path / "export.json"
    assert (
        main(["export", "--patient", patient_id, "--format", "bundle", "-o", str(out), *server])
        == 0
    )
    capsys.readouterr()
    # Default range: the six years up to today.
    assert main(["disclosures", "--patient", patient_id, "--format", "csv", *server]) == 0
    (row,) = csv.DictReader(capsys.readouterr().out.splitlines())
    assert row["disclosed"] == "Patient"
    assert row["by"] == nurse.fhir_user
    # Recorded as a disclosure: to the client, at their request (no --recipient given).
    assert (row["recipient"], row["purpose_code"]) == ("the client (patient request)", "PATRQT")
