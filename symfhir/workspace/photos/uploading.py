"""Uploading photos to a client's record (``upload_photos``): the form checked, the clinical
consent checked, each file cleaned (the original bytes go no further), the same image kept
once, the Binary, Media and Provenance entries built and validated, one transaction, and a
line per file saying what became of it.

Files come in as plain ``(filename, data, content_type)`` values (``data``: bytes or a
binary stream), whatever received them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO, Literal

from symfhir.audit import AuditTrail
from symfhir.errors import FhirConflictError, FhirRequestError, FhirValidationError, PhotoError
from symfhir.fhir import FhirClient
from symfhir.mapping.bundle import transaction
from symfhir.mapping.context import MappingContext
from symfhir.photos.clean import clean_image
from symfhir.photos.files import CleanImage
from symfhir.validation import FastValidator, bundle_rules
from symfhir.workspace.actor import Actor
from symfhir.workspace.fallbacks import LABEL as FALLBACK_LABEL
from symfhir.workspace.fallbacks import adapt_for_server
from symfhir.workspace.photos.consents import clinical_consent_problem
from symfhir.workspace.photos.upload import (
    FORM_FIELDS,
    client_key,
    parse_upload_fields,
    upload_entries,
)
from symfhir.workspace.photos.viewing import (
    LIMITS,
    PhotoRecord,
    missing_for_upload,
    read_record,
)

log = logging.getLogger(__name__)

MAX_FILES = 10
#: (file name as sent, its bytes or a binary stream, content type as sent)
UploadFile = tuple[str, bytes | BinaryIO, str]
Outcome = Literal["stored", "invalid", "no_consent", "refused"]
_VALIDATOR = FastValidator()


@dataclass(frozen=True)
class FileResult:
    """One file's line in the upload's result."""

    name: str
    ok: bool
    message: str


@dataclass(frozen=True)
class UploadResult:
    """What became of an upload.

    ``outcome``: ``stored`` (the transaction went through: each file's line says stored,
    already in the record, or why not), ``invalid`` (the form, or every file, was refused;
    ``field_errors`` by form field, ``files`` per file), ``no_consent`` (no clinical photo
    consent on the day taken: nothing stored) or ``refused`` (the server refused the
    transaction: nothing stored). ``record`` is the gallery to show next (read again after
    a store). ``form_error`` is a sentence for the whole form, "" when none.
    """

    outcome: Outcome
    record: PhotoRecord
    files: list[FileResult] = field(default_factory=list)
    field_errors: dict[str, str] = field(default_factory=dict)
    form_error: str = ""
    media_ids: list[str] = field(default_factory=list)


def file_name(name: str | None) -> str:
    # Shown back to the practitioner only; never stored or logged (it may name the client).
    return (name or "photo").replace("\\", "/").rsplit("/", 1)[-1][:120]


def clean_file(upload: UploadFile) -> tuple[str, CleanImage | None, str]:
    """(file name, the cleaned image or None, why not); the original bytes go no further."""
    name, data, _ = upload
    shown = file_name(name)
    raw = (
        data[: LIMITS.max_bytes + 1] if isinstance(data, bytes) else data.read(LIMITS.max_bytes + 1)
    )
    try:
        return shown, clean_image(raw, record=shown, limits=LIMITS), ""
    except PhotoError as err:
        return shown, None, err.reason


def unique(images: list[CleanImage]) -> list[CleanImage]:
    """The images, each distinct image once (the first of the same bytes)."""
    seen: set[str] = set()
    out = []
    for image in images:
        if image.sha1_b64 not in seen:
            seen.add(image.sha1_b64)
            out.append(image)
    return out


def upload_photos(
    client: FhirClient,
    actor: Actor,
    patient_id: str,
    form: Mapping[str, str],
    files: Sequence[UploadFile],
    *,
    audit: AuditTrail,
    now: datetime | None = None,
) -> UploadResult:
    """Store ``files`` as the client's photos, described by ``form`` (``FORM_FIELDS``: body
    site, view, phase, treatment, local ``taken_at``), in one transaction.

    On a server that cannot create Media (its CapabilityStatement), each photo is stored as
    a DocumentReference, as the import does, and each file's line says so.

    Raises NotAllowedError (read-only, or a type the upload writes not creatable) before
    anything is written, and for ``missing_for_upload`` before anything is read;
    FhirValidationError when the built resources break the rules (a bug: nothing is
    written); FhirCapabilityError when the server can store neither Media nor
    DocumentReference; FhirServerError when the server fails other than by refusing.
    """
    missing = missing_for_upload(actor)
    actor.require([(t, "c") for t in missing])
    ctx = MappingContext.load(now or datetime.now(UTC))
    record = read_record(client, actor, patient_id, ctx)
    values = {name: form.get(name, "") for name in FORM_FIELDS}
    fields, field_errors = parse_upload_fields(
        values,
        now=ctx.now,
        treatment_ids={o.value for o in record.gallery.treatments},
        terminology=ctx.terminology,
        zone=ctx.spa.zone,
    )
    if not files:
        field_errors["photos"] = "choose at least one photo"
    elif len(files) > MAX_FILES:
        field_errors["photos"] = f"at most {MAX_FILES} photos per upload"
    if fields is None or field_errors:
        return UploadResult("invalid", record, field_errors=field_errors)
    problem = clinical_consent_problem(
        record.states, fields.taken_at.astimezone(ctx.spa.zone).date()
    )
    if problem:
        results = [FileResult(file_name(f[0]), False, f"not stored: {problem}") for f in files]
        message = f"No photo was stored: {problem}. Record the client's consent first."
        return UploadResult("no_consent", record, results, form_error=message)

    cleaned = [clean_file(f) for f in files]
    images = unique([image for _, image, _ in cleaned if image is not None])
    if not images:
        results = [FileResult(name, False, error) for name, _, error in cleaned]
        return UploadResult("invalid", record, results)
    key = client_key(record.patient, f"{ctx.spa.identifier_base}/client-id", patient_id)
    entries = upload_entries(key, patient_id, fields, images, actor.fhir_user, ctx)
    bundle = transaction(entries)
    problems = [p for e in entries for p in _VALIDATOR.validate(e.resource)] or bundle_rules(bundle)
    if problems:
        raise FhirValidationError([(p.path, p.message) for p in problems])
    bundle, fell_back = adapt_for_server(client, bundle, "store photos")
    actor.require((str(e["resource"]["resourceType"]), "c") for e in bundle["entry"])
    stored_as = " as a DocumentReference (this EHR cannot store Media)" if fell_back else ""
    try:
        answer = client.transaction(bundle)
    except (FhirRequestError, FhirConflictError) as exc:
        log.warning("photo upload refused by the FHIR server: %s", exc.log_text)
        results = [FileResult(name, False, "not stored") for name, _, _ in cleaned]
        message = "The EHR refused the photos; nothing was stored. Try again or ask for help."
        return UploadResult("refused", record, results, form_error=message)
    # Entries are Binary, Media (or its DocumentReference) per image: 200 matched an existing one.
    responses = [(e.get("response") or {}) for e in answer.get("entry") or []]
    media_status = {
        image.sha1_b64: str(responses[2 * i + 1].get("status")) for i, image in enumerate(images)
    }
    media_type = FALLBACK_LABEL if fell_back else "Media"
    media_ids = [_location_id(responses[2 * i + 1].get("location")) for i in range(len(images))]
    audit(
        "create",
        description=f"photos upload created {len(images)} Media with Binary",
        resources=[f"{media_type}/{m}" for m in media_ids if m],
    )
    results = []
    first: dict[str, str] = {}
    for name, image, error in cleaned:
        if image is None:
            results.append(FileResult(name, False, error))
        elif image.sha1_b64 in first:
            results.append(FileResult(name, False, f"the same image as {first[image.sha1_b64]}"))
        else:
            first[image.sha1_b64] = name
            stored = media_status[image.sha1_b64].startswith("201")
            said = f"stored{stored_as}" if stored else "already in the record"
            results.append(FileResult(name, True, said))
    return UploadResult(
        "stored",
        read_record(client, actor, patient_id, ctx),
        results,
        media_ids=[m for m in media_ids if m],
    )


def _location_id(location: object) -> str:
    """The id of a transaction response's ``Media/<id>/_history/<v>`` location (or of the
    DocumentReference standing in for the Media), "" if none."""
    parts = location.split("/") if isinstance(location, str) else []
    for index, part in enumerate(parts[:-1]):
        if part in ("Media", FALLBACK_LABEL):
            return parts[index + 1]
    return ""
