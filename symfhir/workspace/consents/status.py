"""Consent status and history: every consent kind with its Consents, newest first (pure).

Reads Consents as ``symfhir.mapping.consent`` and the capture write them
(hl7.org/fhir/R4/consent.html): the kind from the category, the policy version from
policy[].uri, the signer from the performer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, tzinfo
from typing import Any

from symfhir.consent_kinds import ConsentKind, ConsentKinds
from symfhir.mapping.context import MappingContext
from symfhir.model.age import ADULT_AGE, youngest_age
from symfhir.photos.files import PNG
from symfhir.policy_versions import PolicyHistory, load_policy_history
from symfhir.spa import load_spa
from symfhir.workspace.consents.signature import DATA_URL_PREFIX
from symfhir.workspace.dates import local_day, sort_key

KIND_SYSTEM = "http://symfhir.org/fhir/CodeSystem/consent-kind"


@dataclass(frozen=True)
class ConsentEvent:
    """One Consent of a kind, as the history lists it."""

    id: str
    version: str
    status: str  # given | declined | withdrawn | <the FHIR status>
    date: str
    policy_version: str
    signer: str  # client | guardian | ""
    signer_name: str
    withdrawn_on: str
    has_form: bool
    form_data_url: str = ""


@dataclass(frozen=True)
class KindStatus:
    """A consent kind with its current status (from its latest Consent) and its history."""

    key: str
    label: str
    history: list[ConsentEvent] = field(default_factory=list)
    #: Given under a privacy policy older than its latest significant change (policy §13).
    reconsent_needed: bool = False

    @property
    def current(self) -> ConsentEvent | None:
        return self.history[0] if self.history else None

    @property
    def status(self) -> str:
        return self.current.status if self.current else "never asked"

    @property
    def withdrawable(self) -> bool:
        return self.status == "given"


def patient_age(patient: Mapping[str, Any] | None, today: date) -> int | None:
    """The age in years on ``today`` that decides adult or minor (``symfhir.model.age``:
    for a partial Patient.birthDate, the youngest the client can be), or None when the age
    is unknown (no Patient, no birthDate, or a partial one that may fall either side of 18)."""
    return youngest_age((patient or {}).get("birthDate"), today)


def is_minor(age: int | None) -> bool:
    return age is not None and age < ADULT_AGE


_PRACTITIONER = re.compile(r"(?:^|/)(Practitioner/[A-Za-z0-9\-.]{1,64})$")


def physician_on_file(patient: Mapping[str, Any] | None) -> dict[str, str] | None:
    """A Reference to the client's physician: the first Practitioner that
    Patient.generalPractitioner references (``Practitioner/<id>``, with its display), as the
    import writes it; None when the Patient names none."""
    for item in (patient or {}).get("generalPractitioner") or []:
        if not isinstance(item, Mapping):
            continue
        found = _PRACTITIONER.search(str(item.get("reference", "")))
        if found:
            ref = {"reference": found[1]}
            if isinstance(item.get("display"), str) and item["display"].strip():
                ref["display"] = item["display"].strip()
            return ref
    return None


def consent_kind_of(consent: Mapping[str, Any], kinds: ConsentKinds) -> str | None:
    """The consent kind a Consent's category names (system ``KIND_SYSTEM``), if known."""
    for category in consent.get("category") or []:
        for coding in (category or {}).get("coding") or []:
            if coding.get("system") == KIND_SYSTEM and coding.get("code") in kinds.kinds:
                return str(coding["code"])
    return None


def consent_overview(
    consents: list[dict[str, Any]],
    kinds: ConsentKinds,
    zone: tzinfo | None = None,
    policy: PolicyHistory | None = None,
) -> list[KindStatus]:
    """Every consent kind (in the order of the consent-kinds data) with its history, newest
    first (by the instant of dateTime, then lastUpdated); the current status is the newest
    one's. Entered-in-error, draft and proposed Consents are left out.

    Captured Consents carry a UTC date-time and imported ones a local date: both are compared
    as instants, a date-only value being the start of that day in the spa's ``zone`` (default:
    the bundled spa settings), and dates are shown as the spa's local date. A given consent of
    a kind that follows the privacy policy is marked ``reconsent_needed`` when ``policy`` (default:
    the bundled history) says it predates the latest significant change."""
    zone = zone or load_spa().zone
    policy = policy or load_policy_history()
    grouped: dict[str, list[dict[str, Any]]] = {key: [] for key in kinds.kinds}
    for consent in consents:
        if consent.get("resourceType") != "Consent":
            continue
        if consent.get("status") in ("entered-in-error", "draft", "proposed"):
            continue
        kind = consent_kind_of(consent, kinds)
        if kind is not None:
            grouped[kind].append(consent)
    out = []
    for key, kind_spec in kinds.kinds.items():
        ordered = sorted(
            grouped[key],
            key=lambda c: (
                sort_key(c.get("dateTime"), zone),
                sort_key((c.get("meta") or {}).get("lastUpdated"), zone),
            ),
            reverse=True,
        )
        history = [_event(c, zone, with_form=index == 0) for index, c in enumerate(ordered)]
        out.append(
            KindStatus(key, kind_spec.label, history, _reconsent(kind_spec, history, policy))
        )
    return out


def _reconsent(kind: ConsentKind, history: list[ConsentEvent], policy: PolicyHistory) -> bool:
    # A kind versioned on its own follows its own document, not the privacy policy.
    current = history[0] if history else None
    if kind.version is not None or current is None or current.status != "given":
        return False
    signed = date.fromisoformat(current.date) if current.date else None
    return policy.reconsent_needed(current.policy_version, signed)


def _event(consent: Mapping[str, Any], zone: tzinfo, *, with_form: bool) -> ConsentEvent:
    provision = consent.get("provision") or {}
    performer = (consent.get("performer") or [{}])[0] or {}
    reference = str(performer.get("reference", ""))
    if performer.get("type") == "RelatedPerson" or reference.startswith("RelatedPerson/"):
        signer = "guardian"
    elif reference.startswith("Patient/") or performer.get("type") == "Patient":
        signer = "client"
    else:
        signer = ""
    attachment = consent.get("sourceAttachment") or {}
    form_url = ""
    if with_form and attachment.get("contentType") == PNG and attachment.get("data"):
        form_url = DATA_URL_PREFIX + str(attachment["data"])
    return ConsentEvent(
        id=str(consent.get("id", "")),
        version=str((consent.get("meta") or {}).get("versionId", "")),
        status=consent_status(consent),
        date=local_day(consent.get("dateTime"), zone),
        policy_version=policy_version(consent),
        signer=signer,
        signer_name=str(performer.get("display", "")),
        withdrawn_on=local_day((provision.get("period") or {}).get("end"), zone),
        has_form=bool(attachment),
        form_data_url=form_url,
    )


def consent_status(consent: Mapping[str, Any]) -> str:
    """given (active permit), declined (rejected or deny), withdrawn (inactive)."""
    status = consent.get("status")
    if status == "inactive":
        return "withdrawn"
    if status == "rejected" or (consent.get("provision") or {}).get("type") == "deny":
        return "declined"
    if status == "active":
        return "given"
    return str(status or "unknown")


def policy_version(consent: Mapping[str, Any]) -> str:
    """The last path segment of policy[].uri (policy_uri is .../{document}/{version})."""
    for policy in consent.get("policy") or []:
        uri = policy.get("uri")
        if isinstance(uri, str) and "/" in uri:
            return uri.rstrip("/").rsplit("/", 1)[1]
    return ""


def current_policy_version(kind: ConsentKind, ctx: MappingContext) -> str:
    """The policy version a new consent of ``kind`` is given under: the kind's own
    ``version`` when the consent-kinds data has one, else the spa's privacy policy version."""
    return kind.known_versions(ctx.spa.privacy_policy_version)[0]


def basis_of(overview: list[KindStatus], kind: str) -> str:
    """``id/version`` of the current Consent of ``kind`` ("" when never asked)."""
    status = next((s for s in overview if s.key == kind), None)
    current = status.current if status else None
    return f"{current.id}/{current.version}" if current else ""
