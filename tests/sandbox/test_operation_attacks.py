"""Instance operations through the sandbox proxy, against the real HAPI: `$expunge` (implies
delete) and `$meta-add`/`$meta-delete` (imply update) go through only for a `user/` or
`system/` scope allowing that interaction on the type, with a Parameters body; every refusal
leaves the resource and its history upstream as they were."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.sandbox.test_proxy_attacks import (
    FHIR_JSON,
    SYSTEM,
    World,
    create,
    observation,
    refused,
    upstream_get,
)
from tests.sandbox.test_proxy_attacks import world as proxy_world  # noqa: F401 - a fixture

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(proxy_world: World) -> World:  # noqa: F811 - the imported fixture, used
    """As the other attack tests': two patients on HAPI and a sandbox in front of it."""
    return proxy_world


EXPUNGE = {
    "resourceType": "Parameters",
    "parameter": [
        {"name": "expungeDeletedResources", "valueBoolean": True},
        {"name": "expungePreviousVersions", "valueBoolean": True},
    ],
}


def _meta(code: str) -> dict[str, Any]:
    tag = {"system": SYSTEM, "code": code}
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": "meta", "valueMeta": {"tag": [tag]}}],
    }


def _deleted(world: World, patient: str, name: str) -> dict[str, Any]:
    """An Observation of ``patient`` deleted upstream: its versions are still stored."""
    made = create(world.base, observation(patient, world.run, name))
    requests.delete(f"{world.base}/Observation/{made['id']}", timeout=30).raise_for_status()
    assert upstream_get(world.base, f"Observation/{made['id']}/_history/1").status_code == 200
    return made


def _post(world: World, path: str, body: Any, scope: str) -> Any:
    headers = {**world.token(scope), "Content-Type": FHIR_JSON}
    return world.client.post(f"/fhir/{path}", json=body, headers=headers)


def _tags(world: World, ref: str) -> set[str]:
    meta = upstream_get(world.base, ref).json().get("meta") or {}
    return {t.get("code") for t in meta.get("tag") or [] if t.get("system") == SYSTEM}


@pytest.mark.parametrize(
    ("scope", "whose"),
    [
        ("launch user/*.rs", "b"),  # reads only
        ("launch user/Observation.rus", "b"),  # update is not delete
        ("launch user/Condition.d", "b"),  # delete, of another type
        ("launch patient/*.cruds", "a"),  # the patient's own: never under patient/ scopes
        ("launch patient/*.cruds", "b"),
    ],
)
def test_expunge_without_delete_on_the_type_is_refused(
    world: World, scope: str, whose: str
) -> None:
    patient = world.a if whose == "a" else world.b
    made = _deleted(world, patient, f"expunge-{whose}-{scope.split('/')[1]}")
    response = _post(world, f"Observation/{made['id']}/$expunge", EXPUNGE, scope)
    assert refused(response), response.json
    # Nothing was erased: the deleted resource's versions are still stored.
    assert upstream_get(world.base, f"Observation/{made['id']}/_history/1").status_code == 200


def test_expunge_with_delete_on_the_type_erases_the_history(world: World) -> None:
    made = _deleted(world, world.b, "expunge-allowed")
    response = _post(
        world, f"Observation/{made['id']}/$expunge", EXPUNGE, "launch user/Observation.d"
    )
    assert response.status_code == 200, response.json
    gone = upstream_get(world.base, f"Observation/{made['id']}/_history/1")
    assert gone.status_code in (404, 410)


@pytest.mark.parametrize(
    "scope",
    [
        "launch user/*.rs",  # reads only
        "launch user/Patient.rd",  # delete is not update
        "launch user/Observation.u",  # update, of another type
        "launch patient/*.cruds",  # the patient's own: never under patient/ scopes
    ],
)
@pytest.mark.parametrize("operation", ["$meta-add", "$meta-delete"])
def test_tag_changes_without_update_on_the_type_are_refused(
    world: World, scope: str, operation: str
) -> None:
    code = f"kept-{world.run}"
    requests.post(
        f"{world.base}/Patient/{world.a}/$meta-add",
        json=_meta(code),
        headers={"Content-Type": FHIR_JSON},
        timeout=30,
    ).raise_for_status()
    response = _post(world, f"Patient/{world.a}/{operation}", _meta(f"new-{world.run}"), scope)
    assert refused(response), response.json
    response = _post(world, f"Patient/{world.a}/$meta-delete", _meta(code), scope)
    assert refused(response), response.json
    assert _tags(world, f"Patient/{world.a}") >= {code}
    assert f"new-{world.run}" not in _tags(world, f"Patient/{world.a}")


def test_tag_changes_with_update_on_the_type_go_through(world: World) -> None:
    code = f"scheduled-{world.run}"
    added = _post(world, f"Patient/{world.b}/$meta-add", _meta(code), "launch user/Patient.u")
    assert added.status_code == 200, added.json
    assert code in _tags(world, f"Patient/{world.b}")
    removed = _post(world, f"Patient/{world.b}/$meta-delete", _meta(code), "launch user/Patient.u")
    assert removed.status_code == 200, removed.json
    assert code not in _tags(world, f"Patient/{world.b}")


@pytest.mark.parametrize(
    "body",
    [
        {"resourceType": "Patient", "meta": {"tag": [{"system": SYSTEM, "code": "x"}]}},
        {"resourceType": "Bundle", "type": "collection", "entry": []},
        ["not", "a", "resource"],
    ],
)
def test_an_operation_body_other_than_parameters_is_refused(world: World, body: Any) -> None:
    before = upstream_get(world.base, f"Patient/{world.b}").json()["meta"]
    response = _post(world, f"Patient/{world.b}/$meta-add", body, "launch user/*.cruds")
    assert refused(response), response.json
    assert upstream_get(world.base, f"Patient/{world.b}").json()["meta"] == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "Observation/$expunge"),  # every Observation's history
        ("POST", "$expunge"),  # the whole server
        ("GET", "Patient/{b}/$meta"),  # an operation the proxy does not know
        ("POST", "Patient/{b}/$validate"),
        ("GET", "Patient/{b}/$expunge"),  # only as POST
    ],
)
def test_other_operations_are_refused_even_to_every_user_scope(
    world: World, method: str, path: str
) -> None:
    headers = {**world.token("launch user/*.cruds"), "Content-Type": FHIR_JSON}
    url = "/fhir/" + path.format(b=world.b)
    response = world.client.open(url, method=method, json=EXPUNGE, headers=headers)
    assert refused(response), response.json
