"""The ``symfhir`` command. Errors become exit codes here and nowhere else.

Exit codes (every subcommand):
    0  everything was mapped / valid
    1  some records were rejected / some problems were found
    2  usage error or fatal error (unreadable input, bad mapping): nothing usable written
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from symfhir.cardnumbers import mask_log_records, masked
from symfhir.command_options import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, add_server_options
from symfhir.errors import FhirServerError, SymfhirError

if TYPE_CHECKING:
    from symfhir.map_job import MapOptions


log = logging.getLogger("symfhir")

#: Modules adding subcommands of their own feature: each has ``register(sub)``, which adds
#: its parsers with ``set_defaults(run=handler)``; ``handler(args) -> int`` is the exit code.
#: They import what they need inside the handler, so ``symfhir map`` starts no slower.
FEATURE_COMMANDS: tuple[str, ...] = (
    "symfhir.privacy.commands",
    "symfhir.privacy.disclosure_commands",
    "symfhir.privacy.policy_commands",
    "symfhir.privacy.retention_commands",
    "symfhir.privacy.correction_commands",
    "symfhir.export.commands",
    "symfhir.export.restore_commands",
    "symfhir.marketing.commands",
    "symfhir.sharing.commands",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symfhir",
        description="Map a medical spa's records to FHIR R4 and work with them.",
        epilog="Exit codes: 0 all good, 1 some records rejected or invalid, 2 usage/fatal error.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    m = sub.add_parser("map", help="map a spa export to FHIR transaction Bundles (offline)")
    _input_options(m)
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

    i = sub.add_parser(
        "import",
        help="map a spa export and write it to a FHIR server (batched, concurrent, resumable)",
        epilog="Exit codes: 0 every record imported, 1 some rejected (see the rejects file), "
        "2 usage error or the server stopped the run (re-run with --resume to continue).",
    )
    _input_options(i)
    add_server_options(i)
    i.add_argument("--batch-size", type=_positive, default=20, help="clients per transaction")
    i.add_argument("--workers", type=_positive, default=4, help="concurrent transactions")
    i.add_argument(
        "--resume",
        action="store_true",
        help="skip the records an earlier run of the same input already settled",
    )
    i.add_argument(
        "--dry-run",
        action="store_true",
        help="check the server's capabilities, map and validate everything, write nothing",
    )
    i.add_argument(
        "--update",
        action="store_true",
        help="replace resources whose source record changed (conditional update); "
        "default: create what is missing, never overwrite what the server holds",
    )
    i.add_argument(
        "--rejects",
        type=Path,
        help="rejected rows with record, field and reason (.csv or .ndjson); "
        "default ./INPUT-import-rejects.csv, photo rejects beside it as NAME-photos.csv",
    )
    i.add_argument(
        "--checkpoint",
        type=Path,
        help="progress file for --resume; default ./INPUT.import-checkpoint.json",
    )
    i.add_argument("--quiet", action="store_true", help="no progress display")

    v = sub.add_parser("validate", help="validate FHIR JSON or NDJSON and print every problem")
    v.add_argument("file", type=Path)
    for name in FEATURE_COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help="client export: .csv, .json (array) or .ndjson")
    p.add_argument(
        "--mapping",
        default="default",
        help="source-format map: a bundled name (default, glowbook) or a YAML file path",
    )
    p.add_argument("--photos", type=Path, help="photo manifest (.csv or .json)")
    p.add_argument(
        "--base-dir",
        type=Path,
        help="folder that file cells (signed forms) are relative to; default: the input's folder",
    )
    p.add_argument(
        "--mask-card-numbers",
        action="store_true",
        help="mask payment card numbers found in free text instead of rejecting the record",
    )
    p.add_argument(
        "--as-of",
        help="clock for the run (ISO 8601 with offset); default now. For reproducible output",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _map_options(args: argparse.Namespace) -> MapOptions:
    from symfhir.map_job import MapOptions

    if not args.input.is_file():
        raise SymfhirError(f"input file not found: {args.input}")
    if args.photos is not None and not args.photos.is_file():
        raise SymfhirError(f"photo manifest not found: {args.photos}")
    return MapOptions(
        now=_now(args.as_of),
        mapping=args.mapping,
        photos=args.photos,
        card_numbers="mask" if args.mask_card_numbers else "reject",
        base_dir=args.base_dir,
    )


def _now(as_of: str | None) -> datetime:
    if not as_of:
        return datetime.now().astimezone()
    value = datetime.fromisoformat(as_of)
    if value.tzinfo is None:
        raise SymfhirError("--as-of needs a UTC offset, e.g. 2026-11-25T09:00:00-06:00")
    return value


def _cmd_map(args: argparse.Namespace) -> int:
    from symfhir.map_job import photo_rejects_path, run_map

    options = _map_options(args)
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
            line = masked(f"rejected: {reject.record}: {reject.field}: {reject.reason}")
            print(line, file=sys.stderr)
    return EXIT_PARTIAL if summary.rejected or summary.photos_rejected else EXIT_OK


def _cmd_import(args: argparse.Namespace) -> int:
    from symfhir.fhir import FhirClient, load_config, make_auth
    from symfhir.importing.job import Importer, ImportOptions, photo_rejects_path
    from symfhir.importing.progress import Progress
    from symfhir.sources.clients import count_records

    map_options = _map_options(args)
    config = load_config(server=args.server, config_path=args.config)
    stem = args.input.stem
    options = ImportOptions(
        map=map_options,
        server=config.base_url,
        checkpoint=args.checkpoint or Path(f"{stem}.import-checkpoint.json"),
        rejects=args.rejects or Path(f"{stem}-import-rejects.csv"),
        batch_size=args.batch_size,
        workers=args.workers,
        resume=args.resume,
        dry_run=args.dry_run,
        update=args.update,
    )
    progress = None
    if not args.quiet:
        progress = Progress(count_records(args.input))
    print(f"importing {args.input} into {config.base_url}", file=sys.stderr)
    with FhirClient(config, make_auth(config)) as client:
        importer = Importer(client, options, progress)
        try:
            summary = importer.run(args.input)
        except SymfhirError as err:
            done = importer.summary
            print(
                f"symfhir: import stopped: {_safe(err)}\n"
                f"{done.imported} records imported and {done.rejected} rejected before it "
                f"stopped; progress is in {options.checkpoint}: re-run with --resume to continue",
                file=sys.stderr,
            )
            return EXIT_FATAL
    for line in summary.lines(args.dry_run):
        print(line)
    if summary.rejected or summary.photos_rejected:
        print(f"rejects written to {options.rejects}")
        if summary.photos_rejected:
            print(f"photo rejects written to {photo_rejects_path(options.rejects)}")
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


def _safe(err: SymfhirError) -> str:
    """The message for stderr: a server's own words may echo record values (PHI), so
    server errors are shown by their redacted one-line form."""
    if isinstance(err, FhirServerError):
        return masked(err.log_text)
    return masked(str(err))


COMMANDS = {"map": _cmd_map, "import": _cmd_import, "validate": _cmd_validate}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``symfhir`` command; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    mask_log_records()
    args = _parser().parse_args(argv)
    try:
        run = getattr(args, "run", None) or COMMANDS[args.command]
        return run(args)
    except SymfhirError as err:
        print(f"symfhir: error: {_safe(err)}", file=sys.stderr)
        return EXIT_FATAL
    except (OSError, ValueError) as err:
        # No stack traces for users; the message names the file, never record contents.
        print(f"symfhir: error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FATAL


if __name__ == "__main__":
    raise SystemExit(main())
