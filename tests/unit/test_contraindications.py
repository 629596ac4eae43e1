"""symfhir.workspace.contraindications: the rules file, each kind of rule firing from a
realistic resource, what never fires, time windows, and the merge with intake ticks."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from symfhir.errors import ConfigError
from symfhir.mapping.bundle import client_entries, transaction
from symfhir.model import SpaRecord
from symfhir.workspace import contraindications as ci
from tests.conftest import make_record_dict

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 25)
PATIENT = {"reference": "Patient/p1"}
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
INTAKE_OBS = "http://symfhir.org/fhir/CodeSystem/intake-observation"
CONTRAINDICATION = "http://symfhir.org/fhir/CodeSystem/contraindication"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


# Resources in the shape symfhir's mapping writes them (symfhir/mapping/history.py, extract.py).


def medication(text: str, status: str = "active", **extra: object) -> dict:
    return {
        "resourceType": "MedicationStatement",
        "status": status,
        "category": {
            "coding": [
                {
                    "system": "http://symfhir.org/fhir/CodeSystem/medication-kind",
                    "code": "medication",
                }
            ]
        },
        "medicationCodeableConcept": {"text": text},
        "subject": PATIENT,
        "dateAsserted": "2026-03-02",
        **extra,
    }


def condition(text: str, clinical: str = "active", verification: str = "unconfirmed") -> dict:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": clinical}]},
        "verificationStatus": {
            "coding": [{"system": CONDITION_VERIFICATION, "code": verification}]
        },
        "code": {"text": text},
        "subject": PATIENT,
        "recordedDate": "2026-03-02",
    }


def allergy(text: str, clinical: str = "active", verification: str = "unconfirmed") -> dict:
    return {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": clinical}]},
        "verificationStatus": {"coding": [{"system": ALLERGY_VERIFICATION, "code": verification}]},
        "code": {"text": text},
        "patient": PATIENT,
        "reaction": [{"manifestation": [{"text": "swelling"}], "severity": "severe"}],
    }


def observation(code: str, value: tuple[str, str, str], when: str = "2026-11-01", **extra) -> dict:
    system, value_code, display = value
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": PATIENT,
        "effectiveDateTime": when,
        "valueCodeableConcept": {
            "coding": [{"system": system, "code": value_code, "display": display}]
        },
        **extra,
    }


def intake_tick(code: str, display: str, system: str = CONTRAINDICATION) -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": INTAKE_OBS, "code": "contraindication"}]},
        "subject": PATIENT,
        "effectiveDateTime": "2026-11-01",
        "valueCodeableConcept": {"coding": [{"system": system, "code": code, "display": display}]},
    }


BREASTFEEDING = (LOINC, "LA29252-6", "Currently breastfeeding")
NOT_BREASTFEEDING = (LOINC, "LA29253-4", "Not currently breastfeeding")
PREGNANT = (LOINC, "LA15173-0", "Pregnant")
NOT_PREGNANT = (LOINC, "LA26683-5", "Not pregnant")


def fired(resources: list[dict], today: date = TODAY) -> dict[str, tuple[str, ...]]:
    return {w.rule: w.triggers for w in ci.contraindications(resources, today)}


# --- the bundled rules ----------------------------------------------------------------------


def test_the_bundled_rules_load_once_with_unique_ids():
    rules = ci.load_rules()
    assert ci.load_rules() is rules
    ids = [r.id for r in rules]
    assert len(ids) == len(set(ids))
    assert {"anticoagulant", "isotretinoin", "photosensitizing", "pregnancy", "breastfeeding"} <= (
        set(ids)
    )


def test_every_intake_contraindication_has_a_rule():
    from symfhir.terminology import load_terminology

    keys = load_terminology().keys("contraindication")
    covered = set().union(*(r.intake for r in ci.load_rules()))
    terms = load_terminology()
    assert covered == {
        (terms.coding("contraindication", k)["system"], terms.coding("contraindication", k)["code"])
        for k in keys
    }


# --- each kind of rule fires ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "rule", "trigger"),
    [
        (medication("Warfarin 5 mg"), "anticoagulant", "Warfarin 5 mg (medication)"),
        (medication("ELIQUIS (apixaban) 5mg"), "anticoagulant", None),
        (medication("Xarelto"), "anticoagulant", None),
        (medication("dabigatran"), "anticoagulant", None),
        (medication("Clopidogrel 75 mg"), "anticoagulant", None),
        (medication("enoxaparin injection"), "anticoagulant", None),
        (medication("Low-dose aspirin 81 mg"), "anticoagulant", None),
        (medication("Isotretinoin 20 mg"), "isotretinoin", "Isotretinoin 20 mg (medication)"),
        (medication("Tretinoin 0.05% cream"), "photosensitizing", None),
        (medication("Doxycycline 100mg"), "photosensitizing", None),
        (medication("Minocycline"), "photosensitizing", None),
        (medication("St John\u2019s Wort"), "photosensitizing", "St John\u2019s Wort (medication)"),
        (medication("Fish oil"), "bruising-supplement", None),
        (condition("Keloid scarring"), "keloid", "Keloid scarring (condition)"),
        (condition("Systemic lupus erythematosus"), "autoimmune", None),
        (condition("Rheumatoid arthritis"), "autoimmune", None),
        (condition("Cold sores"), "cold-sores", "Cold sores (condition)"),
        (condition("Herpes labialis"), "cold-sores", None),
        (condition("Impetigo on chin"), "skin-infection", None),
        (condition("Pregnancy"), "pregnancy", "Pregnancy (condition)"),
        (condition("Myasthenia gravis"), "neuromuscular", None),
        (condition("Von Willebrand disease"), "bleeding-disorder", None),
        (condition("Pacemaker"), "pacemaker", None),
        (allergy("Lidocaine"), "allergy-local-anaesthetic", "Lidocaine (allergy)"),
        (allergy("Benzocaine numbing cream"), "allergy-local-anaesthetic", None),
        (allergy("Hyaluronidase"), "allergy-hyaluronidase", "Hyaluronidase (allergy)"),
        (allergy("Botox"), "allergy-botulinum-toxin", None),
        (allergy("Juvederm Voluma"), "allergy-ha-filler", None),
        (allergy("hyaluronic acid filler"), "allergy-ha-filler", None),
        (
            observation("63895-7", BREASTFEEDING),
            "breastfeeding",
            "Currently breastfeeding (observation, 2026-11-01)",
        ),
        (
            observation("82810-3", PREGNANT),
            "pregnancy",
            "Pregnant (observation, 2026-11-01)",
        ),
    ],
)
def test_each_rule_fires_from_a_realistic_resource(resource, rule, trigger):
    warnings = fired([resource])
    assert rule in warnings, warnings
    assert trigger is None or warnings[rule] == (trigger,)


def test_a_coded_record_fires_by_its_code():
    pregnant = {
        "resourceType": "Condition",
        "code": {"coding": [{"system": SNOMED, "code": "77386006"}]},  # no text, no display
        "subject": PATIENT,
    }
    assert fired([pregnant]) == {"pregnancy": ("77386006 (condition)",)}


def test_the_warning_text_names_label_trigger_and_risk():
    [warning] = ci.contraindications([medication("Warfarin 5 mg")], TODAY)
    assert warning.text == (
        "Anticoagulant or blood thinner: Warfarin 5 mg (medication) — "
        "bleeding and bruising risk (injectables, microneedling)"
    )


def test_the_whole_record_as_the_mapping_writes_it(ctx, record_context):
    record = SpaRecord.model_validate(
        make_record_dict(
            health__conditions=["Keloid scarring", "Lupus", "migraine"],
            health__medications=[
                {"name": "Warfarin", "kind": "medication", "dose": "5 mg"},
                {"name": "Vitamin D", "kind": "supplement"},
            ],
            health__allergies=[{"substance": "hyaluronidase", "reaction": "hives"}],
            health__contraindications=["anticoagulants", "recent_sunburn"],
            health__breastfeeding="yes",
        ),
        context=record_context,
    )
    resources = [e["resource"] for e in transaction(client_entries(record, ctx, "test"))["entry"]]
    warnings = {w.rule: w.triggers for w in ci.contraindications(resources, TODAY)}
    assert warnings == {
        "breastfeeding": ("Currently breastfeeding (observation, 2026-03-02)",),
        "anticoagulant": ("Warfarin (medication)", "ticked at intake"),
        "keloid": ("Keloid scarring (condition)",),
        "autoimmune": ("Lupus (condition)",),
        "recent-sunburn": ("ticked at intake",),
        "allergy-hyaluronidase": ("hyaluronidase (allergy)",),
    }


# --- what does not fire ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "resource",
    [
        medication("Warfarin", "stopped"),
        medication("Warfarin", "completed"),
        medication("Warfarin", "entered-in-error"),
        medication("Warfarin", "not-taken"),
        medication("Warfarin", effectivePeriod={"start": "2025-01-01", "end": "2026-01-31"}),
        medication("Isotretinoin", "stopped", effectivePeriod={"end": "2026-05-24"}),
        medication("Isotretinoin", "completed", effectiveDateTime="2025-12"),
        medication("Isotretinoin", "entered-in-error", effectivePeriod={"end": "2026-11-01"}),
        medication("Isotretinoin", "not-taken"),
        medication("Doxycycline", "stopped", effectivePeriod={"end": "2026-11-20"}),
        condition("Lupus", "inactive"),
        condition("Impetigo", "resolved"),
        condition("Rheumatoid arthritis", "remission"),
        condition("Lupus", verification="entered-in-error"),
        condition("Lupus", verification="refuted"),
        allergy("Lidocaine", "inactive"),
        allergy("Lidocaine", "resolved"),
        allergy("Lidocaine", verification="entered-in-error"),
        allergy("Lidocaine", verification="refuted"),
        observation("63895-7", NOT_BREASTFEEDING),
        observation("82810-3", NOT_PREGNANT),
        observation("63895-7", BREASTFEEDING, status="entered-in-error"),
        observation("82810-3", PREGNANT, status="cancelled"),
        intake_tick("anticoagulants", "Taking anticoagulants") | {"status": "entered-in-error"},
        # Words match whole words only.
        medication("Tretinoinx gel"),
        condition("Hypertension"),
        medication("Warfarinum"),
    ],
)
def test_records_that_do_not_fire(resource):
    assert fired([resource]) == {}


# --- time windows ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "trigger"),
    [
        (
            {"effectivePeriod": {"end": "2026-05-25"}},
            "Isotretinoin (medication, stopped 2026-05-25)",
        ),
        ({"effectivePeriod": {"end": "2026-05-24"}}, None),
        ({"effectiveDateTime": "2026-06"}, "Isotretinoin (medication, stopped 2026-06-30)"),
        ({"effectiveDateTime": "2025"}, None),
        ({"dateAsserted": "2026-10-01"}, "Isotretinoin (medication, stopped 2026-10-01)"),
        ({"dateAsserted": "2026-03-02"}, None),  # stopped by then at the latest
        ({"dateAsserted": None}, "Isotretinoin (medication, stopped, end date not recorded)"),
    ],
)
def test_isotretinoin_stopped_within_six_months(extra, trigger):
    statement = medication("Isotretinoin", "stopped")
    for key, value in extra.items():
        if value is None:
            statement.pop(key)
        else:
            statement[key] = value
    assert fired([statement]).get("isotretinoin") == ((trigger,) if trigger else None)


def test_an_active_statement_whose_period_ended_counts_as_stopped():
    ended = medication(
        "Accutane 40 mg", effectivePeriod={"start": "2026-01-01", "end": "2026-10-01"}
    )
    assert fired([ended]) == {"isotretinoin": ("Accutane 40 mg (medication, stopped 2026-10-01)",)}
    running = medication(
        "Accutane 40 mg", effectivePeriod={"start": "2026-01-01", "end": "2027-01-01"}
    )
    assert fired([running]) == {"isotretinoin": ("Accutane 40 mg (medication)",)}


def test_today_is_injected():
    stopped = medication("Isotretinoin", "stopped", effectivePeriod={"end": "2026-10-01"})
    assert "isotretinoin" in fired([stopped], date(2027, 4, 1))
    assert "isotretinoin" not in fired([stopped], date(2027, 4, 2))


def test_months_before_clamps_to_the_end_of_a_shorter_month():
    assert ci.months_before(date(2026, 8, 31), 6) == date(2026, 2, 28)
    assert ci.months_before(date(2026, 3, 15), 6) == date(2025, 9, 15)


# --- merging with the intake and each other --------------------------------------------------


def test_an_intake_tick_and_the_medications_give_one_warning_naming_them():
    warnings = ci.contraindications(
        [
            intake_tick("anticoagulants", "Taking anticoagulants or blood thinners"),
            medication("Warfarin 5 mg"),
            medication("Eliquis"),
            medication("Warfarin 5 mg"),  # the same statement twice (two intakes)
            intake_tick("anticoagulants", "Taking anticoagulants or blood thinners"),
        ],
        TODAY,
    )
    assert len(warnings) == 1
    assert warnings[0].rule == "anticoagulant"
    assert warnings[0].triggers == (
        "Warfarin 5 mg (medication)",
        "Eliquis (medication)",
        "ticked at intake",
    )
    assert "Taking anticoagulants" not in warnings[0].text


def test_an_uncoded_intake_answer_merges_by_its_display():
    uncoded = {
        **intake_tick("x", "x"),
        "valueCodeableConcept": {"text": "isotretinoin within the last 6 MONTHS"},
    }
    warnings = fired([uncoded, medication("Isotretinoin 10 mg")])
    assert warnings == {"isotretinoin": ("Isotretinoin 10 mg (medication)", "ticked at intake")}


def test_pregnancy_from_the_intake_tick_and_the_status_observation_is_one_warning():
    warnings = fired(
        [intake_tick("77386006", "Pregnant", SNOMED), observation("82810-3", PREGNANT)]
    )
    assert warnings == {"pregnancy": ("Pregnant (observation, 2026-11-01)", "ticked at intake")}


def test_an_intake_tick_no_rule_covers_is_still_a_warning():
    warnings = ci.contraindications(
        [intake_tick("new-tattoo", "New tattoo in the area", "http://example.org/cs")], TODAY
    )
    assert [(w.rule, w.label, w.source, w.risk) for w in warnings] == [
        ("", "New tattoo in the area", "ticked at intake", "")
    ]
    assert warnings[0].text == "New tattoo in the area: ticked at intake"


@pytest.mark.parametrize(
    ("older", "newer", "fires"),
    [(PREGNANT, NOT_PREGNANT, False), (NOT_PREGNANT, PREGNANT, True)],
)
def test_the_latest_status_observation_wins(older, newer, fires):
    resources = [
        observation("82810-3", newer, "2026-11-01"),
        observation("82810-3", older, "2026-03-02"),
    ]
    assert ("pregnancy" in fired(resources)) is fires


def test_a_history_of_keloids_or_cold_sores_counts_when_resolved():
    warnings = fired([condition("Keloid", "resolved"), condition("Cold sores", "inactive")])
    assert warnings == {
        "keloid": ("Keloid (condition, resolved)",),
        "cold-sores": ("Cold sores (condition, inactive)",),
    }


def test_warnings_follow_the_order_of_the_rules_file():
    warnings = ci.contraindications(
        [allergy("Lidocaine"), medication("Warfarin"), observation("82810-3", PREGNANT)], TODAY
    )
    assert [w.rule for w in warnings] == ["pregnancy", "anticoagulant", "allergy-local-anaesthetic"]


# --- a malformed rules file -----------------------------------------------------------------

GOOD = {"id": "r1", "label": "L", "risk": "R", "match": [{"resource": "Condition", "words": ["x"]}]}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({**GOOD, "label": ""}, "rule 'r1': 'label' must be non-empty text"),
        ({k: v for k, v in GOOD.items() if k != "id"}, "rule 1: 'id' must be non-empty text"),
        ({**GOOD, "lable": "x"}, "rule 'r1': unknown key(s) lable"),
        ({**GOOD, "match": []}, "rule 'r1': needs 'match' or 'intake'"),
        ({**GOOD, "match": "Condition"}, "rule 'r1': 'match' must be a list"),
        ({**GOOD, "intake": ["anticoagulant"]}, "rule 'r1': intake 'anticoagulant' is not a"),
        (
            {**GOOD, "match": [{"resource": "Procedure", "words": ["x"]}]},
            "rule 'r1': match 1: resource must be one of",
        ),
        ({**GOOD, "match": [{"resource": "Condition"}]}, "match 1: needs 'codes' or 'words'"),
        (
            {**GOOD, "match": [{"resource": "Condition", "codes": ["77386006"]}]},
            "match 1: codes entry '77386006' must be 'system|code'",
        ),
        (
            {**GOOD, "match": [{"resource": "Condition", "words": ["x", 3]}]},
            "match 1: word 3 must be text",
        ),
        (
            {**GOOD, "match": [{"resource": "Observation", "codes": ["http://loinc.org|1-8"]}]},
            "an Observation clause needs 'codes' and 'values'",
        ),
        (
            {**GOOD, "match": [{"resource": "Condition", "words": ["x"], "within_months": 6}]},
            "within_months must be a positive whole number",
        ),
        (
            {
                **GOOD,
                "match": [{"resource": "MedicationStatement", "words": ["x"], "within_months": 0}],
            },
            "within_months must be a positive whole number",
        ),
        (
            {
                **GOOD,
                "match": [{"resource": "Condition", "words": ["x"], "clinical_status": ["old"]}],
            },
            "clinical_status must be among",
        ),
    ],
)
def test_a_malformed_rule_is_named(rule, message):
    with pytest.raises(ConfigError) as error:
        ci.parse_rules({"rules": [rule]}, "rules.yaml")
    assert str(error.value).startswith("rules.yaml: ")
    assert message in str(error.value)


def test_duplicate_ids_and_an_empty_file_are_refused():
    with pytest.raises(ConfigError, match=r"rules.yaml: rule 'r1': duplicate id"):
        ci.parse_rules({"rules": [GOOD, GOOD]}, "rules.yaml")
    with pytest.raises(ConfigError, match=r"rules.yaml: 'rules' must be a non-empty list"):
        ci.parse_rules({"rules": []}, "rules.yaml")


def test_an_unreadable_rules_file_is_named(tmp_path: Path):
    broken = tmp_path / "my-rules.yaml"
    broken.write_text("rules: [\n  - id: x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"my-rules\.yaml"):
        ci.load_rules(broken)
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=r"absent\.yaml"):
        ci.load_rules(missing)


def test_a_file_on_disk_with_a_bad_rule_names_file_and_rule(tmp_path: Path):
    path = tmp_path / "clinic-rules.yaml"
    bad = {**GOOD, "id": "botox-allergy", "match": [{"resource": "Allergy", "words": ["x"]}]}
    path.write_text(yaml.safe_dump({"rules": [GOOD, bad]}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^clinic-rules.yaml: rule 'botox-allergy': match 1"):
        ci.load_rules(path)
