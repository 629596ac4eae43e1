"""The photo workflows (symfhir.workspace.photos.viewing and .uploading) over a fake FHIR
client: what is written, what is refused before anything is read or written, the line each
file gets, and what is audited."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from symfhir.errors import FhirRequestError, NotAllowedError
from symfhir.workspace.actor import Actor
from symfhir.workspace.photos import uploading, viewing
from tests.unit.fake_fhir import FakeFhir, Trail
from tests.unit.test_workspace_photos import consent, media

pytestmark = pytest.mark.unit

ZONE = ZoneInfo("America/Chicago")
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZONE)
ACTOR = Actor("Practitioner/dr1")
FORM = {
    "body_site": "lips",
    "view": "close_up",
    "phase": "after",
    "treatment": "",
    "taken_at": "2026-11-25T09:00",
}


def jpeg(color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(out, "JPEG")
    return out.getvalue()


def record(*extra: dict[str, Any], clinical: bool = True) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "p1"},
        *extra,
    ]
    if clinical:
        resources.append(consent("photos_clinical", "active", "2026-01-01T00:00:00-06:00"))
    return resources


def upload(fhir: FakeFhir, files: list, actor: Actor = ACTOR, trail: Trail | None = None, **form):
    return uploading.upload_photos(
        fhir,  # type: ignore[arg-type]
        actor,
        "p1",
        {**FORM, **form},
        files,
        audit=trail if trail is not None else Trail(),
        now=NOW,
    )


def test_an_upload_writes_one_transaction_and_answers_per_file():
    fhir = FakeFhir(record())
    trail = Trail()
    files = [
        ("C:\\phone\\IMG_1.jpg", jpeg("red"), "image/jpeg"),
        ("again.jpg", io.BytesIO(jpeg("red")), "image/jpeg"),  # a stream, the same image
        ("notes.jpg", b"Synthetic notes, not an image", "image/jpeg"),
        ("blue.jpg", io.BytesIO(jpeg("blue")), "image/jpeg"),
    ]
    result = upload(fhir, files, trail=trail)
    assert result.outcome == "stored"
    assert [(f.name, f.ok) for f in result.files] == [
        ("IMG_1.jpg", True),
        ("again.jpg", False),
        ("notes.jpg", False),
        ("blue.jpg", True),
    ]
    assert result.files[1].message == "the same image as IMG_1.jpg"
    assert result.files[0].message == "stored"
    (bundle,) = fhir.transactions
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types == ["Binary", "Media", "Binary", "Media", "Provenance"]
    assert all(m["subject"] == {"reference": "Patient/p1"} for m in fhir.written("Media"))
    (provenance,) = fhir.written("Provenance")
    assert provenance["agent"][0]["who"] == {"reference": "Practitioner/dr1"}
    assert trail.events[-1][0] == "create"
    assert trail.events[-1][3] == ("Media/n1", "Media/n3")
    assert result.media_ids == ["n1", "n3"]


def test_a_matched_media_is_already_in_the_record():
    fhir = FakeFhir(record(), entry_statuses=["200 OK", "200 OK", "201 Created"])
    result = upload(fhir, [("a.jpg", jpeg(), "image/jpeg")])
    assert [f.message for f in result.files] == ["already in the record"]


@pytest.mark.parametrize(
    ("actor", "read_only", "missing"),
    [
        (Actor("Practitioner/dr1", writable=False), True, ()),
        (
            Actor("Practitioner/dr1", permits=lambda t, i: t != "Binary"),
            False,
            (("Binary", "c"),),
        ),
    ],
)
def test_refused_before_anything_is_read(actor, read_only, missing):
    fhir = FakeFhir(record())
    with pytest.raises(NotAllowedError) as caught:
        upload(fhir, [("a.jpg", jpeg(), "image/jpeg")], actor=actor)
    assert (caught.value.read_only, caught.value.missing) == (read_only, missing)
    assert fhir.batches == [] and fhir.transactions == []


def test_no_clinical_consent_stores_nothing():
    fhir = FakeFhir(record(clinical=False))
    result = upload(fhir, [("a.jpg", jpeg(), "image/jpeg")])
    assert result.outcome == "no_consent"
    assert result.form_error.startswith("No photo was stored")
    assert [f.ok for f in result.files] == [False]
    assert fhir.transactions == []


@pytest.mark.parametrize(
    ("files", "form", "field"),
    [
        ([], {}, "photos"),
        ([("a.jpg", b"x", "image/jpeg")] * (uploading.MAX_FILES + 1), {}, "photos"),
        ([("a.jpg", b"x", "image/jpeg")], {"phase": "during"}, "phase"),
        ([("a.jpg", b"x", "image/jpeg")], {"treatment": "not-theirs"}, "treatment"),
    ],
)
def test_a_bad_form_stores_nothing(files, form, field):
    fhir = FakeFhir(record())
    result = upload(fhir, files, **form)
    assert result.outcome == "invalid"
    assert field in result.field_errors
    assert fhir.transactions == []


def test_only_unreadable_files_store_nothing():
    fhir = FakeFhir(record())
    result = upload(fhir, [("a.jpg", b"Synthetic text", "image/jpeg")])
    assert result.outcome == "invalid"
    assert result.files[0].message.startswith("not an image")
    assert fhir.transactions == []


def test_a_refused_transaction_is_reported_per_file():
    fhir = FakeFhir(
        record(), fail_transaction=FhirRequestError("transaction", "refused", status=422)
    )
    result = upload(fhir, [("a.jpg", jpeg(), "image/jpeg"), ("b.jpg", jpeg("blue"), "x")])
    assert result.outcome == "refused"
    assert [f.message for f in result.files] == ["not stored", "not stored"]


def test_gallery_lists_the_client_s_photos_and_what_may_not_be_created():
    fhir = FakeFhir(
        record(
            media("1", "before", "lips", "2026-03-06T09:20:00-06:00"),
            media("2", "before", "lips", "2026-03-06T09:20:00-06:00", pid="p2"),
        )
    )
    trail = Trail()
    actor = Actor(
        "Practitioner/dr1", permits=lambda t, i: t not in ("Provenance", "DocumentReference")
    )
    view = viewing.list_gallery(fhir, actor, "p1", audit=trail, now=NOW)  # type: ignore[arg-type]
    assert [p.media_id for p in view.record.gallery.photos] == ["1"]
    assert view.missing == ["Provenance"]
    assert view.record.clinical_consent == "given"
    assert view.record.local_now == "2026-11-25T09:30"
    assert trail.events == [
        ("read", True, "photos view read Patient, Media, Procedure, Consent", ("Media/1",))
    ]


def test_an_image_is_read_only_for_the_client_s_photos():
    fhir = FakeFhir(
        record(
            media("1", "before", "lips", "2026-03-06T09:20:00-06:00"),
            media("2", "before", "lips", "2026-03-06T09:20:00-06:00", pid="p2"),
            {**media("3", "after", "lips", "2026-03-06"), "content": {"url": "https://x/Binary/b"}},
        ),
        binaries={"b1": jpeg(), "b2": jpeg("blue")},
    )
    trail = Trail()
    found = viewing.photo_image(fhir, ACTOR, "p1", "1", audit=trail)  # type: ignore[arg-type]
    assert found is not None and found.content_type == "image/jpeg"
    thumb = viewing.photo_image(fhir, ACTOR, "p1", "1", thumb=True, audit=trail)  # type: ignore[arg-type]
    assert thumb is not None and thumb.data != found.data
    assert viewing.photo_image(fhir, ACTOR, "p1", "2", audit=trail) is None  # type: ignore[arg-type]
    assert trail.events[-1][:2] == ("read", False)  # the other client's photo: refused
    assert viewing.photo_image(fhir, ACTOR, "p1", "3", audit=trail) is None  # type: ignore[arg-type]
    assert viewing.photo_image(fhir, ACTOR, "p1", "../x", audit=trail) is None  # type: ignore[arg-type]


def test_compare_needs_two_of_the_client_s_photos():
    fhir = FakeFhir(
        record(
            media("1", "before", "lips", "2026-03-06T09:20:00-06:00"),
            media("2", "after", "lips", "2026-04-06T09:20:00-05:00"),
            media("3", "progress", "lips", "2026-05-06T09:20:00-05:00"),
            media("4", "after", "lips", "2026-04-06T09:20:00-05:00", pid="p2"),
        )
    )
    trail = Trail()
    pair = viewing.compare_photos(fhir, ACTOR, "p1", "1", "2", audit=trail, now=NOW)  # type: ignore[arg-type]
    assert pair is not None and pair.same_site
    assert [p.media_id for p in pair.suggestions] == ["3"]
    assert trail.events[-1][3] == ("Media/1", "Media/2")
    assert viewing.compare_photos(fhir, ACTOR, "p1", "1", "4", audit=trail, now=NOW) is None  # type: ignore[arg-type]
