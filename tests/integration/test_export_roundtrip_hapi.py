"""The round trip: a client's access package (the export ZIP) made on the main HAPI server and
restored into a second, EMPTY one gives the same resources: every type and count, each
resource equal to its original but for ids, meta and what references are called, and the
photo's and form's bytes read back from the second server's Binary."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from symfhir.cli import main
from symfhir.errors import RestoreError
from symfhir.export import export_patient
from symfhir.export.restore import restore_package
from symfhir.fhir import FhirClient, ServerConfig
from tests.integration.conftest import synthetic_patient, synthetic_practitioner

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 300 + b"\xff\xd9"  # a stand-in JPEG
FORM = b"%PDF-1.4 synthetic signed treatment consent\n%%EOF\n"
ATTACHMENT_FIELDS = {"Media": "content", "Consent": "sourceAttachment"}


class Audit:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, subtype: str, **kwargs: Any) -> None:
        self.events.append({"subtype": subtype, **kwargs})


@pytest.fixture
def source(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


@pytest.fixture
def target(empty_fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=empty_fhir_base)) as fhir:
        yield fhir


def _sha1(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def _client_record(client: FhirClient) -> tuple[str, str]:
    """A nurse and a client with an intake, two consents (one with its signed form inline),
    a treatment and a photo in Binary. Returns (nurse reference, patient id)."""
    nurse = synthetic_practitioner(client).fhir_user
    patient_id = synthetic_patient(
        client, birthDate="1988-06-30", telecom=[{"system": "email", "value": "a.q@example.com"}]
    )
    subject = {"reference": f"Patient/{patient_id}"}
    photo = client.upload_binary(io.BytesIO(PHOTO), "image/jpeg")
    intake = client.create(
        {
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "subject": subject,
            "authored": "2026-10-01T09:00:00-05:00",
            "author": {"reference": nurse},
            "item": [
                {"linkId": "allergies", "answer": [{"valueString": "Lidocaine"}]},
                {"linkId": "pregnant", "answer": [{"valueBoolean": False}]},
            ],
        }
    )
    procedure = client.create(
        {
            "resourceType": "Procedure",
            "status": "completed",
            "subject": subject,
            "code": {"text": "Botulinum toxin, glabella"},
            "performedDateTime": "2026-10-02T10:00:00-05:00",
            "performer": [{"actor": {"reference": nurse}}],
        }
    )
    for resource in (
        {
            "resourceType": "AllergyIntolerance",
            "patient": subject,
            "code": {"text": "Lidocaine"},
            "recorder": {"reference": nurse},
        },
        {
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [{"code": "treatment"}]},
            "category": [{"text": "Treatment consent"}],
            "patient": subject,
            "dateTime": "2026-10-01T09:05:00-05:00",
            "sourceAttachment": {
                "contentType": "application/pdf",
                "data": base64.b64encode(FORM).decode(),
                "title": "Signed form",
            },
        },
        {
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [{"code": "patient-privacy"}]},
            "category": [{"text": "Photo consent"}],
            "patient": subject,
            "dateTime": "2026-10-01T09:06:00-05:00",
            "sourceReference": {"reference": f"QuestionnaireResponse/{intake.id}"},
        },
        {
            "resourceType": "Media",
            "status": "completed",
            "subject": subject,
            "partOf": [{"reference": f"Procedure/{procedure.id}"}],
            "createdDateTime": "2026-10-02T09:50:00-05:00",
            "content": {
                "contentType": "image/jpeg",
                "url": f"Binary/{photo.id}",
                "size": len(PHOTO),
                "hash": _sha1(PHOTO),
                "title": "Before",
            },
        },
    ):
        client.create(resource)
    return nurse, patient_id


def _bytes_of(client: FhirClient, attachment: dict[str, Any]) -> bytes:
    if "data" in attachment:
        return base64.b64decode(attachment["data"])
    dest = io.BytesIO()
    client.download_binary(attachment["url"].split("/")[-1], dest)
    return dest.getvalue()


def _comparable(
    client: FhirClient, resource: dict[str, Any], names: Mapping[str, str]
) -> dict[str, Any]:
    """The resource without id and meta, its references named by ``names`` (or kept), its
    attachment by the SHA-1 of the bytes it points to (wherever they are kept)."""
    copy = json.loads(json.dumps({k: v for k, v in resource.items() if k not in ("id", "meta")}))

    def rename(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                rename(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key == "reference" and isinstance(value, str):
                    node[key] = names.get(value, value)
                else:
                    rename(value)

    rename(copy)
    field = ATTACHMENT_FIELDS.get(copy["resourceType"])
    if field and field in copy:
        attachment = copy[field]
        attachment["bytes"] = _sha1(_bytes_of(client, attachment))
        for key in ("url", "data", "size", "hash"):
            attachment.pop(key, None)
    return copy


def test_access_package_restores_into_an_empty_server(
    source: FhirClient, target: FhirClient, tmp_path: Path
) -> None:
    _, patient_id = _client_record(source)
    package = tmp_path / "package.zip"
    export_patient(
        source,
        synthetic_practitioner(source),
        patient_id,
        package,
        fmt="zip",
        now=NOW,
        audit=Audit(),
    )
    bundle = json.loads(zipfile.ZipFile(package).read("bundle.json"))
    originals = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"]
        for e in bundle["entry"]
    }
    kinds = Counter(key.split("/")[0] for key in originals)
    assert {"Patient", "QuestionnaireResponse", "Consent", "Media", "Practitioner"} <= set(kinds)
    assert kinds["Consent"] == 2
    assert target.resource_count("Patient") == 0  # the second server is empty

    audit = Audit()
    restorer = synthetic_practitioner(target)
    before = {kind: target.resource_count(kind) for kind in [*kinds, "Binary"]}
    result = restore_package(target, restorer, package, now=NOW, audit=audit)

    # Every type and count, on the second server itself.
    assert result.counts == dict(kinds)
    for kind, count in kinds.items():
        assert target.resource_count(kind) - before[kind] == count, kind
    assert target.resource_count("Binary") - before["Binary"] == len(result.binaries) == 2
    assert result.ids[f"Patient/{patient_id}"] == f"Patient/{result.patient_id}"

    # Each resource as it was: ids, meta and reference names aside; files by their bytes.
    for key, original in originals.items():
        restored = target.read(*result.ids[key].split("/"))
        assert _comparable(target, restored, {}) == _comparable(source, original, result.ids), key

    # The photo: same bytes from the second server's Binary, size and hash kept.
    [media_key] = [k for k in originals if k.startswith("Media/")]
    media = target.read(*result.ids[media_key].split("/"))["content"]
    assert media["url"] == result.binaries[f"photos/{media_key.replace('/', '-')}.jpg"]
    assert (media["size"], media["hash"]) == (len(PHOTO), _sha1(PHOTO))
    assert _bytes_of(target, media) == PHOTO
    # The signed form went from inline data to a Binary of its own.
    forms = [
        target.read(*result.ids[k].split("/")).get("sourceAttachment")
        for k in originals
        if k.startswith("Consent/")
    ]
    [form] = [f for f in forms if f]
    assert "data" not in form and form["hash"] == _sha1(FORM)
    assert _bytes_of(target, form) == FORM

    [event] = audit.events
    assert event["subtype"] == "create" and "2 files" in event["description"]


def test_a_tampered_photo_is_refused_and_nothing_is_written(
    source: FhirClient, target: FhirClient, tmp_path: Path
) -> None:
    _, patient_id = _client_record(source)
    package = tmp_path / "package.zip"
    export_patient(
        source,
        synthetic_practitioner(source),
        patient_id,
        package,
        fmt="zip",
        now=NOW,
        audit=Audit(),
    )
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(tampered, "w") as dest:
        for info in src.infolist():
            data = src.read(info)
            dest.writestr(
                info, data[:-1] + b"\x00" if info.filename.startswith("photos/") else data
            )
    before = target.resource_count("Patient")
    with pytest.raises(RestoreError, match="hash"):
        restore_package(target, synthetic_practitioner(target), tampered, now=NOW, audit=Audit())
    assert target.resource_count("Patient") == before


def test_command_line_import_package(
    source: FhirClient,
    target: FhirClient,
    empty_fhir_base: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, patient_id = _client_record(source)
    package = tmp_path / "package.zip"
    export_patient(
        source,
        synthetic_practitioner(source),
        patient_id,
        package,
        fmt="zip",
        now=NOW,
        audit=Audit(),
    )
    assert main(["import-package", str(package), "--server", empty_fhir_base]) == 0
    out, err = capsys.readouterr()
    new_patient = out.strip()
    assert new_patient.startswith("Patient/") and "and 2 files" in err
    assert target.read(*new_patient.split("/"))["birthDate"] == "1988-06-30"

    not_a_package = tmp_path / "notes.zip"
    not_a_package.write_text("synthetic notes")
    assert main(["import-package", str(not_a_package), "--server", empty_fhir_base]) == 2
    assert "not a ZIP file" in capsys.readouterr().err
