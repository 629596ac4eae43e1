"""The report of a deletion (``symfhir.privacy.deletion``): per resource, deleted or kept until
a date because of a rule, by ``Type/id``, rule names and dates only (no clinical content). It
is the ``deletion-report`` output of a deletion request's Task, as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from symfhir.privacy.retention import DELETE, KEEP, NO_RULE, PlanItem

#: Kept by these rules, a resource is the record of the deletion itself, not the client's
#: data the request asked to delete: it does not make a request partially completed.
RECORD_OF_THE_REQUEST = frozenset({"audit-trail", "privacy-request"})

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


def report_item(item: PlanItem, deleted: str) -> DeletionItem:
    """The report's line of a plan's item: ``deleted`` (deleted or would-delete) or kept."""
    outcome = deleted if item.action == DELETE else KEPT
    until = item.until if item.action == KEEP else None
    return DeletionItem(item.reference, outcome, item.rule, until, item.referenced_by)
