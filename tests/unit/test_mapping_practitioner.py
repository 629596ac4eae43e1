"""The client's physician as a Practitioner (NPI, telecom) with a PractitionerRole for the
practice, referenced from Patient.generalPractitioner and the physician-sharing Consent."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from symfhir.map_job import BundleWriter
from symfhir.mapping.bundle import client_entries, transaction
from symfhir.mapping.practitioner import NPI_SYSTEM
from symfhir.model import SpaRecord
from tests.conftest import make_record_dict

pytestmark = pytest.mark.unit

PHYSICIAN = {
    "name": "Dr. Dana Ashgrove",
    "organization": "Example Family Practice (synthetic)",
    "phone": "(337) 555-0190",
    "email": "frontdesk@example.org",
    "npi": "1234567893",
}
SHARING = {"status": "given", "date": "2026-03-02", "policy_version": "2026-01-01"}


def mapped(record_context, ctx, client_id: str = "C9001", **physician: Any) -> dict[str, Any]:
    data = make_record_dict(client__client_id=client_id, client__physician=physician)
    data["consents"]["physician_sharing"] = dict(SHARING)
    record = SpaRecord.model_validate(data, context=record_context)
    return transaction(client_entries(record, ctx, "clients.csv row 2"))


def of(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def sharing_consent(bundle: dict[str, Any]) -> dict[str, Any]:
    return next(
        e["resource"]
        for e in of(bundle, "Consent")
        if "physician_sharing" in json.dumps(e["resource"]["category"])
    )


def test_physician_is_a_practitioner_with_npi_telecom_and_practice(record_context, ctx):
    bundle = mapped(record_context, ctx, **PHYSICIAN)
    (doctor,) = of(bundle, "Practitioner")
    resource = doctor["resource"]
    assert resource["identifier"] == [{"system": NPI_SYSTEM, "value": "1234567893"}]
    assert doctor["request"]["ifNoneExist"] == f"identifier={NPI_SYSTEM}|1234567893"
    assert resource["name"] == [{"text": "Dr. Dana Ashgrove"}]
    assert resource["telecom"] == [
        {"system": "phone", "value": "+13375550190", "use": "work"},
        {"system": "email", "value": "frontdesk@example.org", "use": "work"},
    ]
    (role,) = of(bundle, "PractitionerRole")
    assert role["resource"]["practitioner"]["reference"] == doctor["fullUrl"]
    assert role["resource"]["organization"] == {"display": "Example Family Practice (synthetic)"}
    assert role["request"]["ifNoneExist"].startswith("identifier=")
    (patient,) = of(bundle, "Patient")
    reference = {"reference": doctor["fullUrl"], "display": "Dr. Dana Ashgrove"}
    assert patient["resource"]["generalPractitioner"] == [reference]
    (actor,) = sharing_consent(bundle)["provision"]["actor"]
    assert actor["role"]["coding"][0]["code"] == "IRCP"
    assert actor["reference"] == reference
    for item in bundle["entry"]:
        get_fhir_model_class(item["resource"]["resourceType"]).model_validate(item["resource"])


def test_without_npi_the_practitioner_has_a_source_identifier(record_context, ctx):
    bundle = mapped(record_context, ctx, name="Dr. Dana Ashgrove")
    (doctor,) = of(bundle, "Practitioner")
    (ident,) = doctor["resource"]["identifier"]
    assert ident["system"].endswith("/physician") and ident["value"] == "C9001-physician"
    assert "telecom" not in doctor["resource"]
    assert of(bundle, "PractitionerRole") == []  # no practice named
    (actor,) = sharing_consent(bundle)["provision"]["actor"]
    assert actor["reference"]["reference"] == doctor["fullUrl"]


def test_one_physician_of_two_clients_is_one_practitioner(record_context, ctx):
    first = mapped(record_context, ctx, "C9001", **PHYSICIAN)
    second = mapped(record_context, ctx, "C9002", **PHYSICIAN)
    assert of(first, "Practitioner")[0]["fullUrl"] == of(second, "Practitioner")[0]["fullUrl"]
    # One JSON Bundle of both clients holds it (and its role) once.
    out = io.BytesIO()
    spa = {of(first, "Organization")[0]["fullUrl"]}  # shared by every client, as map passes it
    with BundleWriter(out, ndjson=False) as writer:
        for bundle in (first, second):
            writer.write(bundle, json.dumps(bundle).encode(), spa)
    merged = json.loads(out.getvalue())
    urls = [e["fullUrl"] for e in merged["entry"]]
    assert len(urls) == len(set(urls))
    assert len(of(merged, "Practitioner")) == 1 and len(of(merged, "PractitionerRole")) == 1
    assert len(of(merged, "Patient")) == 2


@pytest.mark.parametrize(
    ("npi", "says"),
    [("1234567890", "check digit"), ("123456789", "10 digits"), ("0234567893", "10 digits")],
)
def test_an_invalid_npi_is_refused(record_context, npi, says):
    data = make_record_dict(client__physician={**PHYSICIAN, "npi": npi})
    with pytest.raises(ValidationError, match=says):
        SpaRecord.model_validate(data, context=record_context)
