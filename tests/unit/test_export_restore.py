"""The restore's pure part: the transaction built from an access package (new urn fullUrls,
references rewritten, server meta dropped, files as Binary entries the attachments point at)
and the packages it refuses."""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import pyzipper

from symfhir.errors import RestoreError
from symfhir.export.restore import Package, build_transaction, read_package

pytestmark = pytest.mark.unit

BASE = "https://ehr.example.com/fhir"
PHOTO = b"\xff\xd8 synthetic photo \xff\xd9"
FORM = b"%PDF-1.4 synthetic form"


def _sha1(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources
        ],
    }


def _package(**photo: Any) -> Package:
    content = {
        "contentType": "image/jpeg",
        "url": "Binary/b9",
        "size": len(PHOTO),
        "hash": _sha1(PHOTO),
        **photo,
    }
    bundle = _bundle(
        {
            "resourceType": "Patient",
            "id": "p1",
            "meta": {"versionId": "3", "lastUpdated": "2026-10-01T00:00:00Z"},
        },
        {"resourceType": "Practitioner", "id": "n1"},
        {
            "resourceType": "Procedure",
            "id": "pr1",
            "meta": {"versionId": "1", "security": [{"code": "R"}]},
            "subject": {"reference": f"{BASE}/Patient/p1"},
            "performer": [{"actor": {"reference": "Practitioner/n1/_history/2"}}],
            "location": {"reference": "https://other.example.com/fhir/Location/9"},
            "reasonReference": [{"reference": "#cond"}],
        },
        {
            "resourceType": "Media",
            "id": "m1",
            "subject": {"reference": "Patient/p1"},
            "partOf": [{"reference": "Procedure/pr1"}],
            "content": content,
        },
        {
            "resourceType": "Consent",
            "id": "c1",
            "patient": {"reference": "Patient/p1"},
            "sourceAttachment": {
                "contentType": "application/pdf",
                "data": base64.b64encode(FORM).decode(),
            },
        },
    )
    return Package(bundle, {"photos/Media-m1.jpg": PHOTO, "forms/Consent-c1.pdf": FORM})


def _urns() -> Any:
    counter = itertools.count(1)
    return lambda: f"urn:uuid:00000000-0000-4000-8000-{next(counter):012d}"


def test_every_resource_is_posted_anew_with_references_to_the_new_entries() -> None:
    package = _package()
    before = copy.deepcopy(package.bundle)
    transaction = build_transaction(package, new_urn=_urns())
    bundle = transaction.bundle
    assert bundle["type"] == "transaction"
    entries = {source: e for source, e in zip(transaction.sources, bundle["entry"], strict=True)}
    assert set(entries) == {
        "Patient/p1",
        "Practitioner/n1",
        "Procedure/pr1",
        "Media/m1",
        "Consent/c1",
        "photos/Media-m1.jpg",
        "forms/Consent-c1.pdf",
    }
    for entry in bundle["entry"]:
        assert entry["fullUrl"].startswith("urn:uuid:")
        assert entry["request"] == {"method": "POST", "url": entry["resource"]["resourceType"]}
        assert "id" not in entry["resource"]
    urn = {source: e["fullUrl"] for source, e in entries.items()}
    procedure = entries["Procedure/pr1"]["resource"]
    assert procedure["subject"]["reference"] == urn["Patient/p1"]  # absolute, same server
    assert procedure["performer"][0]["actor"]["reference"] == urn["Practitioner/n1"]  # versioned
    # Another server's resource and a contained one are left as they are.
    assert procedure["location"]["reference"] == "https://other.example.com/fhir/Location/9"
    assert procedure["reasonReference"][0]["reference"] == "#cond"
    # The server's meta goes (the target sets its own); security labels stay.
    assert procedure["meta"] == {"security": [{"code": "R"}]}
    assert "meta" not in entries["Patient/p1"]["resource"]
    assert entries["Media/m1"]["resource"]["partOf"][0]["reference"] == urn["Procedure/pr1"]
    assert package.bundle == before  # the package read stays as it was


def test_files_become_binaries_that_the_attachments_point_at() -> None:
    transaction = build_transaction(_package(), new_urn=_urns())
    entries = dict(zip(transaction.sources, transaction.bundle["entry"], strict=True))
    photo = entries["photos/Media-m1.jpg"]
    assert photo["resource"] == {
        "resourceType": "Binary",
        "contentType": "image/jpeg",
        "data": base64.b64encode(PHOTO).decode(),
    }
    content = entries["Media/m1"]["resource"]["content"]
    assert content == {
        "contentType": "image/jpeg",
        "url": photo["fullUrl"],
        "size": len(PHOTO),
        "hash": _sha1(PHOTO),
    }
    # The inline signed form moves into a Binary of its own, with its size and hash stated.
    form = entries["forms/Consent-c1.pdf"]
    assert base64.b64decode(form["resource"]["data"]) == FORM
    attachment = entries["Consent/c1"]["resource"]["sourceAttachment"]
    assert attachment == {
        "contentType": "application/pdf",
        "url": form["fullUrl"],
        "size": len(FORM),
        "hash": _sha1(FORM),
    }
    # Each Binary comes before the resource pointing at it (readable order; one transaction).
    sources = list(transaction.sources)
    assert sources.index("photos/Media-m1.jpg") < sources.index("Media/m1")


@pytest.mark.parametrize(
    ("photo", "files", "message"),
    [
        ({"hash": _sha1(b"something else")}, None, "hash"),
        ({"size": 3}, None, "size"),
        ({}, {"forms/Consent-c1.pdf": FORM}, r"lacks photos/Media-m1\.jpg"),
    ],
)
def test_a_package_that_is_not_whole_is_refused(
    photo: dict[str, Any], files: dict[str, bytes] | None, message: str
) -> None:
    package = _package(**photo)
    if files is not None:
        package = Package(package.bundle, files)
    with pytest.raises(RestoreError, match=message):
        build_transaction(package)


def test_a_reference_to_a_resource_outside_the_package_is_refused() -> None:
    package = _package()
    package.bundle["entry"][2]["resource"]["recorder"] = {"reference": "Practitioner/elsewhere"}
    with pytest.raises(RestoreError, match="Practitioner/elsewhere"):
        build_transaction(package)


def test_read_package_takes_the_bundle_and_the_files(tmp_path: Path) -> None:
    path = tmp_path / "package.zip"
    package = _package()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("bundle.json", json.dumps(package.bundle))
        archive.writestr("report.html", "<p>not needed</p>")
        for name, data in package.files.items():
            archive.writestr(name, data)
    read = read_package(path)
    assert read.bundle == package.bundle
    assert dict(read.files) == dict(package.files)


def test_read_package_refuses_what_is_not_a_package(tmp_path: Path) -> None:
    not_zip = tmp_path / "a.zip"
    not_zip.write_bytes(b"plain text")
    with pytest.raises(RestoreError, match="not a ZIP"):
        read_package(not_zip)
    empty = tmp_path / "b.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("README.txt", "hello")
    with pytest.raises(RestoreError, match=r"no bundle\.json"):
        read_package(empty)
    locked = tmp_path / "c.zip"
    with pyzipper.AESZipFile(locked, "w", encryption=pyzipper.WZ_AES) as archive:
        archive.setpassword(b"synthetic-password")
        archive.writestr("bundle.json", json.dumps(_package().bundle))
    with pytest.raises(RestoreError, match="encrypted"):
        read_package(locked)
