"""The chart's Sharing tab (/sharing): the physician-sharing consent or the way to capture it,
"Create a link" (the QR code, viewer URL and shlink shown once), the list of links with their
accesses and Revoke, the push to the physician's FHIR server, and the summary downloads.

The workflows of ``symfhir.sharing`` are replaced by recorders here (they have their own
tests): these tests prove what the views parse, pass on, refuse and render."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from flask.testing import FlaskClient

import smart_app.sharing as views
from symfhir.errors import ConsentMissing, NotAllowedError, PushError, SharingError
from symfhir.sharing import workflow
from symfhir.sharing.gate import Recipient, SharingConsent
from symfhir.sharing.links import AccessRecord, LinkRecord, NewLink
from symfhir.sharing.push import PushReport
from tests.app.conftest import launch
from tests.app.fake_ehr import FakeEhr

pytestmark = pytest.mark.unit

PNG = b"\x89PNG\r\n\x1a\nfake-qr"
SVG = '<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>'
PHYSICIAN = Recipient("Practitioner/ph1", "Dr. Olamide Sorrel", npi="1234567893")


def _consent(scopes: set[str], photos: bool = True) -> SharingConsent:
    return SharingConsent(
        consent_id="c1",
        version_id="1",
        recipient=PHYSICIAN,
        scopes=frozenset(scopes | {"summary"}),
        start=None,
        end=None,
        photos_consent=photos,
        patient_id="p1",
    )


def record(link_id: str, status: str, created: datetime, **fields: Any) -> LinkRecord:
    values: dict[str, Any] = {
        "link_id": link_id,
        "status": status,
        "label": "For Dr. Sorrel",
        "flags": "P",
        "created_at": created,
        "created_by": "Practitioner/dr1",
        "expires_at": created + timedelta(days=30),
        "revoked_at": None,
        "revoke_reason": None,
        "passcode": True,
        "failures": 0,
        "max_failures": 5,
        "access_count": 0,
        "max_accesses": None,
        "recipient": PHYSICIAN,
        "basis": "Consent/c1",
        "types": ("Patient",),
        "accesses": (),
    }
    return LinkRecord(**{**values, **fields})


REAL_LIST_SHARES = workflow.list_shares


@dataclass
class Recorder:
    """The sharing workflows as the views call them: what they were given, what they answer."""

    consent: SharingConsent | Exception | None = None
    links: list[LinkRecord] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: Exception | None = None
    summaries: int = 0

    def sharing_consent(self, client, actor, patient_id, *, now):
        if isinstance(self.consent, Exception):
            raise self.consent
        if self.consent is None:
            raise ConsentMissing("no active consent to share with the client's physician")
        return self.consent

    def list_shares(self, store, actor, patient_id, *, now=None):
        self.calls.append(("list", {"patient_id": patient_id, "store": store}))
        return self.links

    def create_share(self, client, actor, patient_id, **kwargs):
        self.calls.append(("create", {"patient_id": patient_id, **kwargs}))
        if self.fail:
            raise self.fail
        link = NewLink(
            link_id="L1",
            manifest_url="http://links.example/shl/m/x",
            payload={},
            viewer_url="http://links.example/view#shlink:/eyJ1cmwiOiJodHRwOi8vIn0",
            shlink="shlink:/eyJ1cmwiOiJodHRwOi8vIn0",
            qr_png=PNG,
            qr_svg=SVG,
            expires_at=kwargs["expires_at"],
            flags="P" if kwargs["passcode"] else "",
        )
        return SimpleNamespace(link=link, counts={"Patient": 1}, photos=0)

    def revoke_share(self, store, actor, patient_id, link_id, **kwargs):
        self.calls.append(("revoke", {"patient_id": patient_id, "link_id": link_id, **kwargs}))
        if self.fail:
            raise self.fail

    def push_share(self, client, actor, patient_id, **kwargs):
        self.calls.append(("push", {"patient_id": patient_id, **kwargs}))
        if self.fail:
            raise self.fail
        return PushReport(
            target=kwargs["target"].base_url,
            mode=kwargs["mode"],
            recipient=PHYSICIAN.name,
            sent={"Bundle": 1},
            ids={"Bundle": "Bundle/9"},
        )

    def read_summary_resources(self, client, actor, patient_id):
        self.summaries += 1
        return [{"resourceType": "Patient", "id": patient_id}]

    def named(self, what: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == what]


@pytest.fixture
def sharing(monkeypatch: pytest.MonkeyPatch, app, store) -> Recorder:
    recorder = Recorder(consent=_consent({"intake", "photos"}))
    for name in ("create_share", "revoke_share", "push_share"):
        monkeypatch.setattr(views, name, getattr(recorder, name))
    # What the overview and the summary workflows read, inside them.
    for name in ("sharing_consent", "list_shares", "read_summary_resources"):
        monkeypatch.setattr(workflow, name, getattr(recorder, name))
    monkeypatch.setattr(
        workflow,
        "patient_summary",
        lambda resources, **kw: {"resourceType": "Bundle", "type": "document", "n": len(resources)},
    )
    monkeypatch.setattr(views, "summary_html", lambda doc: "<html><h1>Patient summary</h1></html>")
    monkeypatch.setattr(views, "summary_pdf", lambda doc: b"%PDF-1.7 fake")
    app.config["SYMFHIR_STORE"] = store
    app.config["SYMFHIR_LINKS_BASE_URL"] = "http://links.example"
    return recorder


@pytest.fixture
def chart(launched: FlaskClient, sharing: Recorder) -> FlaskClient:
    return launched


def csrf(client: FlaskClient) -> str:
    text = client.get("/sharing").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert match
    return match.group(1)


def link_form(csrf_value: str, **fields: Any) -> dict[str, Any]:
    return {
        "csrf_token": csrf_value,
        "scope": ["intake"],
        "label": "For Dr. Sorrel",
        "passcode": "open-sesame",
        "expires_days": "14",
        "max_accesses": "",
        "start": "",
        "end": "",
        **fields,
    }


def push_form(csrf_value: str, **fields: Any) -> dict[str, Any]:
    return {
        "csrf_token": csrf_value,
        "scope": ["intake"],
        "base_url": "https://fhir.physician.example/r4",
        "token": "secret-bearer-token-123",
        "mode": "document",
        **fields,
    }


# ── The tab ───────────────────────────────────────────────────────────────────


def test_the_tab_is_in_the_workspace_nav(chart: FlaskClient) -> None:
    text = chart.get("/sharing").get_data(as_text=True)
    assert 'id="nav-sharing"' in text
    assert re.search(r'id="nav-sharing" href="/sharing/?"\s+aria-current="page"', text)


def test_the_consent_its_physician_and_scopes_are_shown(chart: FlaskClient) -> None:
    text = chart.get("/sharing").get_data(as_text=True)
    assert "Dr. Olamide Sorrel, NPI 1234567893" in text
    scopes = re.findall(r'data-scope="([a-z]+)"', text)
    assert scopes == ["summary", "intake", "photos"]
    # Only the scopes the consent covers are offered; the summary always, and fixed.
    assert 'id="link-scope-summary" checked disabled' in text
    assert 'id="link-scope-intake"' in text and 'id="link-scope-photos"' in text
    assert 'id="link-scope-treatments"' not in text and 'id="link-scope-full"' not in text
    assert 'id="create-link-form"' in text and 'id="push-form"' in text


def test_without_a_consent_the_tab_leads_to_its_capture(chart, sharing: Recorder) -> None:
    sharing.consent = None
    response = chart.get("/sharing")
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="no-sharing-consent"' in text
    assert "no active consent to share" in text
    # The capture brings the user back here (consents.RETURNS).
    capture = r'href="/consents/?\?capture=physician_sharing&amp;return=sharing#capture"'
    assert re.search(r'id="capture-sharing-consent"[^>]*' + capture, text)
    assert 'id="create-link-form"' not in text and 'id="push-form"' not in text


def test_photos_are_not_offered_without_the_photo_consent(chart, sharing: Recorder) -> None:
    sharing.consent = _consent({"photos"}, photos=False)
    text = chart.get("/sharing").get_data(as_text=True)
    assert re.search(r'id="link-scope-photos" name="scope" value="photos"\s+disabled', text)
    assert "Not given: no photo can be shared" in text


def test_the_links_are_listed_with_their_accesses(chart, sharing: Recorder) -> None:
    created = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    sharing.links = [
        record(
            "L2",
            "active",
            created,
            failures=2,
            access_count=1,
            max_accesses=3,
            accesses=(
                AccessRecord(created + timedelta(hours=1), "Dr. Sorrel's office", "wrong-passcode"),
                AccessRecord(created + timedelta(hours=2), "Dr. Sorrel's office", "ok"),
            ),
        ),
        record(
            "L1",
            "revoked",
            created - timedelta(days=3),
            label="Old link",
            revoked_at=created,
            revoke_reason="revoked by a practitioner",
        ),
    ]
    text = chart.get("/sharing").get_data(as_text=True)
    assert re.findall(r'<tr id="link-(L\d)" data-status="(\w+)"', text) == [
        ("L2", "active"),
        ("L1", "revoked"),
    ]
    row = text[text.index('id="link-L2"') : text.index('id="link-L1"')]
    assert re.findall(r'data-outcome="([a-z-]+)"', row) == ["wrong-passcode", "ok"]
    assert row.count("Dr. Sorrel&#39;s office") == 2
    assert "wrong passcode" in row and "opened" in row
    assert re.search(r'class="passcode-failures">2 of 5<', row)
    assert "opened 1 of 3 times" in row
    assert "revoked by a practitioner" in text
    assert 'id="revoke-L2"' in row
    assert 'id="revoke-L1"' not in text  # a revoked link has nothing left to revoke
    assert sharing.named("list")[-1]["patient_id"] == "p1"


# ── Create a link ─────────────────────────────────────────────────────────────


def test_a_link_is_created_and_shown_once(chart, sharing: Recorder, store) -> None:
    response = chart.post("/sharing/links", data=link_form(csrf(chart)))
    text = response.get_data(as_text=True)
    assert response.status_code == 201
    (call,) = sharing.named("create")
    assert call["patient_id"] == "p1"
    assert call["scopes"] == ("summary", "intake")
    assert call["passcode"] == "open-sesame"
    assert call["label"] == "For Dr. Sorrel"
    assert call["max_accesses"] is None
    assert call["store"] is store
    assert call["links"].links_base == "http://links.example"
    assert call["links"].viewer_base == "http://links.example/view"
    assert timedelta(days=13, hours=23) < call["expires_at"] - call["now"] <= timedelta(days=14)
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in text
    svg = base64.b64encode(SVG.encode()).decode()
    assert f'href="data:image/svg+xml;base64,{svg}" download="physician-link-qr.svg"' in text
    assert "http://links.example/view#shlink:/eyJ1cmwiOiJodHRwOi8vIn0" in text
    assert ">shlink:/eyJ1cmwiOiJodHRwOi8vIn0<" in text
    assert 'id="print-link"' in text and "sharing.js" in text
    assert "open-sesame" not in text  # the passcode is not echoed
    assert response.headers["Cache-Control"] == "no-store"


def test_a_long_term_link_is_asked_with_its_box(chart, sharing: Recorder) -> None:
    text = chart.get("/sharing").get_data(as_text=True)
    assert re.search(r'<input id="long_term" name="long_term" type="checkbox" value="yes">', text)
    assert chart.post("/sharing/links", data=link_form(csrf(chart))).status_code == 201
    assert (
        chart.post("/sharing/links", data=link_form(csrf(chart), long_term="yes")).status_code
        == 201
    )
    assert [call["long_term"] for call in sharing.named("create")] == [False, True]


def test_a_refused_form_keeps_the_long_term_box(chart, sharing: Recorder) -> None:
    form = link_form(csrf(chart), long_term="yes", expires_days="0")
    text = chart.post("/sharing/links", data=form).get_data(as_text=True)
    assert re.search(r'id="long_term"[^>]*checked', text)
    assert sharing.named("create") == []


@pytest.mark.parametrize(
    ("saved", "words"),
    [
        ("consent-given", "consent was recorded"),
        ("consent-declined", "The client declined"),
        ("something-else", None),
    ],
)
def test_back_from_a_capture_the_tab_says_what_was_recorded(chart, saved, words) -> None:
    text = html.unescape(chart.get(f"/sharing?saved={saved}").get_data(as_text=True))
    notice = re.search(r'id="consent-saved"[^>]*>([^<]+)<', text)
    if words is None:
        assert notice is None
    else:
        assert notice and words in notice[1]


def test_the_summary_is_always_part_of_a_link(chart, sharing: Recorder) -> None:
    form = link_form(csrf(chart), scope=[], passcode="", max_accesses="3", label="")
    assert chart.post("/sharing/links", data=form).status_code == 201
    (call,) = sharing.named("create")
    assert call["scopes"] == ("summary",)
    assert call["passcode"] is None
    assert call["max_accesses"] == 3
    assert call["label"]  # a default label, never an empty one


def test_a_date_range_is_passed_on(chart, sharing: Recorder) -> None:
    form = link_form(csrf(chart), start="2026-01-01", end="2026-06-30")
    assert chart.post("/sharing/links", data=form).status_code == 201
    (call,) = sharing.named("create")
    assert (call["start"], call["end"]) == (date(2026, 1, 1), date(2026, 6, 30))


@pytest.mark.parametrize(
    ("fields", "field_id", "words"),
    [
        ({"label": "x" * 81}, "label", "At most 80 characters"),
        ({"passcode": "12345"}, "passcode", "6 to 128 characters"),
        ({"passcode": "p" * 129}, "passcode", "6 to 128 characters"),
        ({"expires_days": ""}, "expires_days", "how many days"),
        ({"expires_days": "0"}, "expires_days", "from 1 to 365"),
        ({"expires_days": "400"}, "expires_days", "from 1 to 365"),
        ({"expires_days": "ten"}, "expires_days", "from 1 to 365"),
        ({"max_accesses": "-1"}, "max_accesses", "from 1 to 1000"),
        ({"start": "01/02/2026"}, "start", "YYYY-MM-DD"),
        ({"start": "2026-05-01", "end": "2026-04-01"}, "end", "before its start"),
        ({"scope": ["intake", "everything"]}, "scope", "Choose among the scopes"),
    ],
)
def test_a_bad_link_form_names_the_field(chart, sharing, fields, field_id, words) -> None:
    response = chart.post("/sharing/links", data=link_form(csrf(chart), **fields))
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    error = re.search(rf'id="err-{field_id}" class="error-text" role="alert">([^<]+)<', text)
    assert error and words in error[1]
    assert sharing.named("create") == []
    assert "open-sesame" not in text  # not even sent back into the form


def test_a_scope_the_consent_does_not_cover_is_refused(chart, sharing: Recorder) -> None:
    sharing.fail = ConsentMissing("the consent does not cover", ("treatments",))
    response = chart.post("/sharing/links", data=link_form(csrf(chart), scope=["treatments"]))
    text = response.get_data(as_text=True)
    assert response.status_code == 403
    assert re.search(r'id="err-share"[^>]*>The consent does not cover: Treatment records\.<', text)
    assert 'id="qr-image"' not in text


def test_a_sharing_error_is_shown_on_its_field(chart, sharing: Recorder) -> None:
    sharing.fail = SharingError("label: control characters are not allowed")
    response = chart.post("/sharing/links", data=link_form(csrf(chart)))
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert re.search(r'id="err-label"[^>]*>Control characters are not allowed\.<', text)


def test_a_read_only_session_creates_nothing(client, fake_ehr: FakeEhr, sharing) -> None:
    fake_ehr.granted_scope = "openid fhirUser launch patient/*.rs"
    assert launch(client, fake_ehr).status_code == 303
    text = client.get("/sharing").get_data(as_text=True)
    assert 'id="read-only-notice"' in text
    token = re.search(r'name="csrf_token" value="([^"]+)"', text)[1]
    for path, data in (
        ("/sharing/links", link_form(token)),
        ("/sharing/links/L1/revoke", {"csrf_token": token}),
        ("/sharing/push", push_form(token)),
    ):
        response = client.post(path, data=data)
        assert response.status_code == 403
        assert 'data-error-code="read_only"' in response.get_data(as_text=True)
    assert [name for name, _ in sharing.calls if name != "list"] == []


def test_the_workflow_refusing_a_read_only_actor_is_a_read_only_page(chart, sharing) -> None:
    sharing.fail = NotAllowedError(read_only=True)
    response = chart.post("/sharing/links", data=link_form(csrf(chart)))
    assert response.status_code == 403
    assert 'data-error-code="read_only"' in response.get_data(as_text=True)


# ── Refusals: CSRF, another client ────────────────────────────────────────────


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/sharing/links", link_form("")),
        ("/sharing/links/L1/revoke", {}),
        ("/sharing/push", push_form("")),
    ],
)
def test_a_post_without_the_csrf_token_is_refused(chart, sharing, path, data) -> None:
    data = {k: v for k, v in data.items() if k != "csrf_token"}
    response = chart.post(path, data=data)
    assert response.status_code == 400
    assert 'data-error-code="csrf_failed"' in response.get_data(as_text=True)
    response = chart.post(path, data={**data, "csrf_token": "forged"})
    assert response.status_code == 400
    assert [name for name, _ in sharing.calls if name != "list"] == []


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/sharing/links", link_form),
        ("/sharing/push", push_form),
        ("/sharing/links/L1/revoke", lambda token, **f: {"csrf_token": token, **f}),
    ],
)
def test_a_share_for_another_client_is_refused_and_audited(
    chart, sharing: Recorder, fake_ehr: FakeEhr, path, form
) -> None:
    token = csrf(chart)
    before = len(fake_ehr.audit_events)
    response = chart.post(path, data=form(token, patient="Patient/someone-else"))
    assert response.status_code == 403
    assert 'data-error-code="wrong_patient"' in response.get_data(as_text=True)
    assert [name for name, _ in sharing.calls if name != "list"] == []
    (event,) = fake_ehr.audit_events[before:]
    assert event["outcome"] != "0"  # a failure
    assert "outside the launch context" in event["outcomeDesc"]
    assert "someone-else" in str(event["entity"])


def test_a_query_naming_another_client_is_refused(chart, sharing) -> None:
    assert chart.get("/sharing?patient=other").status_code == 403
    assert chart.get("/sharing/summary.pdf?patient=other").status_code == 403


# ── Revoke ────────────────────────────────────────────────────────────────────


def test_revoke_calls_the_workflow_and_comes_back(chart, sharing: Recorder) -> None:
    response = chart.post("/sharing/links/L2/revoke", data={"csrf_token": csrf(chart)})
    assert response.status_code == 303
    assert re.fullmatch(r"/sharing/?\?saved=revoked#links", response.headers["Location"])
    (call,) = sharing.named("revoke")
    assert (call["patient_id"], call["link_id"]) == ("p1", "L2")
    text = chart.get("/sharing?saved=revoked").get_data(as_text=True)
    assert 'id="link-revoked"' in text


def test_revoking_a_link_that_is_not_this_clients_is_404_and_audited(
    chart, sharing: Recorder, fake_ehr: FakeEhr
) -> None:
    from symfhir.errors import LinkInactive

    token = csrf(chart)
    sharing.fail = LinkInactive("no such link")
    before = len(fake_ehr.audit_events)
    response = chart.post("/sharing/links/L9/revoke", data={"csrf_token": token})
    assert response.status_code == 404
    assert 'data-error-code="link_not_found"' in response.get_data(as_text=True)
    (event,) = fake_ehr.audit_events[before:]
    assert "not this client" in event["outcomeDesc"]


# ── Push ──────────────────────────────────────────────────────────────────────


def test_a_push_sends_and_shows_the_report(chart, sharing: Recorder, caplog) -> None:
    caplog.set_level("DEBUG")
    response = chart.post("/sharing/push", data=push_form(csrf(chart), mode="transaction"))
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    (call,) = sharing.named("push")
    assert call["target"].base_url == "https://fhir.physician.example/r4"
    assert call["target"].bearer_token == "secret-bearer-token-123"
    assert call["mode"] == "transaction"
    assert call["scopes"] == ("summary", "intake")
    assert 'id="push-report"' in text
    assert re.search(r'<tr data-type="Bundle"><td>Bundle</td><td>1</td></tr>', text)
    assert "pushed to https://fhir.physician.example/r4 as a transaction" in text
    assert "secret-bearer-token-123" not in text  # never echoed
    assert "secret-bearer-token-123" not in caplog.text  # never logged


@pytest.mark.parametrize(
    ("fields", "field_id"),
    [
        ({"base_url": "ftp://x"}, "base_url"),
        ({"base_url": "http://fhir.physician.example/r4"}, "base_url"),  # the token in clear
        ({"base_url": "https://"}, "base_url"),
        ({"base_url": ""}, "base_url"),
        ({"token": ""}, "token"),
        ({"mode": "everything"}, "mode"),
        ({"scope": ["nope"]}, "push_scope"),
    ],
)
def test_a_bad_push_form_names_the_field(chart, sharing, fields, field_id) -> None:
    response = chart.post("/sharing/push", data=push_form(csrf(chart), **fields))
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert re.search(rf'id="err-{field_id}" class="error-text" role="alert">[^<]+<', text)
    assert sharing.named("push") == []
    assert "secret-bearer-token-123" not in text


def test_a_refused_push_says_why(chart, sharing: Recorder) -> None:
    sharing.fail = PushError("the server cannot take a transaction")
    response = chart.post("/sharing/push", data=push_form(csrf(chart)))
    assert response.status_code == 502
    text = response.get_data(as_text=True)
    assert re.search(r'id="err-push"[^>]*>The server cannot take a transaction\.<', text)
    assert "secret-bearer-token-123" not in text


def test_a_push_to_a_server_on_this_machine_may_use_http(chart, sharing: Recorder) -> None:
    form = push_form(csrf(chart), base_url="http://localhost:8081/fhir")
    assert chart.post("/sharing/push", data=form).status_code == 200
    (call,) = sharing.named("push")
    assert call["target"].base_url == "http://localhost:8081/fhir"


def test_a_push_without_consent_is_refused(chart, sharing: Recorder) -> None:
    token = csrf(chart)
    sharing.fail = ConsentMissing("no active consent to share with the client's physician")
    response = chart.post("/sharing/push", data=push_form(token))
    assert response.status_code == 403


# ── The summary ───────────────────────────────────────────────────────────────


def test_the_summary_downloads_as_html_and_pdf(chart, sharing: Recorder, fake_ehr) -> None:
    before = len(fake_ehr.audit_events)
    page = chart.get("/sharing/summary.html")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "Patient summary" in page.get_data(as_text=True)
    assert "patient-summary.html" in page.headers["Content-Disposition"]
    pdf = chart.get("/sharing/summary.pdf")
    assert pdf.status_code == 200
    assert pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")
    assert "patient-summary.pdf" in pdf.headers["Content-Disposition"]
    assert sharing.summaries == 2
    events = fake_ehr.audit_events[before:]
    assert len(events) == 2 and all("patient summary" in e["outcomeDesc"] for e in events)


def test_without_a_launch_the_tab_asks_for_one(client, sharing) -> None:
    response = client.get("/sharing")
    assert response.status_code == 401
    assert 'data-error-code="session_expired"' in response.get_data(as_text=True)


def test_without_a_store_the_tab_says_sharing_is_not_set_up(chart, app, monkeypatch) -> None:
    app.config["SYMFHIR_STORE"] = None
    monkeypatch.delenv("SYMFHIR_STORE_KEYS", raising=False)
    response = chart.get("/sharing")
    assert response.status_code == 503
    assert 'data-error-code="store_not_set_up"' in response.get_data(as_text=True)


# ── With the real link store and workflows (list, revoke) ─────────────────────


def _stored_link(store, patient_id: str, now: datetime) -> str:
    """A link in the store for ``patient_id`` (a one-file package), made by the link store."""
    from symfhir.sharing.gate import SharePlan
    from symfhir.sharing.links import create_link
    from symfhir.sharing.package import SharedFile, SharePackage

    plan = SharePlan(
        patient_id=patient_id,
        basis="Consent/c1",
        recipient=PHYSICIAN,
        scopes=frozenset({"summary"}),
        types=frozenset({"Patient"}),
        photos=False,
        start=None,
        end=None,
    )
    document = b'{"resourceType": "Bundle", "type": "document"}'
    package = SharePackage(
        plan=plan,
        files=(SharedFile("patient-summary.json", "application/fhir+json", lambda: document),),
        counts={"Patient": 1},
        photos=0,
    )
    link = create_link(
        store,
        package,
        label="Stored link",
        passcode=None,
        expires_at=now + timedelta(days=3),
        max_accesses=None,
        single_file=False,
        created_by="Practitioner/dr1",
        links_base="http://links.example",
        viewer_base="http://links.example/view",
        now=now,
    )
    return link.link_id


@pytest.fixture
def real_links(chart, monkeypatch: pytest.MonkeyPatch, sharing: Recorder) -> Recorder:
    """The views with the real list and revoke workflows on the test's store."""
    monkeypatch.setattr(workflow, "list_shares", REAL_LIST_SHARES)
    monkeypatch.setattr(views, "revoke_share", workflow.revoke_share)
    return sharing


def test_a_stored_link_is_listed_and_revoked(chart, real_links, store, fake_ehr) -> None:
    now = datetime.now(UTC)
    link_id = _stored_link(store, "p1", now)
    text = chart.get("/sharing").get_data(as_text=True)
    assert re.search(rf'<tr id="link-{link_id}" data-status="active"', text)
    assert "Stored link" in text and "for Dr. Olamide Sorrel" in text
    token = csrf(chart)
    response = chart.post(f"/sharing/links/{link_id}/revoke", data={"csrf_token": token})
    assert response.status_code == 303
    text = chart.get("/sharing?saved=revoked").get_data(as_text=True)
    assert re.search(rf'<tr id="link-{link_id}" data-status="revoked"', text)
    assert f'id="revoke-{link_id}"' not in text
    assert any(f"{link_id} revoked" in (e.get("outcomeDesc") or "") for e in fake_ehr.audit_events)


def test_another_clients_link_is_neither_listed_nor_revoked(chart, real_links, store) -> None:
    from symfhir.sharing.links import links_of

    now = datetime.now(UTC)
    theirs = _stored_link(store, "someone-else", now)
    text = chart.get("/sharing").get_data(as_text=True)
    assert theirs not in text
    response = chart.post(f"/sharing/links/{theirs}/revoke", data={"csrf_token": csrf(chart)})
    assert response.status_code == 404
    (record,) = links_of(store, "someone-else")
    assert record.status == "active"


def test_an_invalid_summary_document_shares_nothing_and_says_so(chart, sharing, monkeypatch):
    from symfhir.errors import FhirValidationError

    problem = FhirValidationError([("Bundle.entry[3]", "reference not resolvable")])
    sharing.fail = problem
    response = chart.post("/sharing/links", data=link_form(csrf(chart)))
    assert response.status_code == 500
    assert 'data-error-code="invalid_summary"' in response.get_data(as_text=True)
    response = chart.post("/sharing/push", data=push_form(csrf(chart)))
    assert response.status_code == 500

    def invalid(resources, **kwargs):
        raise problem

    monkeypatch.setattr(workflow, "patient_summary", invalid)
    response = chart.get("/sharing/summary.pdf")
    assert response.status_code == 500
    assert 'data-error-code="invalid_summary"' in response.get_data(as_text=True)


def test_the_summary_is_rendered_by_the_real_document_and_renderers(
    chart, sharing: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from symfhir.sharing import summary, summary_render

    monkeypatch.setattr(workflow, "patient_summary", summary.patient_summary)
    monkeypatch.setattr(views, "summary_html", summary_render.summary_html)
    monkeypatch.setattr(views, "summary_pdf", summary_render.summary_pdf)
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"given": ["Zoë"], "family": "Nguyễn"}],
        "birthDate": "1990-12-06",
    }
    monkeypatch.setattr(workflow, "read_summary_resources", lambda client, actor, pid: [patient])
    page = chart.get("/sharing/summary.html")
    assert page.status_code == 200
    assert "Nguyễn" in page.get_data(as_text=True)
    pdf = chart.get("/sharing/summary.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def test_the_store_is_made_once_from_the_environment(chart, app, monkeypatch, tmp_path) -> None:
    from cryptography.fernet import Fernet

    app.config["SYMFHIR_STORE"] = None
    monkeypatch.setenv("SYMFHIR_STORE_URL", f"sqlite:///{tmp_path / 'links.db'}")
    monkeypatch.setenv("SYMFHIR_STORE_KEYS", Fernet.generate_key().decode())
    assert chart.get("/sharing").status_code == 200
    made = app.extensions["symfhir_store"]
    assert str(made.url).endswith("links.db")
    assert chart.get("/sharing").status_code == 200
    assert app.extensions["symfhir_store"] is made
    made.dispose()
