"""``symfhir retention run``: delete what has passed its retention date, for every client whose
deletion left records kept until a date. Idempotent and safe to run daily; prints counts only.

Which clients: a deletion (``symfhir.privacy.deletion``) tags the Patient it could not delete
whole with ``RETENTION_TAG`` while something is kept until a date, and removes the tag once
nothing is; the run searches that tag. A client who never asked for deletion is never touched,
even when named with ``--patient``. A client who came back after their deletion (records dated
after it: ``symfhir.privacy.returning``) is left alone and their tag cleared, so the run never
deletes their new data.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from symfhir.command_options import (
    EXIT_OK,
    EXIT_PARTIAL,
    add_server_options,
    add_user_option,
    open_client,
)
from symfhir.errors import SymfhirError


def register(sub: Any) -> None:
    """Add ``symfhir retention run`` to the ``symfhir`` parser."""
    retention = sub.add_parser(
        "retention",
        help="deletion at the end of legal retention (mappings/retention.yaml)",
    )
    steps = retention.add_subparsers(dest="retention_command", required=True)
    run = steps.add_parser(
        "run",
        help="delete what has passed its retention date for every scheduled client",
        description="Delete what has passed its retention date for every client whose "
        "deletion request left records kept until a date. Idempotent; safe to run daily.",
        epilog="Exit codes: 0 done, 1 some clients failed (re-run to continue), 2 fatal.",
    )
    run.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    run.add_argument("--patient", help="only this client (it must be scheduled)")
    add_user_option(run)
    run.add_argument("--as-of", help="clock for the run (ISO 8601 with offset); default now")
    add_server_options(run)
    run.set_defaults(run=run_retention)


def run_retention(args: argparse.Namespace) -> int:
    from symfhir.audit import ClientAuditTrail
    from symfhir.errors import FhirServerError
    from symfhir.fhir.reading import reference_id
    from symfhir.privacy.deletion import RETENTION_RUN, delete_client_data, scheduled_patients
    from symfhir.privacy.returning import check_returning
    from symfhir.workspace.actor import Actor

    now = _moment(args.as_of)
    user = args.user or None
    if user and reference_id(user, user.split("/", 1)[0]) is None:
        raise SymfhirError("--user must be a FHIR reference such as Practitioner/12")
    actor = Actor(user, "symfhir retention run")
    clients = deleted = kept = failed = returned = 0
    next_dates = []
    with open_client(args) as client:
        for patient_id in scheduled_patients(client, only=args.patient):
            audit = ClientAuditTrail(client, patient_id, user, clock=lambda: now)
            try:
                back = check_returning(
                    client, actor, patient_id, now=now, audit=audit, dry_run=args.dry_run
                )
                if back.returned:
                    returned += 1
                    continue
                report = delete_client_data(
                    client,
                    actor,
                    patient_id,
                    now=now,
                    audit=audit,
                    dry_run=args.dry_run,
                    reason=RETENTION_RUN,
                )
            except FhirServerError as err:
                # One client's failure stops only that client; the next run continues it.
                failed += 1
                print(f"symfhir: a client failed: {err.log_text}", file=sys.stderr)
                continue
            clients += 1
            deleted += len(report.deleted)
            kept += len(report.kept)
            if report.scheduled:
                next_dates.append(report.scheduled)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"clients scheduled: {clients + failed + returned}")
    if returned:
        cleared = "would clear" if args.dry_run else "cleared"
        print(f"clients who came back (schedule {cleared}, nothing deleted): {returned}")
    print(f"resources {verb}: {deleted}")
    print(f"resources kept: {kept}")
    if next_dates:
        print(f"next retention date: {min(next_dates).isoformat()}")
    if failed:
        print(f"clients failed: {failed} (re-run to continue)")
    return EXIT_PARTIAL if failed else EXIT_OK


def _moment(text: str | None) -> datetime:
    if not text:
        return datetime.now().astimezone()
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise SymfhirError("--as-of needs a UTC offset, e.g. 2026-11-25T09:00:00-06:00")
    return value
