"""The only ways marketing contacts and photos leave symfhir (privacy policy §3, §4, §6):
``marketing_audience`` lists the clients who may be contacted on a channel, and
``marketing_photos`` the photos that may be used for a purpose. Deny by default: a client is
listed only while the latest Consent of the channel's kind is active and permits (a declined,
withdrawn, expired, not yet started, unreadable or unknown consent never lists), and only
their contact is given (no clinical data). Each listed client's record gets an AuditEvent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from symfhir.audit import AuditTrail
from symfhir.consent_kinds import load_consent_kinds
from symfhir.contacts import contact_of
from symfhir.fhir import FhirClient
from symfhir.fhir.compartment import in_compartment, patient_id_of
from symfhir.fhir.reading import human_name
from symfhir.mapping.context import MappingContext
from symfhir.marketing.rules import load_marketing_rules
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.status import KIND_SYSTEM, consent_overview
from symfhir.workspace.photos.consents import allowed_uses, consent_states, local_date

PAGE = 200
#: Patients (or their Media) read per search: ids in one query stay well under URL limits.
CHUNK = 50


@dataclass(frozen=True)
class Contact:
    """One client who may be contacted: the Patient id (for the unsubscribe link), the name
    to address them by, and the channel's contact (E.164 phone or e-mail address)."""

    patient_id: str
    name: str
    contact: str


@dataclass(frozen=True)
class Audience:
    """The clients of ``channel`` with an active consent and a usable contact; ``without_contact``
    counts consenting clients left out for lack of one (or an inactive or deceased record)."""

    channel: str
    contacts: tuple[Contact, ...]
    without_contact: int = 0


@dataclass(frozen=True)
class MarketingPhoto:
    """A photo that may be used for ``use``: its Media id, the client, the local day it was
    taken, and where its image is (the Media's content URL and type)."""

    media_id: str
    patient_id: str
    taken: str
    content_type: str
    url: str


@dataclass(frozen=True)
class PhotoList:
    use: str
    photos: tuple[MarketingPhoto, ...]


def effective(consent: Mapping[str, Any], today: date, zone: Any) -> dict[str, Any]:
    """The Consent as it stands ``today``: an active one whose provision.period has ended
    (expired) or not begun counts as not in force (read as ``inactive``)."""
    resource = dict(consent)
    period = (consent.get("provision") or {}).get("period") or {}
    start = local_date(period.get("start"), zone)
    end = local_date(period.get("end"), zone)
    outside = (end is not None and end < today) or (start is not None and start > today)
    if consent.get("status") == "active" and outside:
        resource["status"] = "inactive"
    return resource


def _consents_of_kind(client: FhirClient, kind: str) -> dict[str, list[dict[str, Any]]]:
    """Every Consent of ``kind`` on the server, by the one patient it belongs to."""
    by_patient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    params = [("category", f"{KIND_SYSTEM}|{kind}"), ("_count", str(PAGE))]
    for consent in client.search("Consent", params):
        if consent.get("resourceType") != "Consent":
            continue
        pid = patient_id_of((consent.get("patient") or {}).get("reference"))
        if pid and in_compartment(consent, pid):
            by_patient[pid].append(consent)
    return by_patient


def consenting_patients(
    client: FhirClient, kind: str, ctx: MappingContext
) -> dict[str, list[dict[str, Any]]]:
    """The patients whose latest Consent of ``kind`` is given and in force today, with their
    Consents of that kind (as in force today)."""
    kinds = load_consent_kinds()
    out: dict[str, list[dict[str, Any]]] = {}
    for pid, consents in _consents_of_kind(client, kind).items():
        current = [effective(c, ctx.today, ctx.spa.zone) for c in consents]
        overview = consent_overview(current, kinds, ctx.spa.zone)
        status = next((s for s in overview if s.key == kind), None)
        if status is not None and status.status == "given":
            out[pid] = current
    return out


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    items = sorted(ids)
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _patients(client: FhirClient, ids: Iterable[str]) -> Iterator[dict[str, Any]]:
    for chunk in _chunks(ids):
        params = [("_id", ",".join(chunk)), ("_count", str(len(chunk)))]
        for patient in client.search("Patient", params):
            if patient.get("resourceType") == "Patient" and patient.get("id") in chunk:
                yield patient


def marketing_audience(
    client: FhirClient,
    actor: Actor,
    channel: str,
    *,
    now: datetime,
    audit: AuditTrail,
) -> Audience:
    """The clients who may get marketing on ``channel`` (email | sms | phone), sorted by
    Patient id. Raises ConfigError for a channel the rules do not list, FhirServerError when
    the server fails."""
    spec = load_marketing_rules().channel(channel)
    ctx = MappingContext.load(now)
    consenting = consenting_patients(client, spec.consent_kind, ctx)
    contacts: list[Contact] = []
    for patient in _patients(client, consenting):
        value = contact_of(patient, spec.telecom)
        gone = patient.get("active") is False or patient.get("deceasedBoolean") is True
        if value is None or gone or patient.get("deceasedDateTime"):
            continue
        contacts.append(Contact(str(patient["id"]), human_name(patient.get("name")), value))
    # Consenting but not listed: no usable contact, an inactive or deceased record, or a
    # Consent naming a Patient this server does not have.
    left_out = len(consenting) - len(contacts)
    contacts.sort(key=lambda c: c.patient_id)
    for contact in contacts:
        audit(
            "search",
            description=f"marketing audience ({channel}) listed the client's contact",
            resources=[f"Patient/{contact.patient_id}"],
        )
    return Audience(channel, tuple(contacts), left_out)


def marketing_photos(
    client: FhirClient,
    actor: Actor,
    use: str,
    *,
    now: datetime,
    audit: AuditTrail,
) -> PhotoList:
    """The photos that may be used for ``use`` (website | social | case-study): the client's
    consent of that use's kind is given, in force, and was given on or before the day the
    photo was taken (``symfhir.workspace.photos.consents.allowed_uses``). Newest first.
    Raises ConfigError for a use the rules do not list, FhirServerError."""
    spec = load_marketing_rules().photo_use(use)
    ctx = MappingContext.load(now)
    consenting = consenting_patients(client, spec.consent_kind, ctx)
    photos: list[MarketingPhoto] = []
    for chunk in _chunks(consenting):
        subjects = ",".join(f"Patient/{pid}" for pid in chunk)
        for media in client.search("Media", [("subject", subjects), ("_count", str(PAGE))]):
            photo = _usable(media, chunk, consenting, spec.use, ctx)
            if photo is not None:
                photos.append(photo)
    photos.sort(key=lambda p: (p.taken, p.media_id), reverse=True)
    for pid in sorted({p.patient_id for p in photos}):
        audit(
            "search",
            description=f"marketing photos ({use}) listed the client's photos",
            resources=[f"Patient/{pid}"],
        )
    return PhotoList(use, tuple(photos))


def _usable(
    media: Mapping[str, Any],
    chunk: list[str],
    consenting: Mapping[str, list[dict[str, Any]]],
    use: str,
    ctx: MappingContext,
) -> MarketingPhoto | None:
    if media.get("resourceType") != "Media" or media.get("status") == "entered-in-error":
        return None
    media_id = media.get("id")
    pid = patient_id_of((media.get("subject") or {}).get("reference"))
    if not isinstance(media_id, str) or pid not in chunk or not in_compartment(media, pid):
        return None
    content = media.get("content") or {}
    taken = local_date(media.get("createdDateTime") or content.get("creation"), ctx.spa.zone)
    states = consent_states(consenting[pid], ctx.spa.zone)
    if use not in {u.key for u in allowed_uses(taken, states)}:
        return None
    return MarketingPhoto(
        media_id=media_id,
        patient_id=pid,
        taken=taken.isoformat() if taken else "",
        content_type=str(content.get("contentType", "")),
        url=str(content.get("url", "")),
    )
