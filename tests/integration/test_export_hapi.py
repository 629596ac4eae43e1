"""The export against the local HAPI FHIR server: every format of a new client's record, the
ZIP's photos streamed from Binary, password protection, escaping of hostile text, paging,
another client's resources left out, the access-request handler, and the round trip (an
exported Bundle imported as a new client gives the same resources)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pyzipper

from symfhir.cli import main
from symfhir.export import collect as collect_module
from symfhir.export import export_patient
from symfhir.export.access_request import handle
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.privacy.model import COMPLETED, PrivacyRequest, Requester
from symfhir.workspace.actor import Actor
from tests.integration.conftest import synthetic_patient, synthetic_practitioner

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("America/Chicago")
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZONE)
HOSTILE = '<script>alert("x")</script>&"\'><img src=x onerror=alert(1)>'
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 400 + b"\xff\xd9"  # a stand-in JPEG
FORM = b"%PDF-1.4 synthetic signed form\n%%EOF\n"


class Audit:
    """An AuditTrail that keeps the events it is given."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, subtype: str, **kwargs: Any) -> None:
        self.events.append({"subtype": subtype, **kwargs})


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


def _record(client: FhirClient, nurse: Actor, patient_id: str, name: str = "Avery") -> None:
    """A small record of every section the report shows, one photo and one signed form."""
    subject = {"reference": f"Patient/{patient_id}"}
    binary = client.upload_binary(io.BytesIO(PHOTO), "image/jpeg")
    resources: list[dict[str, Any]] = [
        {
            "resourceType": "AllergyIntolerance",
            "patient": subject,
            "code": {"text": f"Lidocaine ({name})"},
        },
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "subject": subject,
            "medicationCodeableConcept": {"text": "Vitamin D"},
        },
        {"resourceType": "Condition", "subject": subject, "code": {"text": HOSTILE}},
        {
            "resourceType": "Procedure",
            "status": "completed",
            "subject": subject,
            "code": {"text": "Botulinum toxin, glabella"},
            "performedDateTime": "2026-10-02T10:00:00-05:00",
            "performer": [{"actor": {"reference": nurse.fhir_user}}],
        },
        {
            "resourceType": "Observation",
            "status": "final",
            "subject": subject,
            "code": {"text": "Fitzpatrick skin type"},
            "valueString": "III",
        },
        {
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [{"code": "treatment"}]},
            "category": [{"text": "Treatment consent"}],
            "patient": subject,
            "dateTime": "2026-10-01T09:00:00-05:00",
            "sourceAttachment": {
                "contentType": "application/pdf",
                "data": base64.b64encode(FORM).decode(),
                "title": "Signed form",
            },
        },
        {
            "resourceType": "Media",
            "status": "completed",
            "subject": subject,
            "createdDateTime": "2026-10-02T09:50:00-05:00",
            "content": {
                "contentType": "image/jpeg",
                "url": f"Binary/{binary.id}",
                "size": len(PHOTO),
                "hash": base64.b64encode(hashlib.sha1(PHOTO).digest()).decode(),
            },
        },
    ]
    for resource in resources:
        client.create(resource)


@pytest.fixture
def record(client: FhirClient) -> tuple[Actor, str, str]:
    """A nurse, a client with a full record, and another client who must never show up."""
    nurse = synthetic_practitioner(client)
    patient_id = synthetic_patient(client, birthDate="1985-04-12")
    other_id = synthetic_patient(client, birthDate="1979-02-03")
    _record(client, nurse, patient_id)
    # Resources $everything may well answer for the client but that are another's record:
    # the other client's Observation naming this client as performer, and a Provenance
    # naming both clients.
    client.create(
        {
            "resourceType": "Observation",
            "status": "final",
            "subject": {"reference": f"Patient/{other_id}"},
            "performer": [{"reference": f"Patient/{patient_id}"}],
            "code": {"text": "OTHER-CLIENT-OBSERVATION"},
        }
    )
    client.create(
        {
            "resourceType": "Provenance",
            "target": [
                {"reference": f"Patient/{patient_id}"},
                {"reference": f"Patient/{other_id}"},
            ],
            "recorded": "2026-10-02T10:00:00-05:00",
            "agent": [{"who": {"reference": nurse.fhir_user}}],
            "reason": [{"text": "OTHER-CLIENT-PROVENANCE"}],
        }
    )
    return nurse, patient_id, other_id


def test_bundle_holds_the_whole_record_and_nobody_elses(
    client: FhirClient, record: tuple[Actor, str, str], tmp_path: Path
) -> None:
    nurse, patient_id, other_id = record
    audit = Audit()
    out = tmp_path / "record.json"
    result = export_patient(client, nurse, patient_id, out, fmt="bundle", now=NOW, audit=audit)

    bundle = json.loads(out.read_bytes())
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds[0] == "Patient"
    for kind in ("AllergyIntolerance", "Condition", "Consent", "Media", "Procedure"):
        assert kind in kinds
    assert "Practitioner" in kinds  # the Procedure's performer goes with it
    text = out.read_text()
    assert other_id not in text
    assert "OTHER-CLIENT" not in text
    assert result.counts == {k: kinds.count(k) for k in set(kinds)}
    assert result.method == "$everything"
    assert result.dropped >= 2
    assert result.size == out.stat().st_size
    assert result.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    for entry in bundle["entry"]:
        assert entry["fullUrl"].endswith(
            f"/{entry['resource']['resourceType']}/{entry['resource']['id']}"
        )
    [event] = audit.events
    assert event["subtype"] == "export" and "Condition 1" in event["description"]
    assert HOSTILE not in event["description"]


def test_paging_is_followed(
    client: FhirClient,
    record: tuple[Actor, str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nurse, patient_id, _ = record
    whole = export_patient(
        client, nurse, patient_id, tmp_path / "a.ndjson", fmt="ndjson", now=NOW, audit=Audit()
    )
    monkeypatch.setattr(collect_module, "PAGE_SIZE", 2)
    paged = export_patient(
        client, nurse, patient_id, tmp_path / "b.ndjson", fmt="ndjson", now=NOW, audit=Audit()
    )
    assert paged.counts == whole.counts
    lines = (tmp_path / "b.ndjson").read_text().splitlines()
    assert len(lines) == paged.resources >= 9
    assert {json.loads(line)["resourceType"] for line in lines} >= {"Patient", "Media"}


def test_html_report_escapes_hostile_text_and_embeds_the_photo(
    client: FhirClient, record: tuple[Actor, str, str], tmp_path: Path
) -> None:
    nurse, patient_id, _ = record
    out = tmp_path / "record.html"
    result = export_patient(client, nurse, patient_id, out, fmt="html", now=NOW, audit=Audit())
    page = out.read_text()
    assert HOSTILE not in page
    assert "<script" not in page and "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert f"data:image/jpeg;base64,{base64.b64encode(PHOTO).decode()}" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    for section in ("Allergies", "Medications", "Health history", "Treatments", "Consents"):
        assert section in page
    assert "Lidocaine" in page and "Botulinum toxin" in page and "Vitamin D" in page
    assert result.photos == 1


def test_zip_holds_every_format_and_the_files(
    client: FhirClient, record: tuple[Actor, str, str], tmp_path: Path
) -> None:
    nurse, patient_id, _ = record
    out = tmp_path / "record.zip"
    result = export_patient(client, nurse, patient_id, out, fmt="zip", now=NOW, audit=Audit())
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        assert {"bundle.json", "report.html", "README.txt", "files.csv"} <= names
        assert "ndjson/Patient.ndjson" in names and "ndjson/Media.ndjson" in names
        [photo] = [n for n in names if n.startswith("photos/")]
        assert archive.read(photo) == PHOTO
        [form] = [n for n in names if n.startswith("forms/")]
        assert archive.read(form) == FORM
        assert f'src="{photo}"' in archive.read("report.html").decode()
        assert "disclosures/disclosures.html" in names
        bundle = json.loads(archive.read("bundle.json"))
        assert len(bundle["entry"]) == result.resources
        media = archive.read("ndjson/Media.ndjson").decode().splitlines()
        assert len(media) == result.counts["Media"] == 1
    assert result.photos == 1 and result.files == 2
    assert not list(tmp_path.glob("*.part"))


def test_encrypted_zip_opens_only_with_the_password(
    client: FhirClient, record: tuple[Actor, str, str], tmp_path: Path
) -> None:
    nurse, patient_id, _ = record
    out = tmp_path / "locked.zip"
    password = "correct horse battery"
    result = export_patient(
        client, nurse, patient_id, out, fmt="zip", password=password, now=NOW, audit=Audit()
    )
    assert result.encrypted
    with zipfile.ZipFile(out) as archive, pytest.raises(RuntimeError, match="password"):
        archive.read("bundle.json")
    with pyzipper.AESZipFile(out) as archive:
        archive.setpassword(b"wrong password")
        with pytest.raises(RuntimeError, match="Bad password"):
            archive.read("bundle.json")
        archive.setpassword(password.encode())
        assert json.loads(archive.read("bundle.json"))["type"] == "collection"
    assert password.encode() not in out.read_bytes()


def test_access_request_builds_the_package(
    client: FhirClient,
    record: tuple[Actor, str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nurse, patient_id, _ = record
    monkeypatch.setenv("SYMFHIR_EXPORT_DIR", str(tmp_path / "packages"))
    request = PrivacyRequest(
        task_id="t1",
        kind="access",
        requester=Requester(name="Avery Quillfeather", email="avery.q@example.com"),
        received=NOW,
        due=date(2026, 12, 25),
        patient_id=patient_id,
    )
    outcome = handle(client, nurse, request, now=NOW, audit=Audit())
    assert outcome.business_status == COMPLETED
    [output] = outcome.outputs
    assert output.label == "access-package"
    attachment = output.attachment
    path = tmp_path / "packages" / attachment["url"]
    data = path.read_bytes()
    assert attachment["contentType"] == "application/zip"
    assert attachment["size"] == len(data)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
    assert zipfile.ZipFile(path).testzip() is None


def test_command_line_export(
    fhir_base: str, record: tuple[Actor, str, str], tmp_path: Path
) -> None:
    _, patient_id, other_id = record
    out = tmp_path / "cli.ndjson"
    code = main(
        [
            "export",
            "--patient",
            patient_id,
            "--format",
            "ndjson",
            "-o",
            str(out),
            "--server",
            fhir_base,
        ]
    )
    assert code == 0
    assert other_id not in out.read_text()
    assert (
        main(
            [
                "export",
                "--patient",
                "no-such-client",
                "--server",
                fhir_base,
                "-o",
                str(tmp_path / "x.zip"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "x.zip").exists()


def _strip(resource: dict[str, Any], ids: dict[str, str]) -> str:
    """A resource as comparable text: no id or meta, references by their new ids."""
    text = json.dumps(
        {k: v for k, v in resource.items() if k not in ("id", "meta")}, sort_keys=True
    )
    for old, new in ids.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    return text


def test_round_trip_an_exported_bundle_imports_as_a_new_client(
    client: FhirClient, record: tuple[Actor, str, str], tmp_path: Path
) -> None:
    nurse, patient_id, _ = record
    first = tmp_path / "first.json"
    export_patient(client, nurse, patient_id, first, fmt="bundle", now=NOW, audit=Audit())
    exported = json.loads(first.read_bytes())

    # The Bundle turned into a transaction: every resource created anew, its references to
    # others of the Bundle rewritten to their new full URLs; the client id made new so the
    # copy is a new client.
    urns = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}": f"urn:uuid:{uuid.uuid4()}"
        for e in exported["entry"]
    }
    entries = []
    for entry in exported["entry"]:
        resource = json.loads(_strip(entry["resource"], {}))
        text = json.dumps(resource)
        for old, urn in urns.items():
            text = text.replace(f'"{old}"', f'"{urn}"')
        resource = json.loads(text)
        if resource["resourceType"] == "Patient":
            resource["identifier"][0]["value"] = uuid.uuid4().hex
        key = f"{entry['resource']['resourceType']}/{entry['resource']['id']}"
        entries.append(
            {
                "fullUrl": urns[key],
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
        )
    answer = client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    new_ids: dict[str, str] = {}
    for entry, response in zip(exported["entry"], answer["entry"], strict=True):
        location = response["response"]["location"].split("/_history")[0]
        new_ids[f"{entry['resource']['resourceType']}/{entry['resource']['id']}"] = "/".join(
            location.split("/")[-2:]
        )
    new_patient = new_ids[f"Patient/{patient_id}"].split("/")[1]

    second = tmp_path / "second.json"
    export_patient(client, nurse, new_patient, second, fmt="bundle", now=NOW, audit=Audit())
    again = json.loads(second.read_bytes())

    def comparable(bundle: dict[str, Any], ids: dict[str, str]) -> list[str]:
        out = []
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Patient":
                resource = {**resource, "identifier": []}
            out.append(_strip(resource, ids))
        return sorted(out)

    assert comparable(again, {}) == comparable(exported, new_ids)


def test_photos_come_from_the_server_as_raw_bytes(client: FhirClient) -> None:
    # HAPI answers a Binary read as base64 JSON (to be read whole) when the GET carries a
    # FHIR Content-Type: the download must send none, so the photo streams as it is.
    binary = client.upload_binary(io.BytesIO(PHOTO), "image/jpeg")
    seen: list[str] = []
    client.session.hooks["response"].append(
        lambda response, *args, **kwargs: seen.append(response.headers.get("Content-Type", ""))
    )
    dest = io.BytesIO()
    content_type, size, sha1 = client.download_binary(binary.id, dest)
    assert seen[-1].startswith("image/jpeg")
    assert (content_type, size, dest.getvalue()) == ("image/jpeg", len(PHOTO), PHOTO)
    assert sha1 == hashlib.sha1(PHOTO).hexdigest()


def test_command_line_encrypts_and_the_next_package_accounts_for_the_export(
    fhir_base: str,
    record: tuple[Actor, str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nurse, patient_id, _ = record
    password = "synthetic-export-pw"
    monkeypatch.setenv("SYMFHIR_EXPORT_PASSWORD", password)
    locked = tmp_path / "locked.zip"
    args = ["export", "--patient", patient_id, "--server", fhir_base, "--user", nurse.fhir_user]
    assert main([*args, "--encrypt", "-o", str(locked)]) == 0
    with pyzipper.AESZipFile(locked) as archive:
        archive.setpassword(password.encode())
        assert archive.read("README.txt").startswith(b"Your record")
    assert main([*args, "--encrypt", "--format", "html", "-o", str(tmp_path / "x.html")]) == 2
    assert not (tmp_path / "x.html").exists()

    # The first export wrote its AuditEvent (a disclosure): the next package lists it.
    plain = tmp_path / "plain.zip"
    assert main([*args, "-o", str(plain)]) == 0
    with zipfile.ZipFile(plain) as archive:
        accounting = archive.read("disclosures/disclosures.csv").decode()
    assert "Consent" in accounting and "Media" in accounting
    assert password not in accounting
