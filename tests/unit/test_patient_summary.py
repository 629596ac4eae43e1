"""symfhir.sharing.summary: the patient summary document — its structure and codes, empty
sections, the narrative's escaping, validation, and a document that stands alone."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from symfhir.errors import FhirValidationError, SharingError
from symfhir.sharing.summary import check_document, patient_summary
from symfhir.sharing.summary_embed import NOT_INCLUDED, reference_target
from symfhir.sharing.summary_narrative import Paragraph, Table, narrative_blocks
from symfhir.sharing.summary_sections import load_summary_spec
from symfhir.validation import validate_resource
from tests.unit.summary_record import PID, record

pytestmark = pytest.mark.unit

# A spa-local evening that is already the next day in UTC.
NOW = datetime(2026, 12, 4, 19, 30, tzinfo=ZoneInfo("America/Chicago"))
DOC_ID = "6e1c1a7e-8a3b-4c2d-9e0f-112233445566"
LOINC = "http://loinc.org"
PROJECT = "http://symfhir.org/fhir/CodeSystem/patient-summary-section"
EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"


def build(resources=None, **kw):
    kw.setdefault("author", "Jo Practitioner")
    kw.setdefault("document_id", DOC_ID)
    return patient_summary(
        record() if resources is None else resources, patient_id=PID, now=NOW, **kw
    )


def composition(doc):
    return doc["entry"][0]["resource"]


def sections(doc):
    return {s["code"]["coding"][0]["code"]: s for s in composition(doc)["section"]}


def resolve(doc):
    return {e["fullUrl"]: e["resource"] for e in doc["entry"]}


def entries_of(doc, code):
    by_url = resolve(doc)
    return [by_url[e["reference"]] for e in sections(doc)[code].get("entry", [])]


def texts(resources, element="code"):
    return sorted(r[element].get("text") or r[element]["coding"][0]["display"] for r in resources)


# --- structure and codes ------------------------------------------------------------------


def test_document_bundle_identifier_timestamp_and_composition_first():
    doc = build()
    assert doc["resourceType"] == "Bundle" and doc["type"] == "document"
    assert doc["identifier"] == {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{DOC_ID}"}
    assert datetime.fromisoformat(doc["timestamp"]) == NOW
    comp = composition(doc)
    assert comp["resourceType"] == "Composition"
    assert comp["status"] == "final"
    assert comp["type"]["coding"] == [
        {"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}
    ]
    assert comp["title"] == "Patient summary"
    assert comp["confidentiality"] == "N"
    assert datetime.fromisoformat(comp["date"]) == NOW
    by_url = resolve(doc)
    assert by_url[comp["subject"]["reference"]]["resourceType"] == "Patient"
    org = by_url[comp["author"][0]["reference"]]
    assert org["resourceType"] == "Organization" and org["name"] == "Symetrie Studio Spa"
    assert comp["author"][1] == {"display": "Jo Practitioner"}
    assert comp["custodian"]["reference"] == comp["author"][0]["reference"]


def test_sections_in_order_with_their_codes():
    comp = composition(build())
    codes = [
        (s["code"]["coding"][0]["system"], s["code"]["coding"][0]["code"]) for s in comp["section"]
    ]
    assert codes == [
        (LOINC, "48765-2"),
        (LOINC, "10160-0"),
        (LOINC, "11450-4"),
        (LOINC, "47519-4"),
        (LOINC, "30954-2"),
        (PROJECT, "aesthetic-treatments"),
        (PROJECT, "contraindications"),
        (LOINC, "59284-0"),
    ]


def test_project_section_codes_are_defined_in_the_codesystem():
    from pathlib import Path

    cs = json.loads(
        (
            Path(__file__).parents[2] / "mappings/codesystems/patient-summary-section.json"
        ).read_text()
    )
    concepts = {c["code"]: c["display"] for c in cs["concept"]}
    for section in load_summary_spec().sections:
        if section.code["system"] == PROJECT:
            assert concepts[section.code["code"]] == section.code["display"]
    assert cs["count"] == len(cs["concept"])


def test_each_section_lists_its_resources():
    doc = build()
    assert texts(entries_of(doc, "48765-2")) == ["Lidocaine"]
    assert texts(entries_of(doc, "10160-0"), "medicationCodeableConcept") == ["Warfarin 5 mg"]
    assert texts(entries_of(doc, "11450-4")) == ["History of keloids"]
    # every procedure (the spa's treatment too), so a reader of IPS sections alone sees it
    assert texts(entries_of(doc, "47519-4")) == ["Dermal filler injection", "Laser resurfacing"]
    # the treatment's own Observation is listed with the treatment, not with the results
    assert texts(entries_of(doc, "30954-2")) == ["Skin type"]
    treatment = entries_of(doc, "aesthetic-treatments")
    assert [r["resourceType"] for r in treatment] == ["Procedure", "Observation"]
    assert [r["resourceType"] for r in entries_of(doc, "59284-0")] == ["Consent", "Consent"]


def test_treatment_row_shows_product_lot_amount_and_findings():
    blocks = narrative_blocks(sections(build())["aesthetic-treatments"]["text"]["div"])
    (table,) = blocks
    assert isinstance(table, Table)
    assert table.header[:4] == ("Treatment", "Date", "Areas", "Product")
    row = table.rows[0]
    assert row[0] == "Dermal filler injection" and row[2] == "Lips"
    assert row[3] == "HA filler 1 mL (lot L123)"
    assert "Bruising: mild" in row[5]


def test_contraindications_come_from_the_rules_and_are_narrative_only():
    section = sections(build())["contraindications"]
    assert "entry" not in section and "emptyReason" not in section
    (table,) = narrative_blocks(section["text"]["div"])
    labels = [row[0] for row in table.rows]
    assert "Anticoagulant or blood thinner" in labels
    assert any("Warfarin" in row[1] for row in table.rows)


def test_consents_show_the_current_answer_per_kind():
    (table,) = narrative_blocks(sections(build())["59284-0"]["text"]["div"])
    assert table.rows == (
        ("Consent to treatment", "given", "2026-10-01", "2026-01-01"),
        ("Sharing my records with my physician", "given", "2026-11-01", ""),
    )


def test_consents_of_no_concern_to_a_physician_are_left_out():
    doc = build()
    # the client's marketing e-mail consent is in the input, never in the document
    kinds = [c["category"][0]["coding"][0]["code"] for c in entries_of(doc, "59284-0")]
    assert kinds == ["treatment", "physician_sharing"]
    assert "marketing" not in json.dumps(doc).lower()


def test_a_reference_held_in_an_element_named_reference_resolves():
    # Consent.provision.actor.reference is a Reference in an element called "reference"
    doc = build()
    by_url = resolve(doc)
    physician = next(
        c
        for c in entries_of(doc, "59284-0")
        if c["category"][0]["coding"][0]["code"] == "physician_sharing"
    )
    named, elsewhere = (a["reference"] for a in physician["provision"]["actor"])
    assert by_url[named["reference"]]["resourceType"] == "Practitioner"
    assert elsewhere == {"display": NOT_INCLUDED}


# --- empty sections -----------------------------------------------------------------------


@pytest.mark.parametrize("code", ["48765-2", "10160-0", "11450-4"])
def test_empty_ips_sections_carry_empty_reason_unavailable(code):
    only_patient = [r for r in record() if r["resourceType"] == "Patient"]
    section = sections(build(only_patient))[code]
    assert "entry" not in section
    assert section["emptyReason"]["coding"] == [
        {"system": EMPTY_REASON, "code": "unavailable", "display": "Unavailable"}
    ]
    (paragraph,) = narrative_blocks(section["text"]["div"])
    assert isinstance(paragraph, Paragraph) and paragraph.text.startswith("No ")


def test_sections_with_entries_carry_no_empty_reason():
    for code, section in sections(build()).items():
        if section.get("entry"):
            assert "emptyReason" not in section, code


def test_entered_in_error_and_refuted_records_are_left_out():
    resources = record()
    allergy = next(r for r in resources if r["resourceType"] == "AllergyIntolerance")
    allergy["verificationStatus"] = {"coding": [{"code": "entered-in-error"}]}
    med = next(r for r in resources if r["resourceType"] == "MedicationStatement")
    med["status"] = "entered-in-error"
    doc = build(resources)
    assert "entry" not in sections(doc)["48765-2"]
    assert "entry" not in sections(doc)["10160-0"]
    assert "Lidocaine" not in json.dumps(doc)


# --- only this client, and a document that stands alone ----------------------------------


def test_another_clients_resources_never_appear():
    doc = build()
    text = json.dumps(doc)
    assert "Peanut" not in text and "Otherperson" not in text
    assert sum(e["resource"]["resourceType"] == "Patient" for e in doc["entry"]) == 1


def test_every_reference_resolves_inside_the_bundle():
    doc = build()
    urls = {e["fullUrl"] for e in doc["entry"]}
    assert all(u.startswith("urn:uuid:") for u in urls)
    for entry in doc["entry"]:
        assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"
    found = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str):
                found.append(node["reference"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    assert found and set(found) <= urls
    assert "Patient/p1" not in json.dumps(doc)  # server ids are not copied


def test_referenced_practitioner_is_embedded_and_unknown_targets_keep_a_display():
    doc = build()
    by_url = resolve(doc)
    med = entries_of(doc, "10160-0")[0]
    assert by_url[med["informationSource"]["reference"]]["resourceType"] == "Practitioner"
    skin = entries_of(doc, "30954-2")[0]
    assert skin["derivedFrom"] == [{"display": NOT_INCLUDED}]


def test_signature_image_and_patient_photo_are_not_copied():
    doc = build()
    consent = entries_of(doc, "59284-0")[0]
    assert consent["sourceAttachment"] == {"contentType": "image/png"}
    patient = resolve(doc)[composition(doc)["subject"]["reference"]]
    assert "photo" not in patient and "meta" not in patient


def test_same_document_id_gives_the_same_document():
    assert build() == build()
    other = build(document_id=None)
    assert other["identifier"]["value"] != f"urn:uuid:{DOC_ID}"


# --- narrative escaping -------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


def test_narrative_escapes_everything_from_the_record():
    resources = record()
    next(r for r in resources if r["resourceType"] == "AllergyIntolerance")["code"] = {
        "text": HOSTILE
    }
    doc = build(resources)
    div = sections(doc)["48765-2"]["text"]["div"]
    assert "<script" not in div and "<img" not in div
    assert "&lt;script&gt;" in div and "&amp;" in div
    (table,) = narrative_blocks(div)
    assert table.rows[0][0] == " ".join(HOSTILE.split())


def test_composition_narrative_names_the_client_and_the_spa():
    blocks = narrative_blocks(composition(build(author="<b>Jo</b>"))["text"]["div"])
    text = " ".join(b.text for b in blocks if isinstance(b, Paragraph))
    assert "Avery Quillfeather" in text and "born 1990-04-02" in text
    assert "Symetrie Studio Spa" in text and "<b>Jo</b>" in text
    assert "2026-12-04" in text  # the spa's calendar day, not UTC's (already Dec 5)


def test_narratives_are_xhtml_divs_with_generated_status():
    comp = composition(build())
    for narrative in [comp["text"], *(s["text"] for s in comp["section"])]:
        assert narrative["status"] == "generated"
        assert narrative["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')


# --- validation ---------------------------------------------------------------------------


def test_document_validates_with_r4b():
    assert validate_resource(build()) == []


def test_a_malformed_input_resource_fails_validation():
    resources = record()
    allergy = next(r for r in resources if r["resourceType"] == "AllergyIntolerance")
    allergy["criticality"] = {"not": "a code"}
    with pytest.raises(FhirValidationError) as caught:
        build(resources)
    assert any(path.endswith("resource.criticality") for path, _ in caught.value.problems)
    assert "Lidocaine" not in str(caught.value)  # problems name paths, not content


def test_check_document_refuses_an_unresolvable_reference():
    doc = build()
    broken = copy.deepcopy(doc)
    sections_ = composition(broken)["section"]
    sections_[0]["entry"] = [{"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}]
    with pytest.raises(FhirValidationError, match="not resolvable"):
        check_document(broken)
    check_document(doc)


def test_check_document_wants_the_composition_first():
    doc = build()
    doc["entry"] = doc["entry"][1:] + doc["entry"][:1]
    with pytest.raises(FhirValidationError, match="Composition"):
        check_document(doc)


# --- bad input ----------------------------------------------------------------------------


def test_naive_now_is_refused():
    with pytest.raises(SharingError, match="now"):
        patient_summary(record(), patient_id=PID, now=datetime(2026, 12, 4), author="")


def test_missing_patient_is_refused():
    without = [r for r in record() if r.get("id") != PID]
    with pytest.raises(SharingError, match="Patient"):
        build(without)


@pytest.mark.parametrize("bad", ["not-a-uuid", "", "../x"])
def test_document_id_must_be_a_uuid(bad):
    with pytest.raises(SharingError, match="document_id"):
        build(document_id=bad)


@pytest.mark.parametrize("junk", [None, 5, "x", {"resourceType": "Observation"}, {"id": "q"}])
def test_junk_in_the_input_is_ignored(junk):
    doc = build([*record(), junk])
    assert composition(doc)["resourceType"] == "Composition"


def test_the_spa_as_author_is_named_once():
    comp = composition(build(author="  Symetrie   Studio Spa "))
    assert len(comp["author"]) == 1
    (_, prepared) = narrative_blocks(comp["text"]["div"])
    assert prepared.text == "Prepared by Symetrie Studio Spa on 2026-12-04"


def test_utc_now_is_accepted():
    doc = patient_summary(
        record(), patient_id=PID, now=datetime(2026, 12, 4, tzinfo=UTC), author=""
    )
    assert len(composition(doc)["author"]) == 1


@pytest.mark.parametrize(
    ("reference", "target"),
    [
        ("Patient/p1", "Patient/p1"),
        ("Patient/p1/_history/2", "Patient/p1"),
        ("https://ehr.example.org/fhir/Practitioner/dr1", "Practitioner/dr1"),
        ("a/Patient/p1", None),
        ("#contained", None),
        ("urn:uuid:6e1c1a7e-8a3b-4c2d-9e0f-112233445566", None),
        ("Patient", None),
        ("patient/p1", None),
        ("Patient/", None),
    ],
)
def test_reference_targets(reference, target):
    assert reference_target(reference) == target


def test_absolute_and_versioned_references_resolve_inside_the_document():
    resources = record()
    condition = next(r for r in resources if r["resourceType"] == "Condition")
    condition["subject"] = {"reference": "https://ehr.example.org/fhir/Patient/p1"}
    condition["asserter"] = {"reference": "Practitioner/dr1/_history/4"}
    doc = build(resources)
    by_url = resolve(doc)
    (listed,) = entries_of(doc, "11450-4")
    assert by_url[listed["subject"]["reference"]]["resourceType"] == "Patient"
    assert by_url[listed["asserter"]["reference"]]["resourceType"] == "Practitioner"


# --- the sections file --------------------------------------------------------------------


def _spec_data():
    from pathlib import Path

    import yaml

    path = Path(__file__).parents[2] / "mappings/patient-summary.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_bundled_sections_file_parses():
    from symfhir.sharing.summary_sections import parse_spec

    spec = parse_spec(_spec_data())
    assert [s.key for s in spec.sections][:3] == ["allergies", "medications", "problems"]
    assert spec.strip["Consent"] == (("sourceAttachment", "data"),)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("sections"), "'document' and 'sections'"),
        (lambda d: d["sections"]["allergies"].update(empty_reason="nope"), "unknown empty_reason"),
        (lambda d: d["sections"]["allergies"].update(skip={"status": "x"}), "'skip'"),
        (lambda d: d["sections"]["allergies"].pop("code"), "allergies code"),
        (lambda d: d["sections"]["consents"].update(kinds="treatment"), "'kinds'"),
        (lambda d: d.update(strip={"Consent": "x"}), "'strip'"),
        (lambda d: d.update(empty_reasons=[]), "empty_reasons"),
    ],
)
def test_a_broken_sections_file_is_refused(change, message):
    from symfhir.errors import ConfigError
    from symfhir.sharing.summary_sections import parse_spec

    data = _spec_data()
    change(data)
    with pytest.raises(ConfigError, match=message):
        parse_spec(data)


# --- narrative blocks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xhtml", "blocks"),
    [
        (None, []),
        ("", []),
        ("<div>plain <b>bold</b> text</div>", [Paragraph("plain bold text")]),
        ("<div><p>a</p><p>b &amp; c</p></div>", [Paragraph("a"), Paragraph("b & c")]),
        ("<div><table><tr><td>x</td></tr></table></div>", [Table((), (("x",),))]),
        ("<div><table><tr><th>h</th></tr><tr><td>v", [Table(("h",), (("v",),))]),
        ("<div><ul><li>one</li><li>two</li></ul></div>", [Paragraph("one"), Paragraph("two")]),
        ("<div><script>x()</script><style>p{}</style>kept</div>", [Paragraph("kept")]),
    ],
)
def test_narrative_blocks_read_text_only(xhtml, blocks):
    assert narrative_blocks(xhtml) == blocks


# --- the period covered -------------------------------------------------------------------

PCPR = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActClass",
    "code": "PCPR",
    "display": "care provision",
}


def test_without_a_range_the_summary_covers_care_up_to_its_day():
    (event,) = composition(build())["event"]
    assert event["code"] == [{"coding": [PCPR]}]
    assert event["period"] == {"end": "2026-12-04"}  # the spa's day, not UTC's


def test_a_shared_date_range_is_the_period_covered_and_said_in_the_narrative():
    from datetime import date

    comp = composition(build(period=(date(2025, 1, 1), date(2026, 6, 30))))
    assert comp["event"][0]["period"] == {"start": "2025-01-01", "end": "2026-06-30"}
    texts = [b.text for b in narrative_blocks(comp["text"]["div"])]
    assert (
        "Records dated from 2025-01-01 until 2026-06-30 only, as the client agreed to share."
        in texts
    )
    open_end = composition(build(period=(date(2025, 1, 1), None)))
    assert open_end["event"][0]["period"] == {"start": "2025-01-01", "end": "2026-12-04"}


def test_a_reversed_range_is_refused():
    from datetime import date

    with pytest.raises(SharingError, match="period"):
        build(period=(date(2026, 1, 2), date(2026, 1, 1)))
