"""Attacks on the sandbox proxy by a token launched for patient A, against the real HAPI.

Each test sends the request a security review found to reach patient B's data and checks
that the proxy refuses it (403 or 404) and that B's record upstream is unchanged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask.testing import FlaskClient

from smart_app.sandbox import create_sandbox
from tests.sandbox.conftest import (
    BASE,
    REDIRECT,
    assertion,
    authorize_params,
    client_registrations,
    pkce,
    redirect_params,
)

pytestmark = pytest.mark.integration

FHIR_JSON = "application/fhir+json"
SYSTEM = "urn:symfhir:sandbox-attacks"
REFUSED = (403, 404)
ALL = "launch patient/*.cruds"


def create(base: str, resource: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(
        f"{base}/{resource['resourceType']}",
        json=resource,
        headers={"Content-Type": FHIR_JSON, "Prefer": "return=representation"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def upstream_get(base: str, path: str) -> requests.Response:
    return requests.get(f"{base}/{path}", headers={"Accept": FHIR_JSON}, timeout=30)


def observation(patient: str, run: str, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "identifier": [{"system": SYSTEM, "value": f"{name}-{run}"}],
        "status": "final",
        "code": {"text": "sandbox attack test"},
        "subject": {"reference": f"Patient/{patient}"},
        **extra,
    }


@dataclass(frozen=True)
class World:
    """Two patients on HAPI and a sandbox in front of it."""

    base: str
    run: str
    a: str
    b: str
    client: FlaskClient
    rsa_key: Any

    def token(self, scope: str = ALL) -> dict[str, str]:
        url = self.client.post("/api/launch", json={"patient": self.a}).json["url"]
        launch = parse_qs(urlsplit(url).query)["launch"][0]
        verifier, challenge = pkce()
        query = authorize_params(self.client, challenge, launch=launch, scope=scope)
        code = redirect_params(self.client.get("/authorize", query_string=query))["code"]
        answer = self.client.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": REDIRECT,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion(self.rsa_key, "RS384"),
            },
        ).json
        assert answer["patient"] == self.a
        return {"Authorization": f"Bearer {answer['access_token']}", "Accept": FHIR_JSON}

    def b_resource(self, resource_type: str, name: str, **extra: Any) -> dict[str, Any]:
        """A resource of B's (an Observation unless said otherwise), created upstream."""
        if resource_type == "Condition":
            body: dict[str, Any] = {
                "resourceType": "Condition",
                "identifier": [{"system": SYSTEM, "value": f"{name}-{self.run}"}],
                "code": {"text": "B's condition"},
                "subject": {"reference": f"Patient/{self.b}"},
            }
        else:
            body = observation(self.b, self.run, name)
        return create(self.base, {**body, **extra})

    def unchanged(self, resource: dict[str, Any]) -> bool:
        now = upstream_get(self.base, f"{resource['resourceType']}/{resource['id']}")
        return now.status_code == 200 and now.json()["meta"] == resource["meta"]


@pytest.fixture(scope="module")
def world(fhir_base: str, rsa_key: Any, ec_key: Any) -> Iterator[World]:
    run = uuid.uuid4().hex[:12]
    a = create(fhir_base, {"resourceType": "Patient", "name": [{"family": f"Alpha{run}"}]})
    b = create(fhir_base, {"resourceType": "Patient", "name": [{"family": f"Bravo{run}"}]})
    app = create_sandbox(
        {
            "TESTING": True,
            "SANDBOX_BASE_URL": BASE,
            "SANDBOX_FHIR_UPSTREAM": fhir_base,
            "SANDBOX_CLIENTS": client_registrations(rsa_key, ec_key),
        }
    )
    yield World(fhir_base, run, a["id"], b["id"], app.test_client(), rsa_key)


def refused(response: Any) -> bool:
    return response.status_code in REFUSED


# --- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "Patient/{a}/_history/../../../Patient/{b}",
        "Patient/{a}/_history/%2E%2E/%2E%2E/%2E%2E/Patient/{b}",
        "Patient/{a}/_history/%2e%2e/%2e%2e/%2e%2e/Patient/{b}",
        "Patient/{a}/_history/./../../../Patient/{b}",
        "Patient/{a}/_history/..%2F..%2F..%2FPatient%2F{b}",
        "Patient/{a}/_history/%2e%2e%2f%2e%2e%2f%2e%2e%2fPatient%2f{b}",
        # every patient's Observations, the whole server's history, a system-level search
        "Patient/{a}/_history/../../../Observation",
        "Patient/{a}/_history/../../../_history",
        "Patient/{a}/_history/../../..?_type=Patient",
        "_history",
        "?_type=Patient,Observation",
        "Observation/_history",
    ],
)
def test_path_traversal_is_refused(world: World, template: str) -> None:
    path = template.format(a=world.a, b=world.b)
    response = world.client.get(f"/fhir/{path}", headers=world.token())
    assert refused(response), response.data[:300]
    assert world.b not in response.get_data(as_text=True)


def test_plain_paths_still_work(world: World) -> None:
    headers = world.token()
    assert world.client.get(f"/fhir/Patient/{world.a}", headers=headers).status_code == 200
    history = world.client.get(f"/fhir/Patient/{world.a}/_history/1", headers=headers)
    assert history.status_code == 200


# --- conditional updates -------------------------------------------------------------------


def _condition_for_a(world: World) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "code": {"text": "written by A's token"},
        "subject": {"reference": f"Patient/{world.a}"},
    }


@pytest.mark.parametrize("by", ["_id", "identifier", "_id:exact"])
def test_conditional_update_of_b_is_refused(world: World, by: str) -> None:
    target = world.b_resource("Condition", f"cond-{by}")
    match = target["id"] if by.startswith("_id") else f"{SYSTEM}|{target['identifier'][0]['value']}"
    response = world.client.put(
        f"/fhir/Condition?{by}={match}",
        data=json.dumps(_condition_for_a(world)),
        content_type=FHIR_JSON,
        headers=world.token(),
    )
    assert refused(response), response.json
    assert world.unchanged(target)


def test_conditional_update_in_a_transaction_is_refused(world: World) -> None:
    target = world.b_resource("Condition", "cond-tx")
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": _condition_for_a(world),
                "request": {"method": "PUT", "url": f"Condition?_id={target['id']}"},
            }
        ],
    }
    response = world.client.post(
        "/fhir", data=json.dumps(bundle), content_type=FHIR_JSON, headers=world.token()
    )
    assert refused(response), response.json
    assert world.unchanged(target)


def test_conditional_update_bound_to_the_patient_is_allowed(world: World) -> None:
    target = world.b_resource("Condition", "cond-bound")
    value = target["identifier"][0]["value"]
    response = world.client.put(
        f"/fhir/Condition?patient={world.a}&identifier={SYSTEM}|{value}",
        data=json.dumps({**_condition_for_a(world), "identifier": target["identifier"]}),
        content_type=FHIR_JSON,
        headers=world.token(),
    )
    assert response.status_code == 201, response.json  # no match in A's record: a new one
    assert world.unchanged(target)


# --- PATCH ---------------------------------------------------------------------------------


def test_json_patch_moving_subject_to_b_is_refused(world: World) -> None:
    own = create(world.base, observation(world.a, world.run, "patch-json"))
    patch = [{"op": "replace", "path": "/subject", "value": {"reference": f"Patient/{world.b}"}}]
    response = world.client.patch(
        f"/fhir/Observation/{own['id']}",
        data=json.dumps(patch),
        content_type="application/json-patch+json",
        headers=world.token(),
    )
    assert refused(response), response.json
    assert world.unchanged(own)


def test_fhirpath_patch_moving_subject_to_b_is_refused(world: World) -> None:
    own = create(world.base, observation(world.a, world.run, "patch-fhirpath"))
    patch = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "replace"},
                    {"name": "path", "valueString": "Observation.subject"},
                    {"name": "value", "valueReference": {"reference": f"Patient/{world.b}"}},
                ],
            }
        ],
    }
    response = world.client.patch(
        f"/fhir/Observation/{own['id']}",
        data=json.dumps(patch),
        content_type=FHIR_JSON,
        headers=world.token(),
    )
    assert refused(response), response.json
    assert world.unchanged(own)


def test_json_patch_of_other_fields_is_allowed(world: World) -> None:
    own = create(world.base, observation(world.a, world.run, "patch-ok"))
    patch = [{"op": "replace", "path": "/status", "value": "amended"}]
    response = world.client.patch(
        f"/fhir/Observation/{own['id']}",
        data=json.dumps(patch),
        content_type="application/json-patch+json",
        headers=world.token(),
    )
    assert response.status_code == 200, response.json
    assert upstream_get(world.base, f"Observation/{own['id']}").json()["status"] == "amended"


# --- body ownership ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        # HAPI drops the unknown `patient` element: an Observation of B's would be created.
        lambda a, b: {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": f"Patient/{b}"},
            "patient": {"reference": f"Patient/{a}"},
        },
        # Coverage is outside the compartment (its subscriber is B).
        lambda a, b: {
            "resourceType": "Coverage",
            "status": "active",
            "beneficiary": {"reference": f"Patient/{a}"},
            "subscriber": {"reference": f"Patient/{b}"},
            "payor": [{"reference": f"Patient/{b}"}],
        },
    ],
)
def test_create_judged_by_the_owner_field_of_its_type(world: World, body: Any) -> None:
    resource = body(world.a, world.b)
    resource["meta"] = {"tag": [{"system": SYSTEM, "code": f"owner-{world.run}"}]}
    response = world.client.post(
        f"/fhir/{resource['resourceType']}",
        data=json.dumps(resource),
        content_type=FHIR_JSON,
        headers=world.token(),
    )
    assert refused(response), response.json
    found = upstream_get(
        world.base, f"{resource['resourceType']}?_tag={SYSTEM}|owner-{world.run}"
    ).json()
    assert found.get("total", 0) == 0


# --- Binary and XML bodies -----------------------------------------------------------------


def _tag_count(world: World, resource_type: str, code: str) -> int:
    found = upstream_get(world.base, f"{resource_type}?_tag={SYSTEM}|{code}&_summary=count")
    return int(found.json()["total"])


def test_xml_binary_for_b_with_a_header_for_a_is_refused(world: World) -> None:
    code = f"xml-binary-{world.run}"
    xml = (
        '<Binary xmlns="http://hl7.org/fhir">'
        f'<meta><tag><system value="{SYSTEM}"/><code value="{code}"/></tag></meta>'
        '<contentType value="text/plain"/>'
        f'<securityContext><reference value="Patient/{world.b}"/></securityContext>'
        '<data value="aGVsbG8="/></Binary>'
    )
    headers = {**world.token(), "X-Security-Context": f"Patient/{world.a}"}
    response = world.client.post(
        "/fhir/Binary", data=xml, content_type="application/fhir+xml", headers=headers
    )
    assert refused(response), response.data[:300]
    assert _tag_count(world, "Binary", code) == 0


def test_xml_resource_body_is_refused(world: World) -> None:
    code = f"xml-obs-{world.run}"
    xml = (
        '<Observation xmlns="http://hl7.org/fhir">'
        f'<meta><tag><system value="{SYSTEM}"/><code value="{code}"/></tag></meta>'
        '<status value="final"/><code><text value="x"/></code>'
        f'<subject><reference value="Patient/{world.b}"/></subject></Observation>'
    )
    response = world.client.post(
        "/fhir/Observation", data=xml, content_type="application/fhir+xml", headers=world.token()
    )
    assert refused(response), response.data[:300]
    assert _tag_count(world, "Observation", code) == 0


def test_raw_binary_for_the_patient_is_allowed(world: World) -> None:
    headers = {**world.token(), "X-Security-Context": f"Patient/{world.a}"}
    response = world.client.post(
        "/fhir/Binary", data=b"\xff\xd8 jpeg", content_type="image/jpeg", headers=headers
    )
    assert response.status_code == 201


# --- cascade -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "headers"),
    [("?_cascade=delete", {}), ("", {"X-Cascade": "delete"})],
)
def test_cascading_delete_is_refused(world: World, query: str, headers: dict[str, str]) -> None:
    # B's Observation names A as a performer: a cascade from Patient/A would delete it.
    victim = world.b_resource(
        "Observation", f"cascade-{bool(query)}", performer=[{"reference": f"Patient/{world.a}"}]
    )
    response = world.client.delete(
        f"/fhir/Patient/{world.a}{query}", headers={**world.token(), **headers}
    )
    assert refused(response), response.json
    assert world.unchanged(victim)
    assert upstream_get(world.base, f"Patient/{world.a}").status_code == 200


# --- _include / _revinclude in every response shape ----------------------------------------


@pytest.fixture(scope="module")
def a_with_b_performer(world: World) -> dict[str, Any]:
    """An Observation of A's naming B as its performer (an _include would pull B in)."""
    return create(
        world.base,
        observation(world.a, world.run, "include", performer=[{"reference": f"Patient/{world.b}"}]),
    )


@pytest.mark.parametrize(
    ("query", "accept"),
    [
        ("&_format=xml", FHIR_JSON),
        ("&_format=application/fhir%2Bxml", FHIR_JSON),
        ("", "application/fhir+xml"),
        ("", "application/xml"),
        ("", "text/html"),
    ],
)
def test_includes_in_formats_the_proxy_cannot_filter_are_refused(
    world: World, a_with_b_performer: dict[str, Any], query: str, accept: str
) -> None:
    headers = {**world.token(), "Accept": accept}
    response = world.client.get(
        f"/fhir/Observation?patient={world.a}&_include=Observation:performer{query}",
        headers=headers,
    )
    assert refused(response), response.data[:300]
    assert world.b not in response.get_data(as_text=True)


def test_includes_in_batch_entries_are_filtered(
    world: World, a_with_b_performer: dict[str, Any]
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "request": {
                    "method": "GET",
                    "url": f"Observation?patient={world.a}&_include=Observation:performer",
                }
            },
            {
                "request": {
                    "method": "GET",
                    "url": f"Patient?_id={world.a}&_revinclude:iterate=Observation:performer",
                }
            },
        ],
    }
    response = world.client.post(
        "/fhir", data=json.dumps(bundle), content_type=FHIR_JSON, headers=world.token()
    )
    assert response.status_code == 200, response.json
    assert f"Patient/{world.b}" not in json.dumps(
        [e["resource"]["entry"] for e in response.json["entry"]]
    ).replace(f'"reference": "Patient/{world.b}"', "")
    for item in response.json["entry"]:
        found = item["resource"]["entry"]
        ids = {(e["resource"]["resourceType"], e["resource"].get("id")) for e in found}
        assert ("Patient", world.b) not in ids
        assert all(
            e["resource"].get("subject", {}).get("reference") in (None, f"Patient/{world.a}")
            for e in found
        )


def test_revinclude_iterate_of_b_is_filtered(world: World) -> None:
    world.b_resource("Observation", "revinclude", performer=[{"reference": f"Patient/{world.a}"}])
    response = world.client.get(
        f"/fhir/Patient?_id={world.a}&_revinclude:iterate=Observation:performer",
        headers=world.token(),
    )
    assert response.status_code == 200
    subjects = {
        e["resource"].get("subject", {}).get("reference")
        for e in response.json.get("entry", [])
        if e["resource"]["resourceType"] == "Observation"
    }
    assert f"Patient/{world.b}" not in subjects


# --- $everything ---------------------------------------------------------------------------


def test_everything_is_filtered_by_the_granted_scopes(
    world: World, a_with_b_performer: dict[str, Any]
) -> None:
    response = world.client.get(
        f"/fhir/Patient/{world.a}/$everything", headers=world.token("launch patient/Patient.r")
    )
    assert response.status_code == 200, response.json
    types = {e["resource"]["resourceType"] for e in response.json["entry"]}
    assert types == {"Patient", "OperationOutcome"}
    patients = [e["resource"]["id"] for e in response.json["entry"] if "id" in e["resource"]]
    assert patients == [world.a]


def test_everything_is_filtered_by_user_scopes_too(
    world: World, a_with_b_performer: dict[str, Any]
) -> None:
    # A user/ scope of one type reaches no other type through $everything.
    response = world.client.get(
        f"/fhir/Patient/{world.a}/$everything", headers=world.token("launch user/Patient.rs")
    )
    assert response.status_code == 200, response.json
    types = {e["resource"]["resourceType"] for e in response.json["entry"]}
    assert "Observation" not in types
    assert "Patient" in types


def test_xml_answers_are_refused_to_user_scopes_too(world: World) -> None:
    response = world.client.get(
        f"/fhir/Patient/{world.a}/$everything?_format=xml",
        headers=world.token("launch user/Patient.rs"),
    )
    assert refused(response)


def test_everything_leaves_out_other_patients(
    world: World, a_with_b_performer: dict[str, Any]
) -> None:
    world.b_resource("Observation", "everything", performer=[{"reference": f"Patient/{world.a}"}])
    response = world.client.get(f"/fhir/Patient/{world.a}/$everything", headers=world.token())
    assert response.status_code == 200
    found = [e["resource"] for e in response.json["entry"]]
    assert any(r["resourceType"] == "Observation" for r in found)
    assert ("Patient", world.b) not in {(r["resourceType"], r.get("id")) for r in found}
    assert all(r.get("subject", {}).get("reference") in (None, f"Patient/{world.a}") for r in found)


# --- deleted resources ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["/_history/1", "/_history", ""])
def test_deleted_resource_of_b_is_not_readable(world: World, suffix: str) -> None:
    gone = world.b_resource("Observation", f"deleted{suffix.replace('/', '-')}")
    path = f"Observation/{gone['id']}"
    assert requests.delete(f"{world.base}/{path}", timeout=30).status_code in (200, 204)
    response = world.client.get(f"/fhir/{path}{suffix}", headers=world.token())
    assert refused(response), response.json
    assert world.b not in response.get_data(as_text=True)


def test_history_of_own_resource_is_readable(world: World) -> None:
    own = create(world.base, observation(world.a, world.run, "own-history"))
    headers = world.token()
    path = f"/fhir/Observation/{own['id']}"
    assert world.client.get(f"{path}/_history/1", headers=headers).status_code == 200
    assert world.client.get(f"{path}/_history", headers=headers).status_code == 200


# --- If-None-Exist -------------------------------------------------------------------------


def test_if_none_exist_header_cannot_match_b(world: World) -> None:
    target = world.b_resource("Observation", "ine-header")
    criteria = f"identifier={SYSTEM}|{target['identifier'][0]['value']}"
    body = observation(world.a, world.run, "ine-header")
    response = world.client.post(
        "/fhir/Observation",
        data=json.dumps(body),
        content_type=FHIR_JSON,
        headers={**world.token(), "If-None-Exist": criteria, "Prefer": "return=representation"},
    )
    # Matched only within A's record: nothing there, so a new Observation of A's.
    assert response.status_code == 201, response.json
    assert response.json["id"] != target["id"]
    assert world.b not in response.get_data(as_text=True)
    assert world.unchanged(target)


def test_if_none_exist_in_a_transaction_cannot_match_b(world: World) -> None:
    target = world.b_resource("Observation", "ine-tx")
    criteria = f"identifier={SYSTEM}|{target['identifier'][0]['value']}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": observation(world.a, world.run, "ine-tx"),
                "request": {"method": "POST", "url": "Observation", "ifNoneExist": criteria},
            }
        ],
    }
    response = world.client.post(
        "/fhir",
        data=json.dumps(bundle),
        content_type=FHIR_JSON,
        headers={**world.token(), "Prefer": "return=representation"},
    )
    assert response.status_code == 200, response.json
    answer = response.json["entry"][0]
    assert answer["response"]["status"].startswith("201")
    assert target["id"] not in answer["response"]["location"]
    assert world.b not in response.get_data(as_text=True)


def test_if_none_exist_bound_to_a_still_finds_a_resource_of_a(world: World) -> None:
    own = create(world.base, observation(world.a, world.run, "ine-own"))
    criteria = f"identifier={SYSTEM}|{own['identifier'][0]['value']}"
    response = world.client.post(
        "/fhir/Observation",
        data=json.dumps(observation(world.a, world.run, "ine-own")),
        content_type=FHIR_JSON,
        headers={**world.token(), "If-None-Exist": criteria},
    )
    assert response.status_code == 200  # the existing one, not a duplicate


# --- search binding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "Observation?subject.link=Patient/{a}",
        "Observation?subject:missing=false",
        "Observation?patient:identifier={a}",
        "Observation?subject:Patient.name=Alpha{run}",
        "Patient?_id:not={a}",
        "Patient?_id:missing=false",
        "Observation?_has:Observation:patient:subject=Patient/{a}",
        "Observation?patient:not={a}",
    ],
)
def test_modifiers_and_chains_do_not_bind_a_search(world: World, query: str) -> None:
    world.b_resource("Observation", "search-binding")
    path = query.format(a=world.a, run=world.run)
    response = world.client.get(f"/fhir/{path}", headers=world.token())
    assert refused(response), response.json
    assert world.b not in response.get_data(as_text=True)


# --- conditional creates no parameter binds ------------------------------------------------


def _upload(world: World, patient: str, key: str) -> dict[str, Any]:
    """A photo upload as the app writes it: Binary, Media and their Provenance, each
    conditional on a tag or identifier that names no patient."""
    tag = {"system": SYSTEM, "code": f"{key}-{world.run}"}
    media_id = {"system": SYSTEM, "value": f"{key}-media-{world.run}"}
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0c7b7b5e-0000-4000-8000-00000000000b",
                "resource": {
                    "resourceType": "Binary",
                    "meta": {"tag": [tag]},
                    "contentType": "image/jpeg",
                    "securityContext": {"reference": f"Patient/{patient}"},
                    "data": "/9j/",
                },
                "request": {
                    "method": "POST",
                    "url": "Binary",
                    "ifNoneExist": f"_tag={SYSTEM}|{tag['code']}",
                },
            },
            {
                "fullUrl": "urn:uuid:0c7b7b5e-0000-4000-8000-00000000000c",
                "resource": {
                    "resourceType": "Media",
                    "identifier": [media_id],
                    "status": "completed",
                    "subject": {"reference": f"Patient/{patient}"},
                    "content": {"url": "urn:uuid:0c7b7b5e-0000-4000-8000-00000000000b"},
                },
                "request": {
                    "method": "POST",
                    "url": "Media",
                    "ifNoneExist": f"identifier={SYSTEM}|{media_id['value']}",
                },
            },
            {
                "fullUrl": "urn:uuid:0c7b7b5e-0000-4000-8000-00000000000d",
                "resource": {
                    "resourceType": "Provenance",
                    "meta": {"tag": [{**tag, "code": f"{tag['code']}-prov"}]},
                    "target": [
                        {"reference": "urn:uuid:0c7b7b5e-0000-4000-8000-00000000000b"},
                        {"reference": "urn:uuid:0c7b7b5e-0000-4000-8000-00000000000c"},
                    ],
                    "recorded": "2026-12-04T10:00:00Z",
                    "agent": [{"who": {"display": "sandbox test"}}],
                },
                "request": {
                    "method": "POST",
                    "url": "Provenance",
                    "ifNoneExist": f"_tag={SYSTEM}|{tag['code']}-prov",
                },
            },
        ],
    }


def test_an_upload_like_the_apps_is_written_once_and_replayed_unchanged(world: World) -> None:
    headers = world.token()
    body = json.dumps(_upload(world, world.a, "upload"))
    first = world.client.post("/fhir", data=body, content_type=FHIR_JSON, headers=headers)
    assert first.status_code == 200, first.json
    assert [e["response"]["status"][:3] for e in first.json["entry"]] == ["201"] * 3
    again = world.client.post("/fhir", data=body, content_type=FHIR_JSON, headers=headers)
    assert again.status_code == 200, again.json
    assert [e["response"]["status"][:3] for e in again.json["entry"]] == ["200"] * 3


def test_binary_if_none_exist_matching_bs_photo_is_refused(world: World) -> None:
    # B's upload, written upstream; then A's token sends the same criteria.
    theirs = requests.post(
        world.base,
        json=_upload(world, world.b, "their-upload"),
        headers={"Content-Type": FHIR_JSON},
        timeout=30,
    )
    theirs.raise_for_status()
    mine = _upload(world, world.a, "their-upload")
    mine["entry"] = mine["entry"][:1]
    response = world.client.post(
        "/fhir", data=json.dumps(mine), content_type=FHIR_JSON, headers=world.token()
    )
    assert refused(response), response.json
    assert "location" not in response.get_data(as_text=True)
