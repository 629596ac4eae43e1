"""The Photos page (``/photos``): the launched patient's gallery with allowed-use badges,
upload, thumbnails through the app, and a before/after comparison. The workflows are
``symfhir.workspace.photos.viewing`` and ``.uploading``; this module parses requests, calls
one of them and renders.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge

from smart_app.errors import AppError, render_error
from smart_app.fhir_access import current_access, enforce_patient_context
from symfhir.errors import FhirValidationError, NotAllowedError
from symfhir.workspace import photos as workspace
from symfhir.workspace.photos import uploading, viewing
from symfhir.workspace.photos.viewing import LIMITS, PhotoRecord

bp = Blueprint("photos", __name__, url_prefix="/photos")
bp.before_request(enforce_patient_context)

# The whole multipart request: every file at its limit plus the form fields.
MAX_UPLOAD_BYTES = 60 * 1024 * 1024
FILE_FIELD = "photos"


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
            f"({uploading.MAX_FILES} photos of up to {LIMITS.max_bytes // (1024 * 1024)} MB "
            "each). Go back and choose fewer or smaller photos.",
        )
    )


def _not_found(
    detail: str = "This photo is not in the record of the client open in the EHR.",
) -> AppError:
    return AppError(404, "photo_not_found", "Photo not found", detail)


def _page(
    record: PhotoRecord, missing: list[str], status: int = 200, **extra: Any
) -> tuple[str, int]:
    access = current_access()
    treatment = request.args.get("treatment", "")
    body_site = request.args.get("body_site", "")
    gallery = record.gallery
    values = {
        "taken_at": record.local_now,
        "body_site": "",
        "view": "",
        "phase": "",
        "treatment": "",
    }
    values.update(extra.pop("values", {}))
    page = render_template(
        "photos.html",
        photos=gallery.filtered(treatment, body_site),
        gallery=gallery,
        pair=gallery.suggested_pair(),
        selected_treatment=treatment,
        selected_body_site=body_site,
        body_site_choices=record.body_site_choices,
        view_choices=record.view_choices,
        phases=workspace.PHASES,
        values=values,
        writable=access.writable and not missing,
        read_only=not access.writable,
        missing_scopes=missing,
        clinical_consent=record.clinical_consent,
        failed=record.failed,
        truncated=record.truncated,
        max_files=uploading.MAX_FILES,
        max_mb=LIMITS.max_bytes // (1024 * 1024),
        field_errors=extra.pop("field_errors", {}),
        results=extra.pop("results", []),
        form_error=extra.pop("form_error", ""),
        **extra,
    )
    return page, status


@bp.get("")
@bp.get("/")
def gallery() -> Any:
    access = current_access()
    view = viewing.list_gallery(access.client, access.actor, access.patient_id, audit=access.audit)
    return _page(view.record, view.missing)


@bp.post("/upload")
def upload() -> Any:
    access = current_access()
    form = {name: request.form.get(name, "") for name in workspace.FORM_FIELDS}
    files = [
        (f.filename or "", f.stream, f.mimetype or "")
        for f in request.files.getlist(FILE_FIELD)
        if f.filename or f.content_length
    ]
    try:
        result = uploading.upload_photos(
            access.client, access.actor, access.patient_id, form, files, audit=access.audit
        )
    except NotAllowedError as exc:
        if exc.read_only:
            raise AppError(
                403,
                "read_only",
                "Photos cannot be added in read-only mode",
                "The EHR granted symfhir permission to read this record but not to change it.",
            ) from None
        raise AppError(
            403,
            "missing_scope",
            "Photos cannot be added",
            f"The EHR did not allow symfhir to create {', '.join(t for t, _ in exc.missing)} "
            "for this client.",
        ) from None
    except FhirValidationError:
        raise AppError(
            500,
            "photo_invalid",
            "The photos could not be saved",
            "symfhir built a record the FHIR rules do not allow; nothing was saved.",
        ) from None
    status = {"stored": 200, "invalid": 400, "no_consent": 400, "refused": 502}[result.outcome]
    return _page(
        result.record,
        [],
        status,
        values=form,
        field_errors=result.field_errors,
        results=result.files,
        form_error=result.form_error,
    )


@bp.get("/<media_id>/image")
def image(media_id: str) -> Any:
    """The photo's image: whole, or with ``?size=thumb`` a small JPEG preview (the gallery)."""
    size = request.args.get("size", "full")
    if size not in ("full", "thumb"):
        raise AppError(400, "bad_size", "Unknown image size", "The size is full or thumb.")
    access = current_access()
    found = viewing.photo_image(
        access.client,
        access.actor,
        access.patient_id,
        media_id,
        thumb=size == "thumb",
        audit=access.audit,
    )
    if found is None:
        raise _not_found()
    response = Response(found.data, mimetype=found.content_type)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Disposition"] = "inline"
    return response


@bp.get("/compare")
def compare() -> Any:
    access = current_access()
    pair = viewing.compare_photos(
        access.client,
        access.actor,
        access.patient_id,
        request.args.get("before", ""),
        request.args.get("after", ""),
        audit=access.audit,
    )
    if pair is None:
        raise _not_found()
    return render_template(
        "photos_compare.html",
        before=pair.before,
        after=pair.after,
        suggestions=pair.suggestions,
        same_site=pair.same_site,
    )
