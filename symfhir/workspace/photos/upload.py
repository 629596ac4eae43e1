"""An upload: its form fields checked by the photo record model, the client key its
identifiers use, and the transaction entries: Binary (hl7.org/fhir/R4/binary.html) and Media
per image, then one Provenance (provenance.html)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from symfhir.mapping.context import MappingContext
from symfhir.mapping.photos import PhotoInput, photo_entries
from symfhir.mapping.provenance import AGENT_TYPE, DATA_OPERATION
from symfhir.mapping.refs import Entry, digest, organization_ref, tagged_entry
from symfhir.model.photo import Photo
from symfhir.photos.files import CleanImage
from symfhir.terminology import Terminology

FORM_FIELDS = ("body_site", "view", "phase", "treatment", "taken_at")
_CLIENT_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")  # model.fields.Identifier


@dataclass(frozen=True)
class UploadFields:
    """The form fields shared by every file of one upload, validated."""

    body_site: str
    view: str
    phase: str
    treatment_id: str | None
    taken_at: datetime


def parse_upload_fields(
    form: dict[str, str],
    *,
    now: datetime,
    treatment_ids: set[str],
    terminology: Terminology,
    zone: ZoneInfo,
) -> tuple[UploadFields | None, dict[str, str]]:
    """The upload form's fields (``body_site``, ``view``, ``phase``, ``treatment``,
    ``taken_at``, the latter a local ``YYYY-MM-DDTHH:MM``) validated by the photo record model;
    or None and a message per field name."""
    errors: dict[str, str] = {}
    treatment = (form.get("treatment") or "").strip() or None
    if treatment is not None and treatment not in treatment_ids:
        errors["treatment"] = "choose one of the client's treatments (or none)"
    data = {
        "client_id": "upload",
        "file": "upload",
        "taken_at": (form.get("taken_at") or "").strip(),
        "body_site": form.get("body_site") or "",
        "view": form.get("view") or "",
        "phase": form.get("phase") or "",
    }
    context = {"now": now, "tz": zone.key, "terminology": terminology}
    photo: Photo | None = None
    try:
        photo = Photo.model_validate(data, context=context)
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "form"
            errors.setdefault(name, _message(name, error))
    if errors or photo is None:
        return None, errors
    fields = UploadFields(photo.body_site, photo.view, photo.phase, treatment, photo.taken_at)
    return fields, {}


def _message(name: str, error: Any) -> str:
    if name == "phase":
        return "choose before, after or progress"
    if name in ("body_site", "view"):
        return f"choose a {'body site' if name == 'body_site' else 'view'} from the list"
    if name == "taken_at" and not error.get("input"):
        return "give the date and time the photos were taken"
    text = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    return text


def client_key(patient: dict[str, Any] | None, identifier_system: str, patient_id: str) -> str:
    """The key photo identifiers use: the spa's client id (the identifier the import gave the
    Patient, so an upload of an imported photo is not stored twice), else the Patient's id."""
    for ident in (patient or {}).get("identifier") or []:
        if not isinstance(ident, dict) or ident.get("system") != identifier_system:
            continue
        value = ident.get("value")
        if isinstance(value, str) and _CLIENT_KEY.fullmatch(value):
            return value
    return patient_id


def upload_entries(
    key: str,
    patient_id: str,
    fields: UploadFields,
    images: list[CleanImage],
    fhir_user: str | None,
    ctx: MappingContext,
) -> list[Entry]:
    """Binary + Media per image (the library's photo mapping; the Binary's securityContext and
    the Media's subject are the Patient), then one Provenance naming the practitioner."""
    patient = Entry({}, f"Patient/{patient_id}", "")
    treatments: dict[str, Entry] = {}
    if fields.treatment_id:
        treatments[fields.treatment_id] = Entry({}, f"Procedure/{fields.treatment_id}", "")
    photos = [
        PhotoInput(
            Photo.model_construct(
                client_id=key,
                file="upload",
                taken_at=fields.taken_at,
                body_site=fields.body_site,
                view=fields.view,
                phase=fields.phase,
                treatment_id=fields.treatment_id,
            ),
            image,
        )
        for image in images
    ]
    entries = photo_entries(key, photos, patient, treatments, ctx)
    return [*entries, upload_provenance(entries, key, fhir_user, ctx)]


def upload_provenance(
    targets: list[Entry], key: str, fhir_user: str | None, ctx: MappingContext
) -> Entry:
    """Provenance of an upload: the practitioner (author) on behalf of the spa, now."""
    author: dict[str, Any] = {
        "type": {"coding": [{"system": AGENT_TYPE, "code": "author"}]},
        "who": {"reference": fhir_user} if fhir_user else {"display": "unknown practitioner"},
        "onBehalfOf": organization_ref(ctx),
    }
    resource = {
        "resourceType": "Provenance",
        "target": [t.reference for t in targets],
        "recorded": ctx.now.isoformat(),
        "activity": {"coding": [{"system": DATA_OPERATION, "code": "CREATE"}]},
        "agent": [author],
    }
    tag = digest(key, "upload", *sorted(t.full_url for t in targets))
    return tagged_entry(resource, f"provenance-{tag}")
