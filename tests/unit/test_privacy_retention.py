"""The retention plan (symfhir/privacy/retention.py) and its rules (mappings/retention.yaml)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from symfhir.errors import ConfigError
from symfhir.privacy.retention import (
    CONSENT_KIND_SYSTEM,
    DELETE,
    KEEP,
    NO_RULE,
    REFERENCED,
    Plan,
    add_years,
    local_day,
    plan_deletion,
)
from symfhir.privacy.retention_rules import load_retention, parse_retention

pytestmark = pytest.mark.unit

ZONE = ZoneInfo("America/Chicago")
P = "Patient/p1"
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZONE)


def patient() -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", "name": [{"family": "Quillfeather"}]}


def procedure(rid: str, performed: str) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": rid,
        "status": "completed",
        "subject": {"reference": P},
        "performedDateTime": performed,
    }


def consent(rid: str, kind: str, when: str = "2019-01-05", status: str = "active") -> dict:
    return {
        "resourceType": "Consent",
        "id": rid,
        "status": status,
        "category": [{"coding": [{"system": CONSENT_KIND_SYSTEM, "code": kind}]}],
        "patient": {"reference": P},
        "dateTime": when,
        "provision": {"type": "permit"},
    }


def media(rid: str, taken: str, binary: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Media",
        "id": rid,
        "status": "completed",
        "subject": {"reference": P},
        "createdDateTime": taken,
        "content": {"contentType": "image/jpeg"},
    }
    if binary:
        resource["content"]["url"] = f"Binary/{binary}"
    return resource


def binary(rid: str) -> dict[str, Any]:
    return {"resourceType": "Binary", "id": rid, "securityContext": {"reference": P}}


def by_ref(plan: Plan) -> dict[str, Any]:
    return {item.reference: item for item in plan.items}


def test_bundled_rules_load() -> None:
    policy = load_retention()
    names = [r.name for r in policy.rules]
    assert {"medical-record", "marketing-consent", "audit-trail", "clinical-photo"} <= set(names)
    assert "target" in policy.unlink["Provenance"]
    assert "AuditEvent" not in policy.unlink


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"rules": {"x": {"keep": {"years": 7, "after": "last-treatment"}}}},
        {"rules": {"x": {"keep": {}, "types": {"Patient": {}}}}},
        {"rules": {"x": {"keep": {"years": 7, "after": "birth"}, "types": {}}}},
        {"rules": {"x": {"keep": {"none": True}, "types": {"Media": {"colour": "red"}}}}},
    ],
)
def test_bad_rules_are_refused(data: dict) -> None:
    with pytest.raises(ConfigError):
        parse_retention(data)


def test_medical_records_kept_seven_years_after_last_treatment() -> None:
    resources = [
        patient(),
        procedure("t1", "2019-03-10T10:00:00-06:00"),
        procedure("t2", "2024-06-01T15:00:00-05:00"),
        {"resourceType": "QuestionnaireResponse", "id": "q1", "subject": {"reference": P}},
        {"resourceType": "Observation", "id": "o1", "subject": {"reference": P}},
        {"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": P}},
        {"resourceType": "MedicationStatement", "id": "m1", "subject": {"reference": P}},
        {"resourceType": "Condition", "id": "c1", "subject": {"reference": P}},
    ]
    plan = plan_deletion(resources, NOW, zone=ZONE)
    items = by_ref(plan)
    assert plan.last_treatment == date(2024, 6, 1)
    for ref in ("Procedure/t1", "Procedure/t2", "QuestionnaireResponse/q1", "Observation/o1"):
        assert items[ref].action == KEEP
        assert items[ref].until == date(2031, 6, 1)
        assert items[ref].rule == "medical-record"
    for ref in ("AllergyIntolerance/a1", "MedicationStatement/m1", "Condition/c1"):
        assert items[ref].until == date(2031, 6, 1)
    # The Patient may go, but kept records name it: kept as long as they are.
    assert items[P].action == KEEP
    assert items[P].rule == REFERENCED
    assert items[P].until == date(2031, 6, 1)
    assert "QuestionnaireResponse/q1: kept until 2031-06-01 because medical-record" in [
        i.line() for i in plan.items
    ]


@pytest.mark.parametrize(
    ("now", "action"),
    [
        (datetime(2026, 3, 8, 23, 59, tzinfo=ZONE), KEEP),
        (datetime(2026, 3, 9, 0, 0, tzinfo=ZONE), DELETE),
        # Daylight saving time began on 8 March 2026: midnight of the 9th is 05:00 UTC.
        (datetime(2026, 3, 9, 4, 59, tzinfo=ZoneInfo("UTC")), KEEP),
        (datetime(2026, 3, 9, 5, 0, tzinfo=ZoneInfo("UTC")), DELETE),
    ],
)
def test_the_seven_year_boundary_is_a_chicago_day(now: datetime, action: str) -> None:
    # Performed at 21:30 Chicago on 9 March 2019, which is already 10 March in UTC.
    resources = [procedure("t1", "2019-03-10T03:30:00Z")]
    item = by_ref(plan_deletion(resources, now, zone=ZONE))["Procedure/t1"]
    assert item.action == action
    if action == KEEP:
        assert item.until == date(2026, 3, 9)


def test_the_latest_clinical_record_counts_without_procedures() -> None:
    resources = [
        {
            "resourceType": "QuestionnaireResponse",
            "id": "q1",
            "subject": {"reference": P},
            "authored": "2022-02-03T10:00:00-06:00",
        },
        {
            "resourceType": "Observation",
            "id": "o1",
            "subject": {"reference": P},
            "effectiveDateTime": "2023-05-06",
        },
    ]
    plan = plan_deletion(resources, NOW, zone=ZONE)
    assert plan.last_treatment is None
    assert {i.until for i in plan.items} == {date(2030, 5, 6)}


def test_an_undated_clinical_record_counts_by_its_last_update() -> None:
    record = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": P},
        "meta": {"lastUpdated": "2025-01-02T08:00:00.000+00:00"},
    }
    assert by_ref(plan_deletion([record], NOW, zone=ZONE))["Condition/c1"].until == date(2032, 1, 2)


def test_marketing_consents_go_and_treatment_and_hipaa_consents_stay() -> None:
    resources = [
        procedure("t1", "2024-06-01"),
        consent("k1", "marketing_email"),
        consent("k2", "marketing_sms", status="inactive"),
        consent("k3", "treatment"),
        consent("k4", "hipaa_notice"),
        consent("k5", "photos_website"),
        consent("k6", "made_up_kind"),
    ]
    items = by_ref(plan_deletion(resources, NOW, zone=ZONE))
    assert items["Consent/k1"].action == DELETE
    assert items["Consent/k1"].rule == "marketing-consent"
    assert items["Consent/k2"].action == DELETE
    assert items["Consent/k5"].action == DELETE
    assert items["Consent/k3"].action == KEEP
    assert items["Consent/k3"].rule == "medical-consent"
    assert items["Consent/k4"].until == date(2031, 6, 1)
    assert items["Consent/k6"].action == KEEP
    assert items["Consent/k6"].rule == NO_RULE
    assert items["Consent/k6"].line() == "Consent/k6: kept: no rule allows deleting it"


def test_photos_by_their_consented_use() -> None:
    resources = [
        procedure("t1", "2024-06-01"),
        consent("w", "photos_website", when="2020-01-01"),
        consent("c", "photos_clinical", when="2023-01-01"),
        media("before-clinical", "2022-05-05T10:00:00-05:00", "b1"),
        binary("b1"),
        media("after-clinical", "2023-05-05T10:00:00-05:00", "b2"),
        binary("b2"),
        media("undated", "", None),
    ]
    items = by_ref(plan_deletion(resources, NOW, zone=ZONE))
    # Taken before any clinical consent, consented for the website only: marketing.
    assert items["Media/before-clinical"].action == DELETE
    assert items["Media/before-clinical"].rule == "marketing-photo"
    assert items["Binary/b1"].action == DELETE
    # Consented for the record (and the website): a medical record, and its bytes with it.
    assert items["Media/after-clinical"].action == KEEP
    assert items["Media/after-clinical"].rule == "clinical-photo"
    assert items["Binary/b2"].until == date(2031, 6, 1)
    # A photo of unknown use is kept.
    assert items["Media/undated"].rule == NO_RULE


def test_an_attached_binary_goes_and_stays_with_what_attaches_it() -> None:
    resources = [
        procedure("t1", "2024-06-01"),
        {
            "resourceType": "DocumentReference",
            "id": "d1",
            "subject": {"reference": P},
            "content": [{"attachment": {"url": "http://ehr.example.com/fhir/Binary/f1"}}],
        },
        binary("f1"),
        {**consent("k1", "marketing_email"), "sourceAttachment": {"url": "Binary/f2"}},
        binary("f2"),
        binary("orphan"),
    ]
    plan = plan_deletion(resources, NOW, zone=ZONE)
    items = by_ref(plan)
    assert (items["Binary/f1"].action, items["Binary/f1"].rule) == (KEEP, "medical-record")
    assert items["Binary/f1"].until == date(2031, 6, 1)
    assert (items["Binary/f2"].action, items["Binary/f2"].rule) == (DELETE, "marketing-consent")
    # The file first: it is found only through the Consent that attaches it.
    assert plan.order.index("Binary/f2") < plan.order.index("Consent/k1")
    # Attached to nothing known: kept as long as the longest-kept record.
    assert items["Binary/orphan"].until == date(2031, 6, 1)


def test_audit_events_and_unlisted_types_are_kept_and_pin_what_they_name() -> None:
    resources = [
        patient(),
        consent("k1", "marketing_email"),
        media("m1", "2021-01-01", "b1"),
        binary("b1"),
        consent("w", "photos_social", when="2020-01-01"),
        {
            "resourceType": "AuditEvent",
            "id": "e1",
            "entity": [{"what": {"reference": P}}, {"what": {"reference": "Media/m1"}}],
        },
        {"resourceType": "Task", "id": "r1", "for": {"reference": P}},
        {"resourceType": "Flag", "id": "f1", "subject": {"reference": P}},
    ]
    plan = plan_deletion(resources, NOW, zone=ZONE)
    items = by_ref(plan)
    assert items["AuditEvent/e1"].action == KEEP
    assert items["AuditEvent/e1"].rule == "audit-trail"
    assert items["AuditEvent/e1"].until is None
    assert items["Task/r1"].rule == "privacy-request"
    assert items["Task/r1"].until is None
    assert items["Flag/f1"].rule == NO_RULE
    # A marketing photo the audit trail names: its Media stays, as a stub without its file,
    # and its bytes (the Binary) go.
    assert items["Media/m1"].rule == REFERENCED
    assert items["Media/m1"].referenced_by == "AuditEvent/e1"
    assert items["Media/m1"].line() == (
        "Media/m1: kept indefinitely because referenced by AuditEvent/e1"
    )
    assert plan.strip == {"Media/m1": ("content.url",)}
    assert items["Binary/b1"].action == DELETE
    assert items["Consent/k1"].action == DELETE
    assert plan.next_date() is None


def test_a_photo_within_retention_named_by_the_audit_trail_keeps_its_file() -> None:
    resources = [
        procedure("t1", "2024-06-01"),
        consent("c", "photos_clinical", when="2020-01-01"),
        media("m1", "2021-01-01", "b1"),
        binary("b1"),
        {"resourceType": "AuditEvent", "id": "e1", "entity": [{"what": {"reference": "Media/m1"}}]},
    ]
    plan = plan_deletion(resources, NOW, zone=ZONE)
    items = by_ref(plan)
    assert plan.strip == {}
    assert (items["Binary/b1"].action, items["Binary/b1"].referenced_by) == (KEEP, "Media/m1")
    # Past retention it becomes a stub: the audit trail still names it, the file goes.
    later = plan_deletion(resources, datetime(2031, 6, 1, tzinfo=ZONE), zone=ZONE)
    assert later.strip == {"Media/m1": ("content.url",)}
    assert by_ref(later)["Binary/b1"].action == DELETE


def test_provenance_follows_its_targets_and_drops_deleted_ones() -> None:
    resources = [
        patient(),
        procedure("t1", "2024-06-01"),
        consent("k1", "marketing_email"),
        {
            "resourceType": "Provenance",
            "id": "v1",
            "target": [
                {"reference": P},
                {"reference": "Procedure/t1"},
                {"reference": "Consent/k1"},
            ],
        },
        {"resourceType": "Provenance", "id": "v2", "target": [{"reference": "Consent/k1"}]},
    ]
    plan = plan_deletion(resources, NOW, zone=ZONE)
    items = by_ref(plan)
    assert items["Provenance/v1"].action == KEEP
    assert items["Provenance/v1"].until == date(2031, 6, 1)
    assert items["Provenance/v2"].action == DELETE
    assert items["Consent/k1"].action == DELETE
    assert plan.unlink == {"Provenance/v1": ("Consent/k1",)}
    # The Provenance naming the consent goes before it.
    assert plan.order.index("Provenance/v2") < plan.order.index("Consent/k1")


def test_a_provenance_left_naming_nothing_is_not_unlinked() -> None:
    resources = [
        consent("k1", "marketing_email"),
        {"resourceType": "Provenance", "id": "v2", "target": [{"reference": "Consent/k1"}]},
        {
            "resourceType": "AuditEvent",
            "id": "e1",
            "entity": [{"what": {"reference": "Provenance/v2"}}],
        },
    ]
    plan = plan_deletion(resources, NOW, zone=ZONE)
    assert by_ref(plan)["Provenance/v2"].action == KEEP
    assert plan.unlink == {}


def test_a_kept_patient_loses_its_contact_details() -> None:
    resources = [
        {**patient(), "telecom": [{"system": "email", "value": "a@example.com"}], "gender": "f"},
        procedure("t1", "2024-06-01"),
    ]
    plan = plan_deletion(resources, NOW, zone=ZONE)
    assert plan.minimize == {P: ("telecom",)}
    gone = plan_deletion(resources, datetime(2031, 6, 1, tzinfo=ZONE), zone=ZONE)
    assert gone.minimize == {}
    assert {i.action for i in gone.items} == {DELETE}


def test_everything_goes_after_retention_in_referrers_first_order() -> None:
    resources = [
        patient(),
        procedure("t1", "2015-06-01"),
        {"resourceType": "RelatedPerson", "id": "g1", "patient": {"reference": P}},
        {
            **consent("k3", "treatment", when="2015-01-01"),
            "performer": [{"reference": "RelatedPerson/g1"}],
        },
        media("m1", "2015-06-01", "b1"),
        binary("b1"),
        consent("c", "photos_clinical", when="2015-01-01"),
    ]
    plan = plan_deletion(resources, NOW, zone=ZONE)
    assert {i.action for i in plan.items} == {DELETE}
    order = plan.order
    assert order.index("Consent/k3") < order.index("RelatedPerson/g1") < order.index(P)
    # The Binary (found only through its Media) first, so a stopped run still finds the rest;
    # the photo before the Consents that say what it is for.
    assert order.index("Binary/b1") < order.index("Media/m1") < order.index("Consent/c")
    assert order[-1] == P


def test_a_kept_record_holds_what_it_references_as_long_as_it() -> None:
    resources = [
        patient(),
        procedure("t1", "2024-06-01"),
        {
            "resourceType": "Observation",
            "id": "o1",
            "subject": {"reference": P},
            "performer": [{"reference": "RelatedPerson/g1"}],
        },
        {"resourceType": "RelatedPerson", "id": "g1", "patient": {"reference": P}},
    ]
    items = by_ref(plan_deletion(resources, NOW, zone=ZONE))
    assert items["RelatedPerson/g1"].action == KEEP
    assert items["RelatedPerson/g1"].until == date(2031, 6, 1)
    assert items["RelatedPerson/g1"].referenced_by == "Observation/o1"


def test_the_plan_holds_no_clinical_content() -> None:
    secret = "severe latex allergy"
    resources = [
        procedure("t1", "2024-06-01"),
        {
            "resourceType": "AllergyIntolerance",
            "id": "a1",
            "patient": {"reference": P},
            "code": {"text": secret},
        },
    ]
    plan = plan_deletion(resources, NOW, zone=ZONE)
    assert secret not in repr(plan)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019-03-10T03:30:00Z", date(2019, 3, 9)),
        ("2019-03-10", date(2019, 3, 10)),
        ("2019-02", date(2019, 2, 28)),
        ("2019", date(2019, 12, 31)),
        ("not a date", None),
        (None, None),
    ],
)
def test_local_day(value: object, expected: date | None) -> None:
    assert local_day(value, ZONE) == expected


def test_add_years_from_a_leap_day_keeps_a_day_longer() -> None:
    assert add_years(date(2024, 2, 29), 7) == date(2031, 3, 1)
    assert add_years(date(2024, 2, 28), 7) == date(2031, 2, 28)
