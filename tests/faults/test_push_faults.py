"""A push to a misbehaving physician's server (pytest-httpserver as the target): 429 with
Retry-After and 503 are retried by the client layer (every write of a push is a conditional
create), a conflict or a refusal or a malformed answer is a PushError naming the target, a
server that cannot take what is sent is refused before anything of the record is read, and
every attempt is audited on our own server (failed ones as failed disclosures)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from symfhir.errors import ConsentMissing, PushError
from symfhir.sharing.push import PushTarget, push_share
from symfhir.smart.assertion import ClientKey
from symfhir.workspace.actor import Actor
from tests.faults.conftest import RETRIES, Script
from tests.unit.fake_fhir import Trail
from tests.unit.sharing_fake import (
    PID,
    ShareFhir,
    clinical,
    consent,
    media,
    patient,
    practitioner,
    practitioner_role,
)

pytestmark = pytest.mark.faults

FHIR_JSON = "application/fhir+json"
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))
ACTOR = Actor("Practitioner/nurse1")
TUNING = {
    "connect_timeout": 1.0,
    "read_timeout": 2.0,
    "retries": RETRIES,
    "backoff_factor": 0.001,
    "backoff_max": 0.01,
    "max_retry_after": 5.0,
}
EVERY = ["create", "read", "search-type"]


def statement(types: dict[str, list[str]] | None = None, system: tuple[str, ...] = ()) -> dict:
    if types is None:
        kinds = ["Patient", "Observation", "AllergyIntolerance", "Condition", "Procedure"]
        kinds += ["MedicationStatement", "QuestionnaireResponse", "Media", "Binary"]
        kinds += ["Provenance", "Bundle", "Organization", "Consent"]
        types = {t: EVERY for t in kinds}
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {"type": t, "interaction": [{"code": c} for c in codes]}
                    for t, codes in types.items()
                ],
                "interaction": [{"code": c} for c in system],
            }
        ],
    }


def fhir(resource: dict, status: int = 200, **headers: str) -> Response:
    return Response(json.dumps(resource), status=status, content_type=FHIR_JSON, headers=headers)


def outcome(text: str) -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "conflict", "diagnostics": text}],
    }


def created_bundle(request: Request) -> Response:
    return fhir(
        {"resourceType": "Bundle", "id": "b1"}, 201, Location=f"{request.url}/b1/_history/1"
    )


def transaction_answer(request: Request) -> Response:
    sent = json.loads(request.get_data())
    entries = [
        {
            "response": {
                "status": "201 Created",
                "location": f"{e['request']['url']}/t{i}/_history/1",
            }
        }
        for i, e in enumerate(sent["entry"])
    ]
    return fhir({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})


def ours(*, withdrawn: bool = False, photos: bool = False) -> ShareFhir:
    """Our own server: a client with an active physician-sharing consent (or a withdrawn one)
    and a few records."""
    scopes = ("summary", "intake", "photos") if photos else ("summary", "intake")
    status = "inactive" if withdrawn else "active"
    records: list[dict[str, Any]] = [
        patient(),
        practitioner(),
        practitioner_role(),
        consent("c1", scopes=scopes, status=status),
        clinical("AllergyIntolerance", "a1", code={"text": "latex"}),
        clinical(
            "Observation",
            "o1",
            status="final",
            code={"text": "weight"},
            effectiveDateTime="2026-05-01",
        ),
    ]
    if photos:
        records += [consent("c2", kind="photos_clinical"), media("m1")]
    return ShareFhir(records)


def watch(fhir: ShareFhir) -> list[str]:
    """The resource types (and read paths) ``fhir`` is asked for outside batches."""
    asked: list[str] = []
    for name in ("search", "search_bundles", "read", "everything"):
        method = getattr(fhir, name, None)
        if method is None:
            continue

        def wrapped(*args: Any, _method: Any = method, **kw: Any) -> Any:
            asked.append("/".join(str(a) for a in args if isinstance(a, str)))
            return _method(*args, **kw)

        setattr(fhir, name, wrapped)
    return asked


def target(server: HTTPServer, **kw: Any) -> PushTarget:
    return PushTarget(server.url_for("/fhir"), tuning=TUNING, **kw)


def serve(
    server: HTTPServer,
    script: Callable[..., Script],
    post: Script,
    *,
    caps: dict | None = None,
    path: str = "/fhir/Bundle",
) -> Script:
    metadata = script(fhir(caps or statement(system=("transaction",))))
    server.expect_request("/fhir/metadata").respond_with_handler(metadata)
    server.expect_request(path, method="POST").respond_with_handler(post)
    return metadata


def push(server: HTTPServer, fhir_ours: ShareFhir, trail: Trail, mode: str, **kw: Any) -> Any:
    return push_share(
        fhir_ours,
        ACTOR,
        PID,
        target=kw.pop("to", None) or target(server),
        scopes=kw.pop("scopes", ("summary", "intake")),
        mode=mode,
        now=NOW,
        audit=trail,
    )


def test_a_429_with_retry_after_is_waited_for_and_the_document_lands_once(
    httpserver: HTTPServer, script: Callable[..., Script]
) -> None:
    post = script(
        fhir(outcome("slow down"), 429, **{"Retry-After": "1"}),
        created_bundle,
    )
    serve(httpserver, script, post)
    trail = Trail()
    began = time.monotonic()
    report = push(httpserver, ours(), trail, "document")
    assert time.monotonic() - began >= 0.9  # Retry-After was honoured
    assert post.count == 2
    assert post.bodies[0] == post.bodies[1]  # the same document, sent again
    # The retry was allowed because the create is conditional on the document's identifier.
    assert post.requests[1].headers["If-None-Exist"].startswith("identifier=")
    assert report.ids == {"Bundle": "Bundle/b1"}
    sent = json.loads(post.bodies[1])
    assert sent["type"] == "document"
    assert report.sent == dict(Counter(e["resource"]["resourceType"] for e in sent["entry"]))
    (disclosure,) = [d for d in trail.disclosures if d is not None]
    assert disclosure.purpose == "TREAT"
    assert disclosure.recipient_reference == "Practitioner/doc1"
    assert trail.events[-1][1] is True


def test_a_503_transaction_is_retried_because_every_entry_is_conditional(
    httpserver: HTTPServer, script: Callable[..., Script]
) -> None:
    post = script(
        Response("down for maintenance", status=503, content_type="text/plain"),
        transaction_answer,
    )
    serve(httpserver, script, post, path="/fhir")
    trail = Trail()
    report = push(httpserver, ours(), trail, "transaction")
    assert post.count == 2
    sent = json.loads(post.bodies[1])
    assert all(e["request"].get("ifNoneExist") for e in sent["entry"])
    assert report.sent["AllergyIntolerance"] == 1
    assert report.sent["Observation"] == 1
    assert "Provenance" not in report.sent
    assert report.ids["Observation/o1"].startswith("Observation/")


@pytest.mark.parametrize("status", [409, 412])
def test_a_conflict_is_a_push_error_and_a_failed_disclosure(
    httpserver: HTTPServer, script: Callable[..., Script], status: int
) -> None:
    post = script(fhir(outcome("Avery Quillfeather already exists"), status))
    serve(httpserver, script, post)
    trail = Trail()
    with pytest.raises(PushError) as caught:
        push(httpserver, ours(), trail, "document")
    message = str(caught.value)
    assert "127.0.0.1" in message and str(status) in message
    assert "Avery" not in message  # the server's words may echo the record: never shown
    assert post.count == 1  # a conflict is final
    _, success, description, _ = trail.events[-1]
    assert success is False and "failed" in (description or "")
    assert trail.disclosures[-1] is not None  # it may have landed: accounted as a disclosure


def test_a_refused_transaction_names_nothing_of_the_record(
    httpserver: HTTPServer, script: Callable[..., Script]
) -> None:
    refusal = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "Observation.code: 'weight' for Avery is not allowed",
            }
        ],
    }
    post = script(fhir(refusal, 422))
    serve(httpserver, script, post, path="/fhir")
    trail = Trail()
    with pytest.raises(PushError) as caught:
        push(httpserver, ours(), trail, "transaction")
    assert "422" in str(caught.value)
    assert "Avery" not in str(caught.value) and "weight" not in str(caught.value)
    assert "Avery" not in (trail.events[-1][2] or "")


@pytest.mark.parametrize(
    "answer",
    [
        Response("{not json", status=201, content_type=FHIR_JSON),
        Response("<html>ok</html>", status=200, content_type="text/html"),
        Response(json.dumps({"resourceType": "Bundle"}), status=200, content_type=FHIR_JSON),
    ],
)
def test_a_malformed_answer_is_a_push_error(
    httpserver: HTTPServer, script: Callable[..., Script], answer: Response
) -> None:
    post = script(answer)
    serve(httpserver, script, post, path="/fhir")
    trail = Trail()
    with pytest.raises(PushError):
        push(httpserver, ours(), trail, "transaction")
    assert trail.events[-1][1] is False


@pytest.mark.parametrize(
    ("mode", "caps", "reason"),
    [
        ("document", statement({"Patient": EVERY}, ("transaction",)), "cannot create Bundle"),
        ("transaction", statement(), "does not support transaction"),
        ("transaction", statement({"Patient": EVERY}, ("transaction",)), "cannot create"),
    ],
)
def test_a_target_that_cannot_take_it_is_refused_before_the_record_is_read(
    httpserver: HTTPServer,
    script: Callable[..., Script],
    mode: str,
    caps: dict,
    reason: str,
) -> None:
    post = script(created_bundle)
    serve(
        httpserver, script, post, caps=caps, path="/fhir/Bundle" if mode == "document" else "/fhir"
    )
    mine = ours()
    asked = watch(mine)
    trail = Trail()
    with pytest.raises(PushError, match=reason):
        push(httpserver, mine, trail, mode)
    assert post.count == 0
    # The consent was read (the gate comes first); nothing of the client's record was.
    asked += [e["request"]["url"] for b in mine.batches for e in b["entry"]]
    assert asked and not [u for u in asked if u.startswith(("AllergyIntolerance", "Observation"))]
    assert trail.disclosures[-1] is None  # nothing left: a refused push, not a disclosure
    assert trail.events[-1][1] is False


def test_a_type_the_target_cannot_create_is_refused_before_anything_is_sent(
    httpserver: HTTPServer, script: Callable[..., Script]
) -> None:
    post = script(transaction_answer)
    caps = statement({"Patient": EVERY, "Provenance": EVERY}, ("transaction",))
    serve(httpserver, script, post, caps=caps, path="/fhir")
    trail = Trail()
    with pytest.raises(PushError, match="cannot create AllergyIntolerance"):
        push(httpserver, ours(), trail, "transaction")
    assert post.count == 0
    assert trail.events[-1][1] is False and trail.disclosures[-1] is None


def test_a_withdrawn_consent_pushes_nothing_not_even_a_capability_read(
    httpserver: HTTPServer, script: Callable[..., Script]
) -> None:
    post = script(created_bundle)
    metadata = serve(httpserver, script, post)
    trail = Trail()
    with pytest.raises(ConsentMissing):
        push(httpserver, ours(withdrawn=True), trail, "document")
    assert metadata.count == 0 and post.count == 0
    assert trail.events[-1][1] is False and trail.disclosures[-1] is None


def test_a_scope_the_consent_does_not_cover_pushes_nothing(
    httpserver: HTTPServer, script: Callable[..., Script]
) -> None:
    post = script(transaction_answer)
    serve(httpserver, script, post, path="/fhir")
    with pytest.raises(ConsentMissing):
        push(httpserver, ours(), Trail(), "transaction", scopes=("summary", "treatments"))
    assert post.count == 0


def test_the_bearer_token_is_sent_and_never_in_the_report(
    httpserver: HTTPServer, script: Callable[..., Script]
) -> None:
    post = script(created_bundle)
    serve(httpserver, script, post)
    trail = Trail()
    report = push(
        httpserver, ours(), trail, "document", to=target(httpserver, bearer_token="tok-123")
    )
    assert post.requests[0].headers["Authorization"] == "Bearer tok-123"
    assert "tok-123" not in repr(report) + " ".join(report.lines())
    assert "tok-123" not in repr(target(httpserver, bearer_token="tok-123"))


def test_backend_services_signs_in_at_the_discovered_token_endpoint(
    httpserver: HTTPServer, script: Callable[..., Script], tmp_path: Any
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(pem)
    token = script(
        fhir({"access_token": "system-token", "token_type": "bearer", "expires_in": 300})
    )
    config = {"token_endpoint": httpserver.url_for("/token")}
    httpserver.expect_request("/fhir/.well-known/smart-configuration").respond_with_json(config)
    httpserver.expect_request("/token", method="POST").respond_with_handler(token)
    post = script(created_bundle)
    serve(httpserver, script, post)
    to = target(httpserver, client_id="physician-push", private_key_path=key_file)
    push(httpserver, ours(), Trail(), "document", to=to)
    form = token.requests[0].form
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "system/Bundle.cs"
    assert form["client_assertion_type"].endswith("jwt-bearer")
    assert ClientKey.from_pem(pem).kid  # a usable ES384 key
    assert post.requests[0].headers["Authorization"] == "Bearer system-token"
