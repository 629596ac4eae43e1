"""The ``symfhir`` command. Errors become exit codes here and nowhere else.

Exit codes (every subcommand):
    0  everything was mapped / valid
    1  some records were rejected / some problems were found
    2  usage error or fatal error (unreadable input, bad mapping): nothing usable written
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from symfhir.errors import SymfhirError

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_FATAL = 2

log = logging.getLogger("symfhir")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symfhir",
        description="Map a medical spa's records to FHIR R4 and work with them.",
        epilog="Exit codes: 0 all good, 1 some records rejected or invalid, 2 usage/fatal error.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    m = sub.add_parser("map", help="map a spa export to FHIR transaction Bundles (offline)")
    m.add_argument("input", type=Path, help="client export: .csv, .json (array) or .ndjson")
    m.add_argument(
        "--mapping",
        default="default",
        help="source-format map: a bundled name (default, glowbook) or a YAML file path",
    )
    m.add_argument("--photos", type=Path, help="photo manifest (.csv or .json)")
    m.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file: .ndjson for one Bundle per client, .json for one Bundle; - for stdout",
    )
    m.add_argument(
        "--rejects",
        type=Path,
        help="write rejected rows here (.csv or .json) with record, field and reason; "
        "photo rejects go beside it as NAME-photos.csv",
    )
    m.add_argument(
        "--base-dir",
        type=Path,
        help="folder that file cells (signed forms) are relative to; default: the input's folder",
    )
    m.add_argument(
        "--mask-card-numbers",
        action="store_true",
        help="mask payment card numbers found in free text instead of rejecting the record",
    )
    m.add_argument(
        "--as-of",
        help="clock for the run (ISO 8601 with offset); default now. For reproducible output",
    )

    v = sub.add_parser("validate", help="validate FHIR JSON or NDJSON and print every problem")
    v.add_argument("file", type=Path)
    return parser


def _now(as_of: str | None) -> datetime:
    if not as_of:
        return datetime.now().astimezone()
    value = datetime.fromisoformat(as_of)
    if value.tzinfo is None:
        raise SymfhirError("--as-of needs a UTC offset, e.g. 2026-11-25T09:00:00-06:00")
    return value


def _cmd_map(args: argparse.Namespace) -> int:
    from symfhir.map_job import MapOptions, photo_rejects_path, run_map

    if not args.input.is_file():
        raise SymfhirError(f"input file not found: {args.input}")
    if args.photos is not None and not args.photos.is_file():
        raise SymfhirError(f"photo manifest not found: {args.photos}")
    options = MapOptions(
        now=_now(args.as_of),
        mapping=args.mapping,
        photos=args.photos,
        card_numbers="mask" if args.mask_card_numbers else "reject",
        base_dir=args.base_dir,
    )
    summary = run_map(args.input, args.output, options, args.rejects)
    out = sys.stderr if args.output == "-" else sys.stdout
    print(summary.line(), file=out)
    print(f"{summary.resources} resources written to {args.output}", file=out)
    if summary.masked_card_numbers:
        print(f"{summary.masked_card_numbers} card numbers masked in free text", file=out)
    if args.rejects is not None and (summary.rejected or summary.photos_rejected):
        print(f"rejects written to {args.rejects}", file=out)
        if summary.photos_rejected:
            print(f"photo rejects written to {photo_rejects_path(args.rejects)}", file=out)
    elif summary.rejected or summary.photos_rejected:
        for reject in [*summary.rejects, *summary.photo_rejects][:20]:
            print(f"rejected: {reject.record}: {reject.field}: {reject.reason}", file=sys.stderr)
    return EXIT_PARTIAL if summary.rejected or summary.photos_rejected else EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from symfhir.validation.files import validate_file

    if not args.file.is_file():
        raise SymfhirError(f"file not found: {args.file}")
    count = 0
    for location, problem in validate_file(args.file):
        count += 1
        print(f"{location}: {problem.path}: {problem.message}")
    print(f"{args.file}: {count} problem{'s' if count != 1 else ''}")
    return EXIT_PARTIAL if count else EXIT_OK


COMMANDS = {"map": _cmd_map, "validate": _cmd_validate}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``symfhir`` command; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SymfhirError as err:
        print(f"symfhir: error: {err}", file=sys.stderr)
        return EXIT_FATAL
    except (OSError, ValueError) as err:
        # No stack traces for users; the message names the file, never record contents.
        print(f"symfhir: error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FATAL


if __name__ == "__main__":
    raise SystemExit(main())
