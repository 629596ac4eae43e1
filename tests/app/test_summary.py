"""The summary page (≤ 4 FHIR requests) and its pure data shaping."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from symfhir.consent_kinds import load_consent_kinds
from symfhir.errors import FhirRequestError
from symfhir.fhir.reading import batch_resources
from symfhir.workspace.summary import build_summary, consent_rows, summary_batch
from tests.app.resources import sample_resources

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 25)
CONTRAINDICATION = "http://symfhir.org/fhir/CodeSystem/contraindication"


def test_summary_renders_with_at_most_four_fhir_requests(launched, fake_ehr):
    before = len(fake_ehr.requests_to("/fhir"))
    response = launched.get("/")
    assert response.status_code == 200
    fhir_requests = fake_ehr.requests_to("/fhir")[before:]
    fhir_requests = [r for r in fhir_requests if ".well-known" not in r.path]
    assert len(fhir_requests) <= 4
    assert [(r.method, r.path) for r in fhir_requests] == [
        ("POST", "/fhir"),
        ("POST", "/fhir/AuditEvent"),
    ]
    assert fhir_requests[0].headers["Authorization"].startswith("Bearer ACCESS-")


def test_summary_page_content(launched):
    page = launched.get("/").get_data(as_text=True)
    assert 'id="patient-banner"' in page and "Ada Testperson" in page
    assert 'id="contraindications"' in page and 'role="alert"' in page
    assert "Isotretinoin within the last 6 months" in page
    section = _contraindications_section(page)
    assert 'data-rule="allergy-local-anaesthetic"' in section and "Lidocaine (allergy)" in section
    assert 'data-rule="photosensitizing"' in section and "Tretinoin cream (medication)" in section
    assert "Lidocaine" in page and "Peanut" not in page
    assert 'id="consent-treatment" data-status="given"' in page
    assert 'id="consent-photos_website" data-status="declined"' in page
    assert 'id="consent-marketing_email" data-status="withdrawn"' in page
    assert 'id="consent-research" data-status="never asked"' in page
    assert '<html lang="en">' in page


def test_no_banner_when_ehr_shows_one(client, fake_ehr):
    from tests.app.conftest import launch

    fake_ehr.need_patient_banner = False
    launch(client, fake_ehr)
    assert 'id="patient-banner"' not in client.get("/").get_data(as_text=True)


def test_summary_batch():
    bundle = summary_batch("p1")
    urls = [e["request"]["url"] for e in bundle["entry"]]
    assert bundle["type"] == "batch"
    assert urls[0] == "Patient/p1"
    assert "Consent?patient=Patient/p1&_count=200&_sort=-date" in urls
    assert len(urls) == 7


def test_summary_batch_refuses_a_bad_id():
    with pytest.raises(FhirRequestError):
        summary_batch("../Patient/x")


def test_partial_and_truncated_notices(launched, fake_ehr):
    fake_ehr.failing_types = {"Procedure"}
    fake_ehr.next_link_types = {"Observation"}
    page = launched.get("/").get_data(as_text=True)
    assert 'id="partial-notice"' in page and "Procedure" in page
    assert 'id="truncated-notice"' in page


def test_batch_resources():
    answer = {
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1"}, "response": {"status": "200"}},
            {"response": {"status": "403 Forbidden"}},
            {
                "resource": {
                    "resourceType": "Bundle",
                    "entry": [
                        {"resource": {"resourceType": "Condition"}, "search": {"mode": "match"}},
                        {"resource": {"resourceType": "X"}, "search": {"mode": "outcome"}},
                    ],
                    "link": [{"relation": "next", "url": "u"}],
                },
                "response": {"status": "200 OK"},
            },
        ]
    }
    result = batch_resources(answer, ["Patient", "AllergyIntolerance", "Condition"])
    assert [r["resourceType"] for r in result.resources] == ["Patient", "Condition"]
    assert result.failed == ["AllergyIntolerance"]
    assert result.truncated


def test_build_summary():
    summary = build_summary(sample_resources("p1"), "p1", load_consent_kinds(), today=TODAY)
    assert summary.banner is not None and summary.banner.name == "Ada Testperson"
    assert [a.text for a in summary.allergies] == ["Lidocaine"]
    assert "high criticality" in summary.allergies[0].detail
    assert [m.text for m in summary.medications] == ["Tretinoin cream"]
    assert [m.text for m in summary.supplements] == ["Fish oil"]
    assert [c.text for c in summary.conditions] == ["Rosacea"]
    assert summary.skin_type == "Skin phototype III"  # the latest
    assert summary.skin_concerns == ["Melasma"]
    assert [(w.rule, w.source) for w in summary.warnings] == [
        ("isotretinoin", "ticked at intake"),  # the sample's uncoded intake answer
        ("photosensitizing", "Tretinoin cream (medication)"),
        ("bruising-supplement", "Fish oil (supplement)"),
        ("allergy-local-anaesthetic", "Lidocaine (allergy)"),
    ]
    assert [t.text for t in summary.treatments] == ["Microneedling", "Chemical peel"]
    assert summary.treatments[0].date == "2026-09-10"


def test_pregnancy_is_a_warning():
    pregnant = {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "82810-3"}]},
        "valueCodeableConcept": {
            "coding": [{"system": "http://snomed.info/sct", "code": "77386006"}]
        },
    }
    summary = build_summary([pregnant], "p1", load_consent_kinds(), today=TODAY)
    assert [(w.rule, w.label) for w in summary.warnings] == [("pregnancy", "Pregnant")]
    assert summary.banner is None


def test_consent_rows_cover_every_kind():
    kinds = load_consent_kinds()
    rows = {
        r.key: r
        for r in consent_rows(
            [r for r in sample_resources("p1") if r["resourceType"] == "Consent"], kinds
        )
    }
    assert set(rows) == set(kinds.kinds)
    assert rows["treatment"].status == "given"
    assert rows["treatment"].date == "2026-11-01"
    assert rows["treatment"].policy_version == "2026-01"
    assert rows["marketing_email"].status == "withdrawn"
    assert rows["photos_website"].status == "declined"
    assert rows["research"].status == "never asked" and rows["research"].date == ""


def test_other_patients_resources_are_dropped():
    summary = build_summary(sample_resources("p2"), "p1", load_consent_kinds(), today=TODAY)
    assert summary.banner is None and summary.allergies == [] and summary.warnings == []


def test_server_timing_counts_the_fhir_requests_of_the_page(launched):
    response = launched.get("/")
    timing = response.headers["Server-Timing"]
    app_part, fhir_part = timing.split(", ")
    assert app_part.startswith("app;dur=")
    assert fhir_part.startswith("fhir;dur=")
    assert fhir_part.endswith('desc="2 requests"')
    app_ms = float(app_part.split("=")[1])
    fhir_ms = float(fhir_part.split(";")[1].removeprefix("dur="))
    assert 0 <= fhir_ms <= app_ms


def _contraindications_section(page: str) -> str:
    match = re.search(r'<section id="contraindications".*?</section>', page, re.S)
    assert match, "no contraindications section"
    return match.group(0)


def _statement(text: str, status: str = "active", **extra: object) -> dict:
    return {
        "resourceType": "MedicationStatement",
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"text": text},
        **extra,
    }


def _intake_tick(code: str, display: str) -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {
            "coding": [
                {
                    "system": "http://symfhir.org/fhir/CodeSystem/intake-observation",
                    "code": "contraindication",
                }
            ]
        },
        "effectiveDateTime": "2026-11-01",
        "valueCodeableConcept": {
            "coding": [{"system": CONTRAINDICATION, "code": code, "display": display}]
        },
    }


def test_page_shows_one_warning_naming_the_medication_and_the_intake_tick(launched, fake_ehr):
    fake_ehr.resources += [
        _statement("Warfarin 5 mg"),
        _intake_tick("anticoagulants", "Taking anticoagulants or blood thinners"),
    ]
    section = _contraindications_section(launched.get("/").get_data(as_text=True))
    assert 'role="alert"' in section
    assert section.count('data-rule="anticoagulant"') == 1
    item = re.search(r'<li class="warning" data-rule="anticoagulant">(.*?)</li>', section, re.S)
    assert item is not None
    assert "Anticoagulant or blood thinner" in item.group(1)
    assert "Warfarin 5 mg (medication), ticked at intake" in item.group(1)
    assert "bleeding and bruising risk" in item.group(1)
    assert "Taking anticoagulants or blood thinners" not in section


def test_the_view_measures_time_windows_from_the_real_date(launched, fake_ehr):
    real_today = date.today()
    fake_ehr.resources = [r for r in fake_ehr.resources if r["resourceType"] != "Observation"]
    fake_ehr.resources += [
        _statement(
            "Isotretinoin 20 mg",
            "stopped",
            effectivePeriod={"end": (real_today - timedelta(days=30)).isoformat()},
        ),
        _statement(
            "Accutane",
            "stopped",
            effectivePeriod={"end": (real_today - timedelta(days=400)).isoformat()},
        ),
    ]
    section = _contraindications_section(launched.get("/").get_data(as_text=True))
    assert 'data-rule="isotretinoin"' in section
    assert "Isotretinoin 20 mg (medication, stopped" in section
    assert "Accutane" not in section


def test_no_warnings_is_said_plainly_and_not_as_an_alert(launched, fake_ehr):
    fake_ehr.resources = [
        r
        for r in fake_ehr.resources
        if r["resourceType"] not in ("Observation", "MedicationStatement", "AllergyIntolerance")
    ]
    section = _contraindications_section(launched.get("/").get_data(as_text=True))
    assert 'role="alert"' not in section and "None recorded." in section
