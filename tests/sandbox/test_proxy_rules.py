"""The proxy's rules one by one: paths, PATCH bodies, bound criteria, answer filtering, 502s."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from smart_app.sandbox.decisions import FhirRequest, bind_criteria, decide
from smart_app.sandbox.patches import patch_refusal
from smart_app.sandbox.paths import raw_path_ok, request_segments, split_path
from smart_app.sandbox.responses import filter_text
from smart_app.sandbox.scopes import parse_resource_scope
from smart_app.sandbox.upstream import UpstreamError, search
from tests.sandbox.conftest import PATIENT, REDIRECT, make_sandbox

pytestmark = pytest.mark.unit

P = "pat-1"
OTHER = "pat-2"


# --- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("Patient/1", ["Patient", "1"]),
        ("Patient/1/", ["Patient", "1"]),
        ("Observation/o-1.2/_history/3", ["Observation", "o-1.2", "_history", "3"]),
        ("Patient/1/$everything", ["Patient", "1", "$everything"]),
        ("Observation/_search", ["Observation", "_search"]),
        ("", []),
    ],
)
def test_plain_paths(path: str, segments: list[str]) -> None:
    assert split_path(path) == segments


@pytest.mark.parametrize(
    "path",
    [
        "Patient/1/_history/../../../Patient/2",
        "Patient/./1",
        "Patient/...",
        "Patient//1",
        "Patient/1\\..\\2",
        "Patient/1;x",
        "Patient/" + "a" * 65,
        "Patient/1/$Everything",
    ],
)
def test_paths_refused(path: str) -> None:
    assert split_path(path) is None


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        ("/fhir/Patient/1", True),
        ("/fhir/Patient/1/%24everything", True),
        ("/fhir/Patient/1/%2E%2E/2", False),
        ("/fhir/Patient/1%2f..%2f2", False),
        ("/fhir/Patient/1%5C2", False),
        ("/fhir/Patient/%31", False),
    ],
)
def test_raw_paths(raw: str, ok: bool) -> None:
    assert raw_path_ok(raw) is ok


def test_request_segments_reads_the_raw_target_and_ignores_its_query() -> None:
    assert request_segments("/fhir/Patient/1?name=a%2Fb", "Patient/1") == ["Patient", "1"]
    assert request_segments("/fhir/Patient/1%2F..%2F2", "Patient/1/../2") is None
    assert request_segments(None, "Patient/1") == ["Patient", "1"]


# --- PATCH ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rtype", "body"),
    [
        ("Observation", [{"op": "replace", "path": "/subject", "value": {}}]),
        ("Observation", [{"op": "replace", "path": "/subject/reference", "value": "x"}]),
        ("Observation", [{"op": "remove", "path": "/subject"}]),
        ("Observation", [{"op": "move", "from": "/subject", "path": "/focus"}]),
        ("Observation", [{"op": "copy", "from": "/focus", "path": "/subject"}]),
        ("Observation", [{"op": "replace", "path": "", "value": {}}]),
        ("Observation", [{"op": "replace", "path": "/id", "value": "x"}]),
        ("Observation", [{"op": "add", "path": "/resourceType", "value": "Patient"}]),
        ("Observation", [{"op": "frob", "path": "/status"}]),
        ("Consent", [{"op": "replace", "path": "/patient", "value": {}}]),
        ("Task", [{"op": "replace", "path": "/for", "value": {}}]),
        ("Provenance", [{"op": "add", "path": "/target/-", "value": {}}]),
        ("AuditEvent", [{"op": "add", "path": "/entity/0/what", "value": {}}]),
        ("Observation", {"resourceType": "Observation"}),
        ("Observation", "not a patch"),
    ],
)
def test_patches_touching_the_owner_are_refused(rtype: str, body: Any) -> None:
    assert patch_refusal(rtype, body)


def fhirpath(*operations: dict[str, Any]) -> dict[str, Any]:
    def part(name: str, value: Any) -> dict[str, Any]:
        return {"name": name, "valueString" if name in ("path", "name") else "valueCode": value}

    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "operation", "part": [part(k, v) for k, v in op.items()]} for op in operations
        ],
    }


@pytest.mark.parametrize(
    "body",
    [
        fhirpath({"type": "replace", "path": "Observation.subject"}),
        fhirpath({"type": "delete", "path": "Observation.subject.reference"}),
        fhirpath({"type": "add", "path": "Observation", "name": "subject"}),
        fhirpath({"type": "replace", "path": "Observation"}),
        fhirpath({"type": "replace", "path": "Observation.where(true).subject"}),
        fhirpath({"type": "replace", "path": "Observation.descendants()"}),
        fhirpath({"type": "replace", "path": "Condition.status"}),
        fhirpath({"type": "frob", "path": "Observation.status"}),
    ],
)
def test_fhirpath_patches_touching_the_owner_are_refused(body: Any) -> None:
    assert patch_refusal("Observation", body)


@pytest.mark.parametrize(
    "body",
    [
        [{"op": "replace", "path": "/status", "value": "amended"}],
        [{"op": "add", "path": "/note/-", "value": {"text": "x"}}],
        fhirpath({"type": "replace", "path": "Observation.status"}),
        fhirpath({"type": "add", "path": "Observation", "name": "note"}),
        fhirpath({"type": "delete", "path": "Observation.note[0]"}),
    ],
)
def test_patches_of_other_elements_pass(body: Any) -> None:
    assert patch_refusal("Observation", body) is None


# --- bound criteria and conditional writes -------------------------------------------------


@pytest.mark.parametrize(
    ("rtype", "criteria", "bound"),
    [
        ("Observation", "identifier=s|v", "identifier=s|v&patient=Patient%2Fpat-1"),
        ("Observation", f"identifier=s|v&patient={P}", f"identifier=s|v&patient={P}"),
        ("Consent", "_tag=s|k", "_tag=s|k&patient=Patient%2Fpat-1"),
        ("Patient", "identifier=s|v", "identifier=s|v&_id=pat-1"),
        ("Observation", "patient:not=x", "patient:not=x&patient=Patient%2Fpat-1"),
        ("Binary", "_tag=s|k", None),
    ],
)
def test_if_none_exist_is_bound_to_the_patient(rtype: str, criteria: str, bound: Any) -> None:
    assert bind_criteria(rtype, criteria, P) == bound


def bundle(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def obs(patient: str = P) -> dict[str, Any]:
    return {"resourceType": "Observation", "subject": {"reference": f"Patient/{patient}"}}


def test_transaction_if_none_exist_rewritten_and_binary_checked() -> None:
    body = bundle(
        {
            "fullUrl": "urn:uuid:b",
            "resource": {"resourceType": "Binary", "securityContext": {"reference": "Patient/x"}},
            "request": {"method": "POST", "url": "Binary", "ifNoneExist": "_tag=s|b"},
        },
        {
            "resource": obs(),
            "request": {"method": "POST", "url": "Observation", "ifNoneExist": "identifier=s|1"},
        },
    )
    body["entry"][0]["resource"]["securityContext"]["reference"] = f"Patient/{P}"
    decision = decide(FhirRequest("POST", "", {}, body), ["patient/*.c"], P)
    assert decision.allowed, decision.reason
    assert decision.entry_if_none_exist == ((1, "identifier=s|1&patient=Patient%2Fpat-1"),)
    assert decision.criteria_checks == ("Binary?_tag=s|b",)
    # under user scopes nothing is narrowed
    decision = decide(FhirRequest("POST", "", {}, body), ["user/*.c"], P)
    assert decision.allowed and not decision.entry_if_none_exist


@pytest.mark.parametrize(
    "url",
    [
        "Condition?_id=c9",
        "Condition?subject:missing=false",
        "Condition?subject.link=Patient/" + P,
    ],
)
def test_transaction_conditional_update_must_be_bound(url: str) -> None:
    entry = {"resource": {**obs(), "resourceType": "Condition"}, "request": {"method": "PUT"}}
    entry["request"]["url"] = url
    decision = decide(FhirRequest("POST", "", {}, bundle(entry)), ["patient/*.cruds"], P)
    assert not decision.allowed
    assert "Bundle entry 0" in decision.reason


@pytest.mark.parametrize(
    "url",
    [
        "Patient/pat-1/_history/../../../Patient/pat-2",
        "Patient/pat-1/%2E%2E/pat-2",
        "http://elsewhere/fhir/Patient/pat-1",
        "Observation/o1?_cascade=delete",
    ],
)
def test_transaction_entry_urls_are_checked_like_paths(url: str) -> None:
    entry = {"request": {"method": "GET" if "cascade" not in url else "DELETE", "url": url}}
    decision = decide(FhirRequest("POST", "", {}, bundle(entry)), ["patient/*.cruds"], P)
    assert not decision.allowed


def test_json_patch_in_a_transaction_is_refused_for_a_patient_token() -> None:
    entry = {
        "resource": {"resourceType": "Binary", "contentType": "application/json-patch+json"},
        "request": {"method": "PATCH", "url": "Observation/o1"},
    }
    body = bundle(entry)
    assert not decide(FhirRequest("POST", "", {}, body), ["patient/*.cruds"], P).allowed
    assert decide(FhirRequest("POST", "", {}, body), ["user/*.cruds"], P).allowed


def test_provenance_of_the_patients_new_media_is_the_patients() -> None:
    media = {"resourceType": "Media", "subject": {"reference": f"Patient/{P}"}}
    other = {"resourceType": "Media", "subject": {"reference": f"Patient/{OTHER}"}}
    for target, allowed in ((media, True), (other, False)):
        body = bundle(
            {
                "fullUrl": "urn:uuid:m",
                "resource": target,
                "request": {"method": "POST", "url": "Media"},
            },
            {
                "resource": {"resourceType": "Provenance", "target": [{"reference": "urn:uuid:m"}]},
                "request": {"method": "POST", "url": "Provenance"},
            },
        )
        scopes = ["patient/Media.c", "patient/Provenance.c"]
        assert decide(FhirRequest("POST", "", {}, body), scopes, P).allowed is allowed


def test_reads_by_version_are_checked_on_that_version() -> None:
    decision = decide(FhirRequest("GET", "Observation/o1/_history/2"), ["patient/*.rs"], P)
    assert decision.owner_checks == ("Observation/o1/_history/2",)
    assert decision.absent_ok == ()
    decision = decide(FhirRequest("DELETE", "Observation/o1"), ["patient/*.d"], P)
    assert decision.absent_ok == ("Observation/o1",)


# --- answers -------------------------------------------------------------------------------


def scopes(*texts: str) -> list[Any]:
    return [parse_resource_scope(t) for t in texts]


def entry(resource: dict[str, Any], mode: str = "match") -> dict[str, Any]:
    return {"resource": resource, "search": {"mode": mode}}


def test_everything_keeps_only_granted_types_of_the_patients_record() -> None:
    answer = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            entry({"resourceType": "Patient", "id": P}),
            entry(obs()),
            entry({"resourceType": "Patient", "id": OTHER}),
            entry({"resourceType": "Practitioner", "id": "d1"}),
        ],
    }
    text = filter_text(json.dumps(answer), P, scopes("patient/Patient.r"))
    kept = [e["resource"]["resourceType"] for e in json.loads(text)["entry"]]
    assert kept == ["Patient", "OperationOutcome"]
    text = filter_text(json.dumps(answer), P, scopes("patient/*.rs", "user/Practitioner.r"))
    kept = [e["resource"].get("id") for e in json.loads(text)["entry"]]
    assert kept == [P, None, "d1", None]


def test_batch_answers_keep_their_entries_but_lose_what_is_not_visible() -> None:
    nested = {"resourceType": "Bundle", "type": "searchset", "entry": [entry(obs(OTHER))]}
    answer = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"resource": nested, "response": {"status": "200 OK"}},
            {"resource": obs(OTHER), "response": {"status": "200 OK"}},
            {"resource": obs(), "response": {"status": "200 OK"}},
        ],
    }
    got = json.loads(filter_text(json.dumps(answer), P, scopes("patient/*.rs")))
    assert len(got["entry"]) == 3
    assert [e["resource"]["resourceType"] for e in got["entry"][0]["resource"]["entry"]] == [
        "OperationOutcome"
    ]
    assert "resource" not in got["entry"][1]
    assert got["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert got["entry"][2]["resource"] == obs()


def test_history_keeps_deleted_versions_and_the_patients_ones() -> None:
    answer = {
        "resourceType": "Bundle",
        "type": "history",
        "entry": [{"request": {"method": "DELETE"}}, {"resource": obs()}],
    }
    text = json.dumps(answer)
    assert filter_text(text, P, scopes("patient/*.rs")) == text


# --- 502 -----------------------------------------------------------------------------------


@pytest.fixture
def app(rsa_key: Any, ec_key: Any) -> Any:
    return make_sandbox(rsa_key, ec_key, "http://127.0.0.1:9/secret-upstream/fhir")


def test_upstream_failure_names_nothing_about_the_upstream(
    client: Any, get_code: Any, token_request: Any, caplog: pytest.LogCaptureFixture
) -> None:
    code, verifier = get_code(scope="launch patient/*.cruds")
    token = token_request(
        grant_type="authorization_code", code=code, code_verifier=verifier, redirect_uri=REDIRECT
    ).json
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    caplog.set_level(logging.WARNING)
    for response in (
        client.get(f"/fhir/Patient/{PATIENT}", headers=headers),
        client.get("/fhir/Observation/o1", headers=headers),
        client.get(f"/fhir/Observation?patient={PATIENT}&name=Jane", headers=headers),
    ):
        assert response.status_code == 502
        assert response.json["resourceType"] == "OperationOutcome"
        text = response.get_data(as_text=True)
        assert "127.0.0.1" not in text and "secret-upstream" not in text
    logged = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("smart_app"))
    assert "sandbox proxy" in logged
    assert "secret-upstream" not in logged and "Jane" not in logged


def test_upstream_search_errors_name_nothing_about_the_upstream(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/fhir/Patient").respond_with_data("no", status=500)
    with pytest.raises(UpstreamError) as raised:
        search(httpserver.url_for("/fhir"), "Patient", name="Jane Doe")
    assert str(httpserver.port) not in str(raised.value) and "Jane" not in str(raised.value)
    logged = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("smart_app"))
    assert "Patient search failed" in logged
    assert "Jane" not in logged and str(httpserver.port) not in logged
