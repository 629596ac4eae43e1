"""Allowed uses of a photo, from the client's Consents (hl7.org/fhir/R4/consent.html).

A photo may be used for a purpose only when the client's latest Consent of that
purpose's kind is active (given, not declined or withdrawn) and dated on or before
the day the photo was taken. A photo without a marketing consent is never shown as
usable for marketing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from symfhir.workspace.dates import sort_key

CONSENT_KIND_SYSTEM = "http://symfhir.org/fhir/CodeSystem/consent-kind"
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
                # Instants, not text: a captured UTC time and an imported local date.
                if current is None or sort_key(consent.get("dateTime"), zone) >= sort_key(
                    current.get("dateTime"), zone
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
