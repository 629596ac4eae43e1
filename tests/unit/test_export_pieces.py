"""The export's pure parts: the spool, attachments (names that cannot escape their folder,
no URL to another server followed), streamed base64, the report's escaping, the audit
description, and arguments refused before anything is read."""

from __future__ import annotations

import base64
import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from symfhir.errors import ExportError
from symfhir.export import export_patient
from symfhir.export.attachments import Base64Writer, attachments_of
from symfhir.export.collect import practice_references
from symfhir.export.output import HashingWriter, complete_file
from symfhir.export.report import write_report
from symfhir.export.spool import Spool
from symfhir.export.workflow import ExportResult, describe
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.workspace.actor import Actor

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))
BASE = "https://ehr.example.com/fhir"


@pytest.mark.parametrize("sizes", [[1], [2, 2], [3, 1, 5], [7] * 9, [0, 4, 0], [100_000, 1]])
def test_base64_writer_matches_one_shot_encoding(sizes: list[int]) -> None:
    data = bytes(i % 251 for i in range(sum(sizes)))
    dest = io.BytesIO()
    writer = Base64Writer(dest)
    start = 0
    for size in sizes:
        writer.write(data[start : start + size])
        start += size
    writer.close()
    assert dest.getvalue() == base64.b64encode(data)


def test_spool_keeps_one_copy_per_resource_patient_first() -> None:
    with Spool() as spool:
        assert spool.add({"resourceType": "Observation", "id": "o1"})
        assert not spool.add({"resourceType": "Observation", "id": "o1"})
        spool.add({"resourceType": "Patient", "id": "p1"})
        spool.add({"resourceType": "AllergyIntolerance", "id": "a1"})
        assert spool.types() == ["Patient", "AllergyIntolerance", "Observation"]
        assert [r["id"] for r in spool.resources("Observation")] == ["o1"]
        folder = spool._dir
        assert folder.exists()
    assert not folder.exists()  # nothing of the record stays on disk


@pytest.mark.parametrize(
    ("url", "binary"),
    [
        ("Binary/b1", "b1"),
        (f"{BASE}/Binary/b1", "b1"),
        ("Binary/b1/_history/2", "b1"),
        ("https://elsewhere.example.com/fhir/Binary/b1", None),
        ("Binary/../../etc", None),
        ("Media/b1", None),
        (None, None),
    ],
)
def test_only_binaries_of_the_same_server_are_followed(url: str | None, binary: str | None) -> None:
    media = {"resourceType": "Media", "id": "m1", "content": {"contentType": "image/jpeg"}}
    if url:
        media["content"]["url"] = url
    refs = attachments_of(media, BASE)
    assert [r.binary_id for r in refs] == ([binary] if binary else [])


def test_file_names_never_leave_their_folder() -> None:
    consent = {
        "resourceType": "Consent",
        "id": '../../x"><script>',
        "sourceAttachment": {"contentType": "application/pdf", "data": "JVBERg=="},
    }
    [ref] = attachments_of(consent, BASE)
    assert ref.name.startswith("forms/Consent-")
    assert "/" not in ref.name.removeprefix("forms/")
    assert not set('"<>') & set(ref.name)


def test_practice_references_are_found_anywhere_in_a_resource() -> None:
    procedure = {
        "performer": [{"actor": {"reference": "Practitioner/n1"}}],
        "extension": [{"valueReference": {"reference": "Organization/o1"}}],
        "subject": {"reference": "Patient/p1"},
        "basedOn": [{"reference": "https://elsewhere.example.com/Practitioner/n9"}],
    }
    assert practice_references(procedure) == {"Practitioner/n1", "Organization/o1"}


def test_report_escapes_every_value() -> None:
    hostile = '<img src=x onerror="alert(1)">&'
    with Spool() as spool:
        spool.add({"resourceType": "Patient", "id": "p1", "name": [{"text": hostile}]})
        spool.add({"resourceType": "Condition", "id": "c1", "code": {"text": hostile}})
        spool.add(
            {
                "resourceType": "QuestionnaireResponse",
                "id": "q1",
                "item": [{"text": hostile, "answer": [{"valueString": hostile}]}],
            }
        )
        dest = io.BytesIO()
        write_report(
            spool,
            dest,
            patient_id="p1",
            spa_name=hostile,
            base_url=BASE,
            now=NOW,
            file_source=lambda ref, out: None,
            csp_images="data:",
        )
    page = dest.getvalue().decode()
    assert "<img" not in page
    assert page.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;") >= 5
    assert "default-src 'none'" in page


def test_the_audit_description_names_types_and_counts_only() -> None:
    result = ExportResult(
        patient_id="p1",
        fmt="zip",
        counts={"Patient": 1, "Condition": 3},
        size=10,
        sha256="ab" * 32,
        sha1_base64="x",
        photos=2,
        files=3,
        encrypted=True,
        method="$everything",
    )
    assert describe(result) == (
        "export zip (password-protected): 4 resources (Condition 3, Patient 1); "
        f"2 photos, 3 files; sha256 {'ab' * 32}"
    )


@pytest.mark.parametrize(
    ("fmt", "password", "patient", "message"),
    [
        ("pdf", None, "p1", "unknown export format"),
        ("bundle", "long enough pw", "p1", "only a zip export"),
        ("zip", "short", "p1", "at least 8"),
        ("zip", None, "../Patient/2", "not a valid patient id"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_read(
    fmt: str, password: str | None, patient: str, message: str, tmp_path: Path
) -> None:
    # A server that does not exist: any read would fail with another error.
    client = FhirClient(ServerConfig(base_url="http://127.0.0.1:9/fhir"))
    with pytest.raises(ExportError, match=message):
        export_patient(
            client,
            Actor(None),
            patient,
            tmp_path / "out",
            fmt=fmt,  # type: ignore[arg-type]
            password=password,
            now=NOW,
            audit=lambda *a, **k: None,
        )
    assert list(tmp_path.iterdir()) == []


def test_a_file_appears_only_complete(tmp_path: Path) -> None:
    target = tmp_path / "out.zip"
    with pytest.raises(RuntimeError), complete_file(target) as stream:
        stream.write(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with complete_file(target) as stream:
        sink = HashingWriter(stream)
        sink.write(b"whole")
    assert target.read_bytes() == b"whole"
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_leftovers_of_a_killed_export_are_swept_after_a_day(tmp_path: Path) -> None:
    import os
    import time

    from symfhir.export.output import STALE_SECONDS, sweep_stale

    old_file = tmp_path / ".symfhir-access-1.zip.abc.part"
    old_dir = tmp_path / "symfhir-export-old"
    fresh = tmp_path / ".symfhir-access-2.zip.def.part"
    other = tmp_path / "access-3.zip"
    for path in (old_file, fresh, other):
        path.write_bytes(b"x")
    old_dir.mkdir()
    (old_dir / "Patient.ndjson").write_bytes(b"{}")
    long_ago = time.time() - STALE_SECONDS - 60
    for path in (old_file, old_dir, other):
        os.utime(path, (long_ago, long_ago))
    someone_elses = tmp_path / ".download.part"
    someone_elses.write_bytes(b"x")
    os.utime(someone_elses, (long_ago, long_ago))
    assert sweep_stale(tmp_path, ".symfhir-*.part") == 1
    assert sweep_stale(tmp_path, "symfhir-export-*") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".download.part",
        ".symfhir-access-2.zip.def.part",
        "access-3.zip",
    ]


@pytest.mark.parametrize(
    ("kind", "patient", "message"),
    [("deletion", "p1", "not deletion"), ("access", None, "not matched")],
)
def test_the_access_handler_refuses_other_kinds_and_unmatched_requests(
    kind: str, patient: str | None, message: str
) -> None:
    from datetime import date

    from symfhir.export.access_request import handle
    from symfhir.privacy.model import PrivacyRequest, Requester

    request = PrivacyRequest(
        task_id="t1",
        kind=kind,
        requester=Requester(name="Avery Quillfeather"),
        received=NOW,
        due=date(2026, 12, 25),
        patient_id=patient,
    )
    client = FhirClient(ServerConfig(base_url="http://127.0.0.1:9/fhir"))
    with pytest.raises(ExportError, match=message):
        handle(client, Actor(None), request, now=NOW, audit=lambda *a, **k: None)


def test_the_package_folder_is_configurable() -> None:
    from symfhir.export.access_request import package_dir

    assert package_dir({}) == Path("out/packages")
    assert package_dir({"SYMFHIR_EXPORT_DIR": "/srv/packages"}) == Path("/srv/packages")
