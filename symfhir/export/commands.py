"""``symfhir export``: one client's record as a FHIR Bundle, NDJSON, an HTML report or a ZIP
of them all, optionally password-protected."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from symfhir.command_options import EXIT_OK, add_server_options, add_user_option, open_client

PASSWORD_ENV = "SYMFHIR_EXPORT_PASSWORD"  # noqa: S105 (the variable's name, not a secret)
#: Kept in step with symfhir.export.workflow.TO_THE_CLIENT and symfhir.audit.PURPOSES (a test
#: checks): importing them here would load the export workflow for every ``symfhir`` command.
TO_THE_CLIENT = "the client (patient request)"
PURPOSE_CODES = ("PATRQT", "TREAT", "COC", "HPAYMT", "HOPERAT", "PUBHLTH")


def register(sub: Any) -> None:
    """Add the ``export`` subcommand."""
    p = sub.add_parser(
        "export",
        help="export one client's record (FHIR Bundle, NDJSON, HTML report, or a ZIP of all)",
        epilog=f"--encrypt reads the password from ${PASSWORD_ENV} when set, else asks for "
        "it. The export is recorded as a disclosure (recipient and purpose) in the client's "
        "accounting of disclosures. Exit codes: 0 written, 2 nothing written (error).",
    )
    p.add_argument("--patient", required=True, help="the client's Patient id on the server")
    p.add_argument(
        "--format", dest="fmt", choices=("bundle", "ndjson", "html", "zip"), default="zip"
    )
    p.add_argument(
        "--encrypt",
        action="store_true",
        help="protect the ZIP with a password (AES-256); zip format only",
    )
    p.add_argument(
        "-o",
        "--output",
        help="output file; default ./PATIENT-export.EXT; - for stdout; with --format ndjson "
        "an existing folder gets one TYPE.ndjson file per resource type",
    )
    p.add_argument(
        "--recipient",
        default=TO_THE_CLIENT,
        metavar="NAME",
        help="who receives the export, for the accounting of disclosures; "
        f"default {TO_THE_CLIENT!r}",
    )
    p.add_argument(
        "--recipient-ref",
        metavar="Type/ID",
        help="the recipient as a resource on the server (Practitioner/12); default the "
        "client's Patient when the recipient is the client",
    )
    p.add_argument(
        "--purpose",
        default="PATRQT",
        choices=PURPOSE_CODES,
        help="why it is disclosed (v3 ActReason): PATRQT patient request (default), TREAT "
        "treatment, COC coordination of care, HPAYMT payment, HOPERAT operations, PUBHLTH "
        "public health",
    )
    add_user_option(p)
    add_server_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from datetime import datetime
    from pathlib import Path

    from symfhir.audit import ClientAuditTrail, DisclosureTo
    from symfhir.errors import ExportError
    from symfhir.export import export_patient
    from symfhir.fhir.reading import reference_id
    from symfhir.spa import load_spa
    from symfhir.workspace.actor import Actor

    password = _password() if args.encrypt else None
    if args.encrypt and args.fmt != "zip":
        raise ExportError("--encrypt needs --format zip")
    extension = {"bundle": "json", "ndjson": "ndjson", "html": "html", "zip": "zip"}[args.fmt]
    output = args.output or f"{args.patient}-export.{extension}"
    actor = Actor(fhir_user=args.user)
    reference = args.recipient_ref
    if reference and reference_id(reference, reference.split("/", 1)[0]) is None:
        raise ExportError("--recipient-ref must be a FHIR reference such as Practitioner/12")
    if reference is None and args.recipient == TO_THE_CLIENT:
        reference = f"Patient/{args.patient}"
    try:
        to = DisclosureTo(args.recipient, args.purpose, reference)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    with open_client(args) as client:
        audit = ClientAuditTrail(client, args.patient, args.user)
        target: Any = sys.stdout.buffer if output == "-" else Path(output)
        result = export_patient(
            client,
            actor,
            args.patient,
            target,
            fmt=args.fmt,
            password=password,
            to=to,
            now=datetime.now(load_spa().zone),
            audit=audit,
        )
    where = "stdout" if output == "-" else output
    kinds = ", ".join(f"{t} {n}" for t, n in sorted(result.counts.items()))
    print(
        f"exported {result.resources} resources ({kinds}), {result.photos} photos, "
        f"{result.size} bytes to {where}" + (" (password-protected)" if result.encrypted else ""),
        file=sys.stderr,
    )
    print(f"sha256 {result.sha256}", file=sys.stderr)
    if result.not_read:
        print(f"not included (not permitted): {', '.join(result.not_read)}", file=sys.stderr)
    return EXIT_OK


def _password() -> str:
    from symfhir.errors import ExportError

    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise ExportError(f"--encrypt needs a terminal to ask for the password, or ${PASSWORD_ENV}")
    first = getpass.getpass("Export password: ")
    if first != getpass.getpass("Repeat the password: "):
        raise ExportError("the passwords do not match")
    return first
