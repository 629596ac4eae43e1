"""The Photos page (``/photos``): the launched patient's gallery with allowed-use badges,
upload (cleaned, consent-checked, one transaction), thumbnails through the app, and a
before/after comparison. Logic lives in ``symfhir.workspace.photos``, and the upload's files
are cleaned by ``smart_app.photo_upload``; this module parses requests, talks to the FHIR
server through the launch's client, audits and renders.
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge

from smart_app import photo_upload
from smart_app.errors import AppError, render_error
from smart_app.fhir_access import PatientAccess, current_access, enforce_patient_context
from smart_app.photo_upload import LIMITS
from symfhir.errors import (
    FhirAuthError,
    FhirConflictError,
    FhirNotFoundError,
    FhirRequestError,
    PhotoError,
)
from symfhir.fhir.compartment import in_compartment
from symfhir.fhir.paths import check_id
from symfhir.fhir.reading import batch_resources
from symfhir.mapping.bundle import transaction
from symfhir.mapping.context import MappingContext
from symfhir.photos.files import JPEG, sniff
from symfhir.photos.thumbnail import thumbnail
from symfhir.smart.scopes import allows
from symfhir.validation import FastValidator, bundle_rules
from symfhir.workspace import photos as workspace

log = logging.getLogger(__name__)
bp = Blueprint("photos", __name__, url_prefix="/photos")
bp.before_request(enforce_patient_context)

PAGE_SIZE = 200
MAX_FILES = 10
# The whole multipart request: every file at its limit plus the form fields.
MAX_UPLOAD_BYTES = 60 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 25 * 1024 * 1024
FILE_FIELD = "photos"
WRITTEN_TYPES = ("Binary", "Media", "Provenance")
_VALIDATOR = FastValidator()


@bp.url_value_preprocessor
def _upload_limit(endpoint: str | None, _: dict[str, Any] | None) -> None:
    # Runs before every before_request (the CSRF check reads the form): the upload's own
    # limit, whatever the app-wide MAX_CONTENT_LENGTH; werkzeug answers 413 past it.
    if endpoint == "photos.upload":
        request.max_content_length = MAX_UPLOAD_BYTES


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_: RequestEntityTooLarge) -> tuple[str, int]:
    return render_error(
        AppError(
            413,
            "upload_too_large",
            "The upload is too large",
            f"One upload may carry at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB "
            f"({MAX_FILES} photos of up to {LIMITS.max_bytes // (1024 * 1024)} MB each). "
            "Go back and choose fewer or smaller photos.",
        )
    )


def _gallery_batch(patient_id: str) -> dict[str, Any]:
    pid = check_id(patient_id)
    urls = [
        f"Patient/{pid}",
        f"Media?subject=Patient/{pid}&_count={PAGE_SIZE}&_sort=-created",
        f"Procedure?subject=Patient/{pid}&_count={PAGE_SIZE}&_sort=-date",
        f"Consent?patient=Patient/{pid}&_count={PAGE_SIZE}&_sort=-date",
    ]
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
    }


_LABELS = ["Patient", "Media", "Procedure", "Consent"]


class _Record:
    """What one gallery batch read: the resources, the gallery, the consent states."""

    def __init__(self, access: PatientAccess, ctx: MappingContext) -> None:
        found = batch_resources(access.client.batch(_gallery_batch(access.patient_id)), _LABELS)
        self.failed = found.failed
        self.truncated = found.truncated
        zone = ctx.spa.zone
        self.patient = next(
            (
                r
                for r in found.resources
                if r.get("resourceType") == "Patient" and r.get("id") == access.patient_id
            ),
            None,
        )
        self.resources = found.resources
        self.gallery = workspace.build_gallery(
            found.resources, access.patient_id, ctx.terminology, zone
        )
        consents = [
            r
            for r in found.resources
            if r.get("resourceType") == "Consent" and in_compartment(r, access.patient_id)
        ]
        self.states = workspace.consent_states(consents, zone)


def _context() -> MappingContext:
    return MappingContext.load(datetime.now(UTC))


def _page(
    access: PatientAccess,
    ctx: MappingContext,
    record: _Record,
    status: int = 200,
    **extra: Any,
) -> tuple[str, int]:
    treatment = request.args.get("treatment", "")
    body_site = request.args.get("body_site", "")
    gallery = record.gallery
    local_now = ctx.now.astimezone(ctx.spa.zone)
    values = {
        "taken_at": local_now.strftime("%Y-%m-%dT%H:%M"),
        "body_site": "",
        "view": "",
        "phase": "",
        "treatment": "",
    }
    values.update(extra.pop("values", {}))
    clinical = record.states.get("photos_clinical")
    missing = _missing_scopes(access)
    page = render_template(
        "photos.html",
        photos=gallery.filtered(treatment, body_site),
        gallery=gallery,
        pair=gallery.suggested_pair(),
        selected_treatment=treatment,
        selected_body_site=body_site,
        body_site_choices=_choices(ctx, "body_site"),
        view_choices=_choices(ctx, "photo_view"),
        phases=workspace.PHASES,
        values=values,
        writable=access.writable and not missing,
        read_only=not access.writable,
        missing_scopes=missing,
        clinical_consent=clinical.status if clinical else "never asked",
        failed=record.failed,
        truncated=record.truncated,
        max_files=MAX_FILES,
        max_mb=LIMITS.max_bytes // (1024 * 1024),
        field_errors=extra.pop("field_errors", {}),
        results=extra.pop("results", []),
        form_error=extra.pop("form_error", ""),
        **extra,
    )
    return page, status


def _missing_scopes(access: PatientAccess) -> list[str]:
    """The types an upload creates that the launch may not create."""
    return [t for t in WRITTEN_TYPES if not allows(access.scopes, t, "c")]


def _choices(ctx: MappingContext, valueset: str) -> list[workspace.Option]:
    table = ctx.terminology.valuesets[valueset]
    return [workspace.Option(key, coding.get("display", key)) for key, coding in table.items()]


@bp.get("")
@bp.get("/")
def gallery() -> Any:
    access = current_access()
    ctx = _context()
    record = _Record(access, ctx)
    access.audit(
        "read",
        description="photos view read Patient, Media, Procedure, Consent",
        resources=[f"Media/{photo.media_id}" for photo in record.gallery.photos],
    )
    return _page(access, ctx, record)


@bp.post("/upload")
def upload() -> Any:
    access = current_access()
    if not access.writable:
        raise AppError(
            403,
            "read_only",
            "Photos cannot be added in read-only mode",
            "The EHR granted symfhir permission to read this record but not to change it.",
        )
    missing = _missing_scopes(access)
    if missing:
        raise AppError(
            403,
            "missing_scope",
            "Photos cannot be added",
            f"The EHR did not allow symfhir to create {', '.join(missing)} for this client.",
        )
    ctx = _context()
    record = _Record(access, ctx)
    form = {name: request.form.get(name, "") for name in workspace.FORM_FIELDS}
    files = [f for f in request.files.getlist(FILE_FIELD) if f.filename or f.content_length]
    treatment_ids = {o.value for o in record.gallery.treatments}
    fields, field_errors = workspace.parse_upload_fields(
        form,
        now=ctx.now,
        treatment_ids=treatment_ids,
        terminology=ctx.terminology,
        zone=ctx.spa.zone,
    )
    if not files:
        field_errors["photos"] = "choose at least one photo"
    elif len(files) > MAX_FILES:
        field_errors["photos"] = f"at most {MAX_FILES} photos per upload"
    if fields is None or field_errors:
        return _page(access, ctx, record, 400, values=form, field_errors=field_errors)
    problem = workspace.clinical_consent_problem(
        record.states, fields.taken_at.astimezone(ctx.spa.zone).date()
    )
    if problem:
        results = [
            photo_upload.FileResult(photo_upload.name(f), False, f"not stored: {problem}")
            for f in files
        ]
        message = f"No photo was stored: {problem}. Record the client's consent first."
        return _page(access, ctx, record, 400, values=form, results=results, form_error=message)

    cleaned = [photo_upload.clean(f) for f in files]
    images = photo_upload.unique([image for _, image, _ in cleaned if image is not None])
    if not images:
        results = [photo_upload.FileResult(name, False, error) for name, _, error in cleaned]
        return _page(access, ctx, record, 400, values=form, results=results)
    key = workspace.client_key(
        record.patient, f"{ctx.spa.identifier_base}/client-id", access.patient_id
    )
    entries = workspace.upload_entries(
        key, access.patient_id, fields, images, access.fhir_user, ctx
    )
    bundle = transaction(entries)
    problems = [p for e in entries for p in _VALIDATOR.validate(e.resource)] or bundle_rules(bundle)
    if problems:
        raise AppError(
            500,
            "photo_invalid",
            "The photos could not be saved",
            "symfhir built a record the FHIR rules do not allow; nothing was saved.",
        )
    try:
        answer = access.client.transaction(bundle)
    except (FhirRequestError, FhirConflictError) as exc:
        log.warning("photo upload refused by the FHIR server: %s", exc.log_text)
        message = "The EHR refused the photos; nothing was stored. Try again or ask for help."
        results = [photo_upload.FileResult(name, False, "not stored") for name, _, _ in cleaned]
        return _page(access, ctx, record, 502, values=form, results=results, form_error=message)
    # Entries are Binary, Media per image: a Media answered 200 matched an existing one.
    media_status = {
        image.sha1_b64: str(((answer["entry"][2 * i + 1]).get("response") or {}).get("status"))
        for i, image in enumerate(images)
    }
    access.audit("create", description=f"photos upload created {len(images)} Media with Binary")
    results = []
    first: dict[str, str] = {}
    for name, image, error in cleaned:
        if image is None:
            results.append(photo_upload.FileResult(name, False, error))
        elif image.sha1_b64 in first:
            results.append(
                photo_upload.FileResult(name, False, f"the same image as {first[image.sha1_b64]}")
            )
        else:
            first[image.sha1_b64] = name
            stored = media_status[image.sha1_b64].startswith("201")
            results.append(
                photo_upload.FileResult(name, True, "stored" if stored else "already in the record")
            )
    return _page(access, ctx, _Record(access, ctx), results=results, values=form)


def _read_media(access: PatientAccess, media_id: str) -> dict[str, Any]:
    """The patient's Media ``media_id``; AppError 404 when absent or another patient's."""
    try:
        media = access.client.read("Media", check_id(media_id))
    except (FhirNotFoundError, ValueError):
        media = None
    except FhirAuthError as exc:
        if exc.status != 403:  # the EHR refuses another patient's resource with 403
            raise
        media = None
    if media is None or not in_compartment(media, access.patient_id):
        if media is not None:
            access.audit(
                "read",
                success=False,
                description="refused: a photo of a patient outside the launch context",
            )
        raise AppError(
            404,
            "photo_not_found",
            "Photo not found",
            "This photo is not in the record of the client open in the EHR.",
        )
    return media


@bp.get("/<media_id>/image")
def image(media_id: str) -> Any:
    """The photo's image: whole, or with ``?size=thumb`` a small JPEG preview (the gallery)."""
    size = request.args.get("size", "full")
    if size not in ("full", "thumb"):
        raise AppError(400, "bad_size", "Unknown image size", "The size is full or thumb.")
    access = current_access()
    media = _read_media(access, media_id)
    binary = workspace.binary_id(media, access.client.base_url)
    if binary is None:
        raise AppError(404, "photo_not_found", "Photo not found", "The photo has no image.")
    out = io.BytesIO()
    access.client.download_binary(binary, out, max_bytes=MAX_DOWNLOAD_BYTES)
    data = out.getvalue()
    # Every image the browser shows is a read of the client's record: audited one by one.
    access.audit(
        "read",
        description="photo image read",
        resources=[f"Media/{media.get('id')}", f"Binary/{binary}"],
    )
    content_type, _ = sniff(data)
    if content_type not in LIMITS.allowed_types:
        raise AppError(404, "photo_not_found", "Photo not found", "The photo is not an image.")
    if size == "thumb":
        try:
            data, content_type = thumbnail(data, record=f"Media/{media_id}"), JPEG
        except PhotoError:
            raise AppError(
                404, "photo_not_found", "Photo not found", "The photo cannot be shown."
            ) from None
    response = Response(data, mimetype=content_type)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Disposition"] = "inline"
    return response


@bp.get("/compare")
def compare() -> Any:
    access = current_access()
    ctx = _context()
    before_id = request.args.get("before", "")
    after_id = request.args.get("after", "")
    before = _read_media(access, before_id)
    after = _read_media(access, after_id)
    record = _Record(access, ctx)
    others = [r for r in record.resources if r.get("resourceType") != "Media"]
    pair = workspace.build_gallery(
        [*others, before, after], access.patient_id, ctx.terminology, ctx.spa.zone
    )
    items = {p.media_id: p for p in pair.photos}
    before_item = items.get(str(before.get("id")))
    after_item = items.get(str(after.get("id")))
    if before_item is None or after_item is None:
        raise AppError(404, "photo_not_found", "Photo not found", "The photo has no details.")
    suggestions = [
        p
        for p in record.gallery.photos
        if p.body_site == before_item.body_site
        and p.phase != "before"
        and p.media_id not in (before_item.media_id, after_item.media_id)
    ]
    access.audit(
        "read",
        description="photos compare read Media",
        resources=[f"Media/{before.get('id')}", f"Media/{after.get('id')}"],
    )
    return render_template(
        "photos_compare.html",
        before=before_item,
        after=after_item,
        suggestions=suggestions,
        same_site=before_item.body_site == after_item.body_site,
    )
