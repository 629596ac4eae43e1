"""What every ``symfhir`` subcommand that talks to a FHIR server shares: its options, its
client, and the exit codes (``symfhir/cli.py`` turns errors into them in one place)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from symfhir.fhir import FhirClient

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_FATAL = 2


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """``--server`` and ``--config``, resolved as ``symfhir import`` documents them."""
    parser.add_argument(
        "--server",
        help="FHIR base URL; default $FHIR_BASE_URL, then the config file, "
        "then http://localhost:8080/fhir",
    )
    parser.add_argument("--config", type=Path, help="config file (TOML, [server] table)")


def add_user_option(parser: argparse.ArgumentParser) -> None:
    """``--user``: who acts, as the FHIR server knows them, for the audit trail."""
    parser.add_argument(
        "--user",
        default=os.environ.get("SYMFHIR_FHIR_USER"),
        help="who acts, as a FHIR reference (Practitioner/ID), for the audit trail; "
        "default $SYMFHIR_FHIR_USER",
    )


def open_client(args: argparse.Namespace) -> FhirClient:
    """The FHIR client for ``--server``/``--config`` (use it as a context manager).
    Raises ConfigError for a bad configuration."""
    from symfhir.fhir import FhirClient, load_config, make_auth

    config = load_config(server=args.server, config_path=args.config)
    return FhirClient(config, make_auth(config))
