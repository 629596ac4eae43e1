"""The accounting of disclosures (HIPAA, 45 CFR 164.528): who received a client's data, what,
when and why, for a date range, read from the client's AuditEvents on the EHR's server.

A disclosure is an AuditEvent in the shape ``symfhir.audit.disclosure_event`` writes (the
R4 disclosure example: type DCM 110106 Export, or a "Disclosure" subtype): what every
AuditTrail writes when given a ``DisclosureTo``, as ``symfhir export``, the access package and
its handover do, with recipient and purpose. Exports recorded before that (type rest, subtype
``export``, no recipient or purpose) stay on servers and are still listed, as "recipient not
recorded" / "not recorded".
Every other AuditEvent (the reads and writes of the app), and a failed attempt, is left out.
What was disclosed is listed by resource type only: the accounting carries no clinical
content.
``symfhir.privacy.disclosure_report`` renders it as HTML, CSV or a FHIR Bundle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from symfhir.audit import DESTINATION_ROLE, AuditTrail, is_disclosure
from symfhir.errors import NotAllowedError, RecordError
from symfhir.fhir import FhirClient
from symfhir.fhir.compartment import in_compartment
from symfhir.fhir.paths import check_id
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor

PAGE_SIZE = 200
#: HIPAA's right covers the six years before the request; a longer range is refused.
MAX_YEARS = 6
_RECIPIENT_ROLES = {
    (DESTINATION_ROLE["system"], DESTINATION_ROLE["code"]),
    ("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP"),
}
_PATIENT_ROLE = ("http://terminology.hl7.org/CodeSystem/object-role", "1")
RESTFUL = "http://hl7.org/fhir/restful-interaction"
# An export's description lists what went out as "Type count" pairs (export.workflow.describe).
_TYPE_COUNT = re.compile(r"\b([A-Z][A-Za-z]{1,63}) \d+\b")


@dataclass(frozen=True)
class Disclosure:
    """One disclosure as the accounting lists it. ``disclosed`` are resource types
    ("Binary", "Observation"), ``by`` the FHIR reference of who made it ("" if unknown)."""

    event_id: str
    when: datetime
    recipient: str
    recipient_reference: str
    purpose_code: str
    purpose: str
    disclosed: tuple[str, ...]
    by: str
    success: bool


@dataclass(frozen=True)
class Accounting:
    """The client's disclosures recorded from ``start`` to ``end`` (spa-local days, both
    included), oldest first, and the AuditEvents they were read from (for the Bundle)."""

    patient_id: str
    start: date
    end: date
    produced: datetime
    disclosures: tuple[Disclosure, ...]
    events: tuple[dict[str, Any], ...]


def accounting_of_disclosures(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    *,
    start: date,
    end: date,
    now: datetime,
    audit: AuditTrail,
) -> Accounting:
    """The client's accounting of disclosures from ``start`` to ``end``: every page of
    ``AuditEvent?patient=Patient/ID&date=ge…&date=lt…``, kept when it is a disclosure, in the
    client's compartment and recorded in the range. Audited as one search.

    Raises NotAllowedError when ``actor`` may not search AuditEvents, RecordError for a range
    that ends before it starts or spans more than six years, FhirRequestError for an unusable
    id, FhirServerError when the search fails.
    """
    if not actor.may("AuditEvent", "s"):
        raise NotAllowedError((("AuditEvent", "s"),))
    pid = check_id(patient_id)
    check_range(start, end)
    zone = load_spa().zone
    low, high = day_bounds(start, end, zone)
    params = {
        "patient": f"Patient/{pid}",
        "date": [f"ge{low.isoformat()}", f"lt{high.isoformat()}"],
        "_sort": "date",
        "_count": str(PAGE_SIZE),
    }
    kept = select_disclosures(client.search("AuditEvent", params), pid, low, high)
    audit("search", description="accounting of disclosures read AuditEvent")
    return Accounting(
        patient_id=pid,
        start=start,
        end=end,
        produced=now,
        disclosures=tuple(disclosure_of(event, zone) for event in kept),
        events=tuple(kept),
    )


def check_range(start: date, end: date) -> None:
    """Raise RecordError for a range that ends before it starts or is over six years."""
    if end < start:
        raise RecordError("accounting of disclosures", "from", "the range ends before it starts")
    if start < years_before(end, MAX_YEARS):
        raise RecordError(
            "accounting of disclosures", "from", f"the range is longer than {MAX_YEARS} years"
        )


def years_before(day: date, years: int) -> date:
    """The same day ``years`` earlier (28 February for a 29 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def day_bounds(start: date, end: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """The instants the spa-local days ``start`` to ``end`` run between: the start of
    ``start`` and the start of the day after ``end`` (excluded)."""
    return (
        datetime.combine(start, time(), zone),
        datetime.combine(end + timedelta(days=1), time(), zone),
    )


def select_disclosures(
    events: Iterable[Mapping[str, Any]], patient_id: str, low: datetime, high: datetime
) -> list[dict[str, Any]]:
    """The disclosures among ``events`` that are the patient's and were recorded in
    [low, high), oldest first; a server's search is not trusted to have filtered them."""
    kept = []
    for event in events:
        if event.get("resourceType") != "AuditEvent" or event.get("outcome", "0") != "0":
            continue  # a failed attempt disclosed nothing
        if not is_disclosure(dict(event)) and not is_app_export(event):
            continue
        if not in_compartment(event, patient_id):
            continue
        when = recorded(event)
        if when is None or not low <= when < high:
            continue
        kept.append(dict(event))
    kept.sort(key=lambda e: (recorded(e), str(e.get("id", ""))))
    return kept


def is_app_export(event: Mapping[str, Any]) -> bool:
    """Whether an AuditEvent records one of the app's own exports in the shape written before
    exports were recorded as disclosures (type rest, subtype ``export``): such events stay on
    servers, so the accounting still lists them."""
    kind = event.get("type") or {}
    if kind.get("code") != "rest":
        return False
    return any(
        (sub or {}).get("system") == RESTFUL and (sub or {}).get("code") == "export"
        for sub in event.get("subtype") or []
    )


def recorded(event: Mapping[str, Any]) -> datetime | None:
    """AuditEvent.recorded as an aware instant; None when absent or unreadable."""
    value = event.get("recorded")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def disclosure_of(event: Mapping[str, Any], zone: tzinfo) -> Disclosure:
    """One AuditEvent (a disclosure) read into what the accounting shows."""
    # select_disclosures keeps only events with a recorded instant; the epoch stands in
    # for one read any other way, so a stray event still renders.
    when = recorded(event) or datetime.fromtimestamp(0, zone)
    recipient, recipient_ref, by = "", "", ""
    for agent in event.get("agent") or []:
        who = agent.get("who") or {}
        if _is_recipient(agent):
            recipient = str(agent.get("name") or who.get("display") or who.get("reference") or "")
            recipient_ref = str(who.get("reference") or "")
        elif agent.get("requestor") is True and isinstance(who.get("reference"), str):
            by = who["reference"]
    code, purpose = _purpose(event)
    return Disclosure(
        event_id=str(event.get("id", "")),
        when=when.astimezone(zone),
        recipient=recipient or "recipient not recorded",
        recipient_reference=recipient_ref,
        purpose_code=code,
        purpose=purpose,
        disclosed=_disclosed_types(event),
        by=by,
        success=event.get("outcome", "0") == "0",
    )


def _is_recipient(agent: Mapping[str, Any]) -> bool:
    for coding in (agent.get("type") or {}).get("coding") or []:
        if (coding.get("system"), coding.get("code")) in _RECIPIENT_ROLES:
            return True
    return False


def _purpose(event: Mapping[str, Any]) -> tuple[str, str]:
    for concept in event.get("purposeOfEvent") or []:
        for coding in (concept or {}).get("coding") or []:
            if coding.get("code"):
                code = str(coding["code"])
                return code, str(coding.get("display") or code)
        if (concept or {}).get("text"):
            return "", str(concept["text"])
    return "", "not recorded"


def _disclosed_types(event: Mapping[str, Any]) -> tuple[str, ...]:
    """The resource types disclosed (never ids or content), in the event's order; the
    Patient entity that says whose data it was is not itself listed."""
    found: dict[str, None] = {}
    for entity in event.get("entity") or []:
        role = entity.get("role") or {}
        if (role.get("system"), role.get("code")) == _PATIENT_ROLE:
            continue
        reference = str((entity.get("what") or {}).get("reference") or "")
        kind = reference.split("/", 1)[0] if "/" in reference else ""
        if not kind:
            entity_type = entity.get("type") or {}
            if entity_type.get("system") == "http://hl7.org/fhir/resource-types":
                kind = str(entity_type.get("code") or "")
        if kind.isalpha():
            found[kind] = None
    if not found and is_app_export(event):
        for kind in _TYPE_COUNT.findall(str(event.get("outcomeDesc") or "")):
            found[kind] = None
    return tuple(found)
