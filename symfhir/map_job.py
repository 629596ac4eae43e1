"""The ``symfhir map`` job: a spa export (+ photo manifest) → transaction Bundles + rejects.

Streams the input: one client is read, mapped, validated and written before the
next is read, so memory does not grow with the number of clients.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import orjson

from symfhir.errors import PhotoError
from symfhir.mapping.bundle import client_entries, transaction
from symfhir.mapping.context import MappingContext
from symfhir.mapping.patient import organization
from symfhir.mapping.photos import PhotoInput
from symfhir.model import SpaRecord
from symfhir.photos.files import ImageLimits
from symfhir.photos.manifest import ManifestEntry, load_photo, read_manifest
from symfhir.sources.clients import Accepted, ReadOptions, read_clients
from symfhir.sources.fieldmap import load_field_map
from symfhir.sources.rejects import Reject, write_rejects
from symfhir.validation.fast import FastValidator
from symfhir.validation.rules import bundle_rules
from symfhir.validation.split import validate_split


@dataclass
class MapOptions:
    now: datetime
    mapping: str = "default"
    photos: Path | None = None
    card_numbers: str = "reject"
    base_dir: Path | None = None
    limits: ImageLimits = field(default_factory=ImageLimits)


@dataclass
class MapSummary:
    records: int = 0
    mapped: int = 0
    rejected: int = 0
    resources: int = 0
    photos: int = 0
    photos_attached: int = 0
    photos_rejected: int = 0
    masked_card_numbers: int = 0
    rejects: list[Reject] = field(default_factory=list)
    photo_rejects: list[Reject] = field(default_factory=list)

    def line(self) -> str:
        text = f"{self.records} records: {self.mapped} mapped, {self.rejected} rejected"
        if self.photos:
            text += (
                f"; {self.photos} photos: {self.photos_attached} attached, "
                f"{self.photos_rejected} rejected"
            )
        return text


@dataclass(frozen=True)
class MappedClient:
    """One client's validated transaction Bundle (``json`` is its UTF-8 JSON)."""

    accepted: Accepted
    bundle: dict[str, Any]
    json: bytes
    photos_attached: int


#: Resources several clients' Bundles may hold under one fullUrl (conditional on the NPI).
SHARED_TYPES = frozenset({"Practitioner", "PractitionerRole"})


class BundleWriter:
    """Writes NDJSON (one Bundle per client per line) or one streamed JSON Bundle.

    The file is binary: orjson's UTF-8 goes out as it is, never decoded to str and
    encoded again (that round trip was a tenth of writing).
    """

    def __init__(self, fh: IO[bytes], ndjson: bool) -> None:
        self.fh = fh
        self.ndjson = ndjson
        self.first = True
        self.shared: set[str] = set()

    def __enter__(self) -> BundleWriter:
        if not self.ndjson:
            self.fh.write(b'{"resourceType":"Bundle","type":"transaction","entry":[\n')
        return self

    def write(self, bundle: dict[str, Any], data: bytes, shared: set[str]) -> None:
        """Write one client's Bundle; ``data`` is its JSON, already serialized."""
        if self.ndjson:
            self.fh.write(data)
            self.fh.write(b"\n")
            return
        for item in bundle["entry"]:
            url = item["fullUrl"]
            if url in shared or item["resource"]["resourceType"] in SHARED_TYPES:
                # The spa's Organization is in every client's Bundle, and one physician's
                # Practitioner in each of their clients'; once is enough here.
                if url in self.shared:
                    continue
                self.shared.add(url)
            self.fh.write(b"\n" if self.first else b",\n")
            self.fh.write(orjson.dumps(item))
            self.first = False

    def __exit__(self, *exc: object) -> None:
        if not self.ndjson:
            self.fh.write(b"\n]}\n")


class Mapper:
    """Maps accepted records to validated Bundles; holds the validator's cache."""

    def __init__(self, ctx: MappingContext) -> None:
        self.ctx = ctx
        self.validator = FastValidator()

    def bundle_for(
        self, record: SpaRecord, source: str, photos: list[PhotoInput]
    ) -> tuple[dict[str, Any], bytes, list[tuple[str, str]]]:
        """The client's Bundle, its JSON (UTF-8), and every problem found in them."""
        entries = client_entries(record, self.ctx, source, photos)
        problems: list[tuple[str, str]] = []
        for index, item in enumerate(entries):
            for problem in validate_split(self.validator, item.resource):
                problems.append((f"entry[{index}].{problem.path}", problem.message))
        bundle = transaction(entries)
        # orjson writes the same compact UTF-8 JSON as json.dumps(separators=(",", ":"),
        # ensure_ascii=False), about ten times faster.
        data = orjson.dumps(bundle)
        if not problems:
            problems = [(p.path, p.message) for p in bundle_rules(bundle, data)]
        return bundle, data, problems


def _photo_consent_problem(record: SpaRecord, taken: date) -> str | None:
    """Why a clinical photo taken on ``taken`` may not be kept, or None if it may."""
    consent = record.consents.get("photos_clinical")
    if consent is None:
        return "the client was never asked for consent to clinical photos"
    if consent.status == "declined":
        return "the client declined consent to clinical photos"
    if consent.date > taken:
        return "the photo was taken before the client consented to clinical photos"
    if consent.withdrawn_on is not None and consent.withdrawn_on <= taken:
        return "the photo was taken after the client withdrew consent to clinical photos"
    return None


def _photo_inputs(
    accepted: Accepted,
    entries: list[ManifestEntry],
    base_dir: Path,
    limits: ImageLimits,
    summary: MapSummary,
    zone: ZoneInfo,
) -> list[PhotoInput]:
    record = accepted.value
    treatment_ids = {t.id for t in record.treatments}
    out: list[PhotoInput] = []
    seen: dict[str, str] = {}
    for item in entries:
        row = _manifest_row(item)
        if item.photo.treatment_id and item.photo.treatment_id not in treatment_ids:
            reason = "no treatment with this id in the client's record"
            summary.photo_rejects.append(Reject(item.record, "treatment_id", reason, row))
            continue
        problem = _photo_consent_problem(record, item.photo.taken_at.astimezone(zone).date())
        if problem:
            summary.photo_rejects.append(Reject(item.record, "client_id", problem, row))
            continue
        try:
            image = load_photo(item, base_dir, limits)
        except PhotoError as err:
            summary.photo_rejects.append(Reject.from_error(err, row))
            continue
        if image.sha1_b64 in seen:
            reason = f"the same image as {seen[image.sha1_b64]}"
            summary.photo_rejects.append(Reject(item.record, "file", reason, row))
            continue
        seen[image.sha1_b64] = item.record
        out.append(PhotoInput(item.photo, image))
    return out


def _manifest_row(item: ManifestEntry) -> dict[str, Any]:
    data = item.photo.model_dump(mode="json")
    return {k: ("" if v is None else v) for k, v in data.items()}


@contextmanager
def _open_out(output: Path | str) -> Iterator[IO[bytes]]:
    if str(output) == "-":
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    # Bundles are ~20 KB each: a 1 MiB buffer turns a system call per Bundle into one
    # per ~50, half the cost of writing them.
    with Path(output).open("wb", buffering=1 << 20) as fh:
        yield fh


def run_map(
    input_path: Path,
    output: Path | str,
    options: MapOptions,
    rejects_path: Path | None = None,
) -> MapSummary:
    """Map every record of ``input_path``; write Bundles to ``output`` and rejects.

    Raises SymfhirError (ConfigError, or RecordError for an unreadable input
    file) for fatal problems; record-level problems become rejects.
    """
    summary = MapSummary()
    job = MapJob(input_path, options, summary)
    ndjson = str(output).endswith((".ndjson", ".jsonl"))
    with _open_out(output) as fh, BundleWriter(fh, ndjson) as writer:
        for _, item in job.clients():
            if isinstance(item, Reject):
                summary.rejects.append(item)
                continue
            writer.write(item.bundle, item.json, job.shared)
            summary.mapped += 1
            summary.resources += len(item.bundle["entry"])
            summary.photos_attached += item.photos_attached
            summary.masked_card_numbers += item.accepted.masked_card_numbers
    summary.rejected = len(summary.rejects)
    summary.photos_rejected = len(summary.photo_rejects)
    if rejects_path is not None:
        write_rejects(rejects_path, summary.rejects, job.columns)
        if summary.photos:
            write_rejects(photo_rejects_path(rejects_path), summary.photo_rejects, PHOTO_COLUMNS)
    return summary


class MapJob:
    """Reads, maps and validates an export one client at a time (shared by map and import).

    Photo counts and photo rejects go to ``summary``; client-level outcomes are
    yielded, so each caller decides what a reject means for it.
    """

    def __init__(self, input_path: Path, options: MapOptions, summary: MapSummary) -> None:
        self.input_path = input_path
        self.options = options
        self.summary = summary
        self.ctx = MappingContext.load(options.now)
        self.fmap = load_field_map(options.mapping, tuple(self.ctx.consent_kinds.kinds))
        self.columns = self.fmap.columns
        self.shared = {organization(self.ctx).full_url}
        self.by_client: dict[str, list[ManifestEntry]] = defaultdict(list)
        self.photo_dir = input_path.parent
        if options.photos is not None:
            manifest = read_manifest(
                options.photos,
                now=options.now,
                tz=self.ctx.spa.timezone,
                terminology=self.ctx.terminology,
            )
            self.photo_dir = options.photos.parent
            summary.photos = len(manifest.entries) + len(manifest.rejects)
            summary.photo_rejects.extend(manifest.rejects)
            for entry in manifest.entries:
                self.by_client[entry.photo.client_id].append(entry)

    def clients(
        self, skip: Callable[[int], bool] | None = None
    ) -> Iterator[tuple[int, MappedClient | Reject | None]]:
        """``(n, outcome)`` for the n-th record (from 1), in input order.

        The outcome is None for a record ``skip(n)`` says to leave alone (already
        imported by an earlier run): it is read, so duplicate ids are still caught,
        but not mapped, and its photos are neither loaded nor rejected.
        """
        ctx = self.ctx
        options = self.options
        read_options = ReadOptions(
            today=ctx.today,
            terminology=ctx.terminology,
            consent_kinds=ctx.consent_kinds,
            card_numbers=options.card_numbers,
            phone_region=ctx.spa.phone_region,
            limits=options.limits,
        )
        mapper = Mapper(ctx)
        items = read_clients(self.input_path, self.fmap, read_options, options.base_dir)
        for number, item in enumerate(items, start=1):
            self.summary.records += 1
            if isinstance(item, Reject):
                yield number, item
                continue
            entries = self.by_client.pop(item.value.client.client_id, [])
            if skip is not None and skip(number):
                yield number, None
                continue
            photos = _photo_inputs(
                item, entries, self.photo_dir, options.limits, self.summary, ctx.spa.zone
            )
            bundle, data, problems = mapper.bundle_for(item.value, item.record, photos)
            if problems:
                path, message = problems[0]
                reason = f"produced invalid FHIR: {message}"
                yield number, Reject(item.record, path, reason, item.row)
                continue
            yield number, MappedClient(item, bundle, data, len(photos))
        for entries in self.by_client.values():
            for entry in entries:
                reason = "no mapped client has this id (absent from the input, or rejected)"
                self.summary.photo_rejects.append(
                    Reject(entry.record, "client_id", reason, _manifest_row(entry))
                )
        self.by_client.clear()


PHOTO_COLUMNS = ["client_id", "file", "taken_at", "body_site", "view", "phase", "treatment_id"]


def photo_rejects_path(rejects_path: Path) -> Path:
    return rejects_path.with_name(f"{rejects_path.stem}-photos.csv")
