"""The declarative mapping data: Questionnaire, code systems, terminology, consent kinds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fhir.resources.R4B.codesystem import CodeSystem
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.questionnaire import Questionnaire

pytestmark = pytest.mark.unit

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
PROJECT = "http://symfhir.org/fhir/CodeSystem/"
SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
OBS_EXTRACT = SDC + "sdc-questionnaire-observationExtract"
OBS_CATEGORY = SDC + "sdc-questionnaire-observation-extract-category"
DEF_EXTRACT = SDC + "sdc-questionnaire-definitionExtract"

KINDS = {
    "treatment",
    "hipaa_notice",
    "photos_clinical",
    "photos_website",
    "photos_social",
    "video_recording",
    "testimonials",
    "marketing_email",
    "marketing_sms",
    "marketing_phone",
    "physician_sharing",
    "research",
}

# linkId → (type, value set of its answerOptions or None), as specified for the intake form.
LINK_IDS: dict[str, tuple[str, str | None]] = {
    "client": ("group", None),
    "client.given": ("string", None),
    "client.family": ("string", None),
    "client.birth_date": ("date", None),
    "client.sex": ("choice", "sex"),
    "client.email": ("string", None),
    "client.phone": ("string", None),
    "client.address": ("string", None),
    "client.language": ("choice", "language"),
    "emergency": ("group", None),
    "emergency.name": ("string", None),
    "emergency.relationship": ("choice", "relationship"),
    "emergency.phone": ("string", None),
    "guardian": ("group", None),
    "guardian.name": ("string", None),
    "guardian.relationship": ("choice", "relationship"),
    "guardian.phone": ("string", None),
    "history": ("group", None),
    "history.conditions": ("string", None),
    "history.medications": ("group", None),
    "medication.name": ("string", None),
    "medication.kind": ("choice", "medication_kind"),
    "medication.dose": ("string", None),
    "history.allergies": ("group", None),
    "allergy.substance": ("string", None),
    "allergy.reaction": ("string", None),
    "allergy.severity": ("choice", "allergy_severity"),
    "history.prior_treatments": ("group", None),
    "prior.what": ("string", None),
    "prior.when": ("date", None),
    "prior.where": ("string", None),
    "skin": ("group", None),
    "skin.type": ("choice", "skin_type"),
    "skin.concerns": ("choice", "skin_concern"),
    "safety": ("group", None),
    "safety.pregnancy": ("choice", "pregnancy_status"),
    "safety.breastfeeding": ("choice", "breastfeeding"),
    "safety.smoking": ("choice", "smoking"),
    "safety.contraindications": ("choice", "contraindication"),
}

# observationExtract items: linkId → (observation_code key, observation_category key)
EXTRACTED = {
    "skin.type": ("skin_type", "exam"),
    "skin.concerns": ("skin_concern", "exam"),
    "safety.pregnancy": ("pregnancy_status", "survey"),
    "safety.breastfeeding": ("breastfeeding", "survey"),
    "safety.smoking": ("smoking", "social_history"),
    "safety.contraindications": ("contraindication", "survey"),
}


def _load_yaml(name: str) -> dict[str, Any]:
    return yaml.safe_load((MAPPINGS / name).read_text(encoding="utf-8"))


def _entries(mapping: dict[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in mapping.items() if not str(k).startswith("_")}


TERMINOLOGY = {name: _entries(vs) for name, vs in _entries(_load_yaml("terminology.yaml")).items()}
QUESTIONNAIRE = json.loads((MAPPINGS / "intake-questionnaire.json").read_text(encoding="utf-8"))
CONSENT_KINDS = _load_yaml("consent-kinds.yaml")
CODESYSTEM_FILES = sorted((MAPPINGS / "codesystems").glob("*.json"))
CODESYSTEMS = {
    cs["url"]: cs for cs in (json.loads(p.read_text(encoding="utf-8")) for p in CODESYSTEM_FILES)
}


def _items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        out.append(item)
        out.extend(_items(item.get("item", [])))
    return out


ITEMS = _items(QUESTIONNAIRE["item"])
BY_LINK = {item["linkId"]: item for item in ITEMS}


def _ext(item: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in item.get("extension", []) if e["url"] == url]


def _codings(value: Any) -> list[dict[str, Any]]:
    """Every dict with system+code found anywhere in ``value``."""
    found = []
    if isinstance(value, dict):
        if "system" in value and "code" in value:
            found.append(value)
        for v in value.values():
            found.extend(_codings(v))
    elif isinstance(value, list):
        for v in value:
            found.extend(_codings(v))
    return found


# ── Questionnaire ──────────────────────────────────────────────────────────────


def test_questionnaire_validates_with_r4b():
    q = Questionnaire.model_validate(QUESTIONNAIRE)
    assert q.url == "http://symfhir.org/fhir/Questionnaire/spa-intake"
    assert q.version == "1.0.0"
    assert q.status == "active"
    assert q.subjectType == ["Patient"]


def test_link_ids_are_unique_and_exactly_as_specified():
    link_ids = [item["linkId"] for item in ITEMS]
    assert len(link_ids) == len(set(link_ids))
    assert set(link_ids) == set(LINK_IDS)


@pytest.mark.parametrize("link_id", sorted(LINK_IDS))
def test_item_type_and_answer_options_match_terminology(link_id):
    item = BY_LINK[link_id]
    item_type, valueset = LINK_IDS[link_id]
    assert item["type"] == item_type
    if valueset is None:
        assert "answerOption" not in item
        return
    options = [o["valueCoding"] for o in item["answerOption"]]
    assert options == list(TERMINOLOGY[valueset].values())


@pytest.mark.parametrize(
    "link_id", ["client", "client.given", "client.family", "client.birth_date"]
)
def test_required_items(link_id):
    assert BY_LINK[link_id].get("required") is True


@pytest.mark.parametrize(
    "link_id",
    [
        "history.conditions",
        "history.medications",
        "history.allergies",
        "history.prior_treatments",
        "skin.concerns",
        "safety.contraindications",
    ],
)
def test_repeating_items(link_id):
    assert BY_LINK[link_id].get("repeats") is True


@pytest.mark.parametrize("link_id", sorted(EXTRACTED))
def test_observation_extract_items_carry_code_flag_and_category(link_id):
    code_key, category_key = EXTRACTED[link_id]
    item = BY_LINK[link_id]
    assert item["code"] == [TERMINOLOGY["observation_code"][code_key]]
    (flag,) = _ext(item, OBS_EXTRACT)
    assert flag["valueBoolean"] is True
    (category,) = _ext(item, OBS_CATEGORY)
    assert category["valueCodeableConcept"]["coding"] == [
        TERMINOLOGY["observation_category"][category_key]
    ]


def test_only_the_listed_items_are_observation_extracted():
    flagged = {item["linkId"] for item in ITEMS if _ext(item, OBS_EXTRACT)}
    assert flagged == set(EXTRACTED)
    assert not _ext(QUESTIONNAIRE, OBS_EXTRACT)


def test_definitions_match_their_extract_context():
    """Every item.definition names the resource of its nearest definitionExtract ancestor."""

    def walk(items: list[dict[str, Any]], context: str | None) -> None:
        for item in items:
            extract = _ext(item, DEF_EXTRACT)
            here = context
            if extract:
                (definition,) = [e for e in extract[0]["extension"] if e["url"] == "definition"]
                here = definition["valueCanonical"]
            if "definition" in item:
                assert here is not None, item["linkId"]
                prefix, _, path = item["definition"].partition("#")
                assert prefix == here, item["linkId"]
                assert path.split(".")[0] == here.rsplit("/", 1)[1]
            walk(item.get("item", []), here)

    walk(QUESTIONNAIRE["item"], None)
    assert BY_LINK["client.given"]["definition"].endswith("#Patient.name.given")


# ── Terminology and code systems ─────────────────────────────────────────────


def test_every_terminology_coding_has_system_code_display():
    for name, entries in TERMINOLOGY.items():
        for key, coding in entries.items():
            assert {"system", "code", "display"} <= coding.keys(), f"{name}.{key}"
            assert all(isinstance(coding[k], str) and coding[k] for k in coding), f"{name}.{key}"


@pytest.mark.parametrize("path", CODESYSTEM_FILES, ids=lambda p: p.name)
def test_codesystem_validates_with_r4b(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    cs = CodeSystem.model_validate(data)
    assert cs.url == PROJECT + path.stem
    assert cs.status == "active"
    assert cs.content == "complete"
    assert cs.version and cs.name and cs.title and cs.description
    assert cs.count == len(cs.concept)
    codes = [c.code for c in cs.concept]
    assert len(codes) == len(set(codes))
    for concept in cs.concept:
        assert concept.display and concept.definition


def _project_codings() -> list[tuple[str, dict[str, Any]]]:
    found = [
        (f"terminology {name}.{key}", coding)
        for name, entries in TERMINOLOGY.items()
        for key, coding in entries.items()
    ]
    found += [
        (f"consent kind {k}", c)
        for k, spec in CONSENT_KINDS["kinds"].items()
        for c in _codings(spec)
    ]
    for name in ("sharing.yaml", "patient-summary.yaml"):
        found += [(name, c) for c in _codings(_load_yaml(name))]
    return [(where, c) for where, c in found if str(c["system"]).startswith(PROJECT)]


def test_every_project_code_is_defined_in_its_codesystem():
    for where, coding in _project_codings():
        cs = CODESYSTEMS.get(coding["system"])
        assert cs is not None, f"{where}: no CodeSystem {coding['system']}"
        concepts = {c["code"]: c for c in cs["concept"]}
        assert coding["code"] in concepts, f"{where}: {coding['code']} not in {cs['url']}"
        if "display" in coding:
            assert coding["display"] == concepts[coding["code"]]["display"], where


def test_every_project_codesystem_is_used():
    used = {c["system"] for _, c in _project_codings()}
    assert set(CODESYSTEMS) == used


def test_terminology_loads_through_the_library():
    from symfhir.terminology import load_terminology

    terms = load_terminology(MAPPINGS / "terminology.yaml")
    assert terms.keys("skin_type") == frozenset({"I", "II", "III", "IV", "V", "VI"})
    assert terms.coding("smoking", "never")["code"] == "266919005"


# ── Consent kinds ─────────────────────────────────────────────────────────────


def test_consent_kinds_are_exactly_the_twelve():
    assert set(CONSENT_KINDS["kinds"]) == KINDS
    assert "{document}" in CONSENT_KINDS["policy_uri"]
    assert "{version}" in CONSENT_KINDS["policy_uri"]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_consent_kind_shape_and_codings(kind):
    spec = CONSENT_KINDS["kinds"][kind]
    assert spec["label"] and spec["document"]
    assert spec["photo_use"] in (None, "clinical", "website", "social")
    assert "required_for_minor_guardian" not in spec  # a guardian signs every kind (§9)
    for key in ("scope", "category", "policy_rule", "provision"):
        assert key in spec, key
    codings = _codings({k: spec[k] for k in ("scope", "category", "policy_rule", "provision")})
    assert codings
    for coding in codings:
        assert coding["system"] and coding["code"]
    for actor in spec["provision"].get("actor", []):
        assert actor["who"] in ("organization", "physician", "public")
    kind_codes = [c for c in spec["category"] if c["system"] == PROJECT + "consent-kind"]
    assert [c["code"] for c in kind_codes] == [kind]


def test_photo_kinds_cover_media():
    by_use = {
        spec["photo_use"]: k for k, spec in CONSENT_KINDS["kinds"].items() if spec["photo_use"]
    }
    assert set(by_use) == {"clinical", "website", "social"}
    for kind in by_use.values():
        classes = CONSENT_KINDS["kinds"][kind]["provision"]["class"]
        assert {"system": "http://hl7.org/fhir/resource-types", "code": "Media"} in classes


def _concept(coding: dict[str, Any]) -> dict[str, Any]:
    return {"coding": [coding]}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_naive_consent_from_template_validates_with_r4b(kind):
    spec = CONSENT_KINDS["kinds"][kind]
    prov = spec["provision"]
    provision: dict[str, Any] = {"type": "permit", "period": {"start": "2026-03-02"}}
    if prov.get("actor"):
        provision["actor"] = [
            {"role": _concept(a["role"]), "reference": {"display": a["who"]}} for a in prov["actor"]
        ]
    if prov.get("action"):
        provision["action"] = [_concept(a) for a in prov["action"]]
    if prov.get("purpose"):
        provision["purpose"] = list(prov["purpose"])
    if prov.get("class"):
        provision["class"] = list(prov["class"])
    resource = {
        "resourceType": "Consent",
        "status": "active",
        "scope": _concept(spec["scope"]),
        "category": [_concept(c) for c in spec["category"]],
        "patient": {"reference": "Patient/example"},
        "dateTime": "2026-03-02T00:00:00-06:00",
        "policy": [
            {
                "uri": CONSENT_KINDS["policy_uri"].format(
                    document=spec["document"], version="2026-01-01"
                )
            }
        ],
        "policyRule": _concept(spec["policy_rule"]),
        "provision": provision,
    }
    consent = Consent.model_validate(resource)
    assert consent.scope.coding[0].code == spec["scope"]["code"]
