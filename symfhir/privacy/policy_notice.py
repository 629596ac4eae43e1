"""Telling clients of a significant change to the privacy policy (policy §13): the clients
with a given consent signed under a version older than the latest significant change, and an
e-mail to each who has an e-mail contact in use.

Which consent means "may be contacted" for this notice: the e-mail address the client gave
(Patient.telecom, in use), not a marketing consent. A policy notice is a service message the
policy itself promises ("significant changes will be communicated via email"), not
marketing: a client who opted out of marketing e-mail is still told (CAN-SPAM treats it as a
transactional or relationship message), and marketing consent is never required for it.
Clients without an e-mail in use are listed to be told at their next visit.

Each notice sent is recorded as a Communication (conditional create on an identifier of
client and version), so a re-run, or one resumed after a crash, never e-mails a client twice
for the same version (a crash between the e-mail and its record can resend that one once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from symfhir.audit import AuditTrail
from symfhir.consent_kinds import load_consent_kinds
from symfhir.contacts import contact_of
from symfhir.errors import NotAllowedError, SymfhirError
from symfhir.fhir import FhirClient
from symfhir.fhir.compartment import in_compartment, patient_id_of
from symfhir.fhir.paths import check_id
from symfhir.mapping.context import MappingContext
from symfhir.model.age import MINOR, age_status
from symfhir.policy_versions import PolicyHistory, PolicyVersion, load_policy_history
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor
from symfhir.workspace.consents.guardians import guardians_on_file
from symfhir.workspace.consents.status import consent_overview

log = logging.getLogger(__name__)

PAGE_SIZE = 200
ID_CHUNK = 40  # ids per search: keeps a GET under the query length servers take
#: The elements of a Consent the re-consent rule reads (the signature image stays behind).
CONSENT_ELEMENTS = "status,patient,category,dateTime,policy,provision"
NOTICE_SYSTEM_SUFFIX = "policy-notice"
#: (to, subject, text): symfhir.notify.email.EmailSender.send fits.
Sender = Callable[[str, str, str], object]
#: The audit trail of one client's record, by Patient id.
AuditFor = Callable[[str], AuditTrail]


@dataclass(frozen=True)
class NoticeTarget:
    """A client to tell: the consent kinds given under an older version, and where the notice
    goes (None: no e-mail in use). ``status``: ``to-send`` (dry run), ``sent``,
    ``already-sent`` (an earlier run), ``failed`` (the e-mail could not be sent),
    ``in-person`` (no e-mail)."""

    patient_id: str
    kinds: tuple[str, ...]
    email: str | None
    status: str


@dataclass(frozen=True)
class PolicyNotice:
    """The latest significant change (None: there is none, nobody to tell) and the clients."""

    change: PolicyVersion | None
    targets: tuple[NoticeTarget, ...]
    dry_run: bool

    def count(self, status: str) -> int:
        return sum(t.status == status for t in self.targets)


def policy_notice(
    client: FhirClient,
    actor: Actor,
    *,
    now: datetime,
    audit: AuditFor,
    send: Sender | None = None,
    dry_run: bool = True,
    patients: Sequence[str] | None = None,
    history: PolicyHistory | None = None,
) -> PolicyNotice:
    """List (``dry_run``) or tell the clients whose given consents predate the latest
    significant change of ``history`` (default: mappings/spa.yaml); ``patients`` limits it to
    those clients, else every Consent on the server is read (paged, slimmed to the elements
    the rule needs). Each client listed is audited as a read of their record.

    Raises NotAllowedError when ``actor`` may not search Consent and Patient (or, to send,
    create Communication), ValueError when asked to send without a sender, FhirServerError
    when a search or a record fails. A failed e-mail is one ``failed`` target, not an error.
    """
    history = history or load_policy_history()
    change = history.latest_significant
    needs = [("Consent", "s"), ("Patient", "s")]
    if not dry_run:
        if send is None:
            raise ValueError("sending needs a sender")
        needs += [("Communication", "s"), ("Communication", "c")]
        actor.require(needs)
    elif missing := [n for n in needs if not actor.may(*n)]:
        raise NotAllowedError(tuple(missing))
    if change is None:
        return PolicyNotice(None, (), dry_run)
    ids = [check_id(p) for p in patients] if patients is not None else None
    behind = clients_behind(_consents(client, ids), history)
    emails = _emails(client, actor, list(behind), now)
    done = set() if dry_run else _already_told(client, list(behind), change)
    targets = []
    for pid, kinds in behind.items():
        email = emails.get(pid)
        trail = audit(pid)
        if email is None:
            status = "in-person"
        elif pid in done:
            status = "already-sent"
        elif dry_run or send is None:
            status = "to-send"
        else:
            status = _tell(client, send, pid, email, change, now)
        trail("read", description=f"policy notice read Consent, Patient: {status}")
        targets.append(NoticeTarget(pid, kinds, email, status))
    return PolicyNotice(change, tuple(targets), dry_run)


def clients_behind(
    consents: Iterable[Mapping[str, Any]], history: PolicyHistory
) -> dict[str, tuple[str, ...]]:
    """Patient id -> the consent kinds whose current consent is given under a version older
    than the latest significant change (the summary's rule), in first-seen order."""
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for consent in consents:
        pid = patient_id_of((consent.get("patient") or {}).get("reference"))
        if pid is not None and in_compartment(consent, pid):
            by_patient.setdefault(pid, []).append(dict(consent))
    kinds = load_consent_kinds()
    zone = load_spa().zone
    out = {}
    for pid, own in by_patient.items():
        behind = [k.key for k in consent_overview(own, kinds, zone, history) if k.reconsent_needed]
        if behind:
            out[pid] = tuple(behind)
    return out


def _consents(client: FhirClient, ids: list[str] | None) -> Iterable[dict[str, Any]]:
    base = {"_elements": CONSENT_ELEMENTS, "_count": str(PAGE_SIZE)}
    if ids is None:
        for consent in client.search("Consent", base):
            yield _slim(consent)
        return
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ",".join(f"Patient/{p}" for p in ids[start : start + ID_CHUNK])
        for consent in client.search("Consent", {**base, "patient": chunk}):
            yield _slim(consent)


def _slim(consent: dict[str, Any]) -> dict[str, Any]:
    # A server may ignore _elements: what the rule does not read is not kept in memory.
    keep = ("resourceType", "id", "meta", *CONSENT_ELEMENTS.split(","))
    return {k: consent[k] for k in keep if k in consent}


def _emails(client: FhirClient, actor: Actor, ids: list[str], now: datetime) -> dict[str, str]:
    """Where each client's notice goes: their own e-mail; a minor's to a parent's or
    guardian's on file (policy §9: the guardian signed the consents), none without one."""
    found: dict[str, str] = {}
    minors: list[str] = []
    today = now.date()
    for start in range(0, len(ids), ID_CHUNK):
        params = {"_id": ",".join(ids[start : start + ID_CHUNK]), "_count": str(ID_CHUNK)}
        for patient in client.search("Patient", params):
            pid = patient.get("id")
            if patient.get("resourceType") != "Patient" or pid not in ids:
                continue
            if patient.get("deceasedBoolean") is True or patient.get("deceasedDateTime"):
                continue
            if age_status(patient.get("birthDate"), today) == MINOR:
                minors.append(str(pid))
                continue
            email = contact_of(patient, "email")
            if email:
                found[str(pid)] = email
    if minors and actor.may("RelatedPerson", "s"):
        found.update(_guardian_emails(client, minors, now))
    return found


def _guardian_emails(client: FhirClient, minors: list[str], now: datetime) -> dict[str, str]:
    ctx = MappingContext.load(now)
    found: dict[str, str] = {}
    for pid in minors:
        related = list(client.search("RelatedPerson", {"patient": f"Patient/{pid}"}))
        by_id = {str(r.get("id")): r for r in related}
        for guardian in guardians_on_file(related, pid, ctx):
            email = contact_of(by_id.get(guardian.id, {}), "email")
            if email:
                found[pid] = email
                break
    return found


def notice_identifier(change: PolicyVersion) -> str:
    return f"{load_spa().identifier_base}/{NOTICE_SYSTEM_SUFFIX}/{change.version}"


def _already_told(client: FhirClient, ids: list[str], change: PolicyVersion) -> set[str]:
    system = notice_identifier(change)
    told: set[str] = set()
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        params = {"identifier": ",".join(f"{system}|{p}" for p in chunk), "_count": str(ID_CHUNK)}
        for sent in client.search("Communication", params):
            pid = patient_id_of((sent.get("subject") or {}).get("reference"))
            if pid in chunk:
                told.add(pid)
    return told


def notice_text(change: PolicyVersion, spa_name: str) -> tuple[str, str]:
    """The notice's subject and text: the change and what to do, nothing of the record."""
    subject = f"{spa_name}: changes to our privacy policy"
    summary = f"\n\nWhat changed: {change.summary}" if change.summary else ""
    text = (
        f"Hello,\n\n{spa_name} has made a significant change to its privacy policy, in "
        f"effect from {change.effective.isoformat()}.{summary}\n\n"
        "Some of the consents you gave us were given under the earlier policy. We will ask "
        "you to review them at your next visit; until then they stay as you gave them, and "
        "you may withdraw any of them at any time by contacting us.\n\n"
        f"This is a service message about your privacy, not marketing.\n\n{spa_name}\n"
    )
    return subject, text


def _tell(
    client: FhirClient,
    send: Sender,
    patient_id: str,
    email: str,
    change: PolicyVersion,
    now: datetime,
) -> str:
    spa = load_spa()
    subject, text = notice_text(change, spa.name)
    try:
        send(email, subject, text)
    except SymfhirError as exc:  # DeliveryError, or an address the sender refuses
        log.warning("policy notice not sent: %s", type(exc).__name__)
        return "failed"
    system = notice_identifier(change)
    record = {
        "resourceType": "Communication",
        "identifier": [{"system": system, "value": patient_id}],
        "status": "completed",
        "category": [{"text": "privacy policy change notice"}],
        "medium": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode",
                        "code": "EMAILWRIT",
                        "display": "email",
                    }
                ]
            }
        ],
        "subject": {"reference": f"Patient/{patient_id}"},
        "topic": {"text": f"privacy policy {change.version}"},
        "sent": now.isoformat(timespec="seconds"),
        "recipient": [{"reference": f"Patient/{patient_id}"}],
        "sender": {"display": spa.name},
        "payload": [{"contentString": subject}],
    }
    client.create(record, if_none_exist=f"identifier={system}|{patient_id}")
    return "sent"
