"""The intake workflow against the local HAPI FHIR R4 server: the transaction it builds is
accepted, the next form is pre-filled from it, and saving the same answers again creates no
second allergy (conditional creates on business identifiers).

Each run makes its own client, so reruns against the same database do not collide.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from symfhir.audit import ClientAuditTrail
from symfhir.fhir import FhirClient, ServerConfig
from symfhir.workspace.actor import Actor
from symfhir.workspace.intake.saving import read_intake, save_intake
from tests.integration.conftest import synthetic_patient, synthetic_practitioner

pytestmark = pytest.mark.integration


@pytest.fixture
def client(fhir_base: str) -> Iterator[FhirClient]:
    with FhirClient(ServerConfig(base_url=fhir_base)) as fhir:
        yield fhir


@pytest.fixture
def actor(client: FhirClient) -> Actor:
    return synthetic_practitioner(client)


@pytest.fixture
def patient_id(client: FhirClient) -> str:
    return synthetic_patient(client)


def resources(client: FhirClient, resource_type: str, patient_id: str) -> list[dict]:
    parameter = "patient" if resource_type == "AllergyIntolerance" else "subject"
    return [
        entry["resource"]
        for page in client.search_bundles(resource_type, {parameter: f"Patient/{patient_id}"})
        for entry in page.get("entry") or []
        if (entry.get("search") or {}).get("mode", "match") == "match"
    ]


def test_save_prefill_and_save_again(client: FhirClient, actor: Actor, patient_id: str):
    trail = ClientAuditTrail(client, patient_id, actor.fhir_user)
    form = {
        "client.given": ["Avery"],
        "client.family": ["Quillfeather"],
        "client.birth_date": ["1991-02-03"],
        "skin.type": ["403231003"],
        "allergy.substance[0]": ["Latex"],
        "allergy.reaction[0]": ["hives"],
    }
    now = datetime.now(UTC)
    first = save_intake(client, actor, patient_id, form, audit=trail, now=now)
    assert first.outcome == "saved", first
    assert {"QuestionnaireResponse", "Observation", "AllergyIntolerance"} <= set(first.created)

    (allergy,) = resources(client, "AllergyIntolerance", patient_id)
    assert allergy["code"]["text"] == "Latex"
    (response,) = resources(client, "QuestionnaireResponse", patient_id)
    assert response["author"] == {"reference": actor.fhir_user}

    shown = read_intake(client, actor, patient_id, audit=trail)
    assert shown.prefilled and "Latex" in repr(shown.fields)

    later = now + timedelta(seconds=2)  # another second: another response
    again = save_intake(client, actor, patient_id, form, audit=trail, now=later)
    assert again.outcome == "saved", again
    assert len(resources(client, "AllergyIntolerance", patient_id)) == 1
    assert len(resources(client, "QuestionnaireResponse", patient_id)) == 2
