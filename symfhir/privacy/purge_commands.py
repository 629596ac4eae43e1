"""``symfhir privacy purge``: the portal's daily clean-up (``symfhir.privacy.purge``) of
expired verification codes, dead links and access packages past their time. Needs the app's
store (SYMFHIR_STORE_URL, SYMFHIR_STORE_KEYS), not the FHIR server; prints counts only."""

from __future__ import annotations

import argparse
from typing import Any

from symfhir.command_options import EXIT_OK


def add_parser(steps: Any) -> argparse.ArgumentParser:
    """``purge`` on the subparsers of ``symfhir privacy``."""
    parser = steps.add_parser(
        "purge",
        help="delete expired codes, dead links and old access packages (daily)",
        description="Delete verification codes and rate counts past their use, links long "
        "dead, and access packages (SYMFHIR_EXPORT_DIR) older than packages.keep_hours of "
        "mappings/privacy.yaml that no live download link may still fetch. Idempotent; safe "
        "to run daily.",
        epilog="Exit codes: 0 done, 2 the store or the settings failed.",
    )
    parser.add_argument(
        "--folder", help="the access package folder; default $SYMFHIR_EXPORT_DIR or out/packages"
    )
    parser.add_argument("--as-of", help="clock for the run (ISO 8601 with offset); default now")
    parser.set_defaults(run=run_purge)
    return parser


def run_purge(args: argparse.Namespace) -> int:
    from datetime import datetime
    from pathlib import Path

    from symfhir.errors import SymfhirError
    from symfhir.export.access_request import package_dir
    from symfhir.privacy.purge import purge
    from symfhir.store import Store

    now = datetime.now().astimezone()
    if args.as_of:
        now = datetime.fromisoformat(args.as_of)
        if now.tzinfo is None:
            raise SymfhirError("--as-of needs a UTC offset, e.g. 2026-11-25T09:00:00-06:00")
    folder = Path(args.folder) if args.folder else package_dir()
    store = Store.from_env()
    try:
        done = purge(store, folder, now=now)
    finally:
        store.dispose()
    print(f"verification codes and rate counts deleted: {done.codes}")
    print(f"links deleted: {done.links}")
    print(f"access packages deleted: {done.packages}")
    if done.packages_kept:
        print(f"access packages kept for a live download link: {done.packages_kept}")
    return EXIT_OK
