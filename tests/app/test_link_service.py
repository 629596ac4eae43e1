"""The public SMART Health Link service: every answer the spec and the issue name (200, 400,
401 with remainingAttempts, 404 alike for unknown/truncated/revoked/expired, 429 with
Retry-After, CORS and its preflight), the attacks (parallel passcode brute force, guessed ids,
oversized bodies, reused location URLs), the disclosure AuditEvent and the consent re-check.
What it serves is opened with the independent decoder (tests/shl_decoder.py)."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient

from smart_app.links import create_app
from symfhir.errors import FhirTransportError
from symfhir.sharing.link_settings import Window, load_link_settings
from symfhir.sharing.links import revoke_link
from symfhir.store import Store
from tests import shl_decoder
from tests.unit.sharing_fake import ShareFhir, consent
from tests.unit.shl_packages import LINKS, make_link, make_package, manifest_id, summary_bytes

pytestmark = pytest.mark.unit

PASSCODE = "tulip-417"


@dataclass
class ServiceFhir(ShareFhir):
    """The service's FHIR server: the client's consents, the AuditEvents it is given."""

    fail_create: bool = False
    closed: int = 0
    audits: list[dict[str, Any]] = field(default_factory=list)

    def create(self, resource: dict[str, Any], if_none_exist: str | None = None) -> Any:
        if self.fail_create:
            raise FhirTransportError("create AuditEvent", "timed out")
        self.audits.append(resource)
        return resource

    def close(self) -> None:
        self.closed += 1


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Http:
    """The Flask test client behind the requests-like calls of the decoder."""

    @dataclass
    class Answer:
        status_code: int
        text: str
        body: Any

        def json(self) -> Any:
            return self.body

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def _answer(self, response: Any) -> Http.Answer:
        return Http.Answer(
            response.status_code, response.get_data(as_text=True), response.get_json(silent=True)
        )

    def post(self, url: str, json: Any, timeout: float) -> Http.Answer:
        return self._answer(self.client.post(urlsplit(url).path, json=json))

    def get(self, url: str, params: Any = None, timeout: float = 0) -> Http.Answer:
        return self._answer(self.client.get(urlsplit(url).path, query_string=params))


@pytest.fixture
def fhir() -> ServiceFhir:
    return ServiceFhir(resources=[consent("c1")])


@pytest.fixture
def clock(now: datetime) -> Clock:
    return Clock(now)


def service(store: Store, fhir: ServiceFhir, clock: Clock, **config: Any) -> Flask:
    app = create_app(
        {
            "SYMFHIR_LINKS_BASE_URL": LINKS,
            "SYMFHIR_STORE": store,
            "SYMFHIR_LINKS_CLIENT": lambda: fhir,
            "SYMFHIR_LINKS_CLOCK": clock,
            **config,
        }
    )
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(store: Store, fhir: ServiceFhir, clock: Clock) -> Flask:
    return service(store, fhir, clock)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def path(link) -> str:
    return urlsplit(link.manifest_url).path


def post(client: FlaskClient, link, **body: Any):
    return client.post(path(link), json={"recipient": "Dr. Rivera's office", **body})


# ── serving ───────────────────────────────────────────────────────────────────


def test_the_decoder_opens_what_the_service_serves(
    client: FlaskClient, store: Store, fhir: ServiceFhir, now: datetime
) -> None:
    link = make_link(store, now, make_package(photos=2), passcode=PASSCODE)
    payload = shl_decoder.parse(link.viewer_url)
    files = shl_decoder.open_link(
        payload, recipient="Dr. Rivera", passcode=PASSCODE, session=Http(client)
    )
    assert [ct for ct, _ in files] == ["application/fhir+json"] * 3
    assert files[0][1] == summary_bytes()
    assert b'"resourceType": "Media", "id": "m0"' in files[1][1]
    # Embedded when it fits the asked length.
    embedded = shl_decoder.manifest(
        payload,
        recipient="Dr. R",
        passcode=PASSCODE,
        embedded_length_max=10**6,
        session=Http(client),
    )
    assert all("embedded" in f for f in embedded["files"])
    assert len(fhir.audits) == 2


def test_a_transfer_links_opening_is_disclosed_at_the_clients_request(
    client: FlaskClient, store: Store, fhir: ServiceFhir, now: datetime
) -> None:
    link = make_link(store, now, make_package(basis="Task/t1"))
    assert post(client, link, recipient="New Provider Clinic").status_code == 200
    (event,) = fhir.audits
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "PATRQT"


def test_every_manifest_is_a_disclosure_audit_event(
    client: FlaskClient, store: Store, fhir: ServiceFhir, now: datetime
) -> None:
    link = make_link(store, now, make_package(photos=1))
    assert post(client, link, recipient="Dr. Rivera (front desk)").status_code == 200
    (event,) = fhir.audits
    assert event["resourceType"] == "AuditEvent"
    assert event["subtype"][0]["code"] == "Disclosure"
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    receiver = next(a for a in event["agent"] if a.get("name"))
    assert receiver["name"] == "Dr. Ada Rivera"
    assert receiver["who"] == {"reference": "Practitioner/doc1"}
    assert "Dr. Rivera (front desk)" in event["outcomeDesc"]
    assert link.link_id in event["outcomeDesc"]
    entities = [
        e.get("what", {}).get("reference") or e["type"].get("code") for e in event["entity"]
    ]
    assert entities == ["Patient/p1", "Media", "Patient"]
    assert fhir.closed == 1  # one client per request, closed at its end


def test_the_service_sets_no_cookie_and_answers_json(
    client: FlaskClient, store: Store, now: datetime
) -> None:
    response = post(client, make_link(store, now))
    assert response.status_code == 200 and response.is_json
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json()["status"] == "finalized"


def test_a_location_file_is_jose_and_dies_after_its_time(
    client: FlaskClient, store: Store, clock: Clock, now: datetime
) -> None:
    link = make_link(store, now)
    location = post(client, link).get_json()["files"][0]["location"]
    first = client.get(urlsplit(location).path)
    assert first.status_code == 200 and first.mimetype == "application/jose"
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    assert client.get(urlsplit(location).path).status_code == 200  # a retry in time
    clock.now = now + timedelta(seconds=60)
    late = client.get(urlsplit(location).path)
    assert late.status_code == 404 and late.get_json() == {"error": "not_found"}


def jose_opened(token: str, key: bytes) -> bytes:
    """The plaintext as joserfc (a general JOSE library) decrypts the compact JWE."""
    from joserfc import jwe
    from joserfc.jwk import OctKey

    registry = jwe.JWERegistry(algorithms=["dir", "A256GCM", "DEF"])
    registry.max_ciphertext_length = len(token)  # its default stops at 64 KB
    return jwe.decrypt_compact(token, OctKey.import_key(key), registry=registry).plaintext


def test_a_photo_leaves_streamed_as_compact_jwe_with_its_length(
    client: FlaskClient, store: Store, now: datetime
) -> None:
    link = make_link(store, now, make_package(photos=1, photo_size=600_000))
    files = post(client, link).get_json()["files"]
    response = client.get(urlsplit(files[1]["location"]).path, buffered=False)
    assert response.status_code == 200 and response.mimetype == "application/jose"
    assert response.is_streamed
    chunks = list(response.response)
    body = b"".join(chunks)
    assert len(chunks) >= 5  # header and IV, the ciphertext in pieces, the tag
    assert int(response.headers["Content-Length"]) == len(body)
    key = shl_decoder.b64d(link.payload["key"])
    header, plain = shl_decoder.decrypt(body.decode("ascii"), key)
    assert header == {"alg": "dir", "enc": "A256GCM", "cty": "application/fhir+json"}
    assert plain.startswith(b'{"resourceType": "Media", "id": "m0"') and len(plain) > 800_000
    assert jose_opened(body.decode("ascii"), key) == plain
    # Each download is the same JWE (made once, at share creation), not a new encryption.
    again = client.get(urlsplit(files[1]["location"]).path)
    assert again.get_data() == body


def test_a_single_file_link_is_fetched_directly(
    client: FlaskClient, store: Store, fhir: ServiceFhir, now: datetime
) -> None:
    link = make_link(store, now, single_file=True)
    payload = shl_decoder.parse(link.shlink)
    assert payload["flag"] == "U"
    files = shl_decoder.open_link(payload, recipient="Dr. R", session=Http(client))
    assert files == [("application/fhir+json", summary_bytes())]
    direct = client.get(path(link), query_string={"recipient": "Dr. R"})
    assert direct.mimetype == "application/jose"
    assert int(direct.headers["Content-Length"]) == len(direct.get_data())
    key = shl_decoder.b64d(payload["key"])
    assert jose_opened(direct.get_data(as_text=True), key) == summary_bytes()
    assert client.get(path(link)).status_code == 400  # the recipient is required
    assert len(fhir.audits) == 2  # each direct read is a disclosure
    other = make_link(store, now)
    assert client.get(path(other), query_string={"recipient": "x"}).status_code == 404


# ── passcodes ─────────────────────────────────────────────────────────────────


def test_wrong_passcodes_get_401_with_attempts_left_then_404(
    client: FlaskClient, store: Store, fhir: ServiceFhir, now: datetime
) -> None:
    link = make_link(store, now, passcode=PASSCODE)
    missing = post(client, link)
    assert missing.status_code == 401 and missing.get_json() == {"remainingAttempts": 5}
    left = []
    for _ in range(5):
        response = post(client, link, passcode="not-it")
        assert response.status_code == 401
        left.append(response.get_json()["remainingAttempts"])
    assert left == [4, 3, 2, 1, 0]
    locked = post(client, link, passcode=PASSCODE)
    assert locked.status_code == 404 and locked.get_json() == {"error": "not_found"}
    assert fhir.audits == []  # nothing was disclosed


def test_parallel_brute_force_stops_at_five(
    store_file: Store, fhir: ServiceFhir, clock: Clock, now: datetime
) -> None:
    app = service(store_file, fhir, clock)
    link = make_link(store_file, now, passcode=PASSCODE)
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def guess(n: int) -> None:
        client = app.test_client()
        start.wait()
        status = post(client, link, passcode=f"guess-{n:03d}").status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(401) == 5 and statuses.count(404) == 15
    assert post(app.test_client(), link, passcode=PASSCODE).status_code == 404
    assert fhir.audits == []


@pytest.fixture
def store_file(tmp_path) -> Store:
    """A file SQLite store of its own (parallel writers, as gunicorn's threads)."""
    store = Store(f"sqlite:///{tmp_path / 'links.db'}", [Fernet.generate_key().decode()])
    yield store
    store.dispose()


# ── nothing for the inactive, the unknown and the malformed ───────────────────


def test_revoked_and_expired_links_give_nothing(
    client: FlaskClient, store: Store, fhir: ServiceFhir, clock: Clock, now: datetime
) -> None:
    revoked = make_link(store, now)
    expiring = make_link(store, now, expires_at=now + timedelta(hours=1))
    location = post(client, revoked).get_json()["files"][0]["location"]
    revoke_link(store, "p1", revoked.link_id, reason="revoked by a practitioner", now=now)
    assert post(client, revoked).status_code == 404
    assert client.get(urlsplit(location).path).status_code == 404
    clock.now = now + timedelta(hours=1)
    assert post(client, expiring).status_code == 404
    assert len(fhir.audits) == 1  # the one access before the revocation


def test_guessed_and_truncated_ids_get_the_same_404(
    client: FlaskClient, store: Store, now: datetime
) -> None:
    revoked = make_link(store, now)
    revoke_link(store, "p1", revoked.link_id, reason="x", now=now)
    live = make_link(store, now)
    real = post(client, revoked)
    mid = manifest_id(live)
    for guess in (mid[:-1], mid[:20], mid[:-1] + ("A" if mid[-1] != "A" else "B"), "x" * 43):
        answer = client.post(f"/shl/m/{guess}", json={"recipient": "r"})
        assert answer.status_code == real.status_code == 404
        assert answer.get_data() == real.get_data()
        assert sorted(answer.headers.keys()) == sorted(real.headers.keys())


def test_an_unknown_id_takes_the_time_of_a_real_inactive_one(
    client: FlaskClient, store: Store, now: datetime
) -> None:
    revoked = make_link(store, now)
    revoke_link(store, "p1", revoked.link_id, reason="x", now=now)
    unknown = "/shl/m/" + "Q" * 43

    def timed(url: str) -> float:
        start = time.perf_counter()
        assert client.post(url, json={"recipient": "r"}).status_code == 404
        return time.perf_counter() - start

    for _ in range(5):  # warm up
        timed(path(revoked)), timed(unknown)
    real = statistics.median(timed(path(revoked)) for _ in range(25))
    fake = statistics.median(timed(unknown) for _ in range(25))
    # The same lookup and the same logged row: no systematic gap (loose: a shared machine).
    assert 0.5 < fake / real < 2.0, (fake, real)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[1, 2]", id="a-list"),
        pytest.param(b"{}", id="no-recipient"),
        pytest.param(b'{"recipient": ""}', id="empty-recipient"),
        pytest.param(b'{"recipient": "   "}', id="blank-recipient"),
        pytest.param(b'{"recipient": 7}', id="recipient-not-text"),
        pytest.param(('{"recipient": "%s"}' % ("x" * 201)).encode(), id="recipient-201"),
        pytest.param(b'{"recipient": "a\\u0000b"}', id="recipient-control"),
        pytest.param(b'{"recipient": "r", "passcode": 1234}', id="passcode-not-text"),
        pytest.param(b'{"recipient": "r", "embeddedLengthMax": -1}', id="embed-negative"),
        pytest.param(b'{"recipient": "r", "embeddedLengthMax": "9"}', id="embed-text"),
        pytest.param(b'{"recipient": "r", "embeddedLengthMax": true}', id="embed-bool"),
        pytest.param(b'{"recipient": "' + b"x" * 5000 + b'"}', id="oversized"),
    ],
)
def test_malformed_or_oversized_requests_get_400(
    client: FlaskClient, store: Store, fhir: ServiceFhir, now: datetime, body: bytes
) -> None:
    link = make_link(store, now)
    response = client.post(path(link), data=body, content_type="application/json")
    assert response.status_code == 400, response.get_json()
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert fhir.audits == []


def test_an_oversized_body_is_refused_before_it_is_read(
    client: FlaskClient, store: Store, now: datetime
) -> None:
    link = make_link(store, now)
    response = client.post(
        path(link),
        data=b"{" * 10,
        content_type="application/json",
        headers={"Content-Length": str(10**9)},
    )
    assert response.status_code == 400


def test_recipient_of_200_characters_is_fine(
    client: FlaskClient, store: Store, now: datetime
) -> None:
    assert post(client, make_link(store, now), recipient="x" * 200).status_code == 200


# ── rate limits, CORS, headers ────────────────────────────────────────────────


def test_too_many_requests_for_a_link_get_429_with_retry_after(
    store: Store, fhir: ServiceFhir, clock: Clock, now: datetime
) -> None:
    settings = replace(load_link_settings(), per_link=Window(requests=3, seconds=60))
    client = service(store, fhir, clock, SYMFHIR_LINKS_SETTINGS=settings).test_client()
    link, other = make_link(store, now), make_link(store, now)
    assert [post(client, link).status_code for _ in range(3)] == [200, 200, 200]
    refused = post(client, link)
    assert refused.status_code == 429 and refused.get_json() == {"error": "too_many_requests"}
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["Access-Control-Allow-Origin"] == "*"
    assert post(client, other).status_code == 200  # another link is not held back
    assert len(fhir.audits) == 4


def test_too_many_requests_from_one_client_get_429(
    store: Store, fhir: ServiceFhir, clock: Clock, now: datetime
) -> None:
    settings = replace(load_link_settings(), per_client=Window(requests=4, seconds=60))
    client = service(store, fhir, clock, SYMFHIR_LINKS_SETTINGS=settings).test_client()
    guesses = [client.post(f"/shl/m/{'A' * 42}{c}", json={"recipient": "r"}) for c in "BCDEF"]
    assert [g.status_code for g in guesses] == [404, 404, 404, 404, 429]
    assert int(guesses[-1].headers["Retry-After"]) >= 1


def test_cors_preflight_and_headers(client: FlaskClient, store: Store, now: datetime) -> None:
    link = make_link(store, now)
    preflight = client.options(
        path(link),
        headers={
            "Origin": "https://viewer.example.net",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    answer = post(client, link)
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Retry-After" in answer.headers["Access-Control-Expose-Headers"]


def test_the_viewer_page_gets_a_csp_it_can_work_with(client: FlaskClient) -> None:
    page = client.get("/view")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    for part in ("script-src 'self'", "connect-src 'self'", "img-src 'self' data: blob:"):
        assert part in csp
    assert "unsafe-inline" not in csp
    assert "Access-Control-Allow-Origin" not in page.headers


# ── the consent re-check and the audit ────────────────────────────────────────


def test_a_withdrawn_consent_stops_every_link_of_the_client(
    client: FlaskClient, store: Store, fhir: ServiceFhir, now: datetime
) -> None:
    first, second = make_link(store, now), make_link(store, now)
    assert post(client, first).status_code == 200
    fhir.resources[:] = [consent("c1", status="inactive")]
    assert post(client, first).status_code == 404
    fhir.resources[:] = [consent("c1")]  # even given again: those links stay stopped
    assert post(client, second).status_code == 404
    assert len(fhir.audits) == 1


def test_a_transfer_link_needs_no_consent(
    client: FlaskClient, store: Store, fhir: ServiceFhir, now: datetime
) -> None:
    fhir.resources[:] = []
    link = make_link(store, now, make_package(basis="Task/t1"))
    assert post(client, link).status_code == 200
    other = make_link(store, now)
    assert post(client, other).status_code == 404  # its consent is gone


def test_nothing_leaves_when_the_disclosure_cannot_be_recorded(
    client: FlaskClient, store: Store, fhir: ServiceFhir, now: datetime
) -> None:
    fhir.fail_create = True
    response = post(client, make_link(store, now))
    assert response.status_code == 503 and "files" not in response.get_json()
    assert response.headers["Retry-After"] == "30"


def test_an_unknown_route_is_a_json_404(client: FlaskClient) -> None:
    response = client.get("/shl/x")
    assert response.status_code == 404 and response.get_json() == {"error": "not_found"}


def test_file_downloads_are_limited_apart_from_manifests(
    store: Store, fhir: ServiceFhir, clock: Clock, now: datetime
) -> None:
    settings = replace(
        load_link_settings(),
        per_client=Window(requests=1, seconds=60),
        files_per_client=Window(requests=3, seconds=60),
    )
    client = service(store, fhir, clock, SYMFHIR_LINKS_SETTINGS=settings).test_client()
    files = post(client, make_link(store, now, make_package(photos=4))).get_json()["files"]
    got = [client.get(urlsplit(f["location"]).path).status_code for f in files]
    assert got == [200, 200, 200, 429, 429]  # the manifest's own limit is not theirs


@dataclass
class ScopedFhir(ServiceFhir):
    """Records what the service asks of the FHIR server, as (type, SMART v2 letter)."""

    asked: set[tuple[str, str]] = field(default_factory=set)

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        self.asked.add((resource_type, "r"))
        return super().read(resource_type, resource_id)

    def search_all(self, resource_type: str, params: Any = None) -> list[dict]:
        self.asked.add((resource_type, "s"))
        return super().search_all(resource_type, params)

    def create(self, resource: dict[str, Any], if_none_exist: str | None = None) -> Any:
        self.asked.add((resource["resourceType"], "c"))
        return super().create(resource, if_none_exist)


def test_the_service_needs_only_its_system_scopes(
    store: Store, clock: Clock, now: datetime
) -> None:
    from symfhir.sharing.link_service import LINKS_SCOPE

    fhir = ScopedFhir(resources=[consent("c1")])
    client = service(store, fhir, clock).test_client()
    link = make_link(store, now, passcode=PASSCODE)
    assert post(client, link, passcode="wrong-one").status_code == 401
    assert post(client, link, passcode=PASSCODE).status_code == 200
    granted = {
        (scope.split("/")[1].split(".")[0], letter)
        for scope in LINKS_SCOPE.split()
        for letter in scope.split(".")[1]
    }
    assert fhir.asked and fhir.asked <= granted, fhir.asked - granted
