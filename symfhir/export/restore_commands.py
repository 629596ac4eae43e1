"""``symfhir import-package FILE``: restore a client's access package (the export ZIP) into a
FHIR server as one transaction (``symfhir.export.restore``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from symfhir.command_options import EXIT_OK, add_server_options, add_user_option, open_client


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``import-package`` subcommand."""
    p = sub.add_parser(
        "import-package",
        help="restore a client's access package (export ZIP) into a FHIR server",
        description="Re-create every resource of an unencrypted access package (symfhir "
        "export --format zip) with new ids, and its photos and forms as Binary, in one "
        "transaction: all or nothing. Prints the new client's id.",
    )
    p.add_argument("package", type=Path, help="the access package (.zip, not encrypted)")
    add_user_option(p)
    add_server_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from datetime import datetime

    from symfhir.audit import ClientAuditTrail
    from symfhir.export.restore import restore_package
    from symfhir.spa import load_spa
    from symfhir.workspace.actor import Actor

    with open_client(args) as client:
        # The client's new id is known only once the transaction is in: the event names
        # the restored resource types, not a patient.
        audit = ClientAuditTrail(client, None, args.user)
        result = restore_package(
            client,
            Actor(fhir_user=args.user),
            args.package,
            now=datetime.now(load_spa().zone),
            audit=audit,
        )
    kinds = ", ".join(f"{t} {n}" for t, n in sorted(result.counts.items()))
    print(
        f"restored {result.resources} resources ({kinds}) and {len(result.binaries)} files",
        file=sys.stderr,
    )
    print(f"Patient/{result.patient_id}")
    return EXIT_OK
