"""The consent gate of physician sharing (deny by default): the client's active
physician-sharing Consent, the plan of one share, and the one filter every package and push
applies (``allowed``).

The Consent (hl7.org/fhir/R4/consent.html) records the share-scope codes the client chose as
``provision.code`` (none: ``summary`` only), their resource types as ``provision.class``, a
date range as ``provision.dataPeriod``, and the physician as the IRCP ``provision.actor``
(``Practitioner/{id}``). Whether a consent is active is ``symfhir.workspace.consents``'s
answer (the newest Consent of the kind, given); whether a photo may be used is
``symfhir.workspace.photos.consents``'s (the photos_clinical consent given on or before the
day the photo was taken). What leaves is computed here from the Consent and the scopes asked
for, never from a page.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from symfhir.consent_kinds import load_consent_kinds
from symfhir.errors import ConsentMissing, FhirServerError, SharingError
from symfhir.fhir import FhirClient
from symfhir.fhir.compartment import in_compartment, load_compartment
from symfhir.fhir.paths import check_id
from symfhir.fhir.reading import batch_resources, human_name, read_batch, reference_id
from symfhir.mapping.context import MappingContext
from symfhir.mapping.practitioner import NPI_SYSTEM
from symfhir.sharing.scopes import PHOTOS, SCOPE_SYSTEM, SUMMARY, Sharing, load_sharing
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.recording import read_record
from symfhir.workspace.consents.status import (
    KIND_SYSTEM,
    consent_kind_of,
    consent_overview,
)
from symfhir.workspace.photos.consents import (
    ConsentState,
    allowed_uses,
    consent_states,
    local_date,
)

log = logging.getLogger(__name__)

KIND = "physician_sharing"
PHOTO_KIND = "photos_clinical"
IRCP = "IRCP"
PARTICIPATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
NO_CONSENT = "the client has no active consent to share records with their physician"
CONSENT_PAGE = 200


@dataclass(frozen=True)
class Recipient:
    """The physician or the new provider a share goes to."""

    reference: str | None  # "Practitioner/123"
    name: str
    npi: str | None = None
    organization: str | None = None
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class SharingConsent:
    """The client's active physician-sharing Consent, as the gate reads it.

    ``scopes`` are the share-scope codes it records (``summary`` always among them);
    ``start``/``end`` its ``provision.dataPeriod`` (spa-local days); ``photos_consent``
    whether an active photos_clinical consent exists, ``photos_since`` the day it was given
    (a photo taken earlier is not covered)."""

    consent_id: str
    version_id: str | None
    recipient: Recipient
    scopes: frozenset[str]
    start: date | None
    end: date | None
    photos_consent: bool
    patient_id: str = ""
    photos_since: date | None = None


@dataclass(frozen=True)
class SharePlan:
    """What one share may include: computed from a Consent (basis ``Consent/{id}``) or from a
    verified portability request (basis ``Task/{id}``), never from a page.

    ``scopes`` are the scopes asked for with all they cover; ``types`` the resource types
    that may leave; ``photos`` whether photos may; ``start``/``end`` the date range
    (spa-local days, both inclusive); ``photos_since`` the day the photos_clinical consent was
    given (a Consent-based plan shares no photo taken before it)."""

    patient_id: str
    basis: str
    recipient: Recipient
    scopes: frozenset[str]
    types: frozenset[str]
    photos: bool
    start: date | None
    end: date | None
    photos_since: date | None = None

    @property
    def transfer(self) -> bool:
        """A transfer on the client's own verified request (not a physician share)."""
        return self.basis.startswith("Task/")

    @property
    def beyond_summary(self) -> bool:
        """Whether the plan shares more than the summary document (``records.json``)."""
        return bool(self.scopes - {SUMMARY, PHOTOS})


# ── Reading the Consent ───────────────────────────────────────────────────────


def sharing_consent(
    client: FhirClient, actor: Actor, patient_id: str, *, now: datetime
) -> SharingConsent:
    """The client's active physician-sharing Consent: one batch for the consents (the
    consents workflow's own read), one for the physician it names.

    Raises ConsentMissing when there is none (never given, declined, withdrawn, expired, the
    consents could not be read) or it names no Practitioner; FhirServerError when the
    server fails the consents read.
    """
    ctx = MappingContext.load(now)
    record = read_record(client, actor, patient_id, ctx)
    if "Consent" in record.failed:
        raise ConsentMissing("the client's consents could not be read", (KIND,))
    status = next((s for s in record.overview if s.key == KIND), None)
    current = status.current if status else None
    if current is None or current.status != "given":
        raise ConsentMissing(NO_CONSENT, (KIND,))
    consent = record.consents[current.id]
    zone = ctx.spa.zone
    if _ended(consent, now, zone):
        raise ConsentMissing(NO_CONSENT, (KIND,))
    reference = recipient_reference(consent)
    if reference is None:
        raise ConsentMissing("the physician-sharing consent names no physician", ("physician",))
    start, end = data_period(consent, zone)
    photo = consent_states(list(record.consents.values()), zone).get(PHOTO_KIND)
    given = photo is not None and photo.status == "given"
    return SharingConsent(
        consent_id=current.id,
        version_id=current.version or None,
        recipient=read_recipient(client, actor, reference),
        scopes=consent_scopes(consent),
        start=start,
        end=end,
        photos_consent=given,
        patient_id=patient_id,
        photos_since=photo.date if given and photo is not None else None,
    )


def consent_scopes(consent: Mapping[str, Any], sharing: Sharing | None = None) -> frozenset[str]:
    """The share-scope codes of ``provision.code`` that the rules know, with ``summary``
    (a Consent without any covers ``summary`` only)."""
    sharing = sharing or load_sharing()
    codes = {SUMMARY}
    for concept in (consent.get("provision") or {}).get("code") or []:
        found = concept.get("coding") if isinstance(concept, Mapping) else None
        for coding in found if isinstance(found, list) else []:
            if isinstance(coding, Mapping) and coding.get("system") == SCOPE_SYSTEM:
                code = coding.get("code")
                if isinstance(code, str) and code in sharing.scopes:
                    codes.add(code)
    return frozenset(codes)


def data_period(consent: Mapping[str, Any], zone: ZoneInfo) -> tuple[date | None, date | None]:
    """``provision.dataPeriod`` as spa-local days (None for an open or unreadable end)."""
    period = (consent.get("provision") or {}).get("dataPeriod") or {}
    if not isinstance(period, Mapping):
        return None, None
    return local_date(period.get("start"), zone), local_date(period.get("end"), zone)


def recipient_reference(consent: Mapping[str, Any]) -> str | None:
    """``Practitioner/{id}`` of the Consent's IRCP actor (the information recipient)."""
    for actor in (consent.get("provision") or {}).get("actor") or []:
        if not isinstance(actor, Mapping):
            continue
        roles = {
            (c.get("system"), c.get("code"))
            for c in (actor.get("role") or {}).get("coding") or []
            if isinstance(c, Mapping)
        }
        if (PARTICIPATION_SYSTEM, IRCP) not in roles:
            continue
        found = reference_id(actor.get("reference"), "Practitioner")
        if found:
            return f"Practitioner/{found}"
    return None


def read_recipient(client: FhirClient, actor: Actor, reference: str) -> Recipient:
    """The Practitioner ``reference`` names, and the practice of its first PractitionerRole,
    in one batch. What the actor may not read, or the server does not answer, is left out
    (the reference stays: it is what the consent names)."""
    practitioner_id = check_id(reference.split("/", 1)[1])
    urls: list[str] = []
    labels: list[str] = []
    if actor.may("Practitioner", "r"):
        urls.append(f"Practitioner/{practitioner_id}")
        labels.append("Practitioner")
    if actor.may("PractitionerRole", "s"):
        urls.append(f"PractitionerRole?practitioner=Practitioner/{practitioner_id}&_count=5")
        labels.append("PractitionerRole")
    found: list[dict[str, Any]] = []
    if urls:
        try:
            found = batch_resources(client.batch(read_batch(urls)), labels).resources
        except FhirServerError as exc:
            log.info("sharing: the physician could not be read: %s", exc.log_text)
    doctor = next(
        (
            r
            for r in found
            if r.get("resourceType") == "Practitioner" and r.get("id") == practitioner_id
        ),
        {},
    )
    return recipient_of(doctor, found, reference)


def recipient_of(
    practitioner: Mapping[str, Any], related: Iterable[Mapping[str, Any]], reference: str
) -> Recipient:
    """A Recipient from a Practitioner and the PractitionerRoles among ``related``."""
    npi = next(
        (
            str(i["value"])
            for i in practitioner.get("identifier") or []
            if isinstance(i, Mapping) and i.get("system") == NPI_SYSTEM and i.get("value")
        ),
        None,
    )
    telecom = [t for t in practitioner.get("telecom") or [] if isinstance(t, Mapping)]
    phone = next((str(t["value"]) for t in telecom if t.get("system") == "phone"), None)
    email = next((str(t["value"]) for t in telecom if t.get("system") == "email"), None)
    organization = None
    for role in related:
        if role.get("resourceType") != "PractitionerRole":
            continue
        if reference_id(role.get("practitioner"), "Practitioner") != reference.split("/")[-1]:
            continue
        display = (role.get("organization") or {}).get("display")
        if isinstance(display, str) and display.strip():
            organization = display.strip()
            break
    return Recipient(
        reference=reference,
        name=human_name(practitioner.get("name")) or "the client's physician",
        npi=npi,
        organization=organization,
        phone=phone,
        email=email,
    )


def _ended(consent: Mapping[str, Any], now: datetime, zone: ZoneInfo) -> bool:
    # An active Consent whose provision.period has ended no longer permits anything.
    end = local_date(((consent.get("provision") or {}).get("period") or {}).get("end"), zone)
    return end is not None and end < now.astimezone(zone).date()


def consent_active(
    client: FhirClient, consent_id: str, *, now: datetime, patient_id: str | None = None
) -> bool:
    """Whether ``Consent/{consent_id}`` still permits sharing: it is the client's current
    physician-sharing Consent (no newer one declined, withdrew or replaced it), given, and
    its period has not ended. ``patient_id`` (when the caller knows it) saves one read.

    The link service's re-check before every disclosure: any doubt is False (a Consent
    that cannot be read, that is not a physician-sharing one, or of another client).
    Raises nothing for a server failure: it is logged and the answer is False.
    """
    zone = load_spa().zone
    try:
        wanted = check_id(consent_id)
        if patient_id is None:
            consent = client.read("Consent", wanted)
            patient_id = reference_id(consent.get("patient"), "Patient")
            if patient_id is None:
                return False
        params = {
            "patient": f"Patient/{check_id(patient_id)}",
            "category": f"{KIND_SYSTEM}|{KIND}",
            "_count": CONSENT_PAGE,
        }
        consents = [
            c
            for c in client.search_all("Consent", params)
            if c.get("resourceType") == "Consent" and in_compartment(c, patient_id)
        ]
    except (FhirServerError, SharingError) as exc:
        log.info("sharing: the consent re-check failed: %s", getattr(exc, "log_text", exc))
        return False
    kinds = load_consent_kinds()
    status = next((s for s in consent_overview(consents, kinds, zone) if s.key == KIND), None)
    current = status.current if status else None
    if current is None or current.id != wanted or current.status != "given":
        return False
    consent = next(c for c in consents if c.get("id") == wanted)
    return consent_kind_of(consent, kinds) == KIND and not _ended(consent, now, zone)


# ── The plan of one share ─────────────────────────────────────────────────────


def plan_share(
    consent: SharingConsent,
    requested: Iterable[str],
    *,
    start: date | None = None,
    end: date | None = None,
) -> SharePlan:
    """The plan of a share of the scopes ``requested`` under ``consent`` (pure).

    ``summary`` is always part of it; every other scope must be one the consent records or
    covers (``full`` covers summary, intake and treatments; never photos), and photos also
    need the active photos_clinical consent. The date range is the consent's narrowed to
    ``start``/``end`` when given (never widened).

    Raises SharingError for an unknown scope, a start after the end, or a consent without
    its client; ConsentMissing (``missing`` names what) when the consent does not cover a
    scope asked for, photos lack their consent, or the range asked for lies outside the
    consent's.
    """
    sharing = load_sharing()
    if not consent.patient_id:
        raise SharingError("patient: the consent names no client")
    codes = {str(code).strip() for code in requested}
    codes.discard("")
    unknown = sorted(codes - set(sharing.scopes))
    if unknown:
        raise SharingError(
            f"scopes: unknown scope {unknown[0]!r}; choose from {', '.join(sharing.scopes)}"
        )
    if start is not None and end is not None and start > end:
        raise SharingError("start: the start date is after the end date")
    covered = sharing.closure(consent.scopes)
    missing = sorted((codes | {SUMMARY}) - covered)
    if missing:
        raise ConsentMissing(
            f"the client's consent does not cover: {', '.join(missing)}", tuple(missing)
        )
    if PHOTOS in codes and not (consent.photos_consent and consent.photos_since is not None):
        raise ConsentMissing(
            "photos need the client's active consent to clinical photos", (PHOTO_KIND,)
        )
    first = _later(consent.start, start)
    last = _earlier(consent.end, end)
    if first is not None and last is not None and first > last:
        raise ConsentMissing(
            "the dates asked for lie outside the range the client's consent covers",
            ("date range",),
        )
    return SharePlan(
        patient_id=consent.patient_id,
        basis=f"Consent/{consent.consent_id}",
        recipient=consent.recipient,
        scopes=sharing.closure(codes),
        types=sharing.types_of(codes),
        photos=PHOTOS in codes,
        start=first,
        end=last,
        photos_since=consent.photos_since if PHOTOS in codes else None,
    )


def transfer_plan(patient_id: str, recipient: Recipient, task_id: str) -> SharePlan:
    """The plan of a transfer to another provider on the client's own verified portability
    request (policy §6; basis ``Task/{task_id}``): the full record with every photo, no
    date range. Raises SharingError for an empty patient or task id."""
    if not patient_id or not task_id:
        raise SharingError("patient: a transfer needs the client and the request's Task")
    sharing = load_sharing()
    codes = set(sharing.scopes)
    return SharePlan(
        patient_id=patient_id,
        basis=f"Task/{task_id}",
        recipient=recipient,
        scopes=sharing.closure(codes),
        types=sharing.types_of(codes),
        photos=True,
        start=None,
        end=None,
    )


def _later(a: date | None, b: date | None) -> date | None:
    return max(a, b) if a is not None and b is not None else a or b


def _earlier(a: date | None, b: date | None) -> date | None:
    return min(a, b) if a is not None and b is not None else a or b


# ── The one filter ────────────────────────────────────────────────────────────

_ERROR_STATUS = "entered-in-error"


def allowed(resource: Mapping[str, Any], plan: SharePlan) -> bool:
    """Whether ``resource`` may leave under ``plan`` (pure; deny by default).

    It must be of a type the plan lists (never Task, AuditEvent or Binary; Media only when
    the plan shares photos), not entered in error, the plan's client's own (a practice
    resource, in a full share, belongs to nobody), within the date range unless its type is
    standing; for a photo, an image the photos_clinical consent covers on the day it was
    taken (a transfer on the client's own request takes every photo); for a Consent short of a
    full share, one of the kinds that bear on care (``consent_kinds`` of the rules). A photo
    kept as a DocumentReference never leaves as one: photos leave as Media only.
    """
    sharing = load_sharing()
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in plan.types:
        return False
    if resource_type == "Media":
        if not plan.photos or PHOTOS not in plan.scopes:
            return False
    elif resource_type in sharing.never:
        return False
    if _in_error(resource):
        return False
    compartment = load_compartment()
    if resource_type in compartment:
        if not in_compartment(resource, plan.patient_id):
            return False
    elif "full" not in plan.scopes:
        return False
    zone = load_spa().zone
    if (plan.start is not None or plan.end is not None) and resource_type not in sharing.standing:
        day = dated(resource, sharing, zone)
        if day is None:
            return False
        if plan.start is not None and day < plan.start:
            return False
        if plan.end is not None and day > plan.end:
            return False
    if resource_type == "Media":
        return _photo_allowed(resource, plan, sharing, zone)
    if resource_type == "Consent" and "full" not in plan.scopes:
        return consent_kind_of(resource, load_consent_kinds()) in sharing.consent_kinds
    if resource_type == "DocumentReference":
        return not _carries_image(resource)
    return True


def without_images(resource: Mapping[str, Any], plan: SharePlan) -> dict[str, Any]:
    """A copy of an allowed resource as it may leave: every image it carries inline or by
    URL (Patient.photo, a Consent's signed form, an attachment of a note or an answer) cut to
    its description, since a picture of the client leaves only as a photo file, through a Media
    the photo rules allow. A Media (a photo file) and a transfer on the client's own request
    keep theirs. Pure."""
    out = copy.deepcopy(dict(resource))
    if plan.transfer or out.get("resourceType") == "Media":
        return out
    stack: list[Any] = [out]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if str(node.get("contentType", "")).lower().startswith("image/"):
                node.pop("data", None)
                node.pop("url", None)
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
    return out


def dated(resource: Mapping[str, Any], sharing: Sharing, zone: ZoneInfo) -> date | None:
    """The spa-local day of the first dating element of the resource's type that is present
    (``dated_by`` of the rules); None when it has none readable."""
    for path in sharing.dated_by.get(str(resource.get("resourceType")), ()):
        node: Any = resource
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        day = local_date(node, zone)
        if day is not None:
            return day
    return None


def _in_error(resource: Mapping[str, Any]) -> bool:
    if resource.get("status") == _ERROR_STATUS:
        return True
    verification = resource.get("verificationStatus")
    codings = (verification or {}).get("coding") if isinstance(verification, Mapping) else None
    return any(isinstance(c, Mapping) and c.get("code") == _ERROR_STATUS for c in codings or [])


def _photo_allowed(
    resource: Mapping[str, Any], plan: SharePlan, sharing: Sharing, zone: ZoneInfo
) -> bool:
    content = resource.get("content")
    if not isinstance(content, Mapping):
        return False
    if content.get("contentType") not in sharing.photo_content_types:
        return False
    if plan.transfer:
        return True
    taken = dated(resource, sharing, zone)
    if plan.photos_since is None or taken is None:
        return False
    state = ConsentState(PHOTO_KIND, "given", plan.photos_since)
    return any(use.kind == PHOTO_KIND for use in allowed_uses(taken, {PHOTO_KIND: state}))


def _carries_image(resource: Mapping[str, Any]) -> bool:
    for content in resource.get("content") or []:
        attachment = content.get("attachment") if isinstance(content, Mapping) else None
        if isinstance(attachment, Mapping) and str(attachment.get("contentType", "")).startswith(
            "image/"
        ):
            return True
    return False


__all__ = [
    "KIND",
    "Recipient",
    "SharePlan",
    "SharingConsent",
    "allowed",
    "consent_active",
    "consent_scopes",
    "data_period",
    "plan_share",
    "recipient_reference",
    "sharing_consent",
    "transfer_plan",
    "without_images",
]
