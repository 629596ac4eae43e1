"""Pushing to a physician's FHIR server: a client's records on the main HAPI server, pushed to a
SECOND, empty HAPI (the physician's) as a document and as a transaction, then read back there:
the same resources, the photo's bytes in a Binary, a Provenance naming the spa; the disclosure
AuditEvent on the main server; a withdrawn consent pushes nothing; and a transfer answering a
verified portability request lands the whole record and closes the request."""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from symfhir.audit import ClientAuditTrail
from symfhir.errors import ConsentMissing
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.privacy.audit import RequestAuditTrail
from symfhir.privacy.model import COMPLETED, Requester, Verification
from symfhir.privacy.requests import NewRequest, submit_request
from symfhir.sharing.links import open_manifest
from symfhir.sharing.push import PushTarget, push_share
from symfhir.sharing.transfer import LINK_OUTPUT, PUSH_OUTPUT, transfer_request
from symfhir.sharing.workflow import LinkSettings
from symfhir.spa import load_spa
from symfhir.store import Store
from symfhir.workspace.actor import Actor
from tests import shl_decoder
from tests.integration.conftest import random_npi, synthetic_patient, synthetic_practitioner
from tests.unit.sharing_fake import PNG_BYTES, clinical, consent, media

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))


@pytest.fixture
def ours(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


@pytest.fixture
def theirs(empty_fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=empty_fhir_base)) as fhir:
        yield fhir


def _new(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("id", "meta")}


def _client(client: FhirClient, *, withdrawn: bool = False) -> tuple[Actor, str, str]:
    """A nurse, a physician and a client with a physician-sharing consent naming them
    (summary, intake, photos; withdrawn when asked), a photo consent, an allergy, an
    observation and a photo in a Binary. Returns (nurse, patient id, the client's id value)."""
    nurse = synthetic_practitioner(client)
    doctor = client.create(
        {
            "resourceType": "Practitioner",
            # An NPI of this run: the shared server keeps the sample's physicians by theirs.
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": random_npi()}],
            "name": [{"text": "Dr. Dana Ashgrove"}],
        }
    ).id
    client_id = uuid.uuid4().hex
    pid = synthetic_patient(client)
    patient = client.read("Patient", pid)
    patient["identifier"][0]["value"] = client_id
    client.update(patient)
    scopes = ("summary", "intake", "photos")
    status = "inactive" if withdrawn else "active"
    client.create(_new(consent("x", scopes=scopes, status=status, doctor=doctor, pid=pid)))
    client.create(_new(consent("x", "photos_clinical", pid=pid)))
    client.create(_new(clinical("AllergyIntolerance", "x", pid=pid, code={"text": "latex"})))
    observation = clinical(
        "Observation",
        "x",
        pid=pid,
        status="final",
        code={"text": "body weight"},
        effectiveDateTime="2026-05-01",
        valueQuantity={"value": 61, "unit": "kg"},
        performer=[{"reference": nurse.fhir_user}],
    )
    client.create(_new(observation))
    binary = client.upload_binary(io.BytesIO(PNG_BYTES), "image/png").id
    client.create(_new(media("x", pid=pid, binary=binary)))
    return nurse, pid, client_id


def _patient_there(theirs: FhirClient, client_id: str) -> list[dict[str, Any]]:
    system = f"{load_spa().identifier_base}/client-id"
    return theirs.search_all("Patient", {"identifier": f"{system}|{client_id}"})


def _disclosures(ours: FhirClient, pid: str) -> list[dict[str, Any]]:
    events = ours.search_all("AuditEvent", {"entity": f"Patient/{pid}", "_count": "100"})
    return [e for e in events if (e.get("type") or {}).get("code") == "110106"]


def test_a_document_push_lands_the_summary_and_is_a_disclosure_on_our_server(
    ours: FhirClient, theirs: FhirClient, empty_fhir_base: str
) -> None:
    nurse, pid, _ = _client(ours)
    report = push_share(
        ours,
        nurse,
        pid,
        target=PushTarget(empty_fhir_base),
        scopes=("summary",),
        mode="document",
        now=NOW,
        audit=ClientAuditTrail(ours, pid, nurse.fhir_user),
    )
    kind, bundle_id = report.ids["Bundle"].split("/")
    landed = theirs.read(kind, bundle_id)
    assert landed["type"] == "document"
    assert landed["entry"][0]["resource"]["resourceType"] == "Composition"
    assert report.sent == dict(Counter(e["resource"]["resourceType"] for e in landed["entry"]))
    assert "AllergyIntolerance" in report.sent
    (event,) = _disclosures(ours, pid)
    assert event["outcome"] == "0"
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    names = [a.get("name", "") for a in event["agent"]]
    assert any("Dr. Dana Ashgrove" in n for n in names)


def test_a_transaction_push_lands_the_same_resources_and_the_photo_bytes(
    ours: FhirClient, theirs: FhirClient, empty_fhir_base: str
) -> None:
    nurse, pid, client_id = _client(ours)
    audit = ClientAuditTrail(ours, pid, nurse.fhir_user)
    target = PushTarget(empty_fhir_base)
    report = push_share(
        ours,
        nurse,
        pid,
        target=target,
        scopes=("summary", "intake", "photos"),
        mode="transaction",
        now=NOW,
        audit=audit,
    )
    (patient,) = _patient_there(theirs, client_id)
    new_pid = patient["id"]
    allergies = theirs.search_all("AllergyIntolerance", {"patient": f"Patient/{new_pid}"})
    assert [a["code"]["text"] for a in allergies] == ["latex"]
    (observation,) = theirs.search_all("Observation", {"subject": f"Patient/{new_pid}"})
    assert observation["valueQuantity"]["value"] == 61
    # The nurse is not shared: only a display of what it was stays.
    assert "reference" not in observation["performer"][0]
    (photo,) = theirs.search_all("Media", {"subject": f"Patient/{new_pid}"})
    binary_id = photo["content"]["url"].split("/")[-1]
    got = io.BytesIO()
    theirs.download_binary(binary_id, got)
    assert got.getvalue() == PNG_BYTES
    assert report.photos == 1 and report.sent["Media"] == 1
    provenances = theirs.search_all("Provenance", {"target": f"Patient/{new_pid}"})
    assert len(provenances) == 1
    assert provenances[0]["agent"][0]["who"]["display"] == load_spa().name
    # Pushing again adds nothing: every create is conditional.
    again = push_share(
        ours,
        nurse,
        pid,
        target=target,
        scopes=("summary", "intake", "photos"),
        mode="transaction",
        now=NOW,
        audit=audit,
    )
    assert len(_patient_there(theirs, client_id)) == 1
    assert again.unchanged >= 4
    assert len(theirs.search_all("Media", {"subject": f"Patient/{new_pid}"})) == 1
    assert len(_disclosures(ours, pid)) == 2


def test_a_withdrawn_consent_pushes_nothing(
    ours: FhirClient, theirs: FhirClient, empty_fhir_base: str
) -> None:
    nurse, pid, client_id = _client(ours, withdrawn=True)
    with pytest.raises(ConsentMissing):
        push_share(
            ours,
            nurse,
            pid,
            target=PushTarget(empty_fhir_base),
            scopes=("summary",),
            mode="transaction",
            now=NOW,
            audit=ClientAuditTrail(ours, pid, nurse.fhir_user),
        )
    assert _patient_there(theirs, client_id) == []
    assert _disclosures(ours, pid) == []


def _portability(ours: FhirClient, nurse: Actor, pid: str, trail: RequestAuditTrail) -> str:
    requester = Requester("Avery Quillfeather", date(1985, 4, 12), "avery@example.com")
    new = NewRequest(
        "portability",
        requester,
        inputs={"transfer-to": "Bayou Family Medicine"},
        patient_id=pid,
        verifications=(Verification("in-person", nurse.fhir_user, NOW),),
    )
    task_id = submit_request(ours, nurse, new, now=NOW, audit=trail).request.task_id
    assert task_id is not None
    return task_id


def test_a_transfer_answers_a_verified_portability_request(
    ours: FhirClient, theirs: FhirClient, empty_fhir_base: str
) -> None:
    # No physician-sharing consent needed: the client asked for the transfer themselves.
    nurse, pid, client_id = _client(ours, withdrawn=True)
    trail = RequestAuditTrail(ours, nurse.fhir_user, clock=lambda: NOW)
    task_id = _portability(ours, nurse, pid, trail)
    done = transfer_request(
        ours,
        nurse,
        task_id,
        target=PushTarget(empty_fhir_base),
        now=NOW,
        audit=trail,
    )
    assert done.request.request.business_status == COMPLETED
    outputs = {o.label: o for o in done.request.request.outputs}
    assert empty_fhir_base in (outputs[PUSH_OUTPUT].text or "")
    (patient,) = _patient_there(theirs, client_id)
    photos = theirs.search_all("Media", {"subject": f"Patient/{patient['id']}"})
    assert len(photos) == 1  # a transfer carries every photo
    (event,) = _disclosures(ours, pid)
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "PATRQT"
    assert any("Bayou Family Medicine" in a.get("name", "") for a in event["agent"])


def test_a_transfer_by_long_term_link_keeps_the_key_off_the_task(
    ours: FhirClient, store: Store
) -> None:
    nurse, pid, _ = _client(ours, withdrawn=True)
    trail = RequestAuditTrail(ours, nurse.fhir_user, clock=lambda: NOW)
    task_id = _portability(ours, nurse, pid, trail)
    links = LinkSettings("https://links.example.org", "https://links.example.org/view")
    done = transfer_request(ours, nurse, task_id, store=store, links=links, now=NOW, audit=trail)
    assert done.link is not None and done.link.flags == "L"
    task = ours.read("Task", task_id)
    payload = shl_decoder.parse(done.link.viewer_url)
    assert payload["key"] not in json.dumps(task)  # the link is handed over, never stored
    outputs = {o.label: o.text or "" for o in done.request.request.outputs}
    assert done.link.link_id in outputs[LINK_OUTPUT]
    access = open_manifest(
        store,
        payload["url"].rsplit("/", 1)[1],
        recipient="Bayou Family Medicine",
        passcode=None,
        embedded_length_max=10**9,
        files_base=links.links_base,
        now=NOW,
    )
    key = shl_decoder.b64d(payload["key"])
    files = [
        json.loads(shl_decoder.decrypt(f["embedded"], key)[1]) for f in access.manifest["files"]
    ]
    photos = [f for f in files if f.get("resourceType") == "Media"]
    assert len(photos) == 1
    assert base64.b64decode(photos[0]["content"]["data"]) == PNG_BYTES


def test_the_command_line_creates_lists_revokes_and_pushes(
    ours: FhirClient,
    theirs: FhirClient,
    fhir_base: str,
    empty_fhir_base: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cryptography.fernet import Fernet

    from symfhir.cli import main

    nurse, pid, client_id = _client(ours)
    monkeypatch.setenv("SYMFHIR_STORE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("SYMFHIR_STORE_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("SHARE_PASSCODE", "correct horse")
    monkeypatch.setenv("PHYSICIAN_TOKEN", "synthetic-token")
    server = ["--server", fhir_base, "--user", str(nurse.fhir_user)]
    png = tmp_path / "qr.png"
    created = main(
        ["share", "create", "--patient", pid, "--scope", "intake", "--label", "For Dr. A",
         "--passcode-env", "SHARE_PASSCODE", "--qr-png", str(png), *server]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert created == 0 and png.read_bytes().startswith(b"\x89PNG")
    link_id = out.split("link id", 1)[1].split()[0]
    assert shl_decoder.parse(out.split("viewer", 1)[1].split()[0])["flag"] == "P"
    assert main(["share", "list", "--patient", pid]) == 0
    assert f"{link_id}  active" in capsys.readouterr().out
    assert main(["share", "revoke", "--patient", pid, link_id, *server]) == 0
    assert main(["share", "list", "--patient", pid]) == 0
    assert f"{link_id}  revoked" in capsys.readouterr().out
    pushed = main(
        ["share", "push", "--patient", pid, "--to", empty_fhir_base, "--mode", "transaction",
         "--bearer-token-env", "PHYSICIAN_TOKEN", "--scope", "intake", *server]
    )  # fmt: skip
    assert pushed == 0
    assert "synthetic-token" not in capsys.readouterr().out
    assert len(_patient_there(theirs, client_id)) == 1
