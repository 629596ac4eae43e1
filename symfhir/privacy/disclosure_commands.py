"""``symfhir disclosures``: a client's accounting of disclosures (HIPAA) as HTML, CSV or a
FHIR Bundle, written whole or not at all."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import date, datetime
from pathlib import Path

from symfhir.command_options import EXIT_OK, add_server_options, add_user_option, open_client

FORMATS = ("html", "csv", "bundle")


def register(sub: argparse._SubParsersAction) -> None:
    """``symfhir disclosures``."""
    add_parser(sub)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The ``disclosures`` parser on ``sub``: the top-level command today; ``symfhir privacy``
    can fold it in by calling this on its own subparsers (then drop it from FEATURE_COMMANDS)."""
    p = sub.add_parser(
        "disclosures",
        help="a client's accounting of disclosures (who received what, when and why)",
        epilog="Dates are the spa's local days, both included; at most six years. "
        "Exit codes: 0 written, 2 usage error or the server refused.",
    )
    p.add_argument("--patient", required=True, help="the client's Patient id")
    p.add_argument(
        "--from",
        dest="start",
        type=date.fromisoformat,
        help="first day (YYYY-MM-DD); default six years before --to",
    )
    p.add_argument(
        "--to", dest="end", type=date.fromisoformat, help="last day (YYYY-MM-DD); default today"
    )
    p.add_argument("--format", choices=FORMATS, default="html")
    p.add_argument("-o", "--output", type=Path, help="file to write; default stdout")
    add_user_option(p)
    add_server_options(p)
    p.set_defaults(run=run_disclosures)
    return p


def run_disclosures(args: argparse.Namespace) -> int:
    from symfhir.audit import ClientAuditTrail
    from symfhir.privacy.disclosure_report import render
    from symfhir.privacy.disclosures import (
        MAX_YEARS,
        accounting_of_disclosures,
        years_before,
    )
    from symfhir.spa import load_spa
    from symfhir.workspace.actor import Actor

    spa = load_spa()
    now = datetime.now(spa.zone)
    end = args.end or now.date()
    start = args.start or years_before(end, MAX_YEARS)
    with open_client(args) as client:
        accounting = accounting_of_disclosures(
            client,
            Actor(args.user),
            args.patient,
            start=start,
            end=end,
            now=now,
            audit=ClientAuditTrail(client, args.patient, args.user),
        )
        text = render(accounting, args.format, spa_name=spa.name, base_url=client.base_url)
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_whole(args.output, text)
        print(
            f"{len(accounting.disclosures)} disclosures from {start} to {end} "
            f"written to {args.output}",
            file=sys.stderr,
        )
    return EXIT_OK


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, renamed into
    place: a crash leaves the old file or none, never half of one."""
    handle, temp = tempfile.mkstemp(dir=path.parent or Path("."), prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
