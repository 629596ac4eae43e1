"""``symfhir policy notify``: after a significant change to the privacy policy (policy §13),
list the clients to tell and e-mail those with an e-mail contact in use."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from symfhir.command_options import (
    EXIT_OK,
    EXIT_PARTIAL,
    add_server_options,
    add_user_option,
    open_client,
)

if TYPE_CHECKING:
    from symfhir.privacy.policy_notice import Sender


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="changes to the privacy policy (policy section 13)")
    actions = p.add_subparsers(dest="policy_command", required=True)
    n = actions.add_parser(
        "notify",
        help="list the clients whose consents predate the latest significant change, "
        "and e-mail them",
        epilog="E-mail settings: SYMFHIR_SMTP_HOST, _PORT, _SECURITY, _USERNAME, _PASSWORD, "
        "_FROM. A client already told of this version is not e-mailed again. "
        "Exit codes: 0 done, 1 some e-mails failed, 2 usage error or the server refused.",
    )
    n.add_argument("--dry-run", action="store_true", help="list only; send and record nothing")
    n.add_argument(
        "--patient",
        action="append",
        help="only this client (Patient id); repeat for more; default every client",
    )
    add_user_option(n)
    add_server_options(n)
    n.set_defaults(run=run_notify)


def email_sender() -> Sender:
    """The policy notice's sender: SMTP as ``symfhir.notify.email`` configures it from the
    SYMFHIR_SMTP_* settings. Raises ConfigError when they are unusable."""
    from symfhir.notify.email import EmailSender

    sender = EmailSender.from_config()
    return lambda to, subject, text: sender.send(to, subject, text)


def run_notify(args: argparse.Namespace) -> int:
    from datetime import datetime

    from symfhir.audit import ClientAuditTrail
    from symfhir.privacy.policy_notice import policy_notice
    from symfhir.spa import load_spa
    from symfhir.workspace.actor import Actor

    send = None if args.dry_run else email_sender()
    with open_client(args) as client:
        notice = policy_notice(
            client,
            Actor(args.user),
            now=datetime.now(load_spa().zone),
            audit=lambda pid: ClientAuditTrail(client, pid, args.user),
            send=send,
            dry_run=args.dry_run,
            patients=args.patient,
        )
    if notice.change is None:
        print("no significant change to the privacy policy: nobody to tell")
        return EXIT_OK
    # Ids, kinds and what happened: the addresses stay on the server.
    for target in notice.targets:
        print(f"Patient/{target.patient_id}\t{target.status}\t{','.join(target.kinds)}")
    counts = ", ".join(
        f"{notice.count(s)} {s}"
        for s in ("to-send", "sent", "already-sent", "failed", "in-person")
        if notice.count(s)
    )
    print(
        f"privacy policy {notice.change.version} (significant, in effect from "
        f"{notice.change.effective}): {len(notice.targets)} clients to tell"
        + (f" ({counts})" if counts else "")
    )
    return EXIT_PARTIAL if notice.count("failed") else EXIT_OK
