"""The export ZIP: the FHIR Bundle, NDJSON per type, the HTML report, the photos and signed
forms as files, a README.txt and (where the installation has it) the accounting of
disclosures. Optionally AES-256 encrypted (WinZip AE-2, which 7-Zip, macOS Archive Utility
alternatives and most unzip tools open) with a password from the caller.

Written in one forward pass (members streamed, data descriptors after each), so photos go
from the server into the ZIP without ever being held whole.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import IO

import pyzipper

from symfhir.export.attachments import FileRef, attachments_of, write_file
from symfhir.export.fhir_formats import write_bundle
from symfhir.export.report import write_report
from symfhir.export.spool import Spool
from symfhir.fhir import FhirClient

FILE_TYPES = ("Media", "Consent", "DocumentReference")

README = """\
Your record, exported by {spa} on {when}.

  report.html          the record to read: open it in any web browser (works offline;
                       keep it beside the photos/ and forms/ folders)
  bundle.json          the complete record as one FHIR R4 Bundle (type collection), for
                       another clinic's or an app's import
  ndjson/TYPE.ndjson   the same resources, one per line, one file per resource type
                       (FHIR Bulk Data format)
  photos/              the photos, one file each, named after the record that holds them
                       (Media-ID.jpg is the photo of the Media resource ID in bundle.json)
  forms/               signed consent forms and other documents
  files.csv            every photo and form: file, record, content type, size, SHA-1
{disclosures}
Resources: {resources}. Files: {files}.
"""


@dataclass(frozen=True)
class Disclosures:
    """The accounting of disclosures as files for the package: (name, bytes) pairs, the
    first of which the report links (``disclosures.html``)."""

    files: Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class PackageCounts:
    photos: int
    files: int


def write_package(
    client: FhirClient,
    spool: Spool,
    sink: IO[bytes],
    *,
    password: str | None,
    patient_id: str,
    spa_name: str,
    now: datetime,
    bundle_id: str,
    disclosures: Disclosures | None,
) -> PackageCounts:
    """Write the ZIP to ``sink``. Raises FhirServerError when a photo cannot be read."""
    base_url = client.base_url
    stamp = now.timetuple()[:6]
    if password is not None:
        archive = pyzipper.AESZipFile(
            sink, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
        )
        archive.setpassword(password.encode("utf-8"))
    else:
        archive = pyzipper.ZipFile(sink, "w", compression=pyzipper.ZIP_DEFLATED)

    def member(name: str, compressed: bool = True) -> IO[bytes]:
        info = archive.zipinfo_cls(name, date_time=stamp)
        info.compress_type = pyzipper.ZIP_DEFLATED if compressed else pyzipper.ZIP_STORED
        info.external_attr = 0o600 << 16
        return archive.open(info, "w")

    photos = files = 0
    manifest = io.StringIO()
    writer = csv.writer(manifest)
    writer.writerow(["file", "record", "content_type", "size", "sha1"])
    with archive:
        for resource_type in spool.types():
            with member(f"ndjson/{resource_type}.ndjson") as dest:
                spool.copy_ndjson(resource_type, dest)
        with member("bundle.json") as dest:
            write_bundle(spool, dest, bundle_id=bundle_id, base_url=base_url, now=now)
        for resource_type in FILE_TYPES:
            for resource in spool.resources(resource_type):
                for ref in attachments_of(resource, base_url):
                    # Images and PDFs are compressed already: stored as they are.
                    with member(ref.name, compressed=False) as dest:
                        size, sha1 = write_file(client, ref, dest)
                    writer.writerow([ref.name, ref.owner, ref.content_type, size, sha1])
                    files += 1
                    photos += ref.folder == "photos"
        with member("files.csv") as dest:
            dest.write(manifest.getvalue().encode("utf-8"))
        extra = []
        if disclosures is not None:
            for name, content in disclosures.files:
                with member(f"disclosures/{name}") as dest:
                    dest.write(content)
            links = ", ".join(
                f'<a href="disclosures/{escape(n)}">{escape(n)}</a>' for n, _ in disclosures.files
            )
            body = (
                f"<p>Who received your information, when and why: {links}.</p>"
                if disclosures.files
                else "<p>No disclosures recorded.</p>"
            )
            extra.append(("Accounting of disclosures", body))
        with member("report.html") as dest:
            write_report(
                spool,
                dest,
                patient_id=patient_id,
                spa_name=spa_name,
                base_url=base_url,
                now=now,
                file_source=_relative,
                csp_images="'self' data: file:",
                extra_sections=extra,
            )
        with member("README.txt") as dest:
            note = (
                "  disclosures/         the accounting of disclosures: who received your\n"
                "                       information, when and why\n"
                if disclosures is not None
                else "  (The accounting of disclosures is not part of this package: ask the\n"
                "  spa's privacy officer for it.)\n"
            )
            text = README.format(
                spa=spa_name,
                when=now.isoformat(timespec="minutes"),
                disclosures=note,
                resources=sum(spool.counts.values()),
                files=files,
            )
            dest.write(text.encode("utf-8"))
    return PackageCounts(photos, files)


def _relative(ref: FileRef, dest: IO[bytes]) -> None:
    # Names are built from resource types and FHIR ids ([A-Za-z0-9-.]): safe in an attribute.
    dest.write(ref.name.encode("ascii", "replace"))
