"""The report of a deletion (``symfhir.privacy.deletion``): per resource, deleted or kept until
a date because of a rule, by ``Type/id``, rule names and dates only (no clinical content). It
is the ``deletion-report`` output of a deletion request's Task, as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from symfhir.privacy.retention import DELETE, KEEP, NO_RULE, REFERENCED, PlanItem

#: Kept by these rules, a resource is the record of the deletion itself, not the client's
#: data the request asked to delete: it does not make a request partially completed.
RECORD_OF_THE_REQUEST = frozenset({"audit-trail", "privacy-request"})

_MEDICAL_WHY = "the law requires us to keep medical records for 7 years after your last treatment"
#: Each retention rule in the requester's words: what it covers, and why it is kept (for the
#: rules that keep). Rules not named here (a spa's own) read as "other information".
RULE_WORDS: dict[str, tuple[str, str | None]] = {
    "medical-record": (
        "your medical records (intake forms, history, treatment records)",
        _MEDICAL_WHY,
    ),
    "clinical-photo": ("your clinical photos", _MEDICAL_WHY),
    "medical-consent": ("your consents to treatment and privacy notices you signed", _MEDICAL_WHY),
    "attachment": ("files attached to your medical records", _MEDICAL_WHY),
    "provenance": ("the history of changes to your medical records", _MEDICAL_WHY),
    REFERENCED: (
        "information that records we must keep point to",
        "records we must keep refer to it",
    ),
    "marketing-consent": ("your marketing consents", None),
    "marketing-photo": ("photos you allowed us to use for marketing", None),
    "contact-details": ("your contact preferences and other non-medical information", None),
    "privacy-request": (
        "the record of your privacy requests",
        "we must be able to show how we answered your requests",
    ),
    "audit-trail": (
        "the log of who accessed your information",
        "the law requires us to keep a log of who accessed your information",
    ),
    NO_RULE: ("other information", "no rule allows us to delete it yet; we will review it"),
}

DELETED = "deleted"
WOULD_DELETE = "would-delete"
KEPT = "kept"


@dataclass(frozen=True)
class DeletionItem:
    """One resource of the report: ``outcome`` deleted | would-delete (dry run) | kept,
    by ``rule``; kept ones until ``until`` (None: indefinitely)."""

    reference: str
    outcome: str
    rule: str
    until: date | None = None
    referenced_by: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"resource": self.reference, "outcome": self.outcome}
        out["rule"] = self.rule
        if self.until:
            out["until"] = self.until.isoformat()
        if self.referenced_by:
            out["referencedBy"] = self.referenced_by
        return out

    def line(self) -> str:
        if self.outcome != KEPT:
            return f"{self.reference}: {self.outcome.replace('-', ' ')} ({self.rule})"
        when = f"until {self.until.isoformat()}" if self.until else "indefinitely"
        if self.rule == NO_RULE:
            return f"{self.reference}: kept: no rule allows deleting it"
        why = f"referenced by {self.referenced_by}" if self.referenced_by else self.rule
        return f"{self.reference}: kept {when} because {why}"


@dataclass(frozen=True)
class DeletionReport:
    """What a deletion did (or, ``dry_run``, would do) for one client at ``at``."""

    patient_id: str
    at: datetime
    reason: str
    dry_run: bool
    items: tuple[DeletionItem, ...]
    #: Kept resources updated: references to deleted ones dropped, contact details removed.
    updated: tuple[str, ...] = ()
    last_treatment: date | None = None
    #: False when the server kept the history of what was deleted (no ``$expunge``).
    history_erased: bool = True

    @property
    def deleted(self) -> tuple[DeletionItem, ...]:
        return tuple(i for i in self.items if i.outcome in (DELETED, WOULD_DELETE))

    @property
    def kept(self) -> tuple[DeletionItem, ...]:
        return tuple(i for i in self.items if i.outcome == KEPT)

    @property
    def scheduled(self) -> date | None:
        """The earliest date something kept may go; None when nothing is kept to a date."""
        dates = [i.until for i in self.kept if i.until]
        return min(dates) if dates else None

    @property
    def complete(self) -> bool:
        """True when nothing the request asked for is kept. The audit trail and the privacy
        requests are the record of the deletion itself and always stay, and so does the
        Patient they name, stripped of its contact details (``minimize``)."""
        record = {i.reference for i in self.kept if i.rule in RECORD_OF_THE_REQUEST}
        patient = f"Patient/{self.patient_id}"
        return all(
            i.reference in record or (i.reference == patient and i.referenced_by in record)
            for i in self.kept
        )

    def summary(self) -> str:
        """One PHI-free line."""
        verb = "would delete" if self.dry_run else "deleted"
        line = f"{len(self.deleted)} {verb}, {len(self.kept)} kept"
        if self.scheduled:
            line += f"; next deletion on or after {self.scheduled.isoformat()}"
        return line

    def requester_summary(self) -> str:
        """What the requester reads on the status page, standing on its own: what was deleted
        now, what is kept until when and why, in plain words. Counts, categories, rule reasons
        and dates only: no clinical content, no resource ids."""
        if self.dry_run:
            raise ValueError("a dry run is not shown to a requester")
        # The staff's counts first (one line the officer and the requester both quote).
        parts = [f"{self.summary()}."]
        gone = _by_category(self.deleted)
        if gone:
            parts.append(f"Deleted now: {_listed(gone)}.")
        else:
            parts.append("There was nothing we could delete now.")
        # One sentence per date things are kept until (then "as long as required"): what,
        # how many, and why, each reason said once.
        groups: dict[date | None, tuple[dict[str, int], list[str]]] = {}
        for item in sorted(self.kept, key=lambda i: (i.until is None, i.until or date.min)):
            what, why = RULE_WORDS.get(item.rule, ("other information", None))
            if item.reference == f"Patient/{self.patient_id}":
                # Kept only because other kept records name the client; minimized.
                what = "your name and date of birth, with your contact details removed"
            counts, whys = groups.setdefault(item.until, ({}, []))
            counts[what] = counts.get(what, 0) + 1
            reason = why or "another of our retention rules"
            if reason not in whys:
                whys.append(reason)
        for until, (counts, whys) in groups.items():
            when = f"until {until.isoformat()}, then deleted" if until else "as long as required"
            parts.append(f"Kept {when}: {_listed(counts)}. Why: {'; '.join(whys)}.")
        if not self.history_erased and gone:
            parts.append(
                "Earlier versions of what we deleted stay in our server's protected history "
                "until it is cleared."
            )
        # One paragraph: the status page and the officer's request page show the same text.
        return " ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "patient": f"Patient/{self.patient_id}",
            "at": self.at.isoformat(timespec="seconds"),
            "reason": self.reason,
            "dryRun": self.dry_run,
            "deleted": len(self.deleted),
            "kept": len(self.kept),
            "scheduled": self.scheduled.isoformat() if self.scheduled else None,
            "lastTreatment": self.last_treatment.isoformat() if self.last_treatment else None,
            "updated": list(self.updated),
            "historyErased": self.history_erased,
            "items": [i.as_json() for i in self.items],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_json(), indent=1, sort_keys=False)


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _by_category(items: tuple[DeletionItem, ...]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        what = RULE_WORDS.get(item.rule, ("other information", None))[0]
        counts[what] = counts.get(what, 0) + 1
    return counts


def _listed(counts: dict[str, int]) -> str:
    return "; ".join(f"{what} ({_items(n)})" for what, n in counts.items())


def report_item(item: PlanItem, deleted: str) -> DeletionItem:
    """The report's line of a plan's item: ``deleted`` (deleted or would-delete) or kept."""
    outcome = deleted if item.action == DELETE else KEPT
    until = item.until if item.action == KEEP else None
    return DeletionItem(item.reference, outcome, item.rule, until, item.referenced_by)
