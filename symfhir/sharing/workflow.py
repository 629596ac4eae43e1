"""Sharing with the client's physician through SMART Health Links: make one (``create_share``),
revoke one (``revoke_share``), list them with their accesses (``list_shares``, ``share_log``);
and the push to the physician's FHIR server (``push_share``, from ``symfhir.sharing.push``).

What leaves is computed from the active physician-sharing Consent and the scopes asked for,
never from the page (``symfhir.sharing.gate``: deny by default); the package is built from that
plan alone (``symfhir.sharing.package``) and stored encrypted behind the link
(``symfhir.sharing.links``). Making a link is audited as a ``create`` (who made it, for whom,
which scopes); it is not a disclosure yet: each opening of the link is one, written by the link
service when the manifest is served.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from symfhir.audit import AuditTrail
from symfhir.errors import (
    ConsentMissing,
    FhirRequestError,
    NotAllowedError,
    SharingError,
    SymfhirError,
)
from symfhir.fhir import FhirClient
from symfhir.fhir.paths import check_id
from symfhir.sharing import shl
from symfhir.sharing.gate import SharePlan, SharingConsent, plan_share, sharing_consent
from symfhir.sharing.link_settings import load_link_settings
from symfhir.sharing.links import (
    LinkRecord,
    NewLink,
    create_link,
    links_of,
    revoke_link,
    stop_links,
)
from symfhir.sharing.package import author_of, build_package
from symfhir.sharing.push import PushReport, PushTarget, push_share
from symfhir.sharing.summary import patient_summary
from symfhir.sharing.summary_read import read_summary_resources
from symfhir.store import Store
from symfhir.workspace.actor import Actor

__all__ = [
    "Access",
    "CreatedShare",
    "LinkSettings",
    "PushReport",
    "PushTarget",
    "create_share",
    "list_shares",
    "push_share",
    "revoke_share",
    "share_log",
    "sharing_overview",
    "stop_shares",
    "summary_document",
]

LINKS_BASE_ENV = "SYMFHIR_LINKS_BASE_URL"
DEFAULT_LINKS_BASE = "http://localhost:5300"
REVOKED_BY_PRACTITIONER = "revoked by a practitioner"
CONSENT_WITHDRAWN = "consent withdrawn"


@dataclass(frozen=True)
class LinkSettings:
    """Where the public link service answers (``links_base``: the manifest and file URLs) and
    where its viewer page is (``viewer_base``: the link follows it after ``#``)."""

    links_base: str = DEFAULT_LINKS_BASE
    viewer_base: str = DEFAULT_LINKS_BASE + "/view"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> LinkSettings:
        """``SYMFHIR_LINKS_BASE_URL`` (default http://localhost:5300), the viewer at its
        ``/view``. Raises SharingError for a base that is not an http(s) URL."""
        base = (environ.get(LINKS_BASE_ENV) or DEFAULT_LINKS_BASE).strip().rstrip("/")
        parts = urlsplit(base)
        usable = parts.scheme in ("http", "https") and parts.hostname
        if not usable or parts.query or parts.fragment or "?" in base or "#" in base:
            raise SharingError(f"{LINKS_BASE_ENV}: must be an http(s) URL without query")
        return cls(base, base + "/view")


@dataclass(frozen=True)
class CreatedShare:
    """A link made: the link (shlink, viewer URL, QR codes), the plan it was built from, and
    what it carries (resources per type, photos)."""

    link: NewLink
    plan: SharePlan
    counts: Mapping[str, int]
    photos: int

    @property
    def resources(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Access:
    """One access to one of the client's links, for the chart's log and ``symfhir share log``:
    the link, when, who said they were (the recipient string POSTed), and how it went."""

    link_id: str
    label: str
    when: datetime
    recipient: str
    outcome: str


def create_share(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    *,
    store: Store,
    scopes: Iterable[str],
    start: date | None = None,
    end: date | None = None,
    label: str | None,
    passcode: str | None = None,
    expires_at: datetime | None = None,
    max_accesses: int | None = None,
    single_file: bool = False,
    long_term: bool = False,
    links: LinkSettings,
    now: datetime,
    audit: AuditTrail,
) -> CreatedShare:
    """Make a SMART Health Link to the client's records for the physician their active
    physician-sharing Consent names, carrying what that consent and ``scopes`` (narrowed to
    ``start``..``end``) allow; ``passcode`` (flag P), ``expires_at``, ``max_accesses`` and
    ``single_file`` (flag U: the summary alone, never with a passcode) as given.

    Raises SharingError for a bad label, expiry, access limit or id (before anything is read),
    NotAllowedError in a read-only session, ConsentMissing when no active consent covers the
    request (deny by default: audited as a refused share), FhirServerError when the record
    cannot be read, StoreError when the link cannot be stored.
    """
    check_patient(patient_id)
    label = check_link_options(label, passcode, expires_at, max_accesses, single_file, now)
    actor.require(())  # a read-only session shares nothing
    requested = frozenset(scopes)
    if single_file and requested - {"summary"}:
        raise SharingError("single_file: a single-file link (U) carries the summary only")
    whose = (f"Patient/{patient_id}",)
    try:
        consent = sharing_consent(client, actor, patient_id, now=now)
        plan = plan_share(consent, requested, start=start, end=end)
    except SharingError as exc:
        audit(
            "create",
            success=False,
            description=f"SMART Health Link refused: {exc}",
            resources=whose,
        )
        raise
    return link_plan(
        client,
        actor,
        plan,
        store=store,
        label=label,
        passcode=passcode,
        expires_at=expires_at,
        max_accesses=max_accesses,
        single_file=single_file,
        long_term=long_term,
        links=links,
        now=now,
        audit=audit,
    )


def link_plan(
    client: FhirClient,
    actor: Actor,
    plan: SharePlan,
    *,
    store: Store,
    label: str | None,
    passcode: str | None,
    expires_at: datetime | None,
    max_accesses: int | None,
    single_file: bool,
    long_term: bool,
    links: LinkSettings,
    now: datetime,
    audit: AuditTrail,
) -> CreatedShare:
    """Build the package of ``plan`` (a physician share's, or a transfer's) and store it behind
    a new link; audited as a ``create`` naming the plan's basis, or as a failure. The options
    must have been checked (``check_link_options``). Raises FhirServerError, StoreError."""
    whose = (f"Patient/{plan.patient_id}", plan.basis)
    try:
        package = build_package(client, actor, plan.patient_id, plan, now=now)
        link = create_link(
            store,
            package,
            label=label,
            passcode=passcode,
            expires_at=expires_at,
            max_accesses=max_accesses,
            single_file=single_file,
            long_term=long_term,
            created_by=actor.fhir_user or "unknown",
            links_base=links.links_base,
            viewer_base=links.viewer_base,
            now=now,
        )
    except SymfhirError as exc:
        audit(
            "create",
            success=False,
            description=f"SMART Health Link not made: {type(exc).__name__}",
            resources=whose,
        )
        raise
    audit("create", description=describe_link(plan, link), resources=whose)
    return CreatedShare(link, plan, dict(package.counts), package.photos)


def revoke_share(
    store: Store,
    actor: Actor,
    patient_id: str,
    link_id: str,
    *,
    reason: str = REVOKED_BY_PRACTITIONER,
    now: datetime,
    audit: AuditTrail,
) -> None:
    """Revoke one of the client's links at once: its manifest answers 404 from now on.

    Raises SharingError for a bad id or when the client has no such link (another client's
    link is not theirs to revoke), NotAllowedError in a read-only session.
    """
    check_patient(patient_id)
    actor.require(())
    revoke_link(store, patient_id, link_id, reason=reason, now=now)
    audit(
        "update",
        description=f"SMART Health Link {link_id} revoked ({reason})",
        resources=(f"Patient/{patient_id}",),
    )


def stop_shares(
    store: Store,
    patient_id: str,
    *,
    reason: str = CONSENT_WITHDRAWN,
    now: datetime,
    audit: AuditTrail,
) -> int:
    """Deactivate every active link of the client at once (their physician-sharing consent was
    withdrawn); how many were stopped. Audited when any were."""
    check_patient(patient_id)
    stopped = stop_links(store, patient_id, reason=reason, now=now)
    if stopped:
        audit(
            "update",
            description=f"{stopped} SMART Health Link(s) stopped ({reason})",
            resources=(f"Patient/{patient_id}",),
        )
    return stopped


def list_shares(
    store: Store, actor: Actor, patient_id: str, *, now: datetime | None = None
) -> list[LinkRecord]:
    """The client's links, newest first, each with its status at ``now`` and its accesses."""
    del actor  # whoever may open the chart may see its links; the store knows no roles
    check_patient(patient_id)
    return list(links_of(store, patient_id, now=now))


@dataclass(frozen=True)
class SharingOverview:
    """The client's sharing at a glance: the active physician-sharing consent (None, and
    ``missing`` says why), and the client's links with their accesses."""

    consent: SharingConsent | None
    missing: str
    links: list[LinkRecord]


def sharing_overview(
    client: FhirClient, actor: Actor, patient_id: str, *, store: Store, now: datetime
) -> SharingOverview:
    """The consent and the links, for the chart's Sharing tab. A missing consent is not an
    error here (the tab offers its capture). Raises FhirServerError, StoreError."""
    try:
        consent: SharingConsent | None = sharing_consent(client, actor, patient_id, now=now)
        missing = ""
    except ConsentMissing as exc:
        consent, missing = None, exc.reason
    except NotAllowedError:
        consent, missing = None, "This session may not read the client's consents."
    return SharingOverview(consent, missing, list_shares(store, actor, patient_id, now=now))


def summary_document(
    client: FhirClient, actor: Actor, patient_id: str, *, now: datetime, audit: AuditTrail
) -> dict[str, Any]:
    """The client's patient summary document for the practitioner at the chart (to print):
    a read of the chart, audited as one, not a disclosure — sharing it goes through a link or
    a push. Raises NotAllowedError, FhirServerError, FhirValidationError (not a valid
    document: nothing is returned)."""
    check_patient(patient_id)
    resources = read_summary_resources(client, actor, patient_id)
    document = patient_summary(resources, patient_id=patient_id, now=now, author=author_of(actor))
    audit(
        "read",
        description=f"patient summary document ({len(resources)} resources)",
        resources=(f"Patient/{patient_id}",),
    )
    return document


def share_log(
    store: Store,
    actor: Actor,
    patient_id: str,
    link_id: str | None = None,
    *,
    now: datetime | None = None,
) -> list[Access]:
    """Every access to the client's links (or to ``link_id`` only), oldest first: when, the
    recipient the request named, and its outcome (served, wrong passcode, inactive...)."""
    accesses = [
        Access(record.link_id, record.label or "", access.at, access.recipient, access.outcome)
        for record in list_shares(store, actor, patient_id, now=now)
        if link_id is None or record.link_id == link_id
        for access in record.accesses
    ]
    return sorted(accesses, key=lambda a: a.when)


def describe_link(plan: SharePlan, link: NewLink) -> str:
    """The audit's words for a link made: for whom, which scopes, the date range, the flags
    and the expiry; no patient data (the physician's name is not the client's)."""
    scopes = ", ".join(sorted(plan.scopes))
    parts = [f"SMART Health Link {link.link_id} made for {plan.recipient.name}: {scopes}"]
    if plan.start or plan.end:
        parts.append(f"records {plan.start or '…'} to {plan.end or '…'}")
    if link.flags:
        parts.append(f"flags {link.flags}")
    parts.append(f"expires {link.expires_at.isoformat()}" if link.expires_at else "no expiry")
    return "; ".join(parts)


def check_patient(patient_id: str) -> str:
    """``patient_id`` if it is a FHIR id; raises SharingError."""
    try:
        return check_id(patient_id, "patient id")
    except FhirRequestError:
        raise SharingError("patient: not a valid FHIR id") from None


def check_link_options(
    label: str | None,
    passcode: str | None,
    expires_at: datetime | None,
    max_accesses: int | None,
    single_file: bool,
    now: datetime,
) -> str | None:
    """The link's label (trimmed; None for none) once the link's options are checked against
    ``mappings/links.yaml``, before anything of the record is read (``create_link`` checks
    them again). Raises SharingError naming the field."""
    settings = load_link_settings()
    label = shl.check_label((label or "").strip() or None)
    if label is not None and len(label) > settings.label_max:
        raise SharingError(f"label: at most {settings.label_max} characters")
    if passcode is not None:
        if single_file:
            raise SharingError("passcode: a single-file link (U) cannot have a passcode (P)")
        if not settings.passcode_min <= len(passcode) <= settings.passcode_max:
            raise SharingError(
                f"passcode: {settings.passcode_min} to {settings.passcode_max} characters"
            )
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise SharingError("expires_at: needs a time zone")
        if expires_at <= now:
            raise SharingError("expires_at: must be in the future")
        if expires_at > now + settings.max_expiry:
            raise SharingError(f"expires_at: at most {settings.max_expiry.days} days ahead")
    if max_accesses is not None and (isinstance(max_accesses, bool) or max_accesses < 1):
        raise SharingError("max_accesses: must be at least 1")
    return label
