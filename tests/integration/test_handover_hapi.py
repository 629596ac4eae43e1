"""Handing an access package over at the desk, on the local HAPI FHIR R4 server: the real
access handler builds the package (process_request), ``hand_over_package`` finds it by the
Task's output, HAPI accepts its disclosure AuditEvent, and the client's accounting of
disclosures lists the hand-over; a request of another client hands nothing over.

The server is shared: every client and request here is new.
"""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Iterator
from datetime import date, datetime

import pytest

from symfhir.errors import PrivacyRequestError
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.privacy.audit import RequestAuditTrail
from symfhir.privacy.disclosures import accounting_of_disclosures
from symfhir.privacy.handover import hand_over_package
from symfhir.privacy.model import Requester, Verification
from symfhir.privacy.processing import process_request
from symfhir.privacy.requests import NewRequest, submit_request
from symfhir.workspace.actor import Actor
from tests.integration.conftest import synthetic_patient, synthetic_practitioner

pytestmark = pytest.mark.integration


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


def _completed_access_request(client: FhirClient, desk: Actor, now: datetime) -> tuple[str, str]:
    patient_id = synthetic_patient(client, birthDate="1985-04-12")
    trail = RequestAuditTrail(client, desk.fhir_user, clock=lambda: now)
    new = NewRequest(
        "access",
        Requester("Avery Quillfeather", date(1985, 4, 12), f"a.{uuid.uuid4().hex}@example.com"),
        reference=uuid.uuid4().hex,
        patient_id=patient_id,
        verifications=(Verification("in-person", desk.fhir_user, now),),
    )
    task_id = submit_request(client, desk, new, now=now, audit=trail).request.task_id
    processed = process_request(client, desk, task_id, now=now, audit=trail)
    assert processed.outcome.business_status == "completed"
    return patient_id, task_id


def test_the_desk_hands_the_package_over_and_the_accounting_lists_it(
    client, now, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("SYMFHIR_EXPORT_DIR", str(tmp_path))
    desk = synthetic_practitioner(client)
    patient_id, task_id = _completed_access_request(client, desk, now)
    trail = RequestAuditTrail(client, desk.fhir_user, clock=lambda: now)

    package = hand_over_package(client, desk, task_id, patient_id=patient_id, now=now, audit=trail)
    assert package.path.parent == tmp_path.resolve()
    assert package.size == package.path.stat().st_size > 0
    with zipfile.ZipFile(package.path) as archive:
        assert any(name.endswith(".html") for name in archive.namelist())

    accounting = accounting_of_disclosures(
        client, desk, patient_id, start=now.date(), end=now.date(), now=now, audit=trail
    )
    # Building the package and handing it over are each a disclosure to the requester.
    handed = [d for d in accounting.disclosures if d.recipient == "Avery Quillfeather"]
    assert len(handed) == 2
    assert {d.recipient_reference for d in handed} == {f"Patient/{patient_id}"}
    assert {d.purpose_code for d in handed} == {"PATRQT"}
    assert {d.by for d in handed} == {desk.fhir_user}

    other = synthetic_patient(client)
    with pytest.raises(PrivacyRequestError, match="not this client's"):
        hand_over_package(client, desk, task_id, patient_id=other, now=now, audit=trail)
