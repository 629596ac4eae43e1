"""The gallery: the patient's Media (hl7.org/fhir/R4/media.html) newest first, with their
treatments, body sites and allowed uses; the Binary a Media names on this server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from symfhir.fhir.compartment import in_compartment
from symfhir.fhir.paths import binary_id_of
from symfhir.fhir.reading import concept_text, reference_id
from symfhir.mapping.photos import PHASE_EXTENSION
from symfhir.terminology import Terminology
from symfhir.workspace.photos.consents import Use, allowed_uses, consent_states, local_date

PHASES = ("before", "after", "progress")


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


def binary_id(media: dict[str, Any], base_url: str) -> str | None:
    """The id of the Binary a Media's ``content.url`` names on the server at ``base_url``
    (``Binary/<id>`` or ``<base_url>/Binary/<id>``); None for anything else, so the app never
    follows a URL to another server."""
    return binary_id_of((media.get("content") or {}).get("url"), base_url)


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
        label = concept_text(procedure.get("code")) or "Treatment"
        rows.append((day.isoformat() if day else "", Option(pid, f"{label} · {day or 'no date'}")))
    rows.sort(key=lambda row: row[0], reverse=True)
    return [option for _, option in rows]


def build_gallery(
    resources: list[dict[str, Any]], patient_id: str, terminology: Terminology, zone: ZoneInfo
) -> Gallery:
    """The gallery of the patient's Media, newest first, with their allowed uses; resources of
    other patients (should a server return any) are ignored."""
    own = [r for r in resources if in_compartment(r, patient_id)]
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
    parts = media.get("partOf")
    ids = (
        (reference_id(p, "Procedure") for p in parts if isinstance(p, dict))
        if isinstance(parts, list)
        else ()
    )
    return next((i for i in ids if i), "")


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
