"""The Photos workspace: allowed uses from consents, the gallery, upload fields and entries.

Pure (no Flask, no I/O, no clock: ``now`` is passed in). FHIR R4 Media
(hl7.org/fhir/R4/media.html), Consent (consent.html), Binary (binary.html) and
Provenance (provenance.html) in, view models and transaction entries out.

A photo may be used for a purpose only when the client's latest Consent of that
purpose's kind is active (given, not declined or withdrawn) and dated on or before
the day the photo was taken. A photo without a marketing consent is never shown as
usable for marketing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from symfhir.mapping.context import MappingContext
from symfhir.mapping.photos import PHASE_EXTENSION, PhotoInput, photo_entries
from symfhir.mapping.provenance import AGENT_TYPE, DATA_OPERATION
from symfhir.mapping.refs import Entry, digest, organization_ref, tagged_entry
from symfhir.model.photo import Photo
from symfhir.photos.files import CleanImage
from symfhir.terminology import Terminology

CONSENT_KIND_SYSTEM = "http://symfhir.org/fhir/CodeSystem/consent-kind"
PHASES = ("before", "after", "progress")
FORM_FIELDS = ("body_site", "view", "phase", "treatment", "taken_at")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_CLIENT_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")  # model.fields.Identifier
_IGNORED_CONSENT_STATUS = frozenset({"entered-in-error", "draft", "proposed"})


@dataclass(frozen=True)
class Use:
    """A purpose a photo may serve, and the consent kind that allows it."""

    key: str
    kind: str
    label: str
    marketing: bool


USES = (
    Use("clinical", "photos_clinical", "Clinical record", False),
    Use("website", "photos_website", "Website", True),
    Use("social", "photos_social", "Social media", True),
    Use("testimonials", "testimonials", "Testimonials", True),
    Use("research", "research", "Research", False),
)


@dataclass(frozen=True)
class ConsentState:
    """The latest Consent of one kind: given | declined | withdrawn, and its local dates."""

    kind: str
    status: str
    date: date | None
    withdrawn_on: date | None = None


def consent_states(consents: list[dict[str, Any]], zone: ZoneInfo) -> dict[str, ConsentState]:
    """The state of each consent kind the client was asked for, from its latest Consent (by
    ``dateTime``); kinds never asked are absent."""
    latest: dict[str, dict[str, Any]] = {}
    for consent in consents:
        if consent.get("resourceType", "Consent") != "Consent":
            continue
        if consent.get("status") in _IGNORED_CONSENT_STATUS:
            continue
        for category in consent.get("category") or []:
            for coding in (category or {}).get("coding") or []:
                if coding.get("system") != CONSENT_KIND_SYSTEM or not coding.get("code"):
                    continue
                kind = str(coding["code"])
                current = latest.get(kind)
                if current is None or str(consent.get("dateTime", "")) >= str(
                    current.get("dateTime", "")
                ):
                    latest[kind] = consent
    return {kind: _state(kind, consent, zone) for kind, consent in latest.items()}


def _state(kind: str, consent: dict[str, Any], zone: ZoneInfo) -> ConsentState:
    provision = consent.get("provision") or {}
    when = local_date(consent.get("dateTime"), zone)
    status = consent.get("status")
    if status == "inactive":
        end = local_date((provision.get("period") or {}).get("end"), zone)
        return ConsentState(kind, "withdrawn", when, end)
    if status == "active" and provision.get("type", "permit") == "permit":
        return ConsentState(kind, "given", when)
    return ConsentState(kind, "declined", when)


def local_date(value: object, zone: ZoneInfo) -> date | None:
    """The spa-local calendar day of a FHIR date or dateTime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        if len(value) <= 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(zone).date()


def allowed_uses(taken: date | None, states: dict[str, ConsentState]) -> list[Use]:
    """The uses a photo taken on ``taken`` may serve: its kind's latest consent is given and
    dated on or before that day. A photo of unknown date may serve none."""
    if taken is None:
        return []
    out = []
    for use in USES:
        state = states.get(use.kind)
        if state and state.status == "given" and state.date is not None and state.date <= taken:
            out.append(use)
    return out


def clinical_consent_problem(states: dict[str, ConsentState], taken: date) -> str | None:
    """Why a clinical photo taken on ``taken`` may not be stored now, or None if it may.

    The rule of ``symfhir.map_job._photo_consent_problem`` (which reads the spa export's
    consent record rather than Consent resources; kept there unchanged), stricter on
    withdrawal: an upload happens now, and no new photo is kept once consent is withdrawn.
    """
    state = states.get("photos_clinical")
    if state is None:
        return "the client was never asked for consent to clinical photos"
    if state.status == "declined":
        return "the client declined consent to clinical photos"
    if state.status == "withdrawn":
        return "the client withdrew consent to clinical photos"
    if state.date is None or state.date > taken:
        return "the photo was taken before the client consented to clinical photos"
    return None


# -- gallery ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class PhotoItem:
    """One photo of the gallery."""

    media_id: str
    phase: str
    body_site: str
    body_site_label: str
    view_label: str
    taken: str  # local date, ISO
    treatment_id: str
    treatment_label: str
    uses: list[Use]

    @property
    def marketing_allowed(self) -> bool:
        return any(use.marketing for use in self.uses)


@dataclass
class Gallery:
    photos: list[PhotoItem] = field(default_factory=list)
    treatments: list[Option] = field(default_factory=list)
    body_sites: list[Option] = field(default_factory=list)

    def filtered(self, treatment: str = "", body_site: str = "") -> list[PhotoItem]:
        """The photos of ``treatment`` (a Procedure id) and ``body_site`` (a key); "" = any."""
        return [
            p
            for p in self.photos
            if (not treatment or p.treatment_id == treatment)
            and (not body_site or p.body_site == body_site)
        ]

    def suggested_pair(self) -> tuple[PhotoItem, PhotoItem] | None:
        """The latest "after" photo and the latest "before" photo of the same body site taken
        on or before it; None when there is no such pair."""
        for after in self.photos:  # newest first
            if after.phase != "after":
                continue
            for before in self.photos:
                if (
                    before.phase == "before"
                    and before.body_site == after.body_site
                    and before.taken <= after.taken
                ):
                    return before, after
        return None


def belongs(resource: dict[str, Any], patient_id: str) -> bool:
    """True when ``resource``'s subject (or patient) is Patient/``patient_id``."""
    target = f"Patient/{patient_id}"
    for name in ("subject", "patient"):
        reference = (resource.get(name) or {}).get("reference")
        if isinstance(reference, str):
            return reference == target or reference.endswith("/" + target)
    return False


def binary_id(media: dict[str, Any], base_url: str) -> str | None:
    """The id of the Binary a Media's ``content.url`` names on the server at ``base_url``
    (``Binary/<id>`` or ``<base_url>/Binary/<id>``); None for anything else, so the app never
    follows a URL to another server."""
    url = (media.get("content") or {}).get("url")
    if not isinstance(url, str):
        return None
    prefix = base_url.rstrip("/") + "/"
    if url.startswith(prefix):
        url = url[len(prefix) :]
    parts = url.split("/")
    if len(parts) == 2 and parts[0] == "Binary" and _ID.fullmatch(parts[1]):
        return parts[1]
    if len(parts) == 4 and parts[0] == "Binary" and parts[2] == "_history":
        return parts[1] if _ID.fullmatch(parts[1]) else None
    return None


def treatment_options(procedures: list[dict[str, Any]], zone: ZoneInfo) -> list[Option]:
    """The client's treatments (Procedures with an id), newest first, as select options."""
    rows = []
    for procedure in procedures:
        pid = procedure.get("id")
        if not isinstance(pid, str) or procedure.get("status") == "entered-in-error":
            continue
        when = procedure.get("performedDateTime") or (procedure.get("performedPeriod") or {}).get(
            "start"
        )
        day = local_date(when, zone)
        label = _concept_text(procedure.get("code")) or "Treatment"
        rows.append((day.isoformat() if day else "", Option(pid, f"{label} · {day or 'no date'}")))
    rows.sort(key=lambda row: row[0], reverse=True)
    return [option for _, option in rows]


def build_gallery(
    resources: list[dict[str, Any]], patient_id: str, terminology: Terminology, zone: ZoneInfo
) -> Gallery:
    """The gallery of the patient's Media, newest first, with their allowed uses; resources of
    other patients (should a server return any) are ignored."""
    own = [r for r in resources if belongs(r, patient_id)]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in own:
        by_type.setdefault(str(resource.get("resourceType")), []).append(resource)
    states = consent_states(by_type.get("Consent", []), zone)
    treatments = treatment_options(by_type.get("Procedure", []), zone)
    labels = {o.value: o.label for o in treatments}
    photos = []
    for media in by_type.get("Media", []):
        media_id = media.get("id")
        if not isinstance(media_id, str) or media.get("status") == "entered-in-error":
            continue
        taken = local_date(
            media.get("createdDateTime") or (media.get("content") or {}).get("creation"), zone
        )
        site_key, site_label = _coded(media.get("bodySite"), "body_site", terminology)
        treatment = _procedure_id(media)
        photos.append(
            PhotoItem(
                media_id=media_id,
                phase=_phase(media),
                body_site=site_key,
                body_site_label=site_label,
                view_label=_coded(media.get("view"), "photo_view", terminology)[1],
                taken=taken.isoformat() if taken else "",
                treatment_id=treatment,
                treatment_label=labels.get(treatment, ""),
                uses=allowed_uses(taken, states),
            )
        )
    photos.sort(key=lambda p: (p.taken, p.media_id), reverse=True)
    sites = {p.body_site: p.body_site_label for p in photos if p.body_site}
    body_sites = [Option(k, v) for k, v in sorted(sites.items(), key=lambda kv: kv[1].lower())]
    return Gallery(photos, treatments, body_sites)


def _phase(media: dict[str, Any]) -> str:
    for extension in media.get("extension") or []:
        if extension.get("url") == PHASE_EXTENSION:
            code = (extension.get("valueCoding") or {}).get("code")
            if code in PHASES:
                return str(code)
    return ""


def _procedure_id(media: dict[str, Any]) -> str:
    for part in media.get("partOf") or []:
        reference = str((part or {}).get("reference") or "")
        parts = reference.split("/")
        if len(parts) >= 2 and parts[-2] == "Procedure":
            return parts[-1]
    return ""


def _coded(concept: Any, valueset: str, terminology: Terminology) -> tuple[str, str]:
    """(terminology key, label) of a CodeableConcept; the code itself when no key matches."""
    if not isinstance(concept, dict):
        return "", ""
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    table = terminology.valuesets.get(valueset, {})
    for coding in codings:
        for key, known in table.items():
            if known["system"] == coding.get("system") and known["code"] == coding.get("code"):
                return key, str(concept.get("text") or known.get("display", key))
    first = codings[0] if codings else {}
    code = str(first.get("code") or "")
    return code, str(concept.get("text") or first.get("display") or code)


def _concept_text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if coding.get("display"):
            return str(coding["display"])
    return ""


# -- upload ----------------------------------------------------------------------------------


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
