"""The sharing workflows over a fake FHIR server and a real store: a link is made only behind
the client's consent (deny by default, audited either way), carries only what the plan allows
(opened here with the independent decoder), is revoked or stopped at once, and its accesses
are listed; bad options are refused before anything of the record is read."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from symfhir.errors import (
    ConsentMissing,
    LinkInactive,
    NotAllowedError,
    PrivacyRequestError,
    SharingError,
)
from symfhir.privacy.model import PrivacyRequest, Requester
from symfhir.sharing import push, transfer, workflow
from symfhir.sharing.links import open_manifest
from symfhir.sharing.workflow import (
    LinkSettings,
    create_share,
    list_shares,
    revoke_share,
    share_log,
    stop_shares,
)
from symfhir.store import Store
from symfhir.workspace.actor import Actor
from tests import shl_decoder
from tests.unit.fake_fhir import Trail
from tests.unit.sharing_fake import (
    OTHER,
    PID,
    ShareFhir,
    clinical,
    consent,
    media,
    patient,
    practitioner,
    practitioner_role,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("America/Chicago"))
ACTOR = Actor("Practitioner/nurse1")
LINKS = LinkSettings("https://links.example.org", "https://links.example.org/view")


def record(*, scopes: tuple[str, ...] = ("summary", "intake"), status: str = "active") -> ShareFhir:
    """A client with a physician-sharing consent, a photo consent, and records of every kind
    (and one of another client that must never leave)."""
    return ShareFhir(
        [
            patient(),
            patient(OTHER),
            practitioner(),
            practitioner_role(),
            consent("c1", scopes=scopes, status=status),
            consent("c2", kind="photos_clinical"),
            clinical("AllergyIntolerance", "a1", code={"text": "latex"}),
            clinical(
                "Observation",
                "o1",
                status="final",
                code={"text": "weight"},
                effectiveDateTime="2026-05-01",
            ),
            clinical(
                "Procedure",
                "pr1",
                status="completed",
                code={"text": "neurotoxin"},
                performedDateTime="2026-05-02",
            ),
            clinical("Task", "t1", status="requested", intent="order"),
            media("m1"),
            clinical("AllergyIntolerance", "a-other", pid=OTHER, code={"text": "nuts"}),
        ]
    )


def share(fhir: ShareFhir, store: Store, trail: Trail, **kw: Any) -> workflow.CreatedShare:
    options: dict[str, Any] = {"scopes": ("summary", "intake"), "label": "For Dr. Ashgrove"}
    options.update(kw)
    return create_share(fhir, ACTOR, PID, store=store, links=LINKS, now=NOW, audit=trail, **options)


def opened(store: Store, link: Any, passcode: str | None = None) -> list[dict[str, Any]]:
    """The link's files as a physician's software reads them (the independent decoder),
    served from the store as the link service would."""
    payload = shl_decoder.parse(link.viewer_url)
    manifest_id = payload["url"].rsplit("/", 1)[1]
    access = open_manifest(
        store,
        manifest_id,
        recipient="Dr. Ashgrove's office",
        passcode=passcode,
        embedded_length_max=10**9,
        files_base=LINKS.links_base,
        now=NOW + timedelta(minutes=5),
    )
    key = shl_decoder.b64d(payload["key"])
    files = []
    for entry in access.manifest["files"]:
        _, data = shl_decoder.decrypt(entry["embedded"], key)
        files.append(json.loads(data))
    return files


def types_in(files: list[dict[str, Any]]) -> set[str]:
    found = set()
    for item in files:
        if item.get("resourceType") == "Bundle":
            found |= {e["resource"]["resourceType"] for e in item.get("entry", [])}
        else:
            found.add(item["resourceType"])
    return found


def test_a_link_carries_what_the_consent_and_scopes_allow_and_nothing_else(store: Store) -> None:
    trail = Trail()
    created = share(record(), store, trail)
    assert created.link.shlink.startswith("shlink:/")
    assert created.link.viewer_url.startswith("https://links.example.org/view#shlink:/")
    assert created.plan.basis == "Consent/c1"
    files = opened(store, created.link)
    assert files[0]["type"] == "document"  # the summary comes first
    found = types_in(files[1:])
    assert {"AllergyIntolerance", "Observation"} <= found
    # Not asked for, or never shared: photos, tasks, audit records.
    assert not found & {"Media", "Task", "AuditEvent"}
    text = json.dumps(files)
    assert "a-other" not in text and "nuts" not in text  # another client's record
    assert created.photos == 0 and "Media" not in created.counts


def test_making_a_link_is_audited_as_made_not_as_a_disclosure(store: Store) -> None:
    trail = Trail()
    created = share(record(), store, trail, passcode="correct horse", max_accesses=2)
    (event,) = trail.events
    subtype, success, description, resources = event
    assert (subtype, success) == ("create", True)
    assert resources == (f"Patient/{PID}", "Consent/c1")
    assert created.link.link_id in (description or "")
    assert "Dr. Dana Ashgrove" in (description or "") and "flags P" in (description or "")
    assert "correct horse" not in (description or "")
    assert trail.disclosures == [None]  # the disclosure is each opening of the link


@pytest.mark.parametrize(
    ("fhir", "scopes", "missing"),
    [
        (ShareFhir([patient(), practitioner()]), ("summary",), "physician_sharing"),
        (record(status="inactive"), ("summary",), "physician_sharing"),
        (record(), ("summary", "treatments"), "treatments"),
        (record(), ("summary", "photos"), "photos"),
        (record(), ("full",), "full"),
    ],
)
def test_no_consent_for_it_no_link_and_the_refusal_is_audited(
    store: Store, fhir: ShareFhir, scopes: tuple[str, ...], missing: str
) -> None:
    trail = Trail()
    with pytest.raises(ConsentMissing) as refused:
        share(fhir, store, trail, scopes=scopes)
    assert any(missing in m for m in refused.value.missing) or missing in str(refused.value)
    assert list_shares(store, ACTOR, PID, now=NOW) == []
    (event,) = trail.events
    assert event[0] == "create" and event[1] is False
    assert trail.disclosures == [None]


def test_photos_leave_only_with_the_scope_and_both_consents(store: Store) -> None:
    created = share(
        record(scopes=("summary", "intake", "photos")),
        store,
        Trail(),
        scopes=("summary", "photos"),
    )
    assert created.photos == 1
    files = opened(store, created.link)
    photos = [f for f in files if f.get("resourceType") == "Media"]
    assert len(photos) == 1 and photos[0]["content"]["data"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"label": "x" * 81}, "label"),
        ({"label": "line\nbreak"}, "label"),
        ({"passcode": "correct horse", "single_file": True}, "passcode"),
        ({"passcode": "1"}, "passcode"),
        ({"expires_at": NOW - timedelta(minutes=1)}, "expires_at"),
        ({"expires_at": datetime(2027, 1, 1)}, "expires_at"),
        ({"expires_at": NOW + timedelta(days=10_000)}, "expires_at"),
        ({"max_accesses": 0}, "max_accesses"),
        ({"single_file": True}, "single_file"),  # beyond the summary: more than one file
    ],
)
def test_bad_options_are_refused_before_anything_is_read(
    store: Store, options: dict[str, Any], field: str
) -> None:
    fhir = record()
    trail = Trail()
    with pytest.raises(SharingError, match=f"^{field}:"):
        share(fhir, store, trail, **options)
    assert fhir.batches == [] and trail.events == []


def test_a_bad_patient_id_or_a_read_only_session_shares_nothing(store: Store) -> None:
    fhir = record()
    with pytest.raises(SharingError, match=r"^patient:"):
        create_share(
            fhir, ACTOR, "../Patient/p2", store=store, scopes=("summary",), label=None,
            links=LINKS, now=NOW, audit=Trail(),
        )  # fmt: skip
    with pytest.raises(NotAllowedError):
        create_share(
            fhir, Actor("Practitioner/n1", writable=False), PID, store=store,
            scopes=("summary",), label=None, links=LINKS, now=NOW, audit=Trail(),
        )  # fmt: skip
    assert fhir.batches == []


def test_revoke_stops_the_link_at_once_and_only_for_its_own_client(store: Store) -> None:
    created = share(record(), store, Trail())
    link_id = created.link.link_id
    with pytest.raises(SharingError):
        revoke_share(store, ACTOR, OTHER, link_id, now=NOW, audit=Trail())
    assert list_shares(store, ACTOR, PID, now=NOW)[0].status == "active"
    trail = Trail()
    revoke_share(store, ACTOR, PID, link_id, now=NOW, audit=trail)
    (listed,) = list_shares(store, ACTOR, PID, now=NOW)
    assert listed.status == "revoked"
    assert listed.revoke_reason == workflow.REVOKED_BY_PRACTITIONER
    assert trail.events[0][:2] == ("update", True) and link_id in (trail.events[0][2] or "")
    with pytest.raises(LinkInactive):
        opened(store, created.link)


def test_a_withdrawn_consent_stops_every_link_of_the_client(store: Store) -> None:
    first = share(record(), store, Trail())
    share(record(), store, Trail(), label="Second")
    trail = Trail()
    assert stop_shares(store, PID, now=NOW, audit=trail) == 2
    assert {r.status for r in list_shares(store, ACTOR, PID, now=NOW)} == {"revoked"}
    assert "2 SMART Health Link(s) stopped" in (trail.events[0][2] or "")
    assert stop_shares(store, PID, now=NOW, audit=trail) == 0
    assert len(trail.events) == 1  # nothing stopped: nothing to audit
    with pytest.raises(LinkInactive):
        opened(store, first.link)


def test_the_log_lists_each_access_with_its_recipient_and_outcome(store: Store) -> None:
    created = share(record(), store, Trail(), passcode="correct horse")
    other = share(record(), store, Trail(), label="Other")
    opened(store, other.link)
    with pytest.raises(Exception, match="passcode"):
        opened(store, created.link, passcode="wrong guess")
    opened(store, created.link, passcode="correct horse")
    log = share_log(store, ACTOR, PID, created.link.link_id, now=NOW)
    assert [a.recipient for a in log] == ["Dr. Ashgrove's office"] * 2
    assert [a.link_id for a in log] == [created.link.link_id] * 2
    assert log[0].outcome != log[1].outcome  # a wrong passcode, then served
    assert len(share_log(store, ACTOR, PID, now=NOW)) == 3
    assert share_log(store, ACTOR, OTHER, now=NOW) == []


def test_link_settings_come_from_the_environment() -> None:
    assert LinkSettings.from_env({}) == LinkSettings(
        "http://localhost:5300", "http://localhost:5300/view"
    )
    custom = LinkSettings.from_env({"SYMFHIR_LINKS_BASE_URL": "https://links.spa.example/"})
    assert custom.viewer_base == "https://links.spa.example/view"
    for bad in ("ftp://x", "https://x/?q=1", "links.example", "https://"):
        with pytest.raises(SharingError):
            LinkSettings.from_env({"SYMFHIR_LINKS_BASE_URL": bad})


def test_the_app_and_the_command_line_push_through_the_same_function() -> None:
    assert workflow.push_share is push.push_share
    assert workflow.PushTarget is push.PushTarget


def test_the_portability_handler_builds_the_package_unless_a_transfer_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []
    monkeypatch.setattr(
        transfer.access_request, "handle", lambda *a, **kw: seen.append("package") or "outcome"
    )
    plain = PrivacyRequest("t1", "portability", Requester("Avery"), NOW, NOW.date(), patient_id=PID)
    assert transfer.handle(ShareFhir(), ACTOR, plain, now=NOW, audit=Trail()) == "outcome"
    asked = PrivacyRequest(
        "t2", "portability", Requester("Avery"), NOW, NOW.date(), patient_id=PID,
        inputs={"transfer-to": "Bayou Family Medicine"},
    )  # fmt: skip
    fhir = ShareFhir()
    with pytest.raises(PrivacyRequestError, match="symfhir share transfer"):
        transfer.handle(fhir, ACTOR, asked, now=NOW, audit=Trail())
    assert seen == ["package"] and fhir.batches == []


def test_the_privacy_processing_runs_the_transfer_aware_handler_for_portability() -> None:
    from symfhir.privacy.processing import handler_for
    from symfhir.privacy.tasks import Settings

    assert handler_for("portability", Settings.load().policy.handlers) is transfer.handle


def test_a_transfer_from_the_chart_needs_a_consent_to_the_full_record(store: Store) -> None:
    with pytest.raises(ConsentMissing):
        transfer.chart_transfer_link(
            record(), ACTOR, PID, store=store, links=LINKS, label=None, now=NOW, audit=Trail()
        )
    created = transfer.chart_transfer_link(
        record(scopes=("summary", "full", "photos")),
        ACTOR,
        PID,
        store=store,
        links=LINKS,
        label="Transfer to Bayou Family Medicine",
        photos=True,
        now=NOW,
        audit=Trail(),
    )
    assert created.link.flags == "L"
    assert created.photos == 1
    assert {"full", "photos"} <= created.plan.scopes


def test_a_single_file_link_carries_the_summary_alone(store: Store) -> None:
    created = share(record(), store, Trail(), scopes=("summary",), single_file=True)
    assert created.link.flags == "U"
    assert [f["type"] for f in opened_single(store, created.link)] == ["document"]


def opened_single(store: Store, link: Any) -> list[dict[str, Any]]:
    from symfhir.sharing.links import open_single

    payload = shl_decoder.parse(link.viewer_url)
    token, _ = open_single(
        store, payload["url"].rsplit("/", 1)[1], recipient="Dr. A", now=NOW + timedelta(minutes=1)
    )
    text = token.decode() if isinstance(token, bytes) else str(token)
    return [json.loads(shl_decoder.decrypt(text, shl_decoder.b64d(payload["key"]))[1])]
