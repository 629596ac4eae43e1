"""The consent gate of physician sharing: the Consent read, the plan, the one filter."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import pytest

from symfhir.errors import ConsentMissing, SharingError
from symfhir.sharing.gate import (
    Recipient,
    SharingConsent,
    allowed,
    consent_active,
    consent_scopes,
    plan_share,
    sharing_consent,
    transfer_plan,
    without_images,
)
from symfhir.sharing.scopes import load_sharing
from symfhir.workspace.actor import Actor
from tests.unit.sharing_fake import (
    DOCTOR,
    NPI,
    OTHER,
    PID,
    ShareFhir,
    clinical,
    consent,
    media,
    patient,
    practitioner,
    practitioner_role,
)

pytestmark = pytest.mark.unit

ACTOR = Actor("Practitioner/nurse1")
MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
DR = Recipient("Practitioner/doc1", "Dr. Dana Ashgrove", npi=NPI)


def given(
    scopes: set[str] | None = None,
    *,
    start: date | None = None,
    end: date | None = None,
    photos: bool = False,
    since: date | None = date(2026, 3, 2),
) -> SharingConsent:
    return SharingConsent(
        consent_id="c1",
        version_id="1",
        recipient=DR,
        scopes=frozenset(scopes or {"summary"}),
        start=start,
        end=end,
        photos_consent=photos,
        patient_id=PID,
        photos_since=since if photos else None,
    )


def fhir(*extra: dict) -> ShareFhir:
    return ShareFhir([patient(), practitioner(), practitioner_role(), *extra])


# ── the scopes ────────────────────────────────────────────────────────────────


def test_scope_codes_are_exactly_the_codesystem():
    codesystem = json.loads((MAPPINGS / "codesystems/share-scope.json").read_text("utf-8"))
    concepts = {c["code"]: c["display"] for c in codesystem["concept"]}
    sharing = load_sharing()
    assert set(sharing.scopes) == set(concepts)
    for code, scope in sharing.scopes.items():
        assert scope.coding == {
            "system": codesystem["url"],
            "code": code,
            "display": concepts[code],
        }


def test_every_shareable_type_but_standing_ones_has_a_date():
    # Under a date range an undated type would silently never leave: every type a share
    # may carry is either dated or declared standing.
    sharing = load_sharing()
    every = sharing.types_of(sharing.scopes)
    assert every - sharing.standing - set(sharing.dated_by) == set()


def test_full_never_carries_the_never_types_nor_photos():
    sharing = load_sharing()
    full = sharing.types_of(["full"])
    assert {"Task", "AuditEvent", "Binary", "Media"} & full == set()
    assert {"QuestionnaireResponse", "Procedure", "DocumentReference"} <= full
    assert sharing.types_of(["summary"]) < full


# ── reading the Consent ───────────────────────────────────────────────────────


def test_sharing_consent_reads_scopes_range_physician_and_photo_consent(now: datetime):
    client = fhir(
        consent("c1", scopes=["summary", "intake", "photos"], start="2026-01-01", end="2026-06-30"),
        consent("ph1", "photos_clinical", when="2026-02-01T15:00:00Z"),
    )
    found = sharing_consent(client, ACTOR, PID, now=now)
    assert found.consent_id == "c1"
    assert found.version_id == "1"
    assert found.patient_id == PID
    assert found.scopes == {"summary", "intake", "photos"}
    assert (found.start, found.end) == (date(2026, 1, 1), date(2026, 6, 30))
    assert found.photos_consent is True
    assert found.photos_since == date(2026, 2, 1)
    assert found.recipient == Recipient(
        "Practitioner/doc1",
        "Dr. Dana Ashgrove",
        npi=NPI,
        organization="Bayou Family Medicine",
        phone="(337) 555-0199",
        email="dana@clinic.example.org",
    )
    # Two round trips: the consents batch, then the physician's.
    assert len(client.batches) == 2


def test_a_consent_without_scope_codes_covers_the_summary_only(now: datetime):
    found = sharing_consent(fhir(consent("c1", scopes=None)), ACTOR, PID, now=now)
    assert found.scopes == {"summary"}
    assert found.photos_consent is False


def test_unknown_or_foreign_scope_codes_are_ignored():
    resource = consent("c1", scopes=["summary", "everything"])
    resource["provision"]["code"].append({"coding": [{"system": "urn:x", "code": "full"}]})
    assert consent_scopes(resource) == {"summary"}


@pytest.mark.parametrize(
    "resources",
    [
        pytest.param([], id="never-asked"),
        pytest.param([consent("c1", status="rejected")], id="declined"),
        pytest.param([consent("c1", status="inactive")], id="withdrawn"),
        pytest.param(
            [consent("c1"), consent("c2", status="rejected", when="2026-04-01T15:00:00Z")],
            id="declined-later",
        ),
        pytest.param(
            [consent("c1", status="inactive", when="2026-04-01T15:00:00Z"), consent("c0")],
            id="newest-withdrawn",
        ),
        pytest.param([consent("c1", pid=OTHER)], id="another-clients"),
        pytest.param([consent("c1", status="draft")], id="draft"),
    ],
)
def test_no_active_consent_is_denied(resources: list[dict], now: datetime):
    with pytest.raises(ConsentMissing) as caught:
        sharing_consent(fhir(*resources), ACTOR, PID, now=now)
    assert caught.value.missing == ("physician_sharing",)


def test_an_ended_consent_is_denied(now: datetime):
    ended = consent("c1")
    ended["provision"]["period"]["end"] = "2026-10-31"
    with pytest.raises(ConsentMissing):
        sharing_consent(fhir(ended), ACTOR, PID, now=now)


def test_a_consent_naming_no_practitioner_is_denied(now: datetime):
    with pytest.raises(ConsentMissing) as caught:
        sharing_consent(fhir(consent("c1", doctor=None)), ACTOR, PID, now=now)
    assert caught.value.missing == ("physician",)


def test_unreadable_consents_are_denied(now: datetime):
    client = fhir(consent("c1"))
    client.failing_types.add("Consent")
    with pytest.raises(ConsentMissing):
        sharing_consent(client, ACTOR, PID, now=now)


def test_a_physician_the_actor_may_not_read_keeps_the_reference(now: datetime):
    actor = Actor("Practitioner/nurse1", permits=lambda t, i: t not in ("Practitioner",))
    found = sharing_consent(fhir(consent("c1")), actor, PID, now=now)
    assert found.recipient.reference == "Practitioner/doc1"
    assert found.recipient.npi is None


def test_a_withdrawn_photo_consent_allows_no_photos(now: datetime):
    client = fhir(
        consent("c1", scopes=["photos"]), consent("ph1", "photos_clinical", status="inactive")
    )
    found = sharing_consent(client, ACTOR, PID, now=now)
    assert found.photos_consent is False
    with pytest.raises(ConsentMissing) as caught:
        plan_share(found, ["photos"])
    assert caught.value.missing == ("photos_clinical",)


# ── the link service's re-check ───────────────────────────────────────────────


def test_consent_active_is_true_for_the_current_given_consent(now: datetime):
    client = fhir(consent("c1"))
    assert consent_active(client, "c1", now=now) is True
    assert consent_active(client, "c1", now=now, patient_id=PID) is True


@pytest.mark.parametrize(
    "resources",
    [
        pytest.param([consent("c1", status="inactive")], id="withdrawn"),
        pytest.param([consent("c1"), consent("c2", when="2026-05-01T15:00:00Z")], id="replaced"),
        pytest.param(
            [consent("c1"), consent("c2", status="rejected", when="2026-05-01T15:00:00Z")],
            id="declined-later",
        ),
        pytest.param([consent("c1", "photos_clinical")], id="another-kind"),
        pytest.param([consent("c9")], id="unknown-id"),
    ],
)
def test_consent_active_is_false_otherwise(resources: list[dict], now: datetime):
    assert consent_active(fhir(*resources), "c1", now=now) is False


def test_consent_active_of_another_client_is_false(now: datetime):
    client = fhir(consent("c1", pid=OTHER))
    assert consent_active(client, "c1", now=now, patient_id=PID) is False


def test_consent_active_refuses_a_crafted_id(now: datetime):
    assert consent_active(fhir(consent("c1")), "../Patient/p1", now=now) is False


# ── the plan ──────────────────────────────────────────────────────────────────


def test_summary_is_always_part_of_a_plan():
    plan = plan_share(given(), [])
    assert plan.scopes == {"summary"}
    assert plan.basis == "Consent/c1"
    assert plan.recipient == DR
    assert "Media" not in plan.types
    assert plan.photos is False
    assert plan.beyond_summary is False


@pytest.mark.parametrize(
    ("consented", "requested", "missing"),
    [
        ({"summary"}, ["intake"], ("intake",)),
        ({"summary", "intake"}, ["intake", "treatments"], ("treatments",)),
        ({"full"}, ["photos"], ("photos",)),
        ({"summary"}, ["full"], ("full",)),
        ({"intake", "treatments"}, ["full"], ("full",)),
    ],
)
def test_a_scope_the_consent_does_not_cover_is_denied(consented, requested, missing):
    with pytest.raises(ConsentMissing) as caught:
        plan_share(given(consented, photos=True), requested)
    assert caught.value.missing == missing


def test_full_covers_summary_intake_and_treatments():
    plan = plan_share(given({"full"}), ["intake"])
    assert plan.scopes == {"summary", "intake"}
    assert "QuestionnaireResponse" in plan.types
    assert "DocumentReference" not in plan.types


def test_photos_need_the_photo_consent():
    with pytest.raises(ConsentMissing) as caught:
        plan_share(given({"photos"}, photos=False), ["photos"])
    assert caught.value.missing == ("photos_clinical",)
    plan = plan_share(given({"photos"}, photos=True), ["photos"])
    assert plan.photos is True and "Media" in plan.types
    assert plan.photos_since == date(2026, 3, 2)


@pytest.mark.parametrize("bad", ["everything", "Media", "summary;full", "FULL"])
def test_an_unknown_scope_is_bad_input(bad: str):
    with pytest.raises(SharingError) as caught:
        plan_share(given({"full"}), [bad])
    assert not isinstance(caught.value, ConsentMissing)
    assert str(caught.value).startswith("scopes:")


def test_a_consent_without_its_client_is_refused():
    consent_ = SharingConsent("c1", "1", DR, frozenset({"summary"}), None, None, False)
    with pytest.raises(SharingError, match="patient"):
        plan_share(consent_, ["summary"])


def test_the_range_is_narrowed_to_the_consents_never_widened():
    consented = given(start=date(2026, 1, 1), end=date(2026, 6, 30))
    plan = plan_share(consented, [], start=date(2025, 1, 1), end=date(2026, 3, 31))
    assert (plan.start, plan.end) == (date(2026, 1, 1), date(2026, 3, 31))
    plan = plan_share(consented, [])
    assert (plan.start, plan.end) == (date(2026, 1, 1), date(2026, 6, 30))
    plan = plan_share(given(), [], start=date(2026, 2, 1))
    assert (plan.start, plan.end) == (date(2026, 2, 1), None)


def test_a_range_outside_the_consents_is_denied():
    consented = given(start=date(2026, 1, 1), end=date(2026, 6, 30))
    with pytest.raises(ConsentMissing) as caught:
        plan_share(consented, [], start=date(2026, 7, 1))
    assert caught.value.missing == ("date range",)


def test_a_start_after_the_end_is_bad_input():
    with pytest.raises(SharingError, match=r"^start:"):
        plan_share(given(), [], start=date(2026, 5, 1), end=date(2026, 4, 1))


def test_a_transfer_takes_the_full_record_with_photos():
    plan = transfer_plan(PID, DR, "t1")
    assert plan.basis == "Task/t1" and plan.transfer
    assert plan.photos is True
    assert {"summary", "intake", "treatments", "photos", "full"} == plan.scopes
    assert {"Task", "AuditEvent", "Binary"} & plan.types == set()
    with pytest.raises(SharingError):
        transfer_plan(PID, DR, "")


# ── the one filter ────────────────────────────────────────────────────────────


def test_allowed_keeps_only_the_plans_types():
    plan = plan_share(given({"full"}), [])
    assert allowed(clinical("Condition", "x"), plan)
    assert allowed(patient(), plan)
    assert not allowed(clinical("QuestionnaireResponse", "q"), plan)
    assert not allowed(clinical("DocumentReference", "d"), plan)
    assert not allowed(practitioner(), plan)  # practice resources go with a full share only


@pytest.mark.parametrize("resource_type", ["Task", "AuditEvent", "Binary"])
def test_never_types_never_leave(resource_type: str):
    for plan in (
        plan_share(given({"full", "photos"}, photos=True), ["full", "photos"]),
        transfer_plan(PID, DR, "t1"),
    ):
        assert not allowed(clinical(resource_type, "x"), plan)


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param(clinical("Condition", "x", pid=OTHER), id="another-client"),
        pytest.param(patient(OTHER), id="another-patient"),
        pytest.param({"resourceType": "Condition", "id": "x"}, id="no-owner"),
        pytest.param(
            {
                "resourceType": "Condition",
                "subject": [{"reference": "Patient/p1"}, {"reference": "Patient/p2"}],
            },
            id="two-owners",
        ),
        pytest.param(clinical("Procedure", "x", status="entered-in-error"), id="in-error"),
        pytest.param(
            clinical(
                "AllergyIntolerance",
                "x",
                verificationStatus={"coding": [{"code": "entered-in-error"}]},
            ),
            id="allergy-in-error",
        ),
        pytest.param({"resourceType": 7}, id="bad-type"),
        pytest.param({}, id="empty"),
    ],
)
def test_allowed_denies_what_is_not_this_clients_or_in_error(resource: dict):
    plan = transfer_plan(PID, DR, "t1")
    assert not allowed(resource, plan)


def test_a_date_range_keeps_dated_resources_in_it_and_standing_ones():
    plan = plan_share(given({"full"}), ["full"], start=date(2026, 3, 1), end=date(2026, 3, 31))
    inside = clinical("Procedure", "a", performedDateTime="2026-03-15T10:00:00-05:00")
    before = clinical("Procedure", "b", performedDateTime="2026-02-28T10:00:00-06:00")
    # 2026-04-01T02:00Z is still March 31 in the spa's zone (America/Chicago).
    evening = clinical("Observation", "c", effectiveDateTime="2026-04-01T02:00:00Z")
    after = clinical("Observation", "d", effectiveDateTime="2026-04-01T12:00:00Z")
    undated = clinical("Condition", "e")
    old_allergy = clinical("AllergyIntolerance", "f", recordedDate="2019-05-01")
    undated_allergy = clinical("AllergyIntolerance", "g")
    period = clinical("Procedure", "h", performedPeriod={"start": "2026-03-31"})
    assert allowed(inside, plan)
    assert not allowed(before, plan)
    assert allowed(evening, plan)
    assert not allowed(after, plan)
    assert not allowed(undated, plan)  # deny by default: nobody can say it falls in the range
    assert allowed(old_allergy, plan)  # standing: safety-critical, whatever its date
    assert allowed(undated_allergy, plan)
    assert allowed(period, plan)
    assert allowed(patient(), plan)


def test_without_a_range_dates_are_not_looked_at():
    plan = plan_share(given({"full"}), ["full"])
    assert allowed(clinical("Condition", "e"), plan)


def test_photos_leave_only_with_the_scope_and_the_consent_of_their_day():
    with_photos = plan_share(given({"photos"}, photos=True), ["photos"])
    without = plan_share(given({"photos", "full"}, photos=True), ["full"])
    assert allowed(media("m1"), with_photos)
    assert not allowed(media("m1"), without)
    # Taken before the photo consent was given (2026-03-02): not covered.
    assert not allowed(media("m2", taken="2026-03-01T10:00:00-06:00"), with_photos)
    assert allowed(media("m3", taken="2026-03-02T10:00:00-06:00"), with_photos)
    assert not allowed(media("m4", taken=None), with_photos)
    assert not allowed(media("m5", content_type="video/mp4"), with_photos)
    assert not allowed(media("m6", pid=OTHER), with_photos)
    no_content = media("m7")
    del no_content["content"]
    assert not allowed(no_content, with_photos)


def test_a_forged_plan_with_photos_but_no_consent_day_shares_no_photo():
    plan = plan_share(given({"photos"}, photos=True), ["photos"])
    assert not allowed(media("m1"), replace(plan, photos_since=None))
    assert not allowed(media("m1"), replace(plan, photos=False))


def test_a_transfer_takes_every_photo_but_no_image_document():
    plan = transfer_plan(PID, DR, "t1")
    assert allowed(media("m2", taken="2020-01-01"), plan)
    assert allowed(media("m4", taken=None), plan)
    image_doc = clinical(
        "DocumentReference", "d1", content=[{"attachment": {"contentType": "image/jpeg"}}]
    )
    note = clinical(
        "DocumentReference", "d2", content=[{"attachment": {"contentType": "text/plain"}}]
    )
    assert not allowed(image_doc, plan)
    assert allowed(note, plan)
    assert allowed(practitioner(DOCTOR), plan)


def test_without_images_cuts_every_picture_but_a_photo_files_and_a_transfers():
    pictured = patient()
    pictured["photo"] = [{"contentType": "image/jpeg", "data": "AAAA", "title": "face"}]
    pictured["extension"] = [
        {"url": "urn:x", "valueAttachment": {"contentType": "IMAGE/PNG", "url": "Binary/9"}},
        {"url": "urn:y", "valueAttachment": {"contentType": "text/plain", "data": "bm90ZQ=="}},
    ]
    plan = plan_share(given({"full"}), ["full"])
    cut = without_images(pictured, plan)
    assert cut["photo"] == [{"contentType": "image/jpeg", "title": "face"}]
    assert cut["extension"][0]["valueAttachment"] == {"contentType": "IMAGE/PNG"}
    assert cut["extension"][1]["valueAttachment"]["data"] == "bm90ZQ=="  # not an image
    assert pictured["photo"][0]["data"] == "AAAA"  # a copy: the input is left as it was
    assert without_images(media("m1"), plan)["content"]["data"]
    assert without_images(pictured, transfer_plan(PID, DR, "t1")) == pictured


def test_consents_short_of_a_full_share_are_those_that_bear_on_care():
    summary = plan_share(given({"full"}), [])
    full = plan_share(given({"full"}), ["full"])
    for kind in ("treatment", "photos_clinical", "physician_sharing"):
        assert allowed(consent("k", kind), summary), kind
    for kind in ("marketing_email", "photos_website", "research", "testimonials", None):
        resource = consent("k", kind or "physician_sharing")
        if kind is None:
            resource["category"] = []  # a Consent of no known kind: deny by default
        assert not allowed(resource, summary), kind
        assert allowed(resource, full), kind
