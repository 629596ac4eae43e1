"""The export workflow: one client's whole record, as a FHIR Bundle, NDJSON, an HTML report
or a ZIP holding all of them (optionally password-protected). The export is a disclosure:
it writes an AuditEvent in the disclosure shape (``symfhir.audit.disclosure_event``) naming
who received it, why, and what went out (resource types, never content)."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO, BinaryIO, Literal, get_args

from symfhir.audit import AuditTrail, DisclosureTo
from symfhir.errors import ExportError, NotAllowedError, SymfhirError
from symfhir.export.attachments import Base64Writer, FileRef, inline_base64, write_file
from symfhir.export.collect import collect
from symfhir.export.fhir_formats import write_bundle, write_ndjson
from symfhir.export.output import HashingWriter, complete_file
from symfhir.export.package import Disclosures, write_package
from symfhir.export.report import write_report
from symfhir.export.spool import Spool
from symfhir.fhir import FhirClient
from symfhir.fhir.paths import check_id
from symfhir.privacy.disclosure_report import render
from symfhir.privacy.disclosures import MAX_YEARS, accounting_of_disclosures, years_before
from symfhir.spa import load_spa
from symfhir.workspace.actor import Actor

log = logging.getLogger(__name__)

Format = Literal["bundle", "ndjson", "html", "zip"]
FORMATS: tuple[str, ...] = get_args(Format)

#: Who receives an export nobody named a recipient for: the client, who asked for it.
TO_THE_CLIENT = "the client (patient request)"

#: The accounting of disclosures in a package: file name and format of disclosure_report.
DISCLOSURE_FILES = (
    ("disclosures.html", "html"),
    ("disclosures.csv", "csv"),
    ("disclosures.json", "bundle"),
)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: resources per type, the file's size and hashes (SHA-256 hex;
    SHA-1 base64 as FHIR's ``Attachment.hash`` wants it), the photos and other files it
    carries, how the record was read, and whether the accounting of disclosures is in it."""

    patient_id: str
    fmt: str
    counts: Mapping[str, int]
    size: int
    sha256: str
    sha1_base64: str
    photos: int
    files: int
    encrypted: bool
    method: str
    not_read: tuple[str, ...] = ()
    dropped: int = 0
    disclosures: bool = False
    path: Path | None = field(default=None)

    @property
    def resources(self) -> int:
        return sum(self.counts.values())


def export_patient(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    out: BinaryIO | Path,
    *,
    fmt: Format,
    password: str | None = None,
    to: DisclosureTo | None = None,
    now: datetime,
    audit: AuditTrail,
) -> ExportResult:
    """Export the client's record to ``out`` (a path, written under a temporary name and
    renamed when complete; or an open binary stream) in ``fmt``. NDJSON to an existing
    folder is one ``TYPE.ndjson`` file per type there (size and hash then cover them all,
    Patient first, then by type); to a file or stream, every resource grouped by type.

    ``password`` (zip only) encrypts the ZIP with AES-256; it is never logged or stored.
    ``to`` is who receives the export and why (default: the client, at their request,
    ``PATRQT``); the AuditEvent records it as a disclosure, with the resource types that went
    out (and Binary when files did), so the accounting of disclosures lists it.
    Raises ExportError for a bad format, password or id (nothing read), NotAllowedError when
    the actor may not read the Patient, FhirNotFoundError for an unknown client,
    FhirServerError when the server fails (no file is left at ``out``'s path then).
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: one of {', '.join(FORMATS)}")
    if password is not None and fmt != "zip":
        raise ExportError("only a zip export can be password-protected")
    if password is not None and len(password) < 8:
        raise ExportError("the export password must be at least 8 characters")
    try:
        check_id(patient_id, "patient id")
    except SymfhirError:
        raise ExportError("not a valid patient id") from None
    if to is None:
        to = DisclosureTo(TO_THE_CLIENT, "PATRQT", f"Patient/{patient_id}")
    whose = (f"Patient/{patient_id}",)  # names the client for trails not bound to one
    try:
        with Spool() as spool:
            collected = collect(client, actor, patient_id, spool)
            disclosures = None
            if fmt == "zip":
                disclosures = _disclosures(client, actor, patient_id, now, audit)
            if fmt == "ndjson" and isinstance(out, Path) and out.is_dir():
                sink = _ndjson_files(spool, out)
                photos, files = 0, 0
            elif isinstance(out, Path):
                with complete_file(out) as stream:
                    sink = HashingWriter(stream)
                    photos, files = _write(
                        client, spool, sink, fmt, password, patient_id, now, disclosures
                    )
            else:
                sink = HashingWriter(out)
                photos, files = _write(
                    client, spool, sink, fmt, password, patient_id, now, disclosures
                )
                sink.flush()
            counts = dict(spool.counts)
    except SymfhirError as exc:
        audit(
            "export",
            success=False,
            description=f"export {fmt} failed: {type(exc).__name__}",
            resources=whose,
            disclosure=to,
        )
        raise
    result = ExportResult(
        patient_id=patient_id,
        fmt=fmt,
        counts=counts,
        size=sink.size,
        sha256=sink.sha256,
        sha1_base64=base64.b64encode(sink.sha1).decode("ascii"),
        photos=photos,
        files=files,
        encrypted=password is not None,
        method=collected.method,
        not_read=collected.not_read,
        dropped=collected.dropped,
        disclosures=disclosures is not None,
        path=out if isinstance(out, Path) else None,
    )
    went = sorted(result.counts) + (["Binary"] if result.files else [])
    audit(
        "export",
        description=describe(result),
        resources=whose,
        disclosure=replace(to, disclosed=tuple(dict.fromkeys([*to.disclosed, *went]))),
    )
    return result


def _ndjson_files(spool: Spool, folder: Path) -> HashingWriter:
    """One ``TYPE.ndjson`` file per type in ``folder`` (Bulk Data's layout), each appearing
    complete; the sink returned has counted and hashed them all, in type order (Patient
    first), as if they were one file."""
    total = HashingWriter(_Discard())
    for resource_type in spool.types():
        with complete_file(folder / f"{resource_type}.ndjson") as stream:
            sink = _Tee(stream, total)
            spool.copy_ndjson(resource_type, sink)  # type: ignore[arg-type]
    return total


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        return None


class _Tee:
    def __init__(self, first: IO[bytes], second: HashingWriter) -> None:
        self._first, self._second = first, second

    def write(self, data: bytes) -> int:
        self._first.write(data)
        return self._second.write(data)


def describe(result: ExportResult) -> str:
    """The AuditEvent's words for an export: format, what went out by type, its hash.
    Types, counts and hashes only: no clinical content."""
    kinds = ", ".join(f"{t} {n}" for t, n in sorted(result.counts.items()))
    locked = " (password-protected)" if result.encrypted else ""
    return (
        f"export {result.fmt}{locked}: {result.resources} resources ({kinds}); "
        f"{result.photos} photos, {result.files} files; sha256 {result.sha256}"
    )


def _write(
    client: FhirClient,
    spool: Spool,
    sink: HashingWriter,
    fmt: str,
    password: str | None,
    patient_id: str,
    now: datetime,
    disclosures: Disclosures | None,
) -> tuple[int, int]:
    bundle_id = str(uuid.uuid4())
    spa_name = load_spa().name
    if fmt == "bundle":
        write_bundle(spool, sink, bundle_id=bundle_id, base_url=client.base_url, now=now)
        return 0, 0
    if fmt == "ndjson":
        write_ndjson(spool, sink)
        return 0, 0
    if fmt == "html":
        embedded = _Embedder(client)
        write_report(
            spool,
            sink,
            patient_id=patient_id,
            spa_name=spa_name,
            base_url=client.base_url,
            now=now,
            file_source=embedded,
            csp_images="data:",
        )
        return embedded.count, embedded.count
    counts = write_package(
        client,
        spool,
        sink,
        password=password,
        patient_id=patient_id,
        spa_name=spa_name,
        now=now,
        bundle_id=bundle_id,
        disclosures=disclosures,
    )
    return counts.photos, counts.files


class _Embedder:
    """Writes a photo as a ``data:`` URI, base64-encoded as it streams from the server."""

    def __init__(self, client: FhirClient) -> None:
        self._client = client
        self.count = 0

    def __call__(self, ref: FileRef, dest: IO[bytes]) -> None:
        # Only image media types reach here, and they are [\w.+-]+/[\w.+-]+ (checked).
        kind = ref.content_type if _safe_media_type(ref.content_type) else "image/jpeg"
        dest.write(f"data:{kind};base64,".encode("ascii"))
        self.count += 1
        if ref.binary_id is None:
            for piece in inline_base64(ref):
                dest.write(piece)
            return
        encoder = Base64Writer(dest)
        write_file(self._client, ref, encoder)  # type: ignore[arg-type]
        encoder.close()


def _safe_media_type(value: str) -> bool:
    kind, slash, sub = value.partition("/")
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789.+-")
    return bool(slash and kind and sub) and set(value.lower()) - {"/"} <= allowed


def _disclosures(
    client: FhirClient, actor: Actor, patient_id: str, now: datetime, audit: AuditTrail
) -> Disclosures | None:
    """The accounting of disclosures of the six years before ``now`` (what HIPAA covers) as
    HTML, CSV and a FHIR Bundle; None when the actor may not read AuditEvents (the package's
    README then says to ask the privacy officer for it)."""
    end = now.date()
    try:
        accounting = accounting_of_disclosures(
            client,
            actor,
            patient_id,
            start=years_before(end, MAX_YEARS),
            end=end,
            now=now,
            audit=audit,
        )
    except NotAllowedError:
        return None
    spa_name = load_spa().name
    files = [
        (name, render(accounting, fmt, spa_name=spa_name, base_url=client.base_url).encode())
        for name, fmt in DISCLOSURE_FILES
    ]
    return Disclosures(tuple(files))
