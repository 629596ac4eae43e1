"""Matching a privacy request to the client it is about (``match_patient``) and a person's
choice when it cannot be automatic (``assign_patient``).

Automatic only when the requester's *verified* identifiers (the e-mail and/or phone a code was
sent to, or every contact when seen in person) and the birth date point at exactly one Patient;
otherwise the candidates are returned and a person picks, the choice recorded as a Task note
naming who chose. Identifiers compare as the record model keeps them: e-mail normalized and
case-folded, phones in E.164.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from symfhir.audit import AuditTrail
from symfhir.contacts import normalize_email, normalize_phone
from symfhir.errors import PrivacyRequestError, RecordError
from symfhir.fhir import FhirClient
from symfhir.fhir.paths import check_id
from symfhir.fhir.reading import human_name
from symfhir.privacy.model import RECEIVED, PrivacyRequest
from symfhir.privacy.requests import METHODS
from symfhir.privacy.task import NOTE_MATCH, add_note, note_entry, set_patient, updated
from symfhir.privacy.tasks import (
    Settings,
    TrackedRequest,
    may_read,
    read_task,
    require_open,
    save_task,
    tracked,
    who,
)
from symfhir.workspace.actor import Actor

MAX_CANDIDATES = 20
AUTOMATIC = "symfhir (automatic match)"


@dataclass(frozen=True)
class Candidate:
    """A client who might be the requester, and what of theirs matches."""

    patient_id: str
    name: str
    birth_date: str | None
    matches: tuple[str, ...]


@dataclass(frozen=True)
class MatchResult:
    """``matched`` the client's id when the request is (now or already) matched, else None
    and ``candidates`` for a person to pick from (possibly none)."""

    request: TrackedRequest
    matched: str | None
    candidates: tuple[Candidate, ...] = ()


def verified_identifiers(request: PrivacyRequest) -> dict[str, str]:
    """The requester's contacts that were verified: {"email": …, "phone": …}."""
    methods = {v.method for v in request.verifications}
    found = {}
    for contact in ("email", "phone"):
        value = getattr(request.requester, contact)
        proven = "in-person" in methods or any(METHODS.get(m) == contact for m in methods)
        if value and proven:
            found[contact] = value
    return found


def _telecoms(patient: dict[str, Any], system: str, region: str) -> set[str]:
    values = set()
    for telecom in patient.get("telecom") or []:
        if not isinstance(telecom, dict) or telecom.get("system") != system:
            continue
        value = str(telecom.get("value") or "")
        try:
            if system == "email":
                values.add(normalize_email(value).casefold())
            else:
                values.add(normalize_phone(value, region))
        except RecordError:
            continue  # a number the server keeps that no requester could type matches nothing
    return values


def _what_matches(
    patient: dict[str, Any], identifiers: dict[str, str], birth: str | None, region: str
) -> tuple[str, ...]:
    matches = []
    if "email" in identifiers and identifiers["email"].casefold() in _telecoms(
        patient, "email", region
    ):
        matches.append("email")
    if "phone" in identifiers and identifiers["phone"] in _telecoms(patient, "phone", region):
        matches.append("phone")
    if birth and patient.get("birthDate") == birth:
        matches.append("birth date")
    return tuple(matches)


def _search_candidates(
    client: FhirClient, identifiers: dict[str, str], request: PrivacyRequest
) -> dict[str, dict[str, Any]]:
    searches: list[list[tuple[str, str]]] = []
    if "email" in identifiers:
        # Servers differ on case in token searches; the record model keeps what was typed.
        for email in dict.fromkeys((identifiers["email"], identifiers["email"].lower())):
            searches.append([("email", email)])
    if "phone" in identifiers:
        searches.append([("phone", identifiers["phone"])])
    birth = request.requester.birth_date
    family = request.requester.name.split()[-1] if request.requester.name.split() else ""
    if birth and family:
        searches.append([("birthdate", birth.isoformat()), ("family", family)])
    found: dict[str, dict[str, Any]] = {}
    for params in searches:
        for patient in client.search("Patient", [*params, ("_count", str(MAX_CANDIDATES))]):
            if patient.get("resourceType") == "Patient" and patient.get("id"):
                found.setdefault(str(patient["id"]), patient)
            if len(found) >= MAX_CANDIDATES:
                return found
    return found


def match_patient(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    *,
    now: datetime,
    audit: AuditTrail,
    version: str | None = None,
    settings: Settings | None = None,
) -> MatchResult:
    """Match the request to its client: automatic when the verified identifiers and the birth
    date match exactly one Patient (written to ``Task.for`` with a note), else the candidates.
    Raises PrivacyRequestError before identity is verified or for a closed request."""
    settings = settings or Settings.load()
    may_read(actor, [("Task", "r"), ("Patient", "s")])
    task, record = read_task(client, task_id, settings)
    request = record.request
    if request.patient_id:
        return MatchResult(tracked(record, now, settings), request.patient_id)
    require_open(request)
    if request.business_status == RECEIVED:
        raise PrivacyRequestError(
            f"Task/{task_id}: verify the requester's identity before matching"
        )
    identifiers = verified_identifiers(request)
    birth = request.requester.birth_date.isoformat() if request.requester.birth_date else None
    region = settings.spa.phone_region
    candidates = []
    for patient_id, patient in _search_candidates(client, identifiers, request).items():
        matches = _what_matches(patient, identifiers, birth, region)
        if matches:
            candidates.append(
                Candidate(
                    patient_id, human_name(patient.get("name")), patient.get("birthDate"), matches
                )
            )
    exact = [
        c for c in candidates if "birth date" in c.matches and set(c.matches) & set(identifiers)
    ]
    audit(
        "search",
        description="privacy request: client match searched",
        resources=(f"Task/{task_id}",),
    )
    if len(exact) != 1:
        candidates.sort(key=lambda c: (-len(c.matches), c.name, c.patient_id))
        return MatchResult(tracked(record, now, settings), None, tuple(candidates))
    chosen = exact[0]
    actor.require([("Task", "u")])
    changed = updated(task, now)
    set_patient(changed, chosen.patient_id)
    text = f"Matched automatically: verified {' and '.join(chosen.matches)} match one client only"
    add_note(changed, note_entry(NOTE_MATCH, text, AUTOMATIC, now))
    saved = save_task(client, changed, version or record.version, settings)
    audit(
        "update",
        description="privacy request matched to its client automatically",
        resources=(f"Task/{task_id}", f"Patient/{chosen.patient_id}"),
    )
    return MatchResult(tracked(saved, now, settings), chosen.patient_id)


def assign_patient(
    client: FhirClient,
    actor: Actor,
    task_id: str,
    patient_id: str,
    *,
    now: datetime,
    audit: AuditTrail,
    version: str | None = None,
    settings: Settings | None = None,
) -> TrackedRequest:
    """A person's choice of the request's client, recorded as a Task note naming who chose.
    Raises PrivacyRequestError before identity is verified, for a request already matched to
    another client, or when the acting user is unnamed; FhirNotFoundError for no such Patient."""
    settings = settings or Settings.load()
    actor.require([("Task", "u")])
    may_read(actor, [("Patient", "r")])
    chooser = who(actor)
    if not chooser:
        raise PrivacyRequestError("a manual match names who chose: the acting user is unnamed")
    task, record = read_task(client, task_id, settings)
    request = record.request
    require_open(request)
    if request.business_status == RECEIVED:
        raise PrivacyRequestError(
            f"Task/{task_id}: verify the requester's identity before matching"
        )
    if request.patient_id == patient_id:
        return tracked(record, now, settings)
    if request.patient_id:
        raise PrivacyRequestError(f"Task/{task_id} is already matched to another client")
    client.read("Patient", check_id(patient_id, "patient id"))
    changed = updated(task, now)
    set_patient(changed, patient_id)
    add_note(
        changed,
        note_entry(NOTE_MATCH, f"Matched to Patient/{patient_id} by {chooser}", chooser, now),
    )
    saved = save_task(client, changed, version or record.version, settings)
    audit(
        "update",
        description="privacy request matched to its client by a person",
        resources=(f"Task/{task_id}", f"Patient/{patient_id}"),
    )
    return tracked(saved, now, settings)
