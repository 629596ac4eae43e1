"""``symfhir marketing audience|photos|opt-out``: the marketing lists (CSV) and an opt-out
recorded at the desk."""

from __future__ import annotations

import argparse
import csv
import sys
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

from symfhir.command_options import (
    EXIT_FATAL,
    EXIT_OK,
    add_server_options,
    add_user_option,
    open_client,
)

CHANNELS = ("email", "sms", "phone")
PHOTO_USES = ("website", "social", "case-study")
#: A spreadsheet runs a cell starting with one of these as a formula.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def register(sub: Any) -> None:
    m = sub.add_parser("marketing", help="marketing lists by consent, and opt-outs")
    msub = m.add_subparsers(dest="marketing_command", required=True)

    a = msub.add_parser(
        "audience",
        help="CSV of the clients with an active marketing consent for a channel (contact only)",
    )
    a.add_argument("--channel", required=True, choices=CHANNELS)
    a.add_argument("-o", "--output", type=Path, help="CSV file; default stdout")
    a.add_argument(
        "--unsubscribe-url",
        help="the portal's public https URL: adds each client's List-Unsubscribe headers "
        "(needs SYMFHIR_MARKETING_KEY, the portal's key); e-mail only",
    )
    _common(a)
    a.set_defaults(run=_audience)

    p = msub.add_parser("photos", help="CSV of the photos whose client consents to a marketing use")
    p.add_argument("--use", required=True, choices=PHOTO_USES)
    p.add_argument("-o", "--output", type=Path, help="CSV file; default stdout")
    _common(p)
    p.set_defaults(run=_photos)

    o = msub.add_parser(
        "opt-out", help="withdraw a client's marketing consent for a channel (at the desk)"
    )
    o.add_argument("--patient", required=True, help="the client's Patient id")
    o.add_argument("--channel", required=True, choices=CHANNELS)
    _common(o)
    o.set_defaults(run=_opt_out)


def _common(p: argparse.ArgumentParser) -> None:
    add_user_option(p)
    add_server_options(p)


def _now() -> datetime:
    return datetime.now().astimezone()


def _name_cell(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA) else value


def _out(path: Path | None) -> Any:
    return path.open("w", newline="", encoding="utf-8") if path else nullcontext(sys.stdout)


def _audience(args: argparse.Namespace) -> int:
    from symfhir.marketing.audience import marketing_audience
    from symfhir.marketing.unsubscribe import marketing_headers, marketing_key
    from symfhir.privacy.audit import RequestAuditTrail
    from symfhir.workspace.actor import Actor

    if args.unsubscribe_url and args.channel != "email":
        print("symfhir: error: --unsubscribe-url is for the email channel", file=sys.stderr)
        return EXIT_FATAL
    key = marketing_key() if args.unsubscribe_url else None
    now = _now()
    with open_client(args) as client:
        audit = RequestAuditTrail(client, args.user)
        audience = marketing_audience(client, Actor(args.user), args.channel, now=now, audit=audit)
    header = ["patient_id", "name", args.channel if args.channel == "email" else "phone"]
    if key is not None:
        header += ["list_unsubscribe", "list_unsubscribe_post"]
    with _out(args.output) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for c in audience.contacts:
            row = [c.patient_id, _name_cell(c.name), c.contact]
            if key is not None:
                h = marketing_headers(args.unsubscribe_url, c.patient_id, "email", now=now, key=key)
                row += [h["List-Unsubscribe"], h["List-Unsubscribe-Post"]]
            writer.writerow(row)
    listed = f"{len(audience.contacts)} clients listed for {args.channel}"
    _summary(listed, audience.without_contact)
    return EXIT_OK


def _summary(line: str, left_out: int) -> None:
    if left_out:
        line += f"; {left_out} consenting clients left out (no usable contact or record)"
    print(line, file=sys.stderr)


def _photos(args: argparse.Namespace) -> int:
    from symfhir.marketing.audience import marketing_photos
    from symfhir.privacy.audit import RequestAuditTrail
    from symfhir.workspace.actor import Actor

    with open_client(args) as client:
        audit = RequestAuditTrail(client, args.user)
        found = marketing_photos(client, Actor(args.user), args.use, now=_now(), audit=audit)
    with _out(args.output) as handle:
        writer = csv.writer(handle)
        writer.writerow(["media_id", "patient_id", "taken", "content_type", "url"])
        for p in found.photos:
            writer.writerow([p.media_id, p.patient_id, p.taken, p.content_type, p.url])
    _summary(f"{len(found.photos)} photos may be used for {args.use}", 0)
    return EXIT_OK


def _opt_out(args: argparse.Namespace) -> int:
    from symfhir.fhir.paths import check_id
    from symfhir.marketing.withdraw import opt_out
    from symfhir.privacy.audit import RequestAuditTrail
    from symfhir.workspace.actor import Actor

    patient = check_id(args.patient)
    with open_client(args) as client:
        audit = RequestAuditTrail(client, args.user)
        done = opt_out(
            client, Actor(args.user), patient, args.channel, via="desk", now=_now(), audit=audit
        )
    words = {
        "withdrawn": "withdrawn",
        "not-given": "nothing to withdraw (not given)",
        "changed": "not changed: the consent changed meanwhile; run it again",
    }
    print(f"marketing by {args.channel} for Patient/{patient}: {words[done.status]}")
    return EXIT_OK if done.status != "changed" else EXIT_FATAL
