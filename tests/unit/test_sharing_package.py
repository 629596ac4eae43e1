"""A share's package: the file layout, and the proof that a type or a photo the consent does
not cover never leaves, however the request is crafted (every combination of consent scopes,
photo consent, scopes asked for and dates, against a record salted with what must never go)."""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import pytest

from symfhir.errors import ConsentMissing, SharingError
from symfhir.sharing.gate import Recipient, SharePlan, plan_share, sharing_consent, transfer_plan
from symfhir.sharing.package import SharePackage, build_package
from symfhir.workspace.actor import Actor
from tests.unit.sharing_fake import (
    NPI,
    OTHER,
    PID,
    PNG_BYTES,
    ShareFhir,
    clinical,
    consent,
    media,
    patient,
    practitioner,
    practitioner_role,
)

pytestmark = pytest.mark.unit

ACTOR = Actor("Practitioner/nurse1", display="Nurse Jordan Vale")
DR = Recipient("Practitioner/doc1", "Dr. Dana Ashgrove", npi=NPI)
SCOPES = ("summary", "intake", "treatments", "photos", "full")
PHOTO_CONSENT_DAY = "2026-03-02"

# The oracle, written here and not read from mappings/sharing.yaml: a change of the rules
# that widens what leaves must change this table too.
SUMMARY_T = {
    "Patient",
    "AllergyIntolerance",
    "MedicationStatement",
    "Condition",
    "Procedure",
    "Observation",
    "Consent",
}
EXPECTED = {
    "summary": SUMMARY_T,
    "intake": {
        "QuestionnaireResponse",
        "Observation",
        "AllergyIntolerance",
        "MedicationStatement",
        "Condition",
    },
    "treatments": {"Procedure", "Observation"},
    "photos": {"Media"},
    "full": SUMMARY_T
    | {
        "QuestionnaireResponse",
        "CarePlan",
        "Communication",
        "Composition",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "Immunization",
        "List",
        "MedicationRequest",
        "Provenance",
        "RelatedPerson",
        "ServiceRequest",
        "Practitioner",
        "PractitionerRole",
        "Organization",
    },
}
COVERS = {"full": {"summary", "intake", "treatments"}}


def _mark(resource: dict[str, Any], marker: str) -> dict[str, Any]:
    if resource["resourceType"] != "Binary":
        resource["identifier"] = [{"system": "urn:test:marker", "value": marker}]
    else:
        resource["data"] = base64.b64encode(marker.encode()).decode()
    return resource


def _record() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, bytes]]:
    """The client's record (every shareable type, dated in March 2026), salted with what must
    never leave (marked LEAK-…), and the leaks a careless server adds to its answers."""
    good = [
        _mark(patient(), "OK-Patient"),
        _mark(practitioner(), "OK-Practitioner"),
        practitioner_role(),
        _mark(consent("c1", scopes=list(SCOPES)), "OK-Consent"),  # the physician-sharing one
        consent("ph1", "photos_clinical", when=f"{PHOTO_CONSENT_DAY}T15:00:00Z"),
    ]
    march = "2026-03-15T10:00:00-05:00"
    dated: dict[str, dict[str, Any]] = {
        "AllergyIntolerance": {
            "recordedDate": "2026-03-15",
            "code": {"text": "lidocaine"},
            "clinicalStatus": {"coding": [{"code": "active"}]},
        },
        "MedicationStatement": {
            "status": "active",
            "effectiveDateTime": march,
            "medicationCodeableConcept": {"text": "fish oil"},
        },
        "Condition": {"recordedDate": "2026-03-15", "code": {"text": "migraine"}},
        "Procedure": {
            "status": "completed",
            "performedDateTime": march,
            "code": {"text": "Botox"},
            "performer": [{"actor": {"reference": "Practitioner/doc1"}}],
        },
        "Observation": {"status": "final", "effectiveDateTime": march, "code": {"text": "skin"}},
        "QuestionnaireResponse": {"status": "completed", "authored": march},
        "CarePlan": {"status": "active", "intent": "plan", "created": march},
        "Communication": {"status": "completed", "sent": march},
        "DiagnosticReport": {"status": "final", "code": {"text": "labs"}, "issued": march},
        "DocumentReference": {
            "status": "current",
            "date": march,
            "content": [{"attachment": {"contentType": "text/plain", "data": "bm90ZQ=="}}],
        },
        "Encounter": {"status": "finished", "class": {"code": "AMB"}, "period": {"start": march}},
        "Immunization": {
            "status": "completed",
            "vaccineCode": {"text": "flu"},
            "occurrenceDateTime": march,
        },
        "List": {"status": "current", "mode": "working", "date": march},
        "MedicationRequest": {
            "status": "active",
            "intent": "order",
            "authoredOn": march,
            "medicationCodeableConcept": {"text": "tretinoin"},
        },
        "ServiceRequest": {"status": "active", "intent": "order", "authoredOn": march},
        "RelatedPerson": {"period": {"start": "2026-03-01"}},
        "Composition": {"status": "final", "type": {"text": "note"}, "date": march, "title": "t"},
        "Provenance": {"recorded": march, "agent": [{"who": {"display": "spa"}}]},
    }
    for resource_type, extra in dated.items():
        good.append(
            _mark(clinical(resource_type, f"ok-{resource_type}", **extra), f"OK-{resource_type}")
        )
    good.append(_mark(media("m-ok", taken=march, binary="b-ok"), "OK-Media"))
    bad = [
        # Never, whatever the scope.
        clinical("Task", "x-task", status="requested", intent="order"),
        clinical("AuditEvent", "x-audit"),
        clinical("Binary", "x-bin", contentType="image/png"),
        # In error, or another client's.
        clinical("Procedure", "x-err", status="entered-in-error", performedDateTime=march),
        clinical("Condition", "x-other", pid=OTHER, recordedDate="2026-03-15"),
        media("x-m-other", pid=OTHER, taken=march),
        # Photos the photo consent does not cover: taken before it, undated, a video, and a
        # photo kept as a document image.
        media("x-m-early", taken="2026-02-01T10:00:00-06:00"),
        media("x-m-undated", taken=None),
        media("x-m-video", content_type="video/mp4", taken=march),
        clinical(
            "DocumentReference",
            "x-doc-image",
            status="current",
            date=march,
            content=[{"attachment": {"contentType": "image/jpeg", "data": "AAAA"}}],
        ),
    ]
    for index, resource in enumerate(bad):
        _mark(resource, f"LEAK-{index}-{resource['resourceType']}")
    # Pictures of the client outside a photo file: a Patient.photo, a signed form, an image
    # answer. Their bytes never leave (valid base64 that reads LEAK).
    by_id = {r["id"]: r for r in good}
    by_id[PID]["photo"] = [{"contentType": "image/jpeg", "data": "LEAKLEAKLEAK"}]
    by_id["c1"]["sourceAttachment"] = {"contentType": "image/png", "data": "LEAKLEAKLEAK"}
    by_id["ok-Condition"]["extension"] = [
        {
            "url": "urn:test:picture",
            "valueAttachment": {"contentType": "image/png", "data": "LEAKLEAKLEAK"},
        }
    ]
    by_id["ok-QuestionnaireResponse"]["item"] = [
        {
            "linkId": "skin.photo",
            "answer": [{"valueAttachment": {"contentType": "image/jpeg", "url": "Binary/LEAK-1"}}],
        }
    ]
    leaks = [
        _mark(clinical("Observation", "x-leak-obs", pid=OTHER, status="final"), "LEAK-server-obs"),
        _mark(patient(OTHER, doctor=None), "LEAK-server-patient"),
    ]
    return good + bad, leaks, {"b-ok": PNG_BYTES}


@pytest.fixture(scope="module")
def record():
    return _record()


def _client(record) -> ShareFhir:
    resources, leaks, binaries = record
    # The careless server also answers the never-shared types of this client to any search.
    never = [r for r in resources if r["resourceType"] in ("Task", "AuditEvent", "Binary")]
    return ShareFhir(list(resources), dict(binaries), leaks=[*leaks, *never])


def _opened(package: SharePackage) -> dict[str, Any]:
    """Every file, read and parsed: name → JSON, and the bytes of all of them."""
    files = {f.name: f.read() for f in package.files}
    assert all(f.content_type == "application/fhir+json" for f in package.files)
    return files


def _resources(files: dict[str, bytes]) -> list[dict[str, Any]]:
    out = []
    for data in files.values():
        doc = json.loads(data)
        if doc.get("resourceType") == "Bundle":
            out += [e["resource"] for e in doc.get("entry", [])]
        else:
            out.append(doc)
    return out


def _markers(resources: list[dict[str, Any]]) -> set[str]:
    return {
        i["value"]
        for r in resources
        for i in r.get("identifier") or []
        if isinstance(i, dict) and i.get("system") == "urn:test:marker"
    }


def _expected_types(requested: set[str]) -> set[str]:
    closed = {"summary", *requested}
    for code in list(closed):
        closed |= COVERS.get(code, set())
    return set().union(*(EXPECTED[c] for c in closed))


# ── the layout ────────────────────────────────────────────────────────────────


def test_a_summary_only_package_is_one_document(record, now: datetime):
    client = _client(record)
    plan = plan_share(_consent({"summary"}), ["summary"])
    package = build_package(client, ACTOR, PID, plan, now=now)
    assert [f.name for f in package.files] == ["patient-summary.json"]
    document = json.loads(package.files[0].read())
    assert document["resourceType"] == "Bundle" and document["type"] == "document"
    assert document["entry"][0]["resource"]["resourceType"] == "Composition"
    assert package.photos == 0
    assert set(package.counts) <= SUMMARY_T
    assert package.counts["Patient"] == 1


def test_the_summary_names_who_prepared_it_by_name_never_by_a_bare_reference(record, now):
    plan = plan_share(_consent({"summary"}), ["summary"])
    for actor, shown in ((ACTOR, "Nurse Jordan Vale"), (Actor("Practitioner/nurse1"), None)):
        package = build_package(_client(record), actor, PID, plan, now=now)
        composition = json.loads(package.files[0].read())["entry"][0]["resource"]
        names = [a.get("display") for a in composition["author"]]
        assert not any("Practitioner/" in (n or "") for n in names), names
        assert (shown in names) if shown else len(names) == 1


def test_a_full_package_with_photos_is_summary_records_photos(record, now: datetime):
    client = _client(record)
    plan = plan_share(_consent(set(SCOPES), photos=True), ["full", "photos"])
    package = build_package(client, ACTOR, PID, plan, now=now)
    names = [f.name for f in package.files]
    assert names == ["patient-summary.json", "records.json", "photo-m-ok.json"]
    records = json.loads(package.files[1].read())
    assert records["type"] == "collection"
    assert all(e["resource"]["resourceType"] != "Media" for e in records["entry"])
    assert all(e["fullUrl"].startswith(client.base_url + "/") for e in records["entry"])
    photo = json.loads(package.files[2].read())
    assert photo["resourceType"] == "Media"
    assert photo["content"]["contentType"] == "image/png"
    assert base64.b64decode(photo["content"]["data"]) == PNG_BYTES
    assert "url" not in photo["content"]  # the spa server's Binary address stays home
    assert "meta" not in photo
    assert package.photos == 1 and package.counts["Media"] == 1


def test_photos_are_read_only_when_their_file_is(record, now: datetime):
    client = _client(record)
    plan = plan_share(_consent({"photos"}, photos=True), ["photos"])
    downloads: list[str] = []
    original = client.download_binary

    def counted(binary_id, out, max_bytes=None):
        downloads.append(binary_id)
        return original(binary_id, out, max_bytes)

    client.download_binary = counted  # type: ignore[method-assign]
    package = build_package(client, ACTOR, PID, plan, now=now)
    assert downloads == []
    package.files[-1].read()
    assert downloads == ["b-ok"]


def test_a_plan_for_another_client_is_refused(record, now: datetime):
    plan = plan_share(_consent({"summary"}), [])
    with pytest.raises(SharingError, match=r"^patient:"):
        build_package(_client(record), ACTOR, OTHER, plan, now=now)


# ── nothing uncovered ever leaves ─────────────────────────────────────────────


def _consent(scopes: set[str], *, photos: bool = False, start=None, end=None):
    from symfhir.sharing.gate import SharingConsent

    return SharingConsent(
        consent_id="c1",
        version_id="1",
        recipient=DR,
        scopes=frozenset(scopes | {"summary"}),
        start=start,
        end=end,
        photos_consent=photos,
        patient_id=PID,
        photos_since=date.fromisoformat(PHOTO_CONSENT_DAY) if photos else None,
    )


def _subsets(items):
    return [set(c) for n in range(len(items) + 1) for c in itertools.combinations(items, n)]


CRAFTED = [
    ["Media"],
    ["Task"],
    ["full ", "photos"],
    ["photos,full"],
    ["../full"],
    ["FULL"],
    ["summary", "Binary"],
]
RANGES = [(None, None), (date(2026, 3, 1), date(2026, 3, 31)), (date(2026, 4, 1), None)]


def _check(package: SharePackage, requested: set[str], plan: SharePlan) -> None:
    files = _opened(package)
    blob = b"".join(files.values())
    assert b"LEAK" not in blob, "a resource that must never leave is in the package"
    resources = _resources(files)
    types = {r["resourceType"] for r in resources} - {"Composition", "Organization"}
    allowed_types = (
        _expected_types(requested) if plan.photos else _expected_types(requested - {"photos"})
    )
    assert types <= allowed_types, f"{sorted(types - allowed_types)} left under {sorted(requested)}"
    if not plan.photos:
        assert not any(r["resourceType"] == "Media" for r in resources)
        assert package.photos == 0
    assert set(package.counts) <= allowed_types
    if plan.start and plan.start > date(2026, 3, 31):
        # Everything of the record is dated in March: only standing resources remain.
        standing = {"OK-Patient", "OK-AllergyIntolerance", "OK-Practitioner"}
        assert _markers(resources) <= standing
    if "records.json" in files:
        in_records = _markers(_resources({"r": files["records.json"]}))
        wanted = {f"OK-{t}" for t in allowed_types - {"Media", "Organization", "PractitionerRole"}}
        if plan.start and plan.start > date(2026, 3, 31):
            wanted = {"OK-Patient", "OK-AllergyIntolerance"} | (
                {"OK-Practitioner"} if "Practitioner" in allowed_types else set()
            )
        assert in_records == wanted


def test_no_uncovered_type_or_photo_ever_leaves(record, now: datetime):
    client = _client(record)
    distinct: set[tuple] = set()
    outcomes = {"built": 0, "denied": 0, "bad input": 0}
    consents = [
        (s, p) for s in _subsets(("intake", "treatments", "photos", "full")) for p in (False, True)
    ]
    requests = [*_subsets(SCOPES), *map(set, CRAFTED)]
    for (scopes, photos), requested, (start, end) in itertools.product(consents, requests, RANGES):
        try:
            plan = plan_share(_consent(scopes, photos=photos), requested, start=start, end=end)
        except ConsentMissing:
            outcomes["denied"] += 1
            continue
        except SharingError:
            outcomes["bad input"] += 1
            assert not set(requested) <= set(SCOPES) or (start and end and start > end)
            continue
        requested = {code.strip() for code in requested}  # surrounding spaces are forgiven
        closed = {"summary", *scopes}
        for code in scopes:
            closed |= COVERS.get(code, set())
        assert requested <= closed, (
            f"{sorted(requested)} allowed under a consent of {sorted(scopes)}"
        )
        assert "photos" not in requested or photos
        _check(build_package(client, ACTOR, PID, plan, now=now), requested, plan)
        outcomes["built"] += 1
        distinct.add((plan.scopes, plan.photos, plan.start, plan.end))
    assert outcomes["built"] > 100 and outcomes["denied"] > 100 and outcomes["bad input"] > 100
    # 5 scope sets (summary; +intake; +treatments; both; full), with and without photos,
    # under 3 date ranges.
    assert len(distinct) == 30


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(
            {"types": frozenset({"Task", "AuditEvent", "Binary", "Patient"})}, id="never-types"
        ),
        pytest.param(
            {"photos": True, "types": frozenset({"Patient", "Media"})}, id="photos-no-scope"
        ),
        pytest.param(
            {
                "photos": True,
                "scopes": frozenset({"summary", "photos", "intake"}),
                "photos_since": None,
            },
            id="photos-no-consent-day",
        ),
        pytest.param({"patient_id": OTHER}, id="another-client"),
    ],
)
def test_a_forged_plan_still_leaks_nothing(record, now: datetime, forged: dict):
    base = plan_share(_consent({"intake"}), ["intake"])
    plan = replace(base, **forged)
    try:
        package = build_package(_client(record), ACTOR, PID, plan, now=now)
    except SharingError:
        return  # refused outright: nothing left
    files = _opened(package)
    assert b"LEAK" not in b"".join(files.values())
    assert not [f for f in files if f.startswith("photo-")]
    assert {"Task", "AuditEvent", "Binary"} & {
        r["resourceType"] for r in _resources(files)
    } == set()


def test_a_transfer_carries_every_photo_but_never_the_never_types(record, now: datetime):
    client = _client(record)
    package = build_package(client, ACTOR, PID, transfer_plan(PID, DR, "t1"), now=now)
    files = _opened(package)
    # The client's own record, pictures included (the signed form, Patient.photo).
    assert files["records.json"].count(b"LEAKLEAKLEAK") == 3
    names = [f for f in files if f.startswith("photo-")]
    # A transfer on the client's own request takes the photos taken before the photo consent
    # and undated ones too; never a video, another client's, or a document image.
    assert sorted(names) == ["photo-m-ok.json", "photo-x-m-early.json", "photo-x-m-undated.json"]
    rest = {n: d for n, d in files.items() if not n.startswith("photo-")}
    leaked = {m for m in _markers(_resources(rest)) if m.startswith("LEAK")}
    assert leaked == set()


def test_the_gate_and_the_package_from_the_consent_on_the_server(record, now: datetime):
    client = _client(record)
    found = sharing_consent(client, ACTOR, PID, now=now)
    plan = plan_share(found, ["intake", "photos"])
    package = build_package(client, ACTOR, PID, plan, now=now)
    assert [f.name for f in package.files][-1] == "photo-m-ok.json"
    assert "QuestionnaireResponse" in package.counts
    assert "DocumentReference" not in package.counts
