"""What a physician-sharing consent says beyond the other kinds (pure): the scopes the client
chose (``mappings/sharing.yaml``; the summary always), an optional date range, and the
physician, entered at capture when none is on file. Written into the Consent as
``provision.code`` (share-scope), ``provision.class`` (their resource types),
``provision.dataPeriod`` and the IRCP ``provision.actor``; a new physician becomes a
Practitioner (``symfhir.mapping.practitioner``, created conditionally on the NPI) and the
practice a PractitionerRole, in the capture's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import ValidationError

from symfhir.cardnumbers import has_card_number
from symfhir.mapping import practitioner as practitioner_mapping
from symfhir.mapping.context import MappingContext
from symfhir.mapping.refs import Entry, digest
from symfhir.model.client import Physician
from symfhir.sharing.scopes import SUMMARY, Sharing
from symfhir.workspace.consents.signature import CARD_NUMBER

KIND = "physician_sharing"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
#: Form field of each scope's checkbox: ``share_scope_<code>`` (the summary has none: always).
SCOPE_FIELD = "share_scope_"
EARLIEST_YEAR = 1900
#: Form fields of a new physician → error keys (the page's ``err-<key>`` spans).
PHYSICIAN_FIELDS = {
    "name": "physician-name",
    "npi": "physician-npi",
    "organization": "physician-organization",
    "phone": "physician-phone",
    "email": "physician-email",
}


@dataclass(frozen=True)
class SharingTerms:
    """The scopes (summary first, then in the order of the rules), the date range (both ends
    inclusive, either open), and the physician entered at capture (None: the one on file)."""

    scopes: tuple[str, ...]
    start: date | None = None
    end: date | None = None
    physician: Physician | None = None

    @property
    def key(self) -> str:
        """What tells two captures apart (a different choice is a new Consent)."""
        doctor = self.physician
        return digest(
            ",".join(self.scopes),
            self.start.isoformat() if self.start else "",
            self.end.isoformat() if self.end else "",
            doctor.npi or doctor.name if doctor else "",
        )


def parse_sharing_terms(
    form: Mapping[str, str], sharing: Sharing, *, physician_on_file: bool
) -> tuple[SharingTerms | None, dict[str, str]]:
    """The sharing part of a capture form, checked: (terms, {}) or (None, {key: message}).

    Fields: ``share_scope_<code>`` (a checkbox per scope but the summary, which every consent
    includes), ``share_start`` and ``share_end`` (YYYY-MM-DD, optional), and the physician's
    ``physician_name`` (required when no physician is on file), ``physician_npi`` (optional;
    10 digits whose check digit is verified), ``physician_organization``, ``physician_phone``,
    ``physician_email``. A physician entered when one is on file replaces it for this consent.
    """
    errors: dict[str, str] = {}
    chosen = [SUMMARY]
    for code in sharing.scopes:
        if code != SUMMARY and (form.get(f"{SCOPE_FIELD}{code}") or "").strip():
            chosen.append(code)
    unknown = sorted(
        k.removeprefix(SCOPE_FIELD)
        for k, v in form.items()
        if k.startswith(SCOPE_FIELD) and v and k.removeprefix(SCOPE_FIELD) not in sharing.scopes
    )
    if unknown:
        errors["share-scopes"] = "Choose among the listed scopes."
    start = _day(form.get("share_start"), "share-start", "start", errors)
    end = _day(form.get("share_end"), "share-end", "end", errors)
    if start and end and start > end:
        errors["share-end"] = "The end date is before the start date."
    physician = _physician(form, physician_on_file, errors)
    if errors:
        return None, errors
    return SharingTerms(tuple(chosen), start, end, physician), {}


def _day(value: str | None, key: str, what: str, errors: dict[str, str]) -> date | None:
    text = (value or "").strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        errors[key] = f"Enter the {what} date as YYYY-MM-DD."
        return None
    if len(text) != 10 or day.year < EARLIEST_YEAR:
        errors[key] = f"Enter the {what} date as YYYY-MM-DD, from {EARLIEST_YEAR} on."
        return None
    return day


def _physician(form: Mapping[str, str], on_file: bool, errors: dict[str, str]) -> Physician | None:
    values = {
        name: (form.get(f"physician_{name}") or "").strip()
        for name in PHYSICIAN_FIELDS
        if (form.get(f"physician_{name}") or "").strip()
    }
    if not values:
        if not on_file:
            errors["physician-name"] = (
                "No physician is on file for this client: enter the physician's name."
            )
        return None
    if "name" not in values:
        errors["physician-name"] = "Enter the physician's name."
        return None
    for name in ("name", "organization"):
        if name in values and has_card_number(values[name]):
            errors[PHYSICIAN_FIELDS[name]] = CARD_NUMBER
    try:
        physician = Physician.model_validate(values)
    except ValidationError as exc:
        for problem in exc.errors():
            field = str(problem["loc"][0]) if problem["loc"] else "name"
            key = PHYSICIAN_FIELDS.get(field, "physician-name")
            # The validator's own words (e.g. "not a valid NPI (its check digit does not
            # match)"), never the value.
            errors.setdefault(key, _message(problem))
        return None
    return physician


def _message(problem: Mapping[str, Any]) -> str:
    text = str(problem.get("msg", "is not valid"))
    text = text.removeprefix("Value error, ")
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def physician_entries(
    terms: SharingTerms, patient_id: str, ctx: MappingContext
) -> tuple[list[Entry], dict[str, str] | None]:
    """The new physician's Practitioner (conditional create on the NPI; without one, on a
    key of this client and the physician's name) and PractitionerRole (the practice), and a
    Reference to the Practitioner for the Consent; ([], None) when none was entered."""
    physician = terms.physician
    if physician is None:
        return [], None
    owner = patient_id if physician.npi else f"{patient_id}-{digest(physician.name)}"
    doctor = practitioner_mapping.practitioner(physician, owner, ctx)
    role = practitioner_mapping.practitioner_role(physician, doctor, ctx)
    reference = practitioner_mapping.reference(doctor, physician)
    return [doctor, *([role] if role else [])], reference


def apply_terms(resource: dict[str, Any], terms: SharingTerms, sharing: Sharing) -> dict[str, Any]:
    """The Consent with the terms' scopes (``provision.code``), their resource types
    (``provision.class``) and date range (``provision.dataPeriod``)."""
    provision = dict(resource.get("provision") or {})
    provision["code"] = [{"coding": [dict(sharing.scope(code).coding)]} for code in terms.scopes]
    types = sorted(sharing.types_of(terms.scopes))
    provision["class"] = [{"system": RESOURCE_TYPES, "code": t} for t in types]
    period = {}
    if terms.start:
        period["start"] = terms.start.isoformat()
    if terms.end:
        period["end"] = terms.end.isoformat()
    if period:
        provision["dataPeriod"] = period
    else:
        provision.pop("dataPeriod", None)
    return {**resource, "provision": provision}
