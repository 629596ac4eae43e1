"""The FHIR client against a misbehaving server: each test injects one fault and checks what
the caller gets, how many requests the server saw (retries), and that no write was repeated."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from werkzeug import Response

from symfhir.errors import (
    FhirAuthError,
    FhirCapabilityError,
    FhirConflictError,
    FhirNotFoundError,
    FhirRequestError,
    FhirResponseError,
    FhirServerError,
    FhirTransportError,
)
from symfhir.fhir import FhirClient, ServerConfig, SmartTokenAuth
from symfhir.fhir.retry import bundle_is_idempotent, is_idempotent
from tests.faults.conftest import READ_TIMEOUT, RETRIES, http_answer

pytestmark = pytest.mark.faults

FHIR_JSON = "application/fhir+json"
PATIENT = {"resourceType": "Patient", "id": "1", "meta": {"versionId": "1"}}


def fhir(resource: dict, status: int = 200, **headers: str) -> Response:
    return Response(json.dumps(resource), status=status, content_type=FHIR_JSON, headers=headers)


def outcome(diagnostics: str, code: str = "processing", expression: str = "") -> dict:
    issue = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def created(resource_type: str, rid: str, status: int = 201) -> Response:
    location = f"http://127.0.0.1/fhir/{resource_type}/{rid}/_history/1"
    return fhir({"resourceType": resource_type, "id": rid}, status, Location=location)


def html(status: int) -> Response:
    page = "<html><body><h1>Bad Gateway</h1><p>nginx saw client Avery 1985-04-12</p></body></html>"
    return Response(page, status=status, content_type="text/html")


def bundle(*entries: dict, kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post_entry(resource_type: str, if_none_exist: str | None = None) -> dict:
    request = {"method": "POST", "url": resource_type}
    if if_none_exist:
        request["ifNoneExist"] = if_none_exist
    return {"resource": {"resourceType": resource_type}, "request": request}


TRANSACTION_RESPONSE = json.dumps(
    bundle(
        {"response": {"status": "201 Created", "location": "Patient/7/_history/1"}},
        {"response": {"status": "200 OK", "location": "Consent/8/_history/1"}},
        kind="transaction-response",
    )
).encode()


# -- which requests may be retried ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "body", "expected"),
    [
        ("GET", None, None, True),
        ("PUT", None, None, True),
        ("DELETE", None, None, True),
        ("POST", None, {"resourceType": "Patient"}, False),
        ("POST", {"If-None-Exist": "identifier=s|1"}, {"resourceType": "Patient"}, True),
        ("PATCH", None, None, False),
        ("POST", None, bundle(post_entry("Patient", "identifier=s|1")), True),
        (
            "POST",
            None,
            bundle(post_entry("Patient", "identifier=s|1"), post_entry("Consent")),
            False,
        ),
        (
            "POST",
            None,
            bundle(
                post_entry("Patient", "identifier=s|1"),
                {"request": {"method": "PUT", "url": "Patient/1"}},
                {"request": {"method": "DELETE", "url": "Consent/2"}},
                {"request": {"method": "GET", "url": "Patient/1"}},
                kind="batch",
            ),
            True,
        ),
        ("POST", None, bundle({"request": {"method": "PATCH", "url": "Patient/1"}}), False),
        ("POST", None, {**bundle(post_entry("Patient", "x=1")), "type": "collection"}, False),
    ],
)
def test_which_requests_count_as_idempotent(method, headers, body, expected):
    assert is_idempotent(method, headers, body) is expected


def test_bundle_is_idempotent_needs_every_post_conditional():
    assert bundle_is_idempotent(bundle())
    assert not bundle_is_idempotent(bundle(post_entry("Patient")))
    assert not bundle_is_idempotent({"resourceType": "Patient"})


# -- rate limits and server errors ----------------------------------------------------------


def test_429_with_retry_after_waits_then_succeeds(httpserver, client, script):
    handler = script(
        fhir(outcome("slow down"), 429, **{"Retry-After": "1"}),
        fhir(PATIENT),
    )
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(handler)
    started = time.monotonic()
    assert client.read("Patient", "1")["id"] == "1"
    assert time.monotonic() - started >= 0.95
    assert handler.count == 2


def test_retry_after_longer_than_the_limit_fails_at_once(httpserver, client, script):
    handler = script(fhir(outcome("maintenance"), 503, **{"Retry-After": "600"}))
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(handler)
    started = time.monotonic()
    with pytest.raises(FhirTransportError) as caught:
        client.read("Patient", "1")
    assert time.monotonic() - started < 1
    assert handler.count == 1
    assert caught.value.status == 503
    assert "asked to wait 600 s" in str(caught.value)


def test_503_burst_is_retried_until_success(httpserver, client, script):
    handler = script(*[fhir(outcome("busy"), 503)] * RETRIES, fhir(PATIENT))
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(handler)
    assert client.read("Patient", "1")["id"] == "1"
    assert handler.count == RETRIES + 1


def test_503_that_never_ends_gives_up_after_the_retries(httpserver, client, script):
    handler = script(fhir(outcome("busy"), 503))
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(handler)
    with pytest.raises(FhirTransportError) as caught:
        client.read("Patient", "1")
    assert handler.count == RETRIES + 1
    assert caught.value.status == 503
    assert f"gave up after {RETRIES} retries: last answer HTTP 503" in str(caught.value)


def test_503_on_a_plain_create_is_not_retried(httpserver, client, script):
    handler = script(fhir(outcome("busy"), 503), created("Patient", "1"))
    httpserver.expect_request("/fhir/Patient", method="POST").respond_with_handler(handler)
    with pytest.raises(FhirTransportError) as caught:
        client.create({"resourceType": "Patient"})
    assert handler.count == 1
    assert "not retried: the request is not idempotent" in str(caught.value)


def test_503_on_a_conditional_create_is_retried(httpserver, client, script):
    handler = script(fhir(outcome("busy"), 503), created("Patient", "1"))
    httpserver.expect_request("/fhir/Patient", method="POST").respond_with_handler(handler)
    written = client.create({"resourceType": "Patient"}, if_none_exist="identifier=s|1")
    assert (written.id, written.status) == ("1", "created")
    assert handler.count == 2
    assert all(r.headers["If-None-Exist"] == "identifier=s|1" for r in handler.requests)


# -- timeouts, refused and reset connections ------------------------------------------------


def test_read_timeout_on_a_read_is_retried_then_reported(httpserver, client, script):
    handler = script()
    handler.answers.append(handler.slow(5, fhir(PATIENT)))
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(handler)
    with pytest.raises(FhirTransportError) as caught:
        client.read("Patient", "1")
    assert handler.count == RETRIES + 1
    assert caught.value.status is None
    assert str(caught.value) == (
        f"read Patient/1: gave up after {RETRIES} retries: read timed out after {READ_TIMEOUT:g} s"
    )


def test_read_timeout_on_a_plain_create_is_not_retried(httpserver, client, script):
    handler = script()
    handler.answers.append(handler.slow(5, created("Patient", "1")))
    httpserver.expect_request("/fhir/Patient", method="POST").respond_with_handler(handler)
    with pytest.raises(FhirTransportError) as caught:
        client.create({"resourceType": "Patient"})
    time.sleep(READ_TIMEOUT)  # a retry would have arrived by now
    assert handler.count == 1
    assert str(caught.value) == (
        f"create Patient: read timed out after {READ_TIMEOUT:g} s"
        " (not retried: the request is not idempotent)"
    )


def test_read_timeout_on_a_conditional_create_is_retried(httpserver, client, script):
    handler = script()
    handler.answers += [handler.slow(5, created("Patient", "1")), created("Patient", "1", 200)]
    httpserver.expect_request("/fhir/Patient", method="POST").respond_with_handler(handler)
    written = client.create({"resourceType": "Patient"}, if_none_exist="identifier=s|1")
    # The first attempt may have been stored: the retry's condition matched it.
    assert written.status == "unchanged"
    assert handler.count == 2


def test_connection_refused_is_a_transport_error(config):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nobody listens there
    refused = ServerConfig(**{**config.__dict__, "base_url": f"http://127.0.0.1:{port}/fhir"})
    with FhirClient(refused) as client, pytest.raises(FhirTransportError) as caught:
        client.read("Patient", "1")
    assert str(caught.value) == (
        f"read Patient/1: gave up after {RETRIES} retries: connection refused"
    )
    assert caught.value.status is None


def test_reset_during_an_all_conditional_transaction_is_retried(raw_server):
    entries = (post_entry("Patient", "identifier=s|1"), post_entry("Consent", "identifier=s|2"))
    with raw_server(["reset", http_answer("200 OK", TRANSACTION_RESPONSE)]) as server:
        config = ServerConfig(base_url=server.url, retries=RETRIES, backoff_factor=0.001)
        with FhirClient(config) as client:
            answer = client.transaction(bundle(*entries))
    assert answer["type"] == "transaction-response"
    assert len(server.requests) == 2
    assert server.requests[0] == server.requests[1]  # the same bundle, sent again whole


def test_reset_during_a_transaction_with_a_plain_post_is_not_retried(raw_server):
    entries = (post_entry("Patient", "identifier=s|1"), post_entry("Consent"))
    with raw_server(["reset", http_answer("200 OK", TRANSACTION_RESPONSE)]) as server:
        config = ServerConfig(base_url=server.url, retries=RETRIES, backoff_factor=0.001)
        with FhirClient(config) as client, pytest.raises(FhirTransportError) as caught:
            client.transaction(bundle(*entries))
    assert len(server.requests) == 1
    assert "connection reset" in str(caught.value)
    assert str(caught.value).startswith("transaction (2 entries): ")


# -- conflicts and refusals -------------------------------------------------------------------


@pytest.mark.parametrize("status", [409, 412])
def test_stale_if_match_is_a_version_conflict(httpserver, client, script, status):
    handler = script(fhir(outcome("HAPI-0989: version 2 is current"), status))
    httpserver.expect_request("/fhir/Patient/1", method="PUT").respond_with_handler(handler)
    with pytest.raises(FhirConflictError) as caught:
        client.update(PATIENT, if_match="1")
    assert handler.requests[0].headers["If-Match"] == 'W/"1"'
    assert handler.count == 1
    assert caught.value.status == status
    assert "version conflict" in str(caught.value)


def test_operation_outcome_400_gives_issues_and_a_phi_free_log_line(httpserver, client):
    diagnostics = 'Invalid date "1990-13-45" for patient "Avery Quillfeather"'
    httpserver.expect_request("/fhir/Patient", method="POST").respond_with_response(
        fhir(outcome(diagnostics, "value", "Patient.birthDate"), 400)
    )
    with pytest.raises(FhirRequestError) as caught:
        client.create({"resourceType": "Patient", "birthDate": "1990-13-45"})
    error = caught.value
    assert error.status == 400
    assert error.issues == [("error", "value", diagnostics, "Patient.birthDate")]
    assert "Patient.birthDate" in str(error)
    assert error.log_text.startswith("create Patient: HTTP 400; error/value at Patient.birthDate")
    for secret in ("1990", "13-45", "Avery", "Quillfeather"):
        assert secret not in error.log_text


def test_404_is_not_found_with_the_servers_reason(httpserver, client):
    httpserver.expect_request("/fhir/Patient/9").respond_with_response(
        fhir(outcome("HAPI-2001: Resource Patient/9 is not known", "not-found"), 404)
    )
    with pytest.raises(FhirNotFoundError, match="Resource Patient/9 is not known"):
        client.read("Patient", "9")


# -- answers that are not FHIR ----------------------------------------------------------------


def test_malformed_json_with_200_is_a_response_error(httpserver, client):
    httpserver.expect_request("/fhir/Patient/1").respond_with_data(
        '{"resourceType": "Patient", "name": [{"family": "Quill', content_type=FHIR_JSON
    )
    with pytest.raises(FhirResponseError) as caught:
        client.read("Patient", "1")
    assert str(caught.value) == "read Patient/1 (HTTP 200): malformed JSON (application/fhir+json)"
    assert "Quill" in caught.value.body  # kept for debugging, never in the message


def test_html_502_page_is_retried_then_reported_without_the_html(httpserver, client, script):
    handler = script(html(502))
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(handler)
    with pytest.raises(FhirTransportError) as caught:
        client.read("Patient", "1")
    message = str(caught.value)
    assert handler.count == RETRIES + 1
    assert caught.value.status == 502
    assert "an HTML page, not FHIR JSON" in message
    assert "<" not in message and "Avery" not in message
    assert "Avery" not in caught.value.log_text


def test_html_500_page_is_a_transport_error_without_retry(httpserver, client, script):
    handler = script(html(500))
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(handler)
    with pytest.raises(FhirTransportError) as caught:
        client.read("Patient", "1")
    assert handler.count == 1
    assert str(caught.value) == (
        "read Patient/1 (HTTP 500): server error; an HTML page, not FHIR JSON"
    )


@pytest.mark.parametrize("status", [200, 404])
def test_html_page_instead_of_fhir_is_a_response_error(httpserver, client, status):
    httpserver.expect_request("/fhir/Patient/1").respond_with_response(html(status))
    with pytest.raises(FhirResponseError) as caught:
        client.read("Patient", "1")
    assert caught.value.status == status
    assert str(caught.value).endswith("an HTML page, not FHIR JSON")


def _huge_response_peak(declared: bool) -> tuple[str, int]:
    """The error and the peak traced memory of searching a 5 MiB answer against a 1 MiB cap."""
    from tests.faults.conftest import RawServer

    block = b" " * 65536
    count = 80

    def answer(conn):
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
        if declared:
            conn.sendall(f"{head}Content-Length: {count * len(block)}\r\n\r\n".encode())
            for _ in range(count):
                conn.sendall(block)
        else:
            conn.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
            for _ in range(count):
                conn.sendall(b"10000\r\n" + block + b"\r\n")
            conn.sendall(b"0\r\n\r\n")

    with RawServer([answer]) as server:
        config = ServerConfig(base_url=server.url, max_response_bytes=1024 * 1024)
        with FhirClient(config) as client:
            tracemalloc.start()
            try:
                client.search_all("Patient")
            except FhirResponseError as exc:
                message = str(exc)
            else:
                message = "no error"
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    return message, peak


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_huge_response_is_cut_off_at_the_cap(declared):
    """Measured in a fresh interpreter: tracemalloc counts every thread's allocations, and
    threads left by earlier tests in the suite would be counted too. Served from a raw socket
    (werkzeug buffers what it streams)."""
    code = (
        "import json, sys; from tests.faults.test_fhir_faults import _huge_response_peak; "
        f"print(json.dumps(_huge_response_peak({declared})))"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    message, peak = json.loads(done.stdout.strip().splitlines()[-1])
    assert message == f"search Patient (HTTP 200): response larger than {1024**2} bytes"
    assert peak < 2.5 * 1024 * 1024


# -- capabilities -----------------------------------------------------------------------------


def capability_statement(*types: str, version: str = "4.0.1") -> dict:
    interactions = [{"code": c} for c in ("read", "create", "update", "search-type")]
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": version,
        "rest": [
            {
                "mode": "server",
                "resource": [{"type": t, "interaction": interactions} for t in types],
                "interaction": [{"code": "transaction"}],
            }
        ],
    }


def test_server_without_media_and_consent_says_so(httpserver, client, script):
    handler = script(fhir(capability_statement("Patient", "DocumentReference", "Binary")))
    httpserver.expect_request("/fhir/metadata").respond_with_handler(handler)
    caps = client.capabilities()
    assert caps.can("Patient", "create")
    assert caps.can("DocumentReference", "create")
    assert not caps.can("Media", "create")
    assert not caps.can("Consent", "create")
    assert caps.can_system("transaction") and not caps.can_system("batch")
    with pytest.raises(FhirCapabilityError) as caught:
        caps.require("Media", "create", "store treatment photos")
    assert str(caught.value) == (
        "check server capabilities: server cannot create Media (needed to store treatment photos)"
    )
    assert client.capabilities() is caps
    assert handler.count == 1  # read once, then cached


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        (capability_statement("Patient", version="5.0.0"), "speaks FHIR 5.0.0"),
        ({"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}, "no server 'rest'"),
        ({"resourceType": "Patient"}, "not a CapabilityStatement"),
    ],
)
def test_unusable_capability_statement_is_refused(httpserver, client, statement, reason):
    httpserver.expect_request("/fhir/metadata").respond_with_response(fhir(statement))
    with pytest.raises(FhirCapabilityError, match=reason):
        client.capabilities()


# -- paging -----------------------------------------------------------------------------------


def page(index: int, next_url: str | None) -> dict:
    links = [{"relation": "self", "url": "ignored"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    entries = [
        {
            "resource": {"resourceType": "Patient", "id": f"p{index}-{n}"},
            "search": {"mode": "match"},
        }
        for n in range(2)
    ]
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


def test_paging_follows_next_links_across_three_pages(httpserver, client, script):
    base = httpserver.url_for("/fhir")
    first = script(fhir(page(1, f"{base}?_getpages=abc&_getpagesoffset=2")))
    later = script(
        lambda request: fhir(
            page(2, f"{base}?_getpages=abc&_getpagesoffset=4")
            if request.args["_getpagesoffset"] == "2"
            else page(3, None)
        )
    )
    httpserver.expect_request("/fhir/Patient").respond_with_handler(first)
    httpserver.expect_request("/fhir").respond_with_handler(later)
    ids = [r["id"] for r in client.search("Patient", {"_count": 2})]
    assert ids == ["p1-0", "p1-1", "p2-0", "p2-1", "p3-0", "p3-1"]
    assert first.count == 1 and later.count == 2
    assert first.requests[0].args["_count"] == "2"


@pytest.mark.parametrize(
    "next_url",
    [
        "http://elsewhere.invalid/fhir?_getpages=abc",
        "https://127.0.0.1/fhir?_getpages=abc",
        "http://127.0.0.1:port/fhir?_getpages=abc",
    ],
)
def test_next_link_to_another_host_is_refused(httpserver, client, script, next_url):
    handler = script(fhir(page(1, next_url)))
    httpserver.expect_request("/fhir/Patient").respond_with_handler(handler)
    pages = client.search_bundles("Patient")
    assert next(pages)["type"] == "searchset"
    with pytest.raises(FhirResponseError, match=r"refused a next-page link to another host"):
        next(pages)
    assert handler.count == 1


def test_long_search_goes_as_post_search(httpserver, client, script):
    handler = script(fhir(page(1, None)))
    httpserver.expect_request("/fhir/Patient/_search", method="POST").respond_with_handler(handler)
    identifiers = ",".join(f"urn:spa:client|C{n:05d}" for n in range(150))
    assert len(client.search_all("Patient", {"identifier": identifiers})) == 2
    sent = handler.requests[0]
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(handler.bodies[0].decode())["identifier"] == [identifiers]


# -- Binary -----------------------------------------------------------------------------------


def test_conditional_binary_upload_is_retried_with_the_whole_body(httpserver, client, script):
    data = bytes(range(256)) * 1000
    handler = script(fhir(outcome("busy"), 503), created("Binary", "b1"))
    httpserver.expect_request("/fhir/Binary", method="POST").respond_with_handler(handler)
    written = client.upload_binary(io.BytesIO(data), "image/jpeg", "_tag=urn:photo|k1")
    assert (written.id, written.status) == ("b1", "created")
    assert handler.count == 2
    first, second = (json.loads(body) for body in handler.bodies)
    assert first == second
    assert first["meta"]["tag"] == [{"system": "urn:photo", "code": "k1"}]
    assert first["contentType"] == "image/jpeg"
    import base64

    assert base64.b64decode(first["data"]) == data


def test_plain_binary_upload_is_sent_once(httpserver, client, script):
    handler = script(fhir(outcome("busy"), 503), created("Binary", "b1"))
    httpserver.expect_request("/fhir/Binary", method="POST").respond_with_handler(handler)
    with pytest.raises(FhirTransportError):
        client.upload_binary(io.BytesIO(b"\xff\xd8\xff"), "image/jpeg")
    assert handler.count == 1
    assert handler.requests[0].headers["Content-Type"] == "image/jpeg"
    assert handler.bodies[0] == b"\xff\xd8\xff"


def test_download_of_a_binary_sent_as_a_fhir_resource(httpserver, client, script):
    import base64
    import hashlib

    data = bytes(range(256)) * 10
    resource = {
        "resourceType": "Binary",
        "contentType": "image/png",
        "data": base64.b64encode(data).decode(),
    }
    handler = script(fhir(resource))
    httpserver.expect_request("/fhir/Binary/b1").respond_with_handler(handler)
    out = io.BytesIO()
    assert client.download_binary("b1", out) == (
        "image/png",
        len(data),
        hashlib.sha1(data).hexdigest(),
    )
    assert out.getvalue() == data
    assert handler.requests[0].headers["Accept"] == "*/*"


def test_download_past_the_cap_is_refused(httpserver, client):
    httpserver.expect_request("/fhir/Binary/b1").respond_with_data(
        b"\0" * (2 * 1024 * 1024), content_type="image/jpeg"
    )
    with pytest.raises(FhirResponseError, match="response larger than"):
        client.download_binary("b1", io.BytesIO())


# -- auth -------------------------------------------------------------------------------------


def test_401_makes_smart_auth_refresh_once_and_resend(httpserver, config, script):
    tokens = script(fhir({"access_token": "new", "token_type": "Bearer", "expires_in": 3600}))
    httpserver.expect_request("/token", method="POST").respond_with_handler(tokens)
    reads = script(
        lambda request: (
            fhir(PATIENT)
            if request.headers.get("Authorization") == "Bearer new"
            else fhir(outcome("token revoked", "login"), 401)
        )
    )
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(reads)
    refreshed: list[dict] = []
    auth = SmartTokenAuth(
        {"access_token": "old", "refresh_token": "r1", "expires_in": 3600},
        httpserver.url_for("/token"),
        "app",
        on_refresh=refreshed.append,
    )
    with FhirClient(config, auth) as client:
        assert client.read("Patient", "1")["id"] == "1"
    assert tokens.count == 1 and reads.count == 2
    assert parse_qs(tokens.bodies[0].decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["r1"],
        "client_id": ["app"],
    }
    assert [t["access_token"] for t in refreshed] == ["new"]
    assert refreshed[0]["refresh_token"] == "r1"  # kept when the server sends none


def test_401_after_the_refresh_goes_back_to_the_caller(httpserver, config, script):
    tokens = script(fhir({"access_token": "new", "token_type": "Bearer", "expires_in": 3600}))
    httpserver.expect_request("/token", method="POST").respond_with_handler(tokens)
    reads = script(fhir(outcome("no access", "login"), 401))
    httpserver.expect_request("/fhir/Patient/1").respond_with_handler(reads)
    auth = SmartTokenAuth(
        {"access_token": "old", "refresh_token": "r1"}, httpserver.url_for("/token"), "app"
    )
    with FhirClient(config, auth) as client, pytest.raises(FhirAuthError) as caught:
        client.read("Patient", "1")
    assert tokens.count == 1 and reads.count == 2
    assert caught.value.status == 401
    assert "no access" in str(caught.value)


def test_every_error_is_a_fhir_server_error(httpserver, client):
    httpserver.expect_request("/fhir/Patient/1").respond_with_response(Response(status=418))
    with pytest.raises(FhirServerError) as caught:
        client.read("Patient", "1")
    assert type(caught.value) is FhirRequestError
    assert str(caught.value) == "read Patient/1 (HTTP 418): request refused"


def test_a_redirected_write_is_not_followed(httpserver, client, script):
    moved = Response("", status=301, headers={"Location": "http://elsewhere.invalid/fhir/Patient"})
    handler = script(moved)
    httpserver.expect_request("/fhir/Patient", method="POST").respond_with_handler(handler)
    with pytest.raises(FhirRequestError) as caught:
        client.create({"resourceType": "Patient"})
    assert handler.count == 1
    assert str(caught.value) == (
        "create Patient (HTTP 301): redirected elsewhere: check the server's base URL"
    )


def test_retry_warnings_do_not_log_search_values(raw_server, caplog):
    page_body = json.dumps(page(1, None)).encode()
    with raw_server(["reset", http_answer("200 OK", page_body)]) as server:
        config = ServerConfig(base_url=server.url, retries=RETRIES, backoff_factor=0.001)
        with FhirClient(config) as client, caplog.at_level("WARNING"):
            found = client.search_all("Patient", {"family": "Quillfeather", "birthdate": "1985"})
    assert len(found) == 2 and len(server.requests) == 2
    assert "Retrying" in caplog.text
    assert "Quillfeather" not in caplog.text and "1985" not in caplog.text
