"""symfhir.workspace.photos: allowed uses from Consents, the clinical-consent rule, the
gallery, Binary ids, upload field validation and the upload's transaction entries."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from symfhir.mapping.bundle import transaction
from symfhir.mapping.context import MappingContext
from symfhir.mapping.photos import PHASE_EXTENSION
from symfhir.photos.clean import clean_image
from symfhir.terminology import load_terminology
from symfhir.validation import FastValidator, bundle_rules
from symfhir.workspace import photos as wp

pytestmark = pytest.mark.unit

ZONE = ZoneInfo("America/Chicago")
KIND = wp.CONSENT_KIND_SYSTEM
NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)


def consent(
    kind: str,
    status: str,
    when: str,
    *,
    deny: bool = False,
    end: str | None = None,
    pid: str = "p1",
) -> dict[str, Any]:
    provision: dict[str, Any] = {"type": "deny" if deny else "permit"}
    if end:
        provision["period"] = {"start": when[:10], "end": end}
    return {
        "resourceType": "Consent",
        "status": status,
        "patient": {"reference": f"Patient/{pid}"},
        "dateTime": when,
        "category": [{"coding": [{"system": KIND, "code": kind}]}],
        "provision": provision,
    }


def uses(consents: list[dict[str, Any]], taken: date | None) -> list[str]:
    return [u.key for u in wp.allowed_uses(taken, wp.consent_states(consents, ZONE))]


MARCH = date(2026, 3, 6)


@pytest.mark.parametrize(
    ("consents", "taken", "expected"),
    [
        ([], MARCH, []),
        ([consent("photos_clinical", "active", "2026-01-10T00:00:00-06:00")], MARCH, ["clinical"]),
        # Dated the same day as the photo: allowed.
        ([consent("photos_social", "active", "2026-03-06T00:00:00-06:00")], MARCH, ["social"]),
        # Dated after the photo was taken: not allowed for that photo.
        ([consent("photos_website", "active", "2026-03-07T00:00:00-06:00")], MARCH, []),
        # Declined (rejected, or active with a deny provision).
        (
            [consent("photos_website", "rejected", "2026-01-01T00:00:00-06:00", deny=True)],
            MARCH,
            [],
        ),
        ([consent("photos_website", "active", "2026-01-01T00:00:00-06:00", deny=True)], MARCH, []),
        # Withdrawn later: the latest Consent is inactive, so no use remains, old photos included.
        (
            [
                consent("photos_social", "active", "2026-01-01T00:00:00-06:00"),
                consent("photos_social", "inactive", "2026-05-01T00:00:00-05:00", end="2026-05-01"),
            ],
            MARCH,
            [],
        ),
        # Given again after a withdrawal: the latest (active) one counts, from its date.
        (
            [
                consent("testimonials", "inactive", "2026-01-01T00:00:00-06:00", end="2026-02-01"),
                consent("testimonials", "active", "2026-02-15T00:00:00-06:00"),
            ],
            MARCH,
            ["testimonials"],
        ),
        # Drafts and errors are not consents.
        ([consent("research", "draft", "2026-01-01T00:00:00-06:00")], MARCH, []),
        ([consent("research", "entered-in-error", "2026-01-01T00:00:00-06:00")], MARCH, []),
        ([consent("research", "active", "2026-01-01")], MARCH, ["research"]),
        # Other kinds (marketing by email) allow no photo use.
        ([consent("marketing_email", "active", "2026-01-01T00:00:00-06:00")], MARCH, []),
        # A photo of unknown date may serve nothing.
        ([consent("photos_clinical", "active", "2026-01-10T00:00:00-06:00")], None, []),
    ],
)
def test_allowed_uses(consents, taken, expected):
    assert uses(consents, taken) == expected


def test_consent_date_is_the_spa_local_day():
    # 2026-03-07 02:00 UTC is still March 6 in Chicago.
    given = [consent("photos_clinical", "active", "2026-03-07T02:00:00Z")]
    assert uses(given, MARCH) == ["clinical"]


def test_every_use_in_order():
    kinds = ["photos_clinical", "photos_website", "photos_social", "testimonials", "research"]
    given = [consent(k, "active", "2026-01-01T00:00:00-06:00") for k in kinds]
    assert uses(given, MARCH) == ["clinical", "website", "social", "testimonials", "research"]


@pytest.mark.parametrize(
    ("consents", "problem"),
    [
        ([], "never asked"),
        ([consent("photos_clinical", "rejected", "2026-01-01", deny=True)], "declined"),
        ([consent("photos_clinical", "inactive", "2026-01-01", end="2026-04-01")], "withdrew"),
        ([consent("photos_clinical", "active", "2026-03-07")], "before the client consented"),
        ([consent("photos_clinical", "active", "2026-03-06")], None),
        ([consent("photos_social", "active", "2026-01-01")], "never asked"),
    ],
)
def test_clinical_consent_problem(consents, problem):
    found = wp.clinical_consent_problem(wp.consent_states(consents, ZONE), MARCH)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def media(mid: str, phase: str, site: str, when: str, pid: str = "p1", **extra: Any):
    terms = load_terminology()
    return {
        "resourceType": "Media",
        "id": mid,
        "status": "completed",
        "extension": [{"url": PHASE_EXTENSION, "valueCoding": {"code": phase}}],
        "subject": {"reference": f"Patient/{pid}"},
        "createdDateTime": when,
        "bodySite": {"coding": [terms.coding("body_site", site)]},
        "view": {"coding": [terms.coding("photo_view", "frontal")]},
        "content": {"contentType": "image/jpeg", "url": f"Binary/b{mid}"},
        **extra,
    }


def test_gallery_shapes_filters_and_suggests_a_pair():
    resources = [
        media(
            "1",
            "before",
            "lips",
            "2026-03-06T09:20:00-06:00",
            partOf=[{"reference": "Procedure/t1"}],
        ),
        media(
            "2",
            "after",
            "lips",
            "2026-03-06T09:58:00-06:00",
            partOf=[{"reference": "Procedure/t1"}],
        ),
        media("3", "progress", "face", "2026-04-01T09:00:00-05:00"),
        media("4", "before", "lips", "2026-03-06T09:00:00-06:00", pid="other"),
        {
            "resourceType": "Procedure",
            "id": "t1",
            "status": "completed",
            "subject": {"reference": "Patient/p1"},
            "code": {"text": "Dermal filler injection"},
            "performedDateTime": "2026-03-06",
        },
        consent("photos_clinical", "active", "2026-01-01T00:00:00-06:00"),
        consent("photos_website", "active", "2026-03-20T00:00:00-05:00"),
    ]
    gallery = wp.build_gallery(resources, "p1", load_terminology(), ZONE)
    assert [p.media_id for p in gallery.photos] == ["3", "2", "1"]
    first = gallery.photos[2]
    assert (first.phase, first.body_site, first.taken) == ("before", "lips", "2026-03-06")
    assert first.body_site_label == "Lip structure"
    assert first.view_label == "Frontal"
    assert first.treatment_label == "Dermal filler injection · 2026-03-06"
    assert [u.key for u in first.uses] == ["clinical"] and not first.marketing_allowed
    assert [u.key for u in gallery.photos[0].uses] == ["clinical", "website"]
    assert gallery.photos[0].marketing_allowed
    assert [p.media_id for p in gallery.filtered(body_site="lips")] == ["2", "1"]
    assert [p.media_id for p in gallery.filtered(treatment="t1", body_site="face")] == []
    assert [o.value for o in gallery.body_sites] == ["face", "lips"]
    pair = gallery.suggested_pair()
    assert pair is not None and (pair[0].media_id, pair[1].media_id) == ("1", "2")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("Binary/b1", "b1"),
        ("http://fhir.example/r4/Binary/b1", "b1"),
        ("Binary/b1/_history/2", "b1"),
        ("https://evil.example/Binary/b1", None),
        ("http://fhir.example/r4/../Binary/b1", None),
        ("Binary/b1?x=y", None),
        ("Media/m1", None),
        ("urn:uuid:5b1c2b8e-0000-4000-8000-000000000000", None),
        (None, None),
    ],
)
def test_binary_id_only_from_the_same_server(url, expected):
    item = {"resourceType": "Media", "content": {"url": url}}
    assert wp.binary_id(item, "http://fhir.example/r4") == expected


def test_gallery_reads_each_type_s_own_patient_element():
    # A Consent is the client's by its ``patient``: a stray ``subject`` naming the client
    # (which the gallery's former check read first) must not lend another client's consent.
    stray = consent("photos_website", "active", "2026-01-01T00:00:00-06:00", pid="other")
    stray["subject"] = {"reference": "Patient/p1"}
    resources = [
        media("1", "before", "lips", "2026-03-06T09:20:00-06:00"),
        {
            **media("2", "after", "lips", "2026-03-06T09:20:00-06:00"),
            "subject": {"reference": "http://fhir.example/r4/Patient/p1"},
        },
        media("3", "after", "lips", "2026-03-06T09:20:00-06:00", pid="p10"),
        consent("photos_clinical", "active", "2026-01-01T00:00:00-06:00"),
        stray,
        {
            "resourceType": "Procedure",
            "id": "t1",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://example.org/codes", "code": "peel"}]},
            "performedDateTime": "2026-03-06",
        },
    ]
    gallery = wp.build_gallery(resources, "p1", load_terminology(), ZONE)
    assert sorted(p.media_id for p in gallery.photos) == ["1", "2"]
    assert [u.key for u in gallery.photos[0].uses] == ["clinical"]
    # A code-only treatment shows its code, not a bare "Treatment".
    assert [o.label for o in gallery.treatments] == ["peel · 2026-03-06"]


GOOD = {
    "body_site": "lips",
    "view": "close_up",
    "phase": "after",
    "treatment": "t1",
    "taken_at": "2026-11-25T09:00",
}


def parse(**changes: str):
    return wp.parse_upload_fields(
        {**GOOD, **changes},
        now=NOW,
        treatment_ids={"t1"},
        terminology=load_terminology(),
        zone=ZONE,
    )


def test_upload_fields_parse():
    fields, errors = parse()
    assert errors == {} and fields is not None
    assert fields.taken_at == datetime(2026, 11, 25, 9, 0, tzinfo=ZONE)
    assert (fields.body_site, fields.view, fields.phase, fields.treatment_id) == (
        "lips",
        "close_up",
        "after",
        "t1",
    )
    assert parse(treatment="")[0].treatment_id is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"body_site": "elbow"}, "body_site"),
        ({"body_site": ""}, "body_site"),
        ({"view": "upside_down"}, "view"),
        ({"phase": "during"}, "phase"),
        ({"treatment": "t2"}, "treatment"),
        ({"taken_at": ""}, "taken_at"),
        ({"taken_at": "yesterday"}, "taken_at"),
        ({"taken_at": "2026-11-25T10:00"}, "taken_at"),  # 16:00 UTC: in the future
        ({"taken_at": "1850-01-01T10:00"}, "taken_at"),
    ],
)
def test_upload_fields_refused(changes, field):
    fields, errors = parse(**changes)
    assert fields is None
    assert set(errors) == {field}
    assert errors[field]


def test_client_key():
    system = "http://symfhir.org/fhir/sid/symetrie-studio-spa/client-id"
    patient = {"identifier": [{"system": "x", "value": "no"}, {"system": system, "value": "C1"}]}
    assert wp.client_key(patient, system, "p1") == "C1"
    assert wp.client_key({"identifier": [{"system": system, "value": "a b"}]}, system, "p1") == "p1"
    assert wp.client_key(None, system, "p1") == "p1"


def test_upload_entries_are_a_valid_transaction_naming_the_patient():
    ctx = MappingContext.load(NOW)
    fields, _ = parse()
    assert fields is not None
    raw = io.BytesIO()
    Image.new("RGB", (16, 8), "red").save(raw, "JPEG")
    image = clean_image(raw.getvalue(), record="a.jpg")
    entries = wp.upload_entries("C1", "p1", fields, [image], "Practitioner/dr1", ctx)
    binary, item, provenance = (e.resource for e in entries)
    assert binary["securityContext"] == {"reference": "Patient/p1"}
    assert item["subject"] == {"reference": "Patient/p1"}
    assert item["partOf"] == [{"reference": "Procedure/t1"}]
    assert item["content"]["hash"] == image.sha1_b64
    assert provenance["target"] == [
        {"reference": entries[0].full_url},
        {"reference": entries[1].full_url},
    ]
    assert provenance["agent"][0]["who"] == {"reference": "Practitioner/dr1"}
    assert provenance["recorded"] == NOW.isoformat()
    validator = FastValidator()
    assert all(validator.validate(e.resource) == [] for e in entries)
    assert bundle_rules(transaction(entries)) == []
    # The same image uploaded again maps to the same entries (conditional creates dedupe).
    again = wp.upload_entries("C1", "p1", fields, [image], "Practitioner/dr1", ctx)
    assert [e.if_none_exist for e in again] == [e.if_none_exist for e in entries]


def test_binary_id_of_an_attachment_url():
    # The one parser of attachment URLs: the gallery, the export and the restore use it.
    from symfhir.fhir.paths import binary_id_of

    assert binary_id_of("Binary/b1/_history/2", "http://fhir.example/r4") == "b1"
    assert binary_id_of("Binary/b1/other/2", "http://fhir.example/r4") is None
    assert binary_id_of(42, "http://fhir.example/r4") is None
