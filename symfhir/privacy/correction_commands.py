"""``symfhir correction accept|deny|disagree TASK``: a practitioner's answer to a correction
request processed by ``symfhir privacy process``, and the client's statement of disagreement.
Each calls one workflow of ``symfhir.privacy.correction_review`` and e-mails the requester the
outcome (``--no-email`` to tell them otherwise). Exit codes: 0 done, 2 refused or failed."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from symfhir.command_options import EXIT_OK, add_server_options, add_user_option, open_client
from symfhir.errors import SymfhirError


def register(sub: Any) -> None:
    """Add ``symfhir correction`` and its subcommands to the ``symfhir`` parser."""
    correction = sub.add_parser(
        "correction",
        help="answer a correction (amendment) request: accept, deny, or file a disagreement",
        epilog="Exit codes: 0 done, 2 refused or failed.",
    )
    steps = correction.add_subparsers(dest="correction_command", required=True)

    accept = _step(steps, "accept", "apply the change (versioned update with Provenance)", _accept)
    accept.add_argument("--value", help="the corrected text to apply; default the proposal")
    accept.add_argument(
        "--target", help="the record to amend (Patient.telecom, Type/id) if the request named none"
    )
    accept.add_argument(
        "--action",
        choices=("replace", "note", "entered-in-error"),
        help="default: replace for a Patient field, note for a clinical record",
    )

    deny = _step(steps, "deny", "deny with the basis (e-mailed with the client's rights)", _deny)
    deny.add_argument("--reason", required=True, help="the basis of the denial")

    disagree = _step(steps, "disagree", "keep the client's statement of disagreement", _disagree)
    source = disagree.add_mutually_exclusive_group(required=True)
    source.add_argument("--statement", help="the statement's text")
    source.add_argument("--statement-file", type=Path, help="a UTF-8 text file holding it")


def _step(steps: Any, name: str, text: str, handler: Any) -> argparse.ArgumentParser:
    parser = steps.add_parser(name, help=text, description=text)
    parser.add_argument("task", help="the correction request's Task id")
    add_server_options(parser)
    add_user_option(parser)
    parser.add_argument("--as-of", help="clock for the run (ISO 8601 with offset); default now")
    parser.add_argument("--version", help="the Task version you saw: refuse if it changed")
    parser.add_argument("--no-email", action="store_true", help="do not e-mail the requester")
    parser.set_defaults(run=lambda args: _run(args, handler))
    return parser


def _run(args: argparse.Namespace, handler: Any) -> int:
    from symfhir.fhir.reading import reference_id
    from symfhir.privacy.audit import RequestAuditTrail
    from symfhir.privacy.commands import send_email
    from symfhir.workspace.actor import Actor

    now = datetime.now().astimezone()
    if args.as_of:
        now = datetime.fromisoformat(args.as_of)
        if now.tzinfo is None:
            raise SymfhirError("--as-of needs a UTC offset, e.g. 2026-11-25T09:00:00-06:00")
    user = args.user
    if user and reference_id(user, user.split("/", 1)[0]) is None:
        raise SymfhirError("--user must be a FHIR reference such as Practitioner/12")
    actor = Actor(user or None)
    with open_client(args) as client:
        audit = RequestAuditTrail(client, actor.fhir_user, clock=lambda: now)
        result = handler(args, client, actor, now=now, audit=audit)
    item = result.request
    print(f"Task/{item.task_id}  correction  {item.request.business_status}")
    if result.target:
        print(result.target)
    if result.notice is None or args.no_email:
        print("the requester was not e-mailed: tell them the outcome", file=sys.stderr)
        return EXIT_OK
    send_email(result.notice.to, result.notice.subject, result.notice.text)
    print("the requester was e-mailed the outcome", file=sys.stderr)
    return EXIT_OK


def _accept(args: argparse.Namespace, client: Any, actor: Any, **kw: Any) -> Any:
    from symfhir.privacy.correction import Change, proposal
    from symfhir.privacy.correction_review import accept_correction
    from symfhir.privacy.requests import get_request

    value = args.value
    if value is None:
        value = proposal(get_request(client, actor, args.task, **kw).request)
    change = Change(value, args.action, args.target)
    return accept_correction(client, actor, args.task, version=args.version, change=change, **kw)


def _deny(args: argparse.Namespace, client: Any, actor: Any, **kw: Any) -> Any:
    from symfhir.privacy.correction_review import deny_correction

    return deny_correction(client, actor, args.task, version=args.version, reason=args.reason, **kw)


def _disagree(args: argparse.Namespace, client: Any, actor: Any, **kw: Any) -> Any:
    from symfhir.privacy.correction_review import file_disagreement

    statement = args.statement
    if statement is None:
        try:
            statement = args.statement_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise SymfhirError("--statement-file cannot be read as UTF-8 text") from None
    return file_disagreement(client, actor, args.task, statement, version=args.version, **kw)
